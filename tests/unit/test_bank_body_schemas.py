"""Schemas of the bank-authored entry bodies (registry, rules, conversion), and of every file.

The bodies the real code paths build are checked in tests/service/test_bank_body_enforcement.py;
here: every packaged schema is a valid Draft 2020-12 schema, every entry type the bank authors
has one, and :func:`validate_bank_body` refuses malformed bodies with the type's code, on the
fast path and the authoritative path alike.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from creditbank.core.entries import ENTRY_TYPES
from creditbank.core.records import (
    BANK_ENTRY_SCHEMAS,
    ENTRY_SCHEMAS,
    SCHEMA_BASE_URI,
    SCHEMA_FILE_RE,
    fast_accepts,
    load_schema,
    schema_names,
    validate_bank_body,
)
from creditbank.core.signing import Ed25519Signer, b64encode, entry_key_id
from creditbank.errors import InvalidInputError

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_DIR = ROOT / "schemas"
KEY = Ed25519Signer.from_seed(bytes(range(32))).public_bytes
KEY_ID = entry_key_id(KEY)
LEARNER = "LRN-0123456789ABCDEFGHJK"

#: a body of each bank-authored type, shaped as the service code builds it
VALID: dict[str, dict[str, Any]] = {
    "institution.registered": {
        "institution_id": "INS-A",
        "kind": "college",
        "name_zh": "甲学院",
        "name_en": "College A",
        "keys": [{"key_id": KEY_ID, "public_key": b64encode(KEY)}],
    },
    "institution.key_added": {
        "institution_id": "INS-A",
        "key_id": KEY_ID,
        "public_key": b64encode(KEY),
    },
    "institution.key_revoked": {
        "institution_id": "INS-A",
        "key_id": KEY_ID,
        "effective_at": "2026-01-15T09:00:00.250000Z",
        "reason": "key leaked",
    },
    "institution.closed": {
        "institution_id": "INS-A",
        "closed_on": "2025-12-31",
        "custodian": "BANK",
    },
    "rules.published": {
        "rules": [
            {
                "rule_key": "R-CERT",
                "version": 1,
                "effective_from": "2024-01-01",
                "effective_to": None,
                "priority": 10,
                "target": {"mode": "elective_fixed", "program_id": "P-1"},
                "source": {"kind": "skill_certificate", "occupations": ["welder"], "min_level": 2},
                "caps": {"max_credits_centi": 800},
                "name_zh": "证书",
                "name_en": "Certificate",
                "credits_per_outcome_centi": 200,
            },
            {
                "rule_key": "R-AWARD",
                "version": 2,
                "effective_from": "2024-01-01",
                "effective_to": "2026-12-31",
                "priority": 0,
                "target": {"mode": "elective_by_tier", "program_id": "P-1"},
                "source": {
                    "kind": "competition_award",
                    "credits_by_tier_centi": {"national": 400, "provincial": 150},
                    "max_rank": 3,
                },
                "caps": {},
                "name_zh": "",
                "name_en": "",
                "recency_years": 5,
            },
        ],
        "degree_programs": [
            {
                "id": "P-1",
                "institution_id": "INS-A",
                "name_zh": "专业",
                "name_en": "Programme",
                "courses": [{"id": "C-1", "credits_centi": 350, "name_zh": "课", "name_en": "C"}],
                "max_converted_credits_centi": 3000,
            }
        ],
        "source_programs": [],
        "training_programs": [
            {
                "id": "T-1",
                "institution_id": "INS-B",
                "field": "it",
                "name_zh": "培训",
                "name_en": "Training",
            }
        ],
        "certificate_types": [
            {
                "id": "CT-1",
                "occupation_key": "welder",
                "level": None,
                "field": "manufacturing",
                "family": "operating_permit",
                "validity_years": 6,
                "occupation_zh": "焊工",
                "occupation_en": "Welder",
                "level_label_zh": "",
                "level_label_en": "",
            }
        ],
    },
    "conversion.decided": {
        "application_id": "APP-0000000001",
        "learner": LEARNER,
        "type": "credit_conversion",
        "applied_on": "2026-01-10",
        "rules_entry": 7,
        "reason": "granted",
        "credits_centi": 200,
        "explanation_zh": "准予",
        "explanation_en": "granted",
        "program_id": "P-1",
        "grants": [
            {
                "rule_key": "R-CERT",
                "rule_version": 1,
                "mode": "elective_fixed",
                "credits_centi": 200,
                "nominal_centi": 200,
                "sources": [
                    {
                        "owner": "INS-B",
                        "record_id": "O0002",
                        "entry": 12,
                        "root_record_id": "O0001",
                        "root_entry": 11,
                    }
                ],
                "explanation_zh": "",
                "explanation_en": "",
                "bound_by": "max_credits",
            }
        ],
        "rule_notes": [
            {
                "rule_key": "R-AWARD",
                "rule_version": 2,
                "mode": "elective_by_tier",
                "reason": "no_candidate",
                "records": [],
                "explanation_zh": "",
                "explanation_en": "",
            }
        ],
        "record_notes": [
            {
                "record": "O0003@INS-C",
                "version": None,
                "issue": "duplicate",
                "related": "O0001",
                "explanation_zh": "重复",
                "explanation_en": "duplicate",
            }
        ],
    },
    "conversion.voided": {
        "learner": LEARNER,
        "application_id": "APP-0000000001",
        "decision_entry": 20,
        "grant_no": 0,
        "rule_key": "R-CERT",
        "rule_version": 1,
        "credits_centi": 200,
        "voided_at": "2026-01-12",
        "revocation_entry": 21,
        "owner": "INS-B",
        "record_id": "O0001",
        "reason": "source record O0001 revoked: fraud",
    },
    "transcript.issued": {
        "document_id": "DOC-0123456789ABCDEFGHJKMNPQRS",
        "kind": "transcript",
        "learner": LEARNER,
        "credential_id": "urn:uuid:0f8fad5b-d9cb-469f-a165-70867728950e",
        "credential_digest": "sha256:" + "ab" * 32,
        "pdf_digest": "sha256:" + "cd" * 32,
        "status_list": 1,
        "status_index": 0,
        "checkpoint_size": 57,
        "items": 12,
    },
    "transcript.revoked": {
        "document_id": "DOC-0123456789ABCDEFGHJKMNPQRS",
        "learner": LEARNER,
        "issued_entry": 58,
        "revoked_by": "learner",
        "reason": "superseded by a newer transcript",
    },
}

EXAM_DECISION: dict[str, Any] = {
    **{k: v for k, v in VALID["conversion.decided"].items() if k != "program_id"},
    "type": "exam_exemption",
    "reason": "exam_no_matching_record",
    "credits_centi": 0,
    "grants": [],
    "certificate_type_id": "CT-1",
    "exam": {
        "certificate_type_id": "CT-1",
        "granted": False,
        "exam_part": None,
        "rule_key": None,
        "rule_version": None,
        "basis": None,
    },
}


def _set(body: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A deep copy with ``value`` at ``path`` (dots; digits index lists; ``...=DEL`` deletes)."""
    out = copy.deepcopy(body)
    *parents, last = path.split(".")
    node: Any = out
    for p in parents:
        node = node[int(p)] if p.isdigit() else node[p]
    if value is DEL:
        del node[int(last) if last.isdigit() else last]
    elif last.isdigit():
        node[int(last)] = value
    else:
        node[last] = value
    return out


