"""Importing the sample dataset gives the right state for every record chain (SQLite and PG).

The expected state is derived here, independently of the importer, from ``outcomes.json`` by
the sample's normative rules (README "Conversion semantics"):

* rule 1: a record with ``corrects`` belongs to the chain of the root found by following
  ``corrects``; the current version is the member with the greatest (``posted_at``, id);
* rule 10: a chain is revoked iff its root has ``revoked_at`` (from that day on);
* rule 2: chains of the same learner whose roots share a ``dedup_key`` are duplicates; the
  root posted first is canonical (tie: lower id), the others are duplicates of it.

Ownership (docs/trust-model.md, issue 3): a record belongs to its issuer, except a learner's own
upload (``posted_by`` = the learner), which the bank posts and signs (``claimed_issuer``).
"""

from __future__ import annotations

import json
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sample_data import SAMPLE

from creditbank.config import Settings
from creditbank.core.entries import Entry, format_time, parse_entry
from creditbank.service.audit import run_audit
from creditbank.service.bank import Bank, init_home
from creditbank.service.clock import FixedClock
from creditbank.service.importer import ImportReport, dataset_refs, import_dataset
from creditbank.service.records import learner_chains

#: the bank clock during the import: after every date the sample claims
T_IMPORT = datetime(2026, 1, 15, 9, 0, 0, tzinfo=UTC)
BANK_ID = "BANK"


def load(name: str, root: Path = SAMPLE) -> Any:
    return json.loads((root / name).read_text(encoding="utf-8"))


OUTCOMES: list[dict[str, Any]] = load("outcomes.json")
LEARNERS: list[dict[str, Any]] = load("learners.json")
BY_ID = {o["id"]: o for o in OUTCOMES}


# -- the expected state, from the dataset alone ---------------------------------------------
def root_of(oid: str, by_id: dict[str, dict[str, Any]] = BY_ID) -> str:
    while by_id[oid]["corrects"] is not None:
        oid = by_id[oid]["corrects"]
    return oid


def owner_of(o: dict[str, Any]) -> str:
    return BANK_ID if o["posted_by"] == o["learner_id"] else str(o["issuer_id"])


def expected_chains(
    outcomes: list[dict[str, Any]], as_of: str | None = None
) -> dict[str, dict[str, dict[str, Any]]]:
    """learner → chain root id → expected chain state (what is visible on ``as_of``)."""
    by_id = {o["id"]: o for o in outcomes}
    visible = [o for o in outcomes if as_of is None or o["posted_at"] <= as_of]
    members: dict[str, list[dict[str, Any]]] = {}
    for o in visible:
        members.setdefault(root_of(o["id"], by_id), []).append(o)
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for root_id, group in members.items():
        root = by_id[root_id]
        current = max(group, key=lambda o: (o["posted_at"], o["id"]))
        revoked = root["revoked_at"] is not None and (as_of is None or root["revoked_at"] <= as_of)
        out.setdefault(root["learner_id"], {})[root_id] = {
            "owner": owner_of(root),
            "current": current["id"],
            "versions": sorted(o["id"] for o in group),
            "kind": current["kind"],
            "dedup_key": root["dedup_key"],
            "revoked_on": root["revoked_at"] if revoked else None,
            "reason": root["revocation_reason"] if revoked else None,
            "duplicate_of": None,
        }
    for chains in out.values():
        by_key: dict[str, list[str]] = {}
        for root_id in chains:
            if root_id in by_id and (as_of is None or by_id[root_id]["posted_at"] <= as_of):
                by_key.setdefault(by_id[root_id]["dedup_key"], []).append(root_id)
        for roots in by_key.values():
            roots.sort(key=lambda r: (by_id[r]["posted_at"], r))
            for other in roots[1:]:
                chains[other]["duplicate_of"] = f"{owner_of(by_id[roots[0]])}/{roots[0]}"
    return out


