"""The loader (already-parsed JSON -> model), record chains, and the two JSON Schemas."""

from __future__ import annotations

import copy
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from sample_data import SAMPLE

from creditbank.core.rules import (
    AcademicCredit,
    LearnerRecords,
    RecordKind,
    dump_rule,
    index_records,
    load_dataset,
    parse_application,
    parse_record,
    parse_rule,
    to_centi,
)
from creditbank.core.rules.dataset import _fast_record, parse_records
from creditbank.errors import InvalidInputError

REPO = Path(__file__).resolve().parents[2]
SCHEMAS = REPO / "schemas"


def _json(name: str) -> Any:
    return json.loads((SAMPLE / f"{name}.json").read_text("utf-8"))


OUTCOMES: list[dict[str, Any]] = _json("outcomes")
RULES: list[dict[str, Any]] = _json("conversion_rules")


def _load(**changes: Any) -> Any:
    files = {
        name: _json(name)
        for name in (
            "institutions",
            "programs",
            "certificate_types",
            "conversion_rules",
            "learners",
            "outcomes",
            "applications",
        )
    }
    files.update(changes)
    return load_dataset(**files)


def test_sample_loads_with_the_counts_of_its_readme() -> None:
    ds = _load()
    cat = ds.catalog
    assert len(cat.institutions) == 10
    assert (len(cat.degree_programs), len(cat.source_programs), len(cat.training_programs)) == (
        4,
        1,
        9,
    )
    courses = sum(len(p.courses) for p in cat.degree_programs.values())
    courses += sum(len(p.courses) for p in cat.source_programs.values())
    assert courses == 33
    assert len(cat.certificate_types) == 19
    assert (len(ds.rules), len(ds.learners), len(ds.records), len(ds.applications)) == (
        18,
        30,
        314,
        34,
    )


def test_labels_are_kept_but_levels_are_ordinals() -> None:
    ct = _load().catalog.certificate_types["CT-ELEC-L4"]
    assert ct.level == 4
    assert ct.level_label_zh.startswith("二级")
    assert _load().catalog.certificate_types["CT-FORKLIFT"].level is None


def test_credits_are_centicredits() -> None:
    ds = _load()
    course = ds.catalog.degree_programs["P-OU-LOG"].course("C-LOG-02")
    assert course is not None
    assert course.credits == 400
    assert ds.catalog.degree_programs["P-OU-LOG"].max_converted_credits == 1200
    first = ds.records[0].payload
    assert isinstance(first, AcademicCredit)
    assert (first.credits, first.grade) == (400, 8200)


@pytest.mark.parametrize(
    ("value", "centi"),
    [(2, 200), (1.5, 150), (1.1, 110), (0.29, 29), (0, 0), (-0.5, -50), (12.34, 1234)],
)
def test_to_centi_is_exact(value: float, centi: int) -> None:
    assert to_centi(value) == centi


@pytest.mark.parametrize("value", [1.005, True, "1", None, float("nan"), float("inf"), [1]])
def test_to_centi_refuses_what_is_not_exact_hundredths(value: object) -> None:
    with pytest.raises(InvalidInputError):
        to_centi(value)


# --- fast and checking paths agree ----------------------------------------------------------
def _mutations() -> list[dict[str, Any]]:
    base = next(o for o in OUTCOMES if o["kind"] == "academic_credit")
    cert = next(
        o for o in OUTCOMES if o["kind"] == "skill_certificate" and o["payload"]["expires_on"]
    )
    out = []
    for record, path, value in [
        (base, ("payload", "grade"), 72.5),
        (base, ("payload", "credits"), 1.5),
        (base, ("payload", "credits"), None),
        (base, ("posted_at",), "2024-07-15T10:00:00Z"),
        (base, ("posted_at",), "2024-07-15T23:30:00-02:00"),
        (base, ("name_on_record",), ""),
        (cert, ("payload", "expires_on"), None),
        (cert, ("payload", "certificate_no"), None),
    ]:
        changed = copy.deepcopy(record)
        target = changed
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
        out.append(changed)
    return out


@pytest.mark.parametrize("raw", OUTCOMES + _mutations(), ids=lambda r: str(r["id"]))
def test_fast_path_agrees_with_the_checking_path(raw: dict[str, Any]) -> None:
    fast = _fast_record(raw, {})
    slow = parse_record(raw)
    assert fast is None or fast == slow
    assert parse_records([raw]) == (slow,)


def test_datetime_posting_times_become_utc_dates() -> None:
    raw = copy.deepcopy(OUTCOMES[0]) | {"posted_at": "2024-07-15T23:30:00-02:00"}
    assert parse_record(raw).posted_at == dt.date(2024, 7, 16)


