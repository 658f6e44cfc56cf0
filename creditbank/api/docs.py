"""The OpenAPI UI at ``/docs``, working offline: every asset is served by the bank.

Swagger UI 5 (its bundle and stylesheet from the pinned ``fastapi-offline`` package, which
ships them as files) is served under ``/docs/assets/``; the page starts it from
``/docs/assets/init.js`` instead of an inline script, so the page runs under its own strict
Content-Security-Policy (:data:`DOCS_CSP`): scripts, styles, images and fetches from this
origin only, plus ``data:`` images (the icons Swagger UI embeds in its stylesheet).
"""

from __future__ import annotations

import hashlib
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Final

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, Response

from creditbank.errors import NotFoundError

#: the page's own policy (the site's default policy forbids every script)
DOCS_CSP: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self' data:; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'"
)
_ASSETS: Final[dict[str, str]] = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "favicon.png": "image/png",
}
_INIT_JS: Final = """window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: document.getElementById("swagger-ui").dataset.openapi,
    dom_id: "#swagger-ui",
    layout: "BaseLayout",
    deepLinking: true,
    showExtensions: true,
    showCommonExtensions: true,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset]
  });
});
"""


def _static() -> Traversable:
    return resources.files("fastapi_offline") / "static"


def _page(title: str, openapi_url: str, version: str) -> str:
    v = f"?v={version}"
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="stylesheet" href="/docs/assets/swagger-ui.css{v}">
<link rel="icon" href="/docs/assets/favicon.png{v}">
</head>
<body>
<div id="swagger-ui" data-openapi="{openapi_url}"></div>
<script src="/docs/assets/swagger-ui-bundle.js{v}"></script>
<script src="/docs/assets/init.js{v}"></script>
</body>
</html>
"""


def install_docs(app: FastAPI) -> None:
    """Serve the Swagger UI page at ``/docs`` and its assets under ``/docs/assets/``.

    The app must be created with ``docs_url=None`` (FastAPI's own page loads a CDN).
    """
    router = APIRouter(include_in_schema=False)
    assets: dict[str, bytes] = {}
    for name in _ASSETS:
        assets[name] = (_static() / name).read_bytes()
    assets["init.js"] = _INIT_JS.encode()
    version = hashlib.sha256(b"".join(assets.values())).hexdigest()[:12]
    html = _page(f"{app.title} API", app.openapi_url or "/openapi.json", version)
    headers = {"Content-Security-Policy": DOCS_CSP, "Cache-Control": "no-cache"}

    @router.get("/docs")
    async def docs_page() -> HTMLResponse:
        return HTMLResponse(html, headers=headers)

    @router.get("/docs/assets/{name}")
    async def docs_asset(name: str, request: Request) -> Response:
        data = assets.get(name)
        if data is None:
            raise NotFoundError(f"no documentation asset {name!r}", code="http.not_found")
        media = _ASSETS.get(name, "text/javascript; charset=utf-8")
        versioned = request.query_params.get("v") is not None
        cache = "public, max-age=31536000, immutable" if versioned else "no-cache"
        return Response(data, media_type=media, headers={"Cache-Control": cache})

    app.include_router(router)
