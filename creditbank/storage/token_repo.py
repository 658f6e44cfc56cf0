"""Bearer tokens for the HTTP API, kept only as SHA-256 digests.

A token is ``cbt_`` followed by 43 URL-safe base64 characters (256 random bits). It is shown
once when created; the database holds ``SHA-256(token)``, which is enough for lookup and
useless to a reader of the database (the token has full entropy, so no salt is needed).

Roles: ``auditor`` (reads every ledger entry). ``institution`` tokens (``subject`` = the
institution id) are meant to live in the same table.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Final

from sqlalchemy import Engine, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from creditbank.errors import InvalidInputError, StorageError
from creditbank.storage.tables import tokens_t

TOKEN_PREFIX: Final = "cbt_"  # noqa: S105 - a public prefix, not a secret
#: longest text accepted as a token before hashing (checked first)
MAX_TOKEN_LENGTH: Final = 128
ROLES: Final = frozenset({"auditor", "institution"})


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
        bytes(row.digest), str(row.role), row.subject, row.label, str(row.created_at),
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
