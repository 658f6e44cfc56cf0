"""Verification API: ``GET /api/v1/verify/{code}`` and ``POST /api/v1/verify`` (PDF or
credential JSON, multipart or raw) over a real bank; bad requests are problem+json and write
nothing; lookups are rate-limited per address (429 + Retry-After); a revoked record, a voided
grant, and a transcript revoked by its holder or by the bank show REVOKED through the API.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import engine_database
from sqlalchemy import func, select
from starlette.exceptions import StarletteDeprecationWarning
from verify_world import World, build_world

from creditbank.api.app import create_app
from creditbank.core.entries import build_entry, sign_entry
from creditbank.core.signing import entry_key_id
from creditbank.service import conversion, issuance
from creditbank.service import institutions as inst_svc
from creditbank.service.demo import institution_key
from creditbank.service.verification import MAX_UPLOAD_BYTES
from creditbank.storage.tables import share_codes_t

with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

PROBLEM = "application/problem+json"


@pytest.fixture(scope="module", params=["sqlite", pytest.param("pg", marks=pytest.mark.pg)])
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    """The verification world on SQLite and (with CREDITBANK_TEST_PG_URL) PostgreSQL."""
    home = tmp_path_factory.mktemp("verify-api") / "home"
    with engine_database(request.param, request, template=False) as url:
        yield from build_world(home, database_url=url)


@pytest.fixture
def client(world: World) -> Iterator[TestClient]:
    """A fresh app (fresh rate-limit buckets) over the module's bank."""
    with TestClient(create_app(world.bank.settings, bank=world.bank)) as c:
        yield c


def problem(resp: Any, status: int, code: str) -> None:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith(PROBLEM)
    assert resp.json()["code"] == code


def verify_code(client: TestClient, code: str) -> dict[str, Any]:
    resp = client.get(f"/api/v1/verify/{code}")
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "application/json"
    body: dict[str, Any] = resp.json()
    return body


def test_get_by_code(client: TestClient, world: World) -> None:
    issued = world.issued["L01"]
    body = verify_code(client, issued.display_code.lower())
    assert (body["verified"], body["status"]) == (True, "VALID")
    assert body["document"]["id"] == issued.doc_id
    assert body["code"]["state"] == "valid"
    assert body["revocations"] == []
    assert {c["name"] for c in body["checks"]} >= {"code", "document.issued", "credential.proof",
                                                  "status"}  # fmt: skip
    assert all(set(c) == {"name", "ok", "detail"} for c in body["checks"])
    assert "learner" not in json.dumps(body["document"])  # facts only, no personal data
    missing = verify_code(client, "ZZZZ-ZZZZ-ZZZZ-ZZZZ")
    assert (missing["verified"], missing["status"], missing["document"]) == (
        False, "NOT_FOUND", None,
    )  # fmt: skip


def test_bad_codes_are_problems(client: TestClient) -> None:
    problem(client.get("/api/v1/verify/not-a-code"), 400, "code.malformed")
    problem(client.get("/api/v1/verify/UUUU-UUUU-UUUU-UUUU"), 400, "code.malformed")
    problem(client.get("/api/v1/verify/" + "A" * 65), 400, "request.invalid")


def test_lookups_are_rate_limited_per_address(client: TestClient) -> None:
    seen = []
    for _ in range(40):
        resp = client.get("/api/v1/verify/0000-0000-0000-0000")
        seen.append(resp.status_code)
        if resp.status_code == 429:
            break
    assert seen[-1] == 429
    assert seen[:-1] == [200] * (len(seen) - 1)
    assert int(resp.headers["retry-after"]) >= 1
    problem(resp, 429, "rate.limited")


