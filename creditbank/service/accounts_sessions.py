"""Passwords and sessions: reading accounts, signing in (Argon2id, rate-limited per
account), sessions with absolute and idle expiry, signing out, changing a password.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from creditbank.core.entries import format_time, parse_time
from creditbank.errors import (
    AuthError,
    InvalidInputError,
    NotFoundError,
    RateLimitedError,
)
from creditbank.service.accounts_values import (
    IDLE_TTL,
    LOCK_AFTER,
    LOCK_FIRST,
    LOCK_MAX,
    MAX_PASSWORD,
    SESSION_PREFIX,
    SESSION_TTL,
    TOUCH_EVERY,
    Account,
    CodeSender,
    LoggingSender,
    Role,
    SignedIn,
    account_of,
    check_password,
    normalize_login,
    storage_error,
    token_digest,
)
from creditbank.service.bank import Bank
from creditbank.storage import accounts_repo as repo


class SessionAccounts:
    """Passwords and sessions over one bank, the base of
    :class:`creditbank.service.accounts.Accounts` (which takes the same arguments)."""

    def __init__(
        self,
        bank: Bank,
        *,
        sender: CodeSender | None = None,
        hasher: PasswordHasher | None = None,
        session_ttl: timedelta = SESSION_TTL,
        idle_ttl: timedelta = IDLE_TTL,
    ) -> None:
        self.bank = bank
        self.sender: CodeSender = sender if sender is not None else LoggingSender()
        self.hasher = hasher if hasher is not None else PasswordHasher()
        self.session_ttl = session_ttl
        self.idle_ttl = idle_ttl
        self._dummy_hash = self.hasher.hash(secrets.token_hex(16))
        key = hmac.new(bank.pepper, b"creditbank accounts v1", hashlib.sha256).digest()
        self._code_key = hmac.new(key, b"one-time codes", hashlib.sha256).digest()
        self._form_key = hmac.new(key, b"forms", hashlib.sha256).digest()

    # -- helpers --------------------------------------------------------------------------------
    def _now(self) -> datetime:
        return self.bank.clock.now()

    @contextmanager
    def _tx(self, what: str) -> Iterator[Connection]:
        try:
            with self.bank.engine.begin() as conn:
                yield conn
        except SQLAlchemyError as e:
            raise storage_error(e, what) from e

    def form_key(self) -> bytes:
        """The server secret CSRF tokens of forms are keyed with (derived from the pepper)."""
        return self._form_key

    def get(self, account_id: str) -> Account:
        """Raises: NotFoundError ``account.unknown``; StorageError."""
        with self._tx("read accounts") as conn:
            row = repo.account_by_id(conn, account_id)
        if row is None:
            raise NotFoundError(f"no account {account_id}", code="account.unknown")
        return account_of(row)

    def of_role(self, role: Role) -> list[Account]:
        """Every account of ``role``, oldest first. Raises: StorageError."""
        with self._tx("read accounts") as conn:
            return [account_of(r) for r in repo.accounts_by_role(conn, role)]

    # -- signing in -------------------------------------------------------------------------
    def sign_in(self, login: str, password: str) -> SignedIn:
        """Check the password and open a session.

        Raises:
            AuthError: ``auth.bad_credentials`` for an unknown login or a wrong password
                (the same answer for both).
            RateLimitedError: ``auth.locked`` while the account is locked after failures.
            StorageError: if the database is unavailable.
        """
        wrong = AuthError("wrong email/phone or password", code="auth.bad_credentials")
        try:
            norm = normalize_login(login)
        except InvalidInputError:
            norm = None
        if len(password) > MAX_PASSWORD:
            password = ""
        now = self._now()
        with self._tx("read accounts") as conn:
            row = repo.account_by_login(conn, norm) if norm is not None else None
        if row is None:
            self._verify(self._dummy_hash, password)
            raise wrong
        if row.locked_until is not None and parse_time(str(row.locked_until)) > now:
            wait = int((parse_time(str(row.locked_until)) - now).total_seconds()) + 1
            raise RateLimitedError(
                f"too many wrong passwords; try again in {wait} s",
                retry_after=wait,
                code="auth.locked",
            )
        if not self._verify(str(row.password_hash), password):
            failed = int(row.failed_logins) + 1
            locked = None
            if failed >= LOCK_AFTER:
                seconds = min(LOCK_MAX, LOCK_FIRST * 2 ** (failed - LOCK_AFTER))
                locked = format_time(now + timedelta(seconds=seconds))
            with self._tx("record a failed sign-in") as conn:
                repo.set_login_state(conn, str(row.account_id), failed=failed, locked_until=locked)
            raise wrong
        token = SESSION_PREFIX + secrets.token_urlsafe(32)
        expires = now + self.session_ttl
        with self._tx("open a session") as conn:
            repo.set_login_state(conn, str(row.account_id), failed=0, locked_until=None)
            if self.hasher.check_needs_rehash(str(row.password_hash)):
                repo.set_password(conn, str(row.account_id), self.hasher.hash(password))
            repo.delete_expired_sessions(conn, format_time(now))
            repo.insert_session(
                conn,
                token_digest(token),
                str(row.account_id),
                now=format_time(now),
                expires_at=format_time(expires),
            )
        return SignedIn(token, account_of(row), format_time(expires))

    def _verify(self, stored: str, password: str) -> bool:
        try:
            return bool(self.hasher.verify(stored, password))
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def session(self, token: str | None) -> Account | None:
        """The account a session cookie belongs to, or None (unknown, malformed, expired
        or idle too long; an ended session is deleted).

        Raises:
            StorageError: if the database is unavailable.
        """
        if (
            not token
            or len(token) > 80
            or not token.startswith(SESSION_PREFIX)
            or not token.isascii()
        ):
            return None
        digest = token_digest(token)
        now = self._now()
        with self._tx("read sessions") as conn:
            row = repo.session_by_digest(conn, digest)
            if row is None:
                return None
            seen = parse_time(str(row.last_seen_at))
            if now >= parse_time(str(row.expires_at)) or now - seen >= self.idle_ttl:
                repo.delete_session(conn, digest)
                return None
            account = repo.account_by_id(conn, str(row.account_id))
            if account is None:
                repo.delete_session(conn, digest)
                return None
            if now - seen >= TOUCH_EVERY:
                repo.touch_session(conn, digest, format_time(now))
        return account_of(account)

    def sign_out(self, token: str | None) -> None:
        """End a session (nothing happens for an unknown one). Raises: StorageError."""
        if not token or len(token) > 80:
            return
        with self._tx("end the session") as conn:
            repo.delete_session(conn, token_digest(token))

    def change_password(self, account: Account, old: str, new: str, *, keep: str | None) -> None:
        """Set a new password after checking the old one; other sessions end.

        Raises:
            AuthError: ``auth.bad_credentials`` if ``old`` is wrong.
            InvalidInputError: ``account.password``.
            StorageError: if the database is unavailable.
        """
        check_password(new)
        with self._tx("read accounts") as conn:
            row = repo.account_by_id(conn, account.account_id)
        if row is None or not self._verify(str(row.password_hash), old):
            raise AuthError("the current password is wrong", code="auth.bad_credentials")
        with self._tx("change the password") as conn:
            repo.set_password(conn, account.account_id, self.hasher.hash(new))
            repo.delete_sessions_of(
                conn, account.account_id, keep=token_digest(keep) if keep is not None else None
            )
