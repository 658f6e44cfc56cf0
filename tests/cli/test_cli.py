"""``creditbank`` commands in-process (``main([...])``) and as a real subprocess.

Every error is one line on stderr (``error: <message> [<code>]``), never a traceback, with
exit code 1 (domain/verification), 2 (usage/configuration) or 70 (unexpected).
"""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from sqlalchemy import text

from creditbank.cli import common as cli_common
from creditbank.cli.log_cmds import audit_progress, entry_file_name
from creditbank.cli.main import main
from creditbank.config import Settings
from creditbank.core import merkle
from creditbank.core.checkpoint import verify_checkpoint
from creditbank.core.signing import parse_verifier_key
from creditbank.errors import ConfigurationError
from creditbank.service.bank import Bank, open_bank
from creditbank.service.keys import ISSUER_KEY, LOG_KEY
from creditbank.storage.token_repo import lookup_token

if TYPE_CHECKING:  # tests/conftest.py; fixtures hand the instances over
    from conftest import Institution

CREDITBANK = Path(sys.executable).parent / "creditbank"


@dataclass
class Result:
    code: int
    out: str
    err: str

    def one_error_line(self) -> str:
        """The single stderr line of a failed command (and no traceback)."""
        assert self.code != 0, (self.out, self.err)
        assert "Traceback" not in self.err
        lines = self.err.splitlines()
        assert len(lines) == 1, self.err
        assert lines[0].startswith("error: ")
        assert lines[0].endswith("]")
        return lines[0]


def flags(settings: Settings) -> list[str]:
    """The global flags that point the CLI at ``settings``' home and database."""
    out = ["--home", str(settings.home)]
    if settings.database_url:
        out += ["--database-url", settings.database_url]
    return out


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], settings: Settings) -> Callable[..., Result]:
    """Run ``main([*flags, *args])`` in-process and capture its output."""

    def run(*args: str, global_flags: bool = True) -> Result:
        capsys.readouterr()
        code = main([*(flags(settings) if global_flags else []), *args])
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


@pytest.fixture
def log(bank: Bank, institution: Institution) -> Bank:
    """Published sizes 1, 2, 7, 13; head 15 (two records appended but not published)."""
    bank.ledger.append(institution.records(5), publish=True)
    bank.ledger.append(institution.records(6, start=5), publish=True)
    bank.ledger.append(institution.records(2, start=11), publish=False)
    return bank


def b64(text_: str) -> bytes:
    return base64.b64decode(text_, validate=True)


def leaf_hashes(bank: Bank, end: int) -> list[bytes]:
    return bank.ledger.leaf_hashes(0, end)


# -- init -------------------------------------------------------------------------------------
def test_init_prints_the_home_and_refuses_to_overwrite(
    cli: Callable[..., Result], settings: Settings
) -> None:
    first = cli("init")
    assert first.code == 0, first.err
    lines = dict(line.split(": ", 1) for line in first.out.splitlines())
    assert lines["home"] == str(settings.home.resolve())
    assert "database" in lines
    key = parse_verifier_key(lines["log key"])
    assert key.name == settings.origin
    assert lines["issuer key"].startswith("ed25519:")
    for name in (LOG_KEY, ISSUER_KEY):
        assert (settings.keys_dir / name).stat().st_mode & 0o777 == 0o600
    before = {n: (settings.keys_dir / n).read_bytes() for n in (LOG_KEY, ISSUER_KEY)}

    again = cli("init")
    assert again.code == 1
    line = again.one_error_line()
    assert "refusing to overwrite" in line
    assert line.endswith("[key.exists]")
    assert {n: (settings.keys_dir / n).read_bytes() for n in (LOG_KEY, ISSUER_KEY)} == before
    bank = open_bank(settings)
    try:
        assert bank.ledger.head().size == 1
        assert bank.verifier_key == lines["log key"]
    finally:
        bank.close()


