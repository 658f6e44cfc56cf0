"""SQL for learners (personal data) and the record projections."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection

from creditbank.storage.tables import learners_t, record_names_t, records_t, revocations_t


def get_learner(conn: Connection, learner_id: str) -> Any:
    return conn.execute(select(learners_t).where(learners_t.c.learner_id == learner_id)).first()


def learner_by_lookup(conn: Connection, lookup_key: str) -> Any:
    return conn.execute(select(learners_t).where(learners_t.c.lookup_key == lookup_key)).first()


def learner_by_external_ref(conn: Connection, ref: str) -> Any:
    return conn.execute(select(learners_t).where(learners_t.c.external_ref == ref)).first()


def insert_learner(conn: Connection, row: Mapping[str, Any]) -> None:
    conn.execute(learners_t.insert().values(**row))


def erase_learner(conn: Connection, learner_id: str, now: str) -> None:
    """Delete a learner's personal data: names, salt and identity lookup key."""
    conn.execute(
        learners_t.update()
        .where(learners_t.c.learner_id == learner_id)
        .values(lookup_key=None, salt=None, name=None, name_latin=None, erased_at=now)
    )
    conn.execute(
        record_names_t.update()
        .where(record_names_t.c.learner_id == learner_id)
        .values(name_on_record=None)
    )


def insert_record_name(conn: Connection, idx: int, learner_id: str, name: str) -> None:
    conn.execute(
        record_names_t.insert().values(entry_idx=idx, learner_id=learner_id, name_on_record=name)
    )


def names_for(conn: Connection, idxs: list[int]) -> dict[int, str | None]:
    if not idxs:
        return {}
    rows = conn.execute(
        select(record_names_t.c.entry_idx, record_names_t.c.name_on_record).where(
            record_names_t.c.entry_idx.in_(idxs)
        )
    )
    return {int(r.entry_idx): r.name_on_record for r in rows}


def get_record(conn: Connection, owner: str, record_id: str) -> Any:
    return conn.execute(
        select(records_t).where(records_t.c.owner == owner, records_t.c.record_id == record_id)
    ).first()


def records_by_keys(conn: Connection, keys: set[tuple[str, str]]) -> dict[tuple[str, str], Any]:
    """Records by (owner, record_id), in chunked queries."""
    out: dict[tuple[str, str], Any] = {}
    by_owner: dict[str, list[str]] = {}
    for owner, rid in keys:
        by_owner.setdefault(owner, []).append(rid)
    for owner, rids in by_owner.items():
        for i in range(0, len(rids), 900):
            chunk = rids[i : i + 900]
            for r in conn.execute(
                select(records_t).where(
                    records_t.c.owner == owner, records_t.c.record_id.in_(chunk)
                )
            ):
                out[(str(r.owner), str(r.record_id))] = r
    return out


def learners_by_ids(conn: Connection, ids: set[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    lst = sorted(ids)
    for i in range(0, len(lst), 900):
        for r in conn.execute(
            select(learners_t).where(learners_t.c.learner_id.in_(lst[i : i + 900]))
        ):
            out[str(r.learner_id)] = r
    return out


def insert_records(conn: Connection, rows: list[dict[str, Any]]) -> None:
    if rows:
        conn.execute(records_t.insert(), rows)


def insert_record(conn: Connection, row: Mapping[str, Any]) -> None:
    conn.execute(records_t.insert().values(**row))


def get_revocation(conn: Connection, owner: str, record_id: str) -> Any:
    return conn.execute(
        select(revocations_t).where(
            revocations_t.c.owner == owner, revocations_t.c.record_id == record_id
        )
    ).first()


def insert_revocation(conn: Connection, row: Mapping[str, Any]) -> None:
    conn.execute(revocations_t.insert().values(**row))


def records_of_learner(conn: Connection, learner_id: str) -> list[Any]:
    return list(
        conn.execute(
            select(records_t)
            .where(records_t.c.learner_id == learner_id)
            .order_by(records_t.c.entry_idx)
        )
    )


def records_of_owner(
    conn: Connection, owner: str, *, after: int = -1, limit: int = 1000
) -> list[Any]:
    return list(
        conn.execute(
            select(records_t)
            .where(records_t.c.owner == owner, records_t.c.entry_idx > after)
            .order_by(records_t.c.entry_idx)
            .limit(limit)
        )
    )


def revocations_for(
    conn: Connection, owners_roots: set[tuple[str, str]]
) -> dict[tuple[str, str], Any]:
    out: dict[tuple[str, str], Any] = {}
    owners = {o for o, _ in owners_roots}
    if not owners:
        return out
    rows = conn.execute(select(revocations_t).where(revocations_t.c.owner.in_(sorted(owners))))
    for r in rows:
        key = (str(r.owner), str(r.record_id))
        if key in owners_roots:
            out[key] = r
    return out


def all_records(conn: Connection) -> list[Any]:
    return list(conn.execute(select(records_t).order_by(records_t.c.entry_idx)))


def all_revocations(conn: Connection) -> list[Any]:
    return list(conn.execute(select(revocations_t).order_by(revocations_t.c.entry_idx)))