# --- malformed input -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("change", "where"),
    [
        (lambda r: r.pop("learner_id"), "outcomes[0].learner_id"),
        (lambda r: r.update(kind="diploma"), "outcomes[0].kind"),
        (lambda r: r.update(achieved_on="2024-13-01"), "outcomes[0].achieved_on"),
        (lambda r: r["payload"].update(grade="A"), "outcomes[0].payload.grade"),
        (lambda r: r["payload"].update(credits=1.234), "outcomes[0].payload.credits"),
        (lambda r: r.update(payload=[]), "outcomes[0].payload"),
    ],
)
def test_malformed_record_names_the_field(change: Any, where: str) -> None:
    rows = copy.deepcopy(OUTCOMES)
    change(rows[0])
    with pytest.raises(InvalidInputError) as info:
        _load(outcomes=rows)
    assert info.value.code == "input.invalid"
    assert str(info.value).startswith(where)


def test_repeated_ids_are_rejected() -> None:
    rows = copy.deepcopy(OUTCOMES)
    rows.append(copy.deepcopy(rows[0]))
    with pytest.raises(InvalidInputError) as info:
        _load(outcomes=rows)
    assert info.value.code == "input.duplicate_id"


def test_applications_need_their_target() -> None:
    base = {"id": "A", "learner_id": "L", "applied_on": "2025-01-01"}
    with pytest.raises(InvalidInputError):
        parse_application(base | {"type": "credit_conversion"})
    with pytest.raises(InvalidInputError):
        parse_application(base | {"type": "exam_exemption"})
    with pytest.raises(InvalidInputError):
        parse_application(base | {"type": "transfer", "program_id": "P"})


def test_unknown_source_condition_or_cap_is_refused_at_load() -> None:
    """Fail closed: a condition the engine does not know would be ignored and widen the rule."""
    row = copy.deepcopy(RULES[0])
    row["source"]["min_levl"] = 3
    with pytest.raises(InvalidInputError) as info:
        parse_rule(row)
    assert info.value.code == "input.unknown_condition"
    row = copy.deepcopy(RULES[0])
    row["caps"]["max_hours"] = 3
    with pytest.raises(InvalidInputError):
        parse_rule(row)


def test_rules_round_trip_through_dump() -> None:
    for row in RULES:
        rule = parse_rule(row)
        assert parse_rule(dump_rule(rule)) == rule
    fractional = copy.deepcopy(RULES[2]) | {"credits_per_outcome": 1.5}
    assert dump_rule(parse_rule(fractional))["credits_per_outcome"] == 1.5


# --- chains --------------------------------------------------------------------------------
def _rec(rid: str, **fields: Any) -> Any:
    base = copy.deepcopy(next(o for o in OUTCOMES if o["id"] == "O0001"))
    base.update(id=rid, dedup_key=f"k:{rid}", **fields)
    return parse_record(base)


def test_chains_follow_corrections_to_the_root() -> None:
    records = [
        _rec("A", posted_at="2024-01-01"),
        _rec("B", corrects="A", posted_at="2024-02-01"),
        _rec("C", corrects="B", posted_at="2024-02-01"),
    ]
    (chain,) = LearnerRecords.build("L01", records).chains
    assert chain.root_id == "A"
    assert [v.id for v in chain.versions] == ["A", "B", "C"]
    assert chain.effective(dt.date(2024, 1, 31)) is records[0]
    assert chain.effective(dt.date(2024, 2, 1)) is records[2]  # (posted_at, id): C > B
    assert chain.effective(dt.date(2023, 12, 31)) is None


def test_dangling_correction_and_cycles_are_rejected() -> None:
    with pytest.raises(InvalidInputError) as info:
        LearnerRecords.build("L01", [_rec("B", corrects="A")])
    assert info.value.code == "input.dangling_correction"
    with pytest.raises(InvalidInputError) as info:
        LearnerRecords.build("L01", [_rec("A", corrects="B"), _rec("B", corrects="A")])
    assert info.value.code == "input.correction_cycle"


def test_records_are_indexed_by_learner_only() -> None:
    with pytest.raises(InvalidInputError) as info:
        LearnerRecords.build("L02", [_rec("A")])
    assert info.value.code == "input.learner_mismatch"
    index = index_records(_load().records)
    assert len(index) == 30
    assert all(c.root.learner_id == lid for lid, lr in index.items() for c in lr.chains)
    assert {d.chain.root_id for lr in index.values() for d in lr.duplicates} == {"O0071", "O0077"}
    with pytest.raises(InvalidInputError):
        index_records([_rec("A"), _rec("A")])


def test_record_kind_follows_the_payload() -> None:
    assert _load().records[0].kind is RecordKind.ACADEMIC_CREDIT


