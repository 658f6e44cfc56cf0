"""A learner's records, decisions and voids, read from the log and projections.

The projection rows say which entries to read; the entry bodies are decoded by the pure
codecs of :mod:`creditbank.core.rules.decision_entries`. Also: a learner named by the bank's
id or an imported dataset's.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, Final

from sqlalchemy.engine import Connection

from creditbank.core.rules.decision_entries import (
    DECIDED,
    LearnerData,
    StoredDecision,
    decision_from_body,
    learner_records,
)
from creditbank.errors import NotFoundError
from creditbank.service.bank import Bank
from creditbank.storage import conversion_repo as repo

#: above this many learners, read whole tables in one pass (reports) rather than by IN lists
BULK_LEARNERS: Final = 2000
_LOADED_TYPES: Final = ("record.posted", "record.corrected", DECIDED)


def load_learners(conn: Connection, learner_ids: Iterable[str]) -> dict[str, LearnerData]:
    """Records, decisions and voids of the learners, as the log and projections hold them."""
    ids = sorted(set(learner_ids))
    if len(ids) > BULK_LEARNERS:  # a report: scan the tables once instead of IN lists
        wanted = set(ids)
        rows = [r for r in repo.all_records(conn) if r.learner_id in wanted]
        decisions = [d for d in repo.all_decisions(conn) if d.learner_id in wanted]
        need = {int(r.entry_idx) for r in rows} | {int(d.entry_idx) for d in decisions}
        data = {
            int(e.idx): bytes(e.data)
            for e in repo.entries_of_types(conn, _LOADED_TYPES)
            if int(e.idx) in need
        }
        revocations = repo.all_revocations(conn)
        voids = [v for v in repo.all_voids(conn) if v.learner_id in wanted]
    else:
        rows = repo.records_of_learners(conn, ids)
        decisions = repo.decisions_of_learners(conn, ids)
        data = repo.entry_data(
            conn, [int(r.entry_idx) for r in rows] + [int(d.entry_idx) for d in decisions]
        )
        revocations = repo.revocations_of(conn, {(str(r.owner), str(r.chain_root)) for r in rows})
        voids = repo.voids_of_learners(conn, ids)
    by_learner: dict[str, list[Any]] = {lid: [] for lid in ids}
    for r in rows:
        by_learner[str(r.learner_id)].append(r)
    out: dict[str, LearnerData] = {}
    for lid in ids:
        records, eid_by_entry, ref_by_eid, rev_entry = learner_records(
            lid, by_learner[lid], data, revocations
        )
        out[lid] = LearnerData(lid, records, eid_by_entry, ref_by_eid, revocation_entry=rev_entry)
    for d in decisions:
        ld = out[str(d.learner_id)]
        idx = int(d.entry_idx)
        body = json.loads(data[idx])["body"]
        decision = decision_from_body(body, ld.eid_by_entry)
        ld.decisions.append(StoredDecision(idx, str(d.decided_at), body, decision))
        ld.state = ld.learner_state().apply(decision)
    for v in voids:
        out[str(v.learner_id)].voided[(int(v.decision_idx), int(v.grant_no))] = (
            str(v.voided_at),
            int(v.entry_idx),
        )
    return out


def resolve_learner_ref(bank: Bank, ref: str) -> str:
    """A learner given as the bank's id (``LRN-…``) or as an imported dataset's id.

    Raises:
        NotFoundError: ``learner.unknown`` (or ambiguous across datasets).
    """
    with bank.engine.connect() as conn:
        if repo.learner_rows(conn, [ref]):
            return ref
        rows = repo.learner_by_external_ref(conn, ref)
    if len(rows) == 1:
        return str(rows[0].learner_id)
    detail = "is ambiguous" if rows else "is not a learner id or an imported learner's id"
    raise NotFoundError(f"learner {ref} {detail}", code="learner.unknown")
