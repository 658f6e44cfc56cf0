"""FastAPI dependencies: the running bank, the group committer and the caller's identity.

The caller is a :class:`creditbank.core.policy.Principal` (re-exported here with
:data:`ANONYMOUS`); what it may do is decided by :mod:`creditbank.core.policy` alone.

Nothing here is global: everything hangs off ``request.app.state`` set by
:func:`creditbank.api.app.create_app`.
"""

from __future__ import annotations

import threading
from typing import Annotated, Final

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from creditbank.api.errors import UnsupportedMediaTypeError
from creditbank.core.policy import ANONYMOUS, Principal
from creditbank.errors import AuthError, RateLimitedError
from creditbank.service.bank import Bank
from creditbank.service.ledger import GroupCommitter
from creditbank.service.ratelimit import RateLimiter
from creditbank.service.tokens import principal_of_token


def get_bank(request: Request) -> Bank:
    """The bank the app was created with."""
    bank: Bank = request.app.state.bank
    return bank


def get_committer(request: Request) -> GroupCommitter:
    """The app's group committer (started by the lifespan).

    Raises:
        RuntimeError: if the app is used without running its lifespan (a programming error:
            use ``with TestClient(app)``).
    """
    committer: GroupCommitter | None = getattr(request.app.state, "committer", None)
    if committer is None:
        raise RuntimeError("the app's lifespan is not running; no group committer")
    return committer


BankDep = Annotated[Bank, Depends(get_bank)]
CommitterDep = Annotated[GroupCommitter, Depends(get_committer)]


_bearer = HTTPBearer(auto_error=False, description="an auditor, institution or learner token")


def get_principal(
    request: Request,
    bank: BankDep,
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """Identify the caller from ``Authorization: Bearer <token>``; no header is anonymous.

    Raises:
        AuthError: if an Authorization header is present but malformed, or the token is
            unknown or revoked.
    """
    if creds is None:
        if "authorization" in request.headers:
            raise AuthError("Authorization must be 'Bearer <token>'", code="auth.malformed")
        return ANONYMOUS
    principal = principal_of_token(bank, creds.credentials)
    if principal is None:
        raise AuthError("unknown or revoked token", code="auth.bad_token")
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


#: the media types a JSON endpoint accepts (parameters such as ``charset=utf-8`` aside)
JSON_MEDIA_TYPES: Final = frozenset({"application/json"})


def require_json(request: Request) -> None:
    """Refuse a request body that is not declared ``application/json``: a ``text/plain`` or
    ``multipart`` body is never parsed as JSON (415).

    Raises:
        UnsupportedMediaTypeError: ``http.unsupported_media_type``.
    """
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media not in JSON_MEDIA_TYPES:
        shown = media[:64] or "none"
        raise UnsupportedMediaTypeError(
            f"this endpoint takes application/json, not {shown}",
        )


JsonBody = Depends(require_json)


# -- write rate limits ------------------------------------------------------------------------
_LIMITERS_GUARD = threading.Lock()


def _write_limiter(request: Request, bank: Bank, role: str) -> RateLimiter:
    """The app's write limiter of ``role`` (``learner`` or ``institution``), created on first
    use from the bank's settings and kept in ``app.state.write_limiters``."""
    state = request.app.state
    limiters: dict[str, RateLimiter] | None = getattr(state, "write_limiters", None)
    if limiters is None:
        with _LIMITERS_GUARD:
            limiters = getattr(state, "write_limiters", None)
            if limiters is None:
                limiters = state.write_limiters = {}
    limiter = limiters.get(role)
    if limiter is None:
        s = bank.settings
        per_minute, burst = (
            (s.learner_writes_per_minute, s.learner_write_burst)
            if role == "learner"
            else (s.institution_writes_per_minute, s.institution_write_burst)
        )
        with _LIMITERS_GUARD:
            limiter = limiters.setdefault(
                role,
                RateLimiter(
                    rate=per_minute / 60, burst=burst, clock=bank.clock, name=f"{role} writes"
                ),
            )
    return limiter


def limit_writes(request: Request, bank: BankDep, who: PrincipalDep) -> None:
    """Take one write token of the calling learner or institution (other callers are refused
    by the route itself). Limits the rate of writes to the permanent log, never the right: a
    refused write is answered 429 with ``Retry-After`` and writes nothing.

    Raises:
        RateLimitedError: ``rate.limited``.
    """
    if who.role not in ("learner", "institution") or who.subject is None:
        return
    try:
        _write_limiter(request, bank, who.role).check(who.subject)
    except RateLimitedError as e:
        raise RateLimitedError(
            f"too many writes by this {who.role}; try again in {e.retry_after} s",
            retry_after=e.retry_after,
        ) from None


WriteLimit = Depends(limit_writes)

__all__ = [
    "ANONYMOUS",
    "BankDep",
    "CommitterDep",
    "JsonBody",
    "Principal",
    "PrincipalDep",
    "WriteLimit",
    "get_bank",
    "get_committer",
    "get_principal",
    "limit_writes",
    "require_json",
]