def test_init_masks_a_database_password(
    cli: Callable[..., Result], settings: Settings
) -> None:
    assert cli_common.mask_url("postgresql://u:s3cret@h:5432/db") == "postgresql://u:***@h:5432/db"
    assert cli_common.mask_url("sqlite:////x/y.db") == "sqlite:////x/y.db"


# -- log ---------------------------------------------------------------------------------------
def test_log_checkpoint_and_key(cli: Callable[..., Result], log: Bank) -> None:
    cp = cli("log", "checkpoint")
    assert cp.code == 0
    assert cp.out == log.ledger.latest_checkpoint().note
    key = cli("log", "key")
    assert key.code == 0
    assert key.out == log.verifier_key + "\n"
    checkpoint = verify_checkpoint(cp.out, parse_verifier_key(key.out.strip()))
    assert checkpoint.size == 13
    assert checkpoint.root == merkle.root_from_leaf_hashes(leaf_hashes(log, 13))


def test_log_proof_verifies(cli: Callable[..., Result], log: Bank) -> None:
    hashes = leaf_hashes(log, 13)
    for index, size in [(0, None), (12, None), (4, 7), (1, 2), (0, 1)]:
        args = ["log", "proof", str(index)] + ([] if size is None else ["--size", str(size)])
        res = cli(*args)
        assert res.code == 0, res.err
        doc = json.loads(res.out)
        n = 13 if size is None else size
        assert doc["index"] == index
        assert doc["size"] == n
        assert b64(doc["leaf_hash"]) == hashes[index]
        merkle.verify_inclusion(
            index, n, hashes[index], [b64(p) for p in doc["path"]],
            merkle.root_from_leaf_hashes(hashes[:n]),
        )


def test_log_consistency_verifies(cli: Callable[..., Result], log: Bank) -> None:
    hashes = leaf_hashes(log, 13)
    for first, second in [(1, None), (2, 7), (7, 13), (13, 13), (1, 2)]:
        res = cli("log", "consistency", str(first), *([] if second is None else [str(second)]))
        assert res.code == 0, res.err
        doc = json.loads(res.out)
        n = 13 if second is None else second
        assert (doc["first"], doc["second"]) == (first, n)
        merkle.verify_consistency(
            first, n,
            merkle.root_from_leaf_hashes(hashes[:first]),
            merkle.root_from_leaf_hashes(hashes[:n]),
            [b64(p) for p in doc["path"]],
        )


def test_log_entry_writes_the_exact_bytes(
    capsysbinary: pytest.CaptureFixture[bytes], settings: Settings, log: Bank
) -> None:
    for index in (0, 5, 14):  # public, private, appended-but-unpublished: operators read all
        capsysbinary.readouterr()
        assert main([*flags(settings), "log", "entry", str(index)]) == 0
        assert capsysbinary.readouterr().out == bytes(log.ledger.entry(index).data)


def test_log_export_writes_byte_identical_files(
    cli: Callable[..., Result], log: Bank, tmp_path: Path
) -> None:
    out = tmp_path / "export" / "nested"
    res = cli("log", "export", str(out))
    assert res.code == 0, res.err
    assert "13 entries" in res.out
    files = sorted(p.name for p in out.iterdir())
    assert files == [entry_file_name(i) for i in range(13)] + ["checkpoint.txt", "key.txt"]
    assert entry_file_name(42) == "00000000000000000042.json"
    hashes = [merkle.leaf_hash((out / entry_file_name(i)).read_bytes()) for i in range(13)]
    assert hashes == leaf_hashes(log, 13)
    for i in range(13):
        assert (out / entry_file_name(i)).read_bytes() == bytes(log.ledger.entry(i).data)
    note = (out / "checkpoint.txt").read_text("utf-8")
    key = parse_verifier_key((out / "key.txt").read_text("utf-8").strip())
    assert verify_checkpoint(note, key).root == merkle.root_from_leaf_hashes(hashes)

    # a non-empty directory is refused and left as it was; --force replaces our files
    (out / entry_file_name(3)).write_bytes(b"junk")
    refused = cli("log", "export", str(out))
    assert refused.code == 2
    assert refused.one_error_line().endswith("[export.not_empty]")
    assert (out / entry_file_name(3)).read_bytes() == b"junk"
    forced = cli("log", "export", str(out), "--force")
    assert forced.code == 0, forced.err
    assert (out / entry_file_name(3)).read_bytes() == bytes(log.ledger.entry(3).data)