def test_post_pdf_and_json_in_every_form(client: TestClient, world: World) -> None:
    issued = world.issued["L01"]
    forms: list[dict[str, Any]] = [
        {"content": issued.pdf, "headers": {"content-type": "application/pdf"}},
        {"files": {"file": ("t.pdf", issued.pdf, "application/pdf")}},
        {"content": issued.credential, "headers": {"content-type": "application/json"}},
        {"files": {"file": ("credential.json", issued.credential, "application/json")}},
    ]
    for form in forms:
        resp = client.post("/api/v1/verify", **form)
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert (body["verified"], body["status"]) == (True, "VALID"), body
        assert body["document"]["id"] == issued.doc_id
    tampered = bytearray(issued.pdf)
    tampered[tampered.index(b"stream\n", len(tampered) // 4) + 40] ^= 1
    resp = client.post("/api/v1/verify", content=bytes(tampered),
                       headers={"content-type": "application/pdf"})  # fmt: skip
    assert resp.status_code == 200
    body = resp.json()
    assert (body["verified"], body["status"]) == (False, "INVALID")
    assert "pdf.signature" in [c["name"] for c in body["checks"] if not c["ok"]]


def test_bad_uploads_are_problems_and_write_nothing(client: TestClient, world: World) -> None:
    def state() -> tuple[int, int]:
        with world.bank.engine.connect() as conn:
            counted = conn.execute(select(func.sum(share_codes_t.c.verify_count))).scalar()
        return world.bank.ledger.head().size, int(counted or 0)

    before = state()
    post = client.post
    problem(post("/api/v1/verify", content=b"hi", headers={"content-type": "text/plain"}),
            415, "http.unsupported_media_type")  # fmt: skip
    problem(post("/api/v1/verify", content=b"[1]", headers={"content-type": "application/json"}),
            400, "verify.not_json")  # fmt: skip
    pdf = {"content-type": "application/pdf"}
    problem(post("/api/v1/verify", content=b"%PDF-1.7 x", headers=pdf), 400, "pdf.not_pdf")
    problem(post("/api/v1/verify", files={"other": ("a.txt", b"x", "text/plain")}),
            400, "verify.no_file")  # fmt: skip
    problem(post("/api/v1/verify", content=b"x" * (MAX_UPLOAD_BYTES + 1),
                 headers={"content-type": "application/pdf"}), 413, "verify.too_large")  # fmt: skip
    problem(post("/api/v1/verify"), 415, "http.unsupported_media_type")
    # a genuine upload is not a lookup: nothing is counted or written either
    post("/api/v1/verify", content=world.issued["L01"].pdf,
         headers={"content-type": "application/pdf"})  # fmt: skip
    assert state() == before


# -- status and revocation, end to end through the API -----------------------------------------
def revoke(world: World, rec: dict[str, Any], reason: str) -> None:
    inst = rec["institutionId"]
    signer = institution_key(world.bank, inst)
    body = {"record_id": rec["recordId"], "reason": reason,
            "effective_on": world.clock.now().date().isoformat()}  # fmt: skip
    raw = sign_entry(
        build_entry("record.revoked", inst, entry_key_id(signer.public_bytes), world.clock.now(),
                    body),
        signer,
    )  # fmt: skip
    world.bank.ledger.append([raw], publish=True)


def test_a_revoked_record_shows_revoked(client: TestClient, world: World) -> None:
    code = world.issued["L03"].code
    assert verify_code(client, code)["status"] == "VALID"
    rec = world.revoke_record("L03", reason="entered for the wrong learner")
    body = verify_code(client, code)
    assert (body["verified"], body["status"]) == (False, "REVOKED")
    assert [c["name"] for c in body["checks"] if not c["ok"]] == ["status"]
    (cause,) = [r for r in body["revocations"] if r["what"] == "record"]
    assert cause["reason"] == "entered for the wrong learner"
    assert cause["detail"] == f"{rec['institutionId']}/{rec['recordId']}"
    assert cause["at"].startswith("2026-01-15")


def test_a_voided_grant_shows_revoked(client: TestClient, world: World) -> None:
    cred = world.credential("L02")
    grants = [g for c in cred["credentialSubject"]["conversions"] for g in c["grants"]
              if not g.get("voided")]  # fmt: skip
    source = grants[0]["sourceEntries"][0]
    rec = next(r for r in cred["credentialSubject"]["records"] if r["entryIndex"] == source)
    assert verify_code(client, world.issued["L02"].code)["status"] == "VALID"
    revoke(world, rec, "course credit withdrawn")
    assert conversion.reconcile_voids(world.bank, [world.learner("L02")]) >= 1
    body = verify_code(client, world.issued["L02"].code)
    assert body["status"] == "REVOKED"
    whats = {r["what"] for r in body["revocations"]}
    assert "grant" in whats or "decision" in whats, body["revocations"]
    assert "record" in whats


def test_holder_and_bank_revocations_show_revoked(client: TestClient, world: World) -> None:
    token, _ = inst_svc.issue_learner_token(world.bank, world.learner("L04"))
    doc = world.issued["L04"].doc_id
    resp = client.post(f"/api/v1/me/transcripts/{doc}/revoke", json={"reason": "changed jobs"},
                       headers={"Authorization": f"Bearer {token}"})  # fmt: skip
    assert resp.status_code in (200, 201), resp.text
    body = verify_code(client, world.issued["L04"].code)
    assert body["status"] == "REVOKED"
    assert [(r["what"], r["reason"]) for r in body["revocations"]] == [("learner", "changed jobs")]
    issuance.revoke_document(world.bank, world.issued["L05"].doc_id, reason="issued in error",
                             by="bank")  # fmt: skip
    body = verify_code(client, world.issued["L05"].code)
    assert body["status"] == "REVOKED"
    assert [(r["what"], r["reason"]) for r in body["revocations"]] == [("bank", "issued in error")]
    # the upload of the revoked transcript's PDF says the same
    resp = client.post("/api/v1/verify", content=world.issued["L05"].pdf,
                       headers={"content-type": "application/pdf"})  # fmt: skip
    assert resp.json()["status"] == "REVOKED"


def test_openapi_documents_the_routes(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    get = spec["paths"]["/api/v1/verify/{code}"]["get"]
    assert {"200", "400", "429"} <= set(get["responses"])
    post = spec["paths"]["/api/v1/verify"]["post"]
    assert set(post["requestBody"]["content"]) == {
        "application/pdf", "application/json", "multipart/form-data",
    }  # fmt: skip
