"""What accounts are made of: roles, limits, the account and session values, the login,
password and display-name rules, and the senders of one-time codes (docs/portals.md).
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
import unicodedata
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final, Literal, Protocol

from sqlalchemy.exc import SQLAlchemyError

from creditbank.errors import (
    InvalidInputError,
    StorageError,
)

#: the development sender logs under the accounts service's name
log = logging.getLogger("creditbank.service.accounts")

Role = Literal["worker", "operator", "admin"]
ROLES: Final[tuple[Role, ...]] = ("worker", "operator", "admin")
#: the API token role each account role gets
TOKEN_ROLE: Final[dict[str, str]] = {
    "worker": "learner",
    "operator": "institution",
    "admin": "auditor",
}
SESSION_PREFIX: Final = "cbs_"
SESSION_TTL: Final = timedelta(hours=12)
IDLE_TTL: Final = timedelta(minutes=30)
#: a session's last-seen time is written at most this often
TOUCH_EVERY: Final = timedelta(minutes=1)
CODE_TTL: Final = timedelta(minutes=10)
CODE_DIGITS: Final = 6
#: wrong tries a one-time code takes before it is dead
CODE_ATTEMPTS: Final = 5
#: live claim codes an account may hold at once
MAX_LIVE_CODES: Final = 3
LOCK_AFTER: Final = 5
LOCK_FIRST: Final = 60
LOCK_MAX: Final = 15 * 60
MIN_PASSWORD: Final = 10
MAX_PASSWORD: Final = 256
MAX_DISPLAY_NAME: Final = 100
MAX_TOKEN_LABEL: Final = 200
_CROCKFORD: Final = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_EMAIL_RE: Final = re.compile(r"[^@\s]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}\.)+[A-Za-z]{2,63}")
_PHONE_RE: Final = re.compile(r"\+?[0-9]{6,15}")
CODE_ID_RE: Final = re.compile(r"OTC-[0-9A-Z]{26}")
TOKEN_ID_RE: Final = re.compile(r"[0-9a-f]{16}")


# -- sending one-time codes -------------------------------------------------------------------
class CodeSender(Protocol):
    """Delivers a one-time code to an email address or phone number."""

    def send(self, to: str, code: str, purpose: str) -> None:
        """Send ``code`` to ``to``.

        Raises:
            StorageError: if the message cannot be handed over (the code is then unusable).
        """
        ...


class LoggingSender:
    """Development mode: writes the code to the server log (never use in production)."""

    def send(self, to: str, code: str, purpose: str) -> None:
        """Log ``code`` at WARNING on ``creditbank.service.accounts``."""
        log.warning("one-time %s code for %s: %s (development sender)", purpose, to, code)


class OutboxSender:
    """Keeps sent codes in memory, newest last (demos and tests read them back)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, str]] = []

    def send(self, to: str, code: str, purpose: str) -> None:
        """Append ``(to, code, purpose)`` to :attr:`sent`."""
        self.sent.append((to, code, purpose))

    def last_code(self, to: str) -> str | None:
        """The newest code sent to ``to`` (None if none)."""
        for dest, code, _ in reversed(self.sent):
            if dest == to:
                return code
        return None


# -- values -----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Account:
    """A person's account as pages and the API see it (no secrets)."""

    account_id: str
    role: str
    login: str
    display_name: str | None
    institution_id: str | None
    learner_id: str | None
    created_at: str

    @property
    def label(self) -> str:
        """What a page calls the person: their display name, else their login."""
        return self.display_name or self.login


@dataclass(frozen=True, slots=True)
class SignedIn:
    """A new session: ``token`` is the cookie value (shown once, stored hashed)."""

    token: str
    account: Account
    expires_at: str


@dataclass(frozen=True, slots=True)
class MadeToken:
    """A new API token: ``token`` is shown once."""

    token: str
    token_id: str
    role: str
    label: str | None
    created_at: str


def account_of(row: Any) -> Account:
    return Account(
        str(row.account_id),
        str(row.role),
        str(row.login),
        row.display_name,
        row.institution_id,
        row.learner_id,
        str(row.created_at),
    )


def normalize_login(login: str) -> str:
    """An email address (lower-cased) or a phone number (digits, optional leading ``+``;
    spaces, dots, hyphens and brackets dropped).

    Raises:
        InvalidInputError: ``account.login`` for anything else.
    """
    text = unicodedata.normalize("NFKC", login).strip()
    if "@" in text:
        if len(text) <= 254 and _EMAIL_RE.fullmatch(text):
            return text.lower()
    else:
        phone = re.sub(r"[\s.()\-]", "", text)
        if _PHONE_RE.fullmatch(phone):
            return phone
    raise InvalidInputError(
        "give an email address or a phone number (6 to 15 digits)", code="account.login"
    )


def check_password(password: str) -> str:
    """Raises: InvalidInputError ``account.password`` unless 10 to 256 characters."""
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise InvalidInputError(
            f"a password has {MIN_PASSWORD} to {MAX_PASSWORD} characters",
            code="account.password",
        )
    return password


def display_name_of(name: str | None) -> str | None:
    if name is None or not name.strip():
        return None
    name = unicodedata.normalize("NFC", name.strip())
    if len(name) > MAX_DISPLAY_NAME or any(unicodedata.category(c)[0] == "C" for c in name):
        raise InvalidInputError(
            f"a display name has at most {MAX_DISPLAY_NAME} printable characters",
            code="account.display_name",
        )
    return name


def new_id(prefix: str) -> str:
    n = secrets.randbits(130)
    return prefix + "".join(_CROCKFORD[(n >> (5 * i)) & 31] for i in range(26))


def token_digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


def storage_error(e: SQLAlchemyError, what: str) -> StorageError:
    return StorageError(f"cannot {what}: {type(e).__name__}")


class RowView:
    """Attribute access over a dict (an account row built before it is read back)."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.__dict__.update(values)
