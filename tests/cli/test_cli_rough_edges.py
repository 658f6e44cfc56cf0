"""CLI rough edges a new user met (issue #10 item 6), each fixed and pinned here:

* a ``--url`` without ``http://`` is a usage error at once (exit 2, one line, no retries), for
  every command that takes ``--url`` (``post``, ``monitor``);
* ``post`` leaves no journal when nothing was posted;
* a learner may be named by the bank's id or by an imported dataset's id (``L01``) wherever
  the CLI names one (``learner token|erase``, ``apply``, ``what-if``, ``transcript list``);
* a command run where there is no home says to run ``creditbank init`` or set
  ``CREDITBANK_HOME`` (exit 2).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

import pytest
from client.live import INSTITUTION, serve  # tests/client (the tests folder is on sys.path)
from client.rows import record, records, write_csv

from creditbank.cli.main import main
from creditbank.client.poster import default_journal_path
from creditbank.config import Settings
from creditbank.service.bank import Bank, init_home
from creditbank.service.clock import FixedClock
from creditbank.service.demo import SAMPLE
from creditbank.service.importer import ImportReport, import_dataset
from creditbank.storage.token_repo import lookup_token

T_IMPORT = datetime(2026, 1, 15, 9, 0, 0, tzinfo=UTC)


@dataclass
class Ran:
    code: int
    out: str
    err: str
    seconds: float

    def one_error_line(self) -> str:
        lines = self.err.strip().splitlines()
        assert len(lines) == 1, self.err
        assert lines[0].startswith("error: "), self.err
        return lines[0]


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]) -> Callable[..., Ran]:
    def go(*args: str) -> Ran:
        capsys.readouterr()
        t0 = time.perf_counter()
        code = main(list(args))
        took = time.perf_counter() - t0
        got = capsys.readouterr()
        return Ran(code, got.out, got.err, took)

    return go


@pytest.fixture
def key(tmp_path: Path, run: Callable[..., Ran]) -> Path:
    path = tmp_path / "ins.key"
    assert run("keys", "generate", "--institution", INSTITUTION, "--out", str(path)).code == 0
    return path


# -- URLs ----------------------------------------------------------------------------------------
BAD_URLS = ["127.0.0.1:8000", "localhost", "bank.example/api", "ftp://bank.example", "http://",
            "http://bank example", "https://bank.example:0"]  # fmt: skip


def _url_commands(tmp_path: Path, key: Path) -> dict[str, Callable[[str], list[str]]]:
    """Every command option that takes the bank's URL, as arguments with that URL."""
    csv_file = write_csv(tmp_path / "in.csv", records(2))
    doc = tmp_path / "doc.json"
    doc.write_text("{}", encoding="utf-8")
    return {
        "post --url": lambda u: ["post", str(csv_file), "--institution", INSTITUTION, "--key",
                                 str(key), "--token", "t", "--url", u, "--no-progress"],
        "monitor --url": lambda u: ["monitor", "--institution", "INS-OU", "--url", u,
                                    "--state", str(tmp_path / "state.json")],
        "verify --url": lambda u: ["verify", "ABCD-EFGH-JKMN-PQRS", "--url", u],
        "verify --online": lambda u: ["verify", str(doc), "--keys", str(tmp_path), "--online", u],
    }  # fmt: skip


@pytest.mark.parametrize("command", ["post --url", "monitor --url", "verify --url",
                                     "verify --online"])  # fmt: skip
@pytest.mark.parametrize("url", BAD_URLS)
def test_url_without_scheme_is_a_usage_error_at_once(
    command: str, url: str, tmp_path: Path, key: Path, run: Callable[..., Ran]
) -> None:
    args = _url_commands(tmp_path, key)[command](url)
    res = run(*args)
    assert res.code == 2, res.err
    assert res.one_error_line().endswith("[usage.url]")
    assert command.split()[1] in res.err
    assert "http://" in res.err
    assert res.seconds < 2  # no retries (post tried six times with backoff, about 20 s)
    assert not default_journal_path(tmp_path / "in.csv").exists()
    assert not (tmp_path / "state.json").exists()


