"""Share codes: the bearer secrets that open an issued document to a verifier.

A code is 16 Crockford base32 characters (80 random bits, :mod:`creditbank.core.codes`),
shown once in plain (printed on the document for the first one) and stored only as the
SHA-256 of its normalised form. A learner lists, makes, extends and revokes the codes of
their own documents, addressed by a public ``code_id`` (never the code). Each code counts its
verifications (how many, when last) and never who verified. An expired or revoked code
still resolves (so a page can say so) but never opens the document's data.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, Literal

from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from creditbank.core.codes import CODE_BYTES, format_code, generate_code, normalize_code
from creditbank.core.entries import format_time, parse_time
from creditbank.errors import ConflictError, InvalidInputError, NotFoundError, StorageError
from creditbank.service.bank import Bank
from creditbank.storage import documents_repo as repo
from creditbank.storage.engine import IMMEDIATE

#: default lifetime of a share code
DEFAULT_TTL_DAYS: Final = 180
#: longest lifetime one request may give (make or extend)
MAX_TTL_DAYS: Final = 5 * 366
_CROCKFORD: Final = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

CodeState = Literal["valid", "expired", "revoked"]


def hash_code(code: str) -> bytes:
    """SHA-256 of the canonical form of a code (the stored key).

    Raises:
        InvalidInputError: ``code.malformed`` if ``code`` is not a verification code.
    """
    return hashlib.sha256(normalize_code(code).encode("ascii")).digest()


def _code_id() -> str:
    n = secrets.randbits(65)
    return "SC-" + "".join(_CROCKFORD[(n >> (5 * i)) & 31] for i in range(13))


def _ttl(days: object) -> timedelta:
    d = DEFAULT_TTL_DAYS if days is None else days
    if isinstance(d, bool) or not isinstance(d, int) or not 1 <= d <= MAX_TTL_DAYS:
        raise InvalidInputError(
            f"days must be a whole number from 1 to {MAX_TTL_DAYS}", code="share_code.days"
        )
    return timedelta(days=d)


@dataclass(frozen=True, slots=True)
class NewCode:
    """A freshly made code: the plain code is here once and never stored."""

    code: str
    code_id: str
    doc_id: str
    expires_at: str

    @property
    def display(self) -> str:
        """``XXXX-XXXX-XXXX-XXXX``."""
        return format_code(self.code)


def code_row(
    code: str, doc_id: str, now: datetime, *, days: int | None, on_document: bool
) -> dict[str, Any]:
    """The ``share_codes`` row of a new code (its hash, a fresh ``code_id``, the expiry).

    Raises:
        InvalidInputError: ``share_code.days`` for a lifetime out of range;
            ``code.malformed`` for a bad code.
    """
    return {
        "code_hash": hash_code(code),
        "code_id": _code_id(),
        "doc_id": doc_id,
        "on_document": on_document,
        "created_at": format_time(now),
        "expires_at": format_time(now + _ttl(days)),
        "revoked_at": None,
        "verify_count": 0,
        "last_verified_at": None,
    }


def insert_new_code(
    conn: Connection, doc_id: str, now: datetime, *, days: int | None, on_document: bool
) -> NewCode:
    """Make a code for ``doc_id`` inside the caller's transaction.

    Raises:
        InvalidInputError: ``share_code.days`` for a lifetime out of range.
    """
    code = generate_code(secrets.token_bytes(CODE_BYTES))
    row = code_row(code, doc_id, now, days=days, on_document=on_document)
    repo.insert_share_code(conn, row)
    return NewCode(code, row["code_id"], doc_id, row["expires_at"])


def code_state(row: Any, now: datetime) -> CodeState:
    """``revoked``, ``expired`` or ``valid`` for a stored code row at ``now``."""
    if row.revoked_at is not None:
        return "revoked"
    if parse_time(str(row.expires_at)) <= now:
        return "expired"
    return "valid"


def code_view(row: Any, now: datetime) -> dict[str, Any]:
    """What a learner sees of one of their codes (never the code itself)."""
    return {
        "code_id": row.code_id,
        "document_id": row.doc_id,
        "on_document": bool(row.on_document),
        "created_at": row.created_at,
        "expires_at": row.expires_at,
        "revoked_at": row.revoked_at,
        "state": code_state(row, now),
        "verifications": int(row.verify_count),
        "last_verified_at": row.last_verified_at,
    }


def _owned_document(conn: Connection, learner_id: str, doc_id: str) -> Any:
    doc = repo.get_document(conn, doc_id)
    if doc is None or str(doc.learner_id) != learner_id:  # no oracle for others' ids
        raise NotFoundError(f"no document {doc_id}", code="document.not_found")
    return doc


def _owned_code(conn: Connection, learner_id: str, code_id: str) -> Any:
    row = repo.share_code_by_id(conn, code_id)
    if row is None:
        raise NotFoundError(f"no share code {code_id}", code="share_code.not_found")
    doc = repo.get_document(conn, str(row.doc_id))
    if doc is None or str(doc.learner_id) != learner_id:
        raise NotFoundError(f"no share code {code_id}", code="share_code.not_found")
    return row


@contextmanager
def _write(bank: Bank) -> Iterator[Connection]:
    """A write transaction that takes SQLite's write lock when it begins (``BEGIN
    IMMEDIATE``), so a read-then-write never fails on a lock upgrade under concurrency."""
    with bank.engine.connect().execution_options(**{IMMEDIATE: True}) as conn, conn.begin():
        yield conn


def _wrap(e: SQLAlchemyError) -> StorageError:
    return StorageError(f"share codes unavailable: {type(e).__name__}")


def create_share_code(
    bank: Bank, learner_id: str, doc_id: str, *, days: int | None = None
) -> NewCode:
    """Make another code for one of the learner's documents (plain code returned once).

    Raises:
        NotFoundError: ``document.not_found`` (also for another learner's document).
        ConflictError: ``document.revoked`` for a revoked document.
        InvalidInputError: ``share_code.days``.
        StorageError: if the database is unavailable.
    """
    _ttl(days)
    try:
        with _write(bank) as conn:
            doc = _owned_document(conn, learner_id, doc_id)
            if doc.revoked_at is not None:
                raise ConflictError(f"document {doc_id} is revoked", code="document.revoked")
            return insert_new_code(conn, doc_id, bank.clock.now(), days=days, on_document=False)
    except SQLAlchemyError as e:
        raise _wrap(e) from e


def list_share_codes(bank: Bank, learner_id: str) -> list[dict[str, Any]]:
    """Every code of the learner's documents with its state and verification count.

    Raises:
        StorageError: if the database is unavailable.
    """
    now = bank.clock.now()
    try:
        with bank.engine.connect() as conn:
            rows = repo.share_codes_of_learner(conn, learner_id)
    except SQLAlchemyError as e:
        raise _wrap(e) from e
    return [code_view(r, now) | {"document_kind": r.kind} for r in rows]


def extend_share_code(bank: Bank, learner_id: str, code_id: str, days: int) -> dict[str, Any]:
    """Push a code's expiry to ``days`` from now (or from its current expiry if later).

    Raises:
        NotFoundError: ``share_code.not_found``.
        ConflictError: ``share_code.revoked`` (a revoked code stays revoked).
        InvalidInputError: ``share_code.days``.
        StorageError: if the database is unavailable.
    """
    ttl = _ttl(days)
    now = bank.clock.now()
    try:
        with _write(bank) as conn:
            row = _owned_code(conn, learner_id, code_id)
            if row.revoked_at is not None:
                raise ConflictError(f"share code {code_id} is revoked", code="share_code.revoked")
            start = max(now, parse_time(str(row.expires_at)))
            repo.set_share_code_expiry(conn, code_id, format_time(start + ttl))
            return code_view(repo.share_code_by_id(conn, code_id), now)
    except SQLAlchemyError as e:
        raise _wrap(e) from e


def revoke_share_code(bank: Bank, learner_id: str, code_id: str) -> dict[str, Any]:
    """Revoke a code for good (idempotent: revoking twice is fine).

    Raises:
        NotFoundError: ``share_code.not_found``.
        StorageError: if the database is unavailable.
    """
    now = bank.clock.now()
    try:
        with _write(bank) as conn:
            _owned_code(conn, learner_id, code_id)
            repo.revoke_share_code(conn, code_id, format_time(now))
            return code_view(repo.share_code_by_id(conn, code_id), now)
    except SQLAlchemyError as e:
        raise _wrap(e) from e


@dataclass(frozen=True, slots=True)
class CodeLookup:
    """What a code opens: its state and, only when valid, its document id."""

    state: CodeState
    code_id: str
    expires_at: str
    revoked_at: str | None
    doc_id: str | None


def lookup_code(bank: Bank, code: str, *, count: bool = True) -> CodeLookup:
    """Resolve a typed or scanned code; a valid lookup is counted (when, how many; not who).

    The code is hashed and looked up by its hash; the stored hash is compared in constant
    time. An expired or revoked code returns its state without the document id.

    Raises:
        InvalidInputError: ``code.malformed``.
        NotFoundError: ``share_code.not_found``.
        StorageError: if the database is unavailable.
    """
    wanted = hash_code(code)
    now = bank.clock.now()
    try:
        with bank.engine.connect() as conn:  # the read takes no write lock
            row = repo.share_code_by_hash(conn, wanted)
        if row is None or not hmac.compare_digest(bytes(row.code_hash), wanted):
            raise NotFoundError("no such verification code", code="share_code.not_found")
        state = code_state(row, now)
        if state == "valid" and count:
            with _write(bank) as conn:
                repo.count_verification(conn, wanted, format_time(now))
    except SQLAlchemyError as e:
        raise _wrap(e) from e
    return CodeLookup(
        state,
        str(row.code_id),
        str(row.expires_at),
        row.revoked_at,
        str(row.doc_id) if state == "valid" else None,
    )