def test_log_export_refuses_a_file_target(
    cli: Callable[..., Result], log: Bank, tmp_path: Path
) -> None:
    target = tmp_path / "file"
    target.write_text("x")
    res = cli("log", "export", str(target))
    assert res.code == 2
    assert res.one_error_line().endswith("[export.target]")
    assert target.read_text() == "x"


def test_log_publish_signs_the_head(cli: Callable[..., Result], log: Bank) -> None:
    res = cli("log", "publish")
    assert res.code == 0, res.err
    cp = verify_checkpoint(res.out, parse_verifier_key(log.verifier_key))
    assert cp.size == 15
    assert log.ledger.latest_checkpoint().size == 15
    again = cli("log", "publish")  # nothing new: the latest checkpoint, not a new signature
    assert again.code == 0
    assert again.out == res.out


# -- audit -------------------------------------------------------------------------------------
def _project(bank: Bank) -> None:
    """The ``log`` fixture appends in ledger-only mode; the CLI audits as the product does
    (projections included), so write the projections the log implies first (ADR 0007)."""
    from creditbank.service.projection import rebuild_projections

    product = open_bank(bank.settings)
    try:
        rebuild_projections(product)
    finally:
        product.close()


def test_audit_ok(cli: Callable[..., Result], log: Bank) -> None:
    _project(log)
    res = cli("audit")
    assert res.code == 0, res.err
    assert res.out.startswith("audited 15 entries and 4 checkpoints: OK")


def _tamper_entry(bank: Bank, index: int) -> None:
    """Change one stored entry behind the ledger's back (around the append-only triggers)."""
    with bank.engine.begin() as conn:
        if bank.engine.dialect.name == "postgresql":
            conn.execute(text("SET LOCAL session_replication_role = replica"))
        else:
            names = conn.execute(text("SELECT name FROM sqlite_master WHERE type='trigger'"))
            for name in list(names.scalars()):
                conn.execute(text(f'DROP TRIGGER "{name}"'))
        data = bytes(conn.execute(
            text("SELECT data FROM log_entries WHERE idx = :i"), {"i": index}
        ).scalar_one())
        forged = data.replace(b'"grade":82', b'"grade":92')
        assert forged != data
        conn.execute(
            text("UPDATE log_entries SET data = :d WHERE idx = :i"), {"d": forged, "i": index}
        )


def test_audit_names_the_first_bad_index(cli: Callable[..., Result], log: Bank) -> None:
    _project(log)
    _tamper_entry(log, 9)
    res = cli("audit")
    assert res.code == 1
    assert "first bad index: 9" in res.out
    line = res.one_error_line()
    assert "first bad index 9" in line
    assert line.endswith("[audit.failed]")


def test_audit_progress_goes_to_stderr_on_long_logs(capsys: pytest.CaptureFixture[str]) -> None:
    progress = audit_progress()
    for done in range(0, 100_001, 1000):
        progress(done, 100_000)
    lines = capsys.readouterr().err.splitlines()
    assert 10 <= len(lines) <= 12  # one per 10 % (and at most ~1 per second)
    assert lines[-1] == "audit: 100000/100000 entries (100%)"
    short = audit_progress()
    for done in range(10):
        short(done, 10)
    assert capsys.readouterr().err == ""


