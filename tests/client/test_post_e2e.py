"""The signing client against the real API on a real socket (SQLite; PostgreSQL when set)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from creditbank.cli.main import main
from creditbank.client.poster import PostReport, default_journal_path, post_file
from creditbank.config import Settings

from .live import INSTITUTION, LiveBank, serve
from .rows import record, records, write_csv

BATCH = 500
ROWS = 50_000
LEARNERS = 2_000


@pytest.fixture
def live(settings_factory: Callable[..., Settings], tmp_path: Path) -> Iterator[LiveBank]:
    with serve(settings_factory(checkpoint_interval=0.2), tmp_path) as bank:
        yield bank


def _post_args(live: LiveBank, path: Path, *extra: str) -> list[str]:
    return [
        "post",
        str(path),
        "--institution",
        INSTITUTION,
        "--key",
        str(live.key_path),
        "--url",
        live.url,
        "--no-progress",
        *extra,
    ]


def test_cli_posts_a_file_and_reports_every_bad_row(
    live: LiveBank,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("CREDITBANK_TOKEN", live.token)
    rows = records(60, learners=12)
    rows.append(record(60, kind="academic_credit") | {"grade": "150"})  # invalid locally
    rows.append(record(3) | {"record_id": "R-C1", "corrects": "R-000003"})  # a correction
    rows.append(record(4) | {"record_id": "R-C2", "corrects": "NO-SUCH"})  # bank refuses
    rows.append(
        {"record_id": "R-000007", "revoke_reason": "撤销", "revoke_effective_on": "2025-01-02"}
    )
    path = write_csv(tmp_path / "in.csv", rows)
    report_path = tmp_path / "report.json"
    code = main(_post_args(live, path, "--batch-size", "16", "--report", str(report_path)))
    out = capsys.readouterr().out
    assert code == 1
    report = json.loads(report_path.read_text())
    assert (report["rows"], report["posted"], report["invalid"], report["rejected"]) == (
        64,
        62,
        1,
        1,
    )
    assert [(f["row"], f["code"]) for f in report["failures"]] == [
        (62, "record.schema"),
        (64, "record.unknown_target"),
    ]
    assert "62\tR-000060\trecord.schema\t" in out
    assert "64\tR-C2\trecord.unknown_target\t" in out
    assert live.record_count() == 61  # 60 records and one correction
    entries = live.record_entries()
    assert len(entries) == 62
    assert "record.revoked:R-000007" in entries
    assert "record.corrected:R-C1" in entries
    # names and identity numbers stay out of the log; the names went to the bank's tables
    with live.bank.engine.connect() as conn:
        named = conn.execute(text("SELECT count(*) FROM record_names")).scalar_one()
    assert named == 61
    personal = {r[c] for r in rows for c in ("learner_name", "id_number") if r.get(c)}
    for i in range(2, live.bank.ledger.head().size):
        data = bytes(live.bank.ledger.entry(i).data).decode()
        assert not [p for p in personal if p in data]

    # a re-run skips everything acknowledged and reports the same bad rows
    code = main(_post_args(live, path, "--report", str(report_path)))
    again = json.loads(report_path.read_text())
    assert code == 1
    assert (again["posted"], again["skipped"], again["rejected"]) == (0, 62, 1)
    assert len(live.record_entries()) == 62


def _post(live: LiveBank, path: Path, **kw: Any) -> PostReport:
    return post_file(
        path, institution=INSTITUTION, signer=live.signer, url=live.url, token=live.token, **kw
    )


def test_same_record_id_with_other_content_is_a_conflict(live: LiveBank, tmp_path: Path) -> None:
    assert _post(live, write_csv(tmp_path / "a.csv", records(3))).ok
    changed = record(1) | {"level": "3"}  # record(1) has level 2
    report = _post(live, write_csv(tmp_path / "b.csv", [record(0), changed]))
    assert report.duplicates == 1  # the same content again: answered with the original index
    assert report.proven == 1  # ... whose index and stored leaf an inclusion proof verifies
    assert [(e.record_id, e.code) for e in report.rejected] == [("R-000001", "record.conflict")]
    assert live.record_count() == 3


def test_interrupted_client_resumes_with_the_same_records(live: LiveBank, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "in.csv", records(300, learners=40))

    def stop(done: int) -> None:
        if done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _post(live, path, batch_size=50, after_batch=stop)
    lines = default_journal_path(path).read_text().splitlines()
    assert len(lines) == 1 + 100
    # lose the last batch's journal lines: acknowledged by the bank, unknown to the client
    default_journal_path(path).write_text("\n".join(lines[:51]) + "\n")
    report = _post(live, path, batch_size=50)
    assert report.ok
    assert (report.posted, report.duplicates, report.skipped) == (200, 50, 50)
    entries = live.record_entries()
    assert len(entries) == 300
    assert set(Counter(entries).values()) == {1}


@pytest.mark.slow
def test_50000_rows_interrupted_once_and_resumed(
    tmp_path: Path, settings_factory: Callable[..., Settings], engine_kind: str
) -> None:
    if engine_kind != "sqlite":
        pytest.skip("the 50,000-row run is measured on SQLite")
    path = write_csv(tmp_path / "in.csv", records(ROWS, learners=LEARNERS))
    journal = default_journal_path(path)
    report_path = tmp_path / "report.json"
    with serve(settings_factory(checkpoint_interval=0.2), tmp_path) as live:
        env = {**os.environ, "CREDITBANK_TOKEN": live.token}
        args = [
            sys.executable,
            "-m",
            "creditbank.cli",
            *_post_args(live, path, "--batch-size", str(BATCH)),
        ]
        started = time.monotonic()
        first = subprocess.Popen(
            args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        kill_at = 1 + (ROWS // BATCH // 2) * BATCH  # header + half the batches
        try:
            lines, offset = 0, 0
            while first.poll() is None and time.monotonic() - started < 900:
                if journal.exists():  # count new lines only: the server shares this process
                    with journal.open("rb") as f:
                        f.seek(offset)
                        chunk = f.read()
                    offset += len(chunk)
                    lines += chunk.count(b"\n")
                    if lines >= kill_at:
                        break
                time.sleep(0.1)
            assert first.poll() is None, "the client ended (or stalled) before the interrupt"
        finally:
            first.kill()  # SIGKILL: no chance to tidy up
            first.wait(timeout=30)
        acknowledged = journal.read_bytes().count(b"\n") - 1
        assert 0 < acknowledged < ROWS

        second = subprocess.run(
            [*args, "--report", str(report_path)],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert second.returncode == 0, second.stdout + second.stderr
        report = json.loads(report_path.read_text())
        assert report["rows"] == ROWS
        assert report["skipped"] == acknowledged
        assert report["posted"] + report["duplicates"] + report["skipped"] == ROWS
        assert report["invalid"] == report["rejected"] == 0

        assert live.record_count() == ROWS
        assert live.distinct_record_ids() == ROWS
        entries = live.record_entries()
        assert len(entries) == ROWS
        assert len(set(entries)) == ROWS
        assert live.bank.ledger.head().size == 2 + ROWS
        keys = {json.loads(line)["key"] for line in journal.read_text().splitlines()[1:]}
        assert len(keys) == ROWS