def test_url_from_the_environment_is_checked_too(
    tmp_path: Path, run: Callable[..., Ran], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CREDITBANK_URL", "127.0.0.1:8000")
    res = run("monitor", "--institution", "INS-OU", "--state", str(tmp_path / "s.json"))
    assert res.code == 2
    assert res.one_error_line().endswith("[usage.url]")


def test_every_command_taking_url_is_covered(tmp_path: Path, key: Path) -> None:
    """A new command taking the bank's URL must join the test above."""
    import typer.main

    from creditbank.cli.main import app

    def walk(cmd: object, path: str) -> Iterator[str]:
        sub = getattr(cmd, "commands", None)
        if sub:
            for name, c in sub.items():
                yield from walk(c, f"{path} {name}".strip())
        else:
            for p in getattr(cmd, "params", []):
                for opt in set(getattr(p, "opts", [])) & {"--url", "--online"}:
                    yield f"{path} {opt}"

    assert sorted(walk(typer.main.get_command(app), "")) == sorted(_url_commands(tmp_path, key))


# -- the journal -------------------------------------------------------------------------------
def test_no_journal_when_every_row_is_invalid(
    tmp_path: Path, key: Path, run: Callable[..., Ran]
) -> None:
    bad = [record(n, kind="academic_credit") | {"grade": "150"} for n in range(3)]
    path = write_csv(tmp_path / "in.csv", bad)
    # nothing is sent when no row is valid, so an unreachable bank does not matter
    res = run("post", str(path), "--institution", INSTITUTION, "--key", str(key),
              "--token", "t", "--url", "http://127.0.0.1:9", "--no-progress")  # fmt: skip
    assert res.code == 1
    assert "invalid 3" in res.out
    assert not default_journal_path(path).exists()
    assert "journal: none (nothing was posted)" in res.err


def test_journal_only_once_something_was_posted(
    settings_factory: Callable[..., Settings], tmp_path: Path, run: Callable[..., Ran]
) -> None:
    with serve(settings_factory(), tmp_path) as live:
        common = ["--institution", INSTITUTION, "--key", str(live.key_path), "--token",
                  live.token, "--url", live.url, "--no-progress"]  # fmt: skip
        bad = write_csv(tmp_path / "bad.csv", [record(0, kind="academic_credit") | {"grade": "x"}])
        assert run("post", str(bad), *common).code == 1
        assert not default_journal_path(bad).exists()
        good = write_csv(tmp_path / "good.csv", records(3))
        res = run("post", str(good), *common)
        assert res.code == 0, res.out + res.err
        lines = default_journal_path(good).read_text().splitlines()
        assert len(lines) == 1 + 3  # the header and one line per posted row
        assert f"journal: {default_journal_path(good)}" in res.err
        # all of it already journaled: the journal stays as it was
        again = run("post", str(good), *common)
        assert again.code == 0
        assert default_journal_path(good).read_text().splitlines() == lines


# -- learners named by dataset ids ---------------------------------------------------------------
@pytest.fixture
def sample_home(settings_factory: Callable[..., Settings]) -> Iterator[tuple[Bank, ImportReport]]:
    bank = init_home(settings_factory(), clock=FixedClock(T_IMPORT))
    try:
        yield bank, import_dataset(bank, resources.files(SAMPLE))
    finally:
        bank.close()


def _home_flags(bank: Bank) -> list[str]:
    s = bank.settings
    return ["--home", str(s.home), *(["--database-url", s.database_url] if s.database_url else [])]


def test_dataset_and_bank_learner_ids_are_accepted_alike(
    sample_home: tuple[Bank, ImportReport], run: Callable[..., Ran]
) -> None:
    bank, report = sample_home
    home = _home_flags(bank)
    l01, l02 = report.learner_ids["L01"], report.learner_ids["L02"]
    assert l01.startswith("LRN-")
    # learner token: the same subject either way
    for ref in ("L01", l01):
        res = run(*home, "learner", "token", ref)
        assert res.code == 0, res.err
        row = lookup_token(bank.engine, res.out.strip())
        assert row is not None
        assert (row.role, row.subject) == ("learner", l01)
    # what-if: the same decision either way, recording nothing
    program = json.loads(resources.files(SAMPLE).joinpath("applications.json").read_text())[0]
    target = program["program_id"]
    size = bank.ledger.head().size
    views = []
    for ref in ("L01", l01):
        res = run(*home, "what-if", ref, target, "--json")
        assert res.code == 0, res.err
        views.append(json.loads(res.out))
    assert views[0] == views[1]
    assert views[0]["learner_id"] == l01
    assert bank.ledger.head().size == size
    # apply with a dataset id records a decision for that learner
    res = run(*home, "apply", "L01", target, "--json")
    assert res.code == 0, res.err
    assert json.loads(res.out)["learner_id"] == l01
    assert bank.ledger.head().size == size + 1
    # transcript list takes either
    for ref in ("L01", l01):
        res = run(*home, "transcript", "list", "--learner", ref, "--json")
        assert res.code == 0, res.err
    # erase by dataset id; then the token command says the learner was erased
    res = run(*home, "learner", "erase", "L02")
    assert res.code == 0, res.err
    assert l02 in res.out
    assert run(*home, "learner", "token", "L02").one_error_line().endswith("[learner.erased]")
    # what is neither is still refused as before
    assert run(*home, "learner", "token", "L999").one_error_line().endswith("[learner.id]")


# -- no home -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "args",
    [
        ["log", "key"],
        ["audit"],
        ["migrate"],
        ["serve"],
        ["learner", "token", "L01"],
        ["apply", "L01", "P-OU-MECH"],
        ["institution", "token", "INS-OU"],
        ["rules", "show"],
        ["transcript", "list", "--learner", "L01"],
    ],
)
def test_no_home_says_to_run_init_or_set_the_home(
    args: list[str], tmp_path: Path, run: Callable[..., Ran], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    res = run(*args)
    assert res.code == 2
    line = res.one_error_line()
    assert "creditbank init" in line
    assert "CREDITBANK_HOME" in line
    assert str(tmp_path / ".creditbank") in line
    assert not (tmp_path / ".creditbank").exists()  # nothing was created
    # an empty folder given as the home is not one either
    empty = tmp_path / "empty"
    empty.mkdir()
    res = run("--home", str(empty), *args)
    assert res.code == 2
    assert "is not an initialised creditbank home" in res.one_error_line()
    assert list(empty.iterdir()) == []
