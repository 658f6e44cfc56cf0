"""SQL for accounts, sessions, one-time codes and the API tokens an account made.

Plain functions over a caller's connection (the service decides transactions). Secrets are
never stored: sessions and codes are kept as SHA-256 digests, passwords as Argon2id strings.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.engine import Connection

from creditbank.storage.tables import (
    account_codes_t,
    account_sessions_t,
    account_tokens_t,
    accounts_t,
    tokens_t,
)


# -- accounts ---------------------------------------------------------------------------------
def insert_account(conn: Connection, row: dict[str, Any]) -> None:
    conn.execute(accounts_t.insert().values(**row))


def account_by_id(conn: Connection, account_id: str) -> Any:
    return conn.execute(select(accounts_t).where(accounts_t.c.account_id == account_id)).first()


def account_by_login(conn: Connection, login: str) -> Any:
    return conn.execute(select(accounts_t).where(accounts_t.c.login == login)).first()


def account_by_learner(conn: Connection, learner_id: str) -> Any:
    return conn.execute(select(accounts_t).where(accounts_t.c.learner_id == learner_id)).first()


def accounts_by_role(conn: Connection, role: str) -> list[Any]:
    q = select(accounts_t).where(accounts_t.c.role == role).order_by(accounts_t.c.created_at)
    return list(conn.execute(q))


def set_login_state(
    conn: Connection, account_id: str, *, failed: int, locked_until: str | None
) -> None:
    conn.execute(
        update(accounts_t)
        .where(accounts_t.c.account_id == account_id)
        .values(failed_logins=failed, locked_until=locked_until)
    )


def set_learner(conn: Connection, account_id: str, learner_id: str) -> None:
    conn.execute(
        update(accounts_t)
        .where(accounts_t.c.account_id == account_id)
        .values(learner_id=learner_id)
    )


def set_password(conn: Connection, account_id: str, password_hash: str) -> None:
    conn.execute(
        update(accounts_t)
        .where(accounts_t.c.account_id == account_id)
        .values(password_hash=password_hash)
    )


def delete_account(conn: Connection, account_id: str) -> None:
    """Delete the account with its sessions, codes and token links (tokens are revoked by the
    caller first)."""
    conn.execute(delete(account_sessions_t).where(account_sessions_t.c.account_id == account_id))
    conn.execute(delete(account_codes_t).where(account_codes_t.c.account_id == account_id))
    conn.execute(delete(account_tokens_t).where(account_tokens_t.c.account_id == account_id))
    conn.execute(delete(accounts_t).where(accounts_t.c.account_id == account_id))


# -- sessions ---------------------------------------------------------------------------------
def insert_session(
    conn: Connection, digest: bytes, account_id: str, *, now: str, expires_at: str
) -> None:
    conn.execute(
        account_sessions_t.insert().values(
            digest=digest,
            account_id=account_id,
            created_at=now,
            expires_at=expires_at,
            last_seen_at=now,
        )
    )


def session_by_digest(conn: Connection, digest: bytes) -> Any:
    return conn.execute(
        select(account_sessions_t).where(account_sessions_t.c.digest == digest)
    ).first()


def touch_session(conn: Connection, digest: bytes, now: str) -> None:
    conn.execute(
        update(account_sessions_t)
        .where(account_sessions_t.c.digest == digest)
        .values(last_seen_at=now)
    )


def delete_session(conn: Connection, digest: bytes) -> None:
    conn.execute(delete(account_sessions_t).where(account_sessions_t.c.digest == digest))


def delete_sessions_of(conn: Connection, account_id: str, *, keep: bytes | None = None) -> int:
    q = delete(account_sessions_t).where(account_sessions_t.c.account_id == account_id)
    if keep is not None:
        q = q.where(account_sessions_t.c.digest != keep)
    return int(conn.execute(q).rowcount or 0)


def delete_expired_sessions(conn: Connection, now: str) -> int:
    q = delete(account_sessions_t).where(account_sessions_t.c.expires_at <= now)
    return int(conn.execute(q).rowcount or 0)


# -- one-time codes ---------------------------------------------------------------------------
def insert_code(conn: Connection, row: dict[str, Any]) -> None:
    conn.execute(account_codes_t.insert().values(**row))


def code_by_id(conn: Connection, code_id: str) -> Any:
    return conn.execute(select(account_codes_t).where(account_codes_t.c.code_id == code_id)).first()


def count_code_attempt(conn: Connection, code_id: str) -> None:
    conn.execute(
        update(account_codes_t)
        .where(account_codes_t.c.code_id == code_id)
        .values(attempts=account_codes_t.c.attempts + 1)
    )


def use_code(conn: Connection, code_id: str, now: str) -> bool:
    """Mark a code used; False if it already was (a concurrent use won)."""
    result = conn.execute(
        update(account_codes_t)
        .where(account_codes_t.c.code_id == code_id, account_codes_t.c.used_at.is_(None))
        .values(used_at=now)
    )
    return bool(result.rowcount)


def live_codes_of(conn: Connection, account_id: str, purpose: str, now: str) -> list[Any]:
    q = select(account_codes_t).where(
        account_codes_t.c.account_id == account_id,
        account_codes_t.c.purpose == purpose,
        account_codes_t.c.used_at.is_(None),
        account_codes_t.c.expires_at > now,
    )
    return list(conn.execute(q))


# -- API tokens made by an account -------------------------------------------------------------
def link_token(conn: Connection, digest: bytes, account_id: str) -> None:
    conn.execute(account_tokens_t.insert().values(digest=digest, account_id=account_id))


def tokens_of_account(conn: Connection, account_id: str) -> list[Any]:
    """The account's tokens (api_tokens rows), oldest first."""
    q = (
        select(tokens_t)
        .join(account_tokens_t, account_tokens_t.c.digest == tokens_t.c.digest)
        .where(account_tokens_t.c.account_id == account_id)
        .order_by(tokens_t.c.created_at, tokens_t.c.digest)
    )
    return list(conn.execute(q))


def revoke_tokens_of(conn: Connection, account_id: str, now: str) -> int:
    digests = select(account_tokens_t.c.digest).where(account_tokens_t.c.account_id == account_id)
    result = conn.execute(
        update(tokens_t)
        .where(tokens_t.c.digest.in_(digests), tokens_t.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return int(result.rowcount or 0)
