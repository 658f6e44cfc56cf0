"""Reading decisions: application views with explanations, and what-if previews.

A view is the API/CLI shape of a stored decision body (credits as numbers, each grant's
status as of now); a what-if preview decides as the bank would today and records nothing.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any

from creditbank.core.rules import centi_to_number, preview
from creditbank.core.rules.decision_entries import decision_body
from creditbank.errors import NotFoundError
from creditbank.service.bank import Bank
from creditbank.service.conversion.learners import load_learners
from creditbank.service.conversion.projections import ensure_synced
from creditbank.service.conversion.publishing import require_rules
from creditbank.service.conversion.requests import ApplicationRequest, check_request
from creditbank.storage import conversion_repo as repo


def _number(centi: Any) -> int | float | None:
    return None if centi is None else centi_to_number(int(centi))


def _source_view(s: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "record_id": s["record_id"],
        "owner": s["owner"],
        "entry_index": s["entry"],
        "root_record_id": s["root_record_id"],
        "root_entry_index": s["root_entry"],
    }


def body_view(
    body: Mapping[str, Any],
    *,
    entry_index: int | None,
    decided_at: str | None,
    voided: Mapping[tuple[int, int], tuple[str, int]] | None = None,
) -> dict[str, Any]:
    """The API/CLI view of a decision body (credits as numbers, grant status as of now)."""
    grants = []
    for n, g in enumerate(body["grants"]):
        void = (voided or {}).get((entry_index, n)) if entry_index is not None else None
        grants.append(
            {
                "grant_no": n,
                "rule_key": g["rule_key"],
                "rule_version": g["rule_version"],
                "mode": g["mode"],
                "target_course_id": g.get("target_course_id"),
                "credits": _number(g["credits_centi"]),
                "nominal_credits": _number(g["nominal_centi"]),
                "bound_by": g.get("bound_by"),
                "hours_used": _number(g.get("hours_used_centi")),
                "raw_credits": _number(g.get("raw_credits_centi")),
                "sources": [_source_view(s) for s in g["sources"]],
                "status": "voided" if void else "active",
                "voided_at": void[0] if void else None,
                "void_entry_index": void[1] if void else None,
                "explanation_zh": g["explanation_zh"],
                "explanation_en": g["explanation_en"],
            }
        )
    exam = body.get("exam")
    exam_view = None
    if exam is not None:
        exam_view = {
            k: exam[k]
            for k in ("certificate_type_id", "granted", "exam_part", "rule_key", "rule_version")
        }
        exam_view["basis"] = None if exam.get("basis") is None else _source_view(exam["basis"])
    return {
        "application_id": body["application_id"],
        "learner_id": body["learner"],
        "type": body["type"],
        "program_id": body.get("program_id"),
        "certificate_type_id": body.get("certificate_type_id"),
        "applied_on": body["applied_on"],
        "recorded": entry_index is not None,
        "entry_index": entry_index,
        "decided_at": decided_at,
        "rules_entry": body["rules_entry"],
        "reason": body["reason"],
        "credits_granted": _number(body["credits_centi"]),
        "explanation_zh": body["explanation_zh"],
        "explanation_en": body["explanation_en"],
        "grants": grants,
        "rule_notes": [
            {
                "rule_key": n["rule_key"],
                "rule_version": n["rule_version"],
                "mode": n["mode"],
                "reason": n["reason"],
                "bound_by": n.get("bound_by"),
                "records": n["records"],
                "explanation_zh": n["explanation_zh"],
                "explanation_en": n["explanation_en"],
            }
            for n in body["rule_notes"]
        ],
        "record_notes": [dict(n) for n in body["record_notes"]],
        "exam": exam_view,
    }


def application_view(
    bank: Bank, application_id: str, *, learner_id: str | None = None
) -> dict[str, Any]:
    """One decided application with its grants, their status and the explanations.

    With ``learner_id``, another learner's application is reported as unknown.

    Raises:
        NotFoundError: ``conversion.unknown_application``.
    """
    ensure_synced(bank)
    with bank.engine.connect() as conn:
        row = repo.decision_by_application(conn, application_id)
        if row is None or (learner_id is not None and str(row.learner_id) != learner_id):
            raise NotFoundError(
                f"no application {application_id}", code="conversion.unknown_application"
            )
        idx = int(row.entry_idx)
        body = json.loads(repo.entry_data(conn, [idx])[idx])["body"]
        voided = {
            (int(v.decision_idx), int(v.grant_no)): (str(v.voided_at), int(v.entry_idx))
            for v in repo.voids_of_learners(conn, [str(row.learner_id)])
            if int(v.decision_idx) == idx
        }
    return body_view(body, entry_index=idx, decided_at=str(row.decided_at), voided=voided)


def list_applications(bank: Bank, learner_id: str) -> list[dict[str, Any]]:
    """Every decided application of a learner, in decision order, with explanations."""
    ensure_synced(bank)
    with bank.engine.connect() as conn:
        rows = repo.decisions_of_learners(conn, [learner_id])
        data = repo.entry_data(conn, [int(r.entry_idx) for r in rows])
        voided = {
            (int(v.decision_idx), int(v.grant_no)): (str(v.voided_at), int(v.entry_idx))
            for v in repo.voids_of_learners(conn, [learner_id])
        }
    return [
        body_view(
            json.loads(data[int(r.entry_idx)])["body"],
            entry_index=int(r.entry_idx),
            decided_at=str(r.decided_at),
            voided=voided,
        )
        for r in rows
    ]


def what_if(
    bank: Bank,
    learner_id: str,
    *,
    program_id: str | None = None,
    certificate_type_id: str | None = None,
    on: dt.date | None = None,
) -> dict[str, Any]:
    """What an application would get today (or on ``on``), recording nothing.

    Raises:
        InvalidInputError, NotFoundError, RuleError: as
            :func:`~creditbank.service.conversion.decisions.decide_applications`.
    """
    ensure_synced(bank)
    ruleset = require_rules(bank)
    day = on if on is not None else bank.clock.now().date()
    req = ApplicationRequest(learner_id, day, program_id, certificate_type_id, "what-if")
    check_request(req, ruleset, bank.clock.now().date())
    with bank.engine.connect() as conn:
        if not repo.learner_rows(conn, [learner_id]):
            raise NotFoundError(f"unknown learner {learner_id}", code="learner.unknown")
        ld = load_learners(conn, [learner_id])[learner_id]
    decision = preview(
        ld.records,
        ruleset.book,
        ruleset.catalog,
        ld.learner_state(),
        on=day,
        program_id=program_id,
        certificate_type_id=certificate_type_id,
    )
    body = decision_body(decision, ld, ruleset.entry_index)
    return body_view(body, entry_index=None, decided_at=None)
