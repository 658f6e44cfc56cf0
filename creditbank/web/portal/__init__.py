"""The portals for people (issue #10, docs/portals.md): accounts, the worker portal, the
institution console and the admin page, server-rendered (zh/en, phone first, no script).

``router`` holds every page; :func:`install` adds it to an app built by
:func:`creditbank.api.app.create_app` (the ASGI assembly of both layers calls it). Pages are
left out of the OpenAPI document (they are HTML, not the API).
"""

from __future__ import annotations

from typing import Final

from fastapi import APIRouter, FastAPI
from fastapi.responses import Response

from creditbank.service.accounts import Accounts
from creditbank.web.portal import auth, console, worker
from creditbank.web.portal.common import TEMPLATE_DIR

STYLESHEET: Final = "/portal/static/portal.css"

router = APIRouter(include_in_schema=False)
router.include_router(auth.router)
router.include_router(worker.router)
router.include_router(console.router)


@router.get(STYLESHEET)
def stylesheet() -> Response:
    """The portal's stylesheet (CSP: styles from the bank only, none inline)."""
    css = (TEMPLATE_DIR / "portal.css").read_bytes()
    return Response(
        css, media_type="text/css; charset=utf-8", headers={"Cache-Control": "max-age=3600"}
    )


def install(app: FastAPI, accounts: Accounts | None = None) -> None:
    """Add the portal pages to ``app``; ``accounts`` replaces the default account service
    (the development code sender, Argon2id defaults), e.g. with a real SMS or mail sender."""
    if accounts is not None:
        app.state.accounts = accounts
    app.include_router(router)


__all__ = ["STYLESHEET", "install", "router"]
