"""Verification for employers over the API (docs/verification.md).

* ``GET /api/v1/verify/{code}``: verify the document a verification code opens (any case,
  hyphens optional, Crockford confusables accepted). Rate-limited per client address (the
  ``code-lookups`` bucket the pages share): 429 with ``Retry-After``.
* ``POST /api/v1/verify``: verify an uploaded PDF or credential JSON, sent as
  ``multipart/form-data`` (one file, field ``file``) or as the raw body with
  ``Content-Type: application/pdf`` or ``application/json``; at most
  :data:`creditbank.service.verification.MAX_UPLOAD_BYTES`. Nothing is written.

A completed verification answers 200 whatever the verdict (``verified``, ``status``,
``checks``); a request that cannot be verified (not a code, not a PDF or JSON, too large)
answers problem+json.
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal

import orjson
from fastapi import APIRouter, Depends, Path, Request, Response
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from creditbank.api.errors import UnsupportedMediaTypeError
from creditbank.api.ratelimit import rate_limit
from creditbank.errors import InvalidInputError
from creditbank.service.verification import (
    MAX_UPLOAD_BYTES,
    Verifier,
    app_verifier,
    check_upload_size,
)

router = APIRouter(prefix="/api/v1", tags=["verification"])

_PROBLEM: Final[dict[str, Any]] = {"content": {"application/problem+json": {}}}
UPLOAD_TYPES: Final = frozenset({"application/pdf", "application/json", "multipart/form-data"})


class CheckOut(BaseModel):
    name: str
    ok: bool
    detail: str


class DocumentFactsOut(BaseModel):
    id: str
    kind: str
    issued_at: str
    entry_index: int
    checkpoint_size: int
    status_list: int
    status_index: int


class RevocationOut(BaseModel):
    what: str
    at: str
    reason: str
    entry_index: int | None
    detail: str | None


class CodeOut(BaseModel):
    state: str
    expires_at: str
    revoked_at: str | None


class ReportOut(BaseModel):
    """A verification report: ``verified`` is true only when ``status`` is ``VALID``."""

    verified: bool
    status: Literal["VALID", "REVOKED", "CODE_EXPIRED", "CODE_REVOKED", "NOT_FOUND", "INVALID"]
    checks: list[CheckOut]
    document: DocumentFactsOut | None
    revocations: list[RevocationOut]
    code: CodeOut | None
    live_size: int | None
    timings_ms: dict[str, float]


_REPORT: Final[dict[int | str, dict[str, Any]]] = {
    200: {"model": ReportOut, "description": "the verification report (any verdict)"},
    **{s: _PROBLEM for s in (400, 413, 415, 429, 503)},
}


def get_verifier(request: Request) -> Verifier:
    """The app's verifier (:func:`creditbank.service.verification.app_verifier`)."""
    return app_verifier(request)


VerifierDep = Annotated[Verifier, Depends(get_verifier)]


def _json(report: Any) -> Response:
    return Response(orjson.dumps(report.to_json()), media_type="application/json")


@router.get(
    "/verify/{code}",
    summary="Verify the document a verification code opens",
    responses=_REPORT,
    response_class=Response,
    dependencies=[Depends(rate_limit("code-lookups"))],
)
def verify_code(
    code: Annotated[str, Path(max_length=64, description="XXXX-XXXX-XXXX-XXXX, any case")],
    verifier: VerifierDep,
) -> Response:
    """Raises: InvalidInputError: ``code.malformed``; StorageError when the bank is down."""
    return _json(verifier.by_code(code))


async def read_upload(request: Request) -> tuple[bytes, str]:
    """The uploaded file's bytes and media type, from a multipart form (field ``file``) or
    a raw ``application/pdf`` / ``application/json`` body.

    Raises:
        UnsupportedMediaTypeError: ``http.unsupported_media_type`` for another body type.
        TooLargeError: ``verify.too_large`` beyond the upload limit.
        InvalidInputError: ``verify.no_file`` for a form without a file.
    """
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media not in UPLOAD_TYPES:
        raise UnsupportedMediaTypeError(
            "upload a PDF or credential JSON as multipart/form-data, application/pdf or"
            f" application/json, not {media[:64] or 'none'}"
        )
    length = request.headers.get("content-length", "")
    if length.isdigit():
        check_upload_size(int(length), slack=64 * 1024)
    if media != "multipart/form-data":
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            check_upload_size(size)
            chunks.append(chunk)
        return b"".join(chunks), media
    try:
        form = await request.form(max_files=1, max_fields=4)
    except Exception as e:  # starlette raises its own parse errors; any is a bad request
        raise InvalidInputError(
            f"the multipart form cannot be read: {e}", code="verify.no_file"
        ) from e
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise InvalidInputError("the form has no file (field 'file')", code="verify.no_file")
    data = await upload.read(MAX_UPLOAD_BYTES + 1)
    await form.close()
    check_upload_size(len(data))
    part_type = (upload.content_type or "").split(";", 1)[0].strip().lower()
    return data, part_type


@router.post(
    "/verify",
    summary="Verify an uploaded PDF or credential JSON",
    responses=_REPORT,
    response_class=Response,
    dependencies=[Depends(rate_limit("uploads"))],
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/pdf": {"schema": {"type": "string", "format": "binary"}},
                "application/json": {"schema": {"type": "object"}},
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {"file": {"type": "string", "format": "binary"}},
                        "required": ["file"],
                    }
                },
            },
        }
    },
)
async def verify_upload(request: Request, verifier: VerifierDep) -> Response:
    """Raises: InvalidInputError / TooLargeError for an upload that is not a PDF or credential
    JSON; RateLimitedError (429, ``Retry-After``) past the ``uploads`` limit of the caller's
    address (shared with the ``/verify`` page); StorageError when the bank is down."""
    data, media = await read_upload(request)
    report = await run_in_threadpool(verifier.by_upload, data, media)
    return _json(report)
