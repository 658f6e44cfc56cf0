"""The oracle: the engine reproduces ``creditbank/data/sample/expected.json`` exactly.

The engine reads only the sample's input files; ``expected.json`` is read here, by the test,
and never by the code under test.
"""

from __future__ import annotations

import datetime as dt
import json
from functools import cache
from typing import Any

import pytest
from sample_data import SAMPLE

from creditbank.core.rules import (
    Dataset,
    Reason,
    RunResult,
    build_report,
    load_dataset,
    run_all,
    validate_rules,
)

AS_OF = dt.date(2025, 12, 31)
GRANT_FIELDS = ("rule_key", "rule_version", "outcome_ids", "target_course_id", "credits")
STATUS_FIELDS = ("status", "voided_at")
EXAM_FIELDS = (
    "certificate_type_id",
    "granted",
    "exam_part",
    "rule_key",
    "rule_version",
    "basis_outcome_id",
)
PROGRAM_FIELDS = (
    "program_id",
    "converted_credits_active",
    "converted_credits_voided",
    "native_credits_passed",
)


def _json(name: str) -> Any:
    return json.loads((SAMPLE / f"{name}.json").read_text("utf-8"))


@cache
def _dataset() -> Dataset:
    return load_dataset(
        institutions=_json("institutions"),
        programs=_json("programs"),
        certificate_types=_json("certificate_types"),
        conversion_rules=_json("conversion_rules"),
        learners=_json("learners"),
        outcomes=_json("outcomes"),
        applications=_json("applications"),
    )


@cache
def _run() -> RunResult:
    ds = _dataset()
    book = validate_rules(ds.rules, ds.catalog)
    return run_all(
        ds.applications, ds.records, book, ds.catalog, learners={x.id: x for x in ds.learners}
    )


@cache
def _report() -> dict[str, Any]:
    ds = _dataset()
    run = _run()
    return build_report(AS_OF, [x.id for x in ds.learners], run.decisions, run.records, ds.catalog)


EXPECTED = _json("expected")
LEARNER_IDS = [entry["learner_id"] for entry in EXPECTED["learners"]]


def _project(entry: dict[str, Any]) -> dict[str, Any]:
    """Keep the compared fields of one learner entry (README: ``compare_fields``)."""
    apps = []
    for app in entry["applications"]:
        if app["type"] == "exam_exemption":
            apps.append(
                {"application_id": app["application_id"]} | {k: app[k] for k in EXAM_FIELDS}
            )
            continue
        apps.append(
            {
                "application_id": app["application_id"],
                "program_id": app["program_id"],
                "applied_on": app["applied_on"],
                "credits_granted_at_decision": app["credits_granted_at_decision"],
                "grants": [
                    {k: g[k] for k in (*GRANT_FIELDS, *STATUS_FIELDS, "effective_version_ids")}
                    | {k: g[k] for k in ("hours_used", "raw_credits") if k in g}
                    for g in app["grants"]
                ],
            }
        )
    return {
        "applications": apps,
        "per_program_as_of": [
            {k: p[k] for k in PROGRAM_FIELDS} for p in entry["per_program_as_of"]
        ],
        "converted_credits_active_total": entry["converted_credits_active_total"],
        "exam_exemptions_granted": entry["exam_exemptions_granted"],
    }


def test_sample_has_thirty_learners() -> None:
    assert len(LEARNER_IDS) == 30
    assert [x["learner_id"] for x in _report()["learners"]] == LEARNER_IDS


@pytest.mark.parametrize("learner_id", LEARNER_IDS)
def test_learner_matches_oracle_on_every_compared_field(learner_id: str) -> None:
    """Every compared field of every application, grant, exam exemption and programme total."""
    got = next(x for x in _report()["learners"] if x["learner_id"] == learner_id)
    want = next(x for x in EXPECTED["learners"] if x["learner_id"] == learner_id)
    assert _project(got) == _project(want)


def test_report_is_structurally_identical_to_oracle() -> None:
    """Same keys, same order, same number types (3, never 3.0), same bookkeeping labels."""
    report = _report()
    assert report == EXPECTED
    assert json.dumps(report, ensure_ascii=False) == json.dumps(EXPECTED, ensure_ascii=False)


def test_every_grant_and_denial_is_explained_in_both_languages() -> None:
    """Each grant, rule note and decision carries a reason code and zh/en explanations."""
    for decision in _run().decisions:
        assert decision.explanation_zh
        assert decision.explanation_en
        for grant in decision.grants:
            assert grant.reason is Reason.GRANTED
            assert grant.rule_key in grant.explanation_en
            assert grant.outcome_ids[0] in grant.explanation_en
            assert grant.outcome_ids[0] in grant.explanation_zh
            assert f"v{grant.rule_version}" in grant.explanation_en
            assert f"第{grant.rule_version}版" in grant.explanation_zh
        for note in decision.rule_notes:
            assert isinstance(note.reason, Reason)
            assert note.explanation_zh
            assert note.explanation_en
            assert note.rule_key in note.explanation_en


def test_bulk_run_without_texts_decides_identically() -> None:
    """``explain=False`` only drops the worded texts; grants and reasons are the same."""
    ds = _dataset()
    book = validate_rules(ds.rules, ds.catalog)
    quiet = run_all(ds.applications, ds.records, book, ds.catalog, explain=False)
    loud = _run()
    for a, b in zip(quiet.decisions, loud.decisions, strict=True):
        assert [(g.rule_key, g.outcome_ids, g.credits) for g in a.grants] == [
            (g.rule_key, g.outcome_ids, g.credits) for g in b.grants
        ]
        assert [n.reason for n in a.rule_notes] == [n.reason for n in b.rule_notes]
        assert all(g.explanation_en == "" for g in a.grants)
    report = build_report(
        AS_OF, [x.id for x in ds.learners], quiet.decisions, quiet.records, ds.catalog
    )
    assert report == EXPECTED
