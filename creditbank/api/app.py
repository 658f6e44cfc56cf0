"""The FastAPI application factory.

``create_app(settings)`` opens the bank (or takes one), installs problem+json error handlers
and request limits, mounts the routes, and runs two background workers for the app's
lifetime (the lifespan): a :class:`GroupCommitter` that merges concurrent appends into shared
transactions, and a :class:`CheckpointPublisher` that signs a checkpoint every
``checkpoint_interval / 2`` seconds when the log grew. ``uvicorn`` starts it through
:func:`create_app_from_env` (``factory=True``).

Every response carries the security headers of :class:`SecurityHeaders` (a strict
Content-Security-Policy, ``nosniff``, ``no-referrer``). Errors are problem+json, except that
a browser asking for a page gets an HTML error page when pages are installed
(:func:`wants_html` is the one negotiation rule; ``creditbank.web`` registers the renderer in
``app.state.html_errors``; :mod:`creditbank.asgi` assembles both layers). The hot read routes
(``/healthz``, inclusion proofs) go through :mod:`creditbank.api.reads`.
"""

from __future__ import annotations

import gc
import json
import logging
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from typing_extensions import TypedDict  # pydantic needs it on Python < 3.12

from creditbank import __version__
from creditbank.api.docs import install_docs
from creditbank.api.errors import install_error_handlers, problem
from creditbank.api.hot import CreditBankAPI, HotHandler, adding_headers, json_response
from creditbank.api.routes import conversions as conversion_routes
from creditbank.api.routes import documents as documents_routes
from creditbank.api.routes import log as log_routes
from creditbank.api.routes import records as records_routes
from creditbank.api.routes import verify as verify_routes
from creditbank.config import Settings
from creditbank.errors import CreditBankError, RateLimitedError, StorageError
from creditbank.service.bank import Bank, open_bank
from creditbank.service.ledger import GroupCommitter, Ledger
from creditbank.service.log_reads import LogReads

log = logging.getLogger(__name__)

#: largest request body accepted (checked from Content-Length, then while streaming)
MAX_BODY_BYTES: Final = 32 * 1024 * 1024
#: longest path and query string accepted, in bytes
MAX_PATH_BYTES: Final = 2048
MAX_QUERY_BYTES: Final = 4096
#: the publisher never spins faster than this, whatever the interval
MIN_PUBLISH_PERIOD: Final = 0.05
#: the policy of every response that does not set its own (pages: no script at all)
CSP: Final = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS: Final[tuple[tuple[bytes, bytes], ...]] = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
)
_ALL_SECURITY_HEADERS: Final = ((b"content-security-policy", CSP.encode()), *SECURITY_HEADERS)
#: headers of an error answer that its HTML rendering keeps
_KEPT_ERROR_HEADERS: Final = ("retry-after", "www-authenticate", "allow")

#: renders an error page: (request, status, problem body, headers to keep) -> response
HTMLErrorRenderer = Callable[[Request, int, Mapping[str, Any], dict[str, str]], Response]


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
                414,
                "http.uri_too_long",
                "URI too long",
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
                413,
                "input.too_large",
                "Input too large",
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


