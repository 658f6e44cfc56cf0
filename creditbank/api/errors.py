"""Every error leaves the API as RFC 9457 ``application/problem+json`` with a stable ``code``.

Body: ``{"type", "title", "status", "detail", "code", "instance"}``, plus ``items`` for a
rejected batch (one object per failing entry: ``index``, ``code``, ``detail``), ``reasons``
for a rejected conversion and ``errors`` for request validation. ``type`` is
``urn:creditbank:problem:<code>``.

Status mapping (the most specific class in the exception's MRO wins):

=========================  ======  ============================================================
class                      status  meaning
=========================  ======  ============================================================
``TooLargeError``          413     body, entry, note or proof larger than allowed
``UnsupportedMediaType…``  415     a JSON endpoint sent another ``Content-Type``
``BatchRejected``          422     a well-formed batch whose entries were refused (``items``)
``InvalidInputError``      400     malformed request data: bad parameter, range, size, syntax
request validation         400     FastAPI/pydantic validation of path, query or body
``VerificationError``      422     a signature, proof or structural check failed
``RuleError``              422     a business rule refused the request
``AuthError``              401     missing or unknown credentials (``WWW-Authenticate: Bearer``)
``ForbiddenError``         403     credentials do not allow this
``NotFoundError``          404     no such resource (unknown routes too)
``ConflictError``          409     duplicate or conflicting state
``StorageError``           503     the database is unavailable (``Retry-After``)
driver connection errors   503     ``storage.unavailable``: the same, raised by the database
                                   driver mid-request (server down, database dropped, ...)
``ConfigurationError``     500     the server is misconfigured
anything else              500     ``internal``; no detail leaks
=========================  ======  ============================================================

So 400 means "the request itself is malformed" and 422 "the request is well formed but its
content is refused". Bad input never yields a 500.
"""

from __future__ import annotations

import logging
from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from creditbank.errors import (
    AuthError,
    BatchRejected,
    ConfigurationError,
    ConflictError,
    ConversionRejected,
    CreditBankError,
    ForbiddenError,
    InvalidInputError,
    NotFoundError,
    RuleError,
    StorageError,
    TooLargeError,
    VerificationError,
)
from creditbank.service.errors import UNAVAILABLE

PROBLEM_MEDIA_TYPE: Final = "application/problem+json"


class UnsupportedMediaTypeError(InvalidInputError):
    """A JSON endpoint was sent a body of another media type (``Content-Type``)."""

    code = "http.unsupported_media_type"
    title = "Unsupported media type"

#: seconds a client should wait before retrying a 503
RETRY_AFTER_SECONDS: Final = 5

log = logging.getLogger(__name__)

_STATUS: Final[dict[type[CreditBankError], int]] = {
    UnsupportedMediaTypeError: 415,
    TooLargeError: 413,
    BatchRejected: 422,
    InvalidInputError: 400,
    VerificationError: 422,
    RuleError: 422,
    ForbiddenError: 403,
    AuthError: 401,
    NotFoundError: 404,
    ConflictError: 409,
    StorageError: 503,
    ConfigurationError: 500,
}

#: codes and titles of plain HTTP errors raised by routing (unknown route, wrong method, ...)
_HTTP_CODES: Final[dict[int, tuple[str, str]]] = {
    400: ("http.bad_request", "Bad request"),
    401: ("auth.unauthorized", "Unauthorized"),
    403: ("auth.forbidden", "Forbidden"),
    404: ("http.not_found", "Not found"),
    405: ("http.method_not_allowed", "Method not allowed"),
    406: ("http.not_acceptable", "Not acceptable"),
    413: ("input.too_large", "Input too large"),
    414: ("http.uri_too_long", "URI too long"),
    415: ("http.unsupported_media_type", "Unsupported media type"),
    422: ("request.invalid", "Invalid request"),
    431: ("http.headers_too_large", "Request headers too large"),
    503: ("storage.unavailable", "Service unavailable"),
}


def status_for(exc: CreditBankError) -> int:
    """The HTTP status of a domain error: the most specific mapped class in its MRO."""
    for cls in type(exc).__mro__:
        status = _STATUS.get(cls)
        if status is not None:
            return status
    return 500


def problem(
    status: int,
    code: str,
    title: str,
    detail: str,
    *,
    instance: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    """Build one problem+json response."""
    body: dict[str, Any] = {
        "type": f"urn:creditbank:problem:{code}",
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
    }
    if instance is not None:
        body["instance"] = instance
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers)


def problem_for(exc: CreditBankError, instance: str | None = None) -> JSONResponse:
    """Render a domain error as problem+json."""
    status = status_for(exc)
    extra: dict[str, Any] = {}
    if isinstance(exc, BatchRejected):
        extra["items"] = exc.items
    if isinstance(exc, ConversionRejected):
        extra["reasons"] = list(exc.reasons)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    if status == 503:
        headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}
    detail = exc.message
    if status == 500:
        log.error("configuration error: %s", exc.message)
    return problem(status, exc.code, exc.title, detail, instance=instance, headers=headers, **extra)


async def _on_domain_error(request: Request, exc: CreditBankError) -> JSONResponse:
    return problem_for(exc, request.url.path)


async def _on_validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = [
        {
            "loc": [str(p) for p in e.get("loc", ())],
            "msg": str(e.get("msg", "")),
            "type": str(e.get("type", "")),
        }
        for e in exc.errors()
    ][:20]
    first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
    where = ".".join(first["loc"]) if first["loc"] else "request"
    return problem(
        400,
        "request.invalid",
        "Invalid request",
        f"{where}: {first['msg']}",
        instance=request.url.path,
        errors=errors,
    )


async def _on_http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    status = exc.status_code
    code, title = _HTTP_CODES.get(status, (f"http.{status}", "HTTP error"))
    headers = dict(exc.headers) if exc.headers else None
    return problem(status, code, title, str(exc.detail), instance=request.url.path, headers=headers)


async def _on_storage_unavailable(request: Request, exc: Exception) -> JSONResponse:
    # what failed goes to the log, not to the client (it can name hosts and databases)
    log.error("database unavailable on %s %s: %s", request.method, request.url.path, exc)
    return problem(
        503,
        "storage.unavailable",
        "Service unavailable",
        "the database is unavailable; try again shortly",
        instance=request.url.path,
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem(500, "internal", "Internal error", "internal error", instance=request.url.path)


def install_error_handlers(app: FastAPI) -> None:
    """Render domain errors, validation errors, HTTP errors and crashes as problem+json."""
    # Starlette types handlers as taking any Exception; each is registered for its own class.
    handlers: list[tuple[type[Exception], Any]] = [
        (CreditBankError, _on_domain_error),
        (RequestValidationError, _on_validation_error),
        (StarletteHTTPException, _on_http_error),
        *((cls, _on_storage_unavailable) for cls in UNAVAILABLE),
        (Exception, _on_unexpected),
    ]
    for cls, handler in handlers:
        app.add_exception_handler(cls, handler)