def actual_chains(
    bank: Bank, report: ImportReport, as_of: str | None = None
) -> dict[str, dict[str, dict[str, Any]]]:
    """The same shape, read through ``learner_chains`` for every learner of the dataset."""
    by_index = {ref.entry_index: oid for oid, ref in report.records.items()}
    out: dict[str, dict[str, dict[str, Any]]] = {}
    with bank.engine.connect() as conn:
        for dataset_id, learner_id in report.learner_ids.items():
            chains = out.setdefault(dataset_id, {})
            for ch in learner_chains(conn, learner_id, as_of=as_of):
                assert by_index[ch.root_index] == ch.root_record_id
                chains[ch.root_record_id] = {
                    "owner": ch.owner,
                    "current": by_index[ch.current_index],
                    "versions": sorted(by_index[i] for i in ch.versions),
                    "kind": ch.kind,
                    "dedup_key": ch.dedup_key,
                    "revoked_on": ch.revoked_on if ch.revoked else None,
                    "reason": ch.revocation_reason if ch.revoked else None,
                    "duplicate_of": ch.duplicate_of,
                }
                assert ch.current_record_id == by_index[ch.current_index]
    return {k: v for k, v in out.items() if v}


# -- fixtures -------------------------------------------------------------------------------
@dataclass
class Imported:
    bank: Bank
    clock: FixedClock
    report: ImportReport
    settings: Settings

    def entry(self, index: int) -> Entry:
        return parse_entry(bytes(self.bank.ledger.entry(index).data))


def import_into(
    settings_factory: Callable[..., Settings], source: Path = SAMPLE
) -> Iterator[Imported]:
    settings = settings_factory()
    clock = FixedClock(T_IMPORT)
    bank = init_home(settings, clock=clock)  # validates records (the product mode)
    try:
        report = import_dataset(bank, source)
        yield Imported(bank, clock, report, settings)
    finally:
        bank.close()


@pytest.fixture
def imported(settings_factory: Callable[..., Settings]) -> Iterator[Imported]:
    yield from import_into(settings_factory)


@pytest.fixture(scope="module", params=["sqlite", pytest.param("pg", marks=pytest.mark.pg)])
def imported_once(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Imported]:
    """The sample imported once per module and engine, for the tests that only read it
    (counts, chains, signatures, order); a test that writes or moves the clock takes
    ``imported``."""
    from conftest import engine_database

    home = tmp_path_factory.mktemp("imported") / "home"
    with engine_database(request.param, request) as url:
        yield from import_into(
            lambda: Settings(
                home=home, database_url=url, checkpoint_interval=3600.0, sqlite_synchronous="NORMAL"
            )
        )


# -- tests ----------------------------------------------------------------------------------
def test_counts_keys_and_audit(imported_once: Imported) -> None:
    imported = imported_once
    r, bank = imported.report, imported.bank
    assert (r.institutions_registered, r.institutions_closed) == (9, 1)
    assert (r.learners_created, r.learners_existing) == (30, 0)
    assert (r.records_posted, r.corrections_posted, r.revocations_posted) == (312, 2, 2)
    assert r.duplicates == 0
    # + one rules publication, 34 decisions and the void of L09's revoked grant
    assert (r.rules_published, r.applications_decided, r.voids_posted) == (1, 34, 1)
    assert r.entries_appended == 9 + 1 + 314 + 2 + 1 + 34 + 1
    assert bank.ledger.head().size == 1 + r.entries_appended
    assert r.checkpoint_size == bank.ledger.head().size  # published at the end
    assert set(r.skipped_files) == {"expected.json"}
    assert r.notes == []
    assert r.seconds < 15, f"import took {r.seconds:.1f} s"  # ~1 s on SQLite
    assert len(r.learner_ids) == 30
    assert len(set(r.learner_ids.values())) == 30
    assert set(r.records) == set(BY_ID)
    assert set(r.revocations) == {o["id"] for o in OUTCOMES if o["revoked_at"]}
    keys = imported.settings.keys_dir / "institutions"
    inst_ids = {i["id"] for i in load("institutions.json")} - {BANK_ID}
    assert {p.stem for p in keys.iterdir()} == inst_ids
    for p in keys.iterdir():
        assert stat.S_IMODE(p.stat().st_mode) == 0o600
    registry = bank.ledger.registry()
    assert inst_ids <= set(registry.institutions)
    audit = run_audit(bank)
    assert audit.ok, audit.problems


