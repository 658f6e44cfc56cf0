"""SQL for the ledger: head lock, entry/node/checkpoint reads and inserts.

Every function takes an open ``Connection`` inside the caller's transaction. Nothing here
updates or deletes a ledger row; the head row is the one mutable row (the sequence).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from creditbank.core import merkle
from creditbank.core.entries import REGISTRY_TYPES
from creditbank.storage.engine import is_sqlite
from creditbank.storage.tables import checkpoints_t, entries_t, head_t, nodes_t

#: SQLite allows 32766 host parameters; stay well below it for IN lists.
_IN_CHUNK = 900


@dataclass(frozen=True, slots=True)
class Head:
    size: int
    root: bytes
    registry_count: int


@dataclass(frozen=True, slots=True)
class StoredCheckpoint:
    size: int
    root: bytes
    note: str
    published_at: str
    #: the size published before this one (None for the first, or unknown before 0007)
    prev_size: int | None = None


def ensure_head(conn: Connection, now: str) -> None:
    """Create the head row of an empty log if it does not exist."""
    if conn.execute(select(head_t.c.id)).first() is None:
        conn.execute(
            head_t.insert().values(
                id=1, size=0, root=merkle.EMPTY_ROOT, registry_count=0, updated_at=now
            )
        )


def lock_head(conn: Connection) -> Head:
    """Read the head row, holding the sequencing lock until the transaction ends.

    On SQLite the caller's transaction began with ``BEGIN IMMEDIATE`` (the database write
    lock); on PostgreSQL this takes a row lock with ``FOR UPDATE``.
    """
    q = select(head_t.c.size, head_t.c.root, head_t.c.registry_count).where(head_t.c.id == 1)
    if not is_sqlite(conn):
        q = q.with_for_update()
    row = conn.execute(q).one()
    return Head(int(row.size), bytes(row.root), int(row.registry_count))


def read_head(conn: Connection) -> Head:
    row = conn.execute(
        select(head_t.c.size, head_t.c.root, head_t.c.registry_count).where(head_t.c.id == 1)
    ).one()
    return Head(int(row.size), bytes(row.root), int(row.registry_count))


def write_head(conn: Connection, head: Head, now: str) -> None:
    conn.execute(
        head_t.update()
        .where(head_t.c.id == 1)
        .values(size=head.size, root=head.root, registry_count=head.registry_count, updated_at=now)
    )


def fetch_nodes(conn: Connection, ids: Sequence[merkle.NodeID]) -> dict[merkle.NodeID, bytes]:
    """Read stored node hashes by (level, index) in one query per 900 ids."""
    keys = {merkle.node_key(lvl, idx): (lvl, idx) for lvl, idx in ids}
    out: dict[merkle.NodeID, bytes] = {}
    klist = list(keys)
    for i in range(0, len(klist), _IN_CHUNK):
        chunk = klist[i : i + _IN_CHUNK]
        for k, h in conn.execute(
            select(nodes_t.c.id, nodes_t.c.hash).where(nodes_t.c.id.in_(chunk))
        ):
            out[keys[int(k)]] = bytes(h)
    return out


#: every column of log_entries, in table order
_ENTRY_COLS: tuple[str, ...] = tuple(c.name for c in entries_t.columns)


@contextmanager
def _driver_cursor(conn: Connection) -> Iterator[Any]:
    """A cursor of the driver connection under ``conn``, inside its transaction (begun if
    none is), closed on leaving."""
    if not conn.in_transaction():
        conn.begin()
    dbapi = conn.connection.dbapi_connection
    assert dbapi is not None  # noqa: S101 - a live connection always has one
    cur: Any = dbapi.cursor()
    try:
        yield cur
    finally:
        cur.close()


def _insert_raw(
    conn: Connection, table: str, cols: Sequence[str], rows: list[tuple[Any, ...]]
) -> None:
    """Bulk insert through the driver cursor of ``conn`` (inside its transaction): COPY on
    PostgreSQL, ``executemany`` on SQLite. The same rows as an SQLAlchemy ``insert()``
    executemany, without its per-value bind processing (a third of an append's SQL time)."""
    names = ", ".join(cols)
    with _driver_cursor(conn) as cur:
        if is_sqlite(conn):
            marks = ", ".join("?" * len(cols))
            cur.executemany(f"INSERT INTO {table} ({names}) VALUES ({marks})", rows)  # noqa: S608
        else:
            with cur.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)


def insert_nodes(conn: Connection, nodes: Iterable[tuple[int, int, bytes]]) -> None:
    rows = [(merkle.node_key(lvl, idx), bytes(h)) for lvl, idx, h in nodes]
    if rows:
        _insert_raw(conn, "log_nodes", ("id", "hash"), rows)


