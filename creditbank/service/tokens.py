"""API tokens: issue them to institutions, learners and auditors, revoke them, identify a caller.

A token is stored only as its SHA-256 digest (:mod:`creditbank.storage.token_repo`); the
token itself is shown once, when it is made. What a token's holder may do is the
authorization policy's call (:mod:`creditbank.core.policy`), from the token's role and
subject.
"""

from __future__ import annotations

from creditbank.core.policy import Principal
from creditbank.errors import NotFoundError
from creditbank.service.bank import Bank
from creditbank.service.learners import existing_learner
from creditbank.service.records import now_text
from creditbank.service.registry_checks import check_institution_id, require_registered
from creditbank.storage import token_repo
from creditbank.storage.token_repo import StoredToken


def issue_institution_token(
    bank: Bank, institution_id: str, *, label: str | None = None
) -> tuple[str, StoredToken]:
    """A new API token for a registered institution (show it once).

    Raises:
        NotFoundError: ``registry.unknown``.
        StorageError: if the database is unavailable.
    """
    require_registered(bank.ledger.registry(), check_institution_id(institution_id))
    return token_repo.issue_token(
        bank.engine,
        role="institution",
        subject=institution_id,
        now=now_text(bank.clock),
        label=label,
    )


def issue_learner_token(
    bank: Bank, learner_id: str, *, label: str | None = None
) -> tuple[str, StoredToken]:
    """A new API token for a learner (reads that learner's records; show it once).

    Raises:
        InvalidInputError: ``learner.id``.
        NotFoundError: ``learner.unknown``; also for an erased learner (``learner.erased``).
        StorageError: if the database is unavailable.
    """
    row = existing_learner(bank, learner_id)
    if row.erased_at is not None:
        raise NotFoundError(f"learner {learner_id} was erased", code="learner.erased")
    return token_repo.issue_token(
        bank.engine, role="learner", subject=learner_id, now=now_text(bank.clock), label=label
    )


def issue_auditor_token(bank: Bank, *, label: str | None = None) -> tuple[str, StoredToken]:
    """A new auditor token (reads every ledger entry over the API; show it once).

    Raises:
        InvalidInputError: ``token.label`` for a label over 200 characters.
        StorageError: if the database is unavailable.
    """
    return token_repo.issue_token(
        bank.engine, role="auditor", now=now_text(bank.clock), label=label
    )


def revoke_token(bank: Bank, token_id: str) -> StoredToken:
    """Revoke a token by its id (idempotent). Raises: as :func:`token_repo.revoke_token`."""
    return token_repo.revoke_token(bank.engine, token_id, now=now_text(bank.clock))


def principal_of_token(bank: Bank, token: str) -> Principal | None:
    """The principal a bearer token speaks for; None for an unknown or revoked token.

    Raises:
        StorageError: if the database is unavailable.
    """
    row = token_repo.lookup_token(bank.engine, token)
    if row is None:
        return None
    return Principal(row.role, row.subject, row.token_id)


__all__ = [
    "StoredToken",
    "issue_institution_token",
    "issue_learner_token",
    "principal_of_token",
    "revoke_token",
]
