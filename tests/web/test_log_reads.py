"""The serving path's driver-level reads give the same answers as the ledger's SQLAlchemy ones,
on SQLite and PostgreSQL, including refusals."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from conftest import Institution

from creditbank.core import merkle
from creditbank.errors import CreditBankError
from creditbank.service import log_reads
from creditbank.service.bank import Bank
from creditbank.service.log_reads import LogReads


def run_in_own_loop(make: Callable[[], Any]) -> None:
    """Run a coroutine in a fresh event loop on its own thread.

    A session-scoped Playwright browser (tests/browser_fixtures.py) keeps an event loop
    running in the main thread of a worker that also ran page tests, where ``asyncio.run``
    refuses to start.
    """
    with ThreadPoolExecutor(1) as pool:
        pool.submit(lambda: asyncio.run(make())).result()


@pytest.mark.parametrize("cache_size", [65_536, 8])  # 8: the node cache empties often
def test_inclusion_proofs_and_head_match_the_ledger(
    bank: Bank,
    institution: Institution,
    register_institution: Callable[..., Institution],
    monkeypatch: pytest.MonkeyPatch,
    cache_size: int,
) -> None:
    monkeypatch.setattr(log_reads, "MAX_CACHED_NODES", cache_size)
    reads = LogReads.for_engine(bank.engine)
    try:
        published = [1, 2]
        for n in range(0, 37, 6):  # grow in steps, publishing each size
            bank.ledger.append(institution.records(6, start=n), publish=True)
            published.append(bank.ledger.head().size)
        assert reads.head() == bank.ledger.head()
        assert reads.latest_published_size() == bank.ledger.latest_checkpoint().size
        for size in [*published, *reversed(published)]:  # again, now from the cache
            for index in range(size):
                assert reads.inclusion_proof(index, size) == bank.ledger.inclusion_proof(
                    index, size
                )
            leaf, path = reads.inclusion_proof(size - 1, size)
            root = bank.ledger.latest_checkpoint().root if size == published[-1] else None
            if root is not None:
                merkle.verify_inclusion(size - 1, size, leaf, path, root)
        # the same refusals, with the same codes
        head = bank.ledger.head().size
        for index, size in [(0, 3), (0, head + 1), (head, head), (5, 4)]:
            with pytest.raises(CreditBankError) as mine:
                reads.inclusion_proof(index, size)
            with pytest.raises(CreditBankError) as theirs:
                bank.ledger.inclusion_proof(index, size)
            assert mine.value.code == theirs.value.code
        # a write after the reader's first use is seen at once (no stale head)
        bank.ledger.append(institution.records(1, start=100), publish=False)
        assert reads.head() == bank.ledger.head()
    finally:
        reads.close()


def test_event_loop_reads_match_the_ledger(bank: Bank, institution: Institution) -> None:
    """The ``a…`` methods (inline on SQLite, psycopg's asyncio connections on PostgreSQL)."""
    reads = LogReads.for_engine(bank.engine)
    bank.ledger.append(institution.records(9), publish=True)
    size = bank.ledger.head().size

    async def check() -> None:
        try:
            assert await reads.ahead() == bank.ledger.head()
            assert await reads.alatest_published_size() == size
            for index in [*range(size), *range(size)]:  # the second pass from the cache
                got = await reads.ainclusion_proof(index, size)
                assert got == bank.ledger.inclusion_proof(index, size)
            for index, bad in [(0, 3), (0, size + 1), (size, size)]:
                with pytest.raises(CreditBankError) as mine:
                    await reads.ainclusion_proof(index, bad)
                with pytest.raises(CreditBankError) as theirs:
                    bank.ledger.inclusion_proof(index, bad)
                assert mine.value.code == theirs.value.code
            bank.ledger.append(institution.records(1, start=50), publish=False)
            assert await reads.ahead() == bank.ledger.head()  # never stale
        finally:
            await reads.aclose()

    run_in_own_loop(check)


def test_reads_follow_the_engine_when_it_is_disposed(bank: Bank, engine_kind: str) -> None:
    """A replaced SQLite file is not read through a connection kept from before: disposing of
    the engine closes the reader's connections too."""
    if engine_kind != "sqlite":
        pytest.skip("the file move is SQLite's outage")
    reads = LogReads.for_engine(bank.engine)
    try:
        assert reads.head() == bank.ledger.head()  # a connection is now kept idle
        db = Path(str(bank.engine.url.database))
        for suffix in ("", "-wal", "-shm"):
            f = Path(f"{db}{suffix}")
            if f.exists():
                shutil.move(f, f"{f}.away")
        db.mkdir()  # the path now names a directory: the database is gone
        bank.engine.dispose()
        with pytest.raises(sqlite3.OperationalError):
            reads.head()
    finally:
        reads.close()