def test_every_chain_matches_the_dataset(imported_once: Imported) -> None:
    imported = imported_once
    expected = expected_chains(OUTCOMES)
    actual = actual_chains(imported.bank, imported.report)
    assert set(actual) == {le["id"] for le in LEARNERS}
    for learner in sorted(expected):
        assert actual[learner] == expected[learner], learner
    assert actual == expected

    # the tricky cases, spelled out
    def chain(learner: str, root: str) -> dict[str, Any]:
        return actual[learner][root]

    assert chain("L10", "O0062")["current"] == "O0063"  # 55 -> 72, corrected by INS-VS
    assert chain("L10", "O0062")["versions"] == ["O0062", "O0063"]
    assert chain("L11", "O0065")["current"] == "O0066"  # level 3 -> level 2
    assert chain("L08", "O0052")["revoked_on"] == "2025-07-20"
    assert chain("L09", "O0057")["revoked_on"] == "2025-08-15"
    assert chain("L09", "O0057")["reason"] == BY_ID["O0057"]["revocation_reason"]
    assert chain("L12", "O0071")["owner"] == BANK_ID  # the learner's own upload
    assert chain("L12", "O0071")["duplicate_of"] == "EXT-SAMR/O0070"
    assert chain("L12", "O0070")["duplicate_of"] is None
    assert chain("L13", "O0077")["duplicate_of"] == "INS-TC/O0076"  # re-sent
    # same dedup_key, different learners: never duplicates
    assert BY_ID["O0236"]["dedup_key"] == BY_ID["O0241"]["dedup_key"]
    assert chain("L12", "O0236")["duplicate_of"] is None
    assert chain("L13", "O0241")["duplicate_of"] is None
    for learner, root in (("L10", "O0064"), ("L19", "O0113"), ("L27", "O0169")):
        assert chain(learner, root)["owner"] == "INS-VS"


AS_OF_DATES = sorted(
    {a["applied_on"] for a in load("applications.json")}
    | {
        "2024-03-01",
        "2024-03-04",
        "2024-03-05",
        "2024-04-20",
        "2024-05-01",
        "2024-05-02",
        "2024-07-01",
        "2024-07-19",
        "2024-07-20",
        "2024-08-31",
        "2025-01-31",
        "2025-02-01",
        "2025-07-19",
        "2025-07-20",
        "2025-08-14",
        "2025-08-15",
        "2025-12-31",
    }
)
TRICKY = ("L08", "L09", "L10", "L11", "L12", "L13", "L19", "L27")


def test_chains_as_of_past_dates(imported_once: Imported) -> None:
    imported = imported_once
    """``learner_chains(as_of=D)`` follows rules 1, 2 and 10 at D for the tricky learners."""
    report = imported.report
    subset = ImportReport(
        report.dataset,
        learner_ids={k: v for k, v in report.learner_ids.items() if k in TRICKY},
        records=report.records,
    )
    for day in AS_OF_DATES:
        expected = {k: v for k, v in expected_chains(OUTCOMES, day).items() if k in TRICKY}
        assert actual_chains(imported.bank, subset, day) == expected, day


def test_entries_are_signed_by_their_poster_with_the_claimed_dates(imported_once: Imported) -> None:
    imported = imported_once
    at = format_time(T_IMPORT)
    registry = imported.bank.ledger.registry()
    for o in OUTCOMES:
        ref = imported.report.records[o["id"]]
        e = imported.entry(ref.entry_index)
        assert e.type == ("record.corrected" if o["corrects"] else "record.posted")
        assert e.issuer == (BANK_ID if o["posted_by"] == o["learner_id"] else o["posted_by"])
        assert e.at == at  # ingestion time, the bank clock
        assert e.body["posted_at"] == o["posted_at"]  # the claimed dates stay in the body
        assert e.body["achieved_on"] == o["achieved_on"]
        assert e.body["record_id"] == o["id"]
        assert e.body["learner"] == imported.report.learner_ids[o["learner_id"]]
        assert e.body.get("corrects") == o["corrects"]
        assert "on_behalf_of" not in e.body  # the sample's INS-VS posts precede its closure
        if o["posted_by"] == o["learner_id"]:
            assert e.body["claimed_issuer"] == o["issuer_id"]
        else:
            assert "claimed_issuer" not in e.body
        assert e.key_id in registry.institution(e.issuer).keys
        assert (ref.owner, ref.record_id) == (owner_of(o), o["id"])
    for oid, ref in imported.report.revocations.items():
        e = imported.entry(ref.entry_index)
        o = BY_ID[oid]
        assert e.type == "record.revoked"
        assert e.issuer == o["issuer_id"]
        assert e.at == at
        assert e.body == {
            "record_id": oid,
            "reason": o["revocation_reason"],
            "effective_on": o["revoked_at"],
        }


