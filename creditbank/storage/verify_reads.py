"""The per-request reads of a ``/v/{code}`` page on plain driver connections, and the
batched write of verification counts.

A by-code verification reads two things that change: the code's row (its state) and the
document's status causes (whether its status bit is set, and why). Both are read here on the
detached driver connections of :class:`~creditbank.storage.fast_reads.FastReads` (5-20 µs of
Python per query instead of SQLAlchemy's 150-500 µs), with SQL compiled once from the same
statements :mod:`creditbank.storage.documents_repo` runs, so the two paths cannot disagree.

:func:`add_verification_counts` writes many counts in one transaction (the verifier's count
buffer flushes through it at most once a second).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import psycopg
from sqlalchemy import Engine, bindparam, case, or_
from sqlalchemy.engine import Connection

from creditbank.storage import documents_repo as repo
from creditbank.storage.fast_reads import AsyncFastReads, FastReads
from creditbank.storage.tables import share_codes_t


@dataclass(frozen=True, slots=True)
class CodeRow:
    """What a verification reads of a share code (the columns ``code_state`` needs)."""

    code_hash: bytes
    doc_id: str
    expires_at: str
    revoked_at: str | None


_CODE_SQL: Final = (
    "SELECT code_hash, doc_id, expires_at, revoked_at FROM share_codes WHERE code_hash = "
)


class VerifyReads(FastReads):
    """A code's row and a document's status causes on driver connections (thread-safe)."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self._sql_code = _CODE_SQL + self._mark
        # the statement's IN lists are fixed literals, so one expansion serves every doc_id
        compiled = repo._ONE_DOCUMENT_CAUSES.compile(dialect=engine.dialect)
        expanded = compiled.construct_expanded_state({"doc_id": ""})
        self._sql_causes = expanded.statement
        self._causes_positional = bool(compiled.positional)
        self._causes_order: tuple[str, ...] = tuple(expanded.positiontup or ())
        self._causes_fixed: dict[str, Any] = dict(expanded.parameters)

    def _causes_params(self, doc_id: str) -> Sequence[Any] | Mapping[str, Any]:
        params = dict(self._causes_fixed, doc_id=doc_id)
        if self._causes_positional:
            return tuple(params[name] for name in self._causes_order)
        return params

    def share_code(self, code_hash: bytes) -> CodeRow | None:
        """The share code stored under ``code_hash`` (None if there is none)."""
        with self._cursor() as cur:
            cur.execute(self._sql_code, (code_hash,))
            row = cur.fetchone()
        if row is None:
            return None
        return CodeRow(bytes(row[0]), str(row[1]), str(row[2]), row[3])

    def status_causes(self, doc_id: str) -> list[repo.StatusCause]:
        """:func:`creditbank.storage.documents_repo.status_causes_of`, on a driver connection."""
        with self._cursor() as cur:
            cur.execute(self._sql_causes, self._causes_params(doc_id))
            rows = cur.fetchall()
        causes = [_cause_of(r) for r in rows]
        causes.sort(key=lambda c: (c.at, c.what))
        return causes


def _cause_of(r: Sequence[Any]) -> repo.StatusCause:
    # the columns: doc_id, status_list, status_index, what, at, reason, entry_idx, detail
    return repo.StatusCause(
        str(r[3]),
        str(r[4]),
        str(r[5]),
        None if r[6] is None else int(r[6]),
        None if r[7] is None else str(r[7]),
    )


class AsyncVerifyReads(AsyncFastReads):
    """PostgreSQL: a code's row and its document's status causes in ONE statement (the causes
    name the document through the code; one row per cause, or one row of NULL causes), on the
    asyncio connections of :class:`~creditbank.storage.fast_reads.AsyncFastReads`: the event
    loop serves other requests while the database answers. One statement costs psycopg about
    half the Python of two in a pipeline."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        compiled = repo._ONE_DOCUMENT_CAUSES.compile(dialect=engine.dialect)
        expanded = compiled.construct_expanded_state({"doc_id": ""})
        if compiled.positional or "%(doc_id)s" not in expanded.statement:
            raise ValueError("AsyncVerifyReads expects psycopg's named parameters")
        causes = expanded.statement.replace(
            "%(doc_id)s", "(SELECT doc_id FROM share_codes WHERE code_hash = %(code_hash)s)"
        )
        # our own compiled statement; the code is a bound parameter
        self._sql = (
            "SELECT c.code_hash, c.doc_id, c.expires_at, c.revoked_at, k.* "  # noqa: S608
            f"FROM share_codes AS c LEFT JOIN ({causes}) AS k ON true "
            "WHERE c.code_hash = %(code_hash)s"
        )
        self._fixed = {k: v for k, v in expanded.parameters.items() if k != "doc_id"}

    async def code_and_causes(
        self, code_hash: bytes
    ) -> tuple[CodeRow | None, list[repo.StatusCause]]:
        """The code stored under ``code_hash`` (None if none) and the status causes of the
        document it names (empty without a code)."""
        async with self._bind():
            conn = self._idle.pop() if self._idle else None
            if conn is None:
                conn = await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True)
            try:
                cur = await conn.execute(self._sql, dict(self._fixed, code_hash=code_hash))
                rows = await cur.fetchall()
            except BaseException:
                await conn.close()
                raise
            self._idle.append(conn)
        if not rows:
            return None, []
        first = rows[0]
        # a cause's "what" is never NULL: a NULL one is the LEFT JOIN's row of no causes
        causes = [_cause_of(r[4:]) for r in rows if r[7] is not None]
        causes.sort(key=lambda c: (c.at, c.what))
        return CodeRow(bytes(first[0]), str(first[1]), str(first[2]), first[3]), causes


_ADD_COUNTS: Final = (
    share_codes_t.update()
    .where(share_codes_t.c.code_hash == bindparam("h"))
    .values(
        verify_count=share_codes_t.c.verify_count + bindparam("n"),
        last_verified_at=case(
            (
                or_(
                    share_codes_t.c.last_verified_at.is_(None),
                    share_codes_t.c.last_verified_at < bindparam("at"),
                ),
                bindparam("at"),
            ),
            else_=share_codes_t.c.last_verified_at,
        ),
    )
)


def add_verification_counts(conn: Connection, counts: Mapping[bytes, tuple[int, str]]) -> None:
    """Add ``n`` verifications to each code (``code_hash -> (n, last_at)``); a code's
    ``last_verified_at`` only moves forward (another worker may have flushed a later one).
    One statement executed for many rows (psycopg pipelines them); rows are updated in the
    order of their hash, so two workers' flushes never deadlock."""
    if counts:
        rows = [{"h": h, "n": n, "at": at} for h, (n, at) in sorted(counts.items())]
        conn.execute(_ADD_COUNTS, rows)


__all__: Sequence[str] = ["AsyncVerifyReads", "CodeRow", "VerifyReads", "add_verification_counts"]
