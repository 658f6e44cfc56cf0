"""The conversion report: the structure of ``sample/expected.json``.

Credits leave the engine here, converted from centicredits to JSON numbers: an ``int`` when
whole (``3``, never ``3.0``), else the exact two-decimal value (``1.5``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from creditbank.errors import InvalidInputError

from .decision import Decision, Grant
from .engine import passed_courses, void_of
from .model import CENTI, ApplicationType, Catalog, Centi
from .records import LearnerRecords

SEMANTICS = "sample/README.md, section 'Conversion semantics'"
COMPARE_FIELDS = (
    "rule_key, rule_version, outcome_ids, target_course_id, credits, status, voided_at; "
    "grant_id is engine-internal"
)


def centi_to_number(value: Centi) -> int | float:
    """Convert hundredths to the JSON number printed in reports.

    Args:
        value: Hundredths.

    Returns:
        ``int`` when whole, else ``value / 100`` (exact to two decimals in its repr).
    """
    whole, frac = divmod(value, CENTI)
    return whole if frac == 0 else value / CENTI


def grant_label(n: int) -> str:
    """Return the report label of the n-th grant (1-based) in decision order: ``G001``...

    Args:
        n: 1-based position among all grants in decision order.

    Returns:
        The label.
    """
    return f"G{n:03d}"


def build_report(
    as_of: dt.date,
    learner_ids: Sequence[str],
    decisions: Iterable[Decision],
    records: Mapping[str, LearnerRecords],
    catalog: Catalog,
    *,
    include_explanations: bool = False,
) -> dict[str, Any]:
    """Build the conversion report as of a date (``expected.json`` structure).

    Decisions dated after ``as_of`` are left out (they had not happened by then). Grants are
    labelled ``G001``, ``G002``... in decision order over all the decisions given, so a
    report on a subset of learners labels grants as the full report does.

    Args:
        as_of: The report date: grant status, voids and native passes are as of it.
        learner_ids: Learners to report, in output order (``learners.json`` order); a
            learner without decisions gets an empty entry.
        decisions: Decisions of any learners, in any order (others' are only counted for
            the grant labels).
        records: Record index per learner (``RunResult.records``).
        catalog: The catalogue (programme courses for ``native_credits_passed``).
        include_explanations: Add ``explanation_zh``/``explanation_en`` to every grant and
            exam exemption (not part of the oracle's structure).

    Returns:
        A JSON-ready dict.

    Raises:
        InvalidInputError: A reported decision names a programme the catalogue does not have.
    """
    wanted = set(learner_ids)
    ordered = sorted(
        (d for d in decisions if d.decided_on <= as_of), key=lambda d: d.application.order_key
    )
    by_learner: dict[str, list[tuple[Decision, list[str]]]] = {}
    counter = 0
    for decision in ordered:
        labels = []
        for _ in decision.grants:
            counter += 1
            labels.append(grant_label(counter))
        lid = decision.application.learner_id
        if lid in wanted:
            by_learner.setdefault(lid, []).append((decision, labels))

    learners_out: list[dict[str, Any]] = []
    for lid in learner_ids:
        learner_records = records.get(lid) or LearnerRecords.empty(lid)
        learners_out.append(
            _learner(
                lid,
                by_learner.get(lid, []),
                learner_records,
                catalog,
                as_of,
                include_explanations,
            )
        )
    return {
        "as_of": as_of.isoformat(),
        "semantics": SEMANTICS,
        "compare_fields": COMPARE_FIELDS,
        "learners": learners_out,
    }


def _learner(
    lid: str,
    decisions: list[tuple[Decision, list[str]]],
    records: LearnerRecords,
    catalog: Catalog,
    as_of: dt.date,
    explain: bool,
) -> dict[str, Any]:
    applications: list[dict[str, Any]] = []
    active: dict[str, Centi] = {}
    voided: dict[str, Centi] = {}
    exemptions: list[str] = []
    for decision, labels in decisions:
        app = decision.application
        if app.type is ApplicationType.EXAM_EXEMPTION:
            exam = decision.exam
            if exam is None:  # pragma: no cover - the engine always sets it
                raise AssertionError(f"exam decision {app.id} without a result")
            entry: dict[str, Any] = {
                "application_id": app.id,
                "learner_id": lid,
                "certificate_type_id": exam.certificate_type_id,
                "exam_part": exam.exam_part,
                "granted": exam.granted,
                "rule_key": exam.rule_key,
                "rule_version": exam.rule_version,
                "basis_outcome_id": exam.basis_outcome_id,
                "type": app.type.value,
                "applied_on": app.applied_on.isoformat(),
            }
            if explain:
                entry["explanation_zh"] = decision.explanation_zh
                entry["explanation_en"] = decision.explanation_en
            applications.append(entry)
            if exam.granted:
                exemptions.append(f"{exam.certificate_type_id}:{exam.exam_part}")
            continue
        program_id = app.program_id or ""
        active.setdefault(program_id, 0)
        voided.setdefault(program_id, 0)
        grants_out = []
        for grant, label in zip(decision.grants, labels, strict=True):
            out, is_void = _grant(grant, label, records, as_of, explain)
            grants_out.append(out)
            bucket = voided if is_void else active
            bucket[grant.program_id] = bucket.get(grant.program_id, 0) + grant.credits
        applications.append(
            {
                "application_id": app.id,
                "type": app.type.value,
                "program_id": program_id,
                "applied_on": app.applied_on.isoformat(),
                "credits_granted_at_decision": centi_to_number(decision.credits_granted),
                "grants": grants_out,
            }
        )
    per_program = []
    programs = []
    for program_id in sorted(active):
        program = catalog.degree_programs.get(program_id)
        if program is None:
            raise InvalidInputError(
                f"unknown degree programme {program_id}", code="input.unknown_program"
            )
        programs.append(program)
    passed_by_program = passed_courses(records, programs, as_of) if programs else {}
    for program in programs:
        program_id = program.id
        credits = {c.id: c.credits for c in program.courses}
        passed = passed_by_program[program_id]
        per_program.append(
            {
                "program_id": program_id,
                "converted_credits_active": centi_to_number(active[program_id]),
                "converted_credits_voided": centi_to_number(voided.get(program_id, 0)),
                "native_credits_passed": centi_to_number(sum(credits[c] for c in passed)),
            }
        )
    return {
        "learner_id": lid,
        "applications": applications,
        "per_program_as_of": per_program,
        "converted_credits_active_total": centi_to_number(sum(active[p] for p in active)),
        "exam_exemptions_granted": exemptions,
    }


def _grant(
    grant: Grant, label: str, records: LearnerRecords, as_of: dt.date, explain: bool
) -> tuple[dict[str, Any], bool]:
    void = void_of(grant, records, as_of)
    out: dict[str, Any] = {
        "grant_id": label,
        "application_id": grant.application_id,
        "learner_id": grant.learner_id,
        "program_id": grant.program_id,
        "rule_key": grant.rule_key,
        "rule_version": grant.rule_version,
        "outcome_ids": list(grant.outcome_ids),
        "effective_version_ids": list(grant.effective_version_ids),
        "credits": centi_to_number(grant.credits),
        "target_course_id": grant.target_course_id,
        "granted_on": grant.granted_on.isoformat(),
        "status": "voided" if void else "active",
        "voided_at": void.voided_at.isoformat() if void else None,
    }
    if void is not None:
        out["void_reason"] = void.void_reason
    if grant.hours_used is not None:
        out["hours_used"] = centi_to_number(grant.hours_used)
        out["raw_credits"] = centi_to_number(grant.raw_credits or 0)
    if explain:
        out["explanation_zh"] = grant.explanation_zh
        out["explanation_en"] = grant.explanation_en
    return out, void is not None
