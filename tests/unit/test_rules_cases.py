"""One named test per category of the sample README's "Tricky-case index", on small
hand-made datasets over the sample catalogue and rules.

Each docstring states the reasoning, citing the README's rule numbers (0-13). The sample
rules used most (see ``creditbank/data/sample/conversion_rules.json``):

* P-COL-ELEC (cap 12, pool 8): R04 C-ELE-01 (4 cr) for electrician level >= 3; R05 C-ELE-04
  (2 cr) for CT-SAFE-LV; R12 C-ELE-03 (3 cr) for robot 1+X >= 2 within 3 years; R06 elective
  4/record for electrical/automation level >= 2, max 2 records, 6 credits.
* P-OU-LOG (cap 12, pool 8): R01 C-LOG-02 (4 cr) courier >= 2 (v1) / >= 3 (v2 from
  2025-07-01); R10 C-LOG-05 (2 cr) 36+ months logistics work; R02 elective 2/record for
  logistics certificates within 5 years, max 2 records, 4 credits; R03 logistics hours,
  16 h/credit (v1) / 18 h/credit (v2), max 6.
* P-OU-MECH (cap 10, pool 6): R07 C-MEC-01 (4 cr) for VS-EL-101/C-ELE-01 grade >= 60; R08
  C-MEC-04 (3 cr) welder >= 2; R09 awards by tier (national 6, provincial 4), rank <= 3, max
  6; R13 welding/automation hours 16 h/credit, max 4.
* RR1 waives the theory exam of CT-ELEC-L2 for C-ELE-01/C-MEC-01 >= 70 within 2 years; RR2
  that of CT-COURIER-L2 for C-LOG-02 >= 60 within 2 years.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Sequence
from typing import Any

from sample_data import SAMPLE

from creditbank.core.rules import (
    Application,
    ApplicationType,
    Cap,
    Catalog,
    ConversionRule,
    Decision,
    Learner,
    Reason,
    Record,
    RecordIssue,
    RunResult,
    build_report,
    centi_to_number,
    load_catalog,
    parse_record,
    parse_rule,
    run_all,
    validate_rules,
)


def _json(name: str) -> Any:
    return json.loads((SAMPLE / f"{name}.json").read_text("utf-8"))


CATALOG = load_catalog(_json("institutions"), _json("programs"), _json("certificate_types"))
SAMPLE_RULE_ROWS: list[dict[str, Any]] = _json("conversion_rules")
SAMPLE_RULES = tuple(parse_rule(x) for x in SAMPLE_RULE_ROWS)
LEARNER = Learner("L1", "张三", "Zhang San")


# --- builders ------------------------------------------------------------------------------
def _record(
    rid: str,
    kind: str,
    payload: dict[str, Any],
    *,
    achieved: str,
    issuer: str,
    learner: str = "L1",
    posted: str | None = None,
    dedup: str | None = None,
    corrects: str | None = None,
    revoked: str | None = None,
    name: str = "张三",
    posted_by: str | None = None,
) -> Record:
    achieved_on = dt.date.fromisoformat(achieved)
    posted_at = posted or (achieved_on + dt.timedelta(days=5)).isoformat()
    return parse_record(
        {
            "id": rid,
            "learner_id": learner,
            "kind": kind,
            "issuer_id": issuer,
            "achieved_on": achieved,
            "posted_at": posted_at,
            "posted_by": posted_by or issuer,
            "dedup_key": dedup if dedup is not None else f"k:{rid}",
            "corrects": corrects,
            "revoked_at": revoked,
            "revocation_reason": "withdrawn" if revoked else None,
            "name_on_record": name,
            "payload": payload,
        }
    )


def cert(rid: str, type_id: str, achieved: str, *, expires: str | None = None, **kw: Any) -> Record:
    kw.setdefault("issuer", "INS-TC")
    payload = {"certificate_type_id": type_id, "certificate_no": rid, "expires_on": expires}
    return _record(rid, "skill_certificate", payload, achieved=achieved, **kw)


def course(rid: str, course_id: str, grade: int, achieved: str, **kw: Any) -> Record:
    kw.setdefault("issuer", "INS-OU")
    payload = {"course_id": course_id, "credits": 3, "grade": grade, "term": "T"}
    return _record(rid, "academic_credit", payload, achieved=achieved, **kw)


def hours(rid: str, program_id: str, h: int, achieved: str, **kw: Any) -> Record:
    kw.setdefault("issuer", CATALOG.training_programs[program_id].institution_id)
    payload = {"training_program_id": program_id, "hours": h, "cohort": "c"}
    return _record(rid, "training_hours", payload, achieved=achieved, **kw)


def award(rid: str, tier: str, rank: int, field: str, achieved: str, **kw: Any) -> Record:
    kw.setdefault("issuer", "EXT-CONTEST")
    payload = {"competition": "contest", "tier": tier, "rank": rank, "field": field}
    return _record(rid, "competition_award", payload, achieved=achieved, **kw)


def work(rid: str, occupation: str, months: int, achieved: str, **kw: Any) -> Record:
    kw.setdefault("issuer", "INS-EU")
    payload = {
        "occupation_key": occupation,
        "employer": "e",
        "start_on": "2015-01-01",
        "end_on": achieved,
        "duration_months": months,
        "verified_by": "INS-EU",
    }
    return _record(rid, "work_experience", payload, achieved=achieved, **kw)


def apply(aid: str, program_id: str, on: str, learner: str = "L1") -> Application:
    return Application(
        aid, learner, ApplicationType.CREDIT_CONVERSION, dt.date.fromisoformat(on), program_id
    )


def ask_exam(aid: str, certificate_type_id: str, on: str, learner: str = "L1") -> Application:
    return Application(
        aid,
        learner,
        ApplicationType.EXAM_EXEMPTION,
        dt.date.fromisoformat(on),
        certificate_type_id=certificate_type_id,
    )


def rule_row(rule_key: str, base_version: int = 1, **changes: Any) -> dict[str, Any]:
    """A copy of a sample rule row with top-level (or ``caps``/``source``) changes."""
    base = next(
        r for r in SAMPLE_RULE_ROWS if r["rule_key"] == rule_key and r["version"] == base_version
    )
    row = json.loads(json.dumps(base))
    for key, value in changes.items():
        if key in ("caps", "source", "target"):
            row[key].update(value)
        else:
            row[key] = value
    return row


def rules_with(*rows: dict[str, Any], drop: Sequence[str] = ()) -> tuple[ConversionRule, ...]:
    """The sample rules with some rule keys replaced or added (all versions of a key)."""
    replaced = {r["rule_key"] for r in rows} | set(drop)
    kept = [r for r in SAMPLE_RULES if r.rule_key not in replaced]
    return (*kept, *(parse_rule(r) for r in rows))


def decide_all(
    records: Sequence[Record],
    applications: Sequence[Application],
    *,
    rules: Sequence[ConversionRule] = SAMPLE_RULES,
    catalog: Catalog = CATALOG,
) -> RunResult:
    book = validate_rules(rules, catalog)
    learners = {lid: Learner(lid, LEARNER.name_zh, LEARNER.name_latin) for lid in ("L1", "L2")}
    return run_all(applications, records, book, catalog, learners=learners)


def decision(run: RunResult, aid: str) -> Decision:
    return next(d for d in run.decisions if d.application.id == aid)


Row = tuple[str, int, tuple[str, ...], str | None, int | float]


def grants(run: RunResult, aid: str) -> list[Row]:
    """(rule_key, rule_version, outcome_ids, target_course_id, credits) of an application."""
    return [
        (g.rule_key, g.rule_version, g.outcome_ids, g.target_course_id, centi_to_number(g.credits))
        for g in decision(run, aid).grants
    ]


def note(run: RunResult, aid: str, rule_key: str) -> Reason:
    return next(n.reason for n in decision(run, aid).rule_notes if n.rule_key == rule_key)


def report(run: RunResult, as_of: str, learners: Sequence[str] = ("L1",)) -> dict[str, Any]:
    return build_report(
        dt.date.fromisoformat(as_of), list(learners), run.decisions, run.records, CATALOG
    )


def report_grants(run: RunResult, as_of: str, learner: str = "L1") -> list[dict[str, Any]]:
    entry = next(x for x in report(run, as_of, (learner,))["learners"])
    return [g for a in entry["applications"] for g in a.get("grants", [])]


# --- expired certificate, and the last day still valid -------------------------------------
def test_expired_certificate_does_not_convert() -> None:
    """L06. A certificate is valid only while D <= expires_on (rule 3). The permit expired on
    2025-02-28; on 2025-05-10 it is invalid, so R05 has no candidate and R06 never matches an
    unlevelled permit (min_level is set). Nothing is granted, and the record note says why."""
    run = decide_all(
        [cert("C1", "CT-SAFE-LV", "2019-03-01", expires="2025-02-28")],
        [apply("A1", "P-COL-ELEC", "2025-05-10")],
    )
    assert grants(run, "A1") == []
    assert note(run, "A1", "R05") is Reason.NO_CANDIDATE
    issues = {n.issue for n in decision(run, "A1").record_notes if n.outcome_id == "C1"}
    assert RecordIssue.EXPIRED in issues
    r05 = next(n for n in decision(run, "A1").rule_notes if n.rule_key == "R05")
    assert "expired on 2025-02-28" in r05.explanation_en


def test_certificate_valid_on_its_expiry_day() -> None:
    """L07. "The last day is valid": on D = expires_on the permit still converts (R05, 2
    credits). A learner applying the next day gets nothing. Expiry after the grant does not
    void it (rule 10): the grant is still active at the end of the year."""
    run = decide_all(
        [
            cert("C1", "CT-SAFE-LV", "2019-07-01", expires="2025-06-30"),
            cert("C2", "CT-SAFE-LV", "2019-07-01", expires="2025-06-30", learner="L2"),
        ],
        [apply("A1", "P-COL-ELEC", "2025-06-30"), apply("A2", "P-COL-ELEC", "2025-07-01", "L2")],
    )
    assert grants(run, "A1") == [("R05", 1, ("C1",), "C-ELE-04", 2)]
    assert grants(run, "A2") == []
    assert report_grants(run, "2025-12-31")[0]["status"] == "active"


# --- revoked record ------------------------------------------------------------------------
def test_revoked_before_application_never_counts() -> None:
    """L08. A record revoked on or before D is invalid (rule 3). Rule 4 then hands the welder
    occupation to the next-highest valid certificate, so R08 exempts C-MEC-04 with the
    level-2 certificate. Before the revocation, the level-3 one is the top and converts."""
    records = [
        cert("W2", "CT-WELD-L2", "2022-05-18", issuer="INS-CA"),
        cert("W3", "CT-WELD-L3", "2024-06-01", issuer="INS-CA", revoked="2025-07-20"),
    ]
    late = decide_all(records, [apply("A1", "P-OU-MECH", "2025-10-12")])
    assert grants(late, "A1") == [("R08", 1, ("W2",), "C-MEC-04", 3)]
    early = decide_all(records, [apply("A1", "P-OU-MECH", "2025-07-19")])
    assert grants(early, "A1") == [("R08", 1, ("W3",), "C-MEC-04", 3)]
    on_the_day = decide_all(records, [apply("A1", "P-OU-MECH", "2025-07-20")])
    assert grants(on_the_day, "A1") == [("R08", 1, ("W2",), "C-MEC-04", 3)]


def test_revoked_after_grant_is_voided_from_revoked_at() -> None:
    """L09. Revocation after the grant voids it with voided_at = revoked_at; the grant is
    kept, with status "voided" from that day on (rule 10). Freed room is not refilled by
    itself: nothing new appears until a later application, which may then exempt the course
    again with another valid certificate."""
    records = [
        cert("E4", "CT-ELEC-L4", "2024-10-10", revoked="2025-08-15"),
        cert("E3", "CT-ELEC-L3", "2025-08-20"),
    ]
    run = decide_all(
        records, [apply("A1", "P-COL-ELEC", "2025-03-01"), apply("A2", "P-COL-ELEC", "2025-09-01")]
    )
    assert grants(run, "A1") == [("R04", 1, ("E4",), "C-ELE-01", 4)]
    assert grants(run, "A2") == [("R04", 1, ("E3",), "C-ELE-01", 4)]
    before = report_grants(run, "2025-08-14")
    assert [(g["status"], g["voided_at"]) for g in before] == [("active", None)]
    after = report_grants(run, "2025-12-31")
    assert [(g["status"], g["voided_at"]) for g in after] == [
        ("voided", "2025-08-15"),
        ("active", None),
    ]
    assert after[0]["void_reason"] == "source record E4 revoked: withdrawn"
    totals = report(run, "2025-12-31")["learners"][0]["per_program_as_of"][0]
    assert (totals["converted_credits_active"], totals["converted_credits_voided"]) == (4, 4)
    only_first = decide_all(records, [apply("A1", "P-COL-ELEC", "2025-03-01")])
    assert len(report_grants(only_first, "2025-12-31")) == 1  # no automatic refill


def test_void_releases_the_other_records_of_the_grant() -> None:
    """Rule 10: "The other records of a voided grant become unconsumed again", and voided_at
    is the earliest revoked_at when several chains of the grant are revoked."""
    records = [
        hours("H1", "T-TC-WAREHOUSE", 32, "2024-06-01", revoked="2025-04-01"),
        hours("H2", "T-TC-WAREHOUSE", 16, "2024-07-01"),
    ]
    run = decide_all(
        records, [apply("A1", "P-OU-LOG", "2025-03-01"), apply("A2", "P-OU-LOG", "2025-05-01")]
    )
    assert grants(run, "A1") == [("R03", 1, ("H1", "H2"), None, 3)]
    assert grants(run, "A2") == [("R03", 1, ("H2",), None, 1)]
    both = [
        hours("H1", "T-TC-WAREHOUSE", 32, "2024-06-01", revoked="2025-04-10"),
        hours("H2", "T-TC-WAREHOUSE", 16, "2024-07-01", revoked="2025-04-01"),
    ]
    run = decide_all(both, [apply("A1", "P-OU-LOG", "2025-03-01")])
    assert report_grants(run, "2025-12-31")[0]["voided_at"] == "2025-04-01"
    assert "H2" in report_grants(run, "2025-12-31")[0]["void_reason"]


# --- corrections ---------------------------------------------------------------------------
def test_correction_raising_a_grade_applies_from_its_posting() -> None:
    """L10. A correction is a new version of the chain; the effective version at D is the
    member with the greatest (posted_at, id) posted by D (rule 1). The grade 55 -> 72
    correction makes VS-EL-101 match R07 (>= 60). outcome_ids name the root and
    effective_version_ids the correction. A correction posted after D is not seen."""
    root = course("V1", "VS-EL-101", 55, "2024-06-28", issuer="INS-VS", posted="2024-07-01")
    fixed = course(
        "V2", "VS-EL-101", 72, "2024-06-28", issuer="INS-VS", posted="2024-07-20", corrects="V1"
    )
    run = decide_all([root, fixed], [apply("A1", "P-OU-MECH", "2025-09-01")])
    assert grants(run, "A1") == [("R07", 1, ("V1",), "C-MEC-01", 4)]
    assert decision(run, "A1").grants[0].effective_version_ids == ("V2",)
    late_fix = dataclasses.replace(fixed, posted_at=dt.date(2025, 10, 1))
    run = decide_all([root, late_fix], [apply("A1", "P-OU-MECH", "2025-09-01")])
    assert grants(run, "A1") == []


def test_correction_lowering_a_level() -> None:
    """L11. The institution corrects level 3 (三级) to level 2 (四级). Read from the
    effective version, the certificate no longer meets R04 (>= 3) but meets R06 (>= 2). The
    grant is a snapshot of the version it used (rule 5)."""
    run = decide_all(
        [
            cert("E1", "CT-ELEC-L3", "2025-01-05", posted="2025-01-10", dedup="e"),
            cert("E2", "CT-ELEC-L2", "2025-01-05", posted="2025-02-01", dedup="e", corrects="E1"),
        ],
        [apply("A1", "P-COL-ELEC", "2025-06-05")],
    )
    assert grants(run, "A1") == [("R06", 1, ("E1",), None, 4)]
    assert decision(run, "A1").grants[0].effective_version_ids == ("E2",)
    assert note(run, "A1", "R04") is Reason.NO_CANDIDATE


def test_later_correction_never_recomputes_a_grant() -> None:
    """Rule 5: later corrections never recompute or void a grant. A level-2 correction posted
    after the R04 grant leaves that grant (and its effective_version_ids) as it was."""
    records = [
        cert("E1", "CT-ELEC-L3", "2025-01-05", dedup="e"),
        cert("E2", "CT-ELEC-L2", "2025-01-05", posted="2025-06-01", dedup="e", corrects="E1"),
    ]
    run = decide_all(records, [apply("A1", "P-COL-ELEC", "2025-03-01")])
    assert grants(run, "A1") == [("R04", 1, ("E1",), "C-ELE-01", 4)]
    assert report_grants(run, "2025-12-31")[0]["effective_version_ids"] == ["E1"]
    assert report_grants(run, "2025-12-31")[0]["status"] == "active"


# --- one outcome, two rules ----------------------------------------------------------------
def test_one_outcome_eligible_for_two_rules_is_counted_once() -> None:
    """L04, L20. The level-3 electrician certificate matches R04 and R06. Rules run by
    (priority, rule_key): R04 (10) consumes it, and a canonical record can be consumed by at
    most one active grant (rule 6), so R06 finds no candidate."""
    run = decide_all(
        [cert("E3", "CT-ELEC-L3", "2024-12-05")], [apply("A1", "P-COL-ELEC", "2025-04-18")]
    )
    assert grants(run, "A1") == [("R04", 1, ("E3",), "C-ELE-01", 4)]
    assert note(run, "A1", "R06") is Reason.NO_CANDIDATE
    r06 = next(n for n in decision(run, "A1").rule_notes if n.rule_key == "R06")
    assert "already used by grant A1/1" in r06.explanation_en


# --- falls through to another rule ---------------------------------------------------------
def test_falls_through_when_course_already_passed_natively() -> None:
    """L05. R04 is skipped because C-ELE-01 is passed natively (valid academic_credit from
    the programme's institution, grade >= 60, rule 7). A rule that grants nothing consumes
    nothing, so the certificate falls through to R06."""
    run = decide_all(
        [
            course("N1", "C-ELE-01", 85, "2024-01-15", issuer="INS-COL"),
            cert("E3", "CT-ELEC-L3", "2023-03-10"),
        ],
        [apply("A1", "P-COL-ELEC", "2025-09-15")],
    )
    assert note(run, "A1", "R04") is Reason.COURSE_PASSED_NATIVELY
    assert grants(run, "A1") == [("R06", 1, ("E3",), None, 4)]


def test_falls_through_when_outside_the_recency_window() -> None:
    """L05. R12 needs the 1+X certificate within 3 years: achieved_on on or after the same
    calendar day 3 years before D. 2021-06-30 is outside on 2025-09-15, so R06 takes it;
    achieved exactly on 2022-09-15 it is inside (the window is inclusive)."""
    out = decide_all(
        [cert("X1", "CT-ROBOT-X-MID", "2021-06-30", issuer="INS-CA")],
        [apply("A1", "P-COL-ELEC", "2025-09-15")],
    )
    assert grants(out, "A1") == [("R06", 1, ("X1",), None, 4)]
    edge = decide_all(
        [cert("X1", "CT-ROBOT-X-MID", "2022-09-15", issuer="INS-CA")],
        [apply("A1", "P-COL-ELEC", "2025-09-15")],
    )
    assert grants(edge, "A1") == [("R12", 1, ("X1",), "C-ELE-03", 3)]


def test_recency_window_from_29_february_starts_on_28_february() -> None:
    """recency_years counted back from 29 February lands on 28 February (README, rule fields)."""
    on = "2024-02-29"
    inside = decide_all(
        [cert("X1", "CT-ROBOT-X-MID", "2021-02-28", issuer="INS-CA")],
        [apply("A1", "P-COL-ELEC", on)],
    )
    assert grants(inside, "A1") == [("R12", 1, ("X1",), "C-ELE-03", 3)]
    outside = decide_all(
        [cert("X1", "CT-ROBOT-X-MID", "2021-02-27", issuer="INS-CA")],
        [apply("A1", "P-COL-ELEC", on)],
    )
    assert grants(outside, "A1") == [("R06", 1, ("X1",), None, 4)]


# --- caps ----------------------------------------------------------------------------------
def test_rule_credit_cap_cuts_an_elective_grant() -> None:
    """L05. R06 gives 4 per record with max_credits 6: the second record gets
    min(4, rule room 2, pool room, programme room) = 2, a partial grant that consumes the
    record whole (rule 8). The grant names the cap that bound it."""
    run = decide_all(
        [
            course("N1", "C-ELE-01", 85, "2024-01-15", issuer="INS-COL"),
            cert("X1", "CT-ROBOT-X-MID", "2021-06-30", issuer="INS-CA"),
            cert("E3", "CT-ELEC-L3", "2023-03-10"),
        ],
        [apply("A1", "P-COL-ELEC", "2025-09-15")],
    )
    assert grants(run, "A1") == [("R06", 1, ("X1",), None, 4), ("R06", 1, ("E3",), None, 2)]
    second = decision(run, "A1").grants[1]
    assert second.bound_by is Cap.MAX_CREDITS
    assert "max_credits 6, 4 already used" in second.explanation_en


def test_rule_credit_cap_clips_hours() -> None:
    """L19. 80 h of welding training at 16 h/credit is 5 raw credits; R13's max_credits 4 clips
    the grant to 4 (rule 9). All summed records are consumed and the uncovered hours are lost."""
    run = decide_all(
        [hours("H1", "T-CA-WELD", 80, "2024-09-01")], [apply("A1", "P-OU-MECH", "2025-03-03")]
    )
    (grant,) = decision(run, "A1").grants
    assert (grant.rule_key, grant.outcome_ids, centi_to_number(grant.credits)) == (
        "R13",
        ("H1",),
        4,
    )
    assert (centi_to_number(grant.hours_used or 0), centi_to_number(grant.raw_credits or 0)) == (
        80,
        5,
    )
    assert grant.bound_by is Cap.MAX_CREDITS
    assert "16 h not converted" in grant.explanation_en


def test_max_outcomes_stops_an_elective_rule() -> None:
    """L16. "Stop when the learner's active grants under the rule_key already hold
    max_outcomes records" (rule 8): with max_outcomes 2 (and a credit cap that does not
    bind), the third logistics certificate is not converted and stays unconsumed."""
    rules = rules_with(rule_row("R02", caps={"max_credits": 20}))
    run = decide_all(
        [
            cert("C1", "CT-COURIER-L1", "2022-08-16", issuer="INS-EU"),
            cert("F1", "CT-FORKLIFT", "2023-05-09", issuer="EXT-SAMR", expires="2027-05-08"),
            cert("W1", "CT-WAREHOUSE-L2", "2024-03-01"),
        ],
        [apply("A1", "P-OU-LOG", "2025-02-14")],
        rules=rules,
    )
    assert grants(run, "A1") == [("R02", 1, ("C1",), None, 2), ("R02", 1, ("F1",), None, 2)]
    r02 = next(n for n in decision(run, "A1").rule_notes if n.rule_key == "R02")
    assert (r02.reason, r02.bound_by) == (Reason.GRANTED_THEN_CAPPED, Cap.MAX_OUTCOMES)


def test_elective_pool_cap_binds() -> None:
    """L23. P-OU-MECH's elective pool is 6. The R08 exemption does not use the pool; R09 uses
    4; R13's 64 h (4 raw credits) get min(4, rule 4, pool 2, programme 3) = 2."""
    run = decide_all(
        [
            cert("W2", "CT-WELD-L2", "2023-01-10", issuer="INS-CA"),
            award("P1", "provincial", 2, "welding", "2024-05-15"),
            hours("H1", "T-CA-WELD", 64, "2024-10-01"),
        ],
        [apply("A1", "P-OU-MECH", "2025-07-15")],
    )
    assert grants(run, "A1") == [
        ("R08", 1, ("W2",), "C-MEC-04", 3),
        ("R09", 1, ("P1",), None, 4),
        ("R13", 1, ("H1",), None, 2),
    ]
    assert decision(run, "A1").grants[2].bound_by is Cap.ELECTIVE_POOL_MAX


