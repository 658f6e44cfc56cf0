"""Appends from many OS processes at once make one sequence: no gap, no reuse, no loss.

Eight child interpreters (``_workers.py concurrent``) each open their own :class:`Bank` on
the same home or database, wait at a common start line, then append 2,000 signed entries in
batches of 100. The log must then hold exactly genesis + registration + 16,000 entries at
indexes 0..N-1, every index handed back must be unique and the union contiguous, each batch
must have got a contiguous run, each returned leaf hash must be the stored one, and the audit
must be clean.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path

import pytest
from sqlalchemy import func, select

from creditbank.config import Settings
from creditbank.service.audit import run_audit
from creditbank.service.bank import init_home, open_bank
from creditbank.storage import ledger_repo as repo
from creditbank.storage.tables import entries_t

from . import _workers
from ._workers import VALIDATE_RECORDS
from .conftest import describe

WORKERS = 8
PER_WORKER = 2_000
BATCH = 100
#: generous bounds; the whole test takes well under a minute per engine on 2 cores
START_TIMEOUT = 120.0
RUN_TIMEOUT = 240.0


def _wait_ready(procs: list[subprocess.Popen[bytes]], outs: list[Path]) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while not all(Path(f"{o}.ready").exists() for o in outs):
        for p in procs:
            assert p.poll() is None, f"a worker exited early with {p.returncode}"
        assert time.monotonic() < deadline, "workers did not get ready in time"
        time.sleep(0.02)


@pytest.fixture
def engine_kind() -> str:
    """SQLite here; the PostgreSQL run is ``test_concurrency_pg.py``, a file of its own so that
    the two long runs can go to different workers (``--dist loadfile`` gives a file to one)."""
    return "sqlite"


@pytest.mark.slow
def test_eight_processes_append_one_contiguous_sequence(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    """SQLite keeps ``synchronous=FULL`` here (the default): fast enough with group commit."""
    settings = make_settings()
    bank = init_home(settings, validate_records=VALIDATE_RECORDS)
    _workers.register_college(bank, _workers.college_signer())
    base = bank.ledger.head().size
    bank.close()
    assert base == 2

    go = tmp_path / "go"
    outs = [tmp_path / f"worker-{k}.json" for k in range(WORKERS)]
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                _workers.__file__,
                "concurrent",
                "--home",
                str(settings.home),
                "--db-url",
                settings.database_url or "",
                "--sync",
                settings.sqlite_synchronous,
                "--worker",
                str(k),
                "--count",
                str(PER_WORKER),
                "--batch",
                str(BATCH),
                "--out",
                str(out),
                "--go",
                str(go),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for k, out in enumerate(outs)
    ]
    try:
        _wait_ready(procs, outs)
        go.touch()
        for p in procs:
            output, _ = p.communicate(timeout=RUN_TIMEOUT)
            assert p.returncode == 0, output.decode(errors="replace")
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()

    returned: list[tuple[int, str]] = []
    spans: list[tuple[int, int]] = []
    for out in outs:
        batches = json.loads(out.read_text())
        spans.append((batches[0][0][0], batches[-1][-1][0]))
        assert len(batches) == PER_WORKER // BATCH
        for batch in batches:
            idx = [i for i, _ in batch]
            assert len(batch) == BATCH
            assert idx == list(range(idx[0], idx[0] + BATCH)), "a batch is one contiguous run"
            returned.extend((i, h) for i, h in batch)
    total = base + WORKERS * PER_WORKER
    spans.sort()  # the workers really ran at the same time: some index ranges interleave
    assert any(a[1] > b[0] for a, b in pairwise(spans)), f"no contention at all: {spans}"
    indices = sorted(i for i, _ in returned)
    assert len(indices) == len(set(indices)), "an index was handed out twice"
    assert indices == list(range(base, total)), "returned indexes are not contiguous"

    bank = open_bank(settings, validate_records=VALIDATE_RECORDS)
    try:
        head = bank.ledger.head()
        assert head.size == total
        with bank.engine.connect() as conn:
            count, lo, hi = conn.execute(
                select(func.count(), func.min(entries_t.c.idx), func.max(entries_t.c.idx))
            ).one()
            stored = {int(r.idx): bytes(r.leaf_hash).hex() for r in repo.iter_entries(conn)}
        assert (count, lo, hi) == (total, 0, total - 1), "the stored log has a gap"
        for i, h in returned:
            assert stored[i] == h, f"entry {i} is not the one acknowledged"
        bank.ledger.publish()
        assert bank.ledger.latest_checkpoint().size == total
        report = run_audit(bank, workers=2)
        assert report.ok, describe(report)
        assert report.size == total
    finally:
        bank.close()
