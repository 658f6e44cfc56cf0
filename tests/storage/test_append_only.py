# ruff: noqa: S608 - raw SQL is the point here; table and column names are our constants
"""The database itself refuses to change or remove ledger rows (docs/trust-model.md).

Raw SQL through the bank's own engine, as an operator with database access would send it.
Each refused statement must leave the table exactly as it was; the head row (the sequence)
stays writable.
"""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from creditbank.core import merkle

from .conftest import LEDGER_TABLES, Ledgered, is_pg

#: (table, key column, a value of that key present after init + one registration)
ROWS = {
    "log_entries": ("idx", 1),
    "log_nodes": ("id", merkle.node_key(1, 0)),
    "log_checkpoints": ("size", 2),
}
#: a column of each table that a forger would want to rewrite
VALUE_COLUMN = {"log_entries": "data", "log_nodes": "hash", "log_checkpoints": "note"}


def _snapshot(engine: Engine, table: str) -> list[tuple[object, ...]]:
    key = ROWS[table][0]
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(f"SELECT * FROM {table} ORDER BY {key}"))]


def _refused(engine: Engine, sql: str, **params: object) -> None:
    with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
        conn.execute(text(sql), params)


@pytest.mark.parametrize("table", LEDGER_TABLES)
def test_update_is_refused(ledgered: Ledgered, table: str) -> None:
    engine = ledgered.bank.engine
    key, value = ROWS[table]
    before = _snapshot(engine, table)
    assert any(row[0] == value for row in before), "the row to attack exists"
    col = VALUE_COLUMN[table]
    _refused(engine, f"UPDATE {table} SET {col} = {col} WHERE {key} = :v", v=value)  # a no-op too
    _refused(engine, f"UPDATE {table} SET {key} = {key} + 1000 WHERE {key} = :v", v=value)
    _refused(engine, f"UPDATE {table} SET {col} = {col}")  # every row
    assert _snapshot(engine, table) == before


@pytest.mark.parametrize("table", LEDGER_TABLES)
def test_delete_is_refused(ledgered: Ledgered, table: str) -> None:
    engine = ledgered.bank.engine
    key, value = ROWS[table]
    before = _snapshot(engine, table)
    _refused(engine, f"DELETE FROM {table} WHERE {key} = :v", v=value)
    # without WHERE: SQLite's truncate optimisation must not skip the trigger
    _refused(engine, f"DELETE FROM {table}")
    assert _snapshot(engine, table) == before


@pytest.mark.parametrize("table", LEDGER_TABLES)
def test_truncate_is_refused_on_postgresql(ledgered: Ledgered, table: str) -> None:
    engine = ledgered.bank.engine
    if not is_pg(engine):
        pytest.skip("TRUNCATE exists only on PostgreSQL (SQLite's is DELETE without WHERE)")
    before = _snapshot(engine, table)
    _refused(engine, f"TRUNCATE {table}")
    _refused(engine, f"TRUNCATE {table} CASCADE")
    assert _snapshot(engine, table) == before


@pytest.mark.parametrize("table", LEDGER_TABLES)
def test_overwriting_insert_is_refused(ledgered: Ledgered, table: str) -> None:
    """An insert that would replace an existing row is a delete in disguise.

    SQLite's ``INSERT OR REPLACE`` deletes the conflicting row without firing DELETE
    triggers (unless recursive triggers are on); PostgreSQL's upsert fires UPDATE triggers.
    """
    engine = ledgered.bank.engine
    key, value = ROWS[table]
    before = _snapshot(engine, table)
    row = next(r for r in before if r[0] == value)
    with engine.connect() as conn:
        cols = list(conn.execute(text(f"SELECT * FROM {table} LIMIT 0")).keys())
    params = dict(zip(cols, row, strict=True))
    vcol = VALUE_COLUMN[table]
    params[vcol] = b"forged" if isinstance(params[vcol], bytes) else "forged"
    names = ", ".join(cols)
    values = ", ".join(f":{c}" for c in cols)
    if is_pg(engine):
        sql = (
            f"INSERT INTO {table} ({names}) VALUES ({values}) "
            f"ON CONFLICT ({key}) DO UPDATE SET {vcol} = EXCLUDED.{vcol}"
        )
    else:
        sql = f"INSERT OR REPLACE INTO {table} ({names}) VALUES ({values})"
    with pytest.raises(DBAPIError), engine.begin() as conn:
        conn.execute(text(sql), params)
    assert _snapshot(engine, table) == before


def test_head_row_and_inserts_stay_writable(ledgered: Ledgered) -> None:
    """The triggers do not get in the way of the ledger's own writes."""
    bank = ledgered.bank
    size = bank.ledger.head().size
    raw = bank.bank_entry(
        "institution.registered",
        {
            "institution_id": "COLLEGE-2",
            "kind": "college",
            "name_zh": "第二学院",
            "name_en": "Second College",
            "keys": [],
        },
    )
    (out,) = bank.ledger.append([raw], publish=True)
    assert out.index == size
    assert bank.ledger.head().size == size + 1
    assert bank.ledger.latest_checkpoint().size == size + 1