# -- auditor tokens ------------------------------------------------------------------------------
def test_auditor_token_is_printed_once_and_works(
    cli: Callable[..., Result], log: Bank
) -> None:
    from starlette.testclient import TestClient

    from creditbank.api.app import create_app

    res = cli("auditor", "token", "--label", "external audit 2025")
    assert res.code == 0, res.err
    token = res.out.strip()
    assert len(res.out.splitlines()) == 1
    assert token not in res.err
    row = lookup_token(log.engine, token)
    assert row is not None
    assert row.role == "auditor"
    assert row.label == "external audit 2025"
    with TestClient(create_app(log.settings, bank=log)) as client:
        url = "/api/v1/log/entries/5"
        assert client.get(url).status_code == 403
        ok = client.get(url, headers={"Authorization": f"Bearer {token}"})
        assert ok.status_code == 200
        assert ok.content == bytes(log.ledger.entry(5).data)


# -- bad input ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "code", "suffix"),
    [
        (["log", "proof", "abc"], 2, "[usage]"),
        (["log", "proof", "--", "-1"], 2, "[usage]"),
        (["log", "proof"], 2, "[usage]"),
        (["log", "proof", "99"], 1, "[merkle.bad_index]"),
        (["log", "proof", "13"], 1, "[merkle.bad_index]"),
        (["log", "proof", "0", "--size", "14"], 1, "[log.unpublished_size]"),
        (["log", "proof", "0", "--size", "0"], 2, "[usage]"),
        (["log", "proof", "0", "--size", "1e3"], 2, "[usage]"),
        (["log", "proof", "99999999999999999999999"], 2, "[usage]"),
        (["log", "consistency", "0"], 2, "[usage]"),
        (["log", "consistency", "7", "2"], 1, "[merkle.bad_consistency_sizes]"),
        (["log", "consistency", "3", "7"], 1, "[log.unpublished_size]"),
        (["log", "consistency", "x"], 2, "[usage]"),
        (["log", "entry", "15"], 1, "[log.no_entry]"),
        (["log", "entry", "-5"], 2, "[usage]"),
        (["log", "entry", "1.5"], 2, "[usage]"),
        (["log", "export"], 2, "[usage]"),
        (["log", "frobnicate"], 2, "[usage]"),
        (["nope"], 2, "[usage]"),
        (["audit", "--max-problems", "0"], 2, "[usage]"),
        (["auditor", "token", "--label", "x" * 201], 1, "[token.label]"),
        (["--bogus-flag", "log", "key"], 2, "[usage]"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(
    cli: Callable[..., Result], log: Bank, args: list[str], code: int, suffix: str
) -> None:
    with log.engine.connect() as conn:
        before = conn.execute(text("SELECT count(*) FROM api_tokens")).scalar_one()
    head = log.ledger.head()
    res = cli(*args)
    assert res.code == code, (res.out, res.err)
    assert res.one_error_line().endswith(suffix)
    assert res.out == ""
    assert log.ledger.head() == head
    assert log.ledger.latest_checkpoint().size == 13
    with log.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM api_tokens")).scalar_one() == before


@pytest.mark.parametrize(
    "args",
    [["log", "key"], ["log", "checkpoint"], ["log", "proof", "0"], ["audit"],
     ["auditor", "token"], ["serve"], ["log", "export", "out"]],
)
def test_uninitialised_home_is_a_configuration_error(
    cli: Callable[..., Result], settings: Settings, args: list[str], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    res = cli(*args)
    assert res.code == 2
    assert res.one_error_line().endswith("[config.invalid]")
    assert not settings.home.exists()
    assert not (tmp_path / "out").exists()


def test_settings_from_environment(
    cli: Callable[..., Result], settings: Settings, monkeypatch: pytest.MonkeyPatch, log: Bank
) -> None:
    monkeypatch.setenv("CREDITBANK_HOME", str(settings.home))
    if settings.database_url:
        monkeypatch.setenv("CREDITBANK_DATABASE_URL", settings.database_url)
    res = cli("log", "key", global_flags=False)
    assert res.code == 0
    assert res.out.strip() == log.verifier_key
    monkeypatch.setenv("CREDITBANK_CHECKPOINT_INTERVAL", "soon")
    bad = cli("log", "key", global_flags=False)
    assert bad.code == 2
    assert "checkpoint_interval" in bad.one_error_line()
    monkeypatch.delenv("CREDITBANK_CHECKPOINT_INTERVAL")
    wrong = cli("--origin", "other.example/log", "log", "key")
    assert wrong.code == 2
    assert wrong.one_error_line().endswith("[config.invalid]")


def test_unexpected_errors_exit_70_in_one_line(
    cli: Callable[..., Result], log: Bank, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_: Any, **__: Any) -> Bank:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(cli_common, "open_bank", broken)
    res = cli("log", "key")
    assert res.code == 70
    line = res.one_error_line()
    assert "RuntimeError: disk on fire" in line
    assert line.endswith("[internal]")
    with pytest.raises(RuntimeError, match="disk on fire"):
        main([*flags(log.settings), "--verbose", "log", "key"])


def test_verbose_reraises_domain_errors(settings: Settings, log: Bank) -> None:
    from creditbank.errors import NotFoundError

    with pytest.raises(NotFoundError):
        main([*flags(settings), "-v", "log", "entry", "99"])


def test_help(cli: Callable[..., Result]) -> None:
    res = cli("--help", global_flags=False)
    assert res.code == 0
    for command in ("init", "serve", "log", "audit", "auditor"):
        assert command in res.out
    bare = cli(global_flags=False)
    assert bare.code == 2
    assert "Usage" in bare.out + bare.err


# -- demo and serve ----------------------------------------------------------------------------
def test_demo_seeds_the_sample_institutions(cli: Callable[..., Result], settings: Settings) -> None:
    res = cli("demo", "--no-serve")
    assert res.code == 0, res.err
    bank = open_bank(settings)
    try:
        assert "INS-OU" in bank.ledger.registry().institutions
        size = bank.ledger.head().size
    finally:
        bank.close()
    again = cli("demo", "--no-serve")  # idempotent on an existing home
    assert again.code == 0, again.err
    assert "(0 entries added)" in again.out
    bank = open_bank(settings)
    try:
        assert bank.ledger.head().size == size
    finally:
        bank.close()


def _env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CREDITBANK_")}
    env["CREDITBANK_HOME"] = str(settings.home)
    if settings.database_url:
        env["CREDITBANK_DATABASE_URL"] = settings.database_url
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_runs_the_api_factory(settings: Settings, log: Bank) -> None:
    port = _free_port()
    proc = subprocess.Popen(
        [str(CREDITBANK), "serve", "--port", str(port)],
        env=_env(settings), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                health = httpx.get(f"{base}/healthz", timeout=2)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.1)
        assert health.json() == {"status": "ok", "size": 15}
        key = parse_verifier_key(httpx.get(f"{base}/api/v1/log/key").text)
        cp = verify_checkpoint(httpx.get(f"{base}/api/v1/log/checkpoint").text, key)
        assert cp.size in (13, 15)  # the publisher signs the head within ~interval/2
        problem = httpx.get(f"{base}/api/v1/log/entries/3")
        assert problem.status_code == 403
        assert problem.headers["content-type"] == "application/problem+json"
    finally:
        proc.terminate()
        proc.wait(timeout=20)


# -- the installed console script --------------------------------------------------------------
@pytest.mark.slow
def test_console_script_exit_codes(settings: Settings, tmp_path: Path) -> None:
    env = _env(settings)

    def run(*args: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [str(CREDITBANK), *args], env=env, capture_output=True, timeout=120, check=False
        )

    first = run("init")
    assert first.returncode == 0, first.stderr
    assert b"log key: " in first.stdout
    again = run("init")
    assert again.returncode == 1
    assert again.stderr.decode().count("\n") == 1
    assert again.stderr.startswith(b"error: refusing to overwrite")
    key = run("log", "key")
    assert key.returncode == 0
    entry = run("log", "entry", "0")
    assert entry.returncode == 0
    assert entry.stdout.startswith(b'{"at":')
    assert b"institution.registered" in entry.stdout
    for args, code in [
        (("log", "proof", "abc"), 2),
        (("log", "proof", "7"), 1),  # a refusal: the log has no index 7
        (("log", "entry", "7"), 1),
        (("log", "export", str(tmp_path / "x"), "--bogus"), 2),
        (("--home", str(tmp_path / "none"), "log", "key"), 2),
    ]:
        res = run(*args)
        assert res.returncode == code, (args, res.stderr)
        assert b"Traceback" not in res.stderr
        assert res.stderr.count(b"\n") == 1, res.stderr
        assert res.stderr.startswith(b"error: ")
        assert res.stdout == b""
    assert not (tmp_path / "x").exists()
    module = subprocess.run(
        [sys.executable, "-m", "creditbank.cli", "--help"], env=env, capture_output=True,
        timeout=60, check=False,
    )
    assert module.returncode == 0
    assert b"creditbank" in module.stdout


def test_unreachable_database_is_one_line_and_init_writes_no_keys(
    cli: Callable[..., Result], tmp_path: Path
) -> None:
    home = tmp_path / "unreachable"
    dead = "postgresql://nobody@127.0.0.1:1/none"  # nothing listens on port 1
    res = cli("--home", str(home), "--database-url", dead, "init", global_flags=False)
    assert res.code == 1
    assert res.one_error_line().endswith("[storage.unavailable]")
    assert not (home / "keys").exists()


def test_unreachable_database_on_an_existing_home(
    cli: Callable[..., Result], settings: Settings, log: Bank
) -> None:
    dead = "postgresql://nobody@127.0.0.1:1/none"
    res = cli("--home", str(settings.home), "--database-url", dead, "log", "key",
              global_flags=False)
    assert res.code == 1
    assert res.one_error_line().endswith("[storage.unavailable]")


# -- schema versions ----------------------------------------------------------------------------
def test_an_older_schema_is_refused_until_migrated(
    cli: Callable[..., Result], settings: Settings, bank: Bank
) -> None:
    from alembic import command

    from creditbank.service.bank import open_bank
    from creditbank.storage import migrate
    from creditbank.storage.engine import make_engine

    known = migrate.known_revisions()
    assert len(known) >= 2
    head, previous = known[-1], known[-2]
    size = bank.ledger.head().size
    bank.close()
    engine = make_engine(settings.db_url, pool=False)
    try:  # as if this home was made by the version before the newest migration
        cfg = migrate._config()
        with engine.connect() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, previous)
            conn.commit()
        assert migrate.current_revision(engine) == previous
    finally:
        engine.dispose()

    line = cli("log", "checkpoint").one_error_line()
    assert cli("log", "checkpoint").code == 2
    assert f"at {previous}" in line
    assert head in line
    assert "creditbank migrate" in line
    with pytest.raises(ConfigurationError):
        open_bank(settings)

    res = cli("migrate")
    assert res.code == 0, res.err
    assert res.out.strip() == f"schema migrated: {previous} -> {head}"
    assert cli("migrate").out.strip() == f"schema up to date ({head})"
    reopened = open_bank(settings, pool=False)
    try:
        assert reopened.ledger.head().size == size  # the log is untouched
    finally:
        reopened.close()


def test_a_newer_or_unknown_schema_is_refused(
    cli: Callable[..., Result], settings: Settings, bank: Bank
) -> None:
    with bank.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999_from_the_future'"))
    bank.close()
    line = cli("log", "checkpoint").one_error_line()
    assert "9999_from_the_future" in line
    assert "does not know" in line
    assert "9999_from_the_future" in cli("migrate").one_error_line()


def test_migrate_needs_an_initialised_home(cli: Callable[..., Result]) -> None:
    assert "creditbank init" in cli("migrate").one_error_line()
