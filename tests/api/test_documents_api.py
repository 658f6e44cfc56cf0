"""Transcripts, certificates and share codes over the HTTP API (SQLite and PostgreSQL).

One bank per engine and module (sample imported at the fixed clock 2026-01-15); documents are
rendered a few times only. Every refused request answers problem+json with a stable code and
writes nothing (log size and document rows unchanged).
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from sample_data import SAMPLE

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from conftest import fresh_pg_database

from creditbank.api.app import create_app
from creditbank.config import Settings
from creditbank.core.credentials.context import context_bytes
from creditbank.core.entries import format_time
from creditbank.core.status_list import status_of
from creditbank.service import conversion, institutions
from creditbank.service.bank import Bank, init_home
from creditbank.service.clock import FixedClock
from creditbank.service.importer import import_dataset
from creditbank.storage import documents_repo
from creditbank.storage.token_repo import issue_token

T_IMPORT = datetime(2026, 1, 15, 9, 0, 0, tzinfo=UTC)
PROBLEM = "application/problem+json"


@dataclass
class Api:
    bank: Bank
    client: TestClient
    learner: str
    other: str
    me: dict[str, str]
    them: dict[str, str]
    auditor: dict[str, str]
    institution: dict[str, str]
    transcript: dict[str, Any]

    def state(self) -> tuple[int, dict[str, int]]:
        with self.bank.engine.connect() as conn:
            return self.bank.ledger.head().size, documents_repo.count_rows(conn)


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module", params=["sqlite", pytest.param("pg", marks=pytest.mark.pg)])
def api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    home = tmp_path_factory.mktemp("docapi") / "home"

    def build(url: str | None) -> Iterator[Api]:
        settings = Settings(
            home=home, database_url=url, checkpoint_interval=3600, sqlite_synchronous="NORMAL"
        )
        bank = init_home(settings, clock=FixedClock(T_IMPORT))
        try:
            import_dataset(bank, SAMPLE)
            learner = conversion.resolve_learner_ref(bank, "L01")
            other = conversion.resolve_learner_ref(bank, "L02")
            now = format_time(T_IMPORT)
            auditor, _ = issue_token(bank.engine, role="auditor", now=now)
            inst, _ = institutions.issue_institution_token(bank, "INS-OU")
            me = _bearer(institutions.issue_learner_token(bank, learner)[0])
            them = _bearer(institutions.issue_learner_token(bank, other)[0])
            with TestClient(create_app(bank.settings, bank=bank)) as client:
                resp = client.post("/api/v1/me/transcripts", headers=me)
                assert resp.status_code == 201, resp.text
                yield Api(
                    bank, client, learner, other, me, them, _bearer(auditor), _bearer(inst),
                    resp.json(),
                )  # fmt: skip
        finally:
            bank.close()

    if request.param == "sqlite":
        yield from build(None)
        return
    admin = os.environ.get("CREDITBANK_TEST_PG_URL", "")
    if not admin:
        pytest.skip("PostgreSQL tests need CREDITBANK_TEST_PG_URL")
    with fresh_pg_database(admin) as url:
        yield from build(url)


def assert_problem(resp: Any, status: int, code: str) -> None:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith(PROBLEM)
    assert resp.json()["code"] == code, resp.json()


def refused(api: Api, status: int, code: str, method: str, url: str, **kw: Any) -> None:
    before = api.state()
    assert_problem(api.client.request(method, url, **kw), status, code)
    assert api.state() == before


# -- issue and download ---------------------------------------------------------------------------
def test_issue_then_download_the_stored_bytes(api: Api) -> None:
    t = api.transcript
    assert t["kind"] == "transcript"
    assert t["learner_id"] == api.learner
    assert t["verification_url"].endswith("/v/" + t["verification_code"])
    pdf = api.client.get(t["pdf_url"], headers=api.me)
    assert pdf.status_code == 200
    assert pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF-")
    assert "sha256:" + hashlib.sha256(pdf.content).hexdigest() == t["pdf_sha256"]
    cred = api.client.get(t["json_url"], headers=api.me)
    assert cred.status_code == 200
    assert json.loads(cred.content)["credentialSubject"]["learnerId"] == api.learner
    # an auditor reads it too; a second download is the same bytes; ETag revalidates
    again = api.client.get(t["pdf_url"], headers=api.auditor)
    assert again.content == pdf.content
    etag = again.headers["etag"]
    assert (
        api.client.get(t["pdf_url"], headers={**api.me, "If-None-Match": etag}).status_code == 304
    )
    info = api.client.get(f"/api/v1/transcripts/{t['document_id']}", headers=api.me).json()
    assert info["status"] == "valid"
    listed = api.client.get("/api/v1/me/transcripts", headers=api.me).json()["documents"]
    assert t["document_id"] in [d["document_id"] for d in listed]


def test_subset_and_certificate(api: Api) -> None:
    chains = institutions.learner_records(api.bank, api.learner)
    resp = api.client.post(
        "/api/v1/me/transcripts", headers=api.me, json={"records": [chains[1].current_index]}
    )
    assert resp.status_code == 201, resp.text
    doc = json.loads(api.client.get(resp.json()["json_url"], headers=api.me).content)
    assert len(doc["credentialSubject"]["records"]) == 1
    cert = api.client.post(
        "/api/v1/me/certificates", headers=api.me, json={"record": chains[0].root_index}
    )
    assert cert.status_code == 201, cert.text
    assert cert.json()["kind"] == "certificate"


def test_bad_requests_write_nothing(api: Api) -> None:
    theirs = institutions.learner_records(api.bank, api.other)[0].root_index
    post = "POST"
    refused(api, 404, "document.record_not_found", post, "/api/v1/me/transcripts",
            headers=api.me, json={"records": [theirs]})  # fmt: skip
    refused(api, 404, "document.record_not_found", post, "/api/v1/me/certificates",
            headers=api.me, json={"record": theirs})  # fmt: skip
    bad: list[dict[str, Any]] = [{"records": []}, {"records": "12"}, {"records": [1.5]}, {"x": 1}]
    for body in bad:
        refused(api, 400, "request.invalid", post, "/api/v1/me/transcripts",
                headers=api.me, json=body)  # fmt: skip
    refused(api, 400, "request.invalid", post, "/api/v1/me/transcripts",
            headers={**api.me, "content-type": "application/json"}, content=b"{")  # fmt: skip
    for cert in ({}, {"record": 1, "decision": 2}):
        refused(api, 400, "document.certificate_subject", post, "/api/v1/me/certificates",
                headers=api.me, json=cert)  # fmt: skip
    refused(api, 400, "request.invalid", post, "/api/v1/me/certificates",
            headers=api.me, json={"record": -1})  # fmt: skip


def test_who_may_do_what(api: Api) -> None:
    t = api.transcript
    refused(api, 401, "auth.required", "POST", "/api/v1/me/transcripts")
    refused(api, 403, "auth.forbidden", "POST", "/api/v1/me/transcripts", headers=api.auditor)
    refused(api, 403, "auth.forbidden", "POST", "/api/v1/me/certificates",
            headers=api.institution, json={"record": 1})  # fmt: skip
    refused(api, 401, "auth.required", "GET", t["pdf_url"])
    refused(api, 403, "auth.forbidden", "GET", t["pdf_url"], headers=api.institution)
    for url in (t["pdf_url"], t["json_url"], f"/api/v1/transcripts/{t['document_id']}"):
        refused(api, 404, "document.not_found", "GET", url, headers=api.them)  # no oracle
    refused(api, 404, "document.not_found", "POST",
            f"/api/v1/me/transcripts/{t['document_id']}/revoke",
            headers=api.them, json={"reason": "x"})  # fmt: skip
    missing = "DOC-" + "0" * 26
    refused(api, 404, "document.not_found", "GET", f"/api/v1/transcripts/{missing}.pdf",
            headers=api.auditor)  # fmt: skip
    refused(api, 400, "request.invalid", "GET", "/api/v1/transcripts/DOC-nope.pdf",
            headers=api.auditor)  # fmt: skip


def _bit(api: Api, doc_id: str) -> bool:
    cred = json.loads(api.client.get(f"/api/v1/transcripts/{doc_id}.json", headers=api.me).content)
    listed = api.client.get("/api/v1/status/1")
    assert listed.status_code == 200
    return status_of(cred["credentialStatus"], json.loads(listed.content))


def test_revoke_sets_the_status_bit(api: Api) -> None:
    chains = institutions.learner_records(api.bank, api.learner)
    made = api.client.post(
        "/api/v1/me/certificates", headers=api.me, json={"record": chains[3].root_index}
    ).json()
    doc = made["document_id"]
    assert _bit(api, doc) is False
    url = f"/api/v1/me/transcripts/{doc}/revoke"
    refused(api, 400, "request.invalid", "POST", url, headers=api.me, json={"reason": ""})
    resp = api.client.post(url, headers=api.me, json={"reason": "lost the paper copy"})
    assert resp.status_code == 200, resp.text
    assert resp.json()["status"] == "revoked"
    assert resp.json()["revoked"][0]["reason"] == "lost the paper copy"
    assert _bit(api, doc) is True
    assert _bit(api, api.transcript["document_id"]) is False
    refused(api, 409, "document.revoked", "POST", url, headers=api.me, json={"reason": "again"})


def test_share_codes(api: Api) -> None:
    doc = api.transcript["document_id"]
    made = api.client.post(
        "/api/v1/me/share-codes", headers=api.me, json={"document_id": doc, "days": 10}
    )
    assert made.status_code == 201, made.text
    code = made.json()
    assert len(code["code"]) == 19
    assert code["state"] == "valid"
    listed = api.client.get("/api/v1/me/share-codes", headers=api.me).json()["share_codes"]
    ids = {c["code_id"] for c in listed}
    assert {code["code_id"], api.transcript["code_id"]} <= ids
    assert all("code" not in c or c["code"] is None for c in listed)  # never shown again
    ext = api.client.post(
        f"/api/v1/me/share-codes/{code['code_id']}/extend", headers=api.me, json={"days": 20}
    )
    assert ext.status_code == 200
    assert ext.json()["expires_at"] > code["expires_at"]
    refused(api, 404, "share_code.not_found", "POST",
            f"/api/v1/me/share-codes/{code['code_id']}/revoke", headers=api.them)  # fmt: skip
    refused(api, 404, "document.not_found", "POST", "/api/v1/me/share-codes",
            headers=api.them, json={"document_id": doc})  # fmt: skip
    refused(api, 400, "request.invalid", "POST", "/api/v1/me/share-codes",
            headers=api.me, json={"document_id": doc, "days": 0})  # fmt: skip
    rev = api.client.post(f"/api/v1/me/share-codes/{code['code_id']}/revoke", headers=api.me)
    assert rev.json()["state"] == "revoked"


def test_public_issuer_material(api: Api) -> None:
    did = api.client.get("/.well-known/did.json")
    assert did.status_code == 200
    doc = did.json()
    assert doc["id"] == "did:web:127.0.0.1%3A8000"
    assert doc["assertionMethod"] == [doc["id"] + "#key-1"]
    ctx = api.client.get("/contexts/creditbank/v1")
    assert ctx.status_code == 200
    assert ctx.headers["content-type"].startswith("application/ld+json")
    assert ctx.content == context_bytes()
    listed = api.client.get("/api/v1/status/1")
    assert json.loads(listed.content)["type"] == [
        "VerifiableCredential",
        "BitstringStatusListCredential",
    ]
    assert_problem(api.client.get("/api/v1/status/99"), 404, "status.unknown_list")