def test_timeline_order_and_the_closed_institution(imported_once: Imported) -> None:
    imported = imported_once
    records, revs = imported.report.records, imported.report.revocations
    idx = {oid: ref.entry_index for oid, ref in records.items()}
    # appended in claimed (posted_at, id) order, so the log's order agrees with rule 1
    in_claimed_order = sorted(OUTCOMES, key=lambda o: (o["posted_at"], o["id"]))
    assert [idx[o["id"]] for o in in_claimed_order] == sorted(idx.values())
    # a revocation comes after every post up to its day and before any later post
    for oid, ref in revs.items():
        day = BY_ID[oid]["revoked_at"]
        assert all(idx[o["id"]] < ref.entry_index for o in OUTCOMES if o["posted_at"] <= day)
        assert all(idx[o["id"]] > ref.entry_index for o in OUTCOMES if o["posted_at"] > day)
    # INS-VS: its own posts, then its closure naming the custodian, then the rest
    size = imported.bank.ledger.head().size
    closures = [i for i in range(size) if imported.entry(i).type == "institution.closed"]
    assert len(closures) == 1
    closure = imported.entry(closures[0])
    assert closure.body == {
        "institution_id": "INS-VS",
        "closed_on": "2024-08-31",
        "custodian": BANK_ID,
    }
    vs = [o for o in OUTCOMES if o["issuer_id"] == "INS-VS"]
    assert len(vs) == 5
    assert all(idx[o["id"]] < closures[0] for o in vs)
    assert all((idx[o["id"]] < closures[0]) == (o["posted_at"] <= "2024-08-31") for o in OUTCOMES)
    state = imported.bank.ledger.registry().institution("INS-VS")
    assert (str(state.closed_on), state.custodian) == ("2024-08-31", BANK_ID)


def test_reimport_adds_nothing(imported: Imported) -> None:
    bank, first = imported.bank, imported.report
    size = bank.ledger.head().size
    imported.clock.advance(86_400)  # every entry is re-signed with another `at`
    again = import_dataset(bank, SAMPLE)
    assert bank.ledger.head().size == size
    assert again.entries_appended == 0
    assert (again.institutions_registered, again.institutions_closed) == (0, 0)
    assert (again.learners_created, again.learners_existing) == (0, 30)
    assert (again.records_posted, again.corrections_posted, again.revocations_posted) == (0, 0, 0)
    assert again.duplicates == 314 + 2
    assert again.learner_ids == first.learner_ids
    assert again.records == first.records
    assert again.revocations == first.revocations
    refs = dataset_refs(bank.engine, "sample")
    assert refs.learner_ids == first.learner_ids
    assert refs.records == first.records
    assert refs.revocations == first.revocations
    assert actual_chains(bank, again) == expected_chains(OUTCOMES)
    audit = run_audit(bank)
    assert audit.ok, audit.problems


