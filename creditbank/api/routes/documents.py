"""Transcripts, certificates, share codes, and the issuer's public material (docs/documents.md).

Learner token:

* ``POST /api/v1/me/transcripts`` (``{"records": [entry indices]}`` optional) and
  ``POST /api/v1/me/certificates`` (``{"record": i}`` or ``{"decision": i}``): 201 with the
  document id, the verification code (shown once; printed on the PDF) and the download URLs;
* ``GET /api/v1/me/transcripts``: the learner's documents with their status;
* ``POST /api/v1/me/transcripts/{id}/revoke`` (``{"reason"}``): a ``transcript.revoked`` entry;
* ``GET|POST /api/v1/me/share-codes``, ``POST /api/v1/me/share-codes/{code_id}/extend``
  (``{"days"}``) and ``/revoke``: the learner's share codes, never the codes themselves
  except once when made.

Owner learner or auditor: ``GET /api/v1/transcripts/{id}.pdf`` and ``.json`` (the exact
stored bytes, never re-rendered), ``GET /api/v1/transcripts/{id}`` (facts and status).
Another learner's document is answered 404, as if it did not exist; the public path to a
document is its share code (the verification pages).

Public: ``GET /.well-known/did.json`` (the issuer's DID document), ``GET
/contexts/creditbank/v1`` (our JSON-LD context, ``application/ld+json``) and ``GET
/api/v1/status/{list}`` (the signed Bitstring Status List credential).
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Any, Final

from fastapi import APIRouter, Body, Path, Request, Response

from creditbank.api.deps import BankDep, Principal, PrincipalDep
from creditbank.api.schemas import (
    CertificateCreate,
    DocumentList,
    DocumentOut,
    DocumentRevoke,
    IssuedOut,
    ShareCodeCreate,
    ShareCodeExtend,
    ShareCodeList,
    ShareCodeOut,
    TranscriptCreate,
)
from creditbank.core import policy
from creditbank.service import issuance, share_codes, status
from creditbank.service.bank import Bank

router = APIRouter(tags=["documents"])

_PROBLEM: Final[dict[str, Any]] = {"content": {"application/problem+json": {}}}
_ERRORS: Final[dict[int | str, dict[str, Any]]] = {
    s: _PROBLEM for s in (400, 401, 403, 404, 409, 422, 503)
}
DOC_ID: Final = r"^DOC-[0-9A-HJKMNP-TV-Z]{26}$"
DocPath = Annotated[str, Path(pattern=DOC_ID, description="document id (DOC-…)")]
CodeIdPath = Annotated[str, Path(pattern=r"^SC-[0-9A-HJKMNP-TV-Z]{13}$", description="code id")]
V1: Final = "/api/v1"


def _learner(who: Principal, action: policy.Action) -> str:
    """The learner a token speaks for, if the policy lets it do ``action``.

    Raises:
        AuthError: ``auth.required`` without a token.
        ForbiddenError: ``auth.forbidden`` for any other kind of token.
    """
    return policy.acting_subject(who, action)


def _reader(who: Principal) -> str | None:
    """Whose documents the caller reads: its own learner's, or every one (None, an auditor).

    Raises:
        AuthError: ``auth.required`` without a token.
        ForbiddenError: ``auth.forbidden`` for an institution token.
    """
    return policy.reader_scope(who, policy.Action.DOCUMENT_READ)


def _issued(bank: Bank, got: issuance.Issued) -> dict[str, Any]:
    return got.summary() | {
        "pdf_url": f"{V1}/transcripts/{got.doc_id}.pdf",
        "json_url": f"{V1}/transcripts/{got.doc_id}.json",
    }


@router.post(
    f"{V1}/me/transcripts",
    status_code=201,
    response_model=IssuedOut,
    responses=_ERRORS,
    summary="Issue a transcript of all your records, or of the ones chosen (learner token)",
)
def create_transcript(
    bank: BankDep, who: PrincipalDep, req: Annotated[TranscriptCreate | None, Body()] = None
) -> dict[str, Any]:
    learner = _learner(who, policy.Action.DOCUMENT_ISSUE)
    records = None if req is None else req.records
    return _issued(bank, issuance.issue_transcript(bank, learner, records))


@router.post(
    f"{V1}/me/certificates",
    status_code=201,
    response_model=IssuedOut,
    responses=_ERRORS,
    summary="Issue a certificate of one record or one conversion decision (learner token)",
)
def create_certificate(req: CertificateCreate, bank: BankDep, who: PrincipalDep) -> dict[str, Any]:
    learner = _learner(who, policy.Action.DOCUMENT_ISSUE)
    return _issued(
        bank, issuance.issue_certificate(bank, learner, record=req.record, decision=req.decision)
    )


@router.get(
    f"{V1}/me/transcripts",
    response_model=DocumentList,
    responses=_ERRORS,
    summary="Your transcripts and certificates with their status (learner token)",
)
def list_documents(bank: BankDep, who: PrincipalDep) -> dict[str, Any]:
    learner = _learner(who, policy.Action.DOCUMENT_LIST)
    return {"documents": issuance.list_documents(bank, learner)}


@router.post(
    f"{V1}/me/transcripts/{{doc_id}}/revoke",
    response_model=DocumentOut,
    responses=_ERRORS,
    summary="Withdraw one of your documents: a transcript.revoked entry (learner token)",
)
def revoke_document(
    doc_id: DocPath, req: DocumentRevoke, bank: BankDep, who: PrincipalDep
) -> dict[str, Any]:
    learner = _learner(who, policy.Action.DOCUMENT_REVOKE)
    return issuance.revoke_document(
        bank, doc_id, reason=req.reason, by="learner", learner_id=learner
    )


_PDF_RESPONSE: Final[dict[int | str, dict[str, Any]]] = {
    200: {"content": {"application/pdf": {}}, "description": "the signed PDF as issued"},
    **_ERRORS,
}
_JSON_RESPONSE: Final[dict[int | str, dict[str, Any]]] = {
    200: {"content": {"application/vc": {}}, "description": "the signed credential as issued"},
    **_ERRORS,
}


def _bytes_response(data: bytes, media_type: str, etag: str, request: Request) -> Response:
    headers = {"ETag": f'"{etag}"', "Cache-Control": "private, max-age=3600"}
    if request.headers.get("if-none-match") == f'"{etag}"':
        return Response(status_code=304, headers=headers)
    return Response(content=data, media_type=media_type, headers=headers)


@router.get(
    f"{V1}/transcripts/{{doc_id}}.pdf",
    response_class=Response,
    responses=_PDF_RESPONSE,
    summary="The signed PDF exactly as issued (owner learner or auditor token)",
)
def get_pdf(doc_id: DocPath, request: Request, bank: BankDep, who: PrincipalDep) -> Response:
    data = issuance.document_bytes(bank, doc_id, "pdf", _reader(who))
    resp = _bytes_response(data, "application/pdf", hashlib.sha256(data).hexdigest()[:32], request)
    resp.headers["Content-Disposition"] = f'inline; filename="{doc_id}.pdf"'
    return resp


@router.get(
    f"{V1}/transcripts/{{doc_id}}.json",
    response_class=Response,
    responses=_JSON_RESPONSE,
    summary="The signed credential exactly as issued (owner learner or auditor token)",
)
def get_credential(doc_id: DocPath, request: Request, bank: BankDep, who: PrincipalDep) -> Response:
    data = issuance.document_bytes(bank, doc_id, "json", _reader(who))
    return _bytes_response(data, "application/vc", hashlib.sha256(data).hexdigest()[:32], request)


@router.get(
    f"{V1}/transcripts/{{doc_id}}",
    response_model=DocumentOut,
    responses=_ERRORS,
    summary="A document's facts and status (owner learner or auditor token)",
)
def get_document(doc_id: DocPath, bank: BankDep, who: PrincipalDep) -> dict[str, Any]:
    return issuance.document_info(bank, doc_id, _reader(who))


# -- share codes --------------------------------------------------------------------------------
@router.get(
    f"{V1}/me/share-codes",
    response_model=ShareCodeList,
    responses=_ERRORS,
    summary="Your share codes: state, expiry, how often and when last verified (learner token)",
)
def list_share_codes(bank: BankDep, who: PrincipalDep) -> dict[str, Any]:
    learner = _learner(who, policy.Action.SHARE_CODES_MANAGE)
    return {"share_codes": share_codes.list_share_codes(bank, learner)}


@router.post(
    f"{V1}/me/share-codes",
    status_code=201,
    response_model=ShareCodeOut,
    responses=_ERRORS,
    summary="Make another share code for one of your documents; the code is shown once",
)
def create_share_code(req: ShareCodeCreate, bank: BankDep, who: PrincipalDep) -> dict[str, Any]:
    learner = _learner(who, policy.Action.SHARE_CODES_MANAGE)
    made = share_codes.create_share_code(bank, learner, req.document_id, days=req.days)
    (view,) = [
        c for c in share_codes.list_share_codes(bank, learner) if c["code_id"] == made.code_id
    ]
    return view | {"code": made.display}


@router.post(
    f"{V1}/me/share-codes/{{code_id}}/extend",
    response_model=ShareCodeOut,
    responses=_ERRORS,
    summary="Extend one of your share codes by some days (learner token)",
)
def extend_share_code(
    code_id: CodeIdPath, req: ShareCodeExtend, bank: BankDep, who: PrincipalDep
) -> dict[str, Any]:
    learner = _learner(who, policy.Action.SHARE_CODES_MANAGE)
    return share_codes.extend_share_code(bank, learner, code_id, req.days)


@router.post(
    f"{V1}/me/share-codes/{{code_id}}/revoke",
    response_model=ShareCodeOut,
    responses=_ERRORS,
    summary="Revoke one of your share codes for good (learner token)",
)
def revoke_share_code(code_id: CodeIdPath, bank: BankDep, who: PrincipalDep) -> dict[str, Any]:
    learner = _learner(who, policy.Action.SHARE_CODES_MANAGE)
    return share_codes.revoke_share_code(bank, learner, code_id)


# -- public -------------------------------------------------------------------------------------
@router.get(
    "/.well-known/did.json",
    tags=["public"],
    summary="The issuer's DID document (did:web of the public base URL; public)",
)
def did_json(bank: BankDep) -> dict[str, Any]:
    return issuance.issuer_did_document(bank)


@router.get(
    "/contexts/creditbank/v1",
    tags=["public"],
    response_class=Response,
    responses={200: {"content": {"application/ld+json": {}}}},
    summary="Our JSON-LD context for credential terms OB 3.0 lacks (public)",
)
def context() -> Response:
    data, media_type = issuance.credential_context()
    return Response(
        content=data, media_type=media_type, headers={"Cache-Control": "public, max-age=86400"}
    )


@router.get(
    f"{V1}/status/{{list_id}}",
    tags=["public"],
    response_class=Response,
    responses={200: {"content": {"application/vc": {}}}, **_ERRORS},
    summary="A signed Bitstring Status List credential, current as of now (public)",
)
def status_list(
    list_id: Annotated[int, Path(ge=1, le=1_000_000)], request: Request, bank: BankDep
) -> Response:
    data = status.status_list_credential(bank, list_id)
    resp = _bytes_response(data, "application/vc", status.status_digest(data), request)
    resp.headers["Cache-Control"] = "no-cache"
    return resp
