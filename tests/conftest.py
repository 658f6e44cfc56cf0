"""Shared fixtures: a fresh bank per test on SQLite and (when configured) PostgreSQL.

Engines: every fixture built on ``database_url`` runs twice, ``[sqlite]`` (a file in the
test's home) and ``[pg]`` (marked ``pg``): a fresh database ``cb_<uuid hex>`` created through
the admin URL in ``CREDITBANK_TEST_PG_URL`` as a copy of a schema-only template (migrated once
per test process) and dropped ``WITH (FORCE)`` afterwards. Without
that variable the ``pg`` cases skip; with it and an unreachable server they FAIL.

Fixtures (see each docstring):

* ``engine_kind`` -> ``"sqlite" | "pg"``; ``database_url`` -> ``None`` (SQLite) or a PG URL
* ``clock`` -> :class:`FixedClock` at :data:`T0`
* ``settings_factory`` -> ``(**overrides) -> Settings`` for the test's home and engine
* ``settings`` -> ``settings_factory()``
* ``bank`` -> an initialised :class:`Bank` (genesis entry at index 0, checkpoint of size 1)
* ``register_institution`` -> ``(institution_id=..., seed=..., kind=...) -> Institution``
* ``institution`` -> ``register_institution()`` (``INST-1``, fixed key); its ``record(n)``
  and ``records(count)`` make signed ``record.posted`` entries
* ``api_app`` / ``api_client`` -> ``create_app(settings, bank=bank)`` / a ``TestClient``
  inside the app's lifespan
* ``auditor_token`` -> a fresh auditor bearer token for ``bank``

Every test also runs with the ``CREDITBANK_*`` settings variables removed from the
environment (``CREDITBANK_TEST_*`` stay), so a developer's shell cannot leak into a test.
"""

from __future__ import annotations

import base64
import hashlib
import os
import unicodedata
import uuid
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy.engine import make_url
from starlette.exceptions import StarletteDeprecationWarning

with warnings.catch_warnings():
    # starlette 1.x warns once, at import, that it prefers httpx2 to the pinned httpx
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

from fastapi import FastAPI
from schema_template import with_sqlite_schema

from creditbank.api.app import create_app
from creditbank.config import Settings
from creditbank.core.entries import build_entry, format_time, sign_entry
from creditbank.core.signing import Ed25519Signer, b64encode, entry_key_id
from creditbank.service.bank import Bank, init_home
from creditbank.service.clock import Clock, FixedClock
from creditbank.storage.engine import make_engine
from creditbank.storage.migrate import upgrade
from creditbank.storage.token_repo import issue_token

PG_ENV = "CREDITBANK_TEST_PG_URL"
#: the fixed instant of every FixedClock built here
T0 = datetime(2025, 3, 1, 8, 0, 0, tzinfo=UTC)
#: fixed Ed25519 seeds for test institutions (never use outside tests)
INSTITUTION_SEED = bytes(range(32))
OTHER_SEED = bytes(range(100, 132))
#: salt and name behind the name_commitment of generated records
TEST_SALT = bytes(16)
TEST_NAME = "王建国"


