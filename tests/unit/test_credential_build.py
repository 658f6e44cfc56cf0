"""Transcript and certificate credentials: shape, facts from signed entries, refusals."""

from __future__ import annotations

import base64
import dataclasses
import json
from datetime import date, datetime
from typing import Any, cast

import pytest
from credential_fixtures import BASE_URL, LEARNER, NAME, SALT, T_ISSUE, T_UNTIL, World, make_world

from creditbank.core.credentials.build import (
    build_transcript_credential,
    issue,
    issuer_profile,
    stamp,
)
from creditbank.core.credentials.context import (
    OB_V3_CONTEXT,
    VC_V2_CONTEXT,
    context_bytes,
    context_url,
)
from creditbank.core.credentials.model import (
    CertificateContent,
    Holder,
    RecordEvidence,
    TranscriptContent,
)
from creditbank.core.credentials.proof import verify_credential_proof
from creditbank.errors import InvalidInputError


@pytest.fixture(scope="module")
def world() -> World:
    return make_world()


@pytest.fixture(scope="module")
def transcript(world: World) -> dict[str, Any]:
    doc: dict[str, Any] = world.transcript_credential()
    return doc


def _records(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["recordId"]: r for r in doc["credentialSubject"]["records"]}


def test_transcript_envelope(world: World, transcript: dict[str, Any]) -> None:
    assert transcript["@context"] == [
        VC_V2_CONTEXT,
        OB_V3_CONTEXT,
        f"{BASE_URL}/contexts/creditbank/v1",
    ]
    assert transcript["type"] == [
        "VerifiableCredential",
        "AchievementCredential",
        "CreditBankTranscript",
    ]
    assert transcript["issuer"]["id"] == "did:web:127.0.0.1%3A8000"
    assert transcript["validFrom"] == "2025-09-01T08:00:00Z"
    assert transcript["validUntil"] == stamp(T_UNTIL)
    assert "issuanceDate" not in transcript
    assert transcript["credentialStatus"] == {
        "id": f"{BASE_URL}/api/v1/status/1#94567",
        "type": "BitstringStatusListEntry",
        "statusPurpose": "revocation",
        "statusListIndex": "94567",
        "statusListCredential": f"{BASE_URL}/api/v1/status/1",
    }
    assert transcript["verificationUrl"] == f"{BASE_URL}/v/ABCD-EFGH-JKMN-PQRS"
    proof = transcript["proof"]
    assert proof["verificationMethod"] == "did:web:127.0.0.1%3A8000#key-1"
    assert proof["cryptosuite"] == "eddsa-jcs-2022"
    assert proof["@context"] == transcript["@context"]
    verify_credential_proof(transcript, world.bank_signer.public_bytes)


def test_subject_holds_the_registered_name_and_every_record(
    world: World, transcript: dict[str, Any]
) -> None:
    subject = transcript["credentialSubject"]
    assert subject["name"] == NAME
    assert subject["learnerId"] == LEARNER
    assert subject["complete"] is True
    assert subject["type"] == ["AchievementSubject"]
    assert subject["achievement"]["type"] == ["Achievement"]
    assert [r["entryIndex"] for r in subject["records"]] == [r.entry_idx for r in world.records]


def test_record_facts_come_from_the_signed_payload(transcript: dict[str, Any]) -> None:
    recs = _records(transcript)
    course = recs["O0001"]
    assert course["payload"] == {
        "course_id": "C-LOG-01",
        "course_name_zh": "物流管理基础",
        "credits_centi": 400,
        "grade": 82,
        "term": "2024S",
    }
    assert course["titleEn"] == "Fundamentals of Logistics Management"
    assert course["institutionNameZh"] == "东湖开放大学"
    assert course["state"] == "current"
    assert course["nameDiffers"] is False
    assert course["achievedOn"] == "2024-07-10"


def test_states_names_custodian(transcript: dict[str, Any]) -> None:
    recs = _records(transcript)
    assert recs["O0002"]["nameOnRecord"] == "Wang Jianguo"
    assert recs["O0002"]["nameDiffers"] is True
    assert recs["O0002"]["subtitleZh"] == "三级/高级工"
    revoked = recs["O0004"]
    assert (revoked["state"], revoked["revokedOn"]) == ("revoked", "2024-07-21")
    assert revoked["revocationReason"] == "成绩录入错误 / grade entered in error"
    assert "revocationEntryIndex" in revoked
    custodial = recs["OLD-17"]
    assert custodial["institutionId"] == "INS-OLD"
    assert (custodial["custodianId"], custodial["custodianNameEn"]) == (
        "INS-OU",
        "Donghu Open University",
    )
    assert recs["O0007b"]["state"] == "expired"
    assert "titleEn" not in recs["O0003"]  # unknown English title: left out, never invented


