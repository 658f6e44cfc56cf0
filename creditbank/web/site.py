"""The site: the Jinja2 environment, the base layout's context, static files, error pages.

One :class:`Site` per app (``app.state.site``, set by :func:`creditbank.web.install_web`).
A page handler renders with :meth:`Site.render`::

    @router.get("/example")
    async def example(request: Request, site: SiteDep) -> Response:
        return site.render(request, "example.html.j2", title_key="example.title", items=...)

Templates live in ``creditbank/templates/web/`` and extend ``base.html.j2``; every string
comes from :mod:`creditbank.web.catalogue` through ``t("key")``. Autoescaping is on for
every template, undefined names are errors, and no page carries inline script or style (the
Content-Security-Policy forbids both).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from importlib import resources
from typing import Annotated, Any, Final
from urllib.parse import urlencode

import jinja2
from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, Response

from creditbank import __version__
from creditbank.errors import NotFoundError
from creditbank.web.i18n import (
    HTML_LANG,
    LANG_COOKIE,
    LANG_COOKIE_MAX_AGE,
    LANGS,
    choose_language,
    translator,
)

#: media types of the files under creditbank/web/static/ (anything else is not served)
STATIC_TYPES: Final[dict[str, str]] = {
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".woff2": "font/woff2",
}
#: statuses with their own words in the catalogue (others use ``error.other.*``)
ERROR_STATUSES: Final = frozenset({400, 401, 403, 404, 405, 413, 422, 429, 500, 503})


class Site:
    """Templates, language, static assets and HTML error pages for one app."""

    def __init__(self) -> None:
        self.env = jinja2.Environment(
            loader=jinja2.PackageLoader("creditbank", "templates/web"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.static: dict[str, tuple[bytes, str]] = {}
        root = resources.files("creditbank.web") / "static"
        for entry in root.iterdir():
            media = STATIC_TYPES.get("." + entry.name.rsplit(".", 1)[-1])
            if entry.is_file() and media is not None:
                self.static[entry.name] = (entry.read_bytes(), media)
        digest = hashlib.sha256()
        for name in sorted(self.static):
            digest.update(name.encode() + b"\0" + self.static[name][0])
        #: cache-busting version of the static files (part of their URLs)
        self.static_version = digest.hexdigest()[:12]

    def static_url(self, name: str) -> str:
        """The versioned URL of a static file (served with a one-year immutable cache).

        Raises:
            KeyError: if there is no such static file.
        """
        if name not in self.static:
            raise KeyError(f"no static file {name!r}")
        return f"/static/{name}?v={self.static_version}"

    def static_response(self, name: str, versioned: bool) -> Response:
        """A static file.

        Raises:
            NotFoundError: if there is no such file.
        """
        found = self.static.get(name)
        if found is None:
            raise NotFoundError(f"no static file {name!r}", code="http.not_found")
        data, media = found
        cache = "public, max-age=31536000, immutable" if versioned else "public, max-age=300"
        return Response(data, media_type=media, headers={"Cache-Control": cache})

    @staticmethod
    def language(request: Request) -> str:
        """The page language for ``request`` (:func:`creditbank.web.i18n.choose_language`)."""
        return choose_language(
            request.query_params.get("lang"),
            request.cookies.get(LANG_COOKIE),
            request.headers.get("accept-language", ""),
        )

    @staticmethod
    def switch_url(request: Request, lang: str) -> str:
        """This page's URL in ``lang`` (other query parameters kept)."""
        params = [(k, v) for k, v in request.query_params.multi_items() if k != "lang"]
        params.append(("lang", lang))
        return f"{request.url.path}?{urlencode(params)}"

    def context(self, request: Request, lang: str) -> dict[str, Any]:
        """What every template gets: ``t`` (and ``t_other`` for the other language),
        ``lang``, ``html_lang``, ``other_lang``, ``other_html_lang``, ``switch_url``,
        ``static``, ``version``, ``path``."""
        other = next(x for x in LANGS if x != lang)
        return {
            "t": translator(lang),
            "t_other": translator(other),
            "lang": lang,
            "html_lang": HTML_LANG[lang],
            "other_lang": other,
            "other_html_lang": HTML_LANG[other],
            "switch_url": self.switch_url(request, other),
            "static": self.static_url,
            "version": __version__,
            "path": request.url.path,
        }

    def render(
        self,
        request: Request,
        template: str,
        *,
        status: int = 200,
        headers: Mapping[str, str] | None = None,
        **values: Any,
    ) -> HTMLResponse:
        """Render ``template`` in the request's language.

        A ``?lang=`` choice is remembered in the language cookie; the answer varies with
        ``Accept-Language`` and ``Cookie``.

        Raises:
            jinja2.TemplateError: for a broken template or an undefined name (a bug).
        """
        lang = self.language(request)
        ctx = self.context(request, lang)
        ctx.update(values)
        html = self.env.get_template(template).render(ctx)
        response = HTMLResponse(html, status_code=status, headers=dict(headers or {}))
        response.headers["Vary"] = "Accept, Accept-Language, Cookie"
        response.headers.setdefault("Cache-Control", "no-cache")
        if request.query_params.get("lang") in LANGS:
            response.set_cookie(
                LANG_COOKIE,
                lang,
                max_age=LANG_COOKIE_MAX_AGE,
                path="/",
                httponly=True,
                samesite="lax",
                secure=request.url.scheme == "https",
            )
        return response

    def error_response(
        self, request: Request, status: int, problem: Mapping[str, Any], headers: dict[str, str]
    ) -> Response:
        """The HTML page of an error answer (``app.state.html_errors``): the same status,
        ``code`` and kept headers as the problem+json it replaces, in the page language.

        Raises:
            jinja2.TemplateError: for a broken template (the caller falls back to JSON).
        """
        key = str(status) if status in ERROR_STATUSES else "other"
        retry = headers.get("retry-after") or headers.get("Retry-After")
        return self.render(
            request,
            "error.html.j2",
            status=status,
            headers=headers,
            status_code=status,
            key=key,
            code=str(problem.get("code", "")),
            retry_after=int(retry) if retry and retry.isdigit() else None,
        )


def get_site(request: Request) -> Site:
    """The app's :class:`Site`."""
    site: Site = request.app.state.site
    return site


SiteDep = Annotated[Site, Depends(get_site)]
