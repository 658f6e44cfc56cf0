"""``creditbank keys generate`` and ``creditbank post`` argument handling (no bank needed)."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from creditbank.cli.institution_cmds import read_public_key
from creditbank.cli.main import main
from creditbank.client.poster import load_key_file
from creditbank.core.signing import entry_key_id

from .rows import record, records, write_csv


def test_keys_generate_writes_a_private_key_and_its_public_half(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = tmp_path / "ins.key"
    assert main(["keys", "generate", "--institution", "INS-OU", "--out", str(key)]) == 0
    out = capsys.readouterr().out
    name, signer = load_key_file(key)
    assert name == "INS-OU"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert f"key id: {entry_key_id(signer.public_bytes)}" in out
    pub = key.with_name("ins.key.pub")
    assert pub.read_text().startswith("INS-OU+")
    assert "PRIVATE" not in pub.read_text()
    assert read_public_key(str(pub)) == signer.public_bytes  # what 'institution add' reads
    before = key.read_bytes()
    assert main(["keys", "generate", "--institution", "INS-OU", "--out", str(key)]) == 1
    assert "refusing to overwrite" in capsys.readouterr().err
    assert key.read_bytes() == before


def test_keys_generate_refuses_a_bad_institution_id(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = tmp_path / "ins.key"
    assert main(["keys", "generate", "--institution", "bad+id", "--out", str(key)]) == 1
    assert "key.bad_name" in capsys.readouterr().err
    assert not key.exists()


@pytest.fixture
def key(tmp_path: Path) -> Path:
    path = tmp_path / "ins.key"
    assert main(["keys", "generate", "--institution", "INS-T", "--out", str(path)]) == 0
    return path


def _post(path: Path, key: Path, *extra: str, institution: str = "INS-T") -> int:
    return main(
        [
            "post",
            str(path),
            "--institution",
            institution,
            "--key",
            str(key),
            "--token",
            "cbt_unused",
            "--url",
            "http://127.0.0.1:9",
            "--no-progress",
            *extra,
        ]
    )


def test_dry_run_reports_bad_rows_and_sends_nothing(
    tmp_path: Path, key: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_csv(
        tmp_path / "in.csv", [*records(3), record(3, kind="academic_credit") | {"credits": "-2"}]
    )
    report = tmp_path / "r.json"
    capsys.readouterr()
    assert _post(path, key, "--dry-run", "--report", str(report)) == 1
    out = capsys.readouterr().out
    assert "checked 4 rows of in.csv: 3 valid, 1 invalid" in out
    assert "5\tR-000003\trecord.credits\t" in out
    assert json.loads(report.read_text())["invalid"] == 1
    assert not (tmp_path / "in.csv.creditbank-journal.jsonl").exists()
    write_csv(path, records(3))
    assert _post(path, key, "--dry-run") == 0


def test_post_refuses_a_key_of_another_institution(
    tmp_path: Path, key: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_csv(tmp_path / "in.csv", records(1))
    assert _post(path, key, institution="INS-X") == 2
    assert "named for 'INS-T', not 'INS-X'" in capsys.readouterr().err


def test_post_usage_errors(tmp_path: Path, key: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _post(tmp_path / "missing.csv", key) == 2
    assert "cannot read" in capsys.readouterr().err
    bad = tmp_path / "in.csv"
    bad.write_text("record_id,credit\n", encoding="utf-8")
    assert _post(bad, key) == 1  # the file is refused: a domain refusal, not usage
    assert "unknown column" in capsys.readouterr().err
    assert _post(bad, key, "--batch-size", "1001") == 2
    key.chmod(0o644)
    assert _post(bad, key) == 2
    assert "readable by others" in capsys.readouterr().err


def test_unreachable_bank_exits_1_and_writes_no_journal(
    tmp_path: Path, key: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("creditbank.client.poster.MAX_ATTEMPTS", 2)
    monkeypatch.setattr("creditbank.client.poster.sleep_with_jitter", lambda s: None)
    path = write_csv(tmp_path / "in.csv", records(2))
    assert _post(path, key) == 1
    err = capsys.readouterr().err
    assert "no answer after" in err
    assert "[post.unreachable]" in err
    # nothing was posted, so no journal is left behind (issue #10 item 6)
    assert not (tmp_path / "in.csv.creditbank-journal.jsonl").exists()
