"""Bearer tokens for the HTTP API, kept only as SHA-256 digests.

A token is ``cbt_`` followed by 43 URL-safe base64 characters (256 random bits). It is shown
once when created; the database holds ``SHA-256(token)``, which is enough for lookup and
useless to a reader of the database (the token has full entropy, so no salt is needed).

Roles: ``auditor`` (reads every ledger entry), ``institution`` (``subject`` = the institution
id: posts and reads its own records) and ``learner`` (``subject`` = the bank's learner id: reads
that learner's records). A token is revoked by setting ``revoked_at``; it is never reused.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Final

from sqlalchemy import Engine, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from creditbank.errors import ConflictError, InvalidInputError, NotFoundError, StorageError
from creditbank.storage.engine import IMMEDIATE
from creditbank.storage.tables import tokens_t

TOKEN_PREFIX: Final = "cbt_"  # noqa: S105 - a public prefix, not a secret
#: longest text accepted as a token before hashing (checked first)
MAX_TOKEN_LENGTH: Final = 128
ROLES: Final = frozenset({"auditor", "institution", "learner"})
#: a token id: the first 8 bytes of the digest, in lower-case hex
TOKEN_ID_LENGTH: Final = 16


@dataclass(frozen=True, slots=True)
class StoredToken:
    """A token's record; ``token_id`` is a short public name (first 8 bytes of the digest)."""

    digest: bytes
    role: str
    subject: str | None
    label: str | None
    created_at: str
    revoked_at: str | None

    @property
    def token_id(self) -> str:
        return self.digest[:8].hex()


def token_digest(token: str) -> bytes:
    """SHA-256 of the token's UTF-8 bytes."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


def looks_like_token(token: str) -> bool:
    """Cheap syntax check before any hashing or database work."""
    return (
        len(token) <= MAX_TOKEN_LENGTH
        and token.startswith(TOKEN_PREFIX)
        and token.isascii()
        and token[len(TOKEN_PREFIX) :].replace("-", "").replace("_", "").isalnum()
    )


def insert_token(conn: Connection, row: StoredToken) -> None:
    conn.execute(
        tokens_t.insert().values(
            digest=row.digest,
            role=row.role,
            subject=row.subject,
            label=row.label,
            created_at=row.created_at,
            revoked_at=row.revoked_at,
        )
    )


def find_token(conn: Connection, digest: bytes) -> StoredToken | None:
    row = conn.execute(select(tokens_t).where(tokens_t.c.digest == digest)).first()
    if row is None:
        return None
    return StoredToken(
        bytes(row.digest),
        str(row.role),
        row.subject,
        row.label,
        str(row.created_at),
        row.revoked_at,
    )


def issue_token(
    engine: Engine, *, role: str, now: str, subject: str | None = None, label: str | None = None
) -> tuple[str, StoredToken]:
    """Create a token and store its digest. Returns the token (show it once) and its record.

    Raises:
        InvalidInputError: for an unknown role or an over-long label.
        StorageError: if the database is unavailable or not migrated.
    """
    if role not in ROLES:
        raise InvalidInputError(f"unknown token role {role!r}", code="token.role")
    if label is not None and len(label) > 200:
        raise InvalidInputError("token label is longer than 200 characters", code="token.label")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = StoredToken(token_digest(token), role, subject, label, now, None)
    try:
        with engine.begin() as conn:
            insert_token(conn, row)
    except SQLAlchemyError as e:
        raise StorageError(f"cannot store token: {type(e).__name__}") from e
    return token, row


def lookup_token(engine: Engine, token: str) -> StoredToken | None:
    """The live (unrevoked) record of ``token``, or None if unknown, malformed or revoked.

    Raises:
        StorageError: if the database is unavailable or not migrated.
    """
    if not looks_like_token(token):
        return None
    try:
        with engine.connect() as conn:
            row = find_token(conn, token_digest(token))
    except SQLAlchemyError as e:
        raise StorageError(f"cannot read tokens: {type(e).__name__}") from e
    if row is None or row.revoked_at is not None:
        return None
    return row


def _by_token_id(conn: Connection, token_id: str) -> list[StoredToken]:
    prefix = bytes.fromhex(token_id)
    rows = conn.execute(
        select(tokens_t).where(
            tokens_t.c.digest >= prefix + bytes(32 - len(prefix)),
            tokens_t.c.digest <= prefix + b"\xff" * (32 - len(prefix)),
        )
    )
    return [
        StoredToken(
            bytes(r.digest), str(r.role), r.subject, r.label, str(r.created_at), r.revoked_at
        )
        for r in rows
    ]


def revoke_token(engine: Engine, token_id: str, *, now: str) -> StoredToken:
    """Revoke the token named ``token_id`` (see :attr:`StoredToken.token_id`); idempotent.

    Returns the token's record as it now stands (``revoked_at`` is the first revocation's time).

    Raises:
        InvalidInputError: ``token.id`` if ``token_id`` is not 16 lower-case hex digits.
        NotFoundError: ``token.unknown`` if no token has that id.
        ConflictError: ``token.ambiguous`` if several do (never seen: 64-bit ids).
        StorageError: if the database is unavailable or not migrated.
    """
    if len(token_id) != TOKEN_ID_LENGTH or any(c not in "0123456789abcdef" for c in token_id):
        raise InvalidInputError(
            "a token id is 16 lower-case hex digits (as printed when it was made)",
            code="token.id",
        )
    try:  # reads, then writes: take the SQLite write lock when the transaction begins
        with engine.connect().execution_options(**{IMMEDIATE: True}) as conn, conn.begin():
            found = _by_token_id(conn, token_id)
            if not found:
                raise NotFoundError(f"no token with id {token_id}", code="token.unknown")
            if len(found) > 1:
                raise ConflictError(f"token id {token_id} is ambiguous", code="token.ambiguous")
            row = found[0]
            if row.revoked_at is not None:
                return row
            conn.execute(
                tokens_t.update().where(tokens_t.c.digest == row.digest).values(revoked_at=now)
            )
    except SQLAlchemyError as e:
        raise StorageError(f"cannot revoke token: {type(e).__name__}") from e
    return StoredToken(row.digest, row.role, row.subject, row.label, row.created_at, now)


def revoke_subject_tokens(conn: Connection, *, role: str, subject: str, now: str) -> int:
    """Revoke every live token of ``role`` speaking for ``subject``; returns how many."""
    result = conn.execute(
        tokens_t.update()
        .where(
            tokens_t.c.role == role,
            tokens_t.c.subject == subject,
            tokens_t.c.revoked_at.is_(None),
        )
        .values(revoked_at=now)
    )
    return int(result.rowcount or 0)
