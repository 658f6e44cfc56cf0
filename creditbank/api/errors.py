"""Every error leaves the API as RFC 9457 ``application/problem+json`` with a stable ``code``.

Body: ``{"type", "title", "status", "detail", "code", "instance"}``, plus ``items`` for a
rejected batch (one object per failing entry: ``index``, ``code``, ``detail``), ``reasons``
for a rejected conversion and ``errors`` for request validation. ``type`` is
``urn:creditbank:problem:<code>``.

The status, ``code`` and ``title`` of a domain error come from its entry in the error
catalogue (:mod:`creditbank.error_catalogue`, listed in ``docs/errors.md``); no route
overrides them. By family:

=========================  ======  ============================================================
family                     status  meaning
=========================  ======  ============================================================
``input.too_large`` …      413     body, entry, note, upload or proof larger than allowed
``http.unsupported_me…``   415     a JSON endpoint sent another ``Content-Type``
``batch.rejected``         422     a well-formed batch whose entries were refused (``items``)
``input.*``, ``entry.*``…  400     malformed request data: bad parameter, range, size, syntax
request validation         400     ``request.invalid``: validation of path, query or body
``identity.*``             422     a well-formed identity document or name that is refused
``verify.*``               422     a signature, proof or structural check failed
``rules.*``                422     a business rule refused the request
``auth.*``                 401     missing or unknown credentials (``WWW-Authenticate: Bearer``)
``auth.forbidden`` …       403     credentials do not allow this (``items`` for a batch)
``*.not_found`` …          404     no such resource (unknown routes too)
``*.exists``, conflicts    409     duplicate or conflicting state
``rate.limited`` …         429     too many requests (``Retry-After``)
``storage.unavailable``    503     the database is unavailable (``Retry-After``)
driver connection errors   503     ``storage.unavailable``: the same, raised by the database
                                   driver mid-request (server down, database dropped, ...)
``config.*``               500     the server is misconfigured
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

from creditbank.error_catalogue import spec
from creditbank.errors import (
    ConversionRejected,
    CreditBankError,
    InvalidInputError,
    RateLimitedError,
)
from creditbank.service.errors import UNAVAILABLE

PROBLEM_MEDIA_TYPE: Final = "application/problem+json"


class UnsupportedMediaTypeError(InvalidInputError):
    """A JSON endpoint was sent a body of another media type (``Content-Type``)."""

    code = "http.unsupported_media_type"


#: seconds a client should wait before retrying a 503
RETRY_AFTER_SECONDS: Final = 5

log = logging.getLogger(__name__)

#: codes of plain HTTP errors raised by routing (unknown route, wrong method, ...); the
#: title comes from the catalogue
_HTTP_CODES: Final[dict[int, str]] = {
    400: "http.bad_request",
    401: "auth.unauthorized",
    403: "auth.forbidden",
    404: "http.not_found",
    405: "http.method_not_allowed",
    406: "http.not_acceptable",
    413: "input.too_large",
    414: "http.uri_too_long",
    415: "http.unsupported_media_type",
    422: "request.invalid",
    431: "http.headers_too_large",
    503: "storage.unavailable",
}


def status_for(exc: CreditBankError) -> int:
    """The HTTP status of a domain error: its catalogue entry's."""
    return exc.http_status


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
    """Render a domain error as problem+json: status and title from the catalogue."""
    status = exc.http_status
    extra: dict[str, Any] = {}
    items = getattr(exc, "items", None)
    if isinstance(items, list):  # a refused batch (BatchRejected, a forbidden batch)
        extra["items"] = items
    if isinstance(exc, ConversionRejected):
        extra["reasons"] = list(exc.reasons)
    headers: dict[str, str] | None = None
    if status == 401:
        headers = {"WWW-Authenticate": "Bearer"}
    elif isinstance(exc, RateLimitedError):
        headers = {"Retry-After": str(exc.retry_after)}
    elif status == 503:
        headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}
    if status >= 500:
        log.error("%s: %s", exc.code, exc.message)
    return problem(
        status, exc.code, exc.title, exc.message, instance=instance, headers=headers, **extra
    )


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
    entry = spec("request.invalid")
    return problem(
        entry.status,
        entry.code,
        entry.title,
        f"{where}: {first['msg']}",
        instance=request.url.path,
        errors=errors,
    )


async def _on_http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    status = exc.status_code
    code = _HTTP_CODES.get(status)
    title = spec(code).title if code is not None else "HTTP error"
    headers = dict(exc.headers) if exc.headers else None
    return problem(
        status,
        code or f"http.{status}",  # a status no route raises today
        title,
        str(exc.detail),
        instance=request.url.path,
        headers=headers,
    )


async def _on_storage_unavailable(request: Request, exc: Exception) -> JSONResponse:
    # what failed goes to the log, not to the client (it can name hosts and databases)
    log.error("database unavailable on %s %s: %s", request.method, request.url.path, exc)
    entry = spec("storage.unavailable")
    return problem(
        entry.status,
        entry.code,
        entry.title,
        "the database is unavailable; try again shortly",
        instance=request.url.path,
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    entry = spec("internal")
    return problem(
        entry.status, entry.code, entry.title, "internal error", instance=request.url.path
    )


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