# -- environment ----------------------------------------------------------------------------
@pytest.fixture(autouse=True)
def _hermetic_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Remove CREDITBANK_* settings from the environment (keeps CREDITBANK_TEST_*)."""
    for name in list(os.environ):
        if name.startswith("CREDITBANK_") and not name.startswith("CREDITBANK_TEST_"):
            monkeypatch.delenv(name)


# -- engines --------------------------------------------------------------------------------
@pytest.fixture(params=["sqlite", pytest.param("pg", marks=pytest.mark.pg)])
def engine_kind(request: pytest.FixtureRequest) -> str:
    """``sqlite`` or ``pg`` (the latter skips unless CREDITBANK_TEST_PG_URL is set)."""
    return str(request.param)


def _psycopg_url(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


@contextmanager
def fresh_pg_database(admin_url: str, *, template: str | None = None) -> Iterator[str]:
    """Create ``cb_<uuid hex>`` through ``admin_url`` (a copy of the database ``template`` if
    given), yield its URL, drop it WITH (FORCE).

    Fails the test (never skips) if the server cannot be reached.
    """
    name = f"cb_{uuid.uuid4().hex}"
    copy = f' TEMPLATE "{template}"' if template else ""
    try:
        with psycopg.connect(_psycopg_url(admin_url), autocommit=True, connect_timeout=10) as c:
            c.execute(f'CREATE DATABASE "{name}"{copy}')
    except psycopg.Error as e:
        pytest.fail(f"{PG_ENV} is set but PostgreSQL is unreachable: {e}")
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(_psycopg_url(admin_url), autocommit=True, connect_timeout=10) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def pg_schema_template() -> Iterator[str]:
    """A PostgreSQL database holding the migrated schema and nothing else (no head row, no
    entries, no keys anywhere), made once per test process; every ``[pg]`` database is a copy
    (``CREATE DATABASE ... TEMPLATE``), so ``init_home`` finds the schema at head and runs
    no migration, and the rest of the home (keys, genesis) is made fresh as always."""
    admin = os.environ.get(PG_ENV, "")
    with fresh_pg_database(admin) as url:
        engine = make_engine(url, pool=False)
        try:
            upgrade(engine)
        finally:
            engine.dispose()
        yield str(make_url(url).database)


@contextmanager
def engine_database(
    engine: str, request: pytest.FixtureRequest, *, template: bool = True
) -> Iterator[str | None]:
    """The database of one engine case: None for ``sqlite`` (the home's own file); for ``pg``
    the URL of a fresh PostgreSQL database, a copy of :func:`pg_schema_template` (the migrated
    schema only) unless ``template`` is False, dropped afterwards. The ``pg`` case skips
    without ``CREDITBANK_TEST_PG_URL``."""
    if engine == "sqlite":
        yield None
        return
    admin = os.environ.get(PG_ENV, "")
    if not admin:
        pytest.skip(f"PostgreSQL tests need {PG_ENV} (e.g. postgresql://postgres@127.0.0.1/test)")
    copied = request.getfixturevalue("pg_schema_template") if template else None
    with fresh_pg_database(admin, template=copied) as url:
        yield url


@pytest.fixture
def database_url(engine_kind: str, request: pytest.FixtureRequest) -> Iterator[str | None]:
    """None for SQLite (the home's own file), or the URL of a fresh PostgreSQL database
    (holding the migrated schema only: see :func:`pg_schema_template`)."""
    with engine_database(engine_kind, request) as url:
        yield url


# -- settings and bank ----------------------------------------------------------------------
@pytest.fixture
def clock() -> FixedClock:
    """A clock fixed at :data:`T0`; ``clock.advance(seconds)`` moves it."""
    return FixedClock(T0)


@pytest.fixture
def settings_factory(tmp_path: Path, database_url: str | None) -> Callable[..., Settings]:
    """``make(**overrides) -> Settings`` for ``tmp_path/"home"`` on the engine under test.

    Defaults: ``checkpoint_interval=3600`` (nothing publishes behind a test's back; publish
    explicitly) and ``sqlite_synchronous="NORMAL"`` (fast, still WAL-durable enough).
    """

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "home": tmp_path / "home",
            "database_url": database_url,
            "checkpoint_interval": 3600.0,
            "sqlite_synchronous": "NORMAL",
        }
        values.update(overrides)
        return Settings(**values)

    return make


@pytest.fixture
def settings(settings_factory: Callable[..., Settings]) -> Settings:
    return settings_factory()


@pytest.fixture
def bank(settings: Settings, clock: FixedClock) -> Iterator[Bank]:
    """An initialised home on the engine under test: genesis at index 0, published (size 1)."""
    with_sqlite_schema(settings)
    b = init_home(settings, clock=clock, validate_records=False)
    try:
        yield b
    finally:
        b.close()


def module_bank(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    *,
    validate_records: bool = False,
) -> Iterator[Bank]:
    """For a module-scoped fixture parametrized ``sqlite``/``pg`` (``request.param``): an
    initialised bank like :func:`bank`'s, built once for the module. Only for tests that write
    nothing (refusal tables)."""
    home = tmp_path_factory.mktemp("module-bank") / "home"

    def build(url: str | None) -> Iterator[Bank]:
        settings = Settings(
            home=home, database_url=url, checkpoint_interval=3600.0, sqlite_synchronous="NORMAL"
        )
        with_sqlite_schema(settings)
        b = init_home(settings, clock=FixedClock(T0), validate_records=validate_records)
        try:
            yield b
        finally:
            b.close()

    with engine_database(request.param, request) as url:
        yield from build(url)


# -- institutions and records ---------------------------------------------------------------
def name_commitment(name: str = TEST_NAME, salt: bytes = TEST_SALT) -> str:
    """docs/formats/entries.md: base64(SHA-256(salt || UTF-8(NFC(name))))."""
    data = salt + unicodedata.normalize("NFC", name).encode("utf-8")
    return base64.b64encode(hashlib.sha256(data).digest()).decode("ascii")


@dataclass(frozen=True)
class Institution:
    """A registered institution with a fixed Ed25519 key; signs entries at the clock's time."""

    id: str
    signer: Ed25519Signer
    clock: Clock
    index: int  # where its institution.registered entry sits in the log

    @property
    def key_id(self) -> str:
        return entry_key_id(self.signer.public_bytes)

    def entry(self, type_: str, body: Mapping[str, Any], *, at: datetime | None = None) -> bytes:
        """Sign any entry as this institution."""
        when = at if at is not None else self.clock.now()
        return sign_entry(build_entry(type_, self.id, self.key_id, when, body), self.signer)

    def record_body(self, n: int = 0, **fields: Any) -> dict[str, Any]:
        """A ``record.posted`` body (docs/formats/entries.md); ``fields`` override any member."""
        body: dict[str, Any] = {
            "record_id": f"R-{n:05d}",
            "dedup_key": f"course:{self.id}:C-{n:05d}:2025S",
            "kind": "academic_credit",
            "learner": f"L{n % 7:06d}",
            "achieved_on": "2025-01-15",
            "name_commitment": name_commitment(),
            "payload": {
                "course_id": f"C-{n:05d}",
                "course_name_zh": "物流管理基础",
                "credits": 400,
                "grade": 82,
                "term": "2025S",
            },
        }
        body.update(fields)
        return body

    def record(self, n: int = 0, **fields: Any) -> bytes:
        """A signed ``record.posted`` entry, distinct for each ``n``."""
        return self.entry("record.posted", self.record_body(n, **fields))

    def records(self, count: int, start: int = 0) -> list[bytes]:
        return [self.record(n) for n in range(start, start + count)]


def register_institution_in(
    bank: Bank,
    institution_id: str = "INST-1",
    *,
    seed: bytes = INSTITUTION_SEED,
    kind: str = "college",
    publish: bool = True,
) -> Institution:
    """Append ``institution_id``'s bank-signed ``institution.registered`` to ``bank``."""
    signer = Ed25519Signer.from_seed(seed)
    raw = bank.bank_entry(
        "institution.registered",
        {
            "institution_id": institution_id,
            "kind": kind,
            "name_zh": "测试学院",
            "name_en": f"Test Institution {institution_id}",
            "keys": [
                {
                    "key_id": entry_key_id(signer.public_bytes),
                    "public_key": b64encode(signer.public_bytes),
                }
            ],
        },
    )
    (out,) = bank.ledger.append([raw], publish=publish)
    return Institution(institution_id, signer, bank.clock, out.index)


@pytest.fixture
def register_institution(bank: Bank) -> Callable[..., Institution]:
    """``register(institution_id="INST-1", *, seed=INSTITUTION_SEED, kind="college",
    publish=True) -> Institution``: append its bank-signed ``institution.registered``."""

    def register(institution_id: str = "INST-1", **kw: Any) -> Institution:
        return register_institution_in(bank, institution_id, **kw)

    return register


@pytest.fixture
def institution(register_institution: Callable[..., Institution]) -> Institution:
    """``INST-1`` with the fixed key, registered at index 1 (checkpoint of size 2)."""
    return register_institution()


# -- API ------------------------------------------------------------------------------------
@pytest.fixture
def api_app(bank: Bank) -> FastAPI:
    """The API over ``bank`` (the bank stays open; the fixture closes it)."""
    return create_app(bank.settings, bank=bank)


@pytest.fixture
def api_client(api_app: FastAPI) -> Iterator[TestClient]:
    """A TestClient inside the app's lifespan (publisher and group committer running)."""
    with TestClient(api_app) as client:
        yield client


@pytest.fixture
def auditor_token(bank: Bank) -> str:
    token, _ = issue_token(bank.engine, role="auditor", now=format_time(bank.clock.now()))
    return token
