"""Run the Alembic migrations that ship inside the package."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from creditbank.errors import StorageError

MIGRATIONS = Path(__file__).parent / "migrations"


def _config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


@cache
def known_revisions() -> tuple[str, ...]:
    """Every revision this code ships, oldest first (the last is the head)."""
    script = ScriptDirectory.from_config(_config())
    return tuple(reversed([r.revision for r in script.walk_revisions()]))


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (None: no migration ever ran).

    Raises:
        StorageError: if the database cannot be reached.
    """
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    except SQLAlchemyError as e:
        raise StorageError(f"cannot reach the database: {_first_line(e)}") from e


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the database schema up to ``revision``.

    Raises:
        StorageError: if the database cannot be reached or migrated.
    """
    cfg = _config()
    try:
        with engine.connect() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
            conn.commit()
    except SQLAlchemyError as e:
        raise StorageError(f"cannot prepare the database: {_first_line(e)}") from e


def is_initialised(engine: Engine) -> bool:
    """True when the ledger tables exist.

    Raises:
        StorageError: if the database cannot be reached.
    """
    try:
        return "log_head" in inspect(engine).get_table_names()
    except SQLAlchemyError as e:
        raise StorageError(f"cannot reach the database: {_first_line(e)}") from e


def _first_line(e: SQLAlchemyError) -> str:
    """The driver's message without SQLAlchemy's multi-line decoration."""
    cause = e.orig if isinstance(e, DBAPIError) and e.orig is not None else e
    text = str(cause).strip().splitlines()
    return text[0] if text else type(e).__name__
