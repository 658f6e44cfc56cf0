"""Learner resolution's write transaction (one for a single learner and for a batch): a lost
race with a concurrent first resolution of the same person (a unique key taken meanwhile) is
run once more in a fresh transaction; a second loss, or any other database failure, is a
``StorageError`` naming what could not be done. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError, OperationalError

from creditbank.errors import InvalidInputError, StorageError
from creditbank.service import learners
from creditbank.service.bank import Bank


def _lost_race() -> IntegrityError:
    return IntegrityError("INSERT INTO learners ...", {}, Exception("duplicate key"))


def test_a_lost_race_is_run_again_in_a_fresh_transaction(svc_bank: Bank) -> None:
    seen: list[bool] = []

    def work(conn: Connection) -> int:
        seen.append(conn.in_transaction())
        if len(seen) == 1:
            raise _lost_race()
        return int(conn.execute(text("SELECT 41 + 1")).scalar_one())

    assert learners._resolving(svc_bank, "resolve learner", work) == 42
    assert seen == [True, True]


def test_a_second_lost_race_is_a_storage_error(svc_bank: Bank) -> None:
    calls: list[int] = []

    def work(conn: Connection) -> int:
        calls.append(1)
        raise _lost_race()

    with pytest.raises(StorageError) as e:
        learners._resolving(svc_bank, "resolve learners", work)
    assert e.value.message == "cannot resolve learners: concurrent update"
    assert len(calls) == 2


def test_another_database_failure_is_not_retried(svc_bank: Bank) -> None:
    calls: list[int] = []

    def work(conn: Connection) -> int:
        calls.append(1)
        raise OperationalError("SELECT 1", {}, Exception("gone"))

    with pytest.raises(StorageError) as e:
        learners._resolving(svc_bank, "resolve learner", work)
    assert e.value.message == "cannot resolve learner: OperationalError"
    assert len(calls) == 1


def test_resolution_refusals_pass_through_unchanged(svc_bank: Bank) -> None:
    """An ``identity.*`` refusal of a single resolution is not a database failure."""
    with pytest.raises(InvalidInputError) as e:
        learners.resolve(svc_bank, name="", doc_type="cn_resident_id", number="x")
    assert e.value.code.startswith("identity.")
