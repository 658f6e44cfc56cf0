"""The wire format of the ``conversion.decided`` entry, and the engine's records read from
the log.

Pure: an engine :class:`~creditbank.core.rules.Decision` to the entry body
(:func:`decision_body`, shortened to fit one entry) and back (:func:`decision_from_body`);
a learner's record projection rows and entry bytes to engine records
(:func:`learner_records`, with :func:`engine_payload` for a v1 record payload). The bank
service reads the rows and bytes (:mod:`creditbank.service.conversion.learners`) and appends
the bodies (:mod:`creditbank.service.conversion.decisions`); docs/conversion-service.md §1
shows an entry.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from creditbank.core.canonical import canonicalize
from creditbank.core.entries import MAX_ENTRY_SIZE
from creditbank.errors import RuleError

from .decision import (
    Cap,
    Decision,
    ExamResult,
    Grant,
    LearnerState,
    Reason,
    RecordIssue,
)
from .model import (
    AcademicCredit,
    Application,
    ApplicationType,
    CompetitionAward,
    Payload,
    Record,
    SkillCertificate,
    TrainingHours,
    WorkExperience,
)
from .publication import RULES_PUBLISHED, _opt
from .records import LearnerRecords

DECIDED: Final = "conversion.decided"
VOIDED: Final = "conversion.voided"
#: the bank-authored conversion entry types (each has a projection row)
CONVERSION_TYPES: Final = frozenset({RULES_PUBLISHED, DECIDED, VOIDED})
#: largest canonical body written (the whole entry is limited to MAX_ENTRY_SIZE)
BODY_BUDGET: Final = MAX_ENTRY_SIZE - 4096
#: longest explanation kept in a decision entry when it must be shortened to fit
SHORT_TEXT: Final = 600


# -- the learner's records, as the engine sees them -------------------------------------------
@dataclass(frozen=True, slots=True)
class RecordRef:
    """Where one record version sits: its owner, record id, entry and its chain root's entry."""

    owner: str
    record_id: str
    entry_index: int
    root_entry_index: int


@dataclass(frozen=True, slots=True, eq=False)
class StoredDecision:
    """A ``conversion.decided`` entry read back, with the engine's view of it."""

    entry_index: int
    at: str
    body: Mapping[str, Any]
    decision: Decision


@dataclass(eq=False)
class LearnerData:
    """Everything the engine needs about one learner, read from the log and projections.

    Engine record ids are the institutions' record ids; a record id that another owner
    already used for this learner gets ``@<owner>`` appended (stable: the first keeps it).
    """

    learner_id: str
    records: LearnerRecords
    eid_by_entry: dict[int, str]
    ref_by_eid: dict[str, RecordRef]
    decisions: list[StoredDecision] = field(default_factory=list)
    state: LearnerState | None = None
    #: (decision entry, grant no) -> (voided_at, void entry)
    voided: dict[tuple[int, int], tuple[str, int]] = field(default_factory=dict)
    #: engine root id -> index of its record.revoked entry
    revocation_entry: dict[str, int] = field(default_factory=dict)

    def learner_state(self) -> LearnerState:
        return self.state if self.state is not None else LearnerState(self.learner_id)


_DATES: dict[str, dt.date] = {}


def _date(text: str) -> dt.date:
    found = _DATES.get(text)
    if found is None:
        found = dt.date.fromisoformat(text)
        if len(_DATES) < 100_000:
            _DATES[text] = found
    return found


def _opt_date(text: Any) -> dt.date | None:
    return None if text is None else _date(str(text))


def engine_payload(kind: str, p: Mapping[str, Any]) -> Payload:
    """The engine payload of a v1 record payload (credits, grades, hours in hundredths)."""
    if kind == "academic_credit":
        return AcademicCredit(
            course_id=str(p["course_id"]),
            credits=int(p.get("credits_centi") or 0),
            grade=int(p["grade"]) * 100,
            term=p.get("term"),
        )
    if kind == "skill_certificate":
        return SkillCertificate(
            certificate_type_id=str(p["certificate_type_id"]),
            certificate_no=p.get("certificate_no"),
            expires_on=_opt_date(p.get("expires_on")),
        )
    if kind == "training_hours":
        return TrainingHours(
            training_program_id=str(p["training_program_id"]),
            hours=int(p["hours"]) * 100,
            cohort=p.get("cohort"),
        )
    if kind == "competition_award":
        return CompetitionAward(
            competition=str(p.get("competition") or ""),
            tier=str(p["tier"]),
            rank=int(p["rank"]),
            field=str(p.get("field") or ""),
        )
    return WorkExperience(
        occupation_key=str(p["occupation_key"]),
        duration_months=int(p["duration_months"]),
        employer=p.get("employer"),
        start_on=_opt_date(p.get("start_on")),
        end_on=_opt_date(p.get("end_on")),
        verified_by=p.get("verified_by"),
    )


