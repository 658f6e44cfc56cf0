"""Record body schemas and validation: the whole sample converts and validates; bad input fails
with a stable code and a JSON path; every schema file is valid Draft 2020-12 and well named."""
# ruff: noqa: E501 - the bad-input table below keeps one case per line

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from sample_data import SAMPLE

from creditbank.core import records
from creditbank.core.identity import name_commitment
from creditbank.core.records import (
    ENTRY_SCHEMAS,
    PAYLOAD_SCHEMAS,
    RECORD_KINDS,
    SCHEMA_BASE_URI,
    credits_to_centi,
    load_schema,
    payload_from_sample,
    record_body_from_sample,
    record_entry_type_from_sample,
    revocation_body_from_sample,
    schema_names,
    validate_record_body,
)
from creditbank.errors import InvalidInputError

REPO = Path(__file__).resolve().parents[2]
OUTCOMES: list[dict[str, Any]] = json.loads((SAMPLE / "outcomes.json").read_text("utf-8"))
CERT_TYPES: dict[str, dict[str, Any]] = {
    t["id"]: t for t in json.loads((SAMPLE / "certificate_types.json").read_text("utf-8"))
}
AS_OF = date(2025, 12, 31)  # the sample's evaluation date
LEARNER = "LRN-0123456789ABCDEFGHJK"
SALT = bytes(range(16))
SCHEMA_NAME_RE = re.compile(r"^[a-z][a-z0-9-]*\.v[1-9][0-9]*\.schema\.json$")


def _body(outcome: dict[str, Any]) -> dict[str, Any]:
    return record_body_from_sample(
        outcome,
        learner=LEARNER,
        name_commitment=name_commitment(SALT, outcome["name_on_record"]),
        certificate_types=CERT_TYPES,
    )


def _first(kind: str, **match: Any) -> dict[str, Any]:
    for o in OUTCOMES:
        if o["kind"] == kind and o["corrects"] is None and all(o[k] == v for k, v in match.items()):
            return o
    raise AssertionError(f"no sample outcome of kind {kind}")


def _valid(kind: str) -> dict[str, Any]:
    return _body(_first(kind))


def _permit_body() -> dict[str, Any]:
    o = next(
        o
        for o in OUTCOMES
        if o["kind"] == "skill_certificate" and o["payload"]["expires_on"] is not None
    )
    return _body(o)


def _fails(entry_type: str, body: Any, code: str, *, today: date = AS_OF) -> InvalidInputError:
    with pytest.raises(InvalidInputError) as info:
        validate_record_body(entry_type, body, today=today)
    assert info.value.code == code, str(info.value)
    return info.value


# --- the sample ---------------------------------------------------------------------------
def test_sample_has_every_kind() -> None:
    assert {o["kind"] for o in OUTCOMES} == set(RECORD_KINDS)
    assert len(OUTCOMES) == 314


@pytest.mark.parametrize("outcome", OUTCOMES, ids=[o["id"] for o in OUTCOMES])
def test_every_sample_outcome_converts_and_validates(outcome: dict[str, Any]) -> None:
    entry_type = record_entry_type_from_sample(outcome)
    body = _body(outcome)
    validate_record_body(entry_type, body, today=AS_OF)
    # also on the day it was posted: nothing in it is after its own posting date
    validate_record_body(entry_type, body, today=date.fromisoformat(outcome["posted_at"]))
    # no personal data and no sample-only bookkeeping in the body
    text = json.dumps(body, ensure_ascii=False)
    assert outcome["name_on_record"] not in text
    assert outcome["learner_id"] not in json.dumps(list(body.values())[:3])
    assert not {"learner_id", "name_on_record", "issuer_id", "posted_by", "note"} & set(body)
    assert body["learner"] == LEARNER


