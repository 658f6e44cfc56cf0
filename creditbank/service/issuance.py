"""Issuing transcripts and certificates, revoking them, and serving their stored bytes.

One issuance (docs/documents.md):

1. gather the learner's records and decisions with their proofs against the latest
   published checkpoint (:mod:`creditbank.service.gather`); every refusal (unknown or erased
   learner, a record index that is not the learner's) happens here, before anything is written;
2. take the next status-list bit (the only write before the append: a bit that is never used
   stays 0 and is never reused);
3. build and sign the credential (:mod:`creditbank.core.credentials`), render it as a PDF/A-3b
   with the credential attached and sign the PDF (PAdES, the bank's document certificate);
4. append the bank-signed ``transcript.issued`` entry (document id, kind, learner id, digests
   of the exact credential and PDF bytes, the status bit; no personal data). The ledger's
   validator stores the document row, its items, its bytes and its first share code (the code
   printed on it) in the append's transaction (:mod:`creditbank.service.documents`): the
   entry and the rows commit together or not at all.

The plain verification code is returned once and printed on the PDF; only its hash is kept.
Downloads serve the stored bytes; nothing is ever rendered again.
"""

from __future__ import annotations

import datetime as dt
import secrets
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal

from sqlalchemy.exc import SQLAlchemyError

from creditbank.core.canonical import canonicalize
from creditbank.core.codes import CODE_BYTES, format_code, generate_code
from creditbank.core.credentials.build import (
    build_certificate_credential,
    build_transcript_credential,
    issue,
    issuer_profile,
)
from creditbank.core.credentials.context import CONTEXT_MEDIA_TYPE, context_bytes
from creditbank.core.credentials.did import did_document, did_web
from creditbank.core.credentials.model import CertificateContent, TranscriptContent
from creditbank.core.entries import format_time
from creditbank.core.status_list import StatusListEntry
from creditbank.errors import (
    ConfigurationError,
    ConflictError,
    InvalidInputError,
    NotFoundError,
    StorageError,
)
from creditbank.render.credential_view import view_from_credential
from creditbank.render.qr import verification_url
from creditbank.service.bank import Bank
from creditbank.service.documents import ISSUED, REVOKED, sha256_text
from creditbank.service.gather import Gathered, gather_certificate, gather_transcript
from creditbank.service.share_codes import DEFAULT_TTL_DAYS, code_row
from creditbank.service.status import status_list_url
from creditbank.storage import documents_repo as repo
from creditbank.storage.engine import IMMEDIATE

if TYPE_CHECKING:
    from creditbank.render.pool import RenderPool

DocumentKind = Literal["transcript", "certificate"]
_CROCKFORD: Final = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
#: longest revocation reason
MAX_REASON: Final = 500

#: Renders and signs one document: (signed credential, its exact bytes, code, verify URL,
#: code expiry) -> signed PDF bytes. The default renders in this process; a RenderPool's
#: ``render`` renders in worker processes.
RenderFn = Callable[[dict[str, Any], bytes, str, str, dt.date], bytes]


def new_document_id() -> str:
    """``DOC-`` + 26 Crockford base32 characters (128 random bits): unguessable, public."""
    n = secrets.randbits(128)
    return "DOC-" + "".join(_CROCKFORD[(n >> (5 * i)) & 31] for i in range(26))


@dataclass(frozen=True, slots=True)
class Issued:
    """An issued document. ``code`` is the plain verification code: shown once, not stored."""

    doc_id: str
    kind: DocumentKind
    learner_id: str
    entry_index: int
    status_list: int
    status_index: int
    code: str
    code_id: str
    code_expires_at: str
    verify_url: str
    issued_at: str
    credential: bytes
    pdf: bytes

    @property
    def display_code(self) -> str:
        """``XXXX-XXXX-XXXX-XXXX``."""
        return format_code(self.code)

    def summary(self) -> dict[str, Any]:
        """The JSON answer of an issuance (no bytes)."""
        return {
            "document_id": self.doc_id,
            "kind": self.kind,
            "learner_id": self.learner_id,
            "entry_index": self.entry_index,
            "status_list": self.status_list,
            "status_index": self.status_index,
            "verification_code": self.display_code,
            "verification_url": self.verify_url,
            "code_id": self.code_id,
            "code_expires_at": self.code_expires_at,
            "issued_at": self.issued_at,
            "pdf_sha256": sha256_text(self.pdf),
            "credential_sha256": sha256_text(self.credential),
        }


