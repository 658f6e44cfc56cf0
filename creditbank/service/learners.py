"""Learners: resolve an identity document and name to the bank's learner id (one or many),
read a learner's record chains, and erase a learner's personal data.

A learner id (``LRN-…``) and a name-commitment salt are all that reaches the log; names,
salts and identity keys are kept in ordinary tables (:mod:`creditbank.service.records`), so
erasing a learner leaves every entry and proof valid.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from creditbank.errors import InvalidInputError, NotFoundError, StorageError, TooLargeError
from creditbank.service.bank import Bank
from creditbank.service.records import (
    ChainState,
    ResolvedLearner,
    erase_learner,
    learner_chains,
    now_text,
    resolve_learner,
)
from creditbank.storage import documents_repo, token_repo
from creditbank.storage import records_repo as rr
from creditbank.storage.engine import IMMEDIATE

_T = TypeVar("_T")

LEARNER_ID_RE: Final = re.compile(r"LRN-[0-9A-Z]{16,32}")
#: largest body of the small JSON requests (learner resolution)
MAX_SMALL_BODY: Final = 16 * 1024
#: most learners in one ``POST /api/v1/learners/resolve-batch`` request, and its largest body
MAX_RESOLVE_BATCH: Final = 1000
MAX_RESOLVE_BATCH_BYTES: Final = 1024 * 1024


def existing_learner(bank: Bank, learner_id: str) -> Any:
    """The stored learner row (erased or not).

    Raises:
        InvalidInputError: ``learner.id``.
        NotFoundError: ``learner.unknown``.
        StorageError: if the database is unavailable.
    """
    if not LEARNER_ID_RE.fullmatch(learner_id):
        raise InvalidInputError("a learner id is LRN- and 16-32 characters", code="learner.id")
    try:
        with bank.engine.connect() as conn:
            row = rr.get_learner(conn, learner_id)
    except SQLAlchemyError as e:
        raise StorageError(f"cannot read learners: {type(e).__name__}") from e
    if row is None:
        raise NotFoundError(f"unknown learner {learner_id}", code="learner.unknown")
    return row


@contextmanager
def _write_transaction(bank: Bank) -> Iterator[Connection]:
    """A transaction that reads then writes: on SQLite it takes the write lock when it begins
    (waiting for a ledger batch to finish) instead of failing to upgrade a stale read."""
    with bank.engine.connect().execution_options(**{IMMEDIATE: True}) as conn, conn.begin():
        yield conn


def resolve(
    bank: Bank,
    *,
    name: str,
    doc_type: str,
    number: str,
    nationality: str | None = None,
) -> ResolvedLearner:
    """Map an identity document and name to the learner id and salt (creating the learner).

    Raises:
        InvalidInputError: ``identity.*`` for a malformed document or name.
        StorageError: if the database is unavailable.
    """
    pepper = bank.pepper
    return _resolving(
        bank,
        "resolve learner",
        lambda conn: resolve_learner(
            conn,
            pepper=pepper,
            now=now_text(bank.clock),
            name=name,
            doc_type=doc_type,
            number=number,
            nationality=nationality,
        ),
    )


def _resolving(bank: Bank, what: str, work: Callable[[Connection], _T]) -> _T:
    """``work`` in one write transaction, run once more when it loses the race to a concurrent
    first resolution of the same person (a unique key taken meanwhile).

    Raises:
        StorageError: ``cannot {what}: …`` if the database is unavailable or the race is lost
            twice.
    """
    for attempt in range(2):
        try:
            with _write_transaction(bank) as conn:
                return work(conn)
        except IntegrityError as e:  # a concurrent first resolution of the same person
            if attempt:
                raise StorageError(f"cannot {what}: concurrent update") from e
        except SQLAlchemyError as e:
            raise StorageError(f"cannot {what}: {type(e).__name__}") from e
    raise AssertionError("unreachable")  # pragma: no cover


@dataclass(frozen=True, slots=True)
class LearnerQuery:
    """One identity document and name of a batch resolution."""

    name: str
    doc_type: str
    number: str
    nationality: str | None = None


def resolve_batch(
    bank: Bank, queries: Sequence[LearnerQuery]
) -> list[ResolvedLearner | InvalidInputError]:
    """Resolve many learners in one write transaction (IMMEDIATE on SQLite, as :func:`resolve`).

    Each item is resolved as :func:`resolve` would; an item refused with ``identity.*`` is
    answered with its error (nothing is created for it) and does not fail the others. The same
    person twice in one batch resolves to the same learner (created once).

    Raises:
        TooLargeError: ``input.too_large`` over :data:`MAX_RESOLVE_BATCH` items.
        StorageError: if the database is unavailable.
    """
    if len(queries) > MAX_RESOLVE_BATCH:
        raise TooLargeError(f"{len(queries)} learners in one request; at most {MAX_RESOLVE_BATCH}")
    pepper = bank.pepper

    def resolve_all(conn: Connection) -> list[ResolvedLearner | InvalidInputError]:
        now = now_text(bank.clock)
        out: list[ResolvedLearner | InvalidInputError] = []
        for q in queries:
            try:
                out.append(
                    resolve_learner(
                        conn,
                        pepper=pepper,
                        now=now,
                        name=q.name,
                        doc_type=q.doc_type,
                        number=q.number,
                        nationality=q.nationality,
                    )
                )
            except InvalidInputError as e:
                if not e.code.startswith("identity."):
                    raise
                out.append(e)  # refused before anything was written for it
        return out

    return _resolving(bank, "resolve learners", resolve_all)


def erase(bank: Bank, learner_id: str) -> int:
    """Erase a learner's personal data (names, salt, identity key, the stored bytes of the
    learner's documents, which disclose name and salt) and revoke the learner's tokens. The
    log and every proof stay valid; the documents' status bits are set. Returns the number
    of tokens revoked.

    Raises:
        InvalidInputError: ``learner.id``.
        NotFoundError: ``learner.unknown``.
        StorageError: if the database is unavailable.
    """
    existing_learner(bank, learner_id)
    now = now_text(bank.clock)
    try:
        with _write_transaction(bank) as conn:
            erase_learner(conn, learner_id, now)
            documents_repo.erase_files_of_learner(conn, learner_id)  # they hold name and salt
            return token_repo.revoke_subject_tokens(
                conn, role="learner", subject=learner_id, now=now
            )
    except SQLAlchemyError as e:
        raise StorageError(f"cannot erase learner: {type(e).__name__}") from e


def learner_records(bank: Bank, learner_id: str) -> list[ChainState]:
    """Every record chain of a learner with its current state (see :func:`learner_chains`).

    Raises:
        InvalidInputError: ``learner.id``.
        NotFoundError: ``learner.unknown``.
        StorageError: if the database is unavailable.
    """
    existing_learner(bank, learner_id)
    try:
        with bank.engine.connect() as conn:
            return learner_chains(conn, learner_id)
    except SQLAlchemyError as e:
        raise StorageError(f"cannot read records: {type(e).__name__}") from e


__all__ = [
    "LEARNER_ID_RE",
    "MAX_RESOLVE_BATCH",
    "MAX_RESOLVE_BATCH_BYTES",
    "MAX_SMALL_BODY",
    "LearnerQuery",
    "erase",
    "existing_learner",
    "learner_records",
    "resolve",
    "resolve_batch",
]
