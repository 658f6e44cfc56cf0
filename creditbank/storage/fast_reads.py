"""Hot read queries on plain driver connections, for the HTTP serving path.

A SQLAlchemy Core query (connection checkout, ``BEGIN`` listener, statement cache key,
result proxy, rollback) costs 150-500 µs on this machine; the same query on the driver's
cursor costs 5-20 µs. The serving path reads three things per request (the head row, whether
a size is published, a handful of node hashes), so this module keeps a few driver
connections of its own, detached from the engine's pool (``_ConnectionFairy.detach``: the
engine's connect listeners have run, so SQLite has WAL, the busy timeout and foreign keys),
and runs fixed SQL on them in autocommit mode. Nothing here writes.

Errors are the drivers' own (``sqlite3.OperationalError``, ``psycopg.OperationalError``, ...),
which :data:`creditbank.storage.engine.UNAVAILABLE` lists, so an outage is a 503 upstream; a
connection that raised is closed, never reused.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Final

import psycopg
from sqlalchemy import Engine, event

from creditbank.core import merkle
from creditbank.storage.engine import is_sqlite
from creditbank.storage.ledger_repo import Head

#: idle driver connections kept for reuse (more are opened under load and closed after)
MAX_IDLE: Final = 8
#: most node ids looked up in one statement (SQLite allows 32,766 parameters)
_IN_CHUNK: Final = 900


class FastReads:
    """Read-only ledger queries on pooled, detached driver connections (thread-safe)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.sqlite = is_sqlite(engine)
        self._mark = "?" if self.sqlite else "%s"
        self._sql_published = "SELECT 1 FROM log_checkpoints WHERE size = ?".replace(
            "?", self._mark
        )
        self._idle: list[Any] = []
        self._lock = threading.Lock()
        self._closed = False
        # disposing of the engine (e.g. after the database file was replaced) drops these too
        event.listen(engine, "engine_disposed", self._on_dispose)

    def _on_dispose(self, _engine: Engine) -> None:
        self.close()

    def _open(self) -> Any:
        fairy = self.engine.raw_connection()
        dbapi: Any = fairy.driver_connection
        fairy.detach()  # ours now: the engine's pool forgets it, its listeners already ran
        if not self.sqlite:
            dbapi.rollback()
            dbapi.autocommit = True  # one statement, one snapshot; no transaction left open
        return dbapi

    @contextmanager
    def _cursor(self) -> Iterator[Any]:
        with self._lock:
            conn = self._idle.pop() if self._idle else None
        if conn is None:
            conn = self._open()
        try:
            cur = conn.cursor()
            try:
                yield cur
            finally:
                cur.close()
        except BaseException:
            conn.close()
            raise
        with self._lock:
            if not self._closed and len(self._idle) < MAX_IDLE:
                self._idle.append(conn)
                return
        conn.close()

    def close(self) -> None:
        """Close every idle connection; later calls open new ones."""
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    def head(self) -> Head:
        """The head row (size, root, registry count)."""
        with self._cursor() as cur:
            cur.execute("SELECT size, root, registry_count FROM log_head WHERE id = 1")
            row = cur.fetchone()
        if row is None:
            raise LookupError("the log has no head row")
        return Head(int(row[0]), bytes(row[1]), int(row[2]))

    def is_published(self, size: int) -> bool:
        """True if a checkpoint of ``size`` was published."""
        with self._cursor() as cur:
            cur.execute(self._sql_published, (size,))
            return cur.fetchone() is not None

    def latest_published_size(self) -> int | None:
        """The size of the latest published checkpoint, or None before the first."""
        with self._cursor() as cur:
            cur.execute("SELECT max(size) FROM log_checkpoints")
            row = cur.fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def nodes(self, ids: Sequence[merkle.NodeID]) -> dict[merkle.NodeID, bytes]:
        """Stored node hashes by (level, index); missing nodes are absent from the result."""
        keys = {merkle.node_key(lvl, idx): (lvl, idx) for lvl, idx in ids}
        klist = list(keys)
        out: dict[merkle.NodeID, bytes] = {}
        with self._cursor() as cur:
            for i in range(0, len(klist), _IN_CHUNK):
                chunk = klist[i : i + _IN_CHUNK]
                marks = ",".join([self._mark] * len(chunk))
                sql = f"SELECT id, hash FROM log_nodes WHERE id IN ({marks})"  # noqa: S608
                cur.execute(sql, chunk)  # (only placeholders are interpolated above)
                for k, h in cur.fetchall():
                    out[keys[int(k)]] = bytes(h)
        return out


class AsyncFastReads:
    """The same queries on PostgreSQL through psycopg's asyncio connections: a read awaits
    the socket on the event loop instead of hopping to a worker thread.

    At most :data:`MAX_IDLE` connections, opened lazily on the running loop (autocommit) and
    kept for reuse; those of a previous loop (a test client's) are dropped.
    """

    def __init__(self, engine: Engine) -> None:
        if is_sqlite(engine):
            raise ValueError("AsyncFastReads is for PostgreSQL")
        self._conninfo = engine.url.set(drivername="postgresql").render_as_string(
            hide_password=False
        )
        self._idle: list[psycopg.AsyncConnection[Any]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._slots: asyncio.Semaphore | None = None

    def _bind(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        if loop is not self._loop or self._slots is None:
            self._idle, self._loop = [], loop
            self._slots = asyncio.Semaphore(MAX_IDLE)
        return self._slots

    async def _fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        # at most MAX_IDLE connections, all kept: more readers wait for one (opening a
        # connection per request under load costs far more than the wait)
        async with self._bind():
            conn = self._idle.pop() if self._idle else None
            if conn is None:
                conn = await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True)
            try:
                cur = await conn.execute(sql, params)
                rows = await cur.fetchall()
            except BaseException:
                await conn.close()
                raise
            self._idle.append(conn)
            return rows

    async def close(self) -> None:
        """Close the idle connections of the running loop."""
        idle, self._idle = self._idle, []
        for conn in idle:
            await conn.close()

    async def head(self) -> Head:
        """The head row (size, root, registry count)."""
        rows = await self._fetch("SELECT size, root, registry_count FROM log_head WHERE id = 1")
        if not rows:
            raise LookupError("the log has no head row")
        size, root, count = rows[0]
        return Head(int(size), bytes(root), int(count))

    async def is_published(self, size: int) -> bool:
        """True if a checkpoint of ``size`` was published."""
        return bool(await self._fetch("SELECT 1 FROM log_checkpoints WHERE size = %s", (size,)))

    async def latest_published_size(self) -> int | None:
        """The size of the latest published checkpoint, or None before the first."""
        rows = await self._fetch("SELECT max(size) FROM log_checkpoints")
        return None if not rows or rows[0][0] is None else int(rows[0][0])

    async def nodes(self, ids: Sequence[merkle.NodeID]) -> dict[merkle.NodeID, bytes]:
        """Stored node hashes by (level, index); missing nodes are absent from the result."""
        keys = {merkle.node_key(lvl, idx): (lvl, idx) for lvl, idx in ids}
        rows = await self._fetch(
            "SELECT id, hash FROM log_nodes WHERE id = ANY(%s)", (list(keys),)
        )
        return {keys[int(k)]: bytes(h) for k, h in rows}
