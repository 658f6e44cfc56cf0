"""``GET /api/v1/log/envelopes`` and ``/log/entry-batch`` (docs/monitor.md, ADR 0009), on
SQLite and PostgreSQL.

Public and metadata-only: per index the envelope (type, issuer, key_id, at, on_behalf_of)
and the leaf hash, never a body field or the subject; read from the stored entry bytes, not
from the derived columns; bounded like the leaf hashes (published size, at most 1,000).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import text
from starlette.testclient import TestClient

from creditbank.api.app import create_app
from creditbank.core import merkle
from creditbank.core.entries import format_time
from creditbank.service import institutions as svc
from creditbank.service.bank import Bank
from creditbank.service.envelopes import MAX_BATCH_ENTRIES, MAX_ENVELOPES
from creditbank.storage.token_repo import issue_token

if TYPE_CHECKING:  # tests/conftest.py
    from conftest import Institution

PATH = "/api/v1/log/envelopes"
T = format_time(datetime(2025, 3, 1, 8, 0, 0, tzinfo=UTC))
FIELDS = {"index", "type", "issuer", "key_id", "at", "on_behalf_of", "leaf_hash"}


def _fill(bank: Bank, institution: Institution) -> None:
    bank.ledger.append(institution.records(4), publish=True)
    bank.ledger.append(
        [institution.record(9, on_behalf_of="INS-WARD", record_id="R-W9")], publish=True
    )
    bank.ledger.append(institution.records(2, start=20), publish=False)  # not yet published


@pytest.fixture
def client(bank: Bank, institution: Institution) -> Iterator[TestClient]:
    _fill(bank, institution)
    with TestClient(create_app(bank.settings, bank=bank)) as c:
        yield c


@pytest.fixture(scope="module", params=["sqlite", pytest.param("pg", marks=pytest.mark.pg)])
def shared_client(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    """:func:`client`'s log built once per module and engine, for the bounds tables (every
    answer a refusal, nothing written)."""
    from conftest import module_bank, register_institution_in

    for bank in module_bank(request, tmp_path_factory):
        _fill(bank, register_institution_in(bank))
        with TestClient(create_app(bank.settings, bank=bank)) as c:
            yield c


def _get(client: TestClient, start: int, end: int) -> Any:
    return client.get(PATH, params={"start": start, "end": end})


def test_envelopes_are_public_metadata_that_match_the_entries(
    client: TestClient, bank: Bank, institution: Institution
) -> None:
    size = bank.ledger.latest_checkpoint().size
    assert size == 7
    resp = _get(client, 0, size)  # no token
    assert resp.status_code == 200, resp.text
    doc = resp.json()
    assert (doc["start"], doc["end"]) == (0, size)
    hashes = bank.ledger.leaf_hashes(0, size)
    for i, env in enumerate(doc["envelopes"]):
        assert set(env) == FIELDS
        data = bytes(bank.ledger.entry(i).data)
        entry = json.loads(data)
        assert env["index"] == i
        assert base64.b64decode(env["leaf_hash"]) == hashes[i] == merkle.leaf_hash(data)
        for name in ("type", "issuer", "key_id", "at"):
            assert env[name] == entry[name]
        assert env["on_behalf_of"] == entry["body"].get("on_behalf_of")
    assert [e["type"] for e in doc["envelopes"]] == ["institution.registered"] * 2 + [
        "record.posted"
    ] * 5
    assert doc["envelopes"][6]["on_behalf_of"] == "INS-WARD"
    # nothing of the body or the learner leaves: not the record id, the learner, the course
    text_ = resp.text
    for secret in ("R-00000", "L000000", "C-00000", "learner", "name_commitment", "subject"):
        assert secret not in text_


@pytest.mark.parametrize(
    ("start", "end", "status", "code"),
    [
        (0, 8, 400, "log.unpublished_size"),  # the 8th entry is not published yet
        (3, 3, 400, "log.bad_range"),
        (5, 2, 400, "log.bad_range"),
        (0, MAX_ENVELOPES + 1, 400, "log.bad_range"),
        (-1, 2, 400, "request.invalid"),
    ],
)
def test_envelope_ranges_are_bounded(
    shared_client: TestClient, start: int, end: int, status: int, code: str
) -> None:
    client = shared_client
    resp = _get(client, start, end)
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    assert resp.json()["code"] == code


def test_envelopes_read_the_bytes_not_the_columns(client: TestClient, bank: Bank) -> None:
    """A changed ``type``/``issuer`` column (issue #12) does not change what is listed."""
    before = _get(client, 0, 7).json()
    with bank.engine.begin() as conn:
        if bank.engine.dialect.name == "postgresql":
            conn.execute(text("SET LOCAL session_replication_role = replica"))
        else:
            for name in list(
                conn.execute(
                    text("SELECT name FROM sqlite_master WHERE type = 'trigger'")
                ).scalars()
            ):
                conn.execute(text(f'DROP TRIGGER "{name}"'))
        n = conn.execute(
            text("UPDATE log_entries SET type = 'rules.published', issuer = 'X' WHERE idx = 3")
        ).rowcount
    assert n == 1
    assert _get(client, 0, 7).json() == before


# -- /log/entry-batch ------------------------------------------------------------------------
BATCH = "/api/v1/log/entry-batch"


def test_entry_batch_decides_as_the_single_entry_endpoint(
    client: TestClient,
    bank: Bank,
    register_institution: Callable[..., Institution],
    auditor_token: str,
) -> None:
    """Every principal gets, per index, the status and bytes GET /entries/{i} gives it."""
    register_institution("INST-2", seed=bytes(range(100, 132)))
    bank.ledger.publish(force=True)
    tokens: dict[str, str | None] = {
        "anonymous": None,
        "INST-1": svc.issue_institution_token(bank, "INST-1")[0],
        "INST-2": svc.issue_institution_token(bank, "INST-2")[0],
        "auditor": auditor_token,
        "learner": issue_token(bank.engine, role="learner", subject="L000001", now=T)[0],
    }
    size = bank.ledger.head().size
    indexes = [*range(size), size + 5]  # one beyond the log
    seen: set[int] = set()
    for who, token in tokens.items():
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        resp = client.get(BATCH, params={"index": [str(i) for i in indexes]}, headers=headers)
        assert resp.status_code == 200, resp.text
        items = resp.json()["entries"]
        assert [it["index"] for it in items] == indexes
        for it in items:
            single = client.get(f"/api/v1/log/entries/{it['index']}", headers=headers)
            assert it["status"] == single.status_code, (who, it["index"])
            seen.add(it["status"])
            if it["status"] == 200:
                assert base64.b64decode(it["entry"]) == single.content
            else:
                assert it["entry"] is None
    assert seen == {200, 403, 404}


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"index": [str(i) for i in range(MAX_BATCH_ENTRIES + 1)]}, "log.bad_batch"),
        ({"index": ["+1"]}, "log.bad_batch"),
        ({"index": [" 1"]}, "log.bad_batch"),
        ({"index": ["-1"]}, "log.bad_batch"),
        ({"index": ["1e3"]}, "log.bad_batch"),
        ({}, "request.invalid"),
    ],
)
def test_entry_batch_bounds(shared_client: TestClient, params: dict[str, Any], code: str) -> None:
    client = shared_client
    resp = client.get(BATCH, params=params)
    assert resp.status_code == 400, resp.text
    assert resp.json()["code"] == code