DEL = object()

#: (type, path, value) — each makes the body invalid
MALFORMED: list[tuple[str, str, Any]] = [
    ("institution.registered", "name_en", DEL),
    ("institution.registered", "extra", 1),
    ("institution.registered", "institution_id", "-bad"),
    ("institution.registered", "institution_id", "I" * 65),
    ("institution.registered", "institution_id", "INS-A\n"),
    ("institution.registered", "kind", "university"),
    ("institution.registered", "name_zh", ""),
    ("institution.registered", "name_zh", "   "),
    ("institution.registered", "name_en", "x" * 201),
    ("institution.registered", "keys", []),
    ("institution.registered", "keys.0.key_id", "ed25519:0123"),
    ("institution.registered", "keys.0.key_id", "ED25519:0123456789abcdef"),
    ("institution.registered", "keys.0.public_key", "not base64!"),
    ("institution.registered", "keys.0.comment", "x"),
    ("institution.registered", "keys", "all"),
    ("institution.key_added", "public_key", DEL),
    ("institution.key_added", "key_id", "ed25519:0123456789ABCDEF"),
    ("institution.key_added", "note", "x"),
    ("institution.key_added", "institution_id", 7),
    ("institution.key_revoked", "effective_at", "2026-01-15 09:00:00Z"),
    ("institution.key_revoked", "effective_at", "2026-01-15T09:00:00+08:00"),
    ("institution.key_revoked", "effective_at", "2026-13-15T09:00:00Z"),
    ("institution.key_revoked", "reason", ""),
    ("institution.key_revoked", "reason", "x" * 1001),
    ("institution.key_revoked", "key_id", DEL),
    ("institution.closed", "closed_on", "2025-02-30"),
    ("institution.closed", "closed_on", "20251231"),
    ("institution.closed", "custodian", None),
    ("institution.closed", "reason", "merger"),
    ("rules.published", "rules.0.version", 1.0),
    ("rules.published", "rules.0.version", 0),
    ("rules.published", "rules.0.credits_per_outcome_centi", 1.5),
    ("rules.published", "rules.0.credits_per_outcome_centi", -1),
    ("rules.published", "rules.0.caps", DEL),
    ("rules.published", "rules.0.caps.max_credits", 8),
    ("rules.published", "rules.0.target.mode", "bonus"),
    ("rules.published", "rules.0.source.course_ids", ["C-1"]),
    ("rules.published", "rules.0.effective_to", "soon"),
    ("rules.published", "rules.1.source.credits_by_tier_centi.global", 100),
    ("rules.published", "rules.1.source.credits_by_tier_centi.national", 4.0),
    ("rules.published", "degree_programs.0.courses.0.credits_centi", "350"),
    ("rules.published", "degree_programs.0.institution_id", "bad id"),
    ("rules.published", "certificate_types.0.level", DEL),
    ("rules.published", "training_programs", DEL),
    ("rules.published", "extra", []),
    ("conversion.decided", "credits_centi", 2.0),
    ("conversion.decided", "credits_centi", True),
    ("conversion.decided", "learner", "LRN-short"),
    ("conversion.decided", "application_id", "APP 1"),
    ("conversion.decided", "reason", "because"),
    ("conversion.decided", "rules_entry", -1),
    ("conversion.decided", "grants.0.sources.0.entry", "12"),
    ("conversion.decided", "grants.0.sources.0.name", "王建国"),
    ("conversion.decided", "grants.0.sources", []),
    ("conversion.decided", "grants.0.bound_by", "max_hours"),
    ("conversion.decided", "grants.0.nominal_centi", DEL),
    ("conversion.decided", "record_notes.0.issue", "name_differs"),
    ("conversion.decided", "record_notes.0.related", DEL),
    ("conversion.decided", "rule_notes.0.mode", "bonus"),
    ("conversion.decided", "name_on_record", "王建国"),
    ("conversion.decided", "exam", None),
    ("conversion.voided", "grant_no", 0.0),
    ("conversion.voided", "decision_entry", DEL),
    ("conversion.voided", "voided_at", "2026-01-12T00:00:00Z"),
    ("conversion.voided", "owner", "INS B"),
    ("conversion.voided", "record_id", "-x"),
    ("conversion.voided", "reason", ""),
    ("conversion.voided", "extra", None),
    ("transcript.issued", "document_id", "DOC-0123456789ABCDEFGHJKMNPQRU"),
    ("transcript.issued", "document_id", "DOC-0123"),
    ("transcript.issued", "kind", "diploma"),
    ("transcript.issued", "learner", "L01"),
    ("transcript.issued", "credential_digest", "ab" * 32),
    ("transcript.issued", "pdf_digest", "sha256:" + "AB" * 32),
    ("transcript.issued", "status_list", 0),
    ("transcript.issued", "status_index", -1),
    ("transcript.issued", "status_index", 1.0),
    ("transcript.issued", "items", 0),
    ("transcript.issued", "credential_id", "0f8fad5b-d9cb-469f-a165-70867728950e"),
    ("transcript.issued", "name", "王建国"),
    ("transcript.issued", "checkpoint_size", DEL),
    ("transcript.revoked", "revoked_by", "employer"),
    ("transcript.revoked", "reason", ""),
    ("transcript.revoked", "reason", "line\nbreak"),
    ("transcript.revoked", "issued_entry", "58"),
    ("transcript.revoked", "learner", DEL),
    ("transcript.revoked", "extra", 1),
]

