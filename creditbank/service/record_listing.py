"""An institution's records by ledger index, and who is entitled to read a private entry.

An institution lists its own records; once it is closed, its custodian lists them too (the
policy's ``INSTITUTION_RECORDS_LIST``, :mod:`creditbank.core.policy`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy.exc import SQLAlchemyError

from creditbank.core import policy
from creditbank.core.entries import PRIVATE_TYPES
from creditbank.core.registry import Registry
from creditbank.errors import InvalidInputError, StorageError
from creditbank.service.bank import Bank
from creditbank.storage import records_repo as rr

#: page size bounds of record listings
DEFAULT_PAGE: Final = 100
MAX_PAGE: Final = 1000


def records_resource(registry: Registry, institution_id: str) -> policy.InstitutionRecords:
    """The policy's view of ``institution_id``'s records: with its custodian once closed."""
    inst = registry.institutions.get(institution_id)
    closed = inst is not None and inst.closed_on is not None
    return policy.InstitutionRecords(institution_id, inst.custodian if closed and inst else None)


def may_list_records(registry: Registry, caller: str, institution_id: str) -> bool:
    """An institution lists its own records; the custodian of a closed one lists its ward's."""
    return policy.allows(
        policy.Principal("institution", caller),
        policy.Action.INSTITUTION_RECORDS_LIST,
        records_resource(registry, institution_id),
    )


@dataclass(frozen=True, slots=True)
class RecordPage:
    records: list[dict[str, Any]]
    next_after: int | None


def list_records(
    bank: Bank, caller: str, institution_id: str, *, after: int = -1, limit: int = DEFAULT_PAGE
) -> RecordPage:
    """One page of the records owned by ``institution_id``, by ledger index after ``after``.

    Raises:
        ForbiddenError: ``auth.wrong_institution`` unless :func:`may_list_records`.
        InvalidInputError: ``request.invalid`` for a limit outside 1..MAX_PAGE.
        StorageError: if the database is unavailable.
    """
    policy.authorize(
        policy.Principal("institution", caller),
        policy.Action.INSTITUTION_RECORDS_LIST,
        records_resource(bank.ledger.registry(), institution_id),
        code="auth.wrong_institution",
        message=f"{caller} may not list the records of {institution_id}",
    )
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInputError(f"limit must be 1..{MAX_PAGE}", code="request.invalid")
    try:
        with bank.engine.connect() as conn:
            rows = rr.records_of_owner(conn, institution_id, after=after, limit=limit)
            revs = rr.revocations_for(conn, {(str(r.owner), str(r.chain_root)) for r in rows})
    except SQLAlchemyError as e:
        raise StorageError(f"cannot read records: {type(e).__name__}") from e
    out = []
    for r in rows:
        rev = revs.get((str(r.owner), str(r.chain_root)))
        out.append(
            {
                "index": int(r.entry_idx),
                "type": str(r.entry_type),
                "record_id": str(r.record_id),
                "owner": str(r.owner),
                "posted_by": str(r.posted_by),
                "learner": str(r.learner_id),
                "kind": str(r.kind),
                "dedup_key": str(r.dedup_key),
                "corrects": r.corrects,
                "chain_root": str(r.chain_root),
                "achieved_on": str(r.achieved_on),
                "posted_at": str(r.posted_at),
                "chain_revoked": rev is not None,
            }
        )
    next_after = out[-1]["index"] if len(out) == limit else None
    return RecordPage(out, next_after)


def entry_institutions(
    registry: Registry, entry_type: str, issuer: str, data: bytes
) -> frozenset[str]:
    """The institutions entitled to read the private entry ``data``
    (:func:`creditbank.core.policy.entitled_institutions`); empty for public entry types."""
    if entry_type not in PRIVATE_TYPES:
        return frozenset()
    try:
        body = json.loads(data).get("body")
    except (ValueError, AttributeError):  # stored bytes are canonical JSON; be safe anyway
        return frozenset({issuer})
    return policy.entitled_institutions(registry, entry_type, issuer, body)


def entry_resource(
    registry: Registry, entry_type: str, issuer: str, subject: str | None, data: bytes
) -> policy.LogEntry:
    """The policy's view of a stored entry (its subject and entitled institutions)."""
    return policy.LogEntry(
        entry_type, subject, entry_institutions(registry, entry_type, issuer, data)
    )


__all__ = [
    "DEFAULT_PAGE",
    "MAX_PAGE",
    "RecordPage",
    "entry_institutions",
    "entry_resource",
    "list_records",
    "may_list_records",
    "records_resource",
]
