"""The FastAPI application factory.

``create_app(settings)`` opens the bank (or takes one), installs problem+json error handlers
and request limits, mounts the routes, and runs two background workers for the app's
lifetime (the lifespan): a :class:`GroupCommitter` that merges concurrent appends into shared
transactions, and a :class:`CheckpointPublisher` that signs a checkpoint every
``checkpoint_interval / 2`` seconds when the log grew. ``uvicorn`` starts it through
:func:`create_app_from_env` (``factory=True``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Final

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from typing_extensions import TypedDict  # pydantic needs it on Python < 3.12

from creditbank import __version__
from creditbank.api.errors import install_error_handlers, problem
from creditbank.api.routes import conversions as conversion_routes
from creditbank.api.routes import documents as documents_routes
from creditbank.api.routes import log as log_routes
from creditbank.api.routes import records as records_routes
from creditbank.config import Settings
from creditbank.errors import StorageError
from creditbank.service.bank import Bank, open_bank
from creditbank.service.ledger import GroupCommitter, Ledger

log = logging.getLogger(__name__)

#: largest request body accepted (checked from Content-Length, then while streaming)
MAX_BODY_BYTES: Final = 32 * 1024 * 1024
#: longest path and query string accepted, in bytes
MAX_PATH_BYTES: Final = 2048
MAX_QUERY_BYTES: Final = 4096
#: the publisher never spins faster than this, whatever the interval
MIN_PUBLISH_PERIOD: Final = 0.05


class CheckpointPublisher:
    """A thread that calls ``ledger.publish()`` every ``period`` seconds until stopped.

    ``publish`` signs only when the head grew, and takes the head lock, so several workers
    or processes publishing at once never sign two checkpoints of one size.
    """

    def __init__(self, ledger: Ledger, period: float) -> None:
        self.ledger = ledger
        self.period = max(period, MIN_PUBLISH_PERIOD)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="checkpoint-publisher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            try:
                self.ledger.publish()
            except Exception:  # keep publishing after a transient failure; the log says why
                log.exception("checkpoint publishing failed")


class RequestLimits:
    """ASGI middleware that refuses over-long targets and bodies before anything parses them."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body: int = MAX_BODY_BYTES,
        max_path: int = MAX_PATH_BYTES,
        max_query: int = MAX_QUERY_BYTES,
    ) -> None:
        self.app = app
        self.max_body = max_body
        self.max_path = max_path
        self.max_query = max_query

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("raw_path") or scope["path"].encode("utf-8", "surrogateescape")
        if len(path) > self.max_path or len(scope.get("query_string", b"")) > self.max_query:
            response = problem(
                414, "http.uri_too_long", "URI too long",
                f"path is limited to {self.max_path} bytes and query to {self.max_query}",
            )
            await response(scope, receive, send)
            return
        length: int | None = None
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                if not value.isdigit() or len(value) > 18:
                    response = problem(
                        400, "http.bad_request", "Bad request", "malformed Content-Length"
                    )
                    await response(scope, receive, send)
                    return
                length = int(value)
        if length is not None and length > self.max_body:
            response = problem(
                413, "input.too_large", "Input too large",
                f"request body of {length} bytes exceeds {self.max_body}",
            )
            await response(scope, receive, send)
            return
        await self.app(scope, self._counting(receive), send)

    def _counting(self, receive: Receive) -> Receive:
        seen = 0
        limit = self.max_body

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise HTTPException(413, f"request body exceeds {limit} bytes")
            return message

        return counted


class Health(TypedDict):
    status: str
    size: int


def create_app(settings: Settings, *, bank: Bank | None = None) -> FastAPI:
    """Build the API for ``settings`` (or for an already open ``bank``, which stays open).

    Raises:
        ConfigurationError: if the home or database is not initialised.
    """
    owned = bank is None
    the_bank = open_bank(settings) if bank is None else bank

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        committer = GroupCommitter(the_bank.ledger)
        publisher = CheckpointPublisher(the_bank.ledger, settings.checkpoint_interval / 2)
        app.state.committer = committer
        publisher.start()
        try:
            yield
        finally:
            app.state.committer = None
            await run_in_threadpool(publisher.stop)
            await run_in_threadpool(committer.close)
            if owned:
                the_bank.close()

    app = FastAPI(
        title="creditbank",
        version=__version__,
        summary="Learning-credit bank: an append-only signed Merkle ledger of learning outcomes",
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.bank = the_bank
    app.state.settings = settings
    app.state.committer = None
    install_error_handlers(app)
    app.add_middleware(RequestLimits)
    app.include_router(log_routes.router, prefix="/api/v1")
    app.include_router(records_routes.router, prefix="/api/v1")
    app.include_router(conversion_routes.router, prefix="/api/v1")
    app.include_router(documents_routes.router)  # full paths: /api/v1/…, /.well-known, /contexts

    @app.get("/healthz", tags=["health"], summary="Liveness and database reachability")
    def healthz() -> Health:
        try:
            size = the_bank.ledger.head().size
        except Exception as e:  # the service does not wrap read errors; any means "down"
            raise StorageError(f"database unreachable: {type(e).__name__}") from e
        return {"status": "ok", "size": size}

    return app


def create_app_from_env() -> FastAPI:
    """The uvicorn factory: settings from ``CREDITBANK_*`` (``creditbank serve`` sets them).

    Raises:
        ConfigurationError: if the home or database is not initialised.
    """
    return create_app(Settings())