def test_conversions_voided_grants_and_totals(transcript: dict[str, Any]) -> None:
    (conv,) = transcript["credentialSubject"]["conversions"]
    assert conv["applicationId"] == "A01"
    assert conv["programNameEn"] == "Logistics Management (associate)"
    g0, g1 = conv["grants"]
    assert g0["targetCourseNameZh"] == "物流管理基础"
    assert g0["ruleKey"] == "R-LOG-COURSE"
    assert g0["ruleVersion"] == 1
    assert "voided" not in g0
    assert g1["voided"]["voidedOn"] == "2025-03-28"
    assert g1["voided"]["voidReason"].startswith("来源记录 O0002")
    assert g1["sourceEntries"] == [transcript["credentialSubject"]["records"][1]["entryIndex"]]
    (total,) = transcript["credentialSubject"]["totals"]
    assert (total["grantedCenti"], total["capCenti"], total["roomLeftCenti"]) == (400, 1200, 800)


def test_evidence_carries_exact_entries_and_disclosure(
    world: World, transcript: dict[str, Any]
) -> None:
    by_index = {e["entryIndex"]: e for e in transcript["evidence"]}
    for rec in world.records:
        ev = by_index[rec.entry_idx]
        assert base64.b64decode(ev["entry"]) == rec.evidence.entry
        assert ev["treeSize"] == rec.evidence.tree_size
        assert [base64.b64decode(h) for h in ev["inclusionPath"]] == list(
            rec.evidence.inclusion_path
        )
        assert ev["checkpoint"] == rec.evidence.checkpoint
        assert base64.b64decode(ev["salt"]) == SALT
        assert ev["type"] == ["Evidence", "LedgerEvidence"]
    decision = world.conversions[0]
    assert "salt" not in by_index[decision.entry_idx]
    void = decision.grants[1].voided
    assert void is not None
    assert void.entry_idx in by_index
    assert list(by_index) == sorted(by_index)


def test_certificates(world: World) -> None:
    rec_cert = world.certificate_credential(world.certificate_record)
    assert rec_cert["type"][-1] == "CreditBankCertificate"
    ach = rec_cert["credentialSubject"]["achievement"]
    assert ach["achievementType"] == "Course"
    assert ach["name"] == "物流管理基础 / Fundamentals of Logistics Management"
    assert len(rec_cert["credentialSubject"]["records"]) == 1
    assert rec_cert["credentialSubject"]["conversions"] == []
    assert [e["entryIndex"] for e in rec_cert["evidence"]] == [world.records[0].entry_idx]
    conv_cert = world.certificate_credential(world.certificate_conversion)
    assert conv_cert["credentialSubject"]["records"] == []
    assert (
        conv_cert["credentialSubject"]["achievement"]["achievementType"] == "ext:CreditRecognition"
    )
    assert "complete" not in conv_cert["credentialSubject"]


def test_permit_without_level_is_a_license(world: World) -> None:
    forklift = next(r for r in world.records if r.record_id == "O0007b")
    doc = world.certificate_credential(CertificateContent(world.holder, record=forklift))
    assert doc["credentialSubject"]["achievement"]["achievementType"] == "License"


def test_build_and_sign_are_deterministic(world: World, transcript: dict[str, Any]) -> None:
    again = world.transcript_credential()
    assert json.dumps(again, sort_keys=True) == json.dumps(transcript, sort_keys=True)


def test_subset_transcript(world: World) -> None:
    content = TranscriptContent(world.holder, tuple(world.records[:2]), complete=False)
    doc = world.sign(
        build_transcript_credential(
            content, issuer=world.issuer, credential_id="urn:uuid:x", valid_from=T_ISSUE
        )
    )
    assert doc["credentialSubject"]["complete"] is False
    assert "validUntil" not in doc
    assert "credentialStatus" not in doc
    assert len(doc["credentialSubject"]["records"]) == 2


# --- refusals: the content must match what its entries sign -------------------------------------
def _build(world: World, content: TranscriptContent) -> dict[str, Any]:
    return build_transcript_credential(
        content, issuer=world.issuer, credential_id="urn:uuid:x", valid_from=T_ISSUE
    )


@pytest.mark.parametrize(
    "change",
    [
        {"record_id": "O9999"},
        {"kind": "training_hours"},
        {"achieved_on": date(2024, 7, 11)},
        {"institution": "INS-COL"},
    ],
)
def test_record_not_matching_its_entry_is_refused(world: World, change: dict[str, Any]) -> None:
    rec = world.records[0]
    if "institution" in change:
        change = {"institution": dataclasses.replace(rec.institution, institution_id="INS-COL")}
    bad = dataclasses.replace(rec, **change)
    with pytest.raises(InvalidInputError) as e:
        _build(world, TranscriptContent(world.holder, (bad,)))
    assert e.value.code == "credential.content"


