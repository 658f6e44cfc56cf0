"""SIGKILL in the middle of appending loses nothing that was acknowledged.

A child process (``_workers.py crash``, forked by ``crash-server``) appends batches of
1..BATCH entries in a loop, publishing a checkpoint in every append transaction
(``checkpoint_interval=0``), and after each acknowledged append writes the indexes and leaf
hashes it was given to its own side file (flush + fsync). The parent kills it with SIGKILL
at a random moment (a seeded RNG picks the moment; the delay is wall-clock but correctness
never depends on it), KILLS times, with a new child (its own Bank, engine and connections)
each time; one ``crash-server`` start serves all the kills. After every kill it reopens the
home and checks:

* every acknowledged entry is stored at its index with the same leaf hash;
* the log has no gap: entries are exactly 0..head.size-1;
* the audit is clean;
* the newest checkpoint covers the whole log (appends and their checkpoint commit together);
* the reopened bank appends one entry and publishes a new checkpoint, and a consistency proof
  from EVERY checkpoint published before the kill to that new one verifies against the roots
  stored with those checkpoints.

SQLite keeps ``synchronous=FULL`` (the default). Set ``CREDITBANK_TEST_SEED`` to replay a
failing sequence of kill moments.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from random import Random  # noqa: TID251 - a seeded generator, the ban is on unseeded use
from typing import Any

import pytest
from sqlalchemy import func, select

from creditbank.config import Settings
from creditbank.core import merkle
from creditbank.service.audit import run_audit
from creditbank.service.bank import Bank, init_home, open_bank
from creditbank.storage import ledger_repo as repo
from creditbank.storage.tables import entries_t

from . import _workers
from ._workers import VALIDATE_RECORDS
from .conftest import describe

KILLS = 60
BATCH = 8
SEED = int(os.environ.get("CREDITBANK_TEST_SEED", "9162"))
#: how long a child may take to start and acknowledge its first append
READY_TIMEOUT = 60.0


def _read_acks(path: Path) -> list[dict[str, Any]]:
    """Complete lines only: a line cut short by the kill was never acknowledged."""
    if not path.exists():
        return []
    text = path.read_text(encoding="utf-8")
    complete = text[: text.rfind("\n") + 1]
    return [json.loads(line) for line in complete.splitlines()]


class ChildServer:
    """``_workers.py crash-server``: forks a fresh appending child per run (see there)."""

    def __init__(self, settings: Settings, log: Path) -> None:
        self.log = log
        self._stderr = log.open("wb")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                _workers.__file__,
                "crash-server",
                "--home",
                str(settings.home),
                "--db-url",
                settings.database_url or "",
                "--batch",
                str(BATCH),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
        )

    def _ask(self, line: str) -> int:
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline()
        if not answer:
            pytest.fail(f"crash-server died:\n{self.errors()}")
        return int(answer)

    def start(self, run: int, ack: Path) -> int:
        return self._ask(f"run {run} {ack}")

    def reap(self, pid: int) -> int:
        """Wait for a child to end; its raw wait status."""
        return self._ask(f"reap {pid}")

    def errors(self) -> str:
        self._stderr.flush()
        return self.log.read_text(errors="replace")

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._stderr.close()


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie, waiting to be reaped, has ended)."""
    proc = Path("/proc")
    if not proc.is_dir():  # no procfs: a zombie counts as alive until reaped
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    try:
        stat = (proc / str(pid) / "stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _wait_for_lines(server: ChildServer, pid: int, ack: Path, lines: int) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while len(_read_acks(ack)) < lines:
        if not _alive(pid):
            pytest.fail(f"crash child {pid} ended by itself:\n{server.errors()}")
        assert time.monotonic() < deadline, "crash child made no progress"
        time.sleep(0.002)


def _collect_acks(ack: Path, run: int, acked: dict[int, str]) -> int:
    """Add one child's acknowledged appends to ``acked``; returns how many it had."""
    lines = _read_acks(ack)
    assert lines[0] == {"ready": run}
    for line in lines[1:]:
        for i, h in zip(line["indices"], line["leaf_hashes"], strict=True):
            assert i not in acked, f"index {i} acknowledged twice"
            acked[i] = h
    return len(lines) - 1


def _check_after_kill(bank: Bank, run: int, acked: dict[int, str]) -> tuple[int, int]:
    """All the checks of one restart; returns (log size, checkpoints)."""
    head = bank.ledger.head()
    with bank.engine.connect() as conn:
        count, lo, hi = conn.execute(
            select(func.count(), func.min(entries_t.c.idx), func.max(entries_t.c.idx))
        ).one()
        stored = {int(r.idx): bytes(r.leaf_hash).hex() for r in repo.iter_entries(conn)}
    assert (count, lo, hi) == (head.size, 0, head.size - 1), "the log has a gap"
    lost = {i: h for i, h in acked.items() if stored.get(i) != h}
    assert not lost, f"acknowledged entries lost or changed: {sorted(lost)[:10]}"

    report = run_audit(bank, workers=0)
    assert report.ok, describe(report)
    assert report.size == head.size

    with bank.engine.connect() as conn:
        before = repo.all_checkpoints(conn)  # every checkpoint published before the kill
    assert before, "no checkpoint survived"
    assert before[-1].size == head.size, "an append committed without its checkpoint"
    # The restarted bank appends and publishes a new checkpoint; it must extend all of them.
    raws = _workers.record_entries(
        _workers.college_signer(), _workers.COLLEGE_ID, f"p{run}", 0, 1, bank.clock.now()
    )
    (out,) = bank.ledger.append(raws, publish=True)
    assert out.index == head.size
    acked[out.index] = out.leaf_hash.hex()
    newest = bank.ledger.latest_checkpoint()
    assert newest.size == head.size + 1
    with bank.engine.connect() as conn:
        nodes = dict(repo.iter_nodes(conn))

    def fetch(ids: Sequence[merkle.NodeID]) -> dict[merkle.NodeID, bytes]:
        return {nid: nodes[merkle.node_key(*nid)] for nid in ids}

    for cp in before:
        proof = merkle.consistency_proof(cp.size, newest.size, fetch)
        merkle.verify_consistency(cp.size, newest.size, cp.root, newest.root, proof)
    # the proofs the service itself serves agree, for the oldest and the newest before it
    for cp in (before[0], before[-1]):
        served = bank.ledger.consistency_proof(cp.size, newest.size)
        merkle.verify_consistency(cp.size, newest.size, cp.root, newest.root, served)
    return newest.size, len(before) + 1


@pytest.fixture
def engine_kind() -> str:
    """SQLite here; the PostgreSQL run is ``test_crash_pg.py``, a file of its own so that
    the two long runs can go to different workers (``--dist loadfile`` gives a file to one)."""
    return "sqlite"


@pytest.mark.slow
def test_sigkill_loses_no_acknowledged_entry(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    rng = Random(SEED)
    settings = make_settings()
    assert settings.sqlite_synchronous == "FULL"
    bank = init_home(settings, validate_records=VALIDATE_RECORDS)
    _workers.register_college(bank, _workers.college_signer())
    bank.close()

    acked: dict[int, str] = {}
    killed_before_first_ack = 0
    size = checkpoints = 0
    server = ChildServer(settings, tmp_path / "crash-server.log")
    try:
        for run in range(KILLS):
            ack = tmp_path / f"acks-{run}.jsonl"
            pid = server.start(run, ack)
            try:
                # Most kills land among appends after the first ack; some during the very
                # first append (registry load, first checkpoint) right after the bank is open.
                early = rng.random() < 0.2
                _wait_for_lines(server, pid, ack, 1 if early else 2)
                time.sleep(rng.uniform(0.0, 0.02 if early else 0.15))
            finally:
                os.kill(pid, signal.SIGKILL)
                status = server.reap(pid)
            if not (os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL):
                pytest.fail(f"child ended some other way ({status}):\n{server.errors()}")
            if _collect_acks(ack, run, acked) == 0:
                killed_before_first_ack += 1
            bank = open_bank(settings, validate_records=VALIDATE_RECORDS)
            try:
                size, checkpoints = _check_after_kill(bank, run, acked)
            finally:
                bank.close()
    finally:
        server.close()
    assert len(acked) > KILLS, "the children hardly appended anything"
    assert size >= len(acked) + 2
    assert checkpoints > KILLS
    print(  # shown with -s: how the random kills fell
        f"\ncrash: seed {SEED}, {KILLS} kills ({killed_before_first_ack} before any ack), "
        f"{len(acked)} acked of {size} entries, {checkpoints} checkpoints"
    )
