"""Checking and rebuilding every derived column and projection row against the log.

What each entry implies is defined once, in :mod:`creditbank.service.projection_rows`, for
three callers (ADR 0007):

* the append (:class:`creditbank.service.records.RecordValidator`, under the ledger lock, in
  the append's transaction) writes the rows built there for each new entry;
* ``creditbank audit`` replays the log, builds every expected row and compares it with what is
  stored (:func:`compare_with_log`), naming the first differing row of each table;
* ``creditbank rebuild-projections`` writes back what the log implies
  (:func:`rebuild_projections`).

Derived from the log (so checked and rebuilt): the envelope columns of ``log_entries``
(``type``, ``issuer``, ``key_id``, ``at``, ``leaf_hash``, ``subject``), the head's
``registry_count``, ``records``, ``record_revocations``, ``rule_publications``,
``conversion_decisions``, ``conversion_voids`` and the columns of ``documents`` that the
``transcript.issued`` / ``transcript.revoked`` entries determine (id, learner, kind, status
bit, digests, checkpoint size, item count, issue time, revocation). Not derivable, so neither
checked nor rebuilt: personal data (``learners``, ``record_names``: names, salts and identity
keys never enter the log, and may be erased; ``document_files``, the exact credential and PDF
bytes), ``documents.valid_until`` and ``document_items`` (side data of an issuance),
``log_entries.ingested_at`` (the bank's clock at append), tokens, share codes, accounts and
dataset references (operator bookkeeping).

A ledger-only bank (``validate_records=False``, tests and benchmarks of the log itself) writes
no record or conversion projections; for it only the envelope columns are derived, and an
entry's ``subject`` is its body's ``learner``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from sqlalchemy import Table, func, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from creditbank.core import merkle
from creditbank.core.checkpoint import Checkpoint, sign_checkpoint
from creditbank.core.entries import REGISTRY_TYPES, format_time
from creditbank.errors import InconsistentLogError, StorageError
from creditbank.service.projection_rows import (
    CONVERSION_TYPES,
    DECIDED,
    PROJECTION_TABLES,
    VOIDED,
    Replay,
    conversion_row,
    record_row,
    revocation_row,
)
from creditbank.storage import ledger_repo
from creditbank.storage.engine import IMMEDIATE, is_sqlite
from creditbank.storage.tables import documents_t, entries_t, head_t

if TYPE_CHECKING:
    from creditbank.service.bank import Bank

#: the derived envelope columns of ``log_entries``
ENTRY_COLUMNS: Final = ("leaf_hash", "type", "issuer", "key_id", "at", "subject")
#: entries read per query
CHUNK: Final = 5000

# the row builders are re-exported for creditbank.service.records
__all__ = [
    "CONVERSION_TYPES",
    "DECIDED",
    "VOIDED",
    "Difference",
    "ProjectionCheck",
    "RebuildReport",
    "apply_fixes",
    "compare_with_log",
    "conversion_row",
    "rebuild_projections",
    "record_row",
    "revocation_row",
    "triggers_suspended",
]


# -- comparing ----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Difference:
    """One stored row that differs from what the log implies.

    ``table`` is ``log_entries``, ``log_head`` or a projection table; ``kind`` is ``wrong``
    (a column differs), ``missing`` (the log implies a row that is not stored) or ``extra``
    (a stored row the log does not imply).
    """

    table: str
    entry_idx: int
    kind: str
    column: str | None = None
    stored: Any = None
    expected: Any = None

    def describe(self) -> str:
        where = f"{self.table} row {self.entry_idx}"
        if self.kind == "missing":
            return f"{where} is missing (the log implies it)"
        if self.kind == "extra":
            return f"{where} is not implied by the log"
        return f"{where}: {self.column} is {self.stored!r}, the log says {self.expected!r}"


def _norm(value: Any) -> Any:
    if isinstance(value, memoryview | bytearray):
        return bytes(value)
    return value


def _row_dict(row: Any) -> dict[str, Any]:
    return {k: _norm(v) for k, v in row._mapping.items()}


def _compare_row(
    table: str, idx: int, stored: Mapping[str, Any], want: Mapping[str, Any]
) -> Difference | None:
    for col, value in want.items():
        have = stored.get(col)
        if have != value:
            return Difference(table, idx, "wrong", col, have, value)
    return None


@dataclass
class ProjectionCheck:
    """Every difference found (in index order per table), and how many entries were read."""

    entries: int = 0
    differences: list[Difference] = field(default_factory=list)
    #: the expected rows of the differing keys, for the rebuild: (table, idx) -> row or None
    fixes: dict[tuple[str, int], dict[str, Any] | None] = field(default_factory=dict)
    registry_count: int = 0

    def first(self) -> Difference | None:
        return min(self.differences, key=lambda d: d.entry_idx) if self.differences else None


def _stored_rows(
    conn: Connection, table: Table, start: int, end: int | None
) -> dict[int, dict[str, Any]]:
    """The rows of ``table`` with ``start <= entry_idx < end``, through the driver cursor."""
    names = [c.name for c in table.columns]
    sql = f"SELECT {', '.join(names)} FROM {table.name} WHERE entry_idx >= %s"  # noqa: S608
    params: tuple[int, ...] = (start,)
    if end is not None:
        sql, params = sql + " AND entry_idx < %s", (start, end)
    at = names.index("entry_idx")
    return {
        int(r[at]): {n: _norm(v) for n, v in zip(names, r, strict=True)}
        for r in ledger_repo.fetch_rows(conn, sql, params)
    }


def compare_with_log(
    conn: Connection,
    bank_id: str,
    *,
    validated: bool,
    size: int,
    limit: int | None = None,
    envelope: bool = True,
) -> ProjectionCheck:
    """Replay entries ``[0, size)`` and compare every derived column and projection row.

    Stops collecting after ``limit`` differences (None: all, as the rebuild needs). With
    ``envelope=False`` the envelope columns that restate an entry's own bytes (``leaf_hash``,
    ``type``, ``issuer``, ``key_id``, ``at``, a ``subject`` its body names) are left to the
    caller (the audit's workers compare them while they parse each entry); only a
    revocation's subject, which depends on earlier entries, is compared here.
    """
    replay = Replay(bank_id, validated=validated)
    check = ProjectionCheck()
    tables = PROJECTION_TABLES if validated else ()
    if not validated and not envelope:  # nothing here depends on earlier entries
        size = 0
        replay.registry_count = int(
            conn.execute(
                select(func.count())
                .select_from(entries_t)
                .where(entries_t.c.type.in_(sorted(REGISTRY_TYPES)))
            ).scalar_one()
        )

    def note(d: Difference, fix: dict[str, Any] | None) -> None:
        check.differences.append(d)
        check.fixes[(d.table, d.entry_idx)] = fix

    for start in range(0, size, CHUNK):
        end = min(start + CHUNK, size)
        rows = ledger_repo.entry_tuples_with_columns(conn, start, end)
        stored_tables = {t.name: _stored_rows(conn, t, start, end) for t in tables}
        for r in rows:
            idx = int(r[0])
            try:
                exp = replay.feed(idx, bytes(r[1]), leaf=envelope)
            except (ValueError, KeyError, TypeError):
                continue  # not an entry: the log audit reports it
            check.entries += 1
            stored_cols = dict(zip(ENTRY_COLUMNS, (_norm(v) for v in r[2:]), strict=True))
            if envelope:
                d = _compare_row("log_entries", idx, stored_cols, exp.columns)
            elif r[3] == "record.revoked" and exp.columns["type"] == "record.revoked":
                d = _compare_row(
                    "log_entries", idx, stored_cols, {"subject": exp.columns["subject"]}
                )
            else:
                d = None
            if d is not None:
                note(d, exp.columns)
            for table, want in exp.rows:
                have = stored_tables[table.name].pop(idx, None)
                if have is None:
                    note(Difference(table.name, idx, "missing"), want)
                    continue
                d = _compare_row(table.name, idx, have, want)
                if d is not None or set(have) != set(want):
                    note(d or Difference(table.name, idx, "wrong"), want)
        for name, left in stored_tables.items():
            for idx in sorted(left):
                note(Difference(name, idx, "extra"), None)
        if limit is not None and len(check.differences) >= limit:
            return check
    for t in tables:  # rows beyond the log
        for idx in sorted(_stored_rows(conn, t, size, None)):
            note(Difference(t.name, idx, "extra"), None)
    if validated:
        stored_docs = _stored_rows(conn, documents_t, 0, None)
        for idx, want in sorted(replay.documents.items()):
            have = stored_docs.pop(idx, None)
            if have is None:
                note(Difference("documents", idx, "missing"), want)
                continue
            d = _compare_row("documents", idx, have, want)
            if d is not None:
                note(d, want)
        for idx in sorted(stored_docs):
            note(Difference("documents", idx, "extra"), None)
    check.registry_count = replay.registry_count
    head = conn.execute(select(head_t.c.registry_count).where(head_t.c.id == 1)).first()
    if head is not None and int(head.registry_count) != replay.registry_count:
        note(
            Difference(
                "log_head",
                size,
                "wrong",
                "registry_count",
                int(head.registry_count),
                replay.registry_count,
            ),
            {"registry_count": replay.registry_count},
        )
    return check


# -- rebuilding ---------------------------------------------------------------------------------
#: tables whose append-only triggers the rebuild suspends, inside its transaction
_REPAIRED: Final = ("log_entries", "log_head", *(t.name for t in PROJECTION_TABLES))


@contextmanager
def triggers_suspended(conn: Connection, tables: Iterable[str]) -> Iterator[None]:
    """Suspend the append-only triggers of ``tables`` inside the caller's transaction.

    SQLite: the triggers are dropped and created again from their stored SQL (DDL is
    transactional there). PostgreSQL: ``ALTER TABLE … DISABLE TRIGGER USER`` and back (also
    transactional; it locks the tables until the transaction ends).
    """
    names = sorted(set(tables))
    if is_sqlite(conn):
        saved: list[tuple[str, str]] = []
        for t in names:
            saved.extend(
                (str(r[0]), str(r[1]))
                for r in conn.exec_driver_sql(
                    "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = ?",
                    (t,),
                )
            )
        for name, _ in saved:
            conn.exec_driver_sql(f'DROP TRIGGER "{name}"')
        yield
        for _, sql in saved:
            conn.exec_driver_sql(sql)
        return
    for t in names:
        conn.execute(text(f"ALTER TABLE {t} DISABLE TRIGGER USER"))
    yield
    for t in names:
        conn.execute(text(f"ALTER TABLE {t} ENABLE TRIGGER USER"))


@dataclass(frozen=True, slots=True)
class RebuildReport:
    """What the rebuild changed: rows per table (corrected, inserted, deleted)."""

    changed: dict[str, tuple[int, int, int]]

    @property
    def total(self) -> int:
        return sum(sum(v) for v in self.changed.values())


def apply_fixes(conn: Connection, check: ProjectionCheck) -> RebuildReport:
    """Write back what the log implies for every difference of ``check`` (triggers suspended
    by the caller): wrong rows are corrected, missing ones inserted, extra ones deleted."""
    tables = {t.name: t for t in PROJECTION_TABLES}
    changed: dict[str, list[int]] = {}
    for d in check.differences:
        fix = check.fixes.get((d.table, d.entry_idx))
        counts = changed.setdefault(d.table, [0, 0, 0])
        if d.table == "log_entries":
            assert fix is not None  # noqa: S101 - an entry row is never "extra"
            conn.execute(entries_t.update().where(entries_t.c.idx == d.entry_idx).values(**fix))
            counts[0] += 1
        elif d.table == "log_head":
            assert fix is not None  # noqa: S101
            conn.execute(head_t.update().where(head_t.c.id == 1).values(**fix))
            counts[0] += 1
        elif d.table == "documents":  # mutable; valid_until, items and bytes are kept
            where = documents_t.c.entry_idx == d.entry_idx
            if fix is None:
                conn.execute(documents_t.delete().where(where))
                counts[2] += 1
            elif d.kind == "missing":
                conn.execute(documents_t.insert().values(**fix))
                counts[1] += 1
            else:
                conn.execute(documents_t.update().where(where).values(**fix))
                counts[0] += 1
        else:
            table = tables[d.table]
            conn.execute(table.delete().where(table.c.entry_idx == d.entry_idx))
            if fix is None:
                counts[2] += 1
                continue
            conn.execute(table.insert().values(**fix))
            counts[0 if d.kind == "wrong" else 1] += 1
    return RebuildReport({k: (v[0], v[1], v[2]) for k, v in changed.items()})


def _lost_checkpoint_sizes(conn: Connection) -> list[int]:
    """Sizes the bank published whose checkpoint row is gone: named as ``prev_size`` by a
    stored checkpoint, or as the head's published size, but not stored."""
    stored = {cp.size: cp for cp in ledger_repo.all_checkpoints(conn)}
    named = {cp.prev_size for cp in stored.values() if cp.prev_size}
    published = ledger_repo.published_size(conn)
    if published:
        named.add(published)
    return sorted(s for s in named if s not in stored)


def rebuild_projections(bank: Bank) -> RebuildReport:
    """Write back every derived column and projection row the log implies, and re-sign the
    checkpoints whose rows were deleted (Ed25519 is deterministic: the same size and root give
    the same note; the publication time is the rebuild's).

    Runs in one transaction holding the sequencing lock (appends wait), with the append-only
    triggers of the repaired tables suspended inside it.

    Raises:
        StorageError: if the database is unavailable.
        InconsistentLogError: if a lost checkpoint's size lies beyond the log.
    """
    validated = bank.ledger.validator is not None
    try:
        with (
            bank.engine.connect().execution_options(**{IMMEDIATE: True}) as conn,
            conn.begin(),
        ):
            head = ledger_repo.lock_head(conn)
            check = compare_with_log(
                conn, bank.settings.bank_id, validated=validated, size=head.size
            )
            lost = _lost_checkpoint_sizes(conn)
            with triggers_suspended(conn, _REPAIRED):
                report = apply_fixes(conn, check)
            if lost:
                report.changed["log_checkpoints"] = (0, _restore_checkpoints(bank, conn, lost), 0)
    except SQLAlchemyError as e:
        raise StorageError(f"cannot rebuild projections: {type(e).__name__}") from e
    bank.ledger.forget_registry()
    return report


def _restore_checkpoints(bank: Bank, conn: Connection, sizes: list[int]) -> int:
    head = ledger_repo.read_head(conn)
    published = ledger_repo.published_size(conn)
    now = format_time(bank.clock.now())
    for size in sizes:
        if size > head.size:
            raise InconsistentLogError(f"a checkpoint of size {size} is beyond the log")
        ids = merkle.compact_range(size)
        nodes = ledger_repo.fetch_nodes(conn, ids)
        root = merkle.fold_right([nodes[i] for i in ids]) if size else merkle.EMPTY_ROOT
        before = [cp.size for cp in ledger_repo.all_checkpoints(conn) if cp.size < size]
        note = sign_checkpoint(
            Checkpoint(bank.settings.origin, size, root, ()), bank.settings.origin, bank.log_signer
        )
        cp = ledger_repo.StoredCheckpoint(size, root, note, now, before[-1] if before else None)
        ledger_repo.insert_checkpoint(conn, cp)
    # insert_checkpoint moved the head's published size; put the latest back
    latest = max(published, *sizes)
    conn.execute(head_t.update().where(head_t.c.id == 1).values(published_size=latest))
    return len(sizes)
