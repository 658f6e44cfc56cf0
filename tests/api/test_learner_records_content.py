"""Issue #10 item 5: ``GET /api/v1/learners/{id}/records`` returns each record's content and
state (not only ledger indices), with the Bearer token of the learner or an auditor."""

from __future__ import annotations

import pytest
from records_fixtures import World, world_fixture  # noqa: F401 - the ``world`` fixture

from creditbank.service import tokens


@pytest.fixture
def auditor(world: World) -> str:
    from creditbank.core.entries import format_time
    from creditbank.storage.token_repo import issue_token

    token, _ = issue_token(world.bank.engine, role="auditor", now=format_time(world.clock.now()))
    return token


def test_records_come_with_content_state_and_issuer(world: World, auditor: str) -> None:
    a = world["INS-A"]
    lrn = world.learner()
    posted = world.post(
        a,
        [
            a.record(1, lrn),
            a.record(2, lrn, "skill_certificate"),
            a.record(3, lrn, "training_hours"),
            a.record(4, lrn, "skill_certificate", dedup_key="cert:old",
                     payload={**_cert(), "expires_on": "2024-12-31"}),
        ],
    )  # fmt: skip
    assert posted.status_code == 201, posted.text
    world.clock.advance(3600)
    rev = world.post(a, [a.revocation("INS-A-R0002", reason="证书撤销", effective_on="2025-03-01")])
    assert rev.status_code == 201, rev.text
    token, _ = tokens.issue_learner_token(world.bank, lrn.id)
    for who in (token, auditor):
        resp = world.client.get(f"/api/v1/learners/{lrn.id}/records", headers=world.headers(who))
        assert resp.status_code == 200, resp.text
        chains = {c["record_id"]: c for c in resp.json()["chains"]}
        course = chains["INS-A-R0001"]
        assert course["state"] == "current"
        assert course["institution"]["id"] == "INS-A"
        assert course["institution"]["name_en"] == "College INS-A"
        content = course["content"]
        assert content["kind"] == "academic_credit"
        assert content["title_zh"] == "物流管理基础"
        assert (content["credits"], content["grade"], content["term"]) == (4, 82, "2024S")
        assert content["course_id"] == "C-101"
        assert content["achieved_on"] == "2024-07-01"
        cert = chains["INS-A-R0002"]
        assert cert["state"] == "revoked"
        assert cert["revocation_reason"] == "证书撤销"
        assert (cert["content"]["level"], cert["content"]["level_label_zh"]) == (3, "三级/高级工")
        assert cert["content"]["certificate_no"] == "S2024-0001"
        assert chains["INS-A-R0003"]["content"]["hours"] == 40
        assert chains["INS-A-R0004"]["state"] == "expired"  # expired 2024-12-31; now 2025-03
        assert chains["INS-A-R0004"]["content"]["expires_on"] == "2024-12-31"


def test_another_learner_reads_nothing(world: World) -> None:
    a = world["INS-A"]
    x, y = world.learner(), world.learner("李四")
    assert world.post(a, [a.record(1, x)]).status_code == 201
    y_token, _ = tokens.issue_learner_token(world.bank, y.id)
    resp = world.client.get(f"/api/v1/learners/{x.id}/records", headers=world.headers(y_token))
    assert resp.status_code == 403
    assert "物流" not in resp.text


def _cert() -> dict[str, object]:
    return {
        "certificate_type_id": "CT-ELEC-3",
        "occupation": "electrician",
        "level": 3,
        "level_label_zh": "三级/高级工",
        "certificate_no": "S2024-0002",
        "issued_on": "2024-06-01",
    }
