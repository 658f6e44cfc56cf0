"""``creditbank institution …`` and ``creditbank learner …`` on SQLite and PostgreSQL.

Errors are one line on stderr with exit 1 (domain: unknown, conflict) or 2 (bad input).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from creditbank.cli.institution_cmds import read_public_key
from creditbank.cli.main import main
from creditbank.config import Settings
from creditbank.core.signing import (
    Ed25519Signer,
    b64encode,
    entry_key_id,
    format_verifier_key,
)
from creditbank.errors import InvalidInputError
from creditbank.service import institutions as svc
from creditbank.service.bank import Bank, init_home, open_bank
from creditbank.service.clock import FixedClock
from creditbank.service.keys import generate_key_file
from creditbank.storage.records_repo import get_learner
from creditbank.storage.token_repo import lookup_token

CREDITBANK = Path(sys.executable).parent / "creditbank"


@dataclass
class Result:
    code: int
    out: str
    err: str

    def error(self, exit_code: int, code: str) -> str:
        """The single error line, with the expected exit code and problem code."""
        assert self.code == exit_code, (self.code, self.out, self.err)
        assert "Traceback" not in self.err
        lines = self.err.splitlines()
        assert len(lines) == 1, self.err
        assert lines[0].startswith("error: ")
        assert lines[0].endswith(f"[{code}]"), lines[0]
        return lines[0]


def flags(settings: Settings) -> list[str]:
    out = ["--home", str(settings.home)]
    if settings.database_url:
        out += ["--database-url", settings.database_url]
    return out


@pytest.fixture
def home(settings: Settings, clock: FixedClock) -> Settings:
    """An initialised home (validating records), closed again: the CLI opens its own."""
    init_home(settings, clock=clock).close()
    return settings


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], home: Settings) -> Callable[..., Result]:
    def run(*args: str) -> Result:
        capsys.readouterr()
        code = main([*flags(home), *args])
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


@pytest.fixture(name="bank")
def opened_bank(home: Settings) -> Iterator[Bank]:
    """The CLI's home, opened by the test too (replaces the root ``bank`` fixture here)."""
    b = open_bank(home, pool=False)
    try:
        yield b
    finally:
        b.close()


@pytest.fixture
def key_file(tmp_path: Path) -> tuple[Path, Ed25519Signer]:
    """An institution's public key file (``FILE.pub``) beside its private key file, as
    ``creditbank keys generate`` writes them; the path is that of the public one."""
    path = tmp_path / "inst" / "INS-X.key"
    signer = generate_key_file(path, "INS-X")
    pub = path.with_name(path.name + ".pub")
    pub.write_text(format_verifier_key("INS-X", signer.public_bytes) + "\n")
    return pub, signer


def add(cli: Callable[..., Result], iid: str, key: str, kind: str = "college") -> Result:
    return cli(
        "institution", "add", iid, "--kind", kind,
        "--name-zh", "某学院", "--name-en", "Some College", "--public-key", key,
    )  # fmt: skip


# -- public keys ------------------------------------------------------------------------------
def test_public_keys_are_read_from_key_files_verifier_keys_and_base64(
    tmp_path: Path, key_file: tuple[Path, Ed25519Signer]
) -> None:
    path, signer = key_file
    pub = signer.public_bytes
    assert read_public_key(str(path)) == pub
    private = path.with_name("INS-X.key")
    with pytest.raises(InvalidInputError) as refused:
        read_public_key(str(private))  # the private key file beside it
    assert refused.value.code == "key.private"
    with pytest.raises(InvalidInputError) as refused:
        read_public_key(private.read_text().strip())  # or its text
    assert refused.value.code == "key.private"
    assert read_public_key(b64encode(pub)) == pub
    assert read_public_key(format_verifier_key("INS-X", pub)) == pub
    vkey = tmp_path / "INS-X.pub"
    vkey.write_text(format_verifier_key("INS-X", pub) + "\n")
    assert read_public_key(str(vkey)) == pub
    raw = tmp_path / "raw.b64"
    raw.write_text(b64encode(pub) + "\n")
    assert read_public_key(str(raw)) == pub
    bad = {
        "short": b64encode(pub[:31]),
        "not base64": "???",
        "garbage": "PUBLIC+KEY+x+00000000+AAAA",
        "tampered verifier key": format_verifier_key("INS-X", pub).replace("INS-X", "INS-Y"),
    }
    empty = tmp_path / "empty.key"
    empty.write_text("\n")
    two = tmp_path / "two.key"
    two.write_text(b64encode(pub) + "\n" + b64encode(pub) + "\n")
    binary = tmp_path / "bin.key"
    binary.write_bytes(b"\xff" * 40)
    for p in (empty, two, binary):
        bad[p.name] = str(p)
    for name, value in bad.items():
        with pytest.raises(InvalidInputError) as e:
            read_public_key(value)
        assert e.value.code == "key.public", name