def test_programme_cap_clips_an_elective() -> None:
    """L20. P-COL-ELEC's max_converted_credits is 12. Three exemptions use 9, so R06's 4 are
    clipped to the 3 left (rule 8)."""
    run = decide_all(
        [
            cert("E3", "CT-ELEC-L3", "2023-12-01"),
            cert("S1", "CT-SAFE-LV", "2022-03-15", issuer="EXT-SAFETY", expires="2028-03-14"),
            cert("X1", "CT-ROBOT-X-MID", "2024-01-15", issuer="INS-CA"),
            cert("V1", "CT-ELEVATOR-L2", "2024-07-20"),
        ],
        [apply("A1", "P-COL-ELEC", "2025-05-28")],
    )
    assert grants(run, "A1") == [
        ("R04", 1, ("E3",), "C-ELE-01", 4),
        ("R05", 1, ("S1",), "C-ELE-04", 2),
        ("R12", 1, ("X1",), "C-ELE-03", 3),
        ("R06", 1, ("V1",), None, 3),
    ]
    assert decision(run, "A1").grants[3].bound_by is Cap.MAX_CONVERTED_CREDITS


def test_exemption_is_all_or_nothing_and_the_record_falls_through() -> None:
    """Rule 7: if min(programme room, rule room) is below the course's catalogue credits,
    nothing is granted and nothing consumed. Here the programme cap is lowered to 2 (< 3 for
    C-ECM-02): R11 grants nothing and the certificate falls through to an elective rule."""
    program = dataclasses.replace(CATALOG.degree_programs["P-COL-ECOM"], max_converted_credits=200)
    catalog = dataclasses.replace(
        CATALOG, degree_programs={**CATALOG.degree_programs, "P-COL-ECOM": program}
    )
    elective = {
        "rule_key": "RX",
        "version": 1,
        "effective_from": "2023-01-01",
        "effective_to": None,
        "priority": 20,
        "target": {"program_id": "P-COL-ECOM", "mode": "elective_fixed"},
        "source": {"kind": "skill_certificate", "occupations": ["internet_marketer"]},
        "recency_years": None,
        "caps": {},
        "credits_per_outcome": 1,
    }
    run = decide_all(
        [cert("M1", "CT-LIVE-L2", "2024-01-01")],
        [apply("A1", "P-COL-ECOM", "2025-04-10")],
        rules=rules_with(elective),
        catalog=catalog,
    )
    r11 = next(n for n in decision(run, "A1").rule_notes if n.rule_key == "R11")
    assert (r11.reason, r11.bound_by) == (Reason.CAP_BLOCKS_EXEMPTION, Cap.MAX_CONVERTED_CREDITS)
    assert grants(run, "A1") == [("RX", 1, ("M1",), None, 1)]


