"""The conversion lock, and the batched append made under it.

Conversion writes read the log, decide and append; the lock is held across all three so two
writers never decide on the same state. SQLite: a file lock in the home (a database write lock
would block the ledger's own append); PostgreSQL: an advisory lock on its own connection.
"""

from __future__ import annotations

import fcntl
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Final

from creditbank.service.bank import Bank
from creditbank.service.ledger import AppendOutcome
from creditbank.storage import conversion_repo as repo

#: entries per ledger append
BATCH: Final = 500
#: PostgreSQL advisory lock key of the conversion lock ("cbconv")
PG_LOCK_KEY: Final = 0x6362636F6E76

_LOCKS_GUARD = threading.Lock()
_LOCKS: dict[str, tuple[threading.RLock, list[int]]] = {}


@contextmanager
def conversion_lock(bank: Bank) -> Iterator[None]:
    """Serialise conversion writes across threads and processes (re-entrant per thread).

    SQLite: ``flock`` on ``$CREDITBANK_HOME/conversion.lock`` (a database write lock would
    block the ledger's own append). PostgreSQL: a session advisory lock on its own connection.
    """
    key = bank.settings.db_url
    with _LOCKS_GUARD:
        entry = _LOCKS.get(key)
        if entry is None:
            entry = _LOCKS[key] = (threading.RLock(), [0])
    rlock, depth = entry
    with rlock:
        if depth[0] > 0:
            depth[0] += 1
            try:
                yield
            finally:
                depth[0] -= 1
            return
        depth[0] = 1
        try:
            if bank.engine.dialect.name == "sqlite":
                path = bank.settings.home / "conversion.lock"
                path.parent.mkdir(parents=True, exist_ok=True)
                with open(path, "a+b") as fh:
                    fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
                    try:
                        yield
                    finally:
                        fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
            else:
                with bank.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                    repo.pg_lock(conn, PG_LOCK_KEY)
                    try:
                        yield
                    finally:
                        repo.pg_unlock(conn, PG_LOCK_KEY)
        finally:
            depth[0] = 0


def append_batches(bank: Bank, raws: Sequence[bytes], batch_size: int) -> list[AppendOutcome]:
    """Append ``raws`` in batches of ``batch_size`` entries (call under the lock)."""
    outcomes: list[AppendOutcome] = []
    for start in range(0, len(raws), batch_size):
        outcomes.extend(bank.ledger.append(raws[start : start + batch_size]))
    return outcomes
