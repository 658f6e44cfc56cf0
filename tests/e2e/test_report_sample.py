"""The conversion report after ``creditbank import`` equals ``expected.json`` (SQLite and PG).

End to end: ``creditbank init``, ``creditbank import`` of the sample (institutions, learners,
records, the rules publication, the 34 applications decided in rule-0 order on their
``applied_on`` dates, the voids) and ``creditbank report conversions --as-of 2025-12-31
--format json``. The report is computed from what the bank stores (decision entries, record
projections and bodies); ``expected.json`` is read only here, by the test.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sample_data import SAMPLE
from sqlalchemy import select

from creditbank.cli.main import main
from creditbank.config import Settings
from creditbank.core.entries import parse_entry
from creditbank.service import conversion
from creditbank.service.audit import run_audit
from creditbank.service.bank import Bank, init_home, open_bank
from creditbank.service.clock import FixedClock
from creditbank.service.importer import ImportReport, import_dataset
from creditbank.storage.tables import entries_t

AS_OF = "2025-12-31"
EXPECTED: dict[str, Any] = json.loads((SAMPLE / "expected.json").read_text("utf-8"))
APPLICATIONS: list[dict[str, Any]] = json.loads((SAMPLE / "applications.json").read_text("utf-8"))
OUTCOMES = {o["id"]: o for o in json.loads((SAMPLE / "outcomes.json").read_text("utf-8"))}
#: the bank clock of the in-process imports: after every date of the sample
T_IMPORT = datetime(2026, 1, 15, 9, 0, 0, tzinfo=UTC)

GRANT_FIELDS = (
    "rule_key",
    "rule_version",
    "outcome_ids",
    "effective_version_ids",
    "target_course_id",
    "credits",
    "status",
    "voided_at",
)
EXAM_FIELDS = (
    "application_id",
    "type",
    "applied_on",
    "certificate_type_id",
    "granted",
    "exam_part",
    "rule_key",
    "rule_version",
    "basis_outcome_id",
)


def compared(entry: dict[str, Any]) -> dict[str, Any]:
    """The fields of one learner entry that the README's ``compare_fields`` names, plus the
    application-level fields and totals of the Outputs section."""
    apps = []
    for app in entry["applications"]:
        if app["type"] == "exam_exemption":
            apps.append({k: app[k] for k in EXAM_FIELDS})
            continue
        apps.append(
            {
                "application_id": app["application_id"],
                "type": app["type"],
                "program_id": app["program_id"],
                "applied_on": app["applied_on"],
                "credits_granted_at_decision": app["credits_granted_at_decision"],
                "grants": [
                    {k: g[k] for k in GRANT_FIELDS}
                    | {k: g[k] for k in ("hours_used", "raw_credits", "granted_on") if k in g}
                    for g in app["grants"]
                ],
            }
        )
    return {
        "learner_id": entry["learner_id"],
        "applications": apps,
        "per_program_as_of": entry["per_program_as_of"],
        "converted_credits_active_total": entry["converted_credits_active_total"],
        "exam_exemptions_granted": entry["exam_exemptions_granted"],
    }


def assert_equals_oracle(report: dict[str, Any]) -> None:
    assert report["as_of"] == AS_OF
    got = [x["learner_id"] for x in report["learners"]]
    assert got == [x["learner_id"] for x in EXPECTED["learners"]]
    assert len(got) == 30
    for mine, theirs in zip(report["learners"], EXPECTED["learners"], strict=True):
        assert compared(mine) == compared(theirs), mine["learner_id"]


def _argv(settings: Settings) -> list[str]:
    argv = ["--home", str(settings.home)]
    if settings.database_url:
        argv += ["--database-url", settings.database_url]
    return argv


# -- the CLI, end to end, on both engines -----------------------------------------------------
def test_cli_import_then_report_equals_expected_json(
    settings_factory: Callable[..., Settings], capsys: pytest.CaptureFixture[str]
) -> None:
    argv = _argv(settings_factory())
    assert main([*argv, "init"]) == 0
    assert main([*argv, "import", str(SAMPLE)]) == 0
    capsys.readouterr()
    assert main([*argv, "report", "conversions", "--as-of", AS_OF, "--format", "json"]) == 0
    out = capsys.readouterr().out
    report = json.loads(out)
    assert_equals_oracle(report)
    # beyond the compared fields, the labels and bookkeeping agree too
    assert report["learners"] == EXPECTED["learners"]
    # a re-import decides nothing again, and the report is unchanged
    assert main([*argv, "import", str(SAMPLE)]) == 0
    assert "dataset sample: 0 entries added" in capsys.readouterr().out
    assert main([*argv, "report", "conversions", "--as-of", AS_OF]) == 0
    assert json.loads(capsys.readouterr().out) == report
    # usage errors: exit 2, one line
    assert main([*argv, "report", "conversions", "--as-of", "31/12/2025"]) == 2
    assert main([*argv, "report", "conversions", "--as-of", AS_OF, "--format", "xml"]) == 2
    assert main([*argv, "report", "conversions", "--as-of", AS_OF, "--dataset", "nope"]) == 1
    capsys.readouterr()


# -- the service, in-process, on both engines -------------------------------------------------
@pytest.fixture
def imported(settings_factory: Callable[..., Settings]) -> Iterator[tuple[Bank, ImportReport]]:
    bank = init_home(settings_factory(), clock=FixedClock(T_IMPORT))
    try:
        yield bank, import_dataset(bank, SAMPLE)
    finally:
        bank.close()


def _entries(bank: Bank, type_: str) -> list[tuple[int, Any]]:
    with bank.engine.connect() as conn:
        rows = conn.execute(
            select(entries_t.c.idx, entries_t.c.data)
            .where(entries_t.c.type == type_)
            .order_by(entries_t.c.idx)
        )
        return [(int(r.idx), parse_entry(bytes(r.data))) for r in rows]


def test_report_from_stored_entries_equals_expected_json(
    imported: tuple[Bank, ImportReport],
) -> None:
    bank, report = imported
    assert (report.rules_published, report.applications_decided, report.voids_posted) == (
        1,
        34,
        1,
    )
    assert_equals_oracle(conversion.conversion_report(bank, dt.date.fromisoformat(AS_OF)))
    # a fresh process sees the same: nothing is held in memory between commands
    again = open_bank(bank.settings, clock=FixedClock(T_IMPORT))
    try:
        assert_equals_oracle(conversion.conversion_report(again, dt.date.fromisoformat(AS_OF)))
    finally:
        again.close()


def test_decision_entries_reference_their_records_rules_and_explanations(
    imported: tuple[Bank, ImportReport],
) -> None:
    """Each decision is one bank-signed entry dated by the bank clock, decided on applied_on,
    naming the rules publication, each grant's rule key and version, credits in integer
    hundredths, and its source records by the ledger index of the effective version and of
    the chain root; grants and denials carry zh and en explanations."""
    bank, report = imported
    [(rules_idx, rules_entry)] = _entries(bank, "rules.published")
    assert rules_entry.issuer == "BANK"
    assert len(rules_entry.body["rules"]) == 18
    decided = _entries(bank, "conversion.decided")
    assert len(decided) == 34
    by_app = {a["id"]: a for a in APPLICATIONS}
    # appended in rule-0 order: applied_on, then application id
    order = [(e.body["applied_on"], e.body["application_id"]) for _, e in decided]
    assert order == sorted(order)
    assert [idx for idx, _ in decided] == sorted(report.applications.values())
    with bank.engine.connect() as conn:
        data = {int(r.idx): parse_entry(bytes(r.data)) for r in conn.execute(select(entries_t))}
    for idx, e in decided:
        body = e.body
        app = by_app[body["application_id"]]
        assert report.applications[app["id"]] == idx
        assert e.issuer == "BANK"
        assert e.at == "2026-01-15T09:00:00Z"  # the bank clock; D is in the body
        assert body["applied_on"] == app["applied_on"]
        assert body["learner"] == report.learner_ids[app["learner_id"]]
        assert body["rules_entry"] == rules_idx
        assert body["explanation_zh"]
        assert body["explanation_en"]
        assert body["credits_centi"] == sum(g["credits_centi"] for g in body["grants"])
        for g in body["grants"]:
            assert isinstance(g["credits_centi"], int)
            assert g["explanation_zh"]
            assert g["explanation_en"]
            assert g["rule_key"] in g["explanation_en"]
            for s in g["sources"]:
                eff, root = data[s["entry"]], data[s["root_entry"]]
                assert eff.type in ("record.posted", "record.corrected")
                assert eff.body["record_id"] == s["record_id"]
                assert root.body["record_id"] == s["root_record_id"]
                assert report.records[s["root_record_id"]].entry_index == s["root_entry"]
                assert eff.body["learner"] == body["learner"]
        for n in body["rule_notes"]:
            assert n["explanation_zh"]
            assert n["explanation_en"]
    # L10's grade correction: the grant used the effective version O0063 of chain O0062
    a10 = next(e.body for _, e in decided if e.body["application_id"] == "A10")
    sources = [s for g in a10["grants"] for s in g["sources"]]
    assert {"record_id": "O0063", "root_record_id": "O0062"}.items() <= next(
        s for s in sources if s["root_record_id"] == "O0062"
    ).items()


def test_the_revoked_grant_is_voided_by_a_void_entry(imported: tuple[Bank, ImportReport]) -> None:
    bank, report = imported
    [(void_idx, void)] = _entries(bank, "conversion.voided")
    assert void.issuer == "BANK"
    assert void.body["application_id"] == "A09"
    assert void.body["decision_entry"] == report.applications["A09"]
    assert void.body["grant_no"] == 0
    assert void.body["voided_at"] == OUTCOMES["O0057"]["revoked_at"] == "2025-08-15"
    assert void.body["revocation_entry"] == report.revocations["O0057"].entry_index
    assert void.body["record_id"] == "O0057"
    # the void comes after the revocation and the decision it voids
    assert void_idx > max(void.body["revocation_entry"], void.body["decision_entry"])
    # as of the day before the revocation the grant is still active
    day_before = conversion.conversion_report(bank, dt.date(2025, 8, 14))
    l09 = next(x for x in day_before["learners"] if x["learner_id"] == "L09")
    assert [g["status"] for g in l09["applications"][0]["grants"]] == ["active", "active"]
    view = conversion.application_view(bank, "A09")
    assert view["grants"][0]["status"] == "voided"
    assert view["grants"][0]["void_entry_index"] == void_idx
    # reconciling again posts nothing
    size = bank.ledger.head().size
    assert conversion.reconcile_voids(bank) == 0
    assert bank.ledger.head().size == size


def test_the_log_with_conversions_audits_clean(imported: tuple[Bank, ImportReport]) -> None:
    bank, _ = imported
    audit = run_audit(bank)
    assert audit.ok, audit.problems