def test_rule_cap_lowered_below_usage_blocks_without_clawback() -> None:
    """Caps are those of the version in force at D, compared with active grants under all
    versions of the rule_key. R06 v2 lowers max_credits to 2 while the learner already holds
    4 under v1: no further R06 grant, and the v1 grant stays active."""
    v1 = rule_row("R06", effective_to="2025-06-30")
    v2 = rule_row("R06", version=2, effective_from="2025-07-01", caps={"max_credits": 2})
    run = decide_all(
        [cert("V1", "CT-ELEVATOR-L2", "2024-07-20"), cert("R1", "CT-ROBOT-X-MID", "2019-01-01")],
        [apply("A1", "P-COL-ELEC", "2025-03-01"), apply("A2", "P-COL-ELEC", "2025-08-01")],
        rules=rules_with(v1, v2),
    )
    assert grants(run, "A1") == [("R06", 1, ("R1",), None, 4), ("R06", 1, ("V1",), None, 2)]
    assert grants(run, "A2") == []
    run = decide_all(
        [cert("V1", "CT-ELEVATOR-L2", "2024-07-20"), cert("E2", "CT-ELEC-L2", "2025-07-05")],
        [apply("A1", "P-COL-ELEC", "2025-03-01"), apply("A2", "P-COL-ELEC", "2025-08-01")],
        rules=rules_with(v1, v2),
    )
    assert grants(run, "A1") == [("R06", 1, ("V1",), None, 4)]
    assert note(run, "A2", "R06") is Reason.NO_ROOM
    assert all(g["status"] == "active" for g in report_grants(run, "2025-12-31"))