def render_in_process(bank: Bank) -> RenderFn:
    """Render and sign in this process with the bank's document-signing identity.

    Raises:
        ConfigurationError: if the document-signing certificate or key cannot be loaded.
    """
    from creditbank.render.pdf import render_pdf
    from creditbank.render.pdfsign import sign_pdf
    from creditbank.service.keys import load_document_identity

    identity = load_document_identity(bank.settings, bank.clock.now())

    def render(
        credential: dict[str, Any], data: bytes, code: str, url: str, expires: dt.date
    ) -> bytes:
        view = view_from_credential(credential, code=code, verify_url=url, code_expires_on=expires)
        return sign_pdf(render_pdf(view, data), identity)

    return render


def _produce(
    bank: Bank,
    kind: DocumentKind,
    learner_id: str,
    gathered: Gathered,
    render: RenderFn | None,
) -> Issued:
    if bank.ledger.validator is None:
        raise ConfigurationError(
            "documents are issued by a validating bank (not the ledger-only mode)",
            code="config.ledger_only",
        )
    renderer = render if render is not None else render_in_process(bank)
    base = bank.settings.public_base_url
    now = bank.clock.now()
    doc_id = new_document_id()
    credential_id = f"urn:uuid:{uuid.UUID(bytes=secrets.token_bytes(16), version=4)}"
    code = generate_code(secrets.token_bytes(CODE_BYTES))
    code_expires = now + dt.timedelta(days=DEFAULT_TTL_DAYS)
    url = verification_url(base, code)
    issuer = issuer_profile(base, bank.settings.bank_name_zh, bank.settings.bank_name_en)
    try:
        with bank.engine.connect().execution_options(**{IMMEDIATE: True}) as conn, conn.begin():
            list_id, index = repo.allocate_status_index(conn, format_time(now))
    except SQLAlchemyError as e:
        raise StorageError(f"cannot allocate a status bit: {type(e).__name__}") from e
    status = StatusListEntry(status_list_url(base, list_id), index)
    common: dict[str, Any] = {
        "issuer": issuer,
        "credential_id": credential_id,
        "valid_from": now,
        "status": status,
        "verify_url": url,
    }
    content = gathered.content
    if isinstance(content, TranscriptContent):
        unsigned = build_transcript_credential(content, **common)
    elif isinstance(content, CertificateContent):
        unsigned = build_certificate_credential(content, **common)
    else:  # pragma: no cover - Gathered holds one of the two
        raise TypeError(type(content).__name__)
    signed = issue(unsigned, bank.issuer, issuer=issuer, created=now)
    credential = canonicalize(signed)
    pdf = renderer(signed, credential, code, url, code_expires.date())
    body = {
        "document_id": doc_id,
        "kind": kind,
        "learner": learner_id,
        "credential_id": credential_id,
        "credential_digest": sha256_text(credential),
        "pdf_digest": sha256_text(pdf),
        "status_list": list_id,
        "status_index": index,
        "checkpoint_size": gathered.checkpoint_size,
        "items": gathered.item_count,
    }
    first_code = code_row(code, doc_id, now, days=DEFAULT_TTL_DAYS, on_document=True)
    extra = {
        "document": {
            "doc_id": doc_id,
            "learner_id": learner_id,
            "kind": kind,
            "status_list": list_id,
            "status_index": index,
            "checkpoint_size": gathered.checkpoint_size,
            "item_count": gathered.item_count,
            "valid_until": None,
        },
        "items": gathered.items,
        "credential": credential,
        "pdf": pdf,
        "share_code": first_code,
    }
    raw = bank.bank_entry(ISSUED, body)
    (out,) = bank.ledger.append([raw], extras=[extra], publish=False)
    return Issued(
        doc_id=doc_id,
        kind=kind,
        learner_id=learner_id,
        entry_index=out.index,
        status_list=list_id,
        status_index=index,
        code=code,
        code_id=str(first_code["code_id"]),
        code_expires_at=str(first_code["expires_at"]),
        verify_url=url,
        issued_at=format_time(now),
        credential=credential,
        pdf=pdf,
    )