def learner_records(
    learner_id: str,
    rows: Sequence[Any],
    data: Mapping[int, bytes],
    revocations: Mapping[tuple[str, str], Any],
) -> tuple[LearnerRecords, dict[int, str], dict[str, RecordRef], dict[str, int]]:
    """Engine records of one learner from record projection rows (in ledger order)."""
    used: set[str] = set()
    eid_of: dict[tuple[str, str], str] = {}
    idx_of: dict[tuple[str, str], int] = {}
    eid_by_entry: dict[int, str] = {}
    ref_by_eid: dict[str, RecordRef] = {}
    rev_entry: dict[str, int] = {}
    records: list[Record] = []
    for r in rows:
        owner, rid, idx = str(r.owner), str(r.record_id), int(r.entry_idx)
        eid = rid if rid not in used else f"{rid}@{owner}"
        while eid in used:  # pragma: no cover - a third owner with the same record id
            eid = f"{eid}#{idx}"
        used.add(eid)
        eid_of[(owner, rid)] = eid
        idx_of[(owner, rid)] = idx
        eid_by_entry[idx] = eid
        root_key = (owner, str(r.chain_root))
        ref_by_eid[eid] = RecordRef(owner, rid, idx, idx_of.get(root_key, idx))
        body = json.loads(data[idx])["body"]
        revoked_at: dt.date | None = None
        reason: str | None = None
        if rid == str(r.chain_root):
            rev = revocations.get(root_key)
            if rev is not None:
                revoked_at, reason = _date(str(rev.effective_on)), str(rev.reason)
                rev_entry[eid] = int(rev.entry_idx)
        corrects = body.get("corrects")
        records.append(
            Record(
                id=eid,
                learner_id=learner_id,
                issuer_id=str(body.get("claimed_issuer") or owner),
                achieved_on=_date(str(r.achieved_on)),
                posted_at=_date(str(r.posted_at)),
                payload=engine_payload(str(body["kind"]), body["payload"]),
                dedup_key=str(body["dedup_key"]),
                corrects=None if corrects is None else eid_of.get((owner, str(corrects))),
                revoked_at=revoked_at,
                revocation_reason=reason,
                posted_by=str(r.posted_by),
            )
        )
    return LearnerRecords.build(learner_id, records), eid_by_entry, ref_by_eid, rev_entry


def decision_from_body(body: Mapping[str, Any], eid_by_entry: Mapping[int, str]) -> Decision:
    """The engine's view of a stored decision (grants and exam result; notes stay in JSON)."""
    learner = str(body["learner"])
    day = _date(str(body["applied_on"]))
    app = Application(
        id=str(body["application_id"]),
        learner_id=learner,
        type=ApplicationType(body["type"]),
        applied_on=day,
        program_id=body.get("program_id"),
        certificate_type_id=body.get("certificate_type_id"),
    )

    def eid(source: Mapping[str, Any], key: str, fallback: str) -> str:
        return eid_by_entry.get(int(source[key]), str(source[fallback]))

    grants = tuple(
        Grant(
            application_id=app.id,
            learner_id=learner,
            program_id=str(body.get("program_id") or ""),
            index=n,
            rule_key=str(g["rule_key"]),
            rule_version=int(g["rule_version"]),
            mode=str(g["mode"]),
            outcome_ids=tuple(eid(s, "root_entry", "root_record_id") for s in g["sources"]),
            effective_version_ids=tuple(eid(s, "entry", "record_id") for s in g["sources"]),
            target_course_id=g.get("target_course_id"),
            credits=int(g["credits_centi"]),
            granted_on=day,
            nominal_credits=int(g["nominal_centi"]),
            bound_by=Cap(g["bound_by"]) if g.get("bound_by") else None,
            hours_used=g.get("hours_used_centi"),
            raw_credits=g.get("raw_credits_centi"),
            explanation_zh=str(g.get("explanation_zh") or ""),
            explanation_en=str(g.get("explanation_en") or ""),
        )
        for n, g in enumerate(body["grants"])
    )
    exam: ExamResult | None = None
    e = body.get("exam")
    if e is not None:
        basis = e.get("basis")
        exam = ExamResult(
            certificate_type_id=str(e["certificate_type_id"]),
            granted=bool(e["granted"]),
            exam_part=e.get("exam_part"),
            rule_key=e.get("rule_key"),
            rule_version=e.get("rule_version"),
            basis_outcome_id=None if basis is None else eid(basis, "entry", "record_id"),
            basis_root_id=None if basis is None else eid(basis, "root_entry", "root_record_id"),
        )
    return Decision(
        application=app,
        grants=grants,
        rule_notes=(),
        record_notes=(),
        exam=exam,
        reason=Reason(body["reason"]),
        explanation_zh=str(body.get("explanation_zh") or ""),
        explanation_en=str(body.get("explanation_en") or ""),
    )


