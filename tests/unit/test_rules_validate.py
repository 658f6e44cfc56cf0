"""Publish-time rule validation: every rejection has a typed error with a specific code."""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import json
from collections.abc import Callable
from typing import Any

import pytest
from sample_data import SAMPLE

from creditbank.core.rules import (
    Course,
    RuleBook,
    RuleValidationError,
    check_rules,
    load_catalog,
    parse_rule,
    validate_rules,
)
from creditbank.errors import CreditBankError, RuleError


def _json(name: str) -> Any:
    return json.loads((SAMPLE / f"{name}.json").read_text("utf-8"))


CATALOG = load_catalog(_json("institutions"), _json("programs"), _json("certificate_types"))
ROWS: list[dict[str, Any]] = _json("conversion_rules")


def _row(rule_key: str, version: int = 1) -> dict[str, Any]:
    return copy.deepcopy(
        next(r for r in ROWS if r["rule_key"] == rule_key and r["version"] == version)
    )


def _publish(*changed: dict[str, Any]) -> RuleBook:
    """Publish the sample rule set with some rows replaced (same key and version) or added."""
    keys = {(r["rule_key"], r["version"]) for r in changed}
    rows = [r for r in ROWS if (r["rule_key"], r["version"]) not in keys] + list(changed)
    return validate_rules([parse_rule(r) for r in rows], CATALOG)


def _rejected(*changed: dict[str, Any]) -> RuleValidationError:
    with pytest.raises(RuleValidationError) as info:
        _publish(*changed)
    return info.value


def test_sample_rule_set_is_valid() -> None:
    book = _publish()
    assert len(book.rules) == 18
    assert check_rules(book.rules, CATALOG) == ()
    assert [r.version for r in book.versions["R01"]] == [1, 2]


def test_errors_are_typed_rule_errors() -> None:
    err = _rejected(_row("R01", 2) | {"effective_from": "2025-06-01"})
    assert isinstance(err, RuleError)
    assert isinstance(err, CreditBankError)
    assert err.problems[0].rule_key == "R01"


# --- overlapping and malformed versions ----------------------------------------------------
def test_overlapping_versions_are_rejected() -> None:
    """R01 v1 runs to 2025-06-30; a v2 starting on that same day overlaps (inclusive)."""
    err = _rejected(_row("R01", 2) | {"effective_from": "2025-06-30"})
    assert err.code == "rules.overlapping_versions"
    assert "R01" in str(err)


def test_open_ended_version_overlaps_any_later_one() -> None:
    err = _rejected(_row("R01", 1) | {"effective_to": None})
    assert err.code == "rules.overlapping_versions"


def test_adjacent_versions_are_fine() -> None:
    book = _publish(_row("R01", 1) | {"effective_to": "2025-06-30"})
    assert book.version_in_force("R01", dt.date(2025, 6, 30)) is book.versions["R01"][0]
    assert book.version_in_force("R01", dt.date(2025, 7, 1)) is book.versions["R01"][1]
    assert book.version_in_force("R01", dt.date(2022, 12, 31)) is None


def test_same_version_published_twice_is_rejected() -> None:
    twin = _row("R02") | {"effective_from": "2030-01-01"}
    rows = [parse_rule(r) for r in ROWS] + [parse_rule(twin)]
    with pytest.raises(RuleValidationError) as info:
        validate_rules(rows, CATALOG)
    assert "rules.duplicate_version" in {p.code for p in info.value.problems}


def test_effective_to_before_effective_from_is_rejected() -> None:
    err = _rejected(_row("R02") | {"effective_from": "2023-01-02", "effective_to": "2023-01-01"})
    assert err.code == "rules.bad_effective_range"


def test_version_below_one_is_rejected() -> None:
    err = _rejected(_row("R02") | {"version": 0})
    assert err.code == "rules.bad_version"


# --- targets -------------------------------------------------------------------------------
def _target(rule_key: str, **changes: Any) -> dict[str, Any]:
    row = _row(rule_key)
    row["target"].update(changes)
    for key in [k for k, v in changes.items() if v is None]:
        del row["target"][key]
    return row


def test_unknown_programme_is_rejected() -> None:
    assert _rejected(_target("R02", program_id="P-NOPE")).code == "rules.unknown_program"


def test_missing_programme_is_rejected() -> None:
    assert _rejected(_target("R02", program_id=None)).code == "rules.missing_program"


def test_unknown_course_is_rejected() -> None:
    assert _rejected(_target("R04", course_id="C-NOPE")).code == "rules.unknown_course"


def test_course_of_another_programme_is_rejected() -> None:
    err = _rejected(_target("R04", course_id="C-LOG-02"))
    assert err.code == "rules.unknown_course"
    assert "P-COL-ELEC" in str(err)


def test_unknown_source_course_is_rejected() -> None:
    row = _row("R07")
    row["source"]["course_ids"] = ["VS-EL-101", "C-NOPE"]
    assert _rejected(row).code == "rules.unknown_course"


def test_course_exemption_without_course_is_rejected() -> None:
    assert _rejected(_target("R04", course_id=None)).code == "rules.missing_course"


def test_elective_with_course_is_rejected() -> None:
    assert _rejected(_target("R06", course_id="C-ELE-02")).code == "rules.unexpected_course"


def test_unknown_mode_is_rejected() -> None:
    assert _rejected(_target("R02", mode="credit_transfer")).code == "rules.unknown_mode"


