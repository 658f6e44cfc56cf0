"""The ASGI application people and programs reach: the API and the pages, assembled.

The API (:mod:`creditbank.api`) and the pages (:mod:`creditbank.web`) are independent
layers that may not import each other (docs/architecture.md, import-linter); this module, above
both, puts them into one app. ``creditbank serve`` runs :func:`create_app_from_env`.
"""

from __future__ import annotations

from fastapi import FastAPI

from creditbank.api.app import create_app as create_api_app
from creditbank.api.hot import CreditBankAPI
from creditbank.config import Settings
from creditbank.service.bank import Bank
from creditbank.web import install_web
from creditbank.web import verify as verify_pages


def create_app(settings: Settings, *, bank: Bank | None = None) -> CreditBankAPI:
    """The API with the pages installed (for ``settings``, or an already open ``bank``).

    Raises:
        ConfigurationError: if the home or database is not initialised.
    """
    app = create_api_app(settings, bank=bank)
    install_web(app)
    # the employer's page joins the hot paths at the door (creditbank/api/hot.py)
    app.hot_prefixes.append((verify_pages.CODE_PREFIX, verify_pages.hot_code_page))
    return app


def create_app_from_env() -> FastAPI:
    """The uvicorn factory: settings from ``CREDITBANK_*`` (``creditbank serve`` sets them).

    Raises:
        ConfigurationError: if the home or database is not initialised.
    """
    return create_app(Settings())
