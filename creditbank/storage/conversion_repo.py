"""SQL for the conversion projections (rule publications, decisions, voids) and the reads the
conversion service needs from the log and the record projections.

The projections are append-only (triggers in migration 0005) and derived from the log: the
append writes them in its own transaction (ADR 0007); :func:`entries_after` lets the service
complete a database written before that (a projection behind the log).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from sqlalchemy import Table, func, select, text
from sqlalchemy.engine import Connection

from creditbank.storage.tables import (
    conversion_decisions_t,
    conversion_voids_t,
    dataset_refs_t,
    entries_t,
    learners_t,
    records_t,
    revocations_t,
    rule_publications_t,
)

#: the entry types the conversion projections are made of
CONVERSION_TYPES: Final = ("rules.published", "conversion.decided", "conversion.voided")
#: rows per IN (...) list
_CHUNK: Final = 500


def _chunks(values: Sequence[Any], size: int = _CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


# -- locking ----------------------------------------------------------------------------------
def pg_lock(conn: Connection, key: int) -> None:
    """Take the PostgreSQL session advisory lock ``key`` (waits)."""
    conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": key})


def pg_unlock(conn: Connection, key: int) -> None:
    """Release the PostgreSQL session advisory lock ``key``."""
    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})


# -- the log ----------------------------------------------------------------------------------
def projected_until(conn: Connection) -> int:
    """The highest entry index any conversion projection holds (-1 if none)."""
    row = conn.execute(
        select(
            select(func.max(rule_publications_t.c.entry_idx)).scalar_subquery(),
            select(func.max(conversion_decisions_t.c.entry_idx)).scalar_subquery(),
            select(func.max(conversion_voids_t.c.entry_idx)).scalar_subquery(),
        )
    ).one()
    return max((int(v) for v in row if v is not None), default=-1)


def last_conversion_entry(conn: Connection, issuer: str | None = None) -> int:
    """The highest index of a conversion-type entry in the log (-1 if none), of ``issuer``
    only when given."""
    q = select(func.max(entries_t.c.idx)).where(entries_t.c.type.in_(CONVERSION_TYPES))
    if issuer is not None:
        q = q.where(entries_t.c.issuer == issuer)
    value = conn.execute(q).scalar()
    return -1 if value is None else int(value)


def entries_after(conn: Connection, after: int) -> list[Any]:
    """Conversion-type entries (``idx, type, at, data``) with an index above ``after``."""
    return list(
        conn.execute(
            select(entries_t.c.idx, entries_t.c.type, entries_t.c.at, entries_t.c.data)
            .where(entries_t.c.type.in_(CONVERSION_TYPES), entries_t.c.idx > after)
            .order_by(entries_t.c.idx)
        )
    )


def entry_data(conn: Connection, idxs: Iterable[int]) -> dict[int, bytes]:
    """The stored bytes of the given entries."""
    wanted = sorted(set(idxs))
    out: dict[int, bytes] = {}
    for chunk in _chunks(wanted):
        for r in conn.execute(
            select(entries_t.c.idx, entries_t.c.data).where(entries_t.c.idx.in_(chunk))
        ):
            out[int(r.idx)] = bytes(r.data)
    return out


def entries_of_types(conn: Connection, types: Sequence[str]) -> list[Any]:
    """Every entry (``idx, data``) of the given types, by index."""
    return list(
        conn.execute(
            select(entries_t.c.idx, entries_t.c.data)
            .where(entries_t.c.type.in_(list(types)))
            .order_by(entries_t.c.idx)
        )
    )


# -- projections ------------------------------------------------------------------------------
def insert_publication(conn: Connection, row: Mapping[str, Any]) -> None:
    conn.execute(rule_publications_t.insert().values(**row))


def latest_publication(conn: Connection) -> Any:
    return conn.execute(
        select(rule_publications_t).order_by(rule_publications_t.c.entry_idx.desc()).limit(1)
    ).first()


def publications(conn: Connection) -> list[Any]:
    return list(conn.execute(select(rule_publications_t).order_by(rule_publications_t.c.entry_idx)))


def insert_decision(conn: Connection, row: Mapping[str, Any]) -> None:
    conn.execute(conversion_decisions_t.insert().values(**row))


def decision_by_application(conn: Connection, application_id: str) -> Any:
    return conn.execute(
        select(conversion_decisions_t).where(
            conversion_decisions_t.c.application_id == application_id
        )
    ).first()


def decisions_by_applications(conn: Connection, application_ids: Iterable[str]) -> dict[str, Any]:
    wanted = sorted(set(application_ids))
    out: dict[str, Any] = {}
    for chunk in _chunks(wanted):
        for r in conn.execute(
            select(conversion_decisions_t).where(conversion_decisions_t.c.application_id.in_(chunk))
        ):
            out[str(r.application_id)] = r
    return out


def _rows_of_learners(conn: Connection, table: Table, learner_ids: Iterable[str]) -> list[Any]:
    """Rows of a projection table whose ``learner_id`` is one of the learners, by ledger index."""
    out: list[Any] = []
    for chunk in _chunks(sorted(set(learner_ids))):
        out.extend(conn.execute(select(table).where(table.c.learner_id.in_(chunk))))
    return sorted(out, key=lambda r: int(r.entry_idx))


def decisions_of_learners(conn: Connection, learner_ids: Iterable[str]) -> list[Any]:
    """Decision rows of the learners, by ledger index."""
    return _rows_of_learners(conn, conversion_decisions_t, learner_ids)


def all_decisions(conn: Connection) -> list[Any]:
    return list(
        conn.execute(select(conversion_decisions_t).order_by(conversion_decisions_t.c.entry_idx))
    )


def insert_void(conn: Connection, row: Mapping[str, Any]) -> None:
    conn.execute(conversion_voids_t.insert().values(**row))


def void_exists(conn: Connection, decision_idx: int, grant_no: int) -> bool:
    """Whether grant ``grant_no`` of decision entry ``decision_idx`` has a void row."""
    return (
        conn.execute(
            select(conversion_voids_t.c.entry_idx).where(
                conversion_voids_t.c.decision_idx == decision_idx,
                conversion_voids_t.c.grant_no == grant_no,
            )
        ).first()
        is not None
    )


def voids_of_learners(conn: Connection, learner_ids: Iterable[str]) -> list[Any]:
    """Void rows of the learners, by ledger index."""
    return _rows_of_learners(conn, conversion_voids_t, learner_ids)


def all_voids(conn: Connection) -> list[Any]:
    return list(conn.execute(select(conversion_voids_t).order_by(conversion_voids_t.c.entry_idx)))


# -- records and learners ---------------------------------------------------------------------
def records_of_learners(conn: Connection, learner_ids: Iterable[str]) -> list[Any]:
    """Record projection rows of the learners, by ledger index."""
    return _rows_of_learners(conn, records_t, learner_ids)


def records_of_owner_ids(conn: Connection, owner: str, record_ids: Sequence[str]) -> list[Any]:
    """Record projection rows of one owner with the given record ids."""
    out: list[Any] = []
    for chunk in _chunks(sorted(set(record_ids))):
        out.extend(
            conn.execute(
                select(records_t).where(
                    records_t.c.owner == owner, records_t.c.record_id.in_(chunk)
                )
            )
        )
    return out


def all_records(conn: Connection) -> list[Any]:
    return list(conn.execute(select(records_t).order_by(records_t.c.entry_idx)))


def revocations_of(conn: Connection, keys: set[tuple[str, str]]) -> dict[tuple[str, str], Any]:
    """Revocation rows keyed by (owner, chain root record id), for the given keys."""
    out: dict[tuple[str, str], Any] = {}
    roots = sorted({rid for _, rid in keys})
    for chunk in _chunks(roots):
        for r in conn.execute(select(revocations_t).where(revocations_t.c.record_id.in_(chunk))):
            key = (str(r.owner), str(r.record_id))
            if key in keys:
                out[key] = r
    return out


def all_revocations(conn: Connection) -> dict[tuple[str, str], Any]:
    return {(str(r.owner), str(r.record_id)): r for r in conn.execute(select(revocations_t))}


def learner_rows(conn: Connection, learner_ids: Iterable[str]) -> dict[str, Any]:
    wanted = sorted(set(learner_ids))
    out: dict[str, Any] = {}
    for chunk in _chunks(wanted):
        for r in conn.execute(select(learners_t).where(learners_t.c.learner_id.in_(chunk))):
            out[str(r.learner_id)] = r
    return out


def learner_by_external_ref(conn: Connection, ref: str) -> list[Any]:
    return list(conn.execute(select(learners_t).where(learners_t.c.external_ref == ref)))


def all_learner_ids(conn: Connection) -> list[str]:
    return [str(v) for v in conn.execute(select(learners_t.c.learner_id)).scalars()]


# -- dataset references -----------------------------------------------------------------------
def dataset_names(conn: Connection) -> list[str]:
    return sorted(
        str(v) for v in conn.execute(select(dataset_refs_t.c.dataset).distinct()).scalars()
    )


def dataset_ref_rows(conn: Connection, dataset: str) -> list[Any]:
    return list(conn.execute(select(dataset_refs_t).where(dataset_refs_t.c.dataset == dataset)))
