"""Issue #12 over the HTTP API, on SQLite and PostgreSQL: a duplicate answer that verifies
against an inclusion proof, JSON endpoints that refuse other media types (415), applications
with an Idempotency-Key, per-learner and per-institution write limits (429 + Retry-After, and
nothing written), one validation of personal names, and an OpenAPI document that validates.
"""

from __future__ import annotations

import base64
import json
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from openapi_spec_validator import validate
from sample_data import SAMPLE

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from records_fixtures import (
    NOW,
    RECORDS,
    RESOLVE,
    World,
    assert_problem,
    batch,
    resident_id,
    shared_world_fixture,  # noqa: F401 - the ``shared_world`` fixture
    world_fixture,  # noqa: F401 - the ``world`` fixture
)

from creditbank.api.app import create_app
from creditbank.config import Settings
from creditbank.core import merkle
from creditbank.core.checkpoint import verify_checkpoint
from creditbank.core.signing import parse_verifier_key
from creditbank.service import institutions as inst_svc
from creditbank.service.bank import Bank, init_home
from creditbank.service.clock import FixedClock
from creditbank.service.importer import ImportReport, import_dataset

T_IMPORT = datetime(2026, 1, 15, 9, 0, 0, tzinfo=UTC)
APPS = "/api/v1/me/applications"
JSON = {"Content-Type": "application/json"}


# -- duplicates --------------------------------------------------------------------------------
def test_a_resigned_duplicate_answers_the_stored_leaf_which_an_inclusion_proof_verifies(
    world: World,
) -> None:
    a = world.inst["INS-A"]
    learner = world.learner()
    first = world.post(a, [a.record(1, learner)])
    assert first.status_code == 201, first.text
    [stored] = first.json()["results"]
    world.clock.advance(60)  # the client re-signs after a crash: same content, new "at"
    again_raw = a.record(1, learner)
    again = world.post(a, [again_raw])
    assert again.status_code == 200, again.text
    [dup] = again.json()["results"]
    assert dup == {**stored, "duplicate": True}
    assert dup["leaf_hash"] != base64.b64encode(merkle.leaf_hash(again_raw)).decode()
    world.bank.ledger.publish()
    proof = world.client.get("/api/v1/log/proofs/inclusion", params={"index": dup["index"]}).json()
    note = world.client.get("/api/v1/log/checkpoint").text
    cp = verify_checkpoint(note, parse_verifier_key(world.client.get("/api/v1/log/key").text))
    assert proof["size"] == cp.size
    merkle.verify_inclusion(
        dup["index"],
        cp.size,
        base64.b64decode(dup["leaf_hash"]),
        [base64.b64decode(h) for h in proof["path"]],
        cp.root,
    )


# -- media types -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "content_type", ["text/plain", "multipart/form-data; boundary=x", None, "application/jsonx"]
)
def test_json_endpoints_refuse_other_media_types(world: World, content_type: str | None) -> None:
    a = world.inst["INS-A"]
    learner = world.learner()
    body = batch([a.record(2, learner)])
    headers = world.headers(a)
    if content_type is not None:
        headers["Content-Type"] = content_type
    size = world.bank.ledger.head().size
    for path in (RECORDS, RESOLVE, "/api/v1/learners/resolve-batch"):
        resp = world.client.post(path, content=body, headers=headers)
        assert_problem(resp, 415, "http.unsupported_media_type")
    assert world.bank.ledger.head().size == size
    ok = world.client.post(
        RECORDS,
        content=body,
        headers={**world.headers(a), "Content-Type": "application/json; charset=utf-8"},
    )
    assert ok.status_code == 201, ok.text


# -- names -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name",
    [
        "Ali\u202eecnirP",
        "王\u0000建国",
        "a\u2066b",
        "\u0378x",
        " \t",
        "\ue000",
        "a\u2028b",
        "\u200fA",
    ],
)
def test_resolve_refuses_names_with_control_bidi_or_unassigned_characters(
    shared_world: World, name: str
) -> None:
    world = shared_world  # refusals only: one world per module and engine
    a = world.inst["INS-A"]
    doc = {"name": name, "id_type": "resident_id", "id_number": resident_id(7)}
    before = world.counts()["learners"]
    resp = world.client.post(RESOLVE, json=doc, headers=world.headers(a))
    assert_problem(resp, 422, "identity.name")
    many = world.client.post(
        "/api/v1/learners/resolve-batch", json={"learners": [doc]}, headers=world.headers(a)
    )
    assert many.status_code == 200, many.text
    assert many.json()["results"][0]["error"]["code"] == "identity.name"
    assert world.counts()["learners"] == before
    long = {**doc, "name": "x" * 201}
    assert_problem(world.client.post(RESOLVE, json=long, headers=world.headers(a)), 400)


def test_names_are_stored_in_nfc_and_names_on_record_are_checked_alike(world: World) -> None:
    a = world.inst["INS-A"]
    doc = {"name": "Jose\u0301", "id_type": "resident_id", "id_number": resident_id(8)}
    resp = world.client.post(RESOLVE, json=doc, headers=world.headers(a))
    assert resp.status_code == 201, resp.text
    learner = world.learner()
    size = world.bank.ledger.head().size
    bad = world.post(a, [a.record(9, learner)], ["Ann\u202e"])
    assert_problem(bad, 422, "batch.rejected")
    assert bad.json()["items"][0]["code"] == "record.name"
    assert world.bank.ledger.head().size == size