# --- rule version changed mid-way ----------------------------------------------------------
def test_rule_version_in_force_on_the_application_date() -> None:
    """L02, L03, L25. The version is the one in force on D (rule 5). R01 v1 (courier level
    >= 2) ends 2025-06-30 and v2 (>= 3) starts 2025-07-01; R03 goes from 16 to 18 h per
    credit. On 2025-07-01 the level-2 courier certificate no longer exempts C-LOG-02 and
    falls through to the R02 elective."""
    records = [
        cert("C2", "CT-COURIER-L2", "2024-05-20", issuer="INS-EU"),
        hours("H1", "T-EU-COURIER", 64, "2024-09-30"),
    ]
    before = decide_all(records, [apply("A1", "P-OU-LOG", "2025-06-30")])
    assert grants(before, "A1") == [
        ("R01", 1, ("C2",), "C-LOG-02", 4),
        ("R03", 1, ("H1",), None, 4),
    ]
    after = decide_all(records, [apply("A1", "P-OU-LOG", "2025-07-01")])
    assert grants(after, "A1") == [("R02", 1, ("C2",), None, 2), ("R03", 2, ("H1",), None, 3)]


def test_caps_count_grants_under_every_version() -> None:
    """L03. R03's max_credits 6 counts the learner's active grants under v1 and v2 together:
    4 credits under v1 in May leave 2 of room for v2 in November (72 h = 4 raw credits)."""
    run = decide_all(
        [
            hours("H1", "T-EU-COURIER", 64, "2024-09-30"),
            hours("H2", "T-EU-DISPATCH", 72, "2025-09-30"),
        ],
        [apply("A1", "P-OU-LOG", "2025-05-10"), apply("A2", "P-OU-LOG", "2025-11-20")],
    )
    assert grants(run, "A1") == [("R03", 1, ("H1",), None, 4)]
    assert grants(run, "A2") == [("R03", 2, ("H2",), None, 2)]
    assert decision(run, "A2").grants[0].bound_by is Cap.MAX_CREDITS