def insert_entries(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert entry rows (mappings of column -> value)."""
    if not rows:
        return
    if all(len(r) == len(_ENTRY_COLS) for r in rows):
        try:
            values = [tuple(r[c] for c in _ENTRY_COLS) for r in rows]
        except KeyError:
            pass
        else:
            _insert_raw(conn, "log_entries", _ENTRY_COLS, values)
            return
    conn.execute(entries_t.insert(), list(rows))  # other shapes: SQLAlchemy decides


def find_by_leaf_hashes(conn: Connection, hashes: Sequence[bytes]) -> dict[bytes, int]:
    """Indexes of already-logged entries with these leaf hashes (idempotent re-posts)."""
    out: dict[bytes, int] = {}
    for i in range(0, len(hashes), _IN_CHUNK):
        chunk = list(hashes[i : i + _IN_CHUNK])
        for h, idx in conn.execute(
            select(entries_t.c.leaf_hash, entries_t.c.idx).where(entries_t.c.leaf_hash.in_(chunk))
        ):
            out[bytes(h)] = int(idx)
    return out


def get_entry(conn: Connection, index: int) -> Any:
    """The entry row at ``index`` (or None)."""
    return conn.execute(select(entries_t).where(entries_t.c.idx == index)).first()


def iter_entries(
    conn: Connection, start: int = 0, end: int | None = None, *, chunk: int = 5000
) -> Iterable[Any]:
    """Entry rows (idx, data, leaf_hash, type, issuer, key_id, at) in index order."""
    pos = start
    cols = (
        entries_t.c.idx,
        entries_t.c.data,
        entries_t.c.leaf_hash,
        entries_t.c.type,
        entries_t.c.issuer,
        entries_t.c.key_id,
        entries_t.c.at,
    )
    while True:
        q = select(*cols).where(entries_t.c.idx >= pos).order_by(entries_t.c.idx).limit(chunk)
        if end is not None:
            q = q.where(entries_t.c.idx < end)
        rows = conn.execute(q).all()
        if not rows:
            return
        yield from rows
        pos = int(rows[-1].idx) + 1


def registry_entries(conn: Connection) -> list[bytes]:
    """The registry entries (``institution.*``) in index order.

    Selected by the exact registry types, which the type index serves (``LIKE`` cannot use
    it: SQLite's is case-insensitive, PostgreSQL's needs a C collation), instead of a scan
    of the whole log; the ledger stores no other ``institution.*`` type.
    """
    rows = conn.execute(
        select(entries_t.c.data)
        .where(entries_t.c.type.in_(sorted(REGISTRY_TYPES)))
        .order_by(entries_t.c.idx)
    )
    return [bytes(r.data) for r in rows]


def leaf_hashes(conn: Connection, start: int, end: int) -> list[bytes]:
    """Leaf hashes ``[start, end)`` from level-0 nodes."""
    rows = conn.execute(
        select(nodes_t.c.hash)
        .where(nodes_t.c.id >= merkle.node_key(0, start), nodes_t.c.id < merkle.node_key(0, end))
        .order_by(nodes_t.c.id)
    )
    return [bytes(r.hash) for r in rows]


def iter_nodes(conn: Connection, *, chunk: int = 20000) -> Iterable[tuple[int, bytes]]:
    pos = -1
    while True:
        rows = conn.execute(
            select(nodes_t.c.id, nodes_t.c.hash)
            .where(nodes_t.c.id > pos)
            .order_by(nodes_t.c.id)
            .limit(chunk)
        ).all()
        if not rows:
            return
        for r in rows:
            yield int(r.id), bytes(r.hash)
        pos = int(rows[-1].id)


def count_nodes(conn: Connection) -> int:
    return int(conn.execute(select(func.count()).select_from(nodes_t)).scalar_one())


def latest_checkpoint(conn: Connection) -> StoredCheckpoint | None:
    row = conn.execute(select(checkpoints_t).order_by(checkpoints_t.c.size.desc()).limit(1)).first()
    return _cp(row) if row is not None else None


def checkpoint_at(conn: Connection, size: int) -> StoredCheckpoint | None:
    row = conn.execute(select(checkpoints_t).where(checkpoints_t.c.size == size)).first()
    return _cp(row) if row is not None else None


def all_checkpoints(conn: Connection) -> list[StoredCheckpoint]:
    return [_cp(r) for r in conn.execute(select(checkpoints_t).order_by(checkpoints_t.c.size))]


def insert_checkpoint(conn: Connection, cp: StoredCheckpoint) -> None:
    """Store a checkpoint and record its size as the head's published size (one chain link:
    ``prev_size`` names the checkpoint before it)."""
    conn.execute(
        checkpoints_t.insert().values(
            size=cp.size,
            root=cp.root,
            note=cp.note,
            published_at=cp.published_at,
            prev_size=cp.prev_size,
        )
    )
    conn.execute(head_t.update().where(head_t.c.id == 1).values(published_size=cp.size))


def published_size(conn: Connection) -> int:
    """The size of the latest checkpoint the bank published, as the head row records it."""
    value = conn.execute(select(head_t.c.published_size).where(head_t.c.id == 1)).scalar()
    return int(value or 0)


def leaf_hashes_at(conn: Connection, idxs: Sequence[int]) -> dict[int, bytes]:
    """The stored leaf hashes of the given entry indexes."""
    out: dict[int, bytes] = {}
    wanted = sorted(set(idxs))
    for i in range(0, len(wanted), _IN_CHUNK):
        chunk = wanted[i : i + _IN_CHUNK]
        for idx, h in conn.execute(
            select(entries_t.c.idx, entries_t.c.leaf_hash).where(entries_t.c.idx.in_(chunk))
        ):
            out[int(idx)] = bytes(h)
    return out


def _cp(row: Any) -> StoredCheckpoint:
    prev = row._mapping.get("prev_size")
    return StoredCheckpoint(
        int(row.size),
        bytes(row.root),
        str(row.note),
        str(row.published_at),
        None if prev is None else int(prev),
    )


# -- bulk reads for the audit -------------------------------------------------------------------
# The audit reads every entry and node once. These go through the driver cursor of the
# caller's connection (inside its transaction) and return plain tuples: no SQLAlchemy Row
# objects, and binary result transfer on PostgreSQL (``bytea`` as raw bytes instead of hex).
# Both drivers return ``int`` for BIGINT and ``bytes`` for BLOB/``bytea`` in this mode.


def _fetch_raw(conn: Connection, sql: str, params: tuple[int, ...]) -> list[Any]:
    with _driver_cursor(conn) as cur:
        if is_sqlite(conn):
            cur.execute(sql.replace("%s", "?"), params)
        else:
            cur.execute(sql, params, binary=True)
        rows: list[Any] = cur.fetchall()
        return rows


def fetch_rows(conn: Connection, sql: str, params: tuple[int, ...]) -> list[Any]:
    """Plain tuples of ``sql`` (``%s`` placeholders) through the driver cursor of ``conn``
    (the audit's bulk reads: no SQLAlchemy rows, binary transfer on PostgreSQL)."""
    return _fetch_raw(conn, sql, params)


def entry_tuples(conn: Connection, start: int, end: int) -> list[tuple[int, bytes, bytes]]:
    """``(idx, data, leaf_hash)`` of the entries with ``start <= idx < end``, in index order."""
    rows = _fetch_raw(
        conn,
        "SELECT idx, data, leaf_hash FROM log_entries WHERE idx >= %s AND idx < %s ORDER BY idx",
        (start, end),
    )
    return rows  # both drivers give int and bytes here


#: the envelope columns of ``log_entries`` that restate the entry bytes (access control reads
#: them), in the order :func:`entry_tuples_with_columns` returns them
ENVELOPE_COLUMNS: tuple[str, ...] = ("type", "issuer", "key_id", "at", "subject")


def entry_tuples_with_columns(conn: Connection, start: int, end: int) -> list[tuple[Any, ...]]:
    """``(idx, data, leaf_hash, type, issuer, key_id, at, subject)`` of the entries with
    ``start <= idx < end``, in index order (the audit's read)."""
    rows = _fetch_raw(
        conn,
        "SELECT idx, data, leaf_hash, type, issuer, key_id, at, subject FROM log_entries"
        " WHERE idx >= %s AND idx < %s ORDER BY idx",
        (start, end),
    )
    return rows


def node_tuples(conn: Connection, level: int, begin: int, end: int) -> list[tuple[int, bytes]]:
    """``(storage id, hash)`` of the stored nodes ``(level, begin)`` … ``(level, end - 1)``."""
    rows = _fetch_raw(
        conn,
        "SELECT id, hash FROM log_nodes WHERE id >= %s AND id < %s ORDER BY id",
        (merkle.node_key(level, begin), merkle.node_key(level, end)),
    )
    return rows


def node_hashes(conn: Connection, level: int, begin: int, end: int) -> list[bytes]:
    """The stored hashes of nodes ``(level, begin)`` … ``(level, end - 1)`` that exist, in
    index order (ids are unique: a full count means every one is there, in place)."""
    rows = _fetch_raw(
        conn,
        "SELECT hash FROM log_nodes WHERE id >= %s AND id < %s ORDER BY id",
        (merkle.node_key(level, begin), merkle.node_key(level, end)),
    )
    return [r[0] for r in rows]


def head_and_entry_end(conn: Connection) -> tuple[Head, int]:
    """The head row and the highest entry index + 1 (0 if none), read in one statement, so
    from one snapshot even on PostgreSQL's READ COMMITTED."""
    row = conn.execute(
        select(
            head_t.c.size,
            head_t.c.root,
            head_t.c.registry_count,
            select(func.max(entries_t.c.idx)).scalar_subquery(),
        ).where(head_t.c.id == 1)
    ).one()
    end = int(row[3]) + 1 if row[3] is not None else 0
    return Head(int(row[0]), bytes(row[1]), int(row[2])), end