# --- JSON Schemas --------------------------------------------------------------------------
RULE_SCHEMA = json.loads((SCHEMAS / "conversion-rule.v1.schema.json").read_text("utf-8"))
PROGRAM_SCHEMA = json.loads((SCHEMAS / "program.v1.schema.json").read_text("utf-8"))
REGISTRY = Registry().with_resources(
    [
        (RULE_SCHEMA["$id"], Resource.from_contents(RULE_SCHEMA)),
        (PROGRAM_SCHEMA["$id"], Resource.from_contents(PROGRAM_SCHEMA)),
    ]
)


def _validator(ref: str) -> Draft202012Validator:
    return Draft202012Validator({"$ref": ref}, registry=REGISTRY)


@pytest.mark.parametrize("schema", [RULE_SCHEMA, PROGRAM_SCHEMA], ids=["rule", "program"])
def test_schemas_are_valid_2020_12(schema: dict[str, Any]) -> None:
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)


def test_every_sample_rule_matches_the_rule_schema() -> None:
    errors = list(_validator(RULE_SCHEMA["$id"] + "#/$defs/rule_set").iter_errors(RULES))
    assert errors == []
    for row in RULES:
        assert list(_validator(RULE_SCHEMA["$id"]).iter_errors(dump_rule(parse_rule(row)))) == []


def test_every_sample_programme_matches_the_programme_schema() -> None:
    programs = _json("programs")
    assert (
        list(_validator(PROGRAM_SCHEMA["$id"] + "#/$defs/programs_file").iter_errors(programs))
        == []
    )
    one = _validator(PROGRAM_SCHEMA["$id"])
    for group in programs.values():
        for program in group:
            assert list(one.iter_errors(program)) == [], program["id"]


@pytest.mark.parametrize(
    "change",
    [
        lambda r: r["target"].pop("course_id"),
        lambda r: r["target"].update(mode="credit_transfer"),
        lambda r: r["source"].update(min_grade=60),
        lambda r: r["source"].update(occupations=[]),
        lambda r: r["caps"].update(max_credits=-1),
        lambda r: r.update(version=0),
        lambda r: r.update(credits_per_outcome=2),
        lambda r: r.update(extra=True),
    ],
)
def test_rule_schema_rejects_bad_shapes(change: Any) -> None:
    row = copy.deepcopy(RULES[0])
    change(row)
    assert list(_validator(RULE_SCHEMA["$id"]).iter_errors(row))


@pytest.mark.parametrize(
    ("change", "where"),
    [
        (lambda r: r.update(name_on_record=5), "outcomes[0].name_on_record"),
        (lambda r: r.update(achieved_on=20240101), "outcomes[0].achieved_on"),
        (lambda r: r["payload"].pop("grade"), "outcomes[0].payload.grade"),
        (
            lambda r: r.update(
                kind="training_hours", payload={"training_program_id": "T", "hours": -1}
            ),
            "outcomes[0].payload.hours",
        ),
        (
            lambda r: r.update(kind="work_experience", payload={"occupation_key": "x"}),
            "outcomes[0].payload.duration_months",
        ),
        (
            lambda r: r.update(
                kind="work_experience", payload={"occupation_key": "x", "duration_months": 1.5}
            ),
            "outcomes[0].payload.duration_months",
        ),
        (lambda r: r.update(kind="mystery"), "outcomes[0].kind"),
    ],
)
def test_more_malformed_records(change: Any, where: str) -> None:
    rows = copy.deepcopy(OUTCOMES[:1])
    change(rows[0])
    assert _fast_record(rows[0], {}) is None
    with pytest.raises(InvalidInputError) as info:
        parse_records(rows)
    assert str(info.value).startswith(where)


def test_malformed_catalogue_and_rules() -> None:
    programs = _json("programs")
    programs["degree_programs"][0]["courses"][0]["credits"] = -1
    with pytest.raises(InvalidInputError, match="credits"):
        _load(programs=programs)
    programs = _json("programs")
    programs["degree_programs"][0]["max_converted_credits"] = -1
    with pytest.raises(InvalidInputError, match="max_converted_credits"):
        _load(programs=programs)
    with pytest.raises(InvalidInputError, match="expected an array"):
        _load(outcomes={})
    row = copy.deepcopy(RULES[1])
    row["source"]["occupations"] = ["courier", 3]
    with pytest.raises(InvalidInputError, match=r"occupations\[1\]"):
        parse_rule(row)
    row = copy.deepcopy(RULES[1]) | {"version": None}
    with pytest.raises(InvalidInputError, match="version"):
        parse_rule(row)
    row = copy.deepcopy(RULES[1]) | {"version": 1.5}
    with pytest.raises(InvalidInputError, match="integer"):
        parse_rule(row)