def test_custodian_posts_and_revokes_after_the_closure(
    settings_factory: Callable[..., Settings], tmp_path: Path
) -> None:
    """A dataset where the custodian acts for INS-VS after 2024-08-31 (the sample has none):
    a correction posted by BANK, a late post by INS-VS itself (routed to its custodian) and a
    revocation after the closure are signed by BANK with on_behalf_of INS-VS."""
    src = tmp_path / "with_custodian"
    src.mkdir()
    for f in SAMPLE.iterdir():
        (src / f.name).write_bytes(f.read_bytes())
    outcomes = load("outcomes.json")
    by_id = {o["id"]: o for o in outcomes}
    by_id["O0169"]["revoked_at"] = "2025-06-01"
    by_id["O0169"]["revocation_reason"] = "records audit after closure"
    correction = json.loads(json.dumps(by_id["O0113"]))
    correction.update(
        id="O9001", corrects="O0113", posted_at="2025-03-03", posted_by=BANK_ID, note=None
    )
    correction["payload"]["grade"] = 66
    late = json.loads(json.dumps(by_id["O0064"]))
    late.update(
        id="O9002",
        posted_at="2024-09-02",
        dedup_key="course:INS-VS:VS-EL-103:2024S",
    )
    late["payload"]["course_id"] = "VS-EL-103"
    outcomes += [correction, late]
    (src / "outcomes.json").write_text(json.dumps(outcomes, ensure_ascii=False), "utf-8")

    for imp in import_into(settings_factory, src):
        report = imp.report
        assert report.records_posted == 313
        assert report.corrections_posted == 3
        assert report.revocations_posted == 3
        assert report.notes == [
            "O9002: posted by INS-VS after it closed; posted by its custodian BANK"
        ]
        closure = next(
            i
            for i in range(imp.bank.ledger.head().size)
            if imp.entry(i).type == "institution.closed"
        )
        for oid in ("O9001", "O9002"):
            ref = report.records[oid]
            e = imp.entry(ref.entry_index)
            assert (e.issuer, e.body["on_behalf_of"], ref.owner) == (BANK_ID, "INS-VS", "INS-VS")
            assert ref.entry_index > closure
        rev = report.revocations["O0169"]
        e = imp.entry(rev.entry_index)
        assert e.issuer == BANK_ID
        assert e.body["on_behalf_of"] == "INS-VS"
        assert rev.entry_index > closure
        assert actual_chains(imp.bank, report) == expected_chains(outcomes)
        assert actual_chains(imp.bank, report)["L19"]["O0113"]["current"] == "O9001"
        # re-import: the custodian's entries are re-sent and answered as duplicates; INS-VS's
        # own (it can no longer sign) are compared with what is stored
        imp.clock.advance(60)
        size = imp.bank.ledger.head().size
        again = import_dataset(imp.bank, src)
        assert imp.bank.ledger.head().size == size
        assert again.entries_appended == 0
        assert again.duplicates == 316 + 3
        assert again.records == report.records
        audit = run_audit(imp.bank)
        assert audit.ok, audit.problems


def test_the_same_import_twice_into_a_home_seeded_by_the_old_demo(
    settings_factory: Callable[..., Settings],
) -> None:
    """A home where INS-VS was already closed before its records arrived (``seed_demo``):
    its records are posted by the custodian on its behalf, and the chains are the same."""
    from creditbank.service.demo import seed_demo

    settings = settings_factory()
    bank = init_home(settings, clock=FixedClock(T_IMPORT))
    try:
        assert seed_demo(bank) == 10
        report = import_dataset(bank, SAMPLE)
        assert report.institutions_registered == 0
        assert report.institutions_closed == 0
        assert len(report.notes) == 5  # the five INS-VS posts, via the custodian
        for o in OUTCOMES:
            if o["issuer_id"] == "INS-VS":
                e = parse_entry(bytes(bank.ledger.entry(report.records[o["id"]].entry_index).data))
                assert (e.issuer, e.body["on_behalf_of"]) == (BANK_ID, "INS-VS")
        assert actual_chains(bank, report) == expected_chains(OUTCOMES)
        again = import_dataset(bank, SAMPLE)
        assert again.entries_appended == 0
        assert again.duplicates == 316
    finally:
        bank.close()


def test_cli_import_prints_a_summary_and_is_idempotent(
    settings_factory: Callable[..., Settings], capsys: pytest.CaptureFixture[str]
) -> None:
    from creditbank.cli.main import main

    settings = settings_factory()
    argv = ["--home", str(settings.home)]
    if settings.database_url:
        argv += ["--database-url", settings.database_url]
    assert main([*argv, "init"]) == 0
    capsys.readouterr()
    assert main([*argv, "import", str(SAMPLE)]) == 0
    got = capsys.readouterr()
    assert "dataset sample: 362 entries added" in got.out  # 326 + rules, 34 decisions, 1 void
    assert "institutions: 9 registered, 1 closed" in got.out
    assert "learners: 30 (30 new, 0 known)" in got.out
    assert "records: 312 posted, 2 corrections, 2 revocations" in got.out
    assert "duplicates re-posted (already in the log): 0" in got.out
    assert "import: records 317/317 (100%)" in got.err  # progress on stderr
    assert main([*argv, "import", str(SAMPLE)]) == 0
    again = capsys.readouterr().out
    assert "dataset sample: 0 entries added" in again
    assert "duplicates re-posted (already in the log): 316" in again
    assert main([*argv, "import", str(SAMPLE / "outcomes.json")]) == 2
    assert capsys.readouterr().err.startswith("error:")
