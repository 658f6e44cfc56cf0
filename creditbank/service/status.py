"""Document status: the W3C Bitstring Status List credentials the bank publishes, and why a
document is revoked.

A document's bit is set when the document was revoked (``transcript.revoked``), when a record
it shows or a record a grant it shows rests on is revoked (``record.revoked``), when a grant
or exam exemption it shows is voided (``conversion.voided``), or when its learner's personal
data was erased. The bits are computed from the projections those entries write in their own
append transaction (:func:`creditbank.storage.documents_repo.revoked_indices`), so a status
is never behind a committed revocation; nothing has to be flipped later.

The list credential is signed by the issuer key (eddsa-jcs-2022, the same DID as the
documents) and cached per list by the set bits: it is signed again only when a bit changed.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from typing import Final

from sqlalchemy.exc import SQLAlchemyError

from creditbank.core.canonical import canonicalize
from creditbank.core.credentials.build import issue, issuer_profile, stamp
from creditbank.core.status_list import StatusList, build_status_list_credential
from creditbank.errors import NotFoundError, StorageError
from creditbank.service.bank import Bank
from creditbank.storage import documents_repo as repo

#: where the status lists are served, below the public base URL
STATUS_PATH: Final = "/api/v1/status"


def status_list_url(public_base_url: str, list_id: int) -> str:
    """The URL (and credential id) of one status list."""
    return f"{public_base_url.rstrip('/')}{STATUS_PATH}/{list_id}"


@dataclass(frozen=True, slots=True)
class _Cached:
    bits: bytes
    credential: bytes


_CACHE: dict[tuple[str, str, int], _Cached] = {}
_CACHE_GUARD = threading.Lock()


def status_list_credential(bank: Bank, list_id: int) -> bytes:
    """The signed status list credential of ``list_id`` (JCS bytes), current as of now.

    Raises:
        NotFoundError: ``status.unknown_list``.
        StorageError: if the database is unavailable.
    """
    try:
        with bank.engine.connect() as conn:
            row = repo.status_list(conn, list_id)
            if row is None:
                raise NotFoundError(f"no status list {list_id}", code="status.unknown_list")
            indices = repo.revoked_indices(conn, list_id)
    except SQLAlchemyError as e:
        raise StorageError(f"cannot read the status list: {type(e).__name__}") from e
    bits = StatusList.with_set(indices, int(row.size))
    raw = bits.to_bytes()
    key = (bank.settings.db_url, bank.settings.public_base_url, list_id)
    with _CACHE_GUARD:
        hit = _CACHE.get(key)
    if hit is not None and hit.bits == raw:
        return hit.credential
    base = bank.settings.public_base_url
    issuer = issuer_profile(base, bank.settings.bank_name_zh, bank.settings.bank_name_en)
    now = bank.clock.now()
    doc = build_status_list_credential(
        bits,
        list_credential_url=status_list_url(base, list_id),
        issuer=issuer.did,
        valid_from=stamp(now),
    )
    signed = canonicalize(issue(doc, bank.issuer, issuer=issuer, created=now))
    with _CACHE_GUARD:
        _CACHE[key] = _Cached(raw, signed)
    return signed


@dataclass(frozen=True, slots=True)
class DocumentStatus:
    """A document's status: ``valid`` or ``revoked``, with every cause (what, when, why)."""

    doc_id: str
    revoked: bool
    causes: tuple[repo.StatusCause, ...]
    status_list: int
    status_index: int


def document_status(bank: Bank, doc_id: str) -> DocumentStatus:
    """Whether a document is revoked, and why (each revocation, void or erasure).

    Raises:
        NotFoundError: ``document.not_found``.
        StorageError: if the database is unavailable.
    """
    try:
        with bank.engine.connect() as conn:
            doc = repo.get_document(conn, doc_id)
            if doc is None:
                raise NotFoundError(f"no document {doc_id}", code="document.not_found")
            causes = repo.status_causes(conn, [doc_id]).get(doc_id, [])
    except SQLAlchemyError as e:
        raise StorageError(f"cannot read the document status: {type(e).__name__}") from e
    return DocumentStatus(
        doc_id, bool(causes), tuple(causes), int(doc.status_list), int(doc.status_index)
    )


def status_digest(credential: bytes) -> str:
    """An ETag for a status list credential."""
    return hashlib.sha256(credential).hexdigest()[:32]
