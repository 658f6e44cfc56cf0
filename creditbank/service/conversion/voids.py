"""Voids: a revocation voids every active grant that used the chain (rule 10).

Each void is a bank-signed ``conversion.voided`` entry naming the decision entry, the grant
and the revocation entry. :func:`reconcile_voids` posts the voids the log implies and is
idempotent; it runs after records are posted (:func:`after_records_posted`), before every
decision, and in the import.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from typing import Any

from creditbank.core.entries import Entry
from creditbank.core.rules import void_of
from creditbank.core.rules.decision_entries import VOIDED, LearnerData, StoredDecision
from creditbank.service.bank import Bank
from creditbank.service.conversion.learners import load_learners
from creditbank.service.conversion.lock import BATCH, append_batches, conversion_lock
from creditbank.service.conversion.projections import sync
from creditbank.service.ledger import AppendOutcome
from creditbank.service.projection_rows import record_owner
from creditbank.storage import conversion_repo as repo

log = logging.getLogger(__name__)


def reconcile_locked(bank: Bank, learner_ids: Iterable[str] | None, batch_size: int = BATCH) -> int:
    today = bank.clock.now().date()
    with bank.engine.connect() as conn:
        if learner_ids is None:
            ids: set[str] = {str(r.learner_id) for r in repo.all_decisions(conn)}
        else:
            ids = set(learner_ids)
            with_decisions = {str(r.learner_id) for r in repo.decisions_of_learners(conn, ids)}
            ids &= with_decisions
        if not ids:
            return 0
        data = load_learners(conn, ids)
    pending: list[tuple[tuple[int, int, int], dict[str, Any]]] = []
    for ld in data.values():
        for sd in ld.decisions:
            for n, grant in enumerate(sd.decision.grants):
                if (sd.entry_index, n) in ld.voided:
                    continue
                void = void_of(grant, ld.records, today)
                if void is None:
                    continue
                ref = ld.ref_by_eid[void.outcome_id]
                rev_idx = ld.revocation_entry[void.outcome_id]
                body = {
                    "learner": ld.learner_id,
                    "application_id": sd.decision.application.id,
                    "decision_entry": sd.entry_index,
                    "grant_no": n,
                    "rule_key": grant.rule_key,
                    "rule_version": grant.rule_version,
                    "credits_centi": grant.credits,
                    "voided_at": void.voided_at.isoformat(),
                    "revocation_entry": rev_idx,
                    "owner": ref.owner,
                    "record_id": ref.record_id,
                    "reason": void.void_reason,
                }
                pending.append(((rev_idx, sd.entry_index, n), body))
            exam_void = _exam_void(ld, sd)
            if exam_void is not None:
                pending.append(exam_void)
    if not pending:
        return 0
    pending.sort(key=lambda p: p[0])  # in ledger order of the revocations, then grant order
    raws = [bank.bank_entry(VOIDED, body) for _, body in pending]
    outcomes = append_batches(bank, raws, batch_size)
    sync(bank)
    return sum(1 for o in outcomes if not o.duplicate)


def _exam_void(
    ld: LearnerData, sd: StoredDecision
) -> tuple[tuple[int, int, int], dict[str, Any]] | None:
    """The void of a granted exam exemption whose basis record was revoked (issue #8 §4):
    voided like a credit grant, its own ``conversion.voided`` entry with ``exam_exemption``
    set and ``grant_no`` 0 (an exemption decision has no grants), reason and date. The report
    is not affected: it decides exemptions as of their day (docs/conversion.md reading 9)."""
    exam = sd.body.get("exam")
    if not exam or not exam.get("granted") or exam.get("basis") is None or sd.body["grants"]:
        return None
    if (sd.entry_index, 0) in ld.voided:
        return None
    root = ld.eid_by_entry.get(int(exam["basis"]["root_entry"]))
    chain = ld.records.by_root.get(root) if root is not None else None
    if chain is None or chain.root.revoked_at is None or root not in ld.revocation_entry:
        return None
    ref, rev_idx = ld.ref_by_eid[root], ld.revocation_entry[root]
    why = chain.root.revocation_reason or "revoked"
    body = {
        "learner": ld.learner_id,
        "application_id": sd.decision.application.id,
        "decision_entry": sd.entry_index,
        "grant_no": 0,
        "rule_key": exam["rule_key"],
        "rule_version": exam["rule_version"],
        "credits_centi": 0,
        "voided_at": chain.root.revoked_at.isoformat(),
        "revocation_entry": rev_idx,
        "owner": ref.owner,
        "record_id": ref.record_id,
        "reason": f"basis record {ref.record_id} revoked: {why}",
        "exam_exemption": True,
    }
    return (rev_idx, sd.entry_index, 0), body


def reconcile_voids(bank: Bank, learner_ids: Iterable[str] | None = None) -> int:
    """Post a ``conversion.voided`` entry for every grant a recorded revocation voids and that
    has none yet (all learners, or the given ones). Idempotent; returns how many were posted.
    """
    with conversion_lock(bank):
        sync(bank)
        return reconcile_locked(bank, learner_ids)


def on_records_appended(
    bank: Bank, raws: Sequence[bytes | Entry], outcomes: Sequence[AppendOutcome]
) -> int:
    """After record entries were appended: post the voids their revocations imply.

    Returns how many voids were posted (0 without new ``record.revoked`` entries).
    """
    revoked: list[tuple[str, str]] = []  # (owner, record id)
    for raw, out in zip(raws, outcomes, strict=True):
        if out.duplicate:
            continue
        # the entry as posting parsed it, or its stored bytes, admitted by the ledger
        entry: dict[str, Any] = (
            {"type": raw.type, "issuer": raw.issuer, "body": raw.body}
            if isinstance(raw, Entry)
            else json.loads(raw)
        )
        if entry["type"] == "record.revoked":
            body = entry["body"]
            revoked.append((record_owner(str(entry["issuer"]), body), str(body["record_id"])))
    if not revoked:
        return 0
    learners: set[str] = set()
    with bank.engine.connect() as conn:
        for owner, record_id in revoked:
            rows = repo.records_of_owner_ids(conn, owner, [record_id])
            learners.update(str(r.learner_id) for r in rows)
    if not learners:
        return 0
    return reconcile_voids(bank, learners)


def after_records_posted(
    bank: Bank, raws: Sequence[bytes | Entry], outcomes: Sequence[AppendOutcome]
) -> None:
    """The hook run right after a batch of record entries is appended: posts the voids its
    revocations imply. Never raises (the records are already committed): a failure is logged,
    and the voids are posted by the next reconciliation (every decision of the learner
    reconciles first)."""
    try:
        on_records_appended(bank, raws, outcomes)
    except Exception:  # the post succeeded; voids are completed later
        log.exception("posting the voids implied by revocations failed; will retry later")
