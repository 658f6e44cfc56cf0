"""Pages for people: server-rendered Jinja2, phone first, Chinese and English, HTML errors.

:func:`install_web` adds the pages to an app built by
:func:`creditbank.api.app.create_app` and registers the HTML error renderer the API's one
negotiation rule uses (``creditbank.api.app.wants_html``). The web layer may not import the
API (import-linter: they are independent siblings), so :mod:`creditbank.asgi` assembles the
two. How to add a page: docs/web.md.
"""

from __future__ import annotations

from fastapi import FastAPI

from creditbank.web import pages, portal, verify
from creditbank.web.site import Site, SiteDep, get_site

#: routers installed by :func:`install_web`, in matching order (a page on top of the web
#: layer adds its router here)
ROUTERS = [pages.router, verify.router, portal.router]


def install_web(app: FastAPI) -> Site:
    """Add the pages, the static files and the HTML error pages to ``app``."""
    site = Site()
    app.state.site = site
    app.state.html_errors = site.error_response
    for router in ROUTERS:
        app.include_router(router)
    return site


__all__ = ["ROUTERS", "Site", "SiteDep", "get_site", "install_web"]
