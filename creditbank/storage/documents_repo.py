"""SQL for issued documents, their items and files, share codes and status lists.

A document's status bit is not stored: it is computed from the projections that the ledger
writes in the same transaction as the entries they project (``documents.revoked_at`` for a
``transcript.revoked``, ``record_revocations`` for a ``record.revoked``) and from the
``conversion_voids`` projection, so it can never lag behind a committed revocation
(docs/documents.md, "Status").
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import BigInteger, String, and_, bindparam, cast, func, literal, select, union_all
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from creditbank.storage.tables import (
    conversion_voids_t,
    document_files_t,
    document_items_t,
    documents_t,
    learners_t,
    revocations_t,
    share_codes_t,
    status_lists_t,
)

#: bits per status list: the W3C Bitstring Status List minimum (16 KiB), so a list gives no
#: hint of how many documents exist
STATUS_LIST_SIZE: Final = 131_072


# -- status lists ------------------------------------------------------------------------------
def allocate_status_index(
    conn: Connection, now: str, *, size: int = STATUS_LIST_SIZE
) -> tuple[int, int]:
    """Take the next free bit: ``(list_id, index)``, sequential, a new list when one is full.

    Call inside a write transaction; on PostgreSQL the list row is locked until it commits.
    """
    while True:
        row = conn.execute(
            select(status_lists_t)
            .order_by(status_lists_t.c.list_id.desc())
            .limit(1)
            .with_for_update()
        ).first()
        if row is None or int(row.next_index) >= int(row.size):
            list_id = 1 if row is None else int(row.list_id) + 1
            # FOR UPDATE locks no row when there is none (the first list) or when the new list
            # does not exist yet: two writers can both try to create it. The loser's insert
            # fails on the primary key once the winner commits; a savepoint keeps its
            # transaction usable and the next round takes a bit of the winner's list.
            try:
                with conn.begin_nested():
                    conn.execute(
                        status_lists_t.insert().values(
                            list_id=list_id, size=size, next_index=0, created_at=now
                        )
                    )
            except IntegrityError:
                pass
            continue
        got = conn.execute(
            status_lists_t.update()
            .where(
                and_(
                    status_lists_t.c.list_id == row.list_id,
                    status_lists_t.c.next_index == row.next_index,
                )
            )
            .values(next_index=status_lists_t.c.next_index + 1)
        )
        if got.rowcount == 1:
            return int(row.list_id), int(row.next_index)


def status_list(conn: Connection, list_id: int) -> Any:
    return conn.execute(select(status_lists_t).where(status_lists_t.c.list_id == list_id)).first()


# -- documents ---------------------------------------------------------------------------------
def insert_document(
    conn: Connection,
    row: Mapping[str, Any],
    items: Sequence[Mapping[str, Any]],
    credential: bytes,
    pdf: bytes,
) -> None:
    """Insert a document with its items and its exact bytes (one transaction, the caller's)."""
    conn.execute(documents_t.insert().values(**row))
    conn.execute(
        document_files_t.insert().values(doc_id=row["doc_id"], credential=credential, pdf=pdf)
    )
    if items:
        conn.execute(
            document_items_t.insert(),
            [{"doc_id": row["doc_id"], "position": n, **it} for n, it in enumerate(items)],
        )


def get_document(conn: Connection, doc_id: str) -> Any:
    return conn.execute(select(documents_t).where(documents_t.c.doc_id == doc_id)).first()


def document_by_entry(conn: Connection, entry_idx: int) -> Any:
    return conn.execute(select(documents_t).where(documents_t.c.entry_idx == entry_idx)).first()


def documents_of_learner(conn: Connection, learner_id: str) -> list[Any]:
    return list(
        conn.execute(
            select(documents_t)
            .where(documents_t.c.learner_id == learner_id)
            .order_by(documents_t.c.entry_idx)
        )
    )


def document_items(conn: Connection, doc_id: str) -> list[Any]:
    return list(
        conn.execute(
            select(document_items_t)
            .where(document_items_t.c.doc_id == doc_id)
            .order_by(document_items_t.c.position)
        )
    )


def owner_and_bytes(conn: Connection, doc_id: str, which: str) -> tuple[str, bytes | None] | None:
    """One read for a download: the document's learner and its stored PDF (``which`` =
    ``pdf``) or credential bytes (None once erased); None if there is no such document."""
    col = document_files_t.c.pdf if which == "pdf" else document_files_t.c.credential
    row = conn.execute(
        select(documents_t.c.learner_id, col.label("data"))
        .select_from(
            documents_t.outerjoin(
                document_files_t, document_files_t.c.doc_id == documents_t.c.doc_id
            )
        )
        .where(documents_t.c.doc_id == doc_id)
    ).first()
    if row is None:
        return None
    return str(row.learner_id), None if row.data is None else bytes(row.data)


def get_pdf(conn: Connection, doc_id: str) -> bytes | None:
    got = conn.execute(
        select(document_files_t.c.pdf).where(document_files_t.c.doc_id == doc_id)
    ).scalar()
    return None if got is None else bytes(got)


def get_credential(conn: Connection, doc_id: str) -> bytes | None:
    got = conn.execute(
        select(document_files_t.c.credential).where(document_files_t.c.doc_id == doc_id)
    ).scalar()
    return None if got is None else bytes(got)


def mark_revoked(conn: Connection, doc_id: str, *, at: str, reason: str, by: str, idx: int) -> int:
    """Record a ``transcript.revoked`` on its document; returns the rows changed (0 or 1)."""
    got = conn.execute(
        documents_t.update()
        .where(and_(documents_t.c.doc_id == doc_id, documents_t.c.revoked_at.is_(None)))
        .values(revoked_at=at, revoked_reason=reason, revoked_by=by, revocation_idx=idx)
    )
    return int(got.rowcount)


def erase_files_of_learner(conn: Connection, learner_id: str) -> int:
    """Delete the stored credential and PDF bytes of a learner's documents (they hold the
    name and salt); the documents' rows and ledger entries stay. Returns the files deleted."""
    ids = select(documents_t.c.doc_id).where(documents_t.c.learner_id == learner_id)
    got = conn.execute(document_files_t.delete().where(document_files_t.c.doc_id.in_(ids)))
    return int(got.rowcount)


def count_rows(conn: Connection) -> dict[str, int]:
    """Rows per document table (tests: an error writes nothing)."""
    out: dict[str, int] = {}
    for t in (documents_t, document_files_t, document_items_t, share_codes_t):
        out[t.name] = int(conn.execute(select(func.count()).select_from(t)).scalar_one())
    return out


# -- status ------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class StatusCause:
    """Why a document's status bit is set: what was revoked or voided, when, why, which entry."""

    what: str
    at: str
    reason: str
    entry_idx: int | None
    detail: str | None = None


def _cause_queries(docs: Any) -> Any:
    """One SELECT per cause, each ``(doc_id, status_list, status_index, what, at, reason,
    entry_idx, detail)``, restricted to the documents in ``docs`` (a subquery of documents)."""
    d, i = documents_t, document_items_t
    bit = (d.c.doc_id, d.c.status_list, d.c.status_index)  # the document and its status bit
    own = select(
        *bit,
        func.coalesce(d.c.revoked_by, "bank").label("what"),
        d.c.revoked_at.label("at"),
        d.c.revoked_reason.label("reason"),
        d.c.revocation_idx.label("entry_idx"),
        d.c.doc_id.label("detail"),
    ).where(and_(d.c.revoked_at.is_not(None), d.c.doc_id.in_(docs)))
    r = revocations_t
    record = (
        select(
            *bit,
            i.c.item.label("what"),
            r.c.effective_on.label("at"),
            r.c.reason.label("reason"),
            r.c.entry_idx.label("entry_idx"),
            (r.c.owner + "/" + r.c.record_id).label("detail"),
        )
        .select_from(
            d.join(i, i.c.doc_id == d.c.doc_id).join(
                r, and_(r.c.owner == i.c.owner, r.c.record_id == i.c.chain_root)
            )
        )
        .where(and_(i.c.item.in_(("record", "basis")), d.c.doc_id.in_(docs)))
    )
    v = conversion_voids_t
    grant = (
        select(
            *bit,
            i.c.item.label("what"),
            v.c.voided_at.label("at"),
            literal("voided", String).label("reason"),
            v.c.entry_idx.label("entry_idx"),
            cast(v.c.decision_idx, String).label("detail"),
        )
        .select_from(
            d.join(i, i.c.doc_id == d.c.doc_id).join(
                v,
                and_(
                    v.c.decision_idx == i.c.entry_idx,
                    (i.c.item == "decision") | (v.c.grant_no == i.c.grant_no),
                ),
            )
        )
        .where(and_(i.c.item.in_(("grant", "decision")), d.c.doc_id.in_(docs)))
    )
    erased = (
        select(
            *bit,
            literal("erased", String).label("what"),
            learners_t.c.erased_at.label("at"),
            literal("the learner's personal data was erased", String).label("reason"),
            cast(None, BigInteger).label("entry_idx"),
            cast(None, String).label("detail"),
        )
        .select_from(d.join(learners_t, learners_t.c.learner_id == d.c.learner_id))
        .where(and_(learners_t.c.erased_at.is_not(None), d.c.doc_id.in_(docs)))
    )
    return union_all(own, record, grant, erased)


def _cause(row: Any) -> StatusCause:
    """A row of :func:`_cause_queries` as a cause."""
    return StatusCause(
        str(row.what),
        str(row.at),
        str(row.reason),
        None if row.entry_idx is None else int(row.entry_idx),
        None if row.detail is None else str(row.detail),
    )


def status_causes(conn: Connection, doc_ids: Iterable[str]) -> dict[str, list[StatusCause]]:
    """Every reason each of the given documents is revoked (absent: not revoked)."""
    ids = list(dict.fromkeys(doc_ids))
    out: dict[str, list[StatusCause]] = {}
    if not ids:
        return out
    docs = select(documents_t.c.doc_id).where(documents_t.c.doc_id.in_(ids)).scalar_subquery()
    q = _cause_queries(docs)
    for row in conn.execute(q):
        out.setdefault(str(row.doc_id), []).append(_cause(row))
    for causes in out.values():
        causes.sort(key=lambda c: (c.at, c.what))
    return out


#: :func:`status_causes` of one document (``doc_id`` bound), built once: the verification
#: pages ask it on every request
_ONE_DOCUMENT_CAUSES: Final = _cause_queries(
    select(documents_t.c.doc_id)
    .where(documents_t.c.doc_id == bindparam("doc_id"))
    .scalar_subquery()
)


def status_causes_of(conn: Connection, doc_id: str) -> list[StatusCause]:
    """:func:`status_causes` of one document (its prepared statement is built once)."""
    causes = [_cause(row) for row in conn.execute(_ONE_DOCUMENT_CAUSES, {"doc_id": doc_id})]
    causes.sort(key=lambda c: (c.at, c.what))
    return causes


def revoked_indices(conn: Connection, list_id: int) -> list[int]:
    """The set bits of one status list, sorted."""
    docs = (
        select(documents_t.c.doc_id).where(documents_t.c.status_list == list_id).scalar_subquery()
    )
    q = _cause_queries(docs).subquery()
    rows = conn.execute(select(q.c.status_index).distinct().order_by(q.c.status_index))
    return [int(r.status_index) for r in rows]


# -- share codes -------------------------------------------------------------------------------
def insert_share_code(conn: Connection, row: Mapping[str, Any]) -> None:
    conn.execute(share_codes_t.insert().values(**row))


def share_code_by_hash(conn: Connection, code_hash: bytes) -> Any:
    return conn.execute(select(share_codes_t).where(share_codes_t.c.code_hash == code_hash)).first()


def share_code_by_id(conn: Connection, code_id: str) -> Any:
    return conn.execute(select(share_codes_t).where(share_codes_t.c.code_id == code_id)).first()


def share_codes_of_learner(conn: Connection, learner_id: str) -> list[Any]:
    """Every share code of a learner's documents, with the document's kind, oldest first."""
    s, d = share_codes_t, documents_t
    return list(
        conn.execute(
            select(s, d.c.kind, d.c.learner_id)
            .select_from(s.join(d, d.c.doc_id == s.c.doc_id))
            .where(d.c.learner_id == learner_id)
            .order_by(s.c.created_at, s.c.code_id)
        )
    )


def share_codes_of_document(conn: Connection, doc_id: str) -> list[Any]:
    return list(
        conn.execute(
            select(share_codes_t)
            .where(share_codes_t.c.doc_id == doc_id)
            .order_by(share_codes_t.c.created_at, share_codes_t.c.code_id)
        )
    )


def _update_live_share_code(conn: Connection, code_id: str, **values: str) -> int:
    """Set ``values`` on a share code that is not revoked; the number of rows changed (0 or 1)."""
    got = conn.execute(
        share_codes_t.update()
        .where(and_(share_codes_t.c.code_id == code_id, share_codes_t.c.revoked_at.is_(None)))
        .values(**values)
    )
    return int(got.rowcount)


def set_share_code_expiry(conn: Connection, code_id: str, expires_at: str) -> int:
    return _update_live_share_code(conn, code_id, expires_at=expires_at)


def revoke_share_code(conn: Connection, code_id: str, now: str) -> int:
    return _update_live_share_code(conn, code_id, revoked_at=now)


def count_verification(conn: Connection, code_hash: bytes, now: str) -> None:
    """One more verification through this code (how many and when; never who)."""
    conn.execute(
        share_codes_t.update()
        .where(share_codes_t.c.code_hash == code_hash)
        .values(verify_count=share_codes_t.c.verify_count + 1, last_verified_at=now)
    )