def test_no_version_in_force_means_no_rule() -> None:
    """Rule 5: on a date covered by no version the rule does not exist."""
    rules = rules_with(rule_row("R05", effective_to="2024-12-31"))
    run = decide_all(
        [cert("S1", "CT-SAFE-LV", "2022-03-15", issuer="EXT-SAFETY", expires="2028-03-14")],
        [apply("A1", "P-COL-ELEC", "2025-01-01")],
        rules=rules,
    )
    assert grants(run, "A1") == []
    assert "R05" not in {n.rule_key for n in decision(run, "A1").rule_notes}


# --- duplicates ----------------------------------------------------------------------------
def test_learner_upload_duplicating_the_issuer_post_never_counts() -> None:
    """L12. Same-learner roots sharing a dedup_key are one achievement; the root posted
    first is canonical and the others never count, whoever posted them (rules 2, 12). R02
    grants 2 credits once, for the issuer's post."""
    run = decide_all(
        [
            cert(
                "F1",
                "CT-FORKLIFT",
                "2024-02-26",
                issuer="EXT-SAMR",
                expires="2028-02-25",
                posted="2024-03-01",
                dedup="fork",
            ),
            cert(
                "F2",
                "CT-FORKLIFT",
                "2024-02-26",
                issuer="EXT-SAMR",
                expires="2028-02-25",
                posted="2024-03-05",
                dedup="fork",
                posted_by="L1",
            ),
        ],
        [apply("A1", "P-OU-LOG", "2025-04-01")],
    )
    assert grants(run, "A1") == [("R02", 1, ("F1",), None, 2)]
    dup = next(n for n in decision(run, "A1").record_notes if n.outcome_id == "F2")
    assert (dup.issue, dup.related_id) == (RecordIssue.DUPLICATE, "F1")