# -- institution add / key-add / key-revoke / close -------------------------------------------
def test_add_registers_the_public_key_only(
    cli: Callable[..., Result], bank: Bank, key_file: tuple[Path, Ed25519Signer]
) -> None:
    path, signer = key_file
    before = bank.ledger.head().size
    res = add(cli, "INS-X", str(path))
    assert res.code == 0, res.err
    assert f"registered INS-X at index {before}" in res.out
    assert entry_key_id(signer.public_bytes) in res.out
    inst = bank.ledger.registry().institution("INS-X")
    assert inst.kind == "college"
    assert (inst.name_zh, inst.name_en) == ("某学院", "Some College")
    assert [k.public for k in inst.keys.values()] == [signer.public_bytes]
    data = bytes(bank.ledger.entry(before).data)
    assert b"PRIVATE" not in data
    assert b64encode(signer.seed).encode() not in data  # the private key never enters the log

    add(cli, "INS-X", str(path)).error(1, "registry.exists")
    other = Ed25519Signer.from_seed(bytes(range(7, 39)))
    add(cli, "INS-Y", b64encode(signer.public_bytes)).error(1, "registry.key_exists")
    add(cli, "INS-Y", b64encode(other.public_bytes), kind="spaceport").error(1, "registry.kind")
    add(cli, "INS Y", b64encode(other.public_bytes)).error(1, "registry.institution_id")
    add(cli, "INS-Y", "not-a-key").error(1, "key.public")
    add(cli, "INS-Y", str(path.parent / "missing.key")).error(1, "key.public")
    add(cli, "INS-Y", str(path.with_name("INS-X.key"))).error(1, "key.private")
    assert bank.ledger.head().size == before + 1


def test_add_with_two_keys_and_key_add(cli: Callable[..., Result], bank: Bank) -> None:
    k1, k2, k3 = (Ed25519Signer.from_seed(bytes([i]) * 32) for i in (1, 2, 3))
    res = cli(
        "institution", "add", "INS-Z", "--kind", "training_center",
        "--name-zh", "培训中心", "--name-en", "Training Center",
        "--public-key", b64encode(k1.public_bytes),
        "--public-key", format_verifier_key("INS-Z", k2.public_bytes),
    )  # fmt: skip
    assert res.code == 0, res.err
    assert set(bank.ledger.registry().institution("INS-Z").keys) == {
        entry_key_id(k1.public_bytes),
        entry_key_id(k2.public_bytes),
    }
    res = cli("institution", "key-add", "INS-Z", "--public-key", b64encode(k3.public_bytes))
    assert res.code == 0, res.err
    assert f"added key {entry_key_id(k3.public_bytes)} to INS-Z" in res.out
    assert entry_key_id(k3.public_bytes) in bank.ledger.registry().institution("INS-Z").keys
    cli("institution", "key-add", "INS-Z", "--public-key", b64encode(k3.public_bytes)).error(
        1, "registry.key_exists"
    )
    cli("institution", "key-add", "INS-NONE", "--public-key", b64encode(bytes(32))).error(
        1, "registry.unknown"
    )


def test_key_revoke_takes_an_effective_time(cli: Callable[..., Result], bank: Bank) -> None:
    k = Ed25519Signer.from_seed(bytes([9]) * 32)
    kid = entry_key_id(k.public_bytes)
    assert add(cli, "INS-K", b64encode(k.public_bytes)).code == 0
    res = cli(
        "institution", "key-revoke", "INS-K", kid,
        "--effective-at", "2025-03-01T16:00:00+08:00", "--reason", "key leaked",
    )  # fmt: skip
    assert res.code == 0, res.err
    ks = bank.ledger.registry().institution("INS-K").keys[kid]
    assert ks.revoked_at == datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
    again = (
        "institution", "key-revoke", "INS-K", kid,
        "--effective-at", "2025-03-01T08:00:00Z", "--reason", "again",
    )  # fmt: skip
    cli(*again).error(1, "registry.revoked_twice")
    for when in ("2025-03-01", "yesterday", "2025-03-01T08:00:00"):
        cli(
            "institution", "key-revoke", "INS-K", kid, "--effective-at", when, "--reason", "x"
        ).error(1, "registry.effective_at")
    cli(
        "institution", "key-revoke", "INS-K", "ed25519:0000000000000000",
        "--effective-at", "2025-03-01T08:00:00Z", "--reason", "x",
    ).error(1, "registry.unknown_key")  # fmt: skip
    cli(
        "institution", "key-revoke", "INS-K", kid, "--effective-at", "2025-03-01T08:00:00Z",
        "--reason", " ",
    ).error(1, "registry.body")  # fmt: skip


