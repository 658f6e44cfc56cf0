"""The log endpoints (README.md) on SQLite and PostgreSQL, and the problem+json contract.

Every proof the API returns is verified here with ``creditbank.core.merkle`` against roots
that are themselves checked against the signed checkpoint, verified with ``/log/key``.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from fastapi import FastAPI
from starlette.testclient import TestClient

from creditbank.api.app import RequestLimits, create_app
from creditbank.api.deps import ANONYMOUS, Principal
from creditbank.api.errors import install_error_handlers, status_for
from creditbank.config import Settings
from creditbank.core import merkle
from creditbank.core.checkpoint import verify_checkpoint
from creditbank.core.entries import ENTRY_TYPES, MEDIA_TYPE, PRIVATE_TYPES
from creditbank.core.signing import parse_verifier_key
from creditbank.errors import (
    AuthError,
    BatchRejected,
    ConfigurationError,
    ConflictError,
    ConversionRejected,
    CreditBankError,
    ForbiddenError,
    InvalidInputError,
    NotFoundError,
    RootMismatchError,
    RuleError,
    SignatureError,
    StorageError,
    TooLargeError,
    UnsupportedVersionError,
    VerificationError,
)
from creditbank.service.bank import Bank

if TYPE_CHECKING:  # tests/conftest.py; fixtures hand the instances over
    from conftest import Institution

PROBLEM = "application/problem+json"
LOG = "/api/v1/log"
#: the published sizes of the ``log`` fixture, and its unpublished head
PUBLISHED = (1, 2, 7, 13)
HEAD = 15


def b64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


def assert_problem(resp: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    """The response is RFC 9457 problem+json with our members and the expected status/code."""
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == PROBLEM
    body: dict[str, Any] = resp.json()
    assert {"type", "title", "status", "detail", "code"} <= body.keys()
    assert body["status"] == status
    assert body["type"] == f"urn:creditbank:problem:{body['code']}"
    assert isinstance(body["detail"], str)
    assert body["detail"]
    if code is not None:
        assert body["code"] == code, body
    return body


@dataclass
class Log:
    bank: Bank
    client: TestClient
    institution: Institution
    private: list[int]  # indexes of record entries
    token: str


@pytest.fixture
def log(bank: Bank, institution: Institution, api_client: TestClient, auditor_token: str) -> Log:
    """genesis(0) + institution(1) published at 1, 2; records 2..6 -> 7; 7..12 -> 13; 13..14
    appended but unpublished."""
    _fill(bank, institution)
    return Log(bank, api_client, institution, list(range(2, HEAD)), auditor_token)


def _fill(bank: Bank, institution: Institution) -> None:
    bank.ledger.append(institution.records(5), publish=True)
    bank.ledger.append(institution.records(6, start=5), publish=True)
    bank.ledger.append(institution.records(2, start=11), publish=False)
    assert bank.ledger.head().size == HEAD
    assert bank.ledger.latest_checkpoint().size == PUBLISHED[-1]


@pytest.fixture(scope="module", params=["sqlite", pytest.param("pg", marks=pytest.mark.pg)])
def shared_log(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Log]:
    """:func:`log` built once per module and engine, for the bad-parameter tables: tests that
    only read (every answer here is a refusal)."""
    from conftest import T0, engine_database, register_institution_in
    from schema_template import with_sqlite_schema

    from creditbank.core.entries import format_time
    from creditbank.service.bank import init_home
    from creditbank.service.clock import FixedClock
    from creditbank.storage.token_repo import issue_token

    home = tmp_path_factory.mktemp("shared-log") / "home"

    def build(url: str | None) -> Iterator[Log]:
        settings = Settings(
            home=home, database_url=url, checkpoint_interval=3600.0, sqlite_synchronous="NORMAL"
        )
        with_sqlite_schema(settings)
        bank = init_home(settings, clock=FixedClock(T0), validate_records=False)
        try:
            institution = register_institution_in(bank)
            _fill(bank, institution)
            token, _ = issue_token(bank.engine, role="auditor", now=format_time(T0))
            with TestClient(create_app(settings, bank=bank)) as client:
                yield Log(bank, client, institution, list(range(2, HEAD)), token)
        finally:
            bank.close()

    with engine_database(request.param, request) as url:
        yield from build(url)


def signed_tree(log: Log) -> tuple[int, bytes]:
    """The latest checkpoint fetched over HTTP and verified with the key fetched over HTTP."""
    key = parse_verifier_key(log.client.get(f"{LOG}/key").text)
    cp = verify_checkpoint(log.client.get(f"{LOG}/checkpoint").text, key)
    return cp.size, cp.root


def all_leaf_hashes(log: Log, end: int) -> list[bytes]:
    resp = log.client.get(f"{LOG}/leaf-hashes", params={"start": 0, "end": end})
    assert resp.status_code == 200, resp.text
    return [b64(h) for h in resp.json()["leaf_hashes"]]


# -- checkpoint and key -----------------------------------------------------------------------
def test_checkpoint_is_the_latest_signed_note(log: Log) -> None:
    resp = log.client.get(f"{LOG}/checkpoint")
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "text/plain; charset=utf-8"
    assert resp.text == log.bank.ledger.latest_checkpoint().note
    size, root = signed_tree(log)
    assert size == PUBLISHED[-1]
    assert merkle.root_from_leaf_hashes(all_leaf_hashes(log, size)) == root


def test_key_is_the_c2sp_verifier_key(log: Log) -> None:
    resp = log.client.get(f"{LOG}/key")
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "text/plain; charset=utf-8"
    assert resp.text == log.bank.verifier_key
    key = parse_verifier_key(resp.text)
    assert key.name == log.bank.settings.origin


# -- leaf hashes ------------------------------------------------------------------------------
def test_leaf_hashes_rebuild_every_published_root(log: Log) -> None:
    hashes = all_leaf_hashes(log, PUBLISHED[-1])
    for i, h in enumerate(hashes):
        assert h == merkle.leaf_hash(bytes(log.bank.ledger.entry(i).data))
    part = log.client.get(f"{LOG}/leaf-hashes", params={"start": 3, "end": 9}).json()
    assert part["start"] == 3
    assert part["end"] == 9
    assert [b64(h) for h in part["leaf_hashes"]] == hashes[3:9]
    _, latest_root = signed_tree(log)
    for size in PUBLISHED:  # each published root is a prefix of the signed latest
        root = merkle.root_from_leaf_hashes(hashes[:size])
        if size < PUBLISHED[-1]:
            proof = [
                b64(h)
                for h in log.client.get(f"{LOG}/proofs/consistency", params={"first": size}).json()[
                    "path"
                ]
            ]
            merkle.verify_consistency(size, PUBLISHED[-1], root, latest_root, proof)


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("start=0&end=14", "log.unpublished_size"),  # 14 is appended but not published
        ("start=0&end=15", "log.unpublished_size"),
        ("start=5&end=5", "log.bad_range"),
        ("start=6&end=5", "log.bad_range"),
        ("start=0&end=10001", "log.bad_range"),
        ("start=-1&end=3", "request.invalid"),
        ("start=a&end=3", "request.invalid"),
        ("start=0", "request.invalid"),
        ("start=0&end=99999999999999999999999999", "request.invalid"),
        ("start=0&end=1.5", "request.invalid"),
    ],
)
def test_leaf_hashes_bad_ranges(shared_log: Log, query: str, code: str) -> None:
    log = shared_log
    assert_problem(log.client.get(f"{LOG}/leaf-hashes?{query}"), 400, code)


# -- entries ----------------------------------------------------------------------------------
def test_public_entries_are_the_exact_stored_bytes(log: Log) -> None:
    for index in (0, 1):  # the bank's genesis and the institution registration
        resp = log.client.get(f"{LOG}/entries/{index}")
        assert resp.status_code == 200
        assert resp.headers["content-type"] == MEDIA_TYPE
        assert resp.content == bytes(log.bank.ledger.entry(index).data)
        assert "public" in resp.headers["cache-control"]


def test_private_entries_need_an_auditor_token(log: Log) -> None:
    index = log.private[0]
    body = assert_problem(log.client.get(f"{LOG}/entries/{index}"), 403, "auth.forbidden")
    assert "record" not in body["detail"]  # the type of a private entry is not disclosed
    auth = {"Authorization": f"Bearer {log.token}"}
    for index in log.private:
        resp = log.client.get(f"{LOG}/entries/{index}", headers=auth)
        assert resp.status_code == 200, resp.text
        assert resp.headers["content-type"] == MEDIA_TYPE
        assert resp.headers["cache-control"] == "private, no-store"
        assert merkle.leaf_hash(resp.content) == merkle.leaf_hash(
            bytes(log.bank.ledger.entry(index).data)
        )
    # an auditor reads public entries too
    assert log.client.get(f"{LOG}/entries/0", headers=auth).status_code == 200


@pytest.mark.parametrize(
    ("header", "code"),
    [
        ("Bearer cbt_" + "A" * 43, "auth.bad_token"),  # well formed, unknown
        ("Bearer not-a-token", "auth.bad_token"),
        ("Bearer " + "x" * 5000, "auth.bad_token"),
        ("Basic dXNlcjpwYXNz", "auth.malformed"),
        ("Bearer", "auth.malformed"),
    ],
)
def test_bad_credentials_are_401(log: Log, header: str, code: str) -> None:
    resp = log.client.get(f"{LOG}/entries/{log.private[0]}", headers={"Authorization": header})
    assert_problem(resp, 401, code)
    assert resp.headers["www-authenticate"] == "Bearer"


def test_tokens_are_stored_only_as_digests(log: Log) -> None:
    from sqlalchemy import text

    with log.bank.engine.connect() as conn:
        rows = conn.execute(text("SELECT digest, role FROM api_tokens")).all()
    assert len(rows) == 1
    assert rows[0].role == "auditor"
    assert log.token.encode() not in bytes(rows[0].digest)
    assert len(bytes(rows[0].digest)) == 32


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("15", 404, "log.no_entry"),
        ("9223372036854775807", 404, "log.no_entry"),
        ("9223372036854775808", 400, "request.invalid"),
        ("99999999999999999999999999999999", 400, "request.invalid"),
        ("-1", 400, "request.invalid"),
        ("abc", 400, "request.invalid"),
        ("1.0", 400, "request.invalid"),
        ("0x1", 400, "request.invalid"),
    ],
)
def test_entry_bad_indexes(shared_log: Log, path: str, status: int, code: str) -> None:
    log = shared_log
    assert_problem(log.client.get(f"{LOG}/entries/{path}"), status, code)


def test_access_policy_by_entry_type() -> None:
    auditor = Principal("auditor")
    for type_ in ENTRY_TYPES:
        public = type_.split(".")[0] in {"institution", "rules"}
        assert ANONYMOUS.may_read_entry(type_, "X", "L1") is public, type_
        assert (type_ in PRIVATE_TYPES) is not public
        assert auditor.may_read_entry(type_, "X", "L1")
    # an institution token does not (yet) read private entries
    assert not Principal("institution", "X").may_read_entry("record.posted", "X", "L1")


# -- inclusion proofs -------------------------------------------------------------------------
def test_inclusion_proofs_verify_for_every_index_and_published_size(log: Log) -> None:
    latest, latest_root = signed_tree(log)
    hashes = all_leaf_hashes(log, latest)
    for size in PUBLISHED:
        root = merkle.root_from_leaf_hashes(hashes[:size])
        for index in range(size):
            resp = log.client.get(f"{LOG}/proofs/inclusion", params={"index": index, "size": size})
            assert resp.status_code == 200, resp.text
            doc = resp.json()
            assert set(doc) == {"index", "size", "leaf_hash", "path"}
            assert (doc["index"], doc["size"]) == (index, size)
            assert b64(doc["leaf_hash"]) == hashes[index]
            merkle.verify_inclusion(index, size, hashes[index], [b64(p) for p in doc["path"]], root)
    # default size: the latest published
    doc = log.client.get(f"{LOG}/proofs/inclusion", params={"index": 4}).json()
    assert doc["size"] == latest
    merkle.verify_inclusion(4, latest, hashes[4], [b64(p) for p in doc["path"]], latest_root)


def test_inclusion_proof_fails_on_a_tampered_path(log: Log) -> None:
    size, root = signed_tree(log)
    doc = log.client.get(f"{LOG}/proofs/inclusion", params={"index": 5, "size": size}).json()
    path = [b64(p) for p in doc["path"]]
    path[0] = bytes([path[0][0] ^ 1]) + path[0][1:]
    with pytest.raises(RootMismatchError):
        merkle.verify_inclusion(5, size, b64(doc["leaf_hash"]), path, root)


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("index=0&size=14", "log.unpublished_size"),
        ("index=0&size=15", "log.unpublished_size"),
        ("index=0&size=8", "log.unpublished_size"),
        ("index=0&size=16", "log.unpublished_size"),
        ("index=7&size=7", "merkle.bad_index"),
        ("index=13&size=13", "merkle.bad_index"),
        ("index=14", "merkle.bad_index"),
        ("index=0&size=0", "request.invalid"),
        ("index=-1&size=7", "request.invalid"),
        ("index=1&size=-7", "request.invalid"),
        ("index=x&size=7", "request.invalid"),
        ("index=1&size=7.5", "request.invalid"),
        ("size=7", "request.invalid"),
        ("index=1&size=9223372036854775808", "request.invalid"),
        ("index=1&size=9223372036854775807", "log.unpublished_size"),
        ("index=" + "9" * 3000, "request.invalid"),
    ],
)
def test_inclusion_bad_params(shared_log: Log, query: str, code: str) -> None:
    log = shared_log
    assert_problem(log.client.get(f"{LOG}/proofs/inclusion?{query}"), 400, code)


# -- consistency proofs -----------------------------------------------------------------------
def test_consistency_proofs_verify_between_published_sizes(log: Log) -> None:
    latest, _ = signed_tree(log)
    hashes = all_leaf_hashes(log, latest)
    for first in PUBLISHED:
        for second in PUBLISHED:
            if first > second:
                continue
            resp = log.client.get(
                f"{LOG}/proofs/consistency", params={"first": first, "second": second}
            )
            assert resp.status_code == 200, resp.text
            doc = resp.json()
            assert set(doc) == {"first", "second", "path"}
            assert (doc["first"], doc["second"]) == (first, second)
            merkle.verify_consistency(
                first,
                second,
                merkle.root_from_leaf_hashes(hashes[:first]),
                merkle.root_from_leaf_hashes(hashes[:second]),
                [b64(p) for p in doc["path"]],
            )
    assert log.client.get(f"{LOG}/proofs/consistency?first=2").json()["second"] == latest


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("first=7&second=2", "merkle.bad_consistency_sizes"),
        ("first=2&second=14", "log.unpublished_size"),
        ("first=8&second=13", "log.unpublished_size"),
        ("first=14", "log.unpublished_size"),
        ("first=0&second=7", "request.invalid"),
        ("first=-2&second=7", "request.invalid"),
        ("first=2&second=x", "request.invalid"),
        ("second=7", "request.invalid"),
        ("first=2&second=1e3", "request.invalid"),
        ("first=2&second=99999999999999999999999", "request.invalid"),
    ],
)
def test_consistency_bad_params(shared_log: Log, query: str, code: str) -> None:
    log = shared_log
    assert_problem(log.client.get(f"{LOG}/proofs/consistency?{query}"), 400, code)


# -- an empty log -----------------------------------------------------------------------------
def test_nothing_published_yet(settings: Settings) -> None:
    """A home whose init stopped before the genesis entry: no checkpoint, clear 4xx answers."""
    from creditbank.service.keys import ISSUER_KEY, LOG_KEY, generate_key_file
    from creditbank.storage import ledger_repo
    from creditbank.storage.engine import make_engine
    from creditbank.storage.migrate import upgrade

    generate_key_file(settings.keys_dir / LOG_KEY, settings.origin)
    generate_key_file(settings.keys_dir / ISSUER_KEY, settings.bank_id)
    engine = make_engine(settings.db_url)
    upgrade(engine)
    with engine.begin() as conn:
        ledger_repo.ensure_head(conn, "2025-01-01T00:00:00Z")
    engine.dispose()
    with TestClient(create_app(settings)) as client:
        assert_problem(client.get(f"{LOG}/checkpoint"), 404, "log.no_checkpoint")
        assert_problem(client.get(f"{LOG}/proofs/inclusion?index=0"), 404, "log.no_checkpoint")
        assert_problem(client.get(f"{LOG}/proofs/consistency?first=1"), 404, "log.no_checkpoint")
        assert_problem(client.get(f"{LOG}/leaf-hashes?start=0&end=1"), 400, "log.unpublished_size")
        assert_problem(client.get(f"{LOG}/entries/0"), 404, "log.no_entry")
        assert client.get("/healthz").json() == {"status": "ok", "size": 0}


# -- problem+json for everything ----------------------------------------------------------------
def test_unknown_route_and_method(log: Log) -> None:
    assert_problem(log.client.get("/api/v1/nope"), 404, "http.not_found")
    assert_problem(log.client.get("/"), 404, "http.not_found")
    resp = log.client.post(f"{LOG}/key", content=b"x")
    assert_problem(resp, 405, "http.method_not_allowed")
    assert resp.headers["allow"] == "GET"


def test_over_long_target_is_414(log: Log) -> None:
    assert_problem(log.client.get(f"{LOG}/key?" + "a" * 5000), 414, "http.uri_too_long")
    assert_problem(log.client.get("/" + "a" * 3000), 414, "http.uri_too_long")


def test_health_and_docs(log: Log) -> None:
    resp = log.client.get("/healthz")
    assert resp.status_code == 200
    assert resp.json() == {"status": "ok", "size": HEAD}
    assert log.client.get("/docs").status_code == 200
    spec = log.client.get("/openapi.json").json()
    for path in (
        "/api/v1/log/checkpoint",
        "/api/v1/log/key",
        "/api/v1/log/leaf-hashes",
        "/api/v1/log/entries/{index}",
        "/api/v1/log/proofs/inclusion",
        "/api/v1/log/proofs/consistency",
    ):
        assert path in spec["paths"]


@pytest.mark.parametrize(
    ("exc", "status"),
    [
        (InvalidInputError("x"), 400),
        (UnsupportedVersionError("x"), 400),
        (TooLargeError("x"), 413),
        (BatchRejected("x", [{"index": 0, "code": "c", "detail": "d"}]), 422),
        (VerificationError("x"), 422),
        (SignatureError("x"), 422),
        (RuleError("x"), 422),
        (ConversionRejected("x", ("r1",)), 422),
        (NotFoundError("x"), 404),
        (ConflictError("x"), 409),
        (AuthError("x"), 401),
        (ForbiddenError("x"), 403),
        (StorageError("x"), 503),
        (ConfigurationError("x"), 500),
        (CreditBankError("x"), 500),
    ],
)
def test_every_error_family_renders_as_problem_json(exc: CreditBankError, status: int) -> None:
    assert status_for(exc) == status
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/boom")
    def boom() -> None:
        raise exc

    with TestClient(app) as client:
        body = assert_problem(client.get("/boom"), status, exc.code)
    assert body["instance"] == "/boom"
    if isinstance(exc, BatchRejected):
        assert body["items"] == exc.items
    if isinstance(exc, ConversionRejected):
        assert body["reasons"] == ["r1"]


def test_unexpected_errors_are_500_problems_without_details() -> None:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/crash")
    def crash() -> None:
        raise RuntimeError("secret internals")

    with TestClient(app, raise_server_exceptions=False) as client:
        body = assert_problem(client.get("/crash"), 500, "internal")
    assert "secret" not in body["detail"]


def test_request_limits_check_sizes_before_parsing() -> None:
    app = FastAPI()
    install_error_handlers(app)
    app.add_middleware(RequestLimits, max_body=10)

    @app.post("/echo")
    async def echo(body: dict[str, Any]) -> dict[str, Any]:
        return body

    with TestClient(app) as client:
        assert client.post("/echo", json={"a": 1}).json() == {"a": 1}
        assert_problem(client.post("/echo", json={"a": "x" * 20}), 413, "input.too_large")

        def chunks() -> Any:  # no Content-Length: counted while streaming
            yield b'{"a": "'
            yield b"x" * 20
            yield b'"}'

        assert_problem(client.post("/echo", content=chunks()), 413, "input.too_large")
        bad = client.post("/echo", content=b"{}", headers={"content-length": "abc"})
        assert bad.status_code == 400


# -- lifespan: publisher and group committer ----------------------------------------------------
def test_publisher_thread_signs_new_checkpoints(
    settings_factory: Callable[..., Settings], bank: Bank, institution: Institution
) -> None:
    app = create_app(settings_factory(checkpoint_interval=0.1), bank=bank)
    with TestClient(app) as client:
        bank.ledger.append(institution.records(3), publish=False)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            key = parse_verifier_key(client.get(f"{LOG}/key").text)
            cp = verify_checkpoint(client.get(f"{LOG}/checkpoint").text, key)
            if cp.size == 5:
                break
            time.sleep(0.05)
        assert cp.size == 5
        assert client.get(f"{LOG}/proofs/inclusion?index=4&size=5").status_code == 200
    # the bank belongs to the caller: still usable after the app shut down
    assert bank.ledger.head().size == 5


def test_group_committer_runs_for_the_app_lifetime(
    api_app: FastAPI, bank: Bank, institution: Institution
) -> None:
    assert api_app.state.committer is None
    with TestClient(api_app):
        committer = api_app.state.committer
        (out,) = committer.submit([institution.record(99)])
        assert out.index == 2
        assert not out.duplicate
        (again,) = committer.submit([institution.record(99)])
        assert again.index == 2
        assert again.duplicate
    assert api_app.state.committer is None


def test_create_app_refuses_an_uninitialised_home(
    settings_factory: Callable[..., Settings], tmp_path: Any
) -> None:
    with pytest.raises(ConfigurationError):
        create_app(settings_factory(home=tmp_path / "empty"))


def test_create_app_owns_the_bank_it_opens(bank: Bank) -> None:
    app = create_app(bank.settings)
    owned = app.state.bank
    assert owned is not bank
    with TestClient(app) as client:
        assert client.get("/healthz").json()["size"] == 1