def test_exemption_of_a_course_without_credits_is_rejected() -> None:
    program = CATALOG.degree_programs["P-COL-ELEC"]
    courses = tuple(
        dataclasses.replace(c, credits=0) if c.id == "C-ELE-01" else c for c in program.courses
    )
    catalog = dataclasses.replace(
        CATALOG,
        degree_programs={
            **CATALOG.degree_programs,
            "P-COL-ELEC": dataclasses.replace(program, courses=courses),
        },
    )
    assert isinstance(courses[0], Course)
    with pytest.raises(RuleValidationError) as info:
        validate_rules([parse_rule(r) for r in ROWS], catalog)
    assert info.value.code == "rules.bad_amount"


def test_exam_exemption_needs_a_known_certificate_and_a_part() -> None:
    assert _rejected(_target("RR1", certificate_type_id="CT-NOPE")).code == (
        "rules.unknown_certificate_type"
    )
    assert _rejected(_target("RR1", certificate_type_id=None)).code == (
        "rules.missing_certificate_type"
    )
    assert _rejected(_target("RR1", exam_part=None)).code == "rules.missing_exam_part"
    assert _rejected(_target("RR1", program_id="P-OU-LOG")).code == "rules.unexpected_target"


# --- caps and amounts ----------------------------------------------------------------------
@pytest.mark.parametrize("cap", ["max_credits", "max_outcomes"])
def test_negative_caps_are_rejected(cap: str) -> None:
    row = _row("R02")
    row["caps"][cap] = -1
    assert _rejected(row).code == "rules.negative_cap"


def test_zero_cap_is_allowed() -> None:
    row = _row("R02")
    row["caps"]["max_credits"] = 0
    _publish(row)


@pytest.mark.parametrize(
    ("rule_key", "change", "code"),
    [
        ("R02", lambda r: r.pop("credits_per_outcome"), "rules.missing_amount"),
        ("R02", lambda r: r.update(credits_per_outcome=0), "rules.bad_amount"),
        ("R03", lambda r: r.pop("hours_per_credit"), "rules.missing_amount"),
        ("R03", lambda r: r.update(hours_per_credit=-16), "rules.bad_amount"),
        ("R09", lambda r: r["source"].pop("credits_by_tier"), "rules.missing_amount"),
        ("R09", lambda r: r["source"]["credits_by_tier"].update(municipal=0), "rules.bad_amount"),
        ("R04", lambda r: r.update(credits_per_outcome=2), "rules.unexpected_amount"),
        ("R04", lambda r: r.update(hours_per_credit=16), "rules.unexpected_amount"),
    ],
)
def test_missing_or_bad_amounts_are_rejected(
    rule_key: str, change: Callable[[dict[str, Any]], object], code: str
) -> None:
    row = _row(rule_key)
    change(row)
    assert _rejected(row).code == code


def test_hours_mode_needs_training_hours() -> None:
    row = _row("R03")
    row["source"] = {"kind": "skill_certificate", "occupations": ["courier"]}
    assert _rejected(row).code == "rules.kind_mismatch"


def test_tier_mode_needs_competition_awards() -> None:
    row = _row("R02")
    row["target"]["mode"] = "elective_by_tier"
    del row["credits_per_outcome"]
    assert "rules.kind_mismatch" in {p.code for p in _rejected(row).problems}


def test_negative_recency_is_rejected() -> None:
    assert _rejected(_row("R02") | {"recency_years": -1}).code == "rules.bad_recency"


# --- sources -------------------------------------------------------------------------------
def _source(rule_key: str, **changes: Any) -> dict[str, Any]:
    row = _row(rule_key)
    row["source"].update(changes)
    return row


def test_unknown_source_kind_is_rejected() -> None:
    assert _rejected(_source("R02", kind="diploma")).code == "rules.unknown_kind"


def test_condition_that_does_not_apply_to_the_kind_is_rejected() -> None:
    """A condition the engine cannot evaluate for that kind would be silently ignored and
    widen the rule, so publishing refuses it (fail closed)."""
    assert _rejected(_source("R02", min_grade=60)).code == "rules.condition_not_applicable"


def test_null_condition_is_absent() -> None:
    """README: ``min_level = null`` or absent means no level condition."""
    _publish(_source("R02", min_level=None, min_grade=None))


def test_empty_condition_list_is_rejected() -> None:
    assert _rejected(_source("R02", occupations=[])).code == "rules.empty_condition"


def test_unknown_certificate_type_occupation_and_issuer_kind_are_rejected() -> None:
    assert _rejected(_source("R05", certificate_type_ids=["CT-NOPE"])).code == (
        "rules.unknown_certificate_type"
    )
    assert _rejected(_source("R02", occupations=["courrier"])).code == "rules.unknown_occupation"
    assert _rejected(_source("R03", issuer_kinds=["university"])).code == (
        "rules.unknown_issuer_kind"
    )


def test_work_experience_occupations_need_not_be_certificate_occupations() -> None:
    _publish(_source("R10", occupations=["courier", "assembly_worker"]))


@pytest.mark.parametrize(
    ("rule_key", "changes"),
    [
        ("R07", {"min_grade": 101}),
        ("R09", {"max_rank": 0}),
        ("R10", {"min_months": -1}),
        ("R06", {"min_level": -1}),
    ],
)
def test_out_of_range_conditions_are_rejected(rule_key: str, changes: dict[str, Any]) -> None:
    assert _rejected(_source(rule_key, **changes)).code == "rules.bad_condition"


def test_every_problem_is_reported() -> None:
    bad_mode = _target("R02", mode="nope")
    bad_range = _row("R05") | {"effective_from": "2024-01-02", "effective_to": "2024-01-01"}
    err = _rejected(bad_mode, bad_range)
    assert {p.code for p in err.problems} >= {"rules.unknown_mode", "rules.bad_effective_range"}
    assert "more problem" in str(err)
    problems = check_rules([parse_rule(bad_mode), parse_rule(bad_range)], CATALOG)
    assert problems[0].rule_key == "R02"
    assert {p.rule_key for p in problems} == {"R02", "R05"}
