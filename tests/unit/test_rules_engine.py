"""Engine entry points (decide, preview, run_all, voids, report) and the readings chosen where
the README leaves a case open. Each ``test_reading_*`` is cited in docs/conversion.md."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Sequence
from typing import Any

import pytest
from sample_data import SAMPLE

from creditbank.core.rules import (
    Application,
    ApplicationType,
    Cap,
    Catalog,
    ConversionRule,
    Learner,
    LearnerRecords,
    LearnerState,
    Reason,
    Record,
    RecordIssue,
    RunResult,
    active_grants,
    build_report,
    centi_to_number,
    decide,
    index_records,
    load_catalog,
    parse_record,
    parse_rule,
    preview,
    run_all,
    validate_rules,
    voids,
)
from creditbank.errors import InvalidInputError, RuleError


def _json(name: str) -> Any:
    return json.loads((SAMPLE / f"{name}.json").read_text("utf-8"))


CATALOG = load_catalog(_json("institutions"), _json("programs"), _json("certificate_types"))
ROWS: list[dict[str, Any]] = _json("conversion_rules")
RULES = tuple(parse_rule(r) for r in ROWS)
BOOK = validate_rules(RULES, CATALOG)


def _record(rid: str, kind: str, payload: dict[str, Any], achieved: str, **kw: Any) -> Record:
    posted = (
        kw.pop("posted", None)
        or (dt.date.fromisoformat(achieved) + dt.timedelta(days=5)).isoformat()
    )
    row = {
        "id": rid,
        "learner_id": kw.pop("learner", "L1"),
        "kind": kind,
        "issuer_id": kw.pop("issuer"),
        "achieved_on": achieved,
        "posted_at": posted,
        "dedup_key": kw.pop("dedup", f"k:{rid}"),
        "corrects": kw.pop("corrects", None),
        "revoked_at": kw.pop("revoked", None),
        "name_on_record": kw.pop("name", "张三"),
        "payload": payload,
    }
    assert not kw, kw
    return parse_record(row)


def cert(rid: str, type_id: str, achieved: str, **kw: Any) -> Record:
    kw.setdefault("issuer", "INS-TC")
    payload = {"certificate_type_id": type_id, "expires_on": kw.pop("expires", None)}
    return _record(rid, "skill_certificate", payload, achieved, **kw)


def course(rid: str, course_id: str, grade: int, achieved: str, **kw: Any) -> Record:
    kw.setdefault("issuer", "INS-OU")
    payload = {"course_id": course_id, "credits": 3, "grade": grade}
    return _record(rid, "academic_credit", payload, achieved, **kw)


def hours(rid: str, program_id: str, h: int, achieved: str, **kw: Any) -> Record:
    kw.setdefault("issuer", CATALOG.training_programs[program_id].institution_id)
    payload = {"training_program_id": program_id, "hours": h}
    return _record(rid, "training_hours", payload, achieved, **kw)


def apply(aid: str, program_id: str, on: str, learner: str = "L1") -> Application:
    return Application(
        aid, learner, ApplicationType.CREDIT_CONVERSION, dt.date.fromisoformat(on), program_id
    )


def ask_exam(aid: str, cert_type: str, on: str, learner: str = "L1") -> Application:
    return Application(
        aid,
        learner,
        ApplicationType.EXAM_EXEMPTION,
        dt.date.fromisoformat(on),
        certificate_type_id=cert_type,
    )


def run(
    records: Sequence[Record],
    apps: Sequence[Application],
    rules: Sequence[ConversionRule] = RULES,
    catalog: Catalog = CATALOG,
) -> RunResult:
    learners = {lid: Learner(lid, "张三", "Zhang San") for lid in ("L1", "L2")}
    return run_all(apps, records, validate_rules(rules, catalog), catalog, learners=learners)


def rows_of(result: RunResult, aid: str) -> list[tuple[str, tuple[str, ...], int | float]]:
    (d,) = [d for d in result.decisions if d.application.id == aid]
    return [(g.rule_key, g.outcome_ids, centi_to_number(g.credits)) for g in d.grants]


def rule_row(rule_key: str, base_version: int = 1, **changes: Any) -> dict[str, Any]:
    """A sample rule row with changes; ``target`` and ``source`` changes are merged."""
    base = next(r for r in ROWS if r["rule_key"] == rule_key and r["version"] == base_version)
    row: dict[str, Any] = json.loads(json.dumps(base))
    for key, value in changes.items():
        if key in ("target", "source"):
            row[key].update(value)
        else:
            row[key] = value
    return row


def rules_with(*rows: dict[str, Any]) -> tuple[ConversionRule, ...]:
    keys = {r["rule_key"] for r in rows}
    return (*[r for r in RULES if r.rule_key not in keys], *(parse_rule(r) for r in rows))


# --- entry points --------------------------------------------------------------------------
def test_decide_folds_into_state_and_refuses_out_of_order() -> None:
    records = LearnerRecords.build("L1", [cert("E3", "CT-ELEC-L3", "2024-01-05")])
    state = LearnerState("L1")
    first = decide(apply("A2", "P-COL-ELEC", "2025-03-01"), records, BOOK, CATALOG, state)
    state = state.apply(first)
    assert [g.rule_key for g in state.grants] == ["R04"]
    with pytest.raises(RuleError) as info:
        decide(apply("A1", "P-COL-ELEC", "2025-03-01"), records, BOOK, CATALOG, state)
    assert info.value.code == "rules.out_of_order"
    with pytest.raises(RuntimeError):
        state.apply(first)
    again = decide(apply("A3", "P-COL-ELEC", "2025-03-01"), records, BOOK, CATALOG, state)
    assert again.grants == ()
    assert {n.rule_key: n.reason for n in again.rule_notes}["R04"] is Reason.COURSE_ALREADY_EXEMPTED


def test_decide_checks_that_everything_is_the_applicants() -> None:
    records = LearnerRecords.build("L2", [cert("E3", "CT-ELEC-L3", "2024-01-05", learner="L2")])
    with pytest.raises(InvalidInputError) as info:
        decide(apply("A1", "P-COL-ELEC", "2025-03-01"), records, BOOK, CATALOG, LearnerState("L1"))
    assert info.value.code == "input.learner_mismatch"


def test_preview_is_what_decide_would_do_and_changes_nothing() -> None:
    records = LearnerRecords.build(
        "L1", [cert("E3", "CT-ELEC-L3", "2024-01-05"), hours("H1", "T-CA-WELD", 40, "2024-02-01")]
    )
    state = LearnerState("L1")
    state = state.apply(
        decide(apply("A1", "P-OU-MECH", "2025-01-10"), records, BOOK, CATALOG, state)
    )
    what_if = preview(
        records, BOOK, CATALOG, state, on=dt.date(2025, 2, 1), program_id="P-COL-ELEC"
    )
    real = decide(apply("A2", "P-COL-ELEC", "2025-02-01"), records, BOOK, CATALOG, state)
    assert [(g.rule_key, g.outcome_ids, g.credits) for g in what_if.grants] == [
        (g.rule_key, g.outcome_ids, g.credits) for g in real.grants
    ]
    assert [g.rule_key for g in state.grants] == ["R13"]  # unchanged
    exam = preview(
        records, BOOK, CATALOG, state, on=dt.date(2025, 2, 1), certificate_type_id="CT-ELEC-L2"
    )
    assert exam.exam is not None
    with pytest.raises(RuleError):
        preview(records, BOOK, CATALOG, state, on=dt.date(2025, 1, 9), program_id="P-COL-ELEC")
    with pytest.raises(InvalidInputError):
        preview(records, BOOK, CATALOG, state, on=dt.date(2025, 2, 1))


def test_run_all_refuses_repeated_application_ids() -> None:
    with pytest.raises(InvalidInputError) as info:
        run([], [apply("A1", "P-COL-ELEC", "2025-01-01"), apply("A1", "P-OU-LOG", "2025-02-01")])
    assert info.value.code == "input.duplicate_id"


def test_same_day_applications_are_decided_by_id_as_text() -> None:
    """Rule 0: ids compare as plain strings, so "A10" is decided before "A9"."""
    result = run(
        [cert("E3", "CT-ELEC-L3", "2024-01-05")],
        [apply("A9", "P-COL-ELEC", "2025-03-01"), apply("A10", "P-COL-ELEC", "2025-03-01")],
    )
    assert [d.application.id for d in result.decisions] == ["A10", "A9"]
    assert rows_of(result, "A10") == [("R04", ("E3",), 4)]


def test_voids_and_active_grants() -> None:
    result = run(
        [cert("E4", "CT-ELEC-L4", "2024-10-10", revoked="2025-08-15")],
        [apply("A1", "P-COL-ELEC", "2025-03-01")],
    )
    state, records = result.states["L1"], result.records["L1"]
    assert len(active_grants(state, records, dt.date(2025, 8, 14))) == 1
    assert active_grants(state, records, dt.date(2025, 8, 15)) == ()
    (void,) = voids(state, records, dt.date(2025, 12, 31))
    assert (void.voided_at, void.outcome_id) == (dt.date(2025, 8, 15), "E4")
    assert void.grant is state.grants[0]


def test_learner_without_records_gets_explained_denials() -> None:
    result = run([], [apply("A1", "P-OU-LOG", "2025-03-01")])
    (d,) = result.decisions
    assert d.grants == ()
    assert d.reason is Reason.NOTHING_GRANTED
    assert {n.reason for n in d.rule_notes} == {Reason.NO_CANDIDATE}
    assert all("no " in n.explanation_en for n in d.rule_notes)


def test_explanations_name_record_rule_version_and_cap() -> None:
    result = run(
        [hours("H1", "T-CA-WELD", 80, "2024-09-01")], [apply("A1", "P-OU-MECH", "2025-03-03")]
    )
    (grant,) = result.decisions[0].grants
    for text in ("H1", "2024-09-01", "rule R13 v1", "max_credits 4"):
        assert text in grant.explanation_en
    for text in ("H1", "2024-09-01", "规则 R13 第1版"):
        assert text in grant.explanation_zh
    assert "规则学分上限" in grant.explanation_zh


# --- the report ----------------------------------------------------------------------------
def test_report_numbers_and_empty_learners() -> None:
    """Whole credits print as ints; fractional ones exactly (1.5); a learner without
    applications still gets an entry."""
    rules = rules_with(rule_row("R06", credits_per_outcome=1.5))
    result = run(
        [cert("V1", "CT-ELEVATOR-L2", "2024-07-20")],
        [apply("A1", "P-COL-ELEC", "2025-03-01")],
        rules,
    )
    report = build_report(
        dt.date(2025, 12, 31), ["L1", "L2"], result.decisions, result.records, CATALOG
    )
    entry, empty = report["learners"]
    assert entry["applications"][0]["grants"][0]["credits"] == 1.5
    assert entry["per_program_as_of"][0]["converted_credits_active"] == 1.5
    assert isinstance(entry["per_program_as_of"][0]["native_credits_passed"], int)
    assert empty == {
        "learner_id": "L2",
        "applications": [],
        "per_program_as_of": [],
        "converted_credits_active_total": 0,
        "exam_exemptions_granted": [],
    }


def test_report_can_carry_explanations() -> None:
    result = run(
        [cert("E3", "CT-ELEC-L3", "2024-01-05")], [apply("A1", "P-COL-ELEC", "2025-03-01")]
    )
    report = build_report(
        dt.date(2025, 12, 31),
        ["L1"],
        result.decisions,
        result.records,
        CATALOG,
        include_explanations=True,
    )
    grant = report["learners"][0]["applications"][0]["grants"][0]
    assert grant["explanation_en"].startswith("Under rule R04 v1")


# --- readings chosen where the README is open (docs/conversion.md) -------------------------
def test_reading_report_leaves_out_decisions_after_as_of() -> None:
    """A report "as of" a date shows the decisions made by then; later applications had not
    been decided, so they and their programme totals are absent."""
    result = run(
        [cert("E3", "CT-ELEC-L3", "2024-01-05"), hours("H1", "T-CA-WELD", 40, "2024-02-01")],
        [apply("A1", "P-COL-ELEC", "2025-03-01"), apply("A2", "P-OU-MECH", "2025-09-01")],
    )
    early = build_report(dt.date(2025, 6, 30), ["L1"], result.decisions, result.records, CATALOG)
    assert [a["application_id"] for a in early["learners"][0]["applications"]] == ["A1"]
    assert [p["program_id"] for p in early["learners"][0]["per_program_as_of"]] == ["P-COL-ELEC"]


def test_reading_rule_4_reads_consumed_certificates_as_corrected() -> None:
    """Rule 4 ranks the certificates "as of D". A consumed certificate is ranked by its
    effective version at D: corrected from level 3 to level 4 after its grant, it stays the
    top of the electrician occupation and blocks a later level-3 certificate (its grant is
    not recomputed, rule 5)."""
    records = [
        cert("E1", "CT-ELEC-L3", "2024-01-05", dedup="e1"),
        cert("E1c", "CT-ELEC-L4", "2024-01-05", dedup="e1", corrects="E1", posted="2025-04-01"),
        cert("E2", "CT-ELEC-L3", "2025-05-01"),
    ]
    result = run(
        records, [apply("A1", "P-COL-ELEC", "2025-03-01"), apply("A2", "P-COL-ELEC", "2025-06-01")]
    )
    assert rows_of(result, "A1") == [("R04", ("E1",), 4)]
    assert rows_of(result, "A2") == []
    (d2,) = [d for d in result.decisions if d.application.id == "A2"]
    blocked = [n for n in d2.record_notes if n.issue is RecordIssue.LOWER_LEVEL_BLOCKED]
    assert [(n.outcome_id, n.related_id) for n in blocked] == [("E2", "E1")]


def test_reading_native_pass_ignores_consumption() -> None:
    """Rule 7's "passed natively" needs a valid canonical record, not an unconsumed one: a
    C-ELE-01 result used for R07 in P-OU-MECH still means C-ELE-01 is passed in P-COL-ELEC,
    so R04 is skipped there."""
    result = run(
        [
            course("K1", "C-ELE-01", 80, "2024-06-01", issuer="INS-COL"),
            cert("E3", "CT-ELEC-L3", "2024-01-05"),
        ],
        [apply("A1", "P-OU-MECH", "2025-03-01"), apply("A2", "P-COL-ELEC", "2025-04-01")],
    )
    assert rows_of(result, "A1") == [("R07", ("K1",), 4)]
    assert rows_of(result, "A2") == [("R06", ("E3",), 4)]


def test_reading_max_outcomes_counts_records_under_all_versions_and_programmes() -> None:
    """Caps compare with "the learner's active grants under all versions of the rule_key, in
    all programs"; max_outcomes counts the records those grants hold. R06 v2 moved to
    P-OU-MECH still sees the two records held under v1 in P-COL-ELEC."""
    v1 = rule_row("R06", effective_to="2025-06-30")
    v2 = rule_row("R06", version=2, effective_from="2025-07-01", target={"program_id": "P-OU-MECH"})
    v2["caps"] = {"max_outcomes": 2}
    records = [
        cert("V1", "CT-ELEVATOR-L2", "2024-07-20"),
        cert("R1", "CT-ROBOT-X-MID", "2019-01-01"),
        cert("E2", "CT-ELEC-L2", "2025-07-05"),
    ]
    result = run(
        records,
        [apply("A1", "P-COL-ELEC", "2025-03-01"), apply("A2", "P-OU-MECH", "2025-08-01")],
        rules_with(v1, v2),
    )
    assert [r[0] for r in rows_of(result, "A1")] == ["R06", "R06"]
    assert rows_of(result, "A2") == []
    (d2,) = [d for d in result.decisions if d.application.id == "A2"]
    assert {n.rule_key: n.reason for n in d2.rule_notes}["R06"] is Reason.MAX_OUTCOMES_REACHED


def test_reading_equal_rooms_report_the_rule_cap_first() -> None:
    """When several rooms are equally the smallest, bound_by names the first of rule cap,
    elective pool, programme cap (the most specific limit)."""
    rules = rules_with(rule_row("R06", caps={"max_credits": 3, "max_outcomes": 2}))
    program = dataclasses.replace(CATALOG.degree_programs["P-COL-ELEC"], elective_pool_max=300)
    catalog = dataclasses.replace(
        CATALOG, degree_programs={**CATALOG.degree_programs, "P-COL-ELEC": program}
    )
    result = run(
        [cert("V1", "CT-ELEVATOR-L2", "2024-07-20")],
        [apply("A1", "P-COL-ELEC", "2025-03-01")],
        rules,
        catalog,
    )
    (grant,) = result.decisions[0].grants
    assert (centi_to_number(grant.credits), grant.bound_by) == (3, Cap.MAX_CREDITS)


def test_reading_missing_programme_caps_mean_no_cap() -> None:
    """A programme whose max_converted_credits / elective_pool_max is null has no such cap."""
    program = dataclasses.replace(
        CATALOG.degree_programs["P-OU-MECH"], max_converted_credits=None, elective_pool_max=None
    )
    catalog = dataclasses.replace(
        CATALOG, degree_programs={**CATALOG.degree_programs, "P-OU-MECH": program}
    )
    rules = rules_with(rule_row("R13", caps={}))
    result = run(
        [hours("H1", "T-CA-WELD", 160, "2024-09-01")],
        [apply("A1", "P-OU-MECH", "2025-03-03")],
        rules,
        catalog,
    )
    assert rows_of(result, "A1") == [("R13", ("H1",), 10)]


def test_reading_unknown_programme_is_malformed_input() -> None:
    """An application naming no known degree programme is malformed input, not a denial."""
    with pytest.raises(InvalidInputError) as info:
        run([], [apply("A1", "P-NOPE", "2025-03-01")])
    assert info.value.code == "input.unknown_program"


def test_reading_names_compare_exactly_after_nfc() -> None:
    """Rule 13 notes any difference from the registered Chinese or Latin name, compared
    exactly after Unicode NFC: "ZHANG SAN" and "Jose" are noted; "Zhang San", "张三" and a
    decomposed "José" (e + combining acute) are not."""
    records = [
        cert("A", "CT-ELEC-L3", "2024-01-05", name="ZHANG SAN"),
        cert("B", "CT-SAFE-LV", "2024-01-05", name="Zhang San", expires="2030-01-04"),
        course("C", "C-ELE-06", 80, "2024-01-05", issuer="INS-COL", name="张三"),
        course("D", "C-ELE-07", 80, "2024-01-05", issuer="INS-COL", name="Jose\u0301"),
        course("E", "C-ELE-08", 80, "2024-01-05", issuer="INS-COL", name="Jose"),
    ]
    learner = Learner("L1", "张三", "Zhang San")
    other = Learner("L1", "", "José")
    for who, want in ((learner, ["A", "D", "E"]), (other, ["A", "B", "C", "E"])):
        result = run_all(
            [apply("A1", "P-COL-ELEC", "2025-03-01")], records, BOOK, CATALOG, learners={"L1": who}
        )
        noted = sorted(
            n.outcome_id
            for n in result.decisions[0].record_notes
            if n.issue is RecordIssue.NAME_DIFFERS
        )
        assert noted == want


def test_reading_exam_exemptions_are_independent_and_not_voided() -> None:
    """Exam exemptions consume nothing, so the same request can be granted twice; a later
    revocation of the basis record does not rewrite the granted exemption in the report
    (rule 10 voids credit grants; the exemption was decided on the ledger as of D)."""
    records = [course("K1", "C-ELE-01", 80, "2025-01-15", issuer="INS-COL", revoked="2025-09-01")]
    result = run(
        records,
        [ask_exam("X1", "CT-ELEC-L2", "2025-06-01"), ask_exam("X2", "CT-ELEC-L2", "2025-06-02")],
    )
    assert all(d.exam is not None and d.exam.granted for d in result.decisions)
    report = build_report(dt.date(2025, 12, 31), ["L1"], result.decisions, result.records, CATALOG)
    assert report["learners"][0]["exam_exemptions_granted"] == ["CT-ELEC-L2:theory"] * 2


def test_reading_record_of_unknown_certificate_type_never_matches() -> None:
    """References the catalogue does not know are not an error at decision time: such a
    record simply matches no rule (and takes no part in rule 4)."""
    result = run([cert("Z", "CT-UNKNOWN", "2024-01-05")], [apply("A1", "P-COL-ELEC", "2025-03-01")])
    assert rows_of(result, "A1") == []


def test_reading_caps_outside_their_modes_are_ignored() -> None:
    """README: max_outcomes applies to the elective modes only. Publishing accepts it on a
    course exemption (it is simply not used), rather than rejecting a valid-looking rule."""
    rules = rules_with(rule_row("R04", caps={"max_outcomes": 0}))
    result = run(
        [cert("E3", "CT-ELEC-L3", "2024-01-05")], [apply("A1", "P-COL-ELEC", "2025-03-01")], rules
    )
    assert rows_of(result, "A1") == [("R04", ("E3",), 4)]


def test_reading_grant_keys_and_labels() -> None:
    """Engine-internal grant keys are "<application>/<n>"; report labels G001... follow the
    decision order over all learners (the oracle's bookkeeping)."""
    result = run(
        [
            cert("E3", "CT-ELEC-L3", "2024-01-05"),
            cert("F3", "CT-ELEC-L3", "2024-01-05", learner="L2"),
        ],
        [apply("A2", "P-COL-ELEC", "2025-03-02", "L2"), apply("A1", "P-COL-ELEC", "2025-03-01")],
    )
    assert [g.key for d in result.decisions for g in d.grants] == ["A1/1", "A2/1"]
    report = build_report(dt.date(2025, 12, 31), ["L2"], result.decisions, result.records, CATALOG)
    assert report["learners"][0]["applications"][0]["grants"][0]["grant_id"] == "G002"


def test_index_can_be_reused_across_runs() -> None:
    records = [cert("E3", "CT-ELEC-L3", "2024-01-05")]
    index = index_records(records)
    a = run_all([apply("A1", "P-COL-ELEC", "2025-03-01")], index, BOOK, CATALOG)
    b = run_all([apply("A1", "P-COL-ELEC", "2025-03-01")], records, BOOK, CATALOG)
    assert a.decisions == b.decisions


# --- remaining branches --------------------------------------------------------------------
def test_record_posted_before_it_is_achieved_is_not_yet_valid() -> None:
    """Rule 3: achieved_on must be <= D, even for a record already posted."""
    early = cert("E3", "CT-ELEC-L3", "2025-06-01", posted="2025-01-01")
    result = run([early], [apply("A1", "P-COL-ELEC", "2025-03-01")])
    assert rows_of(result, "A1") == []
    issues = {n.issue for n in result.decisions[0].record_notes}
    assert RecordIssue.NOT_YET_ACHIEVED in issues


def test_hours_without_room_are_not_consumed() -> None:
    """Rule 9: raw credits > 0 but no room: nothing granted, nothing consumed (no_room)."""
    rules = rules_with(rule_row("R13", caps={"max_credits": 0}))
    result = run(
        [hours("H1", "T-CA-WELD", 40, "2024-09-01")],
        [apply("A1", "P-OU-MECH", "2025-03-03")],
        rules,
    )
    (d,) = result.decisions
    note = next(n for n in d.rule_notes if n.rule_key == "R13")
    assert (note.reason, note.bound_by) == (Reason.NO_ROOM, Cap.MAX_CREDITS)
    assert "keep accumulating" in note.explanation_en


def test_unmatched_conditions_are_explained() -> None:
    """Every failed condition of rule 6a is named in the denial."""
    award_row = {
        "id": "W1",
        "learner_id": "L1",
        "kind": "competition_award",
        "issuer_id": "EXT-CONTEST",
        "achieved_on": "2024-05-01",
        "posted_at": "2024-05-05",
        "payload": {"tier": "national", "rank": 5, "field": "welding"},
    }
    other = dict(award_row, id="W2", payload={"tier": "provincial", "rank": 1, "field": "cooking"})
    training = hours("H1", "T-CA-WELD", 40, "2024-09-01", issuer="INS-EU")
    result = run(
        [parse_record(award_row), parse_record(other), training],
        [apply("A1", "P-OU-MECH", "2025-03-03")],
    )
    (d,) = result.decisions
    assert d.grants == ()
    texts = " ".join(n.explanation_en for n in d.rule_notes)
    assert "rank 5 is worse than 3" in texts
    assert "cooking does not meet the fields condition" in texts
    assert "issuer INS-EU (enterprise_university) is not an accepted kind" in texts
    zh = " ".join(n.explanation_zh for n in d.rule_notes)
    assert "名次 5" in zh


def test_no_rule_in_force_before_the_rules_exist() -> None:
    result = run(
        [cert("E3", "CT-ELEC-L3", "2020-01-05")], [apply("A1", "P-COL-ELEC", "2022-06-01")]
    )
    (d,) = result.decisions
    assert (d.reason, d.rule_notes) == (Reason.NO_RULE_IN_FORCE, ())
    assert "no conversion rule" in d.explanation_en


def test_exam_request_needs_a_certificate_type() -> None:
    bad = Application("X1", "L1", ApplicationType.EXAM_EXEMPTION, dt.date(2025, 3, 1))
    with pytest.raises(InvalidInputError):
        run([], [bad])


def test_years_before_is_total() -> None:
    from creditbank.core.rules.match import years_before

    assert years_before(dt.date(2025, 3, 1), 3000) == dt.date.min
    assert years_before(dt.date(2024, 2, 29), 4) == dt.date(2020, 2, 28)
    assert years_before(dt.date(2025, 3, 1), 0) == dt.date(2025, 3, 1)


def test_records_without_dedup_key_are_never_duplicates() -> None:
    a = cert("F1", "CT-FORKLIFT", "2024-02-26", issuer="EXT-SAMR", dedup=None, expires="2028-02-25")
    b = cert("F2", "CT-FORKLIFT", "2024-02-26", issuer="EXT-SAMR", dedup=None, expires="2028-02-25")
    index = LearnerRecords.build("L1", [a, b])
    assert (len(index.chains), index.duplicates) == (2, ())
    with pytest.raises(InvalidInputError):
        LearnerRecords.build("L1", [a, a])


def test_report_explains_exam_decisions_and_needs_known_programmes() -> None:
    records = [course("K1", "C-ELE-01", 80, "2025-01-15", issuer="INS-COL")]
    result = run(records, [ask_exam("X1", "CT-ELEC-L2", "2025-06-01")])
    report = build_report(
        dt.date(2025, 12, 31),
        ["L1"],
        result.decisions,
        result.records,
        CATALOG,
        include_explanations=True,
    )
    assert "RR1" in report["learners"][0]["applications"][0]["explanation_en"]
    credit = run([], [apply("A1", "P-OU-LOG", "2025-03-01")])
    smaller = dataclasses.replace(CATALOG, degree_programs={})
    with pytest.raises(InvalidInputError):
        build_report(dt.date(2025, 12, 31), ["L1"], credit.decisions, credit.records, smaller)


def test_publish_rejects_empty_keys_and_stray_targets() -> None:
    from creditbank.core.rules import RuleValidationError

    stray = parse_rule(rule_row("R02", target={"exam_part": "x"}))
    with pytest.raises(RuleValidationError) as info:
        validate_rules([stray], CATALOG)
    assert info.value.code == "rules.unexpected_target"
    empty = dataclasses.replace(parse_rule(rule_row("R02")), rule_key="")
    with pytest.raises(RuleValidationError) as info:
        validate_rules([empty], CATALOG)
    assert info.value.code == "rules.missing_key"


def test_report_and_engine_agree_on_native_passes() -> None:
    """passed_courses (reports) and the rule-7 skip check are two implementations of one
    definition; on the sample they agree for every learner, programme and date tried."""
    from creditbank.core.rules import RecordKind, load_dataset, passed_courses
    from creditbank.core.rules.engine import _native, _views

    names = ("institutions", "programs", "certificate_types", "conversion_rules", "learners")
    ds = load_dataset(**{n: _json(n) for n in names}, outcomes=_json("outcomes"), applications=[])
    index = index_records(ds.records)
    programs = list(ds.catalog.degree_programs.values())
    for records in index.values():
        for on in (dt.date(2023, 1, 1), dt.date(2024, 7, 15), dt.date(2025, 12, 31)):
            fast = passed_courses(records, programs, on)
            academic = _views(records, on, RecordKind.ACADEMIC_CREDIT)
            for program in programs:
                slow = {cid: v.root_id for cid, v in _native(academic, program).items()}
                assert fast[program.id] == slow