def test_resent_training_record_counts_once() -> None:
    """L13. The training centre re-sent a 12 h record: only the first-posted root counts, so
    12 h + 9 h = 21 h, one credit at 16 h/credit."""
    run = decide_all(
        [
            hours("T1", "T-TC-WAREHOUSE", 12, "2024-04-15", posted="2024-04-20", dedup="t"),
            hours("T2", "T-TC-WAREHOUSE", 12, "2024-04-15", posted="2024-05-02", dedup="t"),
            hours("T3", "T-EU-COURIER", 9, "2025-01-18"),
        ],
        [apply("A1", "P-OU-LOG", "2025-05-20")],
    )
    assert grants(run, "A1") == [("R03", 1, ("T1", "T3"), None, 1)]
    assert decision(run, "A1").grants[0].hours_used == 2100


def test_duplicate_canonicity_is_by_posting_order_alone() -> None:
    """Rule 2: ties on posted_at go to the lower id; a duplicate never replaces a canonical
    record that is revoked; revoked_at on a non-canonical duplicate has no effect; records
    of different learners are never duplicates of each other."""
    tie = decide_all(
        [
            cert(
                "F9",
                "CT-FORKLIFT",
                "2024-02-26",
                issuer="EXT-SAMR",
                posted="2024-03-01",
                dedup="f",
                expires="2028-02-25",
            ),
            cert(
                "F1",
                "CT-FORKLIFT",
                "2024-02-26",
                issuer="EXT-SAMR",
                posted="2024-03-01",
                dedup="f",
                expires="2028-02-25",
            ),
        ],
        [apply("A1", "P-OU-LOG", "2025-04-01")],
    )
    assert grants(tie, "A1") == [("R02", 1, ("F1",), None, 2)]
    revoked_canonical = decide_all(
        [
            cert(
                "F1",
                "CT-FORKLIFT",
                "2024-02-26",
                issuer="EXT-SAMR",
                posted="2024-03-01",
                dedup="f",
                revoked="2024-06-01",
                expires="2028-02-25",
            ),
            cert(
                "F2",
                "CT-FORKLIFT",
                "2024-02-26",
                issuer="EXT-SAMR",
                posted="2024-03-05",
                dedup="f",
                expires="2028-02-25",
            ),
        ],
        [apply("A1", "P-OU-LOG", "2025-04-01")],
    )
    assert grants(revoked_canonical, "A1") == []
    revoked_duplicate = decide_all(
        [
            cert(
                "F1",
                "CT-FORKLIFT",
                "2024-02-26",
                issuer="EXT-SAMR",
                posted="2024-03-01",
                dedup="f",
                expires="2028-02-25",
            ),
            cert(
                "F2",
                "CT-FORKLIFT",
                "2024-02-26",
                issuer="EXT-SAMR",
                posted="2024-03-05",
                dedup="f",
                revoked="2024-06-01",
                expires="2028-02-25",
            ),
        ],
        [apply("A1", "P-OU-LOG", "2025-04-01")],
    )
    assert grants(revoked_duplicate, "A1") == [("R02", 1, ("F1",), None, 2)]
    two_learners = decide_all(
        [
            cert(
                "F1",
                "CT-FORKLIFT",
                "2024-02-26",
                issuer="EXT-SAMR",
                dedup="f",
                expires="2028-02-25",
            ),
            cert(
                "F2",
                "CT-FORKLIFT",
                "2024-02-26",
                issuer="EXT-SAMR",
                dedup="f",
                expires="2028-02-25",
                learner="L2",
            ),
        ],
        [apply("A1", "P-OU-LOG", "2025-04-01"), apply("A2", "P-OU-LOG", "2025-04-01", "L2")],
    )
    assert grants(two_learners, "A1") == [("R02", 1, ("F1",), None, 2)]
    assert grants(two_learners, "A2") == [("R02", 1, ("F2",), None, 2)]