# -- applications ------------------------------------------------------------------------------
@dataclass
class Api:
    bank: Bank
    client: TestClient
    report: ImportReport

    def token(self, learner: str) -> dict[str, str]:
        token, _ = inst_svc.issue_learner_token(self.bank, self.report.learner_ids[learner])
        return {"Authorization": f"Bearer {token}"}

    def size(self) -> int:
        return self.bank.ledger.head().size


@pytest.fixture
def api(settings_factory: Callable[..., Settings]) -> Iterator[Api]:
    bank = init_home(
        settings_factory(learner_write_burst=3, learner_writes_per_minute=6),
        clock=FixedClock(T_IMPORT),
    )
    try:
        report = import_dataset(bank, SAMPLE)
        with TestClient(create_app(bank.settings, bank=bank)) as client:
            yield Api(bank, client, report)
    finally:
        bank.close()


def test_an_idempotency_key_returns_the_original_decision(api: Api) -> None:
    l05 = api.token("L05")
    size = api.size()
    headers = {**l05, "Idempotency-Key": "k-1"}
    first = api.client.post(APPS, json={"program_id": "P-OU-MECH"}, headers=headers)
    assert first.status_code == 201, first.text
    assert api.size() == size + 1
    api.bank.clock.advance(86400)  # retried the next day: still the same decision
    again = api.client.post(APPS, json={"program_id": "P-OU-MECH"}, headers=headers)
    assert again.status_code == 200, again.text
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert api.size() == size + 1
    other = api.client.post(APPS, json={"certificate_type_id": "CT-ELEC-4"}, headers=headers)
    assert_problem(other, 422, "conversion.idempotency_key_reused")
    # another learner's same key is another application
    l09 = {**api.token("L09"), "Idempotency-Key": "k-1"}
    theirs = api.client.post(APPS, json={"program_id": "P-OU-MECH"}, headers=l09)
    assert theirs.status_code == 201, theirs.text
    assert theirs.json()["application_id"] != first.json()["application_id"]
    assert api.size() == size + 2
    bad = api.client.post(
        APPS, json={"program_id": "P-OU-MECH"}, headers={**l05, "Idempotency-Key": "sp ace"}
    )
    assert_problem(bad, 400, "request.invalid")


def test_applications_are_rate_limited_per_learner_and_a_refusal_writes_nothing(api: Api) -> None:
    l05, l09 = api.token("L05"), api.token("L09")
    size = api.size()
    codes = [
        api.client.post(APPS, json={"program_id": "P-OU-MECH"}, headers=l05).status_code
        for _ in range(4)
    ]
    assert codes == [201, 201, 201, 429]
    assert api.size() == size + 3  # repeated applications are decisions; the 4th wrote nothing
    refused = api.client.post(APPS, json={"program_id": "P-OU-MECH"}, headers=l05)
    assert_problem(refused, 429, "rate.limited")
    assert int(refused.headers["Retry-After"]) >= 1
    assert api.size() == size + 3
    # another learner has its own budget; time gives the first one its rate back
    assert api.client.post(APPS, json={"program_id": "P-OU-MECH"}, headers=l09).status_code == 201
    api.bank.clock.advance(10)
    assert api.client.post(APPS, json={"program_id": "P-OU-MECH"}, headers=l05).status_code == 201
    bad_type = api.client.post(
        APPS,
        content=json.dumps({"program_id": "P-OU-MECH"}),
        headers={**l05, "Content-Type": "text/plain"},
    )
    assert_problem(bad_type, 415, "http.unsupported_media_type")


def test_record_writes_are_rate_limited_per_institution(
    settings_factory: Callable[..., Settings],
) -> None:
    from records_fixtures import make_world

    settings = settings_factory(institution_write_burst=2, institution_writes_per_minute=1)
    for world in make_world(settings, FixedClock(NOW)):
        a, b = world.inst["INS-A"], world.inst["INS-B"]
        learner = world.learner()  # INS-A resolves: its first write
        size = world.bank.ledger.head().size
        assert world.post(a, [a.record(1, learner)]).status_code == 201
        refused = world.post(a, [a.record(2, learner)])
        assert_problem(refused, 429, "rate.limited")
        assert "Retry-After" in refused.headers
        assert world.bank.ledger.head().size == size + 1
        assert world.post(b, [b.record(1, learner)]).status_code == 201  # its own budget
        world.clock.advance(60)
        assert world.post(a, [a.record(2, learner)]).status_code == 201


# -- OpenAPI -----------------------------------------------------------------------------------
def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "$ref" and isinstance(v, str):
                yield v
            else:
                yield from _refs(v)
    elif isinstance(node, list):
        for v in node:
            yield from _refs(v)


def test_the_openapi_document_validates_and_every_ref_resolves(world: World) -> None:
    doc = world.client.get("/openapi.json").json()
    validate(doc)
    for ref in set(_refs(doc)):
        assert ref.startswith("#/"), ref
        node: Any = doc
        for part in ref[2:].split("/"):
            node = node[part]
    ops = doc["paths"]
    for path in ("/api/v1/records", "/api/v1/learners/resolve", "/api/v1/learners/resolve-batch"):
        assert {"401", "403", "415", "422", "429"} <= set(ops[path]["post"]["responses"]), path
    assert {"415", "429"} <= set(ops["/api/v1/me/applications"]["post"]["responses"])