def test_sample_revocations_validate() -> None:
    revoked = [o for o in OUTCOMES if o["revoked_at"] is not None]
    assert revoked
    for o in revoked:
        body = revocation_body_from_sample(o)
        assert body is not None
        assert body["effective_on"] == o["revoked_at"]
        validate_record_body("record.revoked", body, today=AS_OF)
    assert revocation_body_from_sample(_first("academic_credit")) is None


def test_revocation_body_on_behalf_of() -> None:
    o = next(o for o in OUTCOMES if o["revoked_at"] is not None)
    body = revocation_body_from_sample(o, on_behalf_of="INS-VS")
    assert body is not None
    assert body["on_behalf_of"] == "INS-VS"
    validate_record_body("record.revoked", body, today=AS_OF)


def test_academic_credit_conversion() -> None:
    o = _first("academic_credit")
    payload = payload_from_sample(o)
    assert payload["credits_centi"] == o["payload"]["credits"] * 100
    assert "credits" not in payload
    assert payload["course_name_zh"] == o["payload"]["course_name_zh"]  # every field kept


def test_float_sample_credits_become_exact_centicredits() -> None:
    o = copy.deepcopy(_first("academic_credit"))
    o["payload"]["credits"] = 1.5
    body = _body(o)
    assert body["payload"]["credits_centi"] == 150
    validate_record_body("record.posted", body, today=AS_OF)


def test_skill_certificate_gains_type_fields() -> None:
    o = _first("skill_certificate", dedup_key="cert:courier:SYN-COUR-2023-0001")
    payload = payload_from_sample(o, certificate_types=CERT_TYPES)
    assert payload == {
        "certificate_type_id": "CT-COURIER-L2",
        "certificate_no": "SYN-COUR-2023-0001",
        "expires_on": None,
        "occupation": "courier",
        "level": 2,
        "level_label_zh": "四级/中级工",
        "issued_on": o["achieved_on"],
    }


def test_permit_has_null_level_and_expiry() -> None:
    body = _permit_body()
    assert body["payload"]["level"] is None
    assert body["payload"]["expires_on"] is not None
    validate_record_body("record.posted", body, today=AS_OF)


def test_skill_certificate_needs_its_type() -> None:
    o = _first("skill_certificate")
    with pytest.raises(InvalidInputError) as info:
        payload_from_sample(o)
    assert info.value.code == "record.certificate_type"
    with pytest.raises(InvalidInputError) as info:
        payload_from_sample(o, certificate_types={})
    assert info.value.code == "record.certificate_type"


def test_correction_from_sample() -> None:
    o = next(o for o in OUTCOMES if o["corrects"] is not None)
    assert record_entry_type_from_sample(o) == "record.corrected"
    body = _body(o)
    assert body["corrects"] == o["corrects"]
    validate_record_body("record.corrected", body, today=AS_OF)
    with pytest.raises(InvalidInputError):
        validate_record_body("record.posted", body, today=AS_OF)  # corrects is not a posted field


def test_evidence_prefix_dropped() -> None:
    o = _first("training_hours")
    body = _body(o)
    assert "sha256:" + body["evidence"]["sha256"] == o["evidence"]["sha256"]
    o2 = copy.deepcopy(o)
    del o2["evidence"]
    assert "evidence" not in _body(o2)


def test_on_behalf_of_set_only_for_custodian_posts() -> None:
    o = copy.deepcopy(_first("academic_credit", issuer_id="INS-VS"))
    assert "on_behalf_of" not in _body(o)
    o["posted_by"] = "BANK"  # the closed school's custodian
    body = _body(o)
    assert body["on_behalf_of"] == "INS-VS"
    validate_record_body("record.posted", body, today=AS_OF)
    upload = next(o for o in OUTCOMES if o["posted_by"] == o["learner_id"])
    assert "on_behalf_of" not in _body(upload)  # a learner's own upload


@pytest.mark.parametrize(
    ("credits", "centi"),
    [(4, 400), (0, 0), (1.5, 150), (0.25, 25), (0.1, 10), (2.75, 275), (Decimal("2.5"), 250)],
)
def test_credits_to_centi(credits: object, centi: int) -> None:
    assert credits_to_centi(credits) == centi