CODES = {
    "institution": "registry.schema",
    "rules": "rules.schema",
    "conversion": "conversion.schema",
    "transcript": "transcript.schema",
}


def _case_id(case: tuple[str, str, Any]) -> str:
    type_, path, value = case
    return f"{type_}:{path}={'DEL' if value is DEL else repr(value)[:20]}"


# -- the files --------------------------------------------------------------------------------
def test_every_schema_file_is_a_valid_2020_12_schema() -> None:
    files = sorted(p.name for p in SCHEMA_DIR.glob("*.json"))
    assert files == list(schema_names())
    for name in files:
        assert SCHEMA_FILE_RE.match(name), name
        doc = json.loads((SCHEMA_DIR / name).read_text("utf-8"))
        assert doc["$schema"] == "https://json-schema.org/draft/2020-12/schema", name
        assert doc["$id"] == SCHEMA_BASE_URI + name, name
        Draft202012Validator.check_schema(doc)
        assert doc == load_schema(name)


def test_every_entry_type_the_bank_authors_has_a_schema() -> None:
    authored = {
        t
        for t in ENTRY_TYPES
        if t.split(".")[0] in ("institution", "rules", "conversion", "transcript")
    }
    assert set(BANK_ENTRY_SCHEMAS) == authored
    for type_, name in BANK_ENTRY_SCHEMAS.items():
        assert name == re.sub(r"[._]", "-", type_) + ".v1.schema.json"
        assert name in schema_names()
    # the remaining types are the records, which have their own schemas: every type a code
    # path can build has a body schema enforced at append
    assert ENTRY_TYPES - authored == set(ENTRY_SCHEMAS)