# -- decision entries -------------------------------------------------------------------------
def _source(ld: LearnerData, root_eid: str, eff_eid: str) -> dict[str, Any]:
    root, eff = ld.ref_by_eid[root_eid], ld.ref_by_eid[eff_eid]
    return {
        "owner": eff.owner,
        "record_id": eff.record_id,
        "entry": eff.entry_index,
        "root_record_id": root.record_id,
        "root_entry": root.entry_index,
    }


def decision_body(decision: Decision, ld: LearnerData, rules_entry: int) -> dict[str, Any]:
    """The ``conversion.decided`` body of an engine decision (no personal data: no names)."""
    app = decision.application
    body: dict[str, Any] = {
        "application_id": app.id,
        "learner": app.learner_id,
        "type": app.type.value,
        "applied_on": app.applied_on.isoformat(),
        "rules_entry": rules_entry,
        "reason": decision.reason.value,
        "credits_centi": decision.credits_granted,
        "explanation_zh": decision.explanation_zh,
        "explanation_en": decision.explanation_en,
    }
    _opt(body, "program_id", app.program_id)
    _opt(body, "certificate_type_id", app.certificate_type_id)
    grants = []
    for g in decision.grants:
        out: dict[str, Any] = {
            "rule_key": g.rule_key,
            "rule_version": g.rule_version,
            "mode": g.mode,
            "credits_centi": g.credits,
            "nominal_centi": g.nominal_credits,
            "sources": [
                _source(ld, oid, vid)
                for oid, vid in zip(g.outcome_ids, g.effective_version_ids, strict=True)
            ],
            "explanation_zh": g.explanation_zh,
            "explanation_en": g.explanation_en,
        }
        _opt(out, "target_course_id", g.target_course_id)
        _opt(out, "bound_by", g.bound_by.value if g.bound_by else None)
        _opt(out, "hours_used_centi", g.hours_used)
        _opt(out, "raw_credits_centi", g.raw_credits)
        grants.append(out)
    body["grants"] = grants
    notes = []
    for n in decision.rule_notes:
        note: dict[str, Any] = {
            "rule_key": n.rule_key,
            "rule_version": n.rule_version,
            "mode": n.mode,
            "reason": n.reason.value,
            "records": list(n.outcome_ids),
            "explanation_zh": n.explanation_zh,
            "explanation_en": n.explanation_en,
        }
        _opt(note, "bound_by", n.bound_by.value if n.bound_by else None)
        notes.append(note)
    body["rule_notes"] = notes
    body["record_notes"] = [
        {
            "record": n.outcome_id,
            "version": n.version_id,
            "issue": n.issue.value,
            "related": n.related_id,
            "explanation_zh": n.explanation_zh,
            "explanation_en": n.explanation_en,
        }
        for n in decision.record_notes
        if n.issue is not RecordIssue.NAME_DIFFERS  # names are personal data: never logged
    ]
    if decision.exam is not None:
        e = decision.exam
        exam: dict[str, Any] = {
            "certificate_type_id": e.certificate_type_id,
            "granted": e.granted,
            "exam_part": e.exam_part,
            "rule_key": e.rule_key,
            "rule_version": e.rule_version,
            "basis": None,
        }
        if e.basis_root_id is not None and e.basis_outcome_id is not None:
            exam["basis"] = _source(ld, e.basis_root_id, e.basis_outcome_id)
        body["exam"] = exam
    return _fit(body)


def _shorten(items: list[dict[str, Any]], limit: int) -> None:
    for item in items:
        for key in ("explanation_zh", "explanation_en"):
            text = item.get(key)
            if isinstance(text, str) and len(text) > limit:
                item[key] = text[: limit - 1] + "…"


def _fit(body: dict[str, Any]) -> dict[str, Any]:
    """Shorten the notes of a decision that would not fit in one entry.

    Raises:
        RuleError: ``conversion.too_large`` if even the grants alone do not fit.
    """
    if len(canonicalize(body)) <= BODY_BUDGET:
        return body
    _shorten(body["record_notes"], SHORT_TEXT)
    _shorten(body["rule_notes"], SHORT_TEXT)
    if len(canonicalize(body)) <= BODY_BUDGET:
        return body
    body["record_notes"] = []
    _shorten(body["rule_notes"], 160)
    _shorten(body["grants"], SHORT_TEXT)
    if len(canonicalize(body)) <= BODY_BUDGET:
        return body
    raise RuleError(
        f"decision on {body['application_id']} is too large for one ledger entry",
        code="conversion.too_large",
    )


__all__ = [
    "BODY_BUDGET",
    "CONVERSION_TYPES",
    "DECIDED",
    "VOIDED",
    "LearnerData",
    "RecordRef",
    "StoredDecision",
    "decision_body",
    "decision_from_body",
    "engine_payload",
    "learner_records",
]