def test_close_names_a_custodian(cli: Callable[..., Result], bank: Bank) -> None:
    for i, iid in enumerate(("INS-OLD", "INS-NEW", "INS-3")):
        key = b64encode(Ed25519Signer.from_seed(bytes([20 + i]) * 32).public_bytes)
        assert add(cli, iid, key).code == 0
    closing = ("institution", "close", "INS-OLD", "--closed-on", "2025-02-28")
    cli(*closing, "--custodian", "INS-OLD").error(1, "registry.custodian")
    cli(*closing, "--custodian", "INS-NONE").error(1, "registry.unknown")
    res = cli(*closing, "--custodian", "INS-NEW")
    assert res.code == 0, res.err
    assert "closed INS-OLD on 2025-02-28; custodian INS-NEW" in res.out
    inst = bank.ledger.registry().institution("INS-OLD")
    assert (str(inst.closed_on), inst.custodian) == ("2025-02-28", "INS-NEW")
    cli(*closing, "--custodian", "INS-NEW").error(1, "registry.closed_twice")
    # a closed institution is nobody's custodian
    cli(
        "institution", "close", "INS-3", "--closed-on", "2025-02-28", "--custodian", "INS-OLD"
    ).error(1, "registry.custodian")
    cli(
        "institution", "close", "INS-3", "--closed-on", "2999-01-01", "--custodian", "INS-NEW"
    ).error(1, "registry.closed_on")
    cli(
        "institution", "close", "INS-3", "--closed-on", "28.02.2025", "--custodian", "INS-NEW"
    ).error(2, "input.date")
    cli(
        "institution", "close", "BANK", "--closed-on", "2025-02-28", "--custodian", "INS-NEW"
    ).error(1, "registry.custodian")


# -- tokens -----------------------------------------------------------------------------------
def test_institution_token_is_printed_once_and_revocable(
    cli: Callable[..., Result], bank: Bank
) -> None:
    key = b64encode(Ed25519Signer.from_seed(bytes([5]) * 32).public_bytes)
    assert add(cli, "INS-T2", key).code == 0
    res = cli("institution", "token", "INS-T2", "--label", "registrar office")
    assert res.code == 0, res.err
    token = res.out.strip()
    assert res.out.count("\n") == 1
    row = lookup_token(bank.engine, token)
    assert row is not None
    assert (row.role, row.subject, row.label) == ("institution", "INS-T2", "registrar office")
    assert row.token_id in res.err
    assert "shown only this once" in res.err

    res = cli("institution", "token-revoke", row.token_id)
    assert res.code == 0, res.err
    assert f"institution token {row.token_id} of INS-T2 revoked" in res.out
    assert lookup_token(bank.engine, token) is None
    assert cli("institution", "token-revoke", row.token_id).code == 0  # harmless again
    cli("institution", "token", "INS-NONE").error(1, "registry.unknown")
    cli("institution", "token-revoke", "0" * 16).error(1, "token.unknown")
    cli("institution", "token-revoke", "not-an-id").error(1, "token.id")


def test_learner_token_and_erase(cli: Callable[..., Result], bank: Bank) -> None:
    lrn = svc.resolve(bank, name="王建国", doc_type="passport", number="E1234567",
                      nationality="GBR")  # fmt: skip
    res = cli("learner", "token", lrn.learner_id)
    assert res.code == 0, res.err
    token = res.out.strip()
    row = lookup_token(bank.engine, token)
    assert row is not None
    assert (row.role, row.subject) == ("learner", lrn.learner_id)

    res = cli("learner", "erase", lrn.learner_id)
    assert res.code == 0, res.err
    assert "1 token(s) revoked" in res.out
    assert lookup_token(bank.engine, token) is None
    with bank.engine.connect() as conn:
        person = get_learner(conn, lrn.learner_id)
    assert (person.name, person.salt, person.lookup_key) == (None, None, None)
    assert person.erased_at is not None
    cli("learner", "token", lrn.learner_id).error(1, "learner.erased")
    cli("learner", "token", "LRN-ZZZZZZZZZZZZZZZZZZZZ").error(1, "learner.unknown")
    cli("learner", "erase", "LRN-ZZZZZZZZZZZZZZZZZZZZ").error(1, "learner.unknown")
    cli("learner", "erase", "110101199001010011").error(1, "learner.id")


def test_usage_errors(cli: Callable[..., Result]) -> None:
    assert cli("institution", "add", "INS-U").code == 2
    assert cli("institution", "token").code == 2
    assert cli("learner").code == 2


@pytest.mark.slow
def test_console_script_lists_the_commands(home: Settings) -> None:
    out = subprocess.run(
        [str(CREDITBANK), *flags(home), "institution", "--help"],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    for name in ("add", "key-add", "key-revoke", "close", "token", "token-revoke"):
        assert name in out
    out = subprocess.run(
        [str(CREDITBANK), *flags(home), "learner", "--help"],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    assert "erase" in out
