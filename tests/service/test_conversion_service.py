"""The conversion service: publishing rules, deciding, rule 0, versions, the lock.

Most tests run on SQLite only (the engine paths are the same SQL; the oracle and API tests run
on both engines); the lock tests run on both, since the lock differs per engine.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sample_data import SAMPLE
from sqlalchemy import select

from creditbank.config import Settings
from creditbank.core.rules import RuleValidationError, load_dataset
from creditbank.errors import ConflictError, InvalidInputError, RuleError
from creditbank.service import conversion
from creditbank.service.bank import Bank, init_home
from creditbank.service.clock import FixedClock
from creditbank.service.importer import STEPS, ImportReport, import_dataset
from creditbank.storage.tables import entries_t

T_IMPORT = datetime(2026, 1, 15, 9, 0, 0, tzinfo=UTC)
TODAY = dt.date(2026, 1, 15)


def load(name: str) -> Any:
    return json.loads((SAMPLE / name).read_text("utf-8"))


RULES: list[dict[str, Any]] = load("conversion_rules.json")
NO_DECISIONS = [s for s in STEPS if s[0] not in ("rules", "applications", "voids")]
NO_APPLICATIONS = [s for s in STEPS if s[0] not in ("applications", "voids")]


def make_bank(settings: Settings, steps: Any = None) -> tuple[Bank, ImportReport]:
    bank = init_home(settings, clock=FixedClock(T_IMPORT))
    return bank, import_dataset(bank, SAMPLE, steps=steps)


@pytest.fixture
def sqlite_settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home", checkpoint_interval=3600, sqlite_synchronous="NORMAL")


@pytest.fixture
def records_only(sqlite_settings: Settings) -> Iterator[tuple[Bank, ImportReport]]:
    """Institutions, learners and records of the sample; no rules, no decisions."""
    bank, report = make_bank(sqlite_settings, NO_DECISIONS)
    try:
        yield bank, report
    finally:
        bank.close()


@pytest.fixture
def full(sqlite_settings: Settings) -> Iterator[tuple[Bank, ImportReport]]:
    bank, report = make_bank(sqlite_settings)
    try:
        yield bank, report
    finally:
        bank.close()


def document(rules: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "conversion_rules": RULES if rules is None else rules,
        "programs": load("programs.json"),
        "certificate_types": load("certificate_types.json"),
    }


def publish(bank: Bank, rules: list[dict[str, Any]] | None = None) -> conversion.PublishResult:
    current = conversion.current_rules(bank)
    pub = conversion.parse_rules_document(
        document(rules), base=current.publication if current else None
    )
    return conversion.publish_rules(bank, pub)


def edited(edit: Callable[[list[dict[str, Any]]], None]) -> list[dict[str, Any]]:
    rules = copy.deepcopy(RULES)
    edit(rules)
    return rules


def rule(rules: list[dict[str, Any]], key: str, version: int = 1) -> dict[str, Any]:
    return next(r for r in rules if r["rule_key"] == key and r["version"] == version)


# -- publishing -------------------------------------------------------------------------------
def _overlap(rs: list[dict[str, Any]]) -> None:
    rule(rs, "R01", 2)["effective_from"] = "2025-06-01"  # v1 runs to 2025-06-30


def _backwards(rs: list[dict[str, Any]]) -> None:
    rule(rs, "R02")["effective_to"] = "2022-12-31"  # before 2023-01-01


def _unknown_program(rs: list[dict[str, Any]]) -> None:
    rule(rs, "R06")["target"]["program_id"] = "P-NOPE"


def _unknown_course(rs: list[dict[str, Any]]) -> None:
    rule(rs, "R04")["target"]["course_id"] = "C-NOPE"


def _negative_cap(rs: list[dict[str, Any]]) -> None:
    rule(rs, "R02")["caps"]["max_credits"] = -1


def _unknown_mode(rs: list[dict[str, Any]]) -> None:
    rule(rs, "R06")["target"]["mode"] = "elective_by_magic"


def _exemption_without_course(rs: list[dict[str, Any]]) -> None:
    del rule(rs, "R04")["target"]["course_id"]


@pytest.mark.parametrize(
    ("edit", "code"),
    [
        (_overlap, "rules.overlapping_versions"),
        (_backwards, "rules.bad_effective_range"),
        (_unknown_program, "rules.unknown_program"),
        (_unknown_course, "rules.unknown_course"),
        (_negative_cap, "rules.negative_cap"),
        (_unknown_mode, "rules.unknown_mode"),
        (_exemption_without_course, "rules.missing_course"),
    ],
)
def test_bad_rules_are_rejected_at_publish_time(
    records_only: tuple[Bank, ImportReport],
    edit: Callable[[list[dict[str, Any]]], None],
    code: str,
) -> None:
    bank, _ = records_only
    size = bank.ledger.head().size
    with pytest.raises(RuleValidationError) as info:
        publish(bank, edited(edit))
    assert info.value.code == code
    assert code in {p.code for p in info.value.problems}
    assert info.value.message  # a sentence naming the rule
    assert bank.ledger.head().size == size
    assert conversion.current_rules(bank) is None


def test_publishing_is_idempotent_and_versions_are_never_rewritten(
    records_only: tuple[Bank, ImportReport],
) -> None:
    bank, _ = records_only
    first = publish(bank)
    assert first.created
    assert (first.rule_versions, first.rule_keys) == (18, 16)
    size = bank.ledger.head().size
    again = publish(bank)
    assert (again.created, again.entry_index) == (False, first.entry_index)
    assert bank.ledger.head().size == size

    def changed(rs: list[dict[str, Any]]) -> None:
        rule(rs, "R06")["credits_per_outcome"] = 3

    with pytest.raises(RuleError) as info:
        publish(bank, edited(changed))
    assert info.value.code == "rules.version_changed"
    with pytest.raises(RuleError) as info:
        publish(bank, [r for r in RULES if r["rule_key"] != "R14"])
    assert info.value.code == "rules.version_removed"
    assert bank.ledger.head().size == size

    # ending a version and adding the next one is how rules change (fractional amounts exact)
    def next_version(rs: list[dict[str, Any]]) -> None:
        rule(rs, "R06")["effective_to"] = "2026-01-09"
        v2 = copy.deepcopy(rule(rs, "R06"))
        v2.update(version=2, effective_from="2026-01-10", effective_to=None)
        v2["credits_per_outcome"] = 2.5
        rs.append(v2)

    second = publish(bank, edited(next_version))
    assert second.created
    assert second.entry_index == size
    ruleset = conversion.current_rules(bank)
    assert ruleset is not None
    assert ruleset.entry_index == size
    v2 = ruleset.book.version_in_force("R06", TODAY)
    assert v2 is not None
    assert (v2.version, v2.credits_per_outcome) == (2, 250)
    body = json.loads(bytes(bank.ledger.entry(size).data))["body"]
    assert rule(body["rules"], "R06", 2)["credits_per_outcome_centi"] == 250


def test_programmes_must_belong_to_registered_institutions(
    sqlite_settings: Settings,
) -> None:
    bank = init_home(sqlite_settings, clock=FixedClock(T_IMPORT))  # nothing registered
    try:
        with pytest.raises(RuleError) as info:
            publish(bank)
        assert info.value.code == "rules.unknown_institution"
    finally:
        bank.close()


def test_cli_rules_publish_reports_problems_in_one_line(
    records_only: tuple[Bank, ImportReport], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from creditbank.cli.main import main

    bank, _ = records_only
    argv = ["--home", str(bank.settings.home)]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(document(edited(_unknown_mode)), ensure_ascii=False), "utf-8")
    assert main([*argv, "rules", "publish", str(bad)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "[rules.unknown_mode]" in err
    good = tmp_path / "good.json"
    good.write_text(json.dumps(document(), ensure_ascii=False), "utf-8")
    assert main([*argv, "rules", "publish", str(good)]) == 0
    assert "rules published: 18 version(s) of 16 rule(s)" in capsys.readouterr().out
    assert main([*argv, "rules", "publish", str(good)]) == 0
    assert "unchanged" in capsys.readouterr().out
    # a bare array of rules reuses the published catalogue
    bare = tmp_path / "bare.json"
    bare.write_text(json.dumps(RULES, ensure_ascii=False), "utf-8")
    assert main([*argv, "rules", "publish", str(bare)]) == 0
    assert "unchanged" in capsys.readouterr().out
    assert main([*argv, "rules", "show"]) == 0
    assert len(json.loads(capsys.readouterr().out)["rules"]) == 18


def test_rule_wire_format_round_trips() -> None:
    ds = load_dataset(
        institutions=load("institutions.json"),
        programs=load("programs.json"),
        certificate_types=load("certificate_types.json"),
        conversion_rules=RULES,
        learners=load("learners.json"),
        outcomes=[],
        applications=[],
    )
    for r in ds.rules:
        assert conversion.rule_from_wire(conversion.rule_to_wire(r)) == r
    pub = conversion.parse_rules_document(document())
    body = pub.body()
    assert conversion.Publication.from_body(body).body() == body


# -- deciding ---------------------------------------------------------------------------------
def test_a_new_version_never_changes_a_decision_already_made(
    full: tuple[Bank, ImportReport],
) -> None:
    bank, report = full
    as_of = dt.date(2025, 12, 31)
    before = conversion.conversion_report(bank, as_of)
    decided = {a: bytes(bank.ledger.entry(i).data) for a, i in report.applications.items()}

    def r07_v2(rs: list[dict[str, Any]]) -> None:
        rule(rs, "R07")["effective_to"] = "2026-01-09"
        v2 = copy.deepcopy(rule(rs, "R07"))
        v2.update(version=2, effective_from="2026-01-10", effective_to=None)
        rs.append(v2)

    assert publish(bank, edited(r07_v2)).created
    assert conversion.conversion_report(bank, as_of) == before
    assert {a: bytes(bank.ledger.entry(i).data) for a, i in report.applications.items()} == decided
    # a decision after the change uses the version in force on its date (rule 5)
    view = conversion.apply(bank, report.learner_ids["L05"], program_id="P-OU-MECH")
    assert [(g["rule_key"], g["rule_version"]) for g in view["grants"]] == [("R07", 2)]
    old = conversion.apply(
        bank, report.learner_ids["L17"], program_id="P-OU-MECH", on=dt.date(2026, 1, 9)
    )
    assert [(g["rule_key"], g["rule_version"]) for g in old["grants"]] == [("R08", 1)]


def test_rule_0_order_future_dates_and_unknown_targets_write_nothing(
    full: tuple[Bank, ImportReport],
) -> None:
    bank, report = full
    l03 = report.learner_ids["L03"]  # decided 2025-05-10 and 2025-11-20
    size = bank.ledger.head().size
    with pytest.raises(RuleError) as info:
        conversion.apply(bank, l03, program_id="P-OU-LOG", on=dt.date(2025, 11, 19))
    assert info.value.code == "rules.out_of_order"
    with pytest.raises(RuleError) as info:
        conversion.what_if(bank, l03, program_id="P-OU-LOG", on=dt.date(2025, 11, 19))
    assert info.value.code == "rules.out_of_order"
    with pytest.raises(InvalidInputError) as bad:
        conversion.apply(bank, l03, program_id="P-OU-LOG", on=dt.date(2026, 1, 16))
    assert bad.value.code == "conversion.future_date"
    with pytest.raises(InvalidInputError) as bad:
        conversion.apply(bank, l03, program_id="P-NOPE")
    assert bad.value.code == "conversion.unknown_program"
    assert bank.ledger.head().size == size
    # the same day as the last decision, later in id order, is fine
    view = conversion.apply(bank, l03, program_id="P-OU-LOG", on=dt.date(2025, 11, 20))
    assert view["application_id"] > "A03b"
    assert bank.ledger.head().size == size + 1


def test_application_ids_are_unique(full: tuple[Bank, ImportReport]) -> None:
    bank, report = full
    l05 = report.learner_ids["L05"]
    same = conversion.ApplicationRequest(
        l05, dt.date(2025, 9, 15), program_id="P-COL-ELEC", application_id="A05"
    )
    [got] = conversion.decide_applications(bank, [same])
    assert (got.created, got.entry_index) == (False, report.applications["A05"])
    other = conversion.ApplicationRequest(
        l05, dt.date(2025, 9, 15), program_id="P-OU-MECH", application_id="A05"
    )
    with pytest.raises(ConflictError) as info:
        conversion.decide_applications(bank, [other])
    assert info.value.code == "conversion.application_conflict"


def test_denials_explain_themselves(full: tuple[Bank, ImportReport]) -> None:
    bank, _ = full
    a06 = conversion.application_view(bank, "A06")  # L06: expired certificate
    issues = {n["issue"] for n in a06["record_notes"]}
    assert "expired" in issues
    expired = next(n for n in a06["record_notes"] if n["issue"] == "expired")
    assert "expire" in expired["explanation_en"]
    assert expired["explanation_zh"]
    a08 = conversion.application_view(bank, "A08")  # L08: revoked before the application
    assert "revoked" in {n["issue"] for n in a08["record_notes"]}
    denied = [n for n in a08["rule_notes"] if n["reason"] != "granted"]
    assert denied
    assert all(n["explanation_zh"] and n["explanation_en"] for n in denied)
    x18b = conversion.application_view(bank, "X18b")  # an exam exemption denied
    assert x18b["exam"]["granted"] is False
    assert "denied" in x18b["explanation_en"]


def test_report_with_bank_ids_lists_every_learner(full: tuple[Bank, ImportReport]) -> None:
    bank, report = full
    doc = conversion.conversion_report(bank, dt.date(2025, 12, 31), dataset="", explanations=True)
    ids = [x["learner_id"] for x in doc["learners"]]
    assert ids == sorted(report.learner_ids.values())
    l09 = next(x for x in doc["learners"] if x["learner_id"] == report.learner_ids["L09"])
    grant = l09["applications"][0]["grants"][0]
    assert grant["outcome_ids"] == ["O0057"]  # the institution's record id
    assert grant["explanation_en"].startswith("Under rule R04 v1")


# -- the lock ---------------------------------------------------------------------------------
def test_concurrent_applications_never_consume_a_record_twice(
    settings_factory: Callable[..., Settings],
) -> None:
    bank, report = make_bank(settings_factory(), NO_APPLICATIONS)
    try:
        l20 = report.learner_ids["L20"]  # an electrician level 3: R04 and R06 both match
        expected = conversion.what_if(bank, l20, program_id="P-COL-ELEC")
        assert expected["grants"]
        views: list[dict[str, Any]] = []
        errors: list[BaseException] = []
        start = threading.Barrier(4)

        def run() -> None:
            try:
                start.wait()
                views.append(conversion.apply(bank, l20, program_id="P-COL-ELEC"))
            except BaseException as e:  # reported below
                errors.append(e)

        threads = [threading.Thread(target=run) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert errors == []
        views.sort(key=lambda v: v["entry_index"])
        roots = [s["root_entry_index"] for v in views for g in v["grants"] for s in g["sources"]]
        assert len(roots) == len(set(roots))
        strip = ("explanation_zh", "explanation_en")
        first = [{k: v for k, v in g.items() if k not in strip} for g in views[0]["grants"]]
        assert first == [{k: v for k, v in g.items() if k not in strip} for g in expected["grants"]]
        assert all(v["grants"] == [] for v in views[1:])
    finally:
        bank.close()


@pytest.mark.slow
def test_the_lock_excludes_other_processes(
    settings_factory: Callable[..., Settings],
) -> None:
    bank, _report = make_bank(settings_factory(), NO_APPLICATIONS)
    try:
        argv = [sys.executable, "-m", "creditbank.cli", "--home", str(bank.settings.home)]
        if bank.settings.database_url:
            argv += ["--database-url", bank.settings.database_url]
        env = {k: v for k, v in os.environ.items() if not k.startswith("CREDITBANK_")}
        with conversion.conversion_lock(bank):
            proc = subprocess.Popen(
                [*argv, "apply", "L05", "P-OU-MECH"],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            time.sleep(3)
            assert proc.poll() is None, proc.communicate()
            size = bank.ledger.head().size
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err.decode()
        assert b"R07" in out
        assert bank.ledger.head().size == size + 1
        with bank.engine.connect() as conn:
            last = conn.execute(select(entries_t.c.type).where(entries_t.c.idx == size)).scalar()
        assert last == "conversion.decided"
    finally:
        bank.close()


def test_the_bulk_read_of_a_large_report_gives_the_same_report(
    full: tuple[Bank, ImportReport], monkeypatch: pytest.MonkeyPatch
) -> None:
    bank, _ = full
    small = conversion.conversion_report(bank, dt.date(2025, 12, 31))
    monkeypatch.setattr(conversion.learners, "BULK_LEARNERS", 0)
    assert conversion.conversion_report(bank, dt.date(2025, 12, 31)) == small
