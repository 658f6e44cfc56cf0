"""Accounts for people: workers, institution operators and bank admins (docs/portals.md).

* **Passwords** are hashed with Argon2id (``argon2-cffi``; its RFC 9106 low-memory defaults)
  and re-hashed on sign-in when the parameters change. An unknown login costs one hash too,
  so timing does not tell which logins exist.
* **Sign-in is rate-limited** per account in the database (so the limit holds across API
  workers): after :data:`LOCK_AFTER` consecutive failures the account refuses sign-in for
  60 s, doubling with every further failure up to 15 minutes (``RateLimitedError`` with
  ``retry_after``). The pages add a per-address limit (``service.ratelimit``, "sign-in").
* **Sessions** are 256-bit random cookie values kept as SHA-256 digests; they end after
  :data:`SESSION_TTL` whatever happens and after :data:`IDLE_TTL` without a request.
* **Claiming**: a worker proves who they are with their identity document number and name
  (the learner lookup key of :mod:`creditbank.core.identity`, the same resolution
  institutions use; nothing is created) and a one-time code sent to the account's email or
  phone by a pluggable :class:`CodeSender` (development: :class:`LoggingSender` writes it to
  the server log). The start of a claim answers the same whether or not the details match
  anyone, so it cannot be used to find out who has records; the code then fails.
* **API tokens**: a signed-in user makes and revokes their own bearer tokens: a worker's
  reads their records (role ``learner``), an operator's acts for their institution
  (``institution``), an admin's reads every entry (``auditor``).
* **Erasure**: a worker erases their personal data (name, identity key, salt, names on
  records, stored document files) and their account; the signed log entries stay.

Nothing here writes the ledger; forms' CSRF tokens are keyed by :meth:`Accounts.form_key`.

:class:`Accounts` (here: creating accounts, claims, tokens, erasure) builds on
``accounts_sessions`` (passwords and sessions); the values, limits and rules are in
``accounts_values``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import unicodedata
from typing import Any

from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from creditbank.core import policy
from creditbank.core.entries import format_time, parse_time
from creditbank.core.identity import check_person_name, identity_lookup_key, normalize_identity
from creditbank.errors import (
    AuthError,
    ConflictError,
    InvalidInputError,
    NotFoundError,
    RateLimitedError,
)
from creditbank.service import institutions
from creditbank.service.accounts_sessions import SessionAccounts
from creditbank.service.accounts_values import (
    CODE_ATTEMPTS,
    CODE_DIGITS,
    CODE_ID_RE,
    CODE_TTL,
    IDLE_TTL,
    LOCK_AFTER,
    MAX_LIVE_CODES,
    MAX_TOKEN_LABEL,
    SESSION_TTL,
    TOKEN_ID_RE,
    TOKEN_ROLE,
    Account,
    CodeSender,
    LoggingSender,
    MadeToken,
    OutboxSender,
    Role,
    RowView,
    account_of,
    check_password,
    display_name_of,
    new_id,
    normalize_login,
    storage_error,
)
from creditbank.storage import accounts_repo as repo
from creditbank.storage import documents_repo, token_repo
from creditbank.storage import records_repo as rr

#: the names importers use from here
__all__ = [
    "CODE_ATTEMPTS",
    "IDLE_TTL",
    "LOCK_AFTER",
    "SESSION_TTL",
    "Account",
    "Accounts",
    "CodeSender",
    "LoggingSender",
    "OutboxSender",
    "Role",
    "normalize_login",
]


class Accounts(SessionAccounts):
    """Account use cases over one bank. Thread-safe (no mutable state but the sender's)."""

    # -- creating accounts ------------------------------------------------------------------
    def _create(
        self,
        role: Role,
        login: str,
        password: str,
        *,
        display_name: str | None = None,
        institution_id: str | None = None,
        learner_id: str | None = None,
    ) -> Account:
        norm = normalize_login(login)
        check_password(password)
        row = {
            "account_id": new_id("ACC-"),
            "role": role,
            "login": norm,
            "password_hash": self.hasher.hash(password),
            "display_name": display_name_of(display_name),
            "institution_id": institution_id,
            "learner_id": learner_id,
            "created_at": format_time(self._now()),
            "failed_logins": 0,
            "locked_until": None,
        }
        try:
            with self.bank.engine.begin() as conn:
                if repo.account_by_login(conn, norm) is not None:
                    raise ConflictError(
                        "an account with this email or phone already exists",
                        code="account.exists",
                    )
                repo.insert_account(conn, row)
        except IntegrityError as e:
            raise ConflictError(
                "an account with this email or phone already exists", code="account.exists"
            ) from e
        except SQLAlchemyError as e:
            raise storage_error(e, "create the account") from e
        return account_of(RowView(row))

    def sign_up_worker(self, login: str, password: str, display_name: str | None = None) -> Account:
        """A worker's own sign-up (no learner identity yet: see :meth:`start_claim`).

        Raises:
            InvalidInputError: ``account.login``, ``account.password``, ``account.display_name``.
            ConflictError: ``account.exists``.
            StorageError: if the database is unavailable.
        """
        return self._create("worker", login, password, display_name=display_name)

    def add_operator(
        self, login: str, password: str, institution_id: str, display_name: str | None = None
    ) -> Account:
        """An operator account bound to one registered, open institution (CLI, admins).

        Raises:
            NotFoundError: ``registry.unknown``.
            ConflictError: ``registry.closed`` for a closed institution; ``account.exists``.
            InvalidInputError: as :meth:`sign_up_worker`; ``registry.institution_id``.
            StorageError: if the database is unavailable.
        """
        institutions.check_institution_id(institution_id)
        inst = self.bank.ledger.registry().institutions.get(institution_id)
        if inst is None:
            raise NotFoundError(
                f"institution {institution_id} is not registered", code="registry.unknown"
            )
        if inst.closed_on is not None:
            raise ConflictError(f"institution {institution_id} is closed", code="registry.closed")
        return self._create(
            "operator", login, password, display_name=display_name, institution_id=institution_id
        )

    def add_admin(self, login: str, password: str, display_name: str | None = None) -> Account:
        """A bank admin account (CLI only).

        Raises:
            InvalidInputError, ConflictError, StorageError: as :meth:`sign_up_worker`.
        """
        return self._create("admin", login, password, display_name=display_name)

    def add_worker_for(
        self, login: str, password: str, learner_id: str, display_name: str | None = None
    ) -> Account:
        """A worker account already bound to a learner (the bank's operator vouches: demo
        homes and assisted sign-up at a service desk; CLI only).

        Raises:
            InvalidInputError: ``learner.id``; as :meth:`sign_up_worker`.
            NotFoundError: ``learner.unknown``, ``learner.erased``.
            ConflictError: ``account.exists``; ``account.learner_taken``.
            StorageError: if the database is unavailable.
        """
        if not institutions.LEARNER_ID_RE.fullmatch(learner_id):
            raise InvalidInputError("a learner id is LRN- and 16-32 characters", code="learner.id")
        with self._tx("read learners") as conn:
            row = rr.get_learner(conn, learner_id)
        if row is None:
            raise NotFoundError(f"unknown learner {learner_id}", code="learner.unknown")
        if row.erased_at is not None:
            raise NotFoundError(f"learner {learner_id} was erased", code="learner.erased")
        with self._tx("read accounts") as conn:
            if repo.account_by_learner(conn, learner_id) is not None:
                raise ConflictError(
                    "another account already holds this learner", code="account.learner_taken"
                )
        try:
            return self._create(
                "worker", login, password, display_name=display_name, learner_id=learner_id
            )
        except ConflictError as e:
            if e.code == "account.exists":
                raise
            raise ConflictError(
                "another account already holds this learner", code="account.learner_taken"
            ) from e

    # -- claiming a learner identity --------------------------------------------------------
    def _code_hash(self, code_id: str, code: str) -> bytes:
        return hmac.new(self._code_key, f"{code_id}\0{code}".encode(), hashlib.sha256).digest()

    def start_claim(
        self,
        account: Account,
        *,
        name: str,
        doc_type: str,
        number: str,
        nationality: str | None = None,
    ) -> str:
        """Check an identity document and name against the learners institutions posted for,
        and send a one-time code to the account's email or phone. Returns the code's id.

        The answer is the same whether the details match a learner or not.

        Raises:
            ForbiddenError: ``auth.forbidden`` unless a worker account.
            ConflictError: ``account.already_claimed``.
            InvalidInputError: ``identity.*`` for a malformed document or name.
            RateLimitedError: ``claim.too_many`` with :data:`MAX_LIVE_CODES` live codes.
            StorageError: if the database is unavailable.
        """
        self._worker(account)
        if account.learner_id is not None:
            raise ConflictError(
                "this account already holds a learner identity", code="account.already_claimed"
            )
        name = check_person_name(name)
        doc = normalize_identity(doc_type, number, nationality, today=self._now().date())
        key = identity_lookup_key(doc, self.bank.pepper)
        now = self._now()
        code = "".join(secrets.choice("0123456789") for _ in range(CODE_DIGITS))
        code_id = new_id("OTC-")
        with self._tx("start the claim") as conn:
            live = repo.live_codes_of(conn, account.account_id, "claim", format_time(now))
            if len(live) >= MAX_LIVE_CODES:
                first = min(parse_time(str(r.expires_at)) for r in live)
                wait = max(1, int((first - now).total_seconds()) + 1)
                raise RateLimitedError(
                    f"{len(live)} codes are waiting; use one or try again in {wait} s",
                    retry_after=wait,
                    code="claim.too_many",
                )
            learner = rr.learner_by_lookup(conn, key)
            target = None
            if (
                learner is not None
                and learner.erased_at is None
                and _same_name(name, learner.name, learner.name_latin)
                and repo.account_by_learner(conn, str(learner.learner_id)) is None
            ):
                target = str(learner.learner_id)
            repo.insert_code(
                conn,
                {
                    "code_id": code_id,
                    "account_id": account.account_id,
                    "purpose": "claim",
                    "target": target,
                    "code_hash": self._code_hash(code_id, code),
                    "created_at": format_time(now),
                    "expires_at": format_time(now + CODE_TTL),
                    "attempts": 0,
                    "used_at": None,
                },
            )
        self.sender.send(account.login, code, "claim")
        return code_id

    def finish_claim(self, account: Account, code_id: str, code: str) -> str:
        """Bind the learner the claim matched to the account if ``code`` is right.

        Raises:
            ForbiddenError: ``auth.forbidden`` unless a worker account.
            AuthError: ``claim.failed`` for a wrong, used, expired or exhausted code, or
                details that matched nobody (one answer for all).
            ConflictError: ``account.already_claimed``; ``account.learner_taken``.
            StorageError: if the database is unavailable.
        """
        self._worker(account)
        failed = AuthError(
            "the code is wrong or expired, or the details did not match our records",
            code="claim.failed",
        )
        code = code.strip().replace(" ", "")
        if not CODE_ID_RE.fullmatch(code_id):
            raise failed
        now = self._now()
        with self._tx("read the code") as conn:
            row = repo.code_by_id(conn, code_id)
        if (
            row is None
            or str(row.account_id) != account.account_id
            or row.purpose != "claim"
            or row.used_at is not None
            or parse_time(str(row.expires_at)) <= now
            or int(row.attempts) >= CODE_ATTEMPTS
        ):
            raise failed
        right = hmac.compare_digest(bytes(row.code_hash), self._code_hash(code_id, code))
        if not right or row.target is None:
            with self._tx("count the attempt") as conn:
                repo.count_code_attempt(conn, code_id)
            raise failed
        learner_id = str(row.target)
        try:
            with self.bank.engine.begin() as conn:
                current = repo.account_by_id(conn, account.account_id)
                if current is None or current.learner_id is not None:
                    raise ConflictError(
                        "this account already holds a learner identity",
                        code="account.already_claimed",
                    )
                if not repo.use_code(conn, code_id, format_time(now)):
                    raise failed
                repo.set_learner(conn, account.account_id, learner_id)
        except IntegrityError as e:
            raise ConflictError(
                "another account already holds this learner", code="account.learner_taken"
            ) from e
        except SQLAlchemyError as e:
            raise storage_error(e, "claim the learner") from e
        return learner_id

    @staticmethod
    def _worker(account: Account) -> None:
        who = policy.principal_of_account(account.role, account.institution_id, account.learner_id)
        policy.authorize(
            who, policy.Action.PORTAL_WORKER, message="only a worker account can do this"
        )

    # -- API tokens -------------------------------------------------------------------------
    def _token_subject(self, account: Account) -> str | None:
        if account.role == "worker":
            if account.learner_id is None:
                raise ConflictError(
                    "claim your records first: a token reads them", code="account.not_claimed"
                )
            return account.learner_id
        if account.role == "operator":
            return account.institution_id
        return None

    def create_token(self, account: Account, label: str | None = None) -> MadeToken:
        """A bearer token acting as the account (role per :data:`TOKEN_ROLE`), shown once.

        Raises:
            ConflictError: ``account.not_claimed`` for a worker without a learner identity.
            InvalidInputError: ``token.label`` over 200 characters.
            StorageError: if the database is unavailable.
        """
        subject = self._token_subject(account)
        label = label.strip() if label else None
        if label is not None and (
            len(label) > MAX_TOKEN_LABEL or any(unicodedata.category(c)[0] == "C" for c in label)
        ):
            raise InvalidInputError(
                f"a token label has at most {MAX_TOKEN_LABEL} printable characters",
                code="token.label",
            )
        role = TOKEN_ROLE[account.role]
        token = token_repo.TOKEN_PREFIX + secrets.token_urlsafe(32)
        now = format_time(self._now())
        row = token_repo.StoredToken(
            token_repo.token_digest(token), role, subject, label or None, now, None
        )
        with self._tx("store the token") as conn:
            token_repo.insert_token(conn, row)
            repo.link_token(conn, row.digest, account.account_id)
        return MadeToken(token, row.token_id, role, row.label, now)

    def list_tokens(self, account: Account) -> list[dict[str, Any]]:
        """The account's tokens (never the secrets), oldest first. Raises: StorageError."""
        with self._tx("read tokens") as conn:
            rows = repo.tokens_of_account(conn, account.account_id)
        return [
            {
                "token_id": bytes(r.digest)[:8].hex(),
                "role": str(r.role),
                "label": r.label,
                "created_at": str(r.created_at),
                "revoked_at": r.revoked_at,
            }
            for r in rows
        ]

    def revoke_token(self, account: Account, token_id: str) -> None:
        """Revoke one of the account's own tokens (idempotent).

        Raises:
            NotFoundError: ``token.unknown`` for a token the account did not make (also
                any other account's).
            StorageError: if the database is unavailable.
        """
        unknown = NotFoundError(f"no token {token_id[:16]}", code="token.unknown")
        if not TOKEN_ID_RE.fullmatch(token_id):
            raise unknown
        with self._tx("read tokens") as conn:
            mine = [
                r
                for r in repo.tokens_of_account(conn, account.account_id)
                if bytes(r.digest)[:8].hex() == token_id
            ]
        if not mine:
            raise unknown
        if mine[0].revoked_at is None:
            token_repo.revoke_token(self.bank.engine, token_id, now=format_time(self._now()))

    # -- erasure ----------------------------------------------------------------------------
    def erase_worker(self, account: Account, password: str) -> dict[str, int]:
        """Erase the worker's personal data and delete the account, after the password.

        Erased: the learner's name, Latin name, identity lookup key and commitment salt, the
        names on their records, the stored files of their documents (their status stays
        answerable), every API token and session, and the account. Kept: the signed log
        entries (opaque learner id, record contents, name commitments that can no longer be
        opened, decisions, document issuance), as docs/trust-model.md requires.

        Raises:
            ForbiddenError: ``auth.forbidden`` unless a worker account.
            AuthError: ``auth.bad_credentials`` for a wrong password.
            StorageError: if the database is unavailable.
        """
        self._worker(account)
        with self._tx("read accounts") as conn:
            row = repo.account_by_id(conn, account.account_id)
        if row is None or not self._verify(str(row.password_hash), password):
            raise AuthError("the password is wrong", code="auth.bad_credentials")
        out = {"tokens_revoked": 0, "document_files_erased": 0}
        if row.learner_id is not None:
            out["tokens_revoked"] += institutions.erase(self.bank, str(row.learner_id))
            with self._tx("erase document files") as conn:
                out["document_files_erased"] = documents_repo.erase_files_of_learner(
                    conn, str(row.learner_id)
                )
        with self._tx("delete the account") as conn:
            out["tokens_revoked"] += repo.revoke_tokens_of(
                conn, account.account_id, format_time(self._now())
            )
            repo.delete_account(conn, account.account_id)
        return out


def _same_name(given: str, name: Any, name_latin: Any) -> bool:
    """The name as given matches the learner's name (NFC, surrounding blanks ignored) or
    their Latin name (also case and inner blanks ignored)."""
    g = unicodedata.normalize("NFC", given).strip()
    if isinstance(name, str) and hmac.compare_digest(
        g.encode(), unicodedata.normalize("NFC", name).strip().encode()
    ):
        return True
    if isinstance(name_latin, str):

        def fold(s: str) -> str:
            return " ".join(unicodedata.normalize("NFC", s).casefold().split())

        return hmac.compare_digest(fold(g).encode(), fold(name_latin).encode())
    return False
