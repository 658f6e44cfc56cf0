"""Engine construction for SQLite (embedded default) and PostgreSQL."""

from __future__ import annotations

import sqlite3
from typing import Any, Final

import psycopg
from sqlalchemy import Engine, create_engine, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection
from sqlalchemy.pool import NullPool

from creditbank.errors import ConfigurationError

#: Errors that mean "the database cannot be reached, is gone or stays busy" rather than a bug in
#: a statement: connection refused or dropped, server shut down, database dropped, the SQLite
#: file unreadable or locked past the busy timeout, the pool exhausted. Raised through
#: SQLAlchemy or, on the hot paths that use the driver cursor directly, by the drivers.
UNAVAILABLE: Final[tuple[type[Exception], ...]] = (
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    sa_exc.TimeoutError,
    sqlite3.OperationalError,
    psycopg.OperationalError,
    psycopg.InterfaceError,
)

#: execution option: take the SQLite write lock when the transaction begins
IMMEDIATE = "creditbank_immediate"


def is_sqlite(engine: Engine | Connection) -> bool:
    """True when the engine or connection talks to SQLite."""
    return engine.dialect.name == "sqlite"


def make_engine(url: str, *, synchronous: str = "FULL", pool: bool = True) -> Engine:
    """Create an engine; SQLite gets WAL, a busy timeout and explicit transaction control.

    Raises:
        ConfigurationError: if the URL names an unsupported database.
    """
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    if url.startswith("sqlite"):
        kwargs: dict[str, Any] = {"connect_args": {"timeout": 60, "check_same_thread": False}}
        if not pool:
            kwargs["poolclass"] = NullPool
        engine = create_engine(url, **kwargs)
        sync = synchronous.upper()
        if sync not in {"OFF", "NORMAL", "FULL", "EXTRA"}:
            raise ConfigurationError(f"bad SQLite synchronous mode {synchronous!r}")

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA synchronous={sync}")
            cur.execute("PRAGMA busy_timeout=60000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            if conn.get_execution_options().get(IMMEDIATE):
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            else:
                conn.exec_driver_sql("BEGIN")

        return engine
    if url.startswith("postgresql+psycopg://"):
        kwargs = {"pool_pre_ping": True}
        if not pool:
            kwargs["poolclass"] = NullPool
        return create_engine(url, **kwargs)
    raise ConfigurationError(f"unsupported database URL {url.split(':', 1)[0]!r}")
