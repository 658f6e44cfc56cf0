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

from sqlalchemy import Engine, case, or_
from sqlalchemy.engine import Connection

from creditbank.storage import documents_repo as repo
from creditbank.storage.fast_reads import FastReads
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
        # the columns: doc_id, status_list, status_index, what, at, reason, entry_idx, detail
        causes = [
            repo.StatusCause(
                str(r[3]),
                str(r[4]),
                str(r[5]),
                None if r[6] is None else int(r[6]),
                None if r[7] is None else str(r[7]),
            )
            for r in rows
        ]
        causes.sort(key=lambda c: (c.at, c.what))
        return causes


def add_verification_counts(conn: Connection, counts: Mapping[bytes, tuple[int, str]]) -> None:
    """Add ``n`` verifications to each code (``code_hash -> (n, last_at)``); a code's
    ``last_verified_at`` only moves forward (another worker may have flushed a later one)."""
    s = share_codes_t
    for code_hash, (n, at) in counts.items():
        conn.execute(
            s.update()
            .where(s.c.code_hash == code_hash)
            .values(
                verify_count=s.c.verify_count + n,
                last_verified_at=case(
                    (or_(s.c.last_verified_at.is_(None), s.c.last_verified_at < at), at),
                    else_=s.c.last_verified_at,
                ),
            )
        )


__all__: Sequence[str] = ["CodeRow", "VerifyReads", "add_verification_counts"]