class SecurityHeaders:
    """ASGI middleware adding :data:`SECURITY_HEADERS` to every response, and :data:`CSP`
    unless the response set its own Content-Security-Policy (``/docs`` does)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        await self.app(scope, receive, adding_headers(send, _ALL_SECURITY_HEADERS))


def _accepts_html(accept: str) -> bool:
    """True when ``text/html`` is named in ``accept`` with q > 0 and ranks at least as high
    as any JSON type (a wildcard alone does not count: ``curl`` sends ``*/*``)."""
    html_q = 0.0
    json_q = 0.0
    for part in accept.split(","):
        media, _, params = part.strip().partition(";")
        q = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        media = media.strip().lower()
        if media in ("text/html", "application/xhtml+xml"):
            html_q = max(html_q, q)
        elif media in ("application/json", "application/problem+json"):
            json_q = max(json_q, q)
    return html_q > 0 and html_q >= json_q


def wants_html(request: Request) -> bool:
    """THE negotiation rule for error answers: an HTML page only outside ``/api/`` (and the
    OpenAPI document) and only for a client that names ``text/html`` in ``Accept`` above JSON;
    problem+json for everything else."""
    path = request.url.path
    if path.startswith("/api/") or path == "/api" or path == "/openapi.json":
        return False
    return _accepts_html(request.headers.get("accept", ""))


Handler = Callable[[Request, Any], "Response | Awaitable[Response]"]


def _secured(response: Response) -> Response:
    """Add the security headers a response lacks (a 500 answer is sent by Starlette's
    outermost middleware, outside :class:`SecurityHeaders`)."""
    for name, value in _ALL_SECURITY_HEADERS:
        key = name.decode()
        if key not in response.headers:
            response.headers[key] = value.decode()
    return response


def _negotiated(handler: Handler) -> Callable[[Request, Any], Awaitable[Response]]:
    """Wrap a problem+json error handler: a browser outside /api gets the same problem
    rendered by ``app.state.html_errors`` (when pages are installed)."""

    async def handle(request: Request, exc: Any) -> Response:
        answer = handler(request, exc)
        response = _secured(answer if isinstance(answer, Response) else await answer)
        render: HTMLErrorRenderer | None = getattr(request.app.state, "html_errors", None)
        if render is None or not wants_html(request):
            return response
        try:
            body = json.loads(bytes(response.body))
        except ValueError:
            return response
        kept = {k: v for k, v in response.headers.items() if k.lower() in _KEPT_ERROR_HEADERS}
        try:
            return _secured(render(request, response.status_code, body, kept))
        except Exception:  # the page failed: the problem+json answer still says what happened
            log.exception("rendering the HTML error page failed")
            return response

    return handle


async def _on_rate_limited(request: Request, exc: RateLimitedError) -> Response:
    return problem(
        429,
        exc.code,
        exc.title,
        exc.message,
        instance=request.url.path,
        headers={"Retry-After": str(exc.retry_after)},
    )


def install_negotiated_errors(app: FastAPI) -> None:
    """Install the problem+json handlers (plus 429 for :class:`RateLimitedError`), each
    wrapped by :func:`_negotiated`."""
    install_error_handlers(app)
    app.add_exception_handler(RateLimitedError, _on_rate_limited)  # type: ignore[arg-type]
    for cls, handler in list(app.exception_handlers.items()):
        app.exception_handlers[cls] = _negotiated(handler)


class Health(TypedDict):
    status: str
    size: int


def create_app(settings: Settings, *, bank: Bank | None = None) -> CreditBankAPI:
    """Build the API for ``settings`` (or for an already open ``bank``, which stays open).

    Raises:
        ConfigurationError: if the home or database is not initialised.
    """
    owned = bank is None
    the_bank = open_bank(settings) if bank is None else bank
    reads = LogReads.for_engine(the_bank.engine)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        committer = GroupCommitter(the_bank.ledger)
        publisher = CheckpointPublisher(the_bank.ledger, settings.checkpoint_interval / 2)
        app.state.committer = committer
        publisher.start()
        # Everything alive now (modules, templates, caches, the bank) lives as long as the
        # process: move it out of the collector's generations, so that a full collection
        # during serving scans only what requests allocate (a full scan of the startup heap
        # stalled every request in flight for tens of ms; docs/benchmarks.md, "Serving path").
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            app.state.committer = None
            await run_in_threadpool(publisher.stop)
            await run_in_threadpool(committer.close)
            verifier = getattr(app.state, "verifier", None)
            if verifier is not None:  # /v/{code} counts buffered in memory are written now
                try:
                    await verifier.aclose()
                except CreditBankError:  # kept in memory; the exit handler tries once more
                    log.warning("verification counts not written at shutdown", exc_info=True)
            await reads.aclose()
            if owned:
                the_bank.close()

    app = CreditBankAPI(
        title="creditbank",
        version=__version__,
        summary="Learning-credit bank: an append-only signed Merkle ledger of learning outcomes",
        lifespan=lifespan,
        docs_url=None,  # install_docs serves Swagger UI from local assets
        redoc_url=None,
    )
    app.state.bank = the_bank
    app.state.settings = settings
    app.state.committer = None
    app.state.log_reads = reads
    app.state.rate_limiters = {}
    app.state.html_errors = None
    install_negotiated_errors(app)
    app.add_middleware(RequestLimits)
    app.add_middleware(SecurityHeaders)  # outermost: error answers get the headers too

    # the hot paths' door (creditbank/api/hot.py): the same answers without the framework
    app.hot_fixed_headers = _ALL_SECURITY_HEADERS
    app.hot_exact["/healthz"] = _hot_healthz(reads)
    app.hot_exact["/api/v1/log/proofs/inclusion"] = log_routes.hot_inclusion_proof(reads)

    # routes match in order of registration, each scanned per request: the hot ones first
    @app.get("/healthz", tags=["health"], summary="Liveness and database reachability")
    async def healthz() -> Health:
        try:
            size = (await reads.ahead()).size
        except Exception as e:  # the service does not wrap read errors; any means "down"
            raise StorageError(f"database unreachable: {type(e).__name__}") from e
        return {"status": "ok", "size": size}

    app.include_router(log_routes.hot_router, prefix="/api/v1")
    app.include_router(log_routes.router, prefix="/api/v1")
    app.include_router(records_routes.router, prefix="/api/v1")
    app.include_router(conversion_routes.router, prefix="/api/v1")
    app.include_router(documents_routes.router)  # full paths: /api/v1/…, /.well-known, /contexts
    app.include_router(verify_routes.router)  # /api/v1/verify…
    install_docs(app)  # after the API: every request scans the routes before its own

    return app


def _hot_healthz(reads: LogReads) -> HotHandler:
    """``GET /healthz`` at the door: the route's answer when the database answers."""

    async def answer(scope: Scope) -> Response | None:
        try:
            size = (await reads.ahead()).size
        except Exception:  # the route below answers the failure (503)
            return None
        return json_response(b'{"status":"ok","size":%d}' % size)

    return answer


def create_app_from_env() -> FastAPI:
    """The uvicorn factory: settings from ``CREDITBANK_*`` (``creditbank serve`` sets them).

    Raises:
        ConfigurationError: if the home or database is not initialised.
    """
    return create_app(Settings())
