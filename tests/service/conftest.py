"""Fixtures for ledger service tests: a fresh bank home per test on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from creditbank.config import Settings
from creditbank.service.bank import Bank, init_home
from creditbank.service.clock import FixedClock

PG_URL = os.environ.get("CREDITBANK_TEST_PG_URL")
T0 = datetime(2026, 1, 5, 9, 0, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", pytest.param("pg", marks=pytest.mark.pg)])
def svc_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    """Settings for a fresh home; the pg variant gets its own new database."""
    if request.param == "sqlite":
        yield Settings(home=tmp_path / "home", checkpoint_interval=3600)
        return
    if not PG_URL:
        pytest.skip("CREDITBANK_TEST_PG_URL is not set")
    name = "cb_" + uuid.uuid4().hex
    admin = sa.create_engine(
        PG_URL.replace("postgresql://", "postgresql+psycopg://", 1), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as c:
        c.exec_driver_sql(f'CREATE DATABASE "{name}"')
    base = PG_URL.rsplit("/", 1)[0]
    try:
        yield Settings(
            home=tmp_path / "home", database_url=f"{base}/{name}", checkpoint_interval=3600
        )
    finally:
        with admin.connect() as c:
            c.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(T0)


@pytest.fixture
def svc_bank(svc_settings: Settings, clock: FixedClock) -> Iterator[Bank]:
    bank = init_home(svc_settings, clock=clock, validate_records=False)
    try:
        yield bank
    finally:
        bank.close()
