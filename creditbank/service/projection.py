"""What every derived column and projection row must hold, computed from the entry bytes.

One definition serves three callers (ADR 0007):

* the append (:class:`creditbank.service.records.RecordValidator`, under the ledger lock, in
  the append's transaction) writes the rows built here for each new entry;
* ``creditbank audit`` replays the log, builds every expected row and compares it with what is
  stored (:func:`check_projections`), naming the first differing row of each table;
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

import hashlib
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import orjson
from sqlalchemy import Table, func, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from creditbank.core import merkle
from creditbank.core.canonical import canonicalize
from creditbank.core.checkpoint import Checkpoint, sign_checkpoint
from creditbank.core.entries import REGISTRY_TYPES, format_time
from creditbank.errors import InconsistentLogError, StorageError
from creditbank.storage import ledger_repo
from creditbank.storage.engine import IMMEDIATE, is_sqlite
from creditbank.storage.tables import (
    conversion_decisions_t,
    conversion_voids_t,
    documents_t,
    entries_t,
    head_t,
    records_t,
    revocations_t,
    rule_publications_t,
)

if TYPE_CHECKING:
    from creditbank.service.bank import Bank

RECORD_TYPES: Final = frozenset({"record.posted", "record.corrected", "record.revoked"})
RULES_PUBLISHED: Final = "rules.published"
DECIDED: Final = "conversion.decided"
VOIDED: Final = "conversion.voided"
CONVERSION_TYPES: Final = frozenset({RULES_PUBLISHED, DECIDED, VOIDED})
TRANSCRIPT_ISSUED: Final = "transcript.issued"
TRANSCRIPT_REVOKED: Final = "transcript.revoked"

#: the projection tables, each keyed by ``entry_idx``, in the order they are reported
PROJECTION_TABLES: Final[tuple[Table, ...]] = (
    records_t,
    revocations_t,
    rule_publications_t,
    conversion_decisions_t,
    conversion_voids_t,
)
#: the derived envelope columns of ``log_entries``
ENTRY_COLUMNS: Final = ("leaf_hash", "type", "issuer", "key_id", "at", "subject")
#: entries read per query
CHUNK: Final = 5000


# -- row builders (shared by the append and the replay) -----------------------------------------
def body_digest(body: Mapping[str, Any]) -> bytes:
    """SHA-256 of the canonical body (how a record or revocation recognises a re-post)."""
    return hashlib.sha256(canonicalize(dict(body))).digest()


def raw_body_digest(data: bytes) -> bytes | None:
    """:func:`body_digest` of a stored entry, from its bytes: an entry is canonical JSON with
    its members in order ``at, body, issuer, …``, and JCS writes a member's value exactly as
    it would alone, so the body's canonical bytes are the slice between ``"body":`` and the
    top-level ``,"issuer":`` (the last one: no later member can hold that text). None if
    the bytes are not shaped so (the caller canonicalizes instead)."""
    start = data.find(b',"body":{')
    end = data.rfind(b'},"issuer":"')
    if start < 0 or end < start:
        return None
    return hashlib.sha256(data[start + 8 : end + 1]).digest()


def record_owner(issuer: str, body: Mapping[str, Any]) -> str:
    """The institution a record entry belongs to: ``on_behalf_of`` or its signer."""
    return str(body.get("on_behalf_of") or issuer)


def record_row(
    idx: int,
    type_: str,
    issuer: str,
    at: str,
    body: Mapping[str, Any],
    chain_root: str,
    digest: bytes | None = None,
) -> dict[str, Any]:
    """The ``records`` row of a ``record.posted`` / ``record.corrected`` entry (``digest``:
    the body's, if already known)."""
    return {
        "entry_idx": idx,
        "owner": record_owner(issuer, body),
        "posted_by": issuer,
        "record_id": str(body["record_id"]),
        "entry_type": type_,
        "learner_id": str(body["learner"]),
        "kind": str(body["kind"]),
        "dedup_key": str(body["dedup_key"]),
        "corrects": body.get("corrects"),
        "chain_root": chain_root,
        "achieved_on": str(body["achieved_on"]),
        "posted_at": str(body.get("posted_at") or at[:10]),
        "digest": digest if digest is not None else body_digest(body),
    }


def revocation_row(idx: int, issuer: str, body: Mapping[str, Any], root: str) -> dict[str, Any]:
    """The ``record_revocations`` row of a ``record.revoked`` entry whose chain root is
    ``root`` (the revocation is recorded on the root, whichever version it names)."""
    return {
        "entry_idx": idx,
        "owner": record_owner(issuer, body),
        "record_id": root,
        "reason": str(body["reason"]),
        "effective_on": str(body["effective_on"]),
        "digest": body_digest({**body, "record_id": root}),
    }


def conversion_row(
    idx: int, type_: str, at: str, body: Mapping[str, Any]
) -> tuple[Table, dict[str, Any]]:
    """The projection row of a bank-authored ``rules.published`` / ``conversion.*`` entry.

    Raises:
        KeyError: ``type_`` is not a conversion type (a programming error).
    """
    if type_ == RULES_PUBLISHED:
        return rule_publications_t, {
            "entry_idx": idx,
            "digest": body_digest(body),
            "rule_count": len(body["rules"]),
            "published_at": at,
        }
    if type_ == DECIDED:
        return conversion_decisions_t, {
            "entry_idx": idx,
            "application_id": str(body["application_id"]),
            "learner_id": str(body["learner"]),
            "app_type": str(body["type"]),
            "program_id": body.get("program_id"),
            "certificate_type_id": body.get("certificate_type_id"),
            "applied_on": str(body["applied_on"]),
            "rules_idx": int(body["rules_entry"]),
            "credits_centi": int(body["credits_centi"]),
            "grant_count": len(body["grants"]),
            "decided_at": at,
        }
    if type_ == VOIDED:
        return conversion_voids_t, {
            "entry_idx": idx,
            "decision_idx": int(body["decision_entry"]),
            "grant_no": int(body["grant_no"]),
            "learner_id": str(body["learner"]),
            "voided_at": str(body["voided_at"]),
            "revocation_idx": int(body["revocation_entry"]),
        }
    raise KeyError(type_)


def _digest_bytes(text_digest: object) -> bytes:
    """``sha256:<hex>`` (the digest format of ``transcript.issued``) as the 32 stored bytes."""
    return bytes.fromhex(str(text_digest).removeprefix("sha256:"))


def document_row(idx: int, at: str, body: Mapping[str, Any]) -> dict[str, Any]:
    """The derivable columns of the ``documents`` row of a ``transcript.issued`` entry (its
    revocation columns are set by a later ``transcript.revoked``; ``valid_until`` and the
    items and bytes are side data of the issuance, not in the entry)."""
    return {
        "entry_idx": idx,
        "doc_id": str(body["document_id"]),
        "learner_id": str(body["learner"]),
        "kind": str(body["kind"]),
        "status_list": int(body["status_list"]),
        "status_index": int(body["status_index"]),
        "credential_digest": _digest_bytes(body["credential_digest"]),
        "pdf_digest": _digest_bytes(body["pdf_digest"]),
        "checkpoint_size": int(body["checkpoint_size"]),
        "item_count": int(body["items"]),
        "issued_at": at,
        "revoked_at": None,
        "revoked_reason": None,
        "revoked_by": None,
        "revocation_idx": None,
    }


def default_subject(body: Mapping[str, Any]) -> str | None:
    """The learner an entry is about, as its body names it (null: a public entry)."""
    learner = body.get("learner")
    return learner if isinstance(learner, str) else None


# -- the replay ---------------------------------------------------------------------------------
@dataclass
class Expected:
    """What one entry implies: its envelope columns and its projection rows."""

    columns: dict[str, Any]
    rows: list[tuple[Table, dict[str, Any]]] = field(default_factory=list)


class Replay:
    """Feeds entries in index order and says what each implies (see the module docstring).

    Only entries the ledger admitted are in the log, so the replay follows the admission
    rules' outcome without re-judging them: a correction's chain root is its target's, a
    revocation is recorded on its target's chain root and is about the target's learner.
    """

    def __init__(self, bank_id: str, *, validated: bool = True) -> None:
        self.bank_id = bank_id
        self.validated = validated
        #: "owner\\0record_id" -> (chain root, learner)
        self._records: dict[str, tuple[str, str]] = {}
        self.registry_count = 0
        #: issued entry index -> the derivable columns of its ``documents`` row (documents
        #: change when revoked, so they are compared once the whole log is read)
        self.documents: dict[int, dict[str, Any]] = {}

    def feed(self, idx: int, data: bytes, *, leaf: bool = True) -> Expected:
        """What the entry ``data`` at ``idx`` implies (its leaf hash only with ``leaf``).

        Raises:
            ValueError: the stored bytes are not an entry object (the log audit names it).
        """
        obj = orjson.loads(data)
        if not isinstance(obj, dict) or not isinstance(obj.get("body"), dict):
            raise ValueError(f"entry {idx} is not an entry object")
        type_, issuer, at, body = str(obj["type"]), str(obj["issuer"]), str(obj["at"]), obj["body"]
        columns: dict[str, Any] = {
            "leaf_hash": merkle.leaf_hash(data) if leaf else None,
            "type": type_,
            "issuer": issuer,
            "key_id": str(obj["key_id"]),
            "at": at,
            "subject": default_subject(body),
        }
        out = Expected(columns)
        if type_ in REGISTRY_TYPES:
            self.registry_count += 1
        if not self.validated:
            return out
        if type_ in RECORD_TYPES:
            owner = record_owner(issuer, body)
            if type_ == "record.revoked":
                target = self._records.get(f"{owner}\0{body.get('record_id')}")
                if target is not None:
                    root, learner = target
                    columns["subject"] = learner
                    out.rows.append((revocations_t, revocation_row(idx, issuer, body, root)))
                return out
            root = str(body["record_id"])
            if type_ == "record.corrected":
                target = self._records.get(f"{owner}\0{body.get('corrects')}")
                if target is not None:
                    root = target[0]
            self._records[f"{owner}\0{body['record_id']}"] = (root, str(body["learner"]))
            digest = raw_body_digest(data)
            out.rows.append((records_t, record_row(idx, type_, issuer, at, body, root, digest)))
        elif type_ in CONVERSION_TYPES and issuer == self.bank_id:
            out.rows.append(conversion_row(idx, type_, at, body))
        elif type_ == TRANSCRIPT_ISSUED and issuer == self.bank_id:
            self.documents[idx] = document_row(idx, at, body)
        elif type_ == TRANSCRIPT_REVOKED and issuer == self.bank_id:
            doc = self.documents.get(int(body["issued_entry"]))
            if doc is not None and doc["revoked_at"] is None:
                doc.update(
                    revoked_at=at,
                    revoked_reason=str(body["reason"]),
                    revoked_by=str(body["revoked_by"]),
                    revocation_idx=idx,
                )
        return out


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