def test_revocation_on_a_correction_has_no_effect() -> None:
    """Rule 10: revocation is recorded on the chain root; revoked_at on a correction is
    ignored (and revoked_at is read from the root, rule 1)."""
    run = decide_all(
        [
            cert("E1", "CT-ELEC-L3", "2024-01-05", dedup="e"),
            cert(
                "E2",
                "CT-ELEC-L3",
                "2024-01-05",
                posted="2024-02-01",
                dedup="e",
                corrects="E1",
                revoked="2024-03-01",
            ),
        ],
        [apply("A1", "P-COL-ELEC", "2025-04-01")],
    )
    assert grants(run, "A1") == [("R04", 1, ("E1",), "C-ELE-01", 4)]


# --- thresholds ----------------------------------------------------------------------------
def test_level_exactly_at_min_level_matches() -> None:
    """L04. min_level is inclusive: a level-3 certificate meets R04's min_level 3, and rule 4
    lets only that top certificate of the electrician occupation convert: the level-2 one is
    blocked even for R06, which it would match."""
    run = decide_all(
        [cert("E2", "CT-ELEC-L2", "2021-08-20"), cert("E3", "CT-ELEC-L3", "2024-12-05")],
        [apply("A1", "P-COL-ELEC", "2025-04-18")],
    )
    assert grants(run, "A1") == [("R04", 1, ("E3",), "C-ELE-01", 4)]
    blocked = next(n for n in decision(run, "A1").record_notes if n.outcome_id == "E2")
    assert (blocked.issue, blocked.related_id) == (RecordIssue.LOWER_LEVEL_BLOCKED, "E3")


def test_months_exactly_at_min_months_match() -> None:
    """L13. 36 months meets R10's min_months 36 (>=); 35 months does not."""
    ok = decide_all(
        [work("W1", "warehouse_keeper", 36, "2025-04-30")], [apply("A1", "P-OU-LOG", "2025-05-20")]
    )
    assert grants(ok, "A1") == [("R10", 1, ("W1",), "C-LOG-05", 2)]
    short = decide_all(
        [work("W1", "warehouse_keeper", 35, "2025-04-30")], [apply("A1", "P-OU-LOG", "2025-05-20")]
    )
    assert grants(short, "A1") == []


def test_grade_exactly_60_passes_and_59_does_not() -> None:
    """L18, L19. Grade 60 meets R07's min_grade 60 and is a native pass (rule 7: >= 60), so
    R01 is skipped for a C-LOG-02 passed with 60; with 59 the course is not passed and the
    courier certificate exempts it."""
    ok = decide_all(
        [course("G1", "VS-EL-101", 60, "2024-06-01", issuer="INS-VS")],
        [apply("A1", "P-OU-MECH", "2025-03-03")],
    )
    assert grants(ok, "A1") == [("R07", 1, ("G1",), "C-MEC-01", 4)]
    courier = cert("C2", "CT-COURIER-L2", "2024-05-20", issuer="INS-EU")
    passed = decide_all(
        [course("G1", "C-LOG-02", 60, "2024-06-01"), courier],
        [apply("A1", "P-OU-LOG", "2025-03-03")],
    )
    assert note(passed, "A1", "R01") is Reason.COURSE_PASSED_NATIVELY
    failed = decide_all(
        [course("G1", "C-LOG-02", 59, "2024-06-01"), courier],
        [apply("A1", "P-OU-LOG", "2025-03-03")],
    )
    assert grants(failed, "A1")[0] == ("R01", 1, ("C2",), "C-LOG-02", 4)


def test_sixteen_hours_make_one_credit_and_fewer_keep_accumulating() -> None:
    """L26 and 零存整取 (rule 9). 16 h at 16 h/credit is exactly 1 credit. 15 h give 0: nothing
    is consumed, and the hours keep accumulating until a later application reaches 16 h, when
    one grant consumes every summed record."""
    exact = decide_all(
        [hours("H1", "T-TC-WAREHOUSE", 16, "2024-08-15")],
        [apply("A1", "P-OU-LOG", "2024-11-18")],
    )
    assert grants(exact, "A1") == [("R03", 1, ("H1",), None, 1)]
    run = decide_all(
        [
            hours("H1", "T-TC-WAREHOUSE", 15, "2024-08-15"),
            hours("H2", "T-TC-WAREHOUSE", 1, "2025-01-10"),
        ],
        [apply("A1", "P-OU-LOG", "2024-11-18"), apply("A2", "P-OU-LOG", "2025-02-01")],
    )
    assert grants(run, "A1") == []
    assert note(run, "A1", "R03") is Reason.HOURS_BELOW_ONE_CREDIT
    assert grants(run, "A2") == [("R03", 1, ("H1", "H2"), None, 1)]


# --- posted after the application ----------------------------------------------------------
def test_record_posted_after_the_application_is_invisible() -> None:
    """L17. A decision sees only records posted by D (rules 1, 3): a certificate achieved
    before D but posted after it does not count, and produces no note either."""
    run = decide_all(
        [cert("W3", "CT-WELD-L3", "2025-06-01", issuer="INS-CA", posted="2025-06-25")],
        [apply("A1", "P-OU-MECH", "2025-06-20"), apply("A2", "P-OU-MECH", "2025-06-25")],
    )
    assert grants(run, "A1") == []
    assert all(n.outcome_id != "W3" for n in decision(run, "A1").record_notes)
    assert grants(run, "A2") == [("R08", 1, ("W3",), "C-MEC-04", 3)]


