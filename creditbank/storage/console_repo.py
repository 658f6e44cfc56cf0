"""Reads for the institution console: the log entries an institution signed, and the
bank-signed registry entries about it."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection

from creditbank.storage.tables import entries_t, records_t


def entries_signed_by(
    conn: Connection, issuer: str, *, before: int | None, limit: int
) -> list[Any]:
    """Envelope fields (no bytes) of the entries ``issuer`` signed, newest first."""
    q = select(
        entries_t.c.idx, entries_t.c.type, entries_t.c.key_id, entries_t.c.at,
        entries_t.c.ingested_at, entries_t.c.leaf_hash,
    ).where(entries_t.c.issuer == issuer)  # fmt: skip
    if before is not None:
        q = q.where(entries_t.c.idx < before)
    return list(conn.execute(q.order_by(entries_t.c.idx.desc()).limit(limit)))


def registry_entries_of(conn: Connection, bank_id: str) -> list[Any]:
    """Every bank-signed ``institution.*`` entry with its bytes, oldest first."""
    q = (
        select(entries_t.c.idx, entries_t.c.type, entries_t.c.at, entries_t.c.data)
        .where(entries_t.c.issuer == bank_id, entries_t.c.type.like("institution.%"))
        .order_by(entries_t.c.idx)
    )
    return list(conn.execute(q))


def record_exists(conn: Connection, owner: str, record_id: str) -> Any:
    """The record row of ``owner``/``record_id`` (None if not in the log)."""
    return conn.execute(
        select(records_t.c.entry_idx, records_t.c.learner_id).where(
            records_t.c.owner == owner, records_t.c.record_id == record_id
        )
    ).first()


def record_by_index(conn: Connection, index: int) -> Any:
    """The record row of one record entry (None if ``index`` is not a record version)."""
    return conn.execute(select(records_t).where(records_t.c.entry_idx == index)).first()