@pytest.mark.parametrize(
    "credits",
    [
        1.234,
        0.001,
        -1,
        -0.5,
        "4",
        "abc",
        True,
        None,
        float("nan"),
        float("inf"),
        1e300,
        Decimal("NaN"),
        [4],
    ],
)
def test_credits_to_centi_refuses(credits: object) -> None:
    with pytest.raises(InvalidInputError) as info:
        credits_to_centi(credits)
    assert info.value.code == "record.credits"


@pytest.mark.parametrize("credits", [-1, "four", 1.005])
def test_sample_bad_credits_refused(credits: object) -> None:
    o = copy.deepcopy(_first("academic_credit"))
    o["payload"]["credits"] = credits
    with pytest.raises(InvalidInputError) as info:
        _body(o)
    assert info.value.code == "record.credits"


def test_sample_missing_fields_and_unknown_kind() -> None:
    o = copy.deepcopy(_first("academic_credit"))
    del o["payload"]["credits"]
    with pytest.raises(InvalidInputError) as info:
        _body(o)
    assert info.value.code == "record.sample"
    o = copy.deepcopy(_first("academic_credit"))
    del o["dedup_key"]
    with pytest.raises(InvalidInputError) as info:
        _body(o)
    assert info.value.code == "record.sample"
    o = copy.deepcopy(_first("academic_credit"))
    o["payload"] = [1]
    with pytest.raises(InvalidInputError) as info:
        _body(o)
    assert info.value.code == "record.sample"
    o = copy.deepcopy(_first("academic_credit"))
    o["kind"] = "diploma"
    with pytest.raises(InvalidInputError) as info:
        _body(o)
    assert info.value.code == "record.schema"
    with pytest.raises(InvalidInputError) as info:
        record_entry_type_from_sample([])  # type: ignore[arg-type]
    assert info.value.code == "record.sample"
    with pytest.raises(InvalidInputError) as info:
        revocation_body_from_sample("x")  # type: ignore[arg-type]
    assert info.value.code == "record.sample"


# --- bad input ----------------------------------------------------------------------------
Mutation = Callable[[dict[str, Any]], None]


