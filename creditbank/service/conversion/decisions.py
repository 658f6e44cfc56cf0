"""Deciding applications: the engine decides, the bank appends one ``conversion.decided``
entry per application.

Each application is decided from the learner's records as the log holds them, the rules in
force at its date and every earlier decision of the learner (rule 0); grants the log's
revocations void are reconciled first. The entry body is built by the pure codec
(:func:`creditbank.core.rules.decision_entries.decision_body`). Over the API an
``Idempotency-Key`` names the application, so a retry answers with the original decision.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from creditbank.core.rules import Application, decide
from creditbank.core.rules.decision_entries import DECIDED, decision_body
from creditbank.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    RuleError,
    StorageError,
)
from creditbank.service.bank import Bank
from creditbank.service.conversion.learners import load_learners
from creditbank.service.conversion.lock import BATCH, append_batches, conversion_lock
from creditbank.service.conversion.projections import ensure_synced, sync
from creditbank.service.conversion.publishing import require_rules
from creditbank.service.conversion.requests import ApplicationRequest, check_request
from creditbank.service.conversion.views import application_view
from creditbank.service.conversion.voids import reconcile_locked
from creditbank.storage import conversion_repo as repo
from creditbank.storage.engine import UNAVAILABLE


@dataclass(frozen=True, slots=True)
class Decided:
    """One decided application: its entry, and whether this call appended it."""

    application_id: str
    learner_id: str
    entry_index: int
    created: bool


def _same(row: Any, req: ApplicationRequest) -> bool:
    return (
        str(row.learner_id) == req.learner_id
        and str(row.app_type) == req.type.value
        and row.program_id == req.program_id
        and row.certificate_type_id == req.certificate_type_id
        and str(row.applied_on) == req.applied_on.isoformat()
    )


def decide_applications(
    bank: Bank, requests: Sequence[ApplicationRequest], *, batch_size: int = BATCH
) -> list[Decided]:
    """Decide applications in the order given (callers give rule-0 order) and append each
    decision as a bank-signed ``conversion.decided`` entry.

    An application whose id was already decided with the same learner, type, target and date
    is answered with its entry (``created=False``), so an import can be re-run.

    Raises:
        InvalidInputError: ``conversion.unknown_program``,
            ``conversion.unknown_certificate_type``, ``conversion.bad_application``,
            ``conversion.future_date``; nothing of the batch is written then.
        NotFoundError: ``learner.unknown``.
        ConflictError: ``conversion.application_conflict`` (the id was used for another
            application).
        RuleError: ``conversion.no_rules``; ``rules.out_of_order`` if an application is not
            later (rule 0) than the learner's last decision.
    """
    with conversion_lock(bank):
        sync(bank)
        ruleset = require_rules(bank)
        today = bank.clock.now().date()
        for req in requests:
            check_request(req, ruleset, today)
        learners = {r.learner_id for r in requests}
        reconcile_locked(bank, learners)
        with bank.engine.connect() as conn:
            known = repo.learner_rows(conn, learners)
            missing = sorted(learners - set(known))
            if missing:
                raise NotFoundError(f"unknown learner {missing[0]}", code="learner.unknown")
            existing = repo.decisions_by_applications(
                conn, [r.application_id for r in requests if r.application_id is not None]
            )
            data = load_learners(conn, learners)
        next_number = bank.ledger.head().size
        results: list[Decided | None] = []
        raws: list[bytes] = []
        fresh: list[tuple[int, str, str]] = []  # (result slot, application id, learner)
        taken: set[str] = set()
        for req in requests:
            app_id = req.application_id
            if app_id is not None:
                row = existing.get(app_id)
                if row is not None:
                    if not _same(row, req):
                        raise ConflictError(
                            f"application {app_id} was decided before for another learner, "
                            "target or date",
                            code="conversion.application_conflict",
                        )
                    results.append(Decided(app_id, req.learner_id, int(row.entry_idx), False))
                    continue
                if app_id in taken:
                    raise InvalidInputError(
                        f"application id {app_id} appears twice", code="conversion.bad_application"
                    )
            else:
                app_id = f"APP-{next_number + len(raws):010d}"
                while app_id in taken or app_id in existing:  # pragma: no cover - defensive
                    app_id += "X"
            taken.add(app_id)
            ld = data[req.learner_id]
            app = Application(
                id=app_id,
                learner_id=req.learner_id,
                type=req.type,
                applied_on=req.applied_on,
                program_id=req.program_id,
                certificate_type_id=req.certificate_type_id,
            )
            decision = decide(app, ld.records, ruleset.book, ruleset.catalog, ld.learner_state())
            ld.state = ld.learner_state().apply(decision)
            raws.append(bank.bank_entry(DECIDED, decision_body(decision, ld, ruleset.entry_index)))
            fresh.append((len(results), app_id, req.learner_id))
            results.append(None)
        outcomes = append_batches(bank, raws, batch_size)
        for (slot, app_id, lid), out in zip(fresh, outcomes, strict=True):
            results[slot] = Decided(app_id, lid, out.index, not out.duplicate)
        if raws:
            sync(bank)
        return [r for r in results if r is not None]


def apply(
    bank: Bank,
    learner_id: str,
    *,
    program_id: str | None = None,
    certificate_type_id: str | None = None,
    on: dt.date | None = None,
) -> dict[str, Any]:
    """Decide one application of a learner now (or on ``on``) and return its view.

    Raises:
        as :func:`decide_applications`.
    """
    day = on if on is not None else bank.clock.now().date()
    (got,) = decide_applications(
        bank,
        [ApplicationRequest(learner_id, day, program_id, certificate_type_id)],
    )
    return application_view(bank, got.application_id)


def idempotent_application_id(learner_id: str, key: str) -> str:
    """The application id an ``Idempotency-Key`` stands for: ``IK-`` + 40 hex digits of
    SHA-256(learner id, key). A retry with the same key names the same application, so it is
    answered with the original decision (the key itself is not stored)."""
    digest = hashlib.sha256(f"{learner_id}\0{key}".encode()).hexdigest()
    return f"IK-{digest[:40]}"


#: reads of a decision just appended are retried this often before giving up (the decision is
#: in the log whatever happens; the answer must say so, not "try again")
VIEW_ATTEMPTS: Final = 5
_TRANSIENT: Final[tuple[type[Exception], ...]] = (StorageError, *UNAVAILABLE)


def _view_after_append(bank: Bank, application_id: str) -> dict[str, Any]:
    """The view of a decision that is already committed, retried on a transient storage error
    (a read never hides a written decision behind a 503 while the database recovers).

    Raises:
        StorageError: only if every attempt failed (the decision stays in the log; a retry
            with the same ``Idempotency-Key`` returns it).
    """
    delay = 0.05
    for attempt in range(VIEW_ATTEMPTS):
        try:
            return application_view(bank, application_id)
        except _TRANSIENT:
            if attempt == VIEW_ATTEMPTS - 1:
                raise
            time.sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")  # pragma: no cover


def submit_application(
    bank: Bank,
    learner_id: str,
    *,
    program_id: str | None = None,
    certificate_type_id: str | None = None,
    idempotency_key: str | None = None,
) -> tuple[dict[str, Any], bool]:
    """A learner's application over the API: ``(view, created)``.

    With ``idempotency_key``, a retry returns the original decision (``created`` false),
    whatever day it is retried on; the same key for another target is refused.

    Raises:
        RuleError: ``conversion.idempotency_key_reused`` (the key named another target);
            else as :func:`decide_applications`.
    """
    app_id = None
    if idempotency_key is not None:
        app_id = idempotent_application_id(learner_id, idempotency_key)
        replay = replay_application(
            bank,
            app_id,
            learner_id,
            program_id=program_id,
            certificate_type_id=certificate_type_id,
        )
        if replay is not None:
            return replay, False
    day = bank.clock.now().date()
    (got,) = decide_applications(
        bank,
        [ApplicationRequest(learner_id, day, program_id, certificate_type_id, app_id)],
    )
    return _view_after_append(bank, got.application_id), got.created


def replay_application(
    bank: Bank,
    application_id: str,
    learner_id: str,
    *,
    program_id: str | None,
    certificate_type_id: str | None,
) -> dict[str, Any] | None:
    """The stored decision of ``application_id`` if that learner already applied with it for
    the same target (None: not decided yet).

    Raises:
        RuleError: ``conversion.idempotency_key_reused`` for another learner's or target's.
    """
    ensure_synced(bank)
    with bank.engine.connect() as conn:
        row = repo.decision_by_application(conn, application_id)
    if row is None:
        return None
    if (
        str(row.learner_id) != learner_id
        or row.program_id != program_id
        or row.certificate_type_id != certificate_type_id
    ):
        raise RuleError(
            "this Idempotency-Key was used for another application; use a new key",
            code="conversion.idempotency_key_reused",
        )
    return application_view(bank, application_id)