def test_no_float_types_in_the_bank_schemas() -> None:
    for name in BANK_ENTRY_SCHEMAS.values():
        assert '"number"' not in json.dumps(load_schema(name)), name


# -- validation -------------------------------------------------------------------------------
@pytest.mark.parametrize("type_", sorted(VALID))
def test_valid_bodies_pass_both_paths(type_: str) -> None:
    validate_bank_body(type_, VALID[type_])
    assert fast_accepts(type_, VALID[type_])


def test_exam_decision_and_open_caps_pass() -> None:
    validate_bank_body("conversion.decided", EXAM_DECISION)
    assert fast_accepts("conversion.decided", EXAM_DECISION)
    granted = _set(
        EXAM_DECISION,
        "exam",
        {
            "certificate_type_id": "CT-1",
            "granted": True,
            "exam_part": "theory",
            "rule_key": "R-EXAM",
            "rule_version": 1,
            "basis": VALID["conversion.decided"]["grants"][0]["sources"][0],
        },
    )
    validate_bank_body("conversion.decided", granted)


@pytest.mark.parametrize("case", MALFORMED, ids=_case_id)
def test_malformed_bodies_are_refused(case: tuple[str, str, Any]) -> None:
    type_, path, value = case
    body = _set(VALID[type_], path, value)
    assert not fast_accepts(type_, body)
    with pytest.raises(InvalidInputError) as e:
        validate_bank_body(type_, body)
    assert e.value.code == CODES[type_.split(".")[0]]
    assert e.value.extra["path"].startswith("$")
    assert e.value.extra["errors"]


def test_non_object_and_unknown_types() -> None:
    with pytest.raises(InvalidInputError) as e:
        validate_bank_body("conversion.voided", [])  # type: ignore[arg-type]
    assert e.value.code == "conversion.schema"
    with pytest.raises(InvalidInputError) as e:
        validate_bank_body("record.posted", {})
    assert e.value.code == "entry.no_schema"
