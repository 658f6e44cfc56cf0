"""The bank's public pages: ``/`` (what the bank is, a form for a verification code), ``/v``
(where the form goes: a 303 to ``/v/{code}``) and ``/static/{name}``."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from creditbank.web.site import SiteDep

router = APIRouter(include_in_schema=False)


@router.get("/")
async def home(request: Request, site: SiteDep) -> Response:
    return site.render(request, "index.html.j2", title_key="home.title", empty=False)


@router.get("/v")
async def code_form(request: Request, site: SiteDep) -> Response:
    """The home page's form (``GET /v?code=…``) goes to ``/v/{code}``: the code exactly as
    typed (only percent-encoded; the verification page normalises it). An empty form shows
    the home page again, asking for a code."""
    code = request.query_params.get("code", "")
    if not code.strip():
        return site.render(
            request, "index.html.j2", status=400, title_key="home.title", empty=True
        )
    return RedirectResponse(f"/v/{quote(code, safe='')}", status_code=303)


@router.get("/static/{name}")
async def static(name: str, request: Request, site: SiteDep) -> Response:
    return site.static_response(name, versioned="v" in request.query_params)