def test_wrong_name_on_record_or_salt_or_learner_is_refused(world: World) -> None:
    rec = world.records[0]
    ev = rec.evidence
    wrong_name = dataclasses.replace(rec, evidence=dataclasses.replace(ev, name_on_record="王建図"))
    other_salt = bytes(16)
    wrong_salt = dataclasses.replace(rec, evidence=dataclasses.replace(ev, salt=other_salt))
    for item, holder in (
        (wrong_name, world.holder),
        (wrong_salt, world.holder),
        (rec, Holder("LRN-ZZZZZZZZZZZZZZZZ", NAME, SALT)),
        (wrong_salt, Holder(LEARNER, NAME, other_salt)),
    ):
        with pytest.raises(InvalidInputError) as e:
            _build(world, TranscriptContent(holder, (item,)))
        assert e.value.code == "credential.content"


def test_grant_not_matching_the_decision_is_refused(world: World) -> None:
    conv = world.conversions[0]
    g0 = conv.grants[0]
    for bad_grant in (
        dataclasses.replace(g0, credits_centi=500),
        dataclasses.replace(g0, rule_version=2),
        dataclasses.replace(g0, explanation_en="More credits"),
        dataclasses.replace(g0, source_entries=(1,)),
        dataclasses.replace(g0, target_course=None),
    ):
        bad = dataclasses.replace(conv, grants=(bad_grant, conv.grants[1]))
        with pytest.raises(InvalidInputError):
            _build(world, TranscriptContent(world.holder, (), (bad,)))
    with pytest.raises(InvalidInputError):
        _build(
            world,
            TranscriptContent(world.holder, (), (dataclasses.replace(conv, credits_centi=1),)),
        )
    with pytest.raises(InvalidInputError):
        _build(
            world,
            TranscriptContent(
                world.holder, (), (dataclasses.replace(conv, grants=conv.grants[:1]),)
            ),
        )


def test_evidence_that_is_not_a_record_is_refused(world: World) -> None:
    rec = world.records[0]
    decision = world.conversions[0].evidence
    ev = RecordEvidence(
        decision.entry,
        rec.entry_idx,
        decision.tree_size,
        decision.inclusion_path,
        decision.checkpoint,
        name_on_record=NAME,
        salt=SALT,
    )
    with pytest.raises(InvalidInputError):
        _build(world, TranscriptContent(world.holder, (dataclasses.replace(rec, evidence=ev),)))


def test_content_model_invariants(world: World) -> None:
    rec = world.records[0]
    with pytest.raises(InvalidInputError):
        CertificateContent(world.holder)
    with pytest.raises(InvalidInputError):
        CertificateContent(world.holder, record=rec, conversion=world.conversions[0])
    with pytest.raises(InvalidInputError):
        TranscriptContent(world.holder, (rec, rec))
    with pytest.raises(InvalidInputError):
        dataclasses.replace(rec, state="revoked")  # no date, no reason
    with pytest.raises(InvalidInputError):
        dataclasses.replace(rec, state=cast(Any, "lost"))
    with pytest.raises(InvalidInputError):
        Holder(LEARNER, NAME, b"short")


def test_times_and_issuer(world: World) -> None:
    with pytest.raises(InvalidInputError):
        stamp(datetime(2025, 1, 1))  # noqa: DTZ001 - naive on purpose
    with pytest.raises(InvalidInputError) as e:
        build_transcript_credential(
            cast(TranscriptContent, world.transcript),
            issuer=world.issuer,
            credential_id="urn:uuid:x",
            valid_from=T_ISSUE,
            valid_until=T_ISSUE,
        )
    assert e.value.code == "credential.validity"
    other = issuer_profile("https://other.example", "别家", "Other")
    doc = _build(world, TranscriptContent(world.holder, (world.records[0],)))
    with pytest.raises(InvalidInputError) as e:
        issue(doc, world.bank_signer, issuer=other, created=T_ISSUE)
    assert e.value.code == "credential.issuer"


def test_context_file_defines_every_term_we_write(transcript: dict[str, Any]) -> None:
    ctx = json.loads(context_bytes())["@context"]
    assert ctx["@protected"] is True
    assert context_url(BASE_URL + "/") == f"{BASE_URL}/contexts/creditbank/v1"
    ob_or_vc = {
        "@context",
        "id",
        "type",
        "issuer",
        "name",
        "description",
        "validFrom",
        "validUntil",
        "credentialStatus",
        "credentialSubject",
        "evidence",
        "proof",
        "achievement",
        "achievementType",
        "criteria",
        "narrative",
        "url",
        "statusPurpose",
        "statusListIndex",
        "statusListCredential",
        "cryptosuite",
        "created",
        "verificationMethod",
        "proofPurpose",
        "proofValue",
    }

    def keys(value: Any, inside_payload: bool = False) -> set[str]:
        out: set[str] = set()
        if isinstance(value, dict):
            for k, v in value.items():
                out.add(k)
                if k != "payload":
                    out |= keys(v)
        elif isinstance(value, list):
            for v in value:
                out |= keys(v)
        return out

    missing = keys(transcript) - ob_or_vc - set(ctx)
    assert not missing, missing
