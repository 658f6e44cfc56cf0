"""Credential-shaped documents for the render tests, built from the bundled sample dataset.

The dicts follow docs/formats/credentials.md (the fields the page reads); the proof and
evidence members are filled with fixed, realistically sized material so the attachment has
the size of a real credential. The render layer only reads and attaches these bytes; the
credential core's own tests sign and verify real ones.
"""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import date
from functools import cache
from importlib import resources
from typing import Any

from creditbank.core.records import credits_to_centi

SAMPLE = resources.files("creditbank") / "data" / "sample"
ISSUER = {
    "id": "did:web:127.0.0.1%3A8000",
    "type": ["Profile"],
    "name": "江海终身学习学分银行 / Jianghai Lifelong Learning Credit Bank",
    "issuerNameZh": "江海终身学习学分银行",
    "issuerNameEn": "Jianghai Lifelong Learning Credit Bank",
    "url": "http://127.0.0.1:8000",
}
BASE_URL = "http://127.0.0.1:8000"


@cache
def _load(name: str) -> Any:
    return json.loads((SAMPLE / name).read_text(encoding="utf-8"))


def _courses() -> dict[str, tuple[str, str]]:
    progs = _load("programs.json")
    out: dict[str, tuple[str, str]] = {}
    for p in progs["degree_programs"] + progs["source_programs"]:
        for c in p["courses"]:
            out[c["id"]] = (c["name_zh"], c["name_en"])
    for t in progs["training_programs"]:
        out[t["id"]] = (t["name_zh"], t["name_en"])
    return out


def _titles(o: dict[str, Any]) -> tuple[str, str, str, str]:
    p = o["payload"]
    kind = o["kind"]
    if kind == "academic_credit":
        zh, en = _courses().get(p["course_id"], (p.get("course_name_zh", p["course_id"]), ""))
        return zh, en, "", ""
    if kind == "training_hours":
        zh, en = _courses().get(p["training_program_id"], (p.get("training_name_zh", ""), ""))
        return zh, en, "", ""
    if kind == "skill_certificate":
        ct = {c["id"]: c for c in _load("certificate_types.json")}.get(p["certificate_type_id"])
        if ct is None:
            return p["certificate_type_id"], "", "", ""
        return (
            f"{ct['occupation_zh']}职业技能等级证书",
            f"{ct['occupation_en']} vocational skill certificate",
            ct.get("level_label_zh") or "",
            ct.get("level_label_en") or "",
        )
    if kind == "competition_award":
        return p["competition"], "Skills competition", "", ""
    return "工作经历", "Work experience", p.get("employer", ""), ""


def _payload(o: dict[str, Any]) -> dict[str, Any]:
    p = dict(o["payload"])
    if "credits" in p:
        p["credits_centi"] = credits_to_centi(p.pop("credits"))
    return p


def _evidence(i: int, name: str) -> dict[str, Any]:
    entry = json.dumps({"v": 1, "type": "record.posted", "n": i, "pad": "x" * 600}).encode()
    path = [base64.b64encode(hashlib.sha256(bytes([i, k])).digest()).decode() for k in range(12)]
    return {
        "type": ["Evidence", "LedgerEvidence"],
        "entryIndex": i,
        "entry": base64.b64encode(entry).decode(),
        "treeSize": 4096,
        "inclusionPath": path,
        "checkpoint": "creditbank.localhost/log\n4096\n"
        + "A" * 44
        + "\n\n— creditbank "
        + "B" * 88
        + "\n",
        "nameOnRecord": name,
        "salt": base64.b64encode(bytes(16)).decode(),
    }


