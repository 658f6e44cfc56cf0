"""POST /api/v1/learners/resolve-batch on SQLite and PostgreSQL: one transaction, per-item
errors, duplicates within a batch resolve to one learner, institution token required."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from records_fixtures import (
    RESOLVE,
    World,
    assert_problem,
    resident_id,
    world_fixture,  # noqa: F401 - the ``world`` fixture
)

from creditbank.service import institutions as svc

BATCH = "/api/v1/learners/resolve-batch"


@pytest.fixture
def auditor(world: World) -> str:
    from creditbank.storage.token_repo import issue_token

    token, _ = issue_token(world.bank.engine, role="auditor", now="2025-03-01T08:00:00Z")
    return token


def _item(n: int, name: str = "张三", **extra: Any) -> dict[str, Any]:
    return {"name": name, "id_type": "resident_id", "id_number": resident_id(n), **extra}


def test_resolves_a_batch_and_agrees_with_the_single_endpoint(world: World) -> None:
    a, b = world["INS-A"], world["INS-B"]
    items = [
        _item(1),
        _item(2, "李四"),
        {
            "name": "John Smith",
            "id_type": "passport",
            "id_number": "E1234567",
            "nationality": "GBR",
        },
    ]
    resp = world.client.post(BATCH, json={"learners": items}, headers=a.auth)
    assert resp.status_code == 200, resp.text
    results = resp.json()["results"]
    assert [r["created"] for r in results] == [True, True, True]
    assert len({r["learner_id"] for r in results}) == 3
    for r in results:
        assert r["learner_id"].startswith("LRN-")
        assert len(base64.b64decode(r["salt"])) == 16
    assert world.counts()["learners"] == 3
    # the single endpoint (another institution) finds the same learner, and so does a re-run
    single = world.client.post(RESOLVE, json=_item(1, "张 三"), headers=b.auth)
    assert single.status_code == 200, single.text
    assert single.json() == {**results[0], "created": False}
    again = world.client.post(BATCH, json={"learners": items}, headers=b.auth)
    assert again.json()["results"] == [{**r, "created": False} for r in results]
    assert world.counts()["learners"] == 3


def test_duplicates_within_a_batch_resolve_to_one_learner(world: World) -> None:
    number = resident_id(7)
    items = [_item(7), _item(8), {**_item(7), "id_number": f" {number.lower()} "}, _item(7)]
    resp = world.client.post(BATCH, json={"learners": items}, headers=world["INS-A"].auth)
    assert resp.status_code == 200, resp.text
    results = resp.json()["results"]
    assert [r["created"] for r in results] == [True, True, False, False]
    assert results[0]["learner_id"] == results[2]["learner_id"] == results[3]["learner_id"]
    assert results[0]["salt"] == results[2]["salt"] == results[3]["salt"]
    assert world.counts()["learners"] == 2


def test_invalid_items_are_reported_and_create_nothing(world: World) -> None:
    bad_checksum = resident_id(1)[:17] + ("0" if resident_id(1)[17] != "0" else "1")
    items = [
        _item(10),
        {"name": "张三", "id_type": "resident_id", "id_number": bad_checksum},
        {"name": "张三", "id_type": "resident_id", "id_number": "11010119900101"},
        {"name": "John", "id_type": "passport", "id_number": "E1234567"},
        {"name": "   ", "id_type": "resident_id", "id_number": resident_id(11)},
        _item(12),
    ]
    resp = world.client.post(BATCH, json={"learners": items}, headers=world["INS-A"].auth)
    assert resp.status_code == 200, resp.text
    results = resp.json()["results"]
    assert len(results) == 6
    assert results[0]["created"] is True
    assert results[5]["created"] is True
    codes = [r["error"]["code"] if "error" in r else None for r in results]
    assert codes == [
        None,
        "identity.checksum",
        "identity.format",
        "identity.nationality",
        "identity.name",
        None,
    ]
    text = json.dumps(results)
    assert bad_checksum not in text
    assert "11010119900101" not in text
    assert world.counts()["learners"] == 2  # nothing for the invalid items
    # the learner of the blank name was not created by its failed item
    later = world.client.post(RESOLVE, json=_item(11), headers=world["INS-A"].auth)
    assert later.status_code == 201, later.text


def test_needs_an_institution_token_and_a_well_formed_body(world: World, auditor: str) -> None:
    a = world["INS-A"]
    body = {"learners": [_item(20)]}
    assert_problem(world.client.post(BATCH, json=body), 401, "auth.required")
    assert_problem(
        world.client.post(BATCH, json=body, headers=world.headers(auditor)), 403, "auth.forbidden"
    )
    assert_problem(
        world.client.post(BATCH, json=body, headers=world.headers("cbt_not-a-token")), 401
    )
    for content, status, code in [
        (b'{"learners":[],"learners":[]}', 400, "input.duplicate_key"),
        (b'{"learners":[]}', 400, "request.invalid"),
        (b'{"learners":[{"name":"a"}]}', 400, "request.invalid"),
        (b'{"learners":[{"name":"a","id_type":"licence","id_number":"1"}]}', 400, None),
        (b"\xff", 400, "input.not_utf8"),
    ]:
        resp = world.client.post(
            BATCH, content=content, headers={"Content-Type": "application/json", **a.auth}
        )
        assert_problem(resp, status, code)
    too_many = {"learners": [_item(n) for n in range(svc.MAX_RESOLVE_BATCH + 1)]}
    assert_problem(world.client.post(BATCH, json=too_many, headers=a.auth), 413, "input.too_large")
    assert world.counts()["learners"] == 0


def test_a_full_batch_of_1000(world: World) -> None:
    items = [
        {"name": f"学员{n}", "id_type": "resident_id", "id_number": resident_id(n, "19850505")}
        for n in range(svc.MAX_RESOLVE_BATCH)
    ]
    resp = world.client.post(BATCH, json={"learners": items}, headers=world["INS-A"].auth)
    assert resp.status_code == 200, resp.text
    assert all(r["created"] for r in resp.json()["results"])
    assert world.counts()["learners"] == svc.MAX_RESOLVE_BATCH
