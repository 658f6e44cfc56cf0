"""The database goes away under a running server: every route answers 503 problem+json
(``storage.unavailable``, ``Retry-After``), never a 500 or a traceback, and nothing leaks the
database's name; the CLI says so in one line and exits 1. SQLite and PostgreSQL.

Outages are real: on PostgreSQL the database is dropped with its connections terminated; on
SQLite the database file is moved away and a directory takes its place."""

from __future__ import annotations

import shutil
from pathlib import Path

import psycopg
import pytest
from records_fixtures import (
    RECORDS,
    World,
    world_fixture,  # noqa: F401 - the ``world`` fixture
)

from creditbank.cli.main import main as cli_main
from creditbank.config import Settings

LOG = "/api/v1/log"


def _take_database_away(world: World, settings: Settings) -> str:
    """Make the database unreachable; return a string that must not leak to clients."""
    url = world.bank.engine.url
    if url.get_backend_name() == "postgresql":
        name = str(url.database)
        admin = url.set(database="postgres").render_as_string(hide_password=False)
        admin = admin.replace("postgresql+psycopg://", "postgresql://", 1)
        with psycopg.connect(admin, autocommit=True, connect_timeout=10) as c:
            c.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        return name
    db = Path(str(url.database))
    world.bank.engine.dispose()  # pooled connections would still read the moved file
    for suffix in ("", "-wal", "-shm"):
        f = Path(f"{db}{suffix}")
        if f.exists():
            shutil.move(f, f"{f}.away")
    db.mkdir()
    return str(db)


def _assert_unavailable(resp_status: int, body: dict[str, object], headers: dict[str, str]) -> None:
    assert resp_status == 503, body
    assert body["code"] == "storage.unavailable"
    assert body["type"] == "urn:creditbank:problem:storage.unavailable"
    assert headers["content-type"].startswith("application/problem+json")
    assert int(headers["retry-after"]) > 0


def test_routes_answer_503_when_the_database_is_gone(world: World, settings: Settings) -> None:
    a = world["INS-A"]
    lrn = world.learner()
    raw = a.record(1, lrn)
    ok = world.client.get(f"{LOG}/checkpoint")
    assert ok.status_code == 200
    secret = _take_database_away(world, settings)

    requests = [
        ("GET", "/healthz", {}),
        ("GET", f"{LOG}/checkpoint", {}),
        ("GET", f"{LOG}/proofs/inclusion", {"params": {"index": 0}}),
        ("GET", f"{LOG}/leaf-hashes", {"params": {"start": 0, "end": 1}}),
        ("GET", "/api/v1/rules", {}),
        ("POST", RECORDS, {"json": {"entries": [raw.decode()]}, "headers": a.auth}),
        ("GET", f"/api/v1/institutions/{a.id}/records", {"headers": a.auth}),
    ]
    for method, path, kw in requests:
        resp = world.client.request(method, path, **kw)  # type: ignore[arg-type]
        body = resp.json()
        _assert_unavailable(resp.status_code, body, dict(resp.headers))
        assert secret not in resp.text, path
        assert "Traceback" not in resp.text
    # what needs no database still works: the verifier key is held in memory
    assert world.client.get(f"{LOG}/key").status_code == 200


def test_cli_says_the_database_is_unavailable_in_one_line(
    world: World, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    _take_database_away(world, settings)
    env_home = ["--home", str(settings.home)]
    if settings.database_url:
        env_home += ["--database-url", settings.database_url]
    code = cli_main([*env_home, "log", "checkpoint"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert len(err) == 1, err
    assert err[0].startswith("error: ")
    assert err[0].endswith("[storage.unavailable]"), err