# --- closed institution --------------------------------------------------------------------
def test_closed_institutions_records_stay_valid() -> None:
    """L10, L19, L27. INS-VS closed on 2024-08-31 and BANK holds its records. Its records,
    including those the custodian posts or corrects after the closure, stay valid: a course
    posted by BANK in October 2024 satisfies R07."""
    record = course(
        "V1", "VS-EL-101", 78, "2024-06-28", issuer="INS-VS", posted="2024-10-01", posted_by="BANK"
    )
    run = decide_all([record], [apply("A1", "P-OU-MECH", "2024-12-05")])
    assert CATALOG.institutions["INS-VS"].status == "closed"
    assert grants(run, "A1") == [("R07", 1, ("V1",), "C-MEC-01", 4)]


# --- name variants -------------------------------------------------------------------------
def test_name_variants_still_count_and_are_noted() -> None:
    """L12, L13, L14, L25, L28, L30. Records link to the learner by identity (rule 13): a
    record written as "ZHANG SAN" or with a different middle dot still counts, and the
    decision notes the difference. A record carrying a registered name gets no note."""
    run = decide_all(
        [
            cert("E3", "CT-ELEC-L3", "2024-01-05", name="ZHANG SAN"),
            cert(
                "S1",
                "CT-SAFE-LV",
                "2022-03-15",
                issuer="EXT-SAFETY",
                expires="2028-03-14",
                name="Zhang San",
            ),
        ],
        [apply("A1", "P-COL-ELEC", "2025-04-01")],
    )
    assert [g[0] for g in grants(run, "A1")] == ["R04", "R05"]
    noted = {
        n.outcome_id
        for n in decision(run, "A1").record_notes
        if n.issue is RecordIssue.NAME_DIFFERS
    }
    assert noted == {"E3"}


# --- reverse conversion --------------------------------------------------------------------
def test_exam_exemption_granted_on_the_effective_version() -> None:
    """L17. RR1 waives the theory exam of CT-ELEC-L2 for C-ELE-01 >= 70 within 2 years. The
    basis_outcome_id is the effective version's id, not the root's (rule 11). Exam
    exemptions ignore consumption: the same record was consumed by R07 the same day."""
    records = [
        course(
            "K1", "C-ELE-01", 65, "2024-07-01", issuer="INS-COL", posted="2024-07-05", dedup="k"
        ),
        course(
            "K2",
            "C-ELE-01",
            75,
            "2024-07-01",
            issuer="INS-COL",
            posted="2024-07-10",
            dedup="k",
            corrects="K1",
        ),
    ]
    run = decide_all(
        records,
        [apply("A17", "P-OU-MECH", "2025-06-20"), ask_exam("X17", "CT-ELEC-L2", "2025-06-20")],
    )
    assert grants(run, "A17") == [("R07", 1, ("K1",), "C-MEC-01", 4)]
    exam = decision(run, "X17").exam
    assert exam is not None
    assert (exam.granted, exam.rule_key, exam.rule_version, exam.exam_part) == (
        True,
        "RR1",
        1,
        "theory",
    )
    assert (exam.basis_outcome_id, exam.basis_root_id) == ("K2", "K1")
    assert decision(run, "X17").grants == ()
    assert report(run, "2025-12-31")["learners"][0]["exam_exemptions_granted"] == [
        "CT-ELEC-L2:theory"
    ]


def test_exam_exemption_denied_reports_the_last_rule_tried() -> None:
    """L18. Grade 69 misses RR1's 70: denied, with the exam_part of the last rule tried and
    null rule_key/rule_version/basis. With no reverse rule for the type, exam_part is null."""
    run = decide_all(
        [course("K1", "C-ELE-01", 69, "2025-01-15", issuer="INS-COL")],
        [ask_exam("X1", "CT-ELEC-L2", "2025-10-10"), ask_exam("X2", "CT-WELD-L2", "2025-10-10")],
    )
    denied = decision(run, "X1")
    assert denied.exam is not None
    assert (denied.exam.granted, denied.exam.exam_part, denied.exam.rule_key) == (
        False,
        "theory",
        None,
    )
    assert denied.reason is Reason.EXAM_NO_MATCHING_RECORD
    no_rule = decision(run, "X2")
    assert no_rule.exam is not None
    assert (no_rule.exam.granted, no_rule.exam.exam_part) == (False, None)
    assert no_rule.reason is Reason.EXAM_NO_RULE


def test_exam_rules_are_tried_by_rule_key_and_basis_is_the_earliest() -> None:
    """Rule 11: reverse rules are tried by rule_key; the first with a matching valid record
    waives its part; the basis is its matching record with the smallest (achieved_on, root
    id). A revoked record is not valid for an exam exemption either."""
    practical = rule_row("RR1", target={"exam_part": "practical"})
    practical["rule_key"] = "RR0"
    practical["source"]["course_ids"] = ["C-MEC-01"]
    records = [
        course("K2", "C-ELE-01", 90, "2025-02-01", issuer="INS-COL"),
        course("K1", "C-ELE-01", 80, "2025-02-01", issuer="INS-COL"),
        course("K0", "C-ELE-01", 95, "2024-12-01", issuer="INS-COL", revoked="2025-01-05"),
    ]
    run = decide_all(
        records,
        [ask_exam("X1", "CT-ELEC-L2", "2025-06-01")],
        rules=(*SAMPLE_RULES, parse_rule(practical)),
    )
    exam = decision(run, "X1").exam
    assert exam is not None
    assert (exam.rule_key, exam.exam_part, exam.basis_outcome_id) == ("RR1", "theory", "K1")
    assert [n.rule_key for n in decision(run, "X1").rule_notes] == ["RR0", "RR1"]
