"""The portals for people (issue #10, docs/portals.md): accounts, the worker portal, the
institution console and the admin page, server-rendered through the web layer's
:class:`~creditbank.web.site.Site` (zh/en, phone first, no script).

``router`` holds every page; it is one of :data:`creditbank.web.ROUTERS`, so
:func:`creditbank.web.install_web` (and :mod:`creditbank.asgi`) install it. Pages are left
out of the OpenAPI document (they are HTML, not the API). The account service is
``app.state.accounts`` (made on first use with the development code sender; set it before
serving to use a real sender).
"""

from __future__ import annotations

from fastapi import APIRouter

from creditbank.web.portal import auth, console, worker

router = APIRouter(include_in_schema=False)
router.include_router(auth.router)
router.include_router(worker.router)
router.include_router(console.router)

__all__ = ["router"]
