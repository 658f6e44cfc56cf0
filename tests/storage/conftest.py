"""Fixtures for the storage tests: every test runs on SQLite, and on PostgreSQL when
``CREDITBANK_TEST_PG_URL`` names an admin URL (each test gets a fresh database there).

If the variable is set but the server cannot be reached, the PostgreSQL tests fail: a CI job
that asked for PostgreSQL must not pass by skipping it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from schema_template import with_sqlite_schema
from sqlalchemy import Engine, text
from sqlalchemy.engine import Connection

from creditbank.cli.main import main as cli_main
from creditbank.config import Settings
from creditbank.core.signing import Ed25519Signer
from creditbank.service.audit import AuditReport
from creditbank.service.bank import Bank, init_home

from ._workers import COLLEGE_ID, VALIDATE_RECORDS, college_signer, register_college

PG_ENV = "CREDITBANK_TEST_PG_URL"
LEDGER_TABLES = ("log_entries", "log_nodes", "log_checkpoints")


@pytest.fixture(params=["sqlite", pytest.param("pg", marks=pytest.mark.pg)])
def engine_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _admin_url() -> str:
    url = os.environ.get(PG_ENV, "")
    if not url:
        pytest.skip(f"PostgreSQL tests need {PG_ENV} (e.g. postgresql://postgres@127.0.0.1/test)")
    return url


def _psycopg_url(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


@pytest.fixture
def database_url(engine_kind: str, request: pytest.FixtureRequest) -> Iterator[str | None]:
    """None for SQLite (the home's file); a fresh, uniquely named PostgreSQL database holding
    the migrated schema only (a copy of the root conftest's ``pg_schema_template``)."""
    if engine_kind == "sqlite":
        yield None
        return
    from conftest import fresh_pg_database

    admin = _admin_url()
    template = request.getfixturevalue("pg_schema_template")
    with fresh_pg_database(admin, template=template) as url:
        yield url


@pytest.fixture
def make_settings(tmp_path: Path, database_url: str | None) -> Callable[..., Settings]:
    """Settings for a home in ``tmp_path`` on the engine under test."""

    def make(**overrides: Any) -> Settings:
        return Settings(home=tmp_path / "home", database_url=database_url, **overrides)

    return make


@dataclass
class Ledgered:
    """An initialised bank with one registered college (genesis at 0, college at 1)."""

    bank: Bank
    settings: Settings
    college: Ed25519Signer
    college_id: str = COLLEGE_ID


@pytest.fixture
def ledgered(make_settings: Callable[..., Settings]) -> Iterator[Ledgered]:
    settings = make_settings()
    with_sqlite_schema(settings)
    bank = init_home(settings, validate_records=VALIDATE_RECORDS)
    signer = college_signer()
    register_college(bank, signer)
    try:
        yield Ledgered(bank, settings, signer)
    finally:
        bank.close()


# -- raw SQL helpers --------------------------------------------------------------------------
def is_pg(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


def tamper(engine: Engine, sql: str, **params: Any) -> int:
    """Run ``sql`` with the append-only triggers out of the way; returns the rows affected.

    SQLite: the triggers are dropped (they stay dropped: the database is now tampered).
    PostgreSQL: ``session_replication_role = replica`` for this transaction only, which
    disables ordinary triggers without touching the schema.
    """
    with engine.begin() as conn:
        if is_pg(engine):
            conn.execute(text("SET LOCAL session_replication_role = replica"))
        else:
            _drop_sqlite_triggers(conn)
        return int(conn.execute(text(sql), params).rowcount)


def _drop_sqlite_triggers(conn: Connection) -> None:
    names = conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'trigger'")).scalars()
    for name in list(names):
        conn.execute(text(f'DROP TRIGGER "{name}"'))


def flip_byte(data: bytes, pos: int, mask: int = 0x01) -> bytes:
    """``data`` with one byte changed (XOR ``mask``) at ``pos``."""
    b = bytearray(data)
    b[pos] ^= mask
    return bytes(b)


def describe(report: AuditReport) -> str:
    """The problems of an audit, one per line (for assertion messages)."""
    return "\n".join(f"[{p.index}] {p.code}: {p.detail}" for p in report.problems) or "ok"


@dataclass
class CLIResult:
    code: int
    out: str
    err: str


@pytest.fixture
def cli_audit(capsys: pytest.CaptureFixture[str]) -> Callable[[Settings], CLIResult]:
    """Run ``creditbank --home H [--database-url U] audit`` in-process; its exit code and text."""

    def run(settings: Settings) -> CLIResult:
        argv = ["--home", str(settings.home)]
        if settings.database_url:
            argv += ["--database-url", settings.database_url]
        capsys.readouterr()
        code = cli_main([*argv, "audit"])
        got = capsys.readouterr()
        return CLIResult(code, got.out, got.err)

    return run
