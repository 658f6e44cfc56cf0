"""A migrated SQLite schema, made once per test process and copied into new homes.

``init_home`` on a home whose database already holds the schema at head runs no migration and
makes everything else (head row, keys, CA, genesis) as always, so a fixture that is about to
call ``init_home`` may call :func:`with_sqlite_schema` first to skip the migrations. (The
``[pg]`` databases get the same from ``conftest.pg_schema_template``.)
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

from sqlalchemy.engine import make_url

from creditbank.config import Settings
from creditbank.storage.engine import make_engine
from creditbank.storage.migrate import upgrade

_template: Path | None = None


def _sqlite_template() -> Path:
    global _template
    if _template is None:
        where = Path(tempfile.mkdtemp(prefix="cb-schema-"))
        atexit.register(shutil.rmtree, where, True)
        path = where / "schema.db"
        engine = make_engine(f"sqlite:///{path}", synchronous="NORMAL", pool=False)
        try:
            upgrade(engine)
        finally:
            engine.dispose()
        _template = path
    return _template


def with_sqlite_schema(settings: Settings) -> None:
    """Give a SQLite home that has no database yet the migrated schema (a copy of the
    template); PostgreSQL settings and existing databases are left alone."""
    if settings.database_url is not None:
        return
    target = Path(str(make_url(settings.db_url).database))
    if target.exists():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_sqlite_template(), target)
