"""Hot paths: the few GET requests answered before the framework's middleware and routing.

``/healthz`` and ``/api/v1/log/proofs/inclusion`` (and the employer's ``/v/{code}`` page, which
the web layer registers) are read by monitors, verifiers and load balancers many times a
second. Through FastAPI each request walks seven middleware layers, the route table and the
dependency solver before our ~20 µs of work; here a GET whose path matches is answered at the
application's door with the same bytes and headers.

Only the plain success case is answered here. Anything else — a malformed, repeated or unknown
query parameter, a request with a body, an unpublished size, a database error — is passed on
untouched to the regular route, which answers it (errors included) exactly as before. A hot
handler therefore never raises: it returns the response or ``None``, and returns ``None`` only
before it has changed anything (or after marking what it did in the scope, as the page's rate
limit does, so that the route does not do it twice).
:class:`CreditBankAPI` has ``hot_paths`` to turn the door off, which the tests use to compare
the two ways byte for byte (``tests/api/test_hot_paths.py``). ADR 0008 tells why.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Final

from fastapi import FastAPI
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

#: a hot handler: the request's scope -> the response, or None to pass the request on
HotHandler = Callable[[Scope], Awaitable[Response | None]]

#: the longest query string a hot handler looks at (longer ones go to the route)
MAX_HOT_QUERY: Final = 64
_BODY_HEADERS: Final = frozenset((b"content-length", b"transfer-encoding"))


def json_response(body: bytes) -> Response:
    """A 200 JSON answer with the headers FastAPI's routes give it."""
    return Response(body, media_type="application/json")


class CreditBankAPI(FastAPI):
    """FastAPI with a door for hot paths (see the module docstring).

    ``hot_exact`` maps a path to its handler; ``hot_prefixes`` holds ``(prefix, handler)``
    pairs tried in order. ``hot_fixed_headers`` are added to every hot answer that does not set
    them itself: the headers the security middleware adds to every other answer.
    """

    hot_paths: bool = True

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.hot_exact: dict[str, HotHandler] = {}
        self.hot_prefixes: list[tuple[str, HotHandler]] = []
        self.hot_fixed_headers: tuple[tuple[bytes, bytes], ...] = ()

    def hot_handler(self, scope: Scope) -> HotHandler | None:
        """The hot handler for this request, or None (not a plain GET of a hot path)."""
        if scope["type"] != "http" or scope["method"] != "GET" or not self.hot_paths:
            return None
        path: str = scope["path"]
        handler = self.hot_exact.get(path)
        if handler is None:
            for prefix, h in self.hot_prefixes:
                if path.startswith(prefix):
                    handler = h
                    break
            else:
                return None
        if len(scope.get("query_string", b"")) > MAX_HOT_QUERY:
            return None
        for name, _ in scope["headers"]:
            if name in _BODY_HEADERS:  # a GET with a body: the limits middleware decides
                return None
        return handler

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        handler = self.hot_handler(scope)
        if handler is not None:
            scope["app"] = self  # what Starlette sets first; handlers read app.state
            response = await handler(scope)
            if response is not None:
                await response(scope, receive, adding_headers(send, self.hot_fixed_headers))
                return
        await super().__call__(scope, receive, send)


def adding_headers(send: Send, fixed: tuple[tuple[bytes, bytes], ...]) -> Send:
    """``send`` adding each of ``fixed`` to the response's headers unless the response set that
    header itself (the security middleware's rule, shared with the door)."""

    async def send_with_headers(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", ()))
            present = {k.lower() for k, _ in headers}
            headers.extend(h for h in fixed if h[0] not in present)
            message["headers"] = headers
        await send(message)

    return send_with_headers


def query_ints(query: bytes, names: tuple[bytes, ...]) -> dict[bytes, int] | None:
    """The plain decimal parameters of a query string (``index=3&size=10``), or None if it holds
    anything else: another name, a name twice, an empty or non-decimal value, percent-escapes.
    Values have at most 19 digits (the routes' rule); the caller checks their ranges."""
    out: dict[bytes, int] = {}
    if not query:
        return out
    for part in query.split(b"&"):
        name, sep, value = part.partition(b"=")
        if not sep or name not in names or name in out:
            return None
        if not value.isdigit() or len(value) > 19:  # bytes.isdigit is ASCII only
            return None
        out[name] = int(value)
    return out