def transcript_credential(
    learner: str = "L01",
    *,
    name: str | None = None,
    extra_records: int = 0,
    with_states: bool = True,
) -> dict[str, Any]:
    """A transcript credential for a sample learner (optionally renamed, padded with records).

    ``with_states`` marks a few records corrected / revoked / expired, one name as differing
    on its source record, and one institution as closed with a custodian, so every state and
    note of the page is exercised.
    """
    learners = {x["id"]: x for x in _load("learners.json")}
    insts = {x["id"]: x for x in _load("institutions.json")}
    person = learners[learner]
    holder = name or person["name_zh"]
    outcomes = [o for o in _load("outcomes.json") if o["learner_id"] == learner]
    if extra_records:
        pool = [o for o in _load("outcomes.json") if o["learner_id"] != learner]
        outcomes = outcomes + pool[:extra_records]
    records = []
    evidence = []
    for n, o in enumerate(outcomes):
        idx = 100 + n
        zh, en, sub_zh, sub_en = _titles(o)
        inst = insts[o["issuer_id"]]
        rec: dict[str, Any] = {
            "type": "LedgerRecord",
            "entryIndex": idx,
            "recordId": o["id"],
            "kind": o["kind"],
            "institutionId": inst["id"],
            "institutionNameZh": inst["name_zh"],
            "institutionNameEn": inst["name_en"],
            "achievedOn": o["achieved_on"],
            "titleZh": zh,
            "titleEn": en,
            "subtitleZh": sub_zh,
            "subtitleEn": sub_en,
            "state": "current",
            "nameOnRecord": holder,
            "nameDiffers": False,
            "payload": _payload(o),
        }
        if inst.get("records_custodian"):
            cust = insts[inst["records_custodian"]]
            rec["custodianId"] = cust["id"]
            rec["custodianNameZh"] = cust["name_zh"]
            rec["custodianNameEn"] = cust["name_en"]
        if o.get("revoked_at"):
            rec.update(
                state="revoked", revokedOn=o["revoked_at"], revocationReason=o["revocation_reason"]
            )
        records.append(rec)
        evidence.append(_evidence(idx, holder))
    if with_states and len(records) >= 4:
        records[1]["state"] = "corrected"
        records[2].update(
            state="revoked",
            revokedOn="2025-02-01",
            revocationReason="成绩录入错误 / grade entered in error",
        )
        records[3]["nameOnRecord"] = "王建囯"
        records[3]["nameDiffers"] = True
    conversions = [
        {
            "type": "ConversionDecision",
            "entryIndex": 300,
            "applicationId": "A01",
            "conversionType": "credit_conversion",
            "programId": "P-OU-LOG",
            "programNameZh": "物流管理(专科)",
            "programNameEn": "Logistics Management (associate)",
            "institutionNameZh": "东湖开放大学",
            "institutionNameEn": "Donghu Open University",
            "appliedOn": "2025-03-15",
            "creditsCenti": 600,
            "explanationZh": "依据已发布规则认定 6 学分，未超过该专业 12 学分的转换上限。",
            "explanationEn": (
                "6 credits recognised under the published rules, "
                "within the programme's 12-credit cap."
            ),
            "grants": [
                {
                    "type": "ConversionGrant",
                    "grantNo": 0,
                    "ruleKey": "R-OU-LOG-CERT-COURIER",
                    "ruleVersion": 1,
                    "creditsCenti": 400,
                    "sourceEntries": [104],
                    "targetCourseNameZh": "快递业务与运营",
                    "targetCourseNameEn": "Express Delivery Operations",
                    "explanationZh": "持有快递员四级证书，免修《快递业务与运营》，计 4 学分。",
                    "explanationEn": (
                        "Courier level-4 certificate: exempt from Express Delivery "
                        "Operations, 4 credits."
                    ),
                },
                {
                    "type": "ConversionGrant",
                    "grantNo": 1,
                    "ruleKey": "R-OU-LOG-TRAIN-HOURS",
                    "ruleVersion": 2,
                    "creditsCenti": 200,
                    "sourceEntries": [105, 106],
                    "explanationZh": "岗位培训 64 学时折算选修 2 学分。",
                    "explanationEn": "64 training hours converted to 2 elective credits.",
                    "voided": {
                        "type": "GrantVoid",
                        "voidedOn": "2025-07-21",
                        "voidReason": "来源记录被撤销 / source record revoked",
                        "voidEntryIndex": 310,
                    },
                },
            ],
        }
    ]
    totals = [
        {
            "type": "ProgramTotal",
            "programId": "P-OU-LOG",
            "programNameZh": "物流管理(专科)",
            "programNameEn": "Logistics Management (associate)",
            "grantedCenti": 400,
            "capCenti": 1200,
            "roomLeftCenti": 800,
        }
    ]
    return {
        "@context": [
            "https://www.w3.org/ns/credentials/v2",
            "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json",
            f"{BASE_URL}/contexts/creditbank/v1",
        ],
        "id": "urn:uuid:5b3c9a7e-1f0d-4c1e-9d55-0a8e6f1b2c3d",
        "type": ["VerifiableCredential", "AchievementCredential", "CreditBankTranscript"],
        "issuer": ISSUER,
        "name": "学习成果记录 / Learning Transcript",
        "validFrom": "2025-03-01T08:00:00Z",
        "credentialSubject": {
            "type": ["AchievementSubject"],
            "name": holder,
            "learnerId": "LRN-" + hashlib.sha256(learner.encode()).hexdigest()[:20].upper(),
            "complete": True,
            "records": records,
            "conversions": conversions,
            "totals": totals,
        },
        "evidence": evidence,
        "proof": {
            "type": "DataIntegrityProof",
            "cryptosuite": "eddsa-jcs-2022",
            "created": "2025-03-01T08:00:00Z",
            "verificationMethod": "did:web:127.0.0.1%3A8000#key-1",
            "proofPurpose": "assertionMethod",
            "proofValue": "z" + "5" * 86,
        },
    }


def certificate_credential(
    learner: str = "L01", index: int = 0, *, name: str | None = None
) -> dict[str, Any]:
    """A one-record certificate credential cut from the learner's transcript."""
    t = transcript_credential(learner, name=name, with_states=False)
    rec = t["credentialSubject"]["records"][index]
    t["type"] = ["VerifiableCredential", "AchievementCredential", "CreditBankCertificate"]
    t["id"] = "urn:uuid:0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9"
    t["credentialSubject"].update(records=[rec], conversions=[], totals=[])
    t["evidence"] = [e for e in t["evidence"] if e["entryIndex"] == rec["entryIndex"]]
    return t


def encode(credential: dict[str, Any]) -> bytes:
    """The credential's bytes as the bank would attach them (compact UTF-8 JSON)."""
    return json.dumps(
        credential, ensure_ascii=False, separators=(",", ":"), sort_keys=True
    ).encode()


CODE = "7K3M9Q2RXW5T8V4N"
EXPIRES = date(2025, 8, 28)