def issue_transcript(
    bank: Bank,
    learner_id: str,
    record_indices: Sequence[int] | None = None,
    *,
    render: RenderFn | None = None,
) -> Issued:
    """Issue a transcript of all the learner's records (or the chosen ones).

    Raises:
        NotFoundError: ``learner.unknown``, ``document.record_not_found`` (an index that is
            not one of the learner's records, existing or not).
        ConflictError: ``learner.erased`` (personal data erased: nothing is written),
            ``document.no_name_on_record``.
        InvalidInputError: ``document.no_records``, ``document.too_many_records``,
            ``document.empty``; rendering refusals (``render.*``).
        ConfigurationError: no document-signing identity, or a ledger-only bank.
        StorageError: if the database is unavailable.
    """
    gathered = gather_transcript(bank, learner_id, record_indices)
    return _produce(bank, "transcript", learner_id, gathered, render)


def issue_certificate(
    bank: Bank,
    learner_id: str,
    *,
    record: int | None = None,
    decision: int | None = None,
    render: RenderFn | None = None,
) -> Issued:
    """Issue a certificate of one record or one conversion decision of the learner.

    Raises:
        InvalidInputError: ``document.certificate_subject`` unless exactly one is given.
        NotFoundError: ``learner.unknown``, ``document.record_not_found``,
            ``document.decision_not_found``.
        ConflictError: ``learner.erased``, ``document.revoked_subject``,
            ``document.no_name_on_record``.
        ConfigurationError: no document-signing identity, or a ledger-only bank.
        StorageError: if the database is unavailable.
    """
    gathered = gather_certificate(bank, learner_id, record=record, decision=decision)
    return _produce(bank, "certificate", learner_id, gathered, render)


# -- revocation ---------------------------------------------------------------------------------
def revoke_document(
    bank: Bank,
    doc_id: str,
    *,
    reason: str,
    by: Literal["learner", "bank"],
    learner_id: str | None = None,
) -> dict[str, Any]:
    """Withdraw an issued document: a ``transcript.revoked`` entry; its status bit is set in
    the same transaction. ``learner_id`` (the caller, when a learner) must own it.

    Raises:
        InvalidInputError: ``document.reason`` for an empty or too long reason.
        NotFoundError: ``document.not_found`` (also another learner's document).
        ConflictError: ``document.revoked`` if it is already revoked.
        StorageError: if the database is unavailable.
    """
    reason = reason.strip()
    if not reason or len(reason) > MAX_REASON or any(ord(c) < 32 or c == "\x7f" for c in reason):
        raise InvalidInputError(
            f"give a reason of 1 to {MAX_REASON} characters on one line", code="document.reason"
        )
    doc = _document(bank, doc_id, learner_id)
    if doc.revoked_at is not None:
        raise ConflictError(f"document {doc_id} is already revoked", code="document.revoked")
    body = {
        "document_id": doc_id,
        "learner": str(doc.learner_id),
        "issued_entry": int(doc.entry_idx),
        "revoked_by": by,
        "reason": reason,
    }
    bank.ledger.append([bank.bank_entry(REVOKED, body)], publish=False)
    return document_info(bank, doc_id)


# -- reads --------------------------------------------------------------------------------------
def _document(bank: Bank, doc_id: str, learner_id: str | None) -> Any:
    try:
        with bank.engine.connect() as conn:
            doc = repo.get_document(conn, doc_id)
    except SQLAlchemyError as e:
        raise StorageError(f"cannot read documents: {type(e).__name__}") from e
    if doc is None or (learner_id is not None and str(doc.learner_id) != learner_id):
        raise NotFoundError(f"no document {doc_id}", code="document.not_found")
    return doc


def _info(doc: Any, causes: Sequence[repo.StatusCause]) -> dict[str, Any]:
    return {
        "document_id": doc.doc_id,
        "kind": doc.kind,
        "learner_id": doc.learner_id,
        "entry_index": int(doc.entry_idx),
        "issued_at": doc.issued_at,
        "items": int(doc.item_count),
        "checkpoint_size": int(doc.checkpoint_size),
        "status_list": int(doc.status_list),
        "status_index": int(doc.status_index),
        "pdf_sha256": "sha256:" + bytes(doc.pdf_digest).hex(),
        "credential_sha256": "sha256:" + bytes(doc.credential_digest).hex(),
        "status": "revoked" if causes else "valid",
        "revoked": [
            {"what": c.what, "at": c.at, "reason": c.reason, "entry_index": c.entry_idx,
             "detail": c.detail}
            for c in causes
        ],
    }  # fmt: skip


