"""Conversions over the HTTP API, on SQLite and PostgreSQL: applications, explanations,
what-if, bad input and authorization.

Every test starts from a bank with the sample imported (rules published, the sample's 34
applications decided) at the fixed bank clock 2026-01-15; "today" is that day.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from sample_data import SAMPLE
from sqlalchemy import func, select

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from creditbank.api.app import create_app
from creditbank.config import Settings
from creditbank.core.entries import build_entry, format_time, parse_entry, sign_entry
from creditbank.core.signing import entry_key_id
from creditbank.service import institutions as inst_svc
from creditbank.service.bank import Bank, init_home
from creditbank.service.clock import FixedClock
from creditbank.service.importer import ImportReport, import_dataset
from creditbank.service.keys import load_key_file
from creditbank.storage.tables import conversion_decisions_t, conversion_voids_t
from creditbank.storage.token_repo import issue_token

T_IMPORT = datetime(2026, 1, 15, 9, 0, 0, tzinfo=UTC)
PROBLEM = "application/problem+json"


@dataclass
class Api:
    bank: Bank
    client: TestClient
    report: ImportReport

    def token(self, learner: str) -> dict[str, str]:
        """Authorization header of a new token for a dataset learner (``L05``)."""
        token, _ = inst_svc.issue_learner_token(self.bank, self.report.learner_ids[learner])
        return {"Authorization": f"Bearer {token}"}

    def size(self) -> int:
        return self.bank.ledger.head().size

    def projections(self) -> tuple[int, int]:
        with self.bank.engine.connect() as conn:
            return (
                int(
                    conn.execute(select(func.count()).select_from(conversion_decisions_t)).scalar()
                ),
                int(conn.execute(select(func.count()).select_from(conversion_voids_t)).scalar()),
            )


@pytest.fixture
def api(settings_factory: Callable[..., Settings]) -> Iterator[Api]:
    # the learner write limit is tested in test_integrity_api.py; here it stays out of the way
    bank = init_home(settings_factory(learner_write_burst=1000), clock=FixedClock(T_IMPORT))
    try:
        report = import_dataset(bank, SAMPLE)
        with TestClient(create_app(bank.settings, bank=bank)) as client:
            yield Api(bank, client, report)
    finally:
        bank.close()


def assert_problem(resp: Any, status: int, code: str) -> None:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith(PROBLEM)
    assert resp.json()["code"] == code, resp.json()


# -- applying ---------------------------------------------------------------------------------
def test_apply_records_a_decision_with_explanations(api: Api) -> None:
    l05 = api.token("L05")
    size = api.size()
    resp = api.client.post("/api/v1/me/applications", json={"program_id": "P-OU-MECH"}, headers=l05)
    assert resp.status_code == 201, resp.text
    got = resp.json()
    assert got["recorded"] is True
    assert got["entry_index"] == size
    assert api.size() == size + 1
    assert got["learner_id"] == api.report.learner_ids["L05"]
    assert (got["type"], got["program_id"], got["applied_on"]) == (
        "credit_conversion",
        "P-OU-MECH",
        "2026-01-15",
    )
    assert got["reason"] == "granted"
    assert got["credits_granted"] == 4
    [grant] = got["grants"]
    assert (grant["rule_key"], grant["rule_version"], grant["credits"]) == ("R07", 1, 4)
    assert isinstance(grant["credits"], int)  # whole credits print as 4, never 4.0
    assert grant["status"] == "active"
    assert grant["sources"]
    assert "R07" in grant["explanation_en"]
    assert "R07" in grant["explanation_zh"]
    assert all(n["explanation_zh"] and n["explanation_en"] for n in got["rule_notes"])
    # the same decision is read back, alone and in the learner's list (after the sample's A05)
    one = api.client.get(f"/api/v1/me/applications/{got['application_id']}", headers=l05)
    assert one.status_code == 200
    assert one.json() == got
    listed = api.client.get("/api/v1/me/applications", headers=l05).json()["applications"]
    assert [a["application_id"] for a in listed] == ["A05", got["application_id"]]
    # the decision is a bank-signed ledger entry that its learner (and only they) may read
    entry = api.client.get(f"/api/v1/log/entries/{size}", headers=l05)
    assert entry.status_code == 200
    e = parse_entry(entry.content)
    assert (e.type, e.issuer) == ("conversion.decided", "BANK")
    assert e.body["grants"][0]["credits_centi"] == 400
    assert e.body["grants"][0]["explanation_en"] == grant["explanation_en"]
    assert (
        api.client.get(f"/api/v1/log/entries/{size}", headers=api.token("L09")).status_code == 403
    )
    assert api.client.get(f"/api/v1/log/entries/{size}").status_code in (401, 403)
    # applying again the same day grants nothing more: the record is consumed
    again = api.client.post(
        "/api/v1/me/applications", json={"program_id": "P-OU-MECH"}, headers=l05
    ).json()
    assert again["grants"] == []
    assert again["reason"] == "nothing_granted"


def test_exam_exemption_request(api: Api) -> None:
    resp = api.client.post(
        "/api/v1/me/applications",
        json={"certificate_type_id": "CT-ELEC-L2"},
        headers=api.token("L05"),
    )
    assert resp.status_code == 201, resp.text
    got = resp.json()
    assert got["type"] == "exam_exemption"
    assert got["grants"] == []
    exam = got["exam"]
    assert (exam["granted"], exam["exam_part"], exam["rule_key"]) == (True, "theory", "RR1")
    assert exam["basis"]["record_id"] == "O0032"
    assert got["explanation_zh"]
    assert "theory" in got["explanation_en"]


def test_what_if_previews_and_records_nothing(api: Api) -> None:
    l05 = api.token("L05")
    size, projected = api.size(), api.projections()
    preview = api.client.get("/api/v1/me/what-if", params={"program_id": "P-OU-MECH"}, headers=l05)
    assert preview.status_code == 200, preview.text
    got = preview.json()
    assert got["recorded"] is False
    assert got["entry_index"] is None
    assert [(g["rule_key"], g["credits"]) for g in got["grants"]] == [("R07", 4)]
    exam = api.client.get(
        "/api/v1/me/what-if", params={"certificate_type_id": "CT-ELEC-L2"}, headers=l05
    )
    assert exam.json()["exam"]["granted"] is True
    assert api.size() == size
    assert api.projections() == projected
    # what the preview showed is what applying now grants
    applied = api.client.post(
        "/api/v1/me/applications", json={"program_id": "P-OU-MECH"}, headers=l05
    ).json()
    strip = ("status", "voided_at", "void_entry_index", "explanation_zh", "explanation_en")

    def grants(view: dict[str, Any]) -> list[dict[str, Any]]:
        return [{k: v for k, v in g.items() if k not in strip} for g in view["grants"]]

    assert grants(applied) == grants(got)


# -- bad input --------------------------------------------------------------------------------
BAD_APPLICATIONS: list[tuple[Any, str]] = [
    ({"program_id": "P-NOPE"}, "conversion.unknown_program"),
    ({"certificate_type_id": "CT-NOPE"}, "conversion.unknown_certificate_type"),
    (
        {"program_id": "P-OU-MECH", "certificate_type_id": "CT-ELEC-L2"},
        "conversion.bad_application",
    ),
    ({}, "conversion.bad_application"),
    ({"program_id": "P-OU-MECH", "note": "x"}, "request.invalid"),
    ({"program_id": 7}, "request.invalid"),
    ({"program_id": ""}, "request.invalid"),
    ([], "request.invalid"),
]


def test_bad_applications_are_problems_and_write_nothing(api: Api) -> None:
    l05 = api.token("L05")
    size, projected = api.size(), api.projections()
    for body, code in BAD_APPLICATIONS:
        resp = api.client.post("/api/v1/me/applications", json=body, headers=l05)
        assert_problem(resp, 400, code)
    assert api.size() == size
    assert api.projections() == projected


def test_malformed_requests_are_problems(api: Api) -> None:
    l05 = api.token("L05")
    size = api.size()
    resp = api.client.post(
        "/api/v1/me/applications",
        content=b"{not json",
        headers={**l05, "Content-Type": "application/json"},
    )
    assert_problem(resp, 400, "request.invalid")
    resp = api.client.get("/api/v1/me/what-if", params={"program_id": "P-NOPE"}, headers=l05)
    assert_problem(resp, 400, "conversion.unknown_program")
    assert_problem(
        api.client.get("/api/v1/me/what-if", headers=l05), 400, "conversion.bad_application"
    )
    assert_problem(
        api.client.get("/api/v1/me/applications/no%20such", headers=l05), 400, "request.invalid"
    )
    assert_problem(
        api.client.get("/api/v1/me/applications/A99", headers=l05),
        404,
        "conversion.unknown_application",
    )
    assert api.size() == size


# -- authorization ----------------------------------------------------------------------------
def test_a_learner_sees_only_their_own_applications(api: Api) -> None:
    l05, l09 = api.token("L05"), api.token("L09")
    # L09 reads A09 with its explanations and the void of its first grant
    a09 = api.client.get("/api/v1/me/applications/A09", headers=l09)
    assert a09.status_code == 200
    grants = a09.json()["grants"]
    assert [(g["status"], g["voided_at"]) for g in grants] == [
        ("voided", "2025-08-15"),
        ("active", None),
    ]
    assert grants[0]["void_entry_index"] is not None
    assert grants[0]["explanation_zh"]
    assert grants[0]["explanation_en"]
    # L05 cannot: another learner's application does not exist for them
    assert_problem(
        api.client.get("/api/v1/me/applications/A09", headers=l05),
        404,
        "conversion.unknown_application",
    )
    mine = api.client.get("/api/v1/me/applications", headers=l05).json()["applications"]
    assert [a["application_id"] for a in mine] == ["A05"]
    assert {a["learner_id"] for a in mine} == {api.report.learner_ids["L05"]}


def test_only_learner_tokens_apply_or_read(api: Api) -> None:
    now = format_time(T_IMPORT)
    auditor, _ = issue_token(api.bank.engine, role="auditor", now=now)
    institution, _ = inst_svc.issue_institution_token(api.bank, "INS-OU")
    size = api.size()
    calls: list[tuple[str, str, dict[str, Any]]] = [
        ("POST", "/api/v1/me/applications", {"json": {"program_id": "P-OU-MECH"}}),
        ("GET", "/api/v1/me/applications", {}),
        ("GET", "/api/v1/me/applications/A05", {}),
        ("GET", "/api/v1/me/what-if", {"params": {"program_id": "P-OU-MECH"}}),
    ]
    for method, path, kw in calls:
        assert_problem(api.client.request(method, path, **kw), 401, "auth.required")
        bad = {"Authorization": "Bearer cbt_nope"}
        assert_problem(api.client.request(method, path, headers=bad, **kw), 401, "auth.bad_token")
        for token in (auditor, institution):
            headers = {"Authorization": f"Bearer {token}"}
            assert_problem(
                api.client.request(method, path, headers=headers, **kw), 403, "auth.forbidden"
            )
    assert api.size() == size
    # the rules are public
    rules = api.client.get("/api/v1/rules")
    assert rules.status_code == 200
    assert len(rules.json()["rules"]) == 18


# -- revocation through the records API -------------------------------------------------------
def test_a_posted_revocation_posts_the_void_it_implies(api: Api) -> None:
    """INS-CA revokes O0036, which L05's A05 consumed: the void follows the revocation."""
    a05 = api.client.get("/api/v1/me/applications/A05", headers=api.token("L05")).json()
    [n] = [i for i, g in enumerate(a05["grants"]) if g["sources"][0]["record_id"] == "O0036"]
    assert a05["grants"][n]["status"] == "active"
    _, signer = load_key_file(api.bank.settings.keys_dir / "institutions" / "INS-CA.key")
    body = {"record_id": "O0036", "reason": "issued in error", "effective_on": "2026-01-10"}
    raw = sign_entry(
        build_entry("record.revoked", "INS-CA", entry_key_id(signer.public_bytes), T_IMPORT, body),
        signer,
    )
    token, _ = inst_svc.issue_institution_token(api.bank, "INS-CA")
    size = api.size()
    resp = api.client.post(
        "/api/v1/records",
        content=json.dumps({"entries": [json.loads(raw)]}).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    assert resp.status_code == 201, resp.text
    assert resp.json()["results"][0]["index"] == size
    # revocation at `size`, then its void
    assert api.size() == size + 2
    void = parse_entry(bytes(api.bank.ledger.entry(size + 1).data))
    assert void.type == "conversion.voided"
    assert void.body["revocation_entry"] == size
    assert void.body["voided_at"] == "2026-01-10"
    after = api.client.get("/api/v1/me/applications/A05", headers=api.token("L05")).json()
    assert after["grants"][n]["status"] == "voided"
    assert after["grants"][n]["void_entry_index"] == size + 1
    # re-posting the revocation is idempotent and posts no second void
    again = api.client.post(
        "/api/v1/records",
        content=json.dumps({"entries": [json.loads(raw)]}).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    assert again.status_code == 200
    assert api.size() == size + 2
