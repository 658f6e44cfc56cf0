"""``creditbank transcript issue|revoke|list`` and ``certificate issue`` (SQLite and PostgreSQL).

One home per engine and module with the sample imported; ``--learner`` takes dataset ids
(``L01``). A refused command prints one line ``error: … [code]``, writes no output file and
leaves the log and the document tables as they were.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import fresh_pg_database
from sample_data import SAMPLE

from creditbank.cli.main import main
from creditbank.config import Settings
from creditbank.service import conversion, institutions, issuance
from creditbank.service.bank import Bank, init_home, open_bank
from creditbank.service.clock import FixedClock
from creditbank.service.importer import import_dataset
from creditbank.storage import documents_repo

T_IMPORT = datetime(2026, 1, 15, 9, 0, 0, tzinfo=UTC)


@dataclass
class Home:
    settings: Settings
    out: Path
    learner: str
    other_record: int
    records: list[int]


@pytest.fixture(scope="module", params=["sqlite", pytest.param("pg", marks=pytest.mark.pg)])
def home(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Home]:
    root = tmp_path_factory.mktemp("doccli")

    def build(url: str | None) -> Iterator[Home]:
        settings = Settings(home=root / "home", database_url=url, checkpoint_interval=3600)
        bank = init_home(settings, clock=FixedClock(T_IMPORT))
        try:
            import_dataset(bank, SAMPLE)
            learner = conversion.resolve_learner_ref(bank, "L01")
            other = conversion.resolve_learner_ref(bank, "L02")
            records = [c.root_index for c in institutions.learner_records(bank, learner)]
            theirs = institutions.learner_records(bank, other)[0].root_index
        finally:
            bank.close()
        out = root / "out"
        out.mkdir()
        yield Home(settings, out, learner, theirs, records)

    if request.param == "sqlite":
        yield from build(None)
        return
    admin = os.environ.get("CREDITBANK_TEST_PG_URL", "")
    if not admin:
        pytest.skip("PostgreSQL tests need CREDITBANK_TEST_PG_URL")
    with fresh_pg_database(admin) as url:
        yield from build(url)


def run(home: Home, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    flags = ["--home", str(home.settings.home)]
    if home.settings.database_url:
        flags += ["--database-url", home.settings.database_url]
    capsys.readouterr()
    code = main([*flags, *args])
    got = capsys.readouterr()
    return code, got.out, got.err


def _bank(home: Home) -> Bank:
    return open_bank(home.settings, pool=False)


def _state(home: Home) -> tuple[int, dict[str, int]]:
    bank = _bank(home)
    try:
        with bank.engine.connect() as conn:
            return bank.ledger.head().size, documents_repo.count_rows(conn)
    finally:
        bank.close()


def _refused(
    home: Home, capsys: pytest.CaptureFixture[str], exit_code: int, code: str, *args: str
) -> None:
    before = _state(home)
    files = set(home.out.iterdir())
    got, out, err = run(home, capsys, *args)
    assert got == exit_code, (out, err)
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    assert lines[0].endswith(f"[{code}]")
    assert _state(home) == before
    assert set(home.out.iterdir()) == files


def test_transcript_issue_writes_the_stored_bytes(
    home: Home, capsys: pytest.CaptureFixture[str]
) -> None:
    pdf, cred = home.out / "L01.pdf", home.out / "L01.json"
    code, out, err = run(
        home, capsys, "transcript", "issue", "--learner", "L01", "--out", str(pdf),
        "--json", str(cred),
    )  # fmt: skip
    assert code == 0, err
    lines = out.splitlines()
    doc_id = lines[0].split()[1]
    assert lines[0].startswith(f"transcript {doc_id} issued for {home.learner}")
    assert lines[1].startswith("verification code: ")
    shown = lines[1].split()[2]
    assert lines[2] == f"verification url: {home.settings.public_base_url}/v/{shown}"
    bank = _bank(home)
    try:
        assert pdf.read_bytes() == issuance.document_bytes(bank, doc_id, "pdf")
        assert cred.read_bytes() == issuance.document_bytes(bank, doc_id, "json")
    finally:
        bank.close()
    code, out, _ = run(home, capsys, "transcript", "list", "--learner", "L01")
    assert code == 0
    assert doc_id in out
    assert "valid" in out


def test_subset_and_certificates(home: Home, capsys: pytest.CaptureFixture[str]) -> None:
    chosen = f"{home.records[0]},{home.records[2]}"
    code, _, err = run(
        home, capsys, "transcript", "issue", "--learner", home.learner, "--records", chosen,
        "--out", str(home.out / "subset.pdf"), "--json", str(home.out / "subset.json"),
    )  # fmt: skip
    assert code == 0, err
    subject = json.loads((home.out / "subset.json").read_text("utf-8"))["credentialSubject"]
    assert [r["entryIndex"] for r in subject["records"]] == [home.records[0], home.records[2]]
    code, out, err = run(
        home, capsys, "certificate", "issue", "--learner", "L01", "--record",
        str(home.records[1]), "--out", str(home.out / "cert.pdf"),
    )  # fmt: skip
    assert code == 0, err
    assert out.startswith("certificate ")


def test_refusals_write_nothing(home: Home, capsys: pytest.CaptureFixture[str]) -> None:
    pdf = str(home.out / "refused.pdf")
    issue = ("transcript", "issue", "--out", pdf, "--learner")
    _refused(home, capsys, 1, "learner.unknown", *issue, "L99")
    _refused(home, capsys, 1, "document.record_not_found", *issue, "L01",
             "--records", str(home.other_record))  # fmt: skip
    _refused(home, capsys, 1, "document.record_index", *issue, "L01", "--records", "1,x")
    _refused(home, capsys, 2, "cli.output", "transcript", "issue", "--learner", "L01",
             "--out", str(home.out / "no" / "such.pdf"))  # fmt: skip
    _refused(home, capsys, 2, "document.certificate_subject", "certificate", "issue",
             "--learner", "L01", "--out", pdf)  # fmt: skip
    _refused(home, capsys, 1, "document.record_not_found", "certificate", "issue",
             "--learner", "L01", "--record", str(home.other_record), "--out", pdf)  # fmt: skip


def test_revoke(home: Home, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(
        home, capsys, "certificate", "issue", "--learner", "L01", "--record",
        str(home.records[3]), "--out", str(home.out / "to-revoke.pdf"),
    )  # fmt: skip
    assert code == 0, err
    doc_id = out.split()[1]
    code, out, err = run(home, capsys, "transcript", "revoke", doc_id, "--reason", "issued twice")
    assert code == 0, err
    assert out.strip() == f"certificate {doc_id} revoked: issued twice"
    _refused(home, capsys, 1, "document.revoked", "transcript", "revoke", doc_id,
             "--reason", "again")  # fmt: skip
    _refused(home, capsys, 1, "document.not_found", "transcript", "revoke",
             "DOC-" + "0" * 26, "--reason", "x")  # fmt: skip
    code, out, _ = run(home, capsys, "transcript", "list", "--learner", "L01", "--json")
    (mine,) = [d for d in json.loads(out) if d["document_id"] == doc_id]
    assert mine["status"] == "revoked"
    assert mine["revoked"][0]["what"] == "bank"
    assert mine["revoked"][0]["reason"] == "issued twice"