def document_info(bank: Bank, doc_id: str, learner_id: str | None = None) -> dict[str, Any]:
    """One document's facts and status, with every reason it is revoked.

    Raises:
        NotFoundError: ``document.not_found`` (also another learner's, with ``learner_id``).
        StorageError: if the database is unavailable.
    """
    doc = _document(bank, doc_id, learner_id)
    with bank.engine.connect() as conn:
        causes = repo.status_causes(conn, [doc_id]).get(doc_id, [])
    return _info(doc, causes)


def list_documents(bank: Bank, learner_id: str) -> list[dict[str, Any]]:
    """The learner's documents, oldest first, each with its status.

    Raises:
        StorageError: if the database is unavailable.
    """
    try:
        with bank.engine.connect() as conn:
            docs = repo.documents_of_learner(conn, learner_id)
            causes = repo.status_causes(conn, [str(d.doc_id) for d in docs])
    except SQLAlchemyError as e:
        raise StorageError(f"cannot read documents: {type(e).__name__}") from e
    return [_info(d, causes.get(str(d.doc_id), [])) for d in docs]


def document_bytes(
    bank: Bank, doc_id: str, which: Literal["pdf", "json"], learner_id: str | None = None
) -> bytes:
    """The exact stored PDF or credential bytes (never re-rendered).

    Raises:
        NotFoundError: ``document.not_found`` (also another learner's, with ``learner_id``).
        ConflictError: ``document.erased`` once the learner's personal data was erased.
        StorageError: if the database is unavailable.
    """
    try:
        with bank.engine.connect() as conn:
            got = repo.owner_and_bytes(conn, doc_id, which)
    except SQLAlchemyError as e:
        raise StorageError(f"cannot read documents: {type(e).__name__}") from e
    if got is None or (learner_id is not None and got[0] != learner_id):
        raise NotFoundError(f"no document {doc_id}", code="document.not_found")
    data = got[1]
    if data is None:
        raise ConflictError(
            f"document {doc_id} was erased with its learner's personal data",
            code="document.erased",
        )
    return data


# -- the issuer's public material ---------------------------------------------------------------
def issuer_did(bank: Bank) -> str:
    """The bank's ``did:web``, derived from its public base URL.

    Raises:
        InvalidInputError: ``credential.base_url`` for a base URL that is not plain http(s).
    """
    return did_web(bank.settings.public_base_url)


def issuer_did_document(bank: Bank) -> dict[str, Any]:
    """The DID document of the issuer key (served at ``/.well-known/did.json``).

    Raises:
        InvalidInputError: ``credential.base_url`` for a base URL that is not plain http(s).
    """
    return did_document(issuer_did(bank), bank.issuer.public_bytes)


def credential_context() -> tuple[bytes, str]:
    """Our JSON-LD context (exact packaged bytes) and its media type."""
    return context_bytes(), CONTEXT_MEDIA_TYPE


# -- rendering in worker processes ----------------------------------------------------------------
def open_render_pool(bank: Bank, workers: int = 2) -> RenderPool:
    """A warm :class:`RenderPool` signing with the bank's document identity (close it after).

    Raises:
        ConfigurationError: if the document identity cannot be read, or a worker fails.
    """
    from creditbank.render.pool import RenderPool, SignerMaterial
    from creditbank.service.keys import document_identity_files, load_document_identity

    load_document_identity(bank.settings, bank.clock.now())  # made if missing, and checked
    cert, key, chain = document_identity_files(bank.settings)
    material = SignerMaterial(
        cert.read_bytes(), key.read_bytes(), (chain.read_bytes(),) if chain is not None else ()
    )
    pool = RenderPool(workers, signer=material)
    try:
        pool.warm()
    except BaseException:
        pool.close()
        raise
    return pool


def pool_renderer(pool: RenderPool) -> RenderFn:
    """A :data:`RenderFn` that renders and signs in the pool's worker processes."""

    def render(
        credential: dict[str, Any], data: bytes, code: str, url: str, expires: dt.date
    ) -> bytes:
        view = view_from_credential(credential, code=code, verify_url=url, code_expires_on=expires)
        return pool.render_signed(view, data)

    return render