def _set(path: str, value: Any) -> Mutation:
    def mutate(body: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target = body
        for p in parents:
            target = target[p]
        target[last] = value

    return mutate


def _delete(path: str) -> Mutation:
    def mutate(body: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target = body
        for p in parents:
            target = target[p]
        del target[last]

    return mutate


def _both(*mutations: Mutation) -> Mutation:
    def mutate(body: dict[str, Any]) -> None:
        for m in mutations:
            m(body)

    return mutate


# (id, kind, mutation, code, JSON path named in the message)
# fmt: off
BAD: list[tuple[str, str, Mutation, str, str]] = [
    # one schema violation per kind, and the integer rules
    ("academic-grade-101", "academic_credit", _set("payload.grade", 101), "record.schema", "$.payload.grade"),
    ("academic-grade-float", "academic_credit", _set("payload.grade", 82.0), "record.schema", "$.payload.grade"),
    ("academic-grade-bool", "academic_credit", _set("payload.grade", True), "record.schema", "$.payload.grade"),
    ("academic-old-credits-name", "academic_credit", _set("payload.credits", 4), "record.schema", "$.payload"),
    ("credits-negative", "academic_credit", _set("payload.credits_centi", -100), "record.credits", "$.payload.credits_centi"),
    ("credits-non-numeric", "academic_credit", _set("payload.credits_centi", "400"), "record.credits", "$.payload.credits_centi"),
    ("credits-float", "academic_credit", _set("payload.credits_centi", 1.5), "record.credits", "$.payload.credits_centi"),
    ("credits-integral-float", "academic_credit", _set("payload.credits_centi", 400.0), "record.credits", "$.payload.credits_centi"),
    ("credits-missing", "academic_credit", _delete("payload.credits_centi"), "record.schema", "$.payload"),
    ("skill-missing-certificate-no", "skill_certificate", _delete("payload.certificate_no"), "record.schema", "$.payload"),
    ("level-0", "skill_certificate", _set("payload.level", 0), "record.level_range", "$.payload.level"),
    ("level-6", "skill_certificate", _set("payload.level", 6), "record.level_range", "$.payload.level"),
    ("level-text", "skill_certificate", _set("payload.level", "3"), "record.schema", "$.payload.level"),
    ("expiry-not-a-date", "skill_certificate", _set("payload.expires_on", "2030-02-30"), "record.schema", "$.payload.expires_on"),
    ("expiry-before-issue", "skill_certificate", _set("payload.expires_on", "2020-01-01"), "record.expiry_before_issue", "$.payload.expires_on"),
    ("training-zero-hours", "training_hours", _set("payload.hours", 0), "record.schema", "$.payload.hours"),
    ("training-extra-field", "training_hours", _set("payload.venue", "x"), "record.schema", "$.payload"),
    ("competition-bad-tier", "competition_award", _set("payload.tier", "world"), "record.schema", "$.payload.tier"),
    ("competition-rank-0", "competition_award", _set("payload.rank", 0), "record.schema", "$.payload.rank"),
    ("work-negative-months", "work_experience", _set("payload.duration_months", -1), "record.schema", "$.payload.duration_months"),
    ("work-end-before-start", "work_experience", _set("payload.end_on", "2000-01-01"), "record.end_before_start", "$.payload.end_on"),
    # the common body
    ("unknown-kind", "academic_credit", _set("kind", "diploma"), "record.schema", "$.kind"),
    ("kind-payload-mismatch", "academic_credit", _set("kind", "training_hours"), "record.schema", "$.payload"),
    ("extra-property", "academic_credit", _set("name", "王建国"), "record.schema", "$"),
    ("missing-learner", "academic_credit", _delete("learner"), "record.schema", "$"),
    ("learner-national-id", "academic_credit", _set("learner", "11010519491231002X"), "record.schema", "$.learner"),
    ("learner-trailing-newline", "academic_credit", _set("learner", LEARNER + "\n"), "record.schema", "$.learner"),
    ("learner-lower-case", "academic_credit", _set("learner", LEARNER.lower()), "record.schema", "$.learner"),
    ("record-id-space", "academic_credit", _set("record_id", "O 1"), "record.schema", "$.record_id"),
    ("dedup-key-empty", "academic_credit", _set("dedup_key", ""), "record.schema", "$.dedup_key"),
    ("dedup-key-control", "academic_credit", _set("dedup_key", "a\tb"), "record.schema", "$.dedup_key"),
    ("commitment-short", "academic_credit", _set("name_commitment", "AAAA"), "record.schema", "$.name_commitment"),
    ("commitment-non-canonical", "academic_credit", _set("name_commitment", "A" * 42 + "B="), "record.schema", "$.name_commitment"),
    ("evidence-prefixed", "academic_credit", _set("evidence.sha256", "sha256:" + "0" * 64), "record.schema", "$.evidence.sha256"),
    ("evidence-upper-hex", "academic_credit", _set("evidence.sha256", "A" * 64), "record.schema", "$.evidence.sha256"),
    ("evidence-extra", "academic_credit", _set("evidence.md5", "0"), "record.schema", "$.evidence"),
    ("achieved-on-slashes", "academic_credit", _set("achieved_on", "2024/07/10"), "record.schema", "$.achieved_on"),
    ("achieved-on-feb-29-non-leap", "academic_credit", _set("achieved_on", "2023-02-29"), "record.schema", "$.achieved_on"),
    ("achieved-on-datetime", "academic_credit", _set("achieved_on", "2024-07-10T00:00:00Z"), "record.schema", "$.achieved_on"),
    ("posted-at-not-a-date", "academic_credit", _set("posted_at", "yesterday"), "record.schema", "$.posted_at"),
    ("on-behalf-of-bad", "academic_credit", _set("on_behalf_of", ""), "record.schema", "$.on_behalf_of"),
    # dates after "today" (AS_OF)
    ("future-achieved-on", "academic_credit", _set("achieved_on", "2026-01-01"), "record.future_date", "$.achieved_on"),
    ("future-posted-at", "academic_credit", _set("posted_at", "2026-01-01"), "record.future_date", "$.posted_at"),
    ("future-issued-on", "skill_certificate", _set("payload.issued_on", "2026-01-01"), "record.future_date", "$.payload.issued_on"),
    ("future-start-on", "work_experience", _both(_set("payload.start_on", "2026-01-01"), _set("payload.end_on", "2026-02-01")), "record.future_date", "$.payload.start_on"),
    ("future-end-on", "work_experience", _set("payload.end_on", "2026-01-01"), "record.future_date", "$.payload.end_on"),
]
# fmt: on


@pytest.mark.parametrize(
    ("kind", "mutate", "code", "path"), [b[1:] for b in BAD], ids=[b[0] for b in BAD]
)
def test_bad_record_body(kind: str, mutate: Mutation, code: str, path: str) -> None:
    body = _valid(kind)
    mutate(body)
    err = _fails("record.posted", body, code)
    assert f"{path}:" in str(err)
    assert err.extra["path"] == path


def test_error_message_does_not_echo_values() -> None:
    body = _valid("academic_credit")
    body["learner"] = "11010519491231002X"
    err = _fails("record.posted", body, "record.schema")
    assert "11010519491231002X" not in str(err)
    assert all("11010519491231002X" not in e["message"] for e in err.extra["errors"])


def test_all_errors_reported() -> None:
    body = _valid("academic_credit")
    body["payload"]["grade"] = -1
    body["payload"]["credits_centi"] = -1
    del body["learner"]
    err = _fails("record.posted", body, "record.schema")  # the shallowest error leads
    codes = {(e["path"], e["code"]) for e in err.extra["errors"]}
    assert ("$.payload.credits_centi", "record.credits") in codes
    assert ("$.payload.grade", "record.schema") in codes
    assert ("$", "record.schema") in codes


def test_expiry_on_issue_day_and_permit_expiry_in_future_are_fine() -> None:
    body = _permit_body()
    validate_record_body("record.posted", body, today=AS_OF)  # expires after as_of
    body["payload"]["expires_on"] = body["payload"]["issued_on"]
    validate_record_body("record.posted", body, today=AS_OF)


def test_dates_on_today_are_fine() -> None:
    body = _valid("academic_credit")
    today = date.fromisoformat(body["posted_at"])
    validate_record_body("record.posted", body, today=today)
    _fails(
        "record.posted", body, "record.future_date", today=date.fromordinal(today.toordinal() - 1)
    )
    validate_record_body("record.posted", body, today=date.max)


def test_body_and_entry_type_must_be_right() -> None:
    _fails("record.posted", [], "record.schema")
    _fails("record.posted", "x", "record.schema")
    _fails("record.issued", _valid("academic_credit"), "record.entry_type")
    _fails("rules.published", _valid("academic_credit"), "record.entry_type")


def test_correction_rules() -> None:
    body = _valid("academic_credit")
    _fails("record.corrected", body, "record.schema")  # corrects missing
    body["corrects"] = "O0001-old"
    validate_record_body("record.corrected", body, today=AS_OF)
    body["corrects"] = body["record_id"]
    _fails("record.corrected", body, "record.self_correction")
    body["corrects"] = ""
    _fails("record.corrected", body, "record.schema")


def _revocation() -> dict[str, Any]:
    return {"record_id": "O0052", "reason": "考核违规 / irregularity", "effective_on": "2025-07-20"}


@pytest.mark.parametrize(
    ("mutate", "code"),
    [
        (_set("reason", ""), "record.schema"),
        (_set("reason", "   "), "record.schema"),
        (_set("reason", "line\nbreak"), "record.schema"),
        (_delete("reason"), "record.schema"),
        (_delete("effective_on"), "record.schema"),
        (_set("effective_on", "2025-13-01"), "record.schema"),
        (_set("effective_on", "2026-01-01"), "record.future_date"),
        (_set("learner", LEARNER), "record.schema"),
        (_set("on_behalf_of", "INS VS"), "record.schema"),
    ],
    ids=[
        "empty-reason",
        "blank-reason",
        "control-in-reason",
        "no-reason",
        "no-date",
        "bad-date",
        "future",
        "extra",
        "bad-on-behalf-of",
    ],
)
def test_bad_revocation(mutate: Mutation, code: str) -> None:
    body = _revocation()
    validate_record_body("record.revoked", body, today=AS_OF)
    mutate(body)
    _fails("record.revoked", body, code)


def test_body_mapping_not_mutated() -> None:
    body = _valid("skill_certificate")
    before = copy.deepcopy(body)
    validate_record_body("record.posted", body, today=AS_OF)
    assert body == before


# --- the schema files ---------------------------------------------------------------------
SCHEMA_DIR = REPO / "schemas"
SCHEMA_FILES = sorted(SCHEMA_DIR.glob("*.json"))


def test_schemas_dir_is_the_packaged_one() -> None:
    assert SCHEMA_DIR.resolve() == (REPO / "creditbank" / "schemas").resolve()
    assert set(schema_names()) == {p.name for p in SCHEMA_FILES if p.name.endswith(".schema.json")}
    assert set(ENTRY_SCHEMAS.values()) | set(PAYLOAD_SCHEMAS.values()) <= set(schema_names())
    assert set(PAYLOAD_SCHEMAS) == set(RECORD_KINDS)


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=[p.name for p in SCHEMA_FILES])
def test_schema_file_is_valid_draft_2020_12(path: Path) -> None:
    assert SCHEMA_NAME_RE.match(path.name), f"{path.name} is not <name>.v<MAJOR>.schema.json"
    doc = json.loads(path.read_text("utf-8"))
    assert doc["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(doc)
    if path.name.startswith("record-"):
        assert doc["$id"] == SCHEMA_BASE_URI + path.name


def _walk(node: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    if isinstance(node, dict):
        found.append(node)
        for v in node.values():
            found += _walk(v)
    elif isinstance(node, list):
        for v in node:
            found += _walk(v)
    return found


@pytest.mark.parametrize(
    "name", sorted(set(ENTRY_SCHEMAS.values()) | set(PAYLOAD_SCHEMAS.values()))
)
def test_record_schemas_are_strict_and_float_free(name: str) -> None:
    doc = load_schema(name)
    for sub in _walk(doc):
        if sub.get("type") == "object" and "properties" in sub:
            assert sub.get("additionalProperties") is False, name
        types = sub.get("type")
        assert types != "number", name
        assert not (isinstance(types, list) and "number" in types), name


def test_load_schema() -> None:
    a = load_schema("record-posted.v1.schema.json")
    a["title"] = "changed"
    assert load_schema("record-posted.v1.schema.json")["title"] != "changed"
    with pytest.raises(InvalidInputError) as info:
        load_schema("nope.v1.schema.json")
    assert info.value.code == "record.unknown_schema"


def test_validators_are_cached() -> None:
    name = ENTRY_SCHEMAS["record.posted"]
    assert records._validator(name) is records._validator(name)


def test_optional_fields_may_be_absent() -> None:
    o = copy.deepcopy(_first("competition_award"))
    o["posted_at"] = None
    o["evidence"] = {"sha256": "ab" * 32}  # already bare hex
    body = _body(o)
    assert "posted_at" not in body
    assert body["evidence"] == {"sha256": "ab" * 32}
    validate_record_body("record.posted", body, today=AS_OF)
    del body["evidence"]
    validate_record_body("record.posted", body, today=AS_OF)
