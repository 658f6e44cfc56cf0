"""``creditbank audit`` catches tampering done behind the ledger's back, and names where.

Every tamper goes around the append-only triggers the way an attacker with database access
would (SQLite: drop them; PostgreSQL: ``session_replication_role = replica``), changes one
thing, and then the audit must fail and name the tampered index, both in the report object
and in the operator's text report.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from sqlalchemy import text

from creditbank.config import Settings
from creditbank.core import merkle
from creditbank.service.audit import AuditReport, run_audit
from creditbank.storage import ledger_repo as repo

from ._workers import record_entries
from .conftest import CLIResult, Ledgered, describe, flip_byte, tamper

#: the index every entry-level tamper hits (inside the log, not at a subtree edge)
VICTIM = 13
BATCHES = 5
PER_BATCH = 6  # genesis + college + 5 * 6 records = 32 entries


@dataclass
class Log:
    ledgered: Ledgered
    size: int
    checkpoint_sizes: list[int]
    cli_audit: Callable[[Settings], CLIResult]


@pytest.fixture
def log(ledgered: Ledgered, cli_audit: Callable[[Settings], CLIResult]) -> Log:
    bank = ledgered.bank
    at = bank.clock.now()
    for b in range(BATCHES):
        raws = record_entries(
            ledgered.college, ledgered.college_id, "t", b * PER_BATCH, PER_BATCH, at
        )
        bank.ledger.append(raws, publish=True)
    with bank.engine.connect() as conn:
        sizes = [cp.size for cp in repo.all_checkpoints(conn)]
    size = bank.ledger.head().size
    assert size == 2 + BATCHES * PER_BATCH
    assert sizes == [1, 2, 8, 14, 20, 26, 32]
    clean = run_audit(bank, workers=0)
    assert clean.ok, describe(clean)
    cli = cli_audit(ledgered.settings)
    assert cli.code == 0, cli.out + cli.err
    assert f"{size} entries" in cli.out
    return Log(ledgered, size, sizes, cli_audit)


def _audit(log: Log) -> tuple[AuditReport, CLIResult, str]:
    """The audit report, the CLI's result, and both as text for assertion messages."""
    report = run_audit(log.ledgered.bank, workers=0)
    cli = log.cli_audit(log.ledgered.settings)
    why = f"{describe(report)}\n--- creditbank audit (exit {cli.code}):\n{cli.out}{cli.err}"
    assert not report.ok, why
    assert cli.code == 1, why  # a verification failure
    return report, cli, why


def _cli_names(cli: CLIResult, index: int) -> bool:
    """The CLI's report names ``index`` as the first bad one (its wording may vary a little)."""
    return re.search(rf"first bad index:? {index}\b", cli.out + cli.err) is not None


def _entry_data(log: Log, index: int) -> bytes:
    return bytes(log.ledgered.bank.ledger.entry(index).data)


@pytest.mark.parametrize(
    ("where", "find"),
    [
        ("body", b'"record_id":"t-'),  # a body letter: still canonical JSON, signature fails
        ("signature", b'"sig":"'),  # a byte of the signature itself
        ("syntax", b""),  # the opening brace: no longer parses
    ],
    ids=["body", "signature", "syntax"],
)
def test_flipped_byte_in_entry_data(log: Log, where: str, find: bytes) -> None:
    data = _entry_data(log, VICTIM)
    pos = 0 if where == "syntax" else data.index(find) + len(find)  # the byte after `find`
    forged = flip_byte(data, pos)
    assert forged != data
    n = tamper(
        log.ledgered.bank.engine,
        "UPDATE log_entries SET data = :d WHERE idx = :i",
        d=forged,
        i=VICTIM,
    )
    assert n == 1
    assert _entry_data(log, VICTIM) == forged
    report, cli, why = _audit(log)
    assert report.first_bad_index == VICTIM, why
    assert {p.code for p in report.problems if p.index == VICTIM} >= {"log.leaf_hash"}, why
    assert _cli_names(cli, VICTIM), why
    assert f"stored leaf hash of entry {VICTIM} is wrong" in cli.out, why


@pytest.mark.parametrize(
    ("level", "index"),
    [(0, VICTIM), (1, VICTIM >> 1), (2, VICTIM >> 2), (4, 0)],
)
def test_flipped_byte_in_node_hash(log: Log, level: int, index: int) -> None:
    bank = log.ledgered.bank
    key = merkle.node_key(level, index)
    with bank.engine.connect() as conn:
        old = bytes(
            conn.execute(text("SELECT hash FROM log_nodes WHERE id = :k"), {"k": key}).one()[0]
        )
    n = tamper(
        bank.engine,
        "UPDATE log_nodes SET hash = :h WHERE id = :k",
        h=flip_byte(old, 31, 0x80),
        k=key,
    )
    assert n == 1
    report, cli, why = _audit(log)
    first_leaf = index << level  # a node is named by the first leaf it covers
    assert report.first_bad_index == first_leaf, why
    assert any(
        p.index == first_leaf and p.code == "log.node" and f"({level},{index})" in p.detail
        for p in report.problems
    ), why
    assert _cli_names(cli, first_leaf), why
    assert f"stored node ({level},{index}) is wrong" in cli.out, why


def test_flipped_byte_in_checkpoint_signature(log: Log) -> None:
    bank = log.ledgered.bank
    size = 20
    with bank.engine.connect() as conn:
        cp = repo.checkpoint_at(conn, size)
    assert cp is not None
    sig_line = cp.note.rstrip("\n").rsplit("\n", 1)[1]
    assert sig_line.startswith("— ")
    pos = len(cp.note) - 10  # inside the base64 of key hash + signature, near its end
    forged = cp.note[:pos] + ("A" if cp.note[pos] != "A" else "B") + cp.note[pos + 1 :]
    n = tamper(
        bank.engine,
        "UPDATE log_checkpoints SET note = :n WHERE size = :s",
        n=forged,
        s=size,
    )
    assert n == 1
    report, cli, why = _audit(log)
    bad = [p for p in report.problems if p.code == "checkpoint.signature"]
    assert len(bad) == 1, why
    assert f"checkpoint of size {size}:" in bad[0].detail, why
    assert f"checkpoint.signature: checkpoint of size {size}:" in cli.out, why
    # A checkpoint is named by its size; no entry is blamed, since every entry and node is
    # as logged (so there is no first bad index).
    assert all(p.code.startswith("checkpoint.") for p in report.problems), why
    assert report.first_bad_index is None, why
    assert re.search(r"first bad index:? \d", cli.out + cli.err) is None, why


def test_deleted_entry_row(log: Log) -> None:
    bank = log.ledgered.bank
    n = tamper(bank.engine, "DELETE FROM log_entries WHERE idx = :i", i=VICTIM)
    assert n == 1
    report, cli, why = _audit(log)
    assert report.first_bad_index == VICTIM, why
    assert any(p.index == VICTIM and p.code == "log.gap" for p in report.problems), why
    assert _cli_names(cli, VICTIM), why
    assert f"entry {VICTIM} is missing" in cli.out, why
