"""A small, real, in-memory ledger for credential tests (no database): signed registry,
record, conversion and void entries, an RFC 9162 tree with inclusion paths computed here
independently of ``core.merkle``, and a checkpoint signed by the log key.

``make_world()`` returns a :class:`World` whose ``transcript`` holds records of every kind and
state (current, corrected, revoked, expired, custodian-posted, name on record differing),
a credit conversion with a voided grant, and totals; ``world.certificate_record`` and
``world.certificate_conversion`` are certificates. ``make_world(extra_records=n)`` adds n more
academic credits (for the 60-record benchmark).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from creditbank.core.checkpoint import Checkpoint, sign_checkpoint
from creditbank.core.credentials.build import (
    build_certificate_credential,
    build_transcript_credential,
    issue,
    issuer_profile,
)
from creditbank.core.credentials.did import did_document
from creditbank.core.credentials.model import (
    CertificateContent,
    ConversionItem,
    CourseRef,
    ExamExemptionItem,
    GrantItem,
    Holder,
    InstitutionRef,
    IssuerProfile,
    LedgerEvidence,
    ProgramRef,
    ProgramTotal,
    RecordEvidence,
    RecordItem,
    TranscriptContent,
    Voided,
)
from creditbank.core.credentials.verify import RegistryKeys
from creditbank.core.entries import build_entry, parse_entry, sign_entry
from creditbank.core.identity import name_commitment
from creditbank.core.registry import replay
from creditbank.core.signing import (
    Ed25519Signer,
    VerifierKey,
    b64encode,
    entry_key_id,
    note_key_id,
)
from creditbank.core.status_list import StatusListEntry

BASE_URL = "http://127.0.0.1:8000"
BANK_ID = "BANK"
LOG_ORIGIN = "creditbank.localhost/log"
T_REG = datetime(2024, 1, 2, 9, 0, 0, tzinfo=UTC)
T_ISSUE = datetime(2025, 9, 1, 8, 0, 0, tzinfo=UTC)
T_UNTIL = T_ISSUE + timedelta(days=180)
LEARNER = "LRN-0123456789ABCDEFGH"
NAME = "王建国"
SALT = bytes(range(16, 32))
SEEDS = {
    BANK_ID: bytes([1]) * 32,
    "INS-OU": bytes([2]) * 32,
    "INS-COL": bytes([3]) * 32,
    "INS-OLD": bytes([4]) * 32,
}
LOG_SEED = bytes([9]) * 32
INSTITUTIONS = {
    BANK_ID: ("学分银行", "Credit Bank", "credit_bank"),
    "INS-OU": ("东湖开放大学", "Donghu Open University", "open_university"),
    "INS-COL": ("江海职业技术学院", "Jianghai Vocational and Technical College", "college"),
    "INS-OLD": ("老城技工学校", "Laocheng Technical School", "vocational_school"),
}


def signer(iid: str) -> Ed25519Signer:
    return Ed25519Signer.from_seed(SEEDS[iid])


def inst(iid: str) -> InstitutionRef:
    zh, en, _ = INSTITUTIONS[iid]
    return InstitutionRef(iid, zh, en)


# --- an independent RFC 9162 tree -------------------------------------------------------------
def _leaf(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def _node(a: bytes, b: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + a + b).digest()


def _split(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def mth(leaves: list[bytes]) -> bytes:
    if len(leaves) == 1:
        return leaves[0]
    k = _split(len(leaves))
    return _node(mth(leaves[:k]), mth(leaves[k:]))


def path(m: int, leaves: list[bytes]) -> list[bytes]:
    n = len(leaves)
    if n == 1:
        return []
    k = _split(n)
    if m < k:
        return [*path(m, leaves[:k]), mth(leaves[k:])]
    return [*path(m - k, leaves[k:]), mth(leaves[:k])]


@dataclass
class World:
    entries: list[bytes] = field(default_factory=list)
    names: dict[int, str] = field(default_factory=dict)
    checkpoint: str = ""
    records: list[RecordItem] = field(default_factory=list)
    conversions: list[ConversionItem] = field(default_factory=list)
    issuer: IssuerProfile = field(
        default_factory=lambda: issuer_profile(BASE_URL, "学分银行", "Credit Bank")
    )
    holder: Holder = field(default_factory=lambda: Holder(LEARNER, NAME, SALT))
    transcript: TranscriptContent | None = None
    exam_conversion: ConversionItem | None = None
    _keys: RegistryKeys | None = None

    # -- keys -------------------------------------------------------------------------------
    @property
    def keys(self) -> RegistryKeys:
        """The institution key registry replayed from the sealed log."""
        if self._keys is None:
            raise RuntimeError("seal() the world first")
        return self._keys

    @property
    def bank_signer(self) -> Ed25519Signer:
        return signer(BANK_ID)

    @property
    def log_key(self) -> VerifierKey:
        public = Ed25519Signer.from_seed(LOG_SEED).public_bytes
        return VerifierKey(LOG_ORIGIN, note_key_id(LOG_ORIGIN, public), public)

    @property
    def did_document(self) -> dict[str, Any]:
        return did_document(self.issuer.did, self.bank_signer.public_bytes)

    # -- ledger -----------------------------------------------------------------------------
    def append(self, type_: str, issuer: str, at: datetime, body: dict[str, Any]) -> int:
        s = signer(issuer)
        raw = sign_entry(build_entry(type_, issuer, entry_key_id(s.public_bytes), at, body), s)
        self.entries.append(raw)
        return len(self.entries) - 1

    def seal(self) -> None:
        leaves = [_leaf(e) for e in self.entries]
        cp = Checkpoint(LOG_ORIGIN, len(leaves), mth(leaves))
        self.checkpoint = sign_checkpoint(cp, LOG_ORIGIN, Ed25519Signer.from_seed(LOG_SEED))
        self._leaves = leaves
        self._keys = RegistryKeys(replay(BANK_ID, [parse_entry(e) for e in self.entries]))

    def evidence(self, idx: int) -> LedgerEvidence:
        return LedgerEvidence(
            self.entries[idx],
            idx,
            len(self.entries),
            tuple(path(idx, self._leaves)),
            self.checkpoint,
        )

    def record_evidence(self, idx: int) -> RecordEvidence:
        return RecordEvidence(
            self.entries[idx],
            idx,
            len(self.entries),
            tuple(path(idx, self._leaves)),
            self.checkpoint,
            name_on_record=self.names[idx],
            salt=SALT,
        )

    # -- documents --------------------------------------------------------------------------
    def status(self, index: int = 94567) -> StatusListEntry:
        return StatusListEntry(f"{BASE_URL}/api/v1/status/1", index)

    def sign(self, doc: dict[str, Any]) -> dict[str, Any]:
        return issue(doc, self.bank_signer, issuer=self.issuer, created=T_ISSUE)

    def transcript_credential(
        self, *, credential_id: str = "urn:uuid:7d0c7c55-2c44-4bb5-9d49-000000000001"
    ) -> dict[str, Any]:
        assert self.transcript is not None
        doc = build_transcript_credential(
            self.transcript,
            issuer=self.issuer,
            credential_id=credential_id,
            valid_from=T_ISSUE,
            valid_until=T_UNTIL,
            status=self.status(),
            verify_url=f"{BASE_URL}/v/ABCD-EFGH-JKMN-PQRS",
        )
        return self.sign(doc)

    def certificate_credential(
        self,
        content: CertificateContent,
        *,
        credential_id: str = "urn:uuid:7d0c7c55-2c44-4bb5-9d49-000000000002",
    ) -> dict[str, Any]:
        doc = build_certificate_credential(
            content,
            issuer=self.issuer,
            credential_id=credential_id,
            valid_from=T_ISSUE,
            valid_until=T_UNTIL,
            status=self.status(4242),
            verify_url=f"{BASE_URL}/v/TTTT-VVVV-WWWW-XXXX",
        )
        return self.sign(doc)

    @property
    def certificate_record(self) -> CertificateContent:
        return CertificateContent(self.holder, record=self.records[0])

    @property
    def certificate_conversion(self) -> CertificateContent:
        return CertificateContent(self.holder, conversion=self.conversions[0])


def _record_body(
    record_id: str, kind: str, achieved_on: str, payload: dict[str, Any], name: str, **extra: Any
) -> dict[str, Any]:
    body = {
        "record_id": record_id,
        "dedup_key": f"{kind}:{record_id}",
        "kind": kind,
        "learner": LEARNER,
        "achieved_on": achieved_on,
        "name_commitment": name_commitment(SALT, name),
        "payload": payload,
        "posted_at": achieved_on,
    }
    body.update(extra)
    return body


def make_world(extra_records: int = 0, name: str = NAME) -> World:
    """The world of one learner registered as ``name`` (also the name on most records)."""
    name_ = name
    w = World(holder=Holder(LEARNER, name, SALT))
    # registry: the bank's genesis, three institutions, INS-OLD closed with INS-OU as custodian
    for iid, (zh, en, kind) in INSTITUTIONS.items():
        pub = signer(iid).public_bytes
        w.append(
            "institution.registered",
            BANK_ID,
            T_REG,
            {
                "institution_id": iid,
                "kind": kind,
                "name_zh": zh,
                "name_en": en,
                "keys": [{"key_id": entry_key_id(pub), "public_key": b64encode(pub)}],
            },
        )
    w.append(
        "institution.closed",
        BANK_ID,
        T_REG + timedelta(days=30),
        {"institution_id": "INS-OLD", "closed_on": "2024-02-01", "custodian": "INS-OU"},
    )
    t = T_REG + timedelta(days=200)

    def post(
        iid: str, body: dict[str, Any], name: str = name_, type_: str = "record.posted"
    ) -> int:
        idx = w.append(type_, iid, t, body)
        w.names[idx] = name
        return idx

    course = post(
        "INS-OU",
        _record_body(
            "O0001",
            "academic_credit",
            "2024-07-10",
            {
                "course_id": "C-LOG-01",
                "course_name_zh": "物流管理基础",
                "credits_centi": 400,
                "grade": 82,
                "term": "2024S",
            },
            name_,
        ),
    )
    cert = post(
        "INS-COL",
        _record_body(
            "O0002",
            "skill_certificate",
            "2024-06-01",
            {
                "certificate_type_id": "CT-COURIER-L3",
                "occupation": "courier",
                "level": 3,
                "level_label_zh": "三级/高级工",
                "certificate_no": "C2024-000123",
                "issued_on": "2024-06-01",
                "expires_on": None,
            },
            "Wang Jianguo",
        ),
        name="Wang Jianguo",
    )
    training = post(
        "INS-OU",
        _record_body(
            "O0003",
            "training_hours",
            "2024-05-20",
            {
                "training_program_id": "TP-SAFE",
                "training_name_zh": "安全生产培训",
                "hours": 48,
                "cohort": "2024-05",
            },
            name_,
        ),
    )
    revoked = post(
        "INS-OU",
        _record_body(
            "O0004",
            "academic_credit",
            "2024-07-10",
            {"course_id": "C-LOG-04", "credits_centi": 300, "grade": 61, "term": "2024S"},
            name_,
        ),
    )
    revocation = w.append(
        "record.revoked",
        "INS-OU",
        t + timedelta(days=1),
        {
            "record_id": "O0004",
            "reason": "成绩录入错误 / grade entered in error",
            "effective_on": "2024-07-21",
        },
    )
    custodial = post(
        "INS-OU",
        _record_body(
            "OLD-17",
            "work_experience",
            "2023-12-31",
            {
                "occupation_key": "courier",
                "employer": "速达快递",
                "start_on": "2021-01-01",
                "end_on": "2023-12-31",
                "duration_months": 36,
                "verified_by": "INS-OLD",
            },
            name_,
            on_behalf_of="INS-OLD",
        ),
    )
    post(
        "INS-COL",
        _record_body(
            "O0006",
            "competition_award",
            "2024-04-01",
            {
                "competition": "全市快递技能大赛",
                "tier": "municipal",
                "rank": 3,
                "field": "logistics",
            },
            name_,
        ),
    )
    corrected = post(
        "INS-COL",
        _record_body(
            "O0007b",
            "skill_certificate",
            "2023-03-01",
            {
                "certificate_type_id": "CT-FORKLIFT",
                "occupation": "forklift_driver",
                "level": None,
                "level_label_zh": "特种作业操作证",
                "certificate_no": "F-88",
                "issued_on": "2023-03-01",
                "expires_on": "2025-03-01",
            },
            name_,
            corrects="O0007",
        ),
        type_="record.corrected",
    )
    extras = []
    for n in range(extra_records):
        extras.append(
            post(
                "INS-OU",
                _record_body(
                    f"X{n:04d}",
                    "academic_credit",
                    "2024-01-15",
                    {
                        "course_id": f"C-X-{n:03d}",
                        "credits_centi": 200 + n,
                        "grade": 60 + n % 40,
                        "term": "2023A",
                    },
                    name_,
                ),
            )
        )
    explanation = (
        "物流管理基础（4学分）免修",
        "Exempted from Fundamentals of Logistics Management (4 credits)",
    )
    decision_body = {
        "application_id": "A01",
        "learner": LEARNER,
        "type": "credit_conversion",
        "applied_on": "2025-03-15",
        "rules_entry": 3,
        "reason": "granted",
        "credits_centi": 700,
        "explanation_zh": "共认定 7 学分",
        "explanation_en": "7 credits recognised in total",
        "program_id": "P-OU-LOG",
        "grants": [
            {
                "rule_key": "R-LOG-COURSE",
                "rule_version": 1,
                "mode": "course_exemption",
                "credits_centi": 400,
                "nominal_centi": 400,
                "sources": [
                    {
                        "owner": "INS-OU",
                        "record_id": "O0001",
                        "entry": course,
                        "root_record_id": "O0001",
                        "root_entry": course,
                    }
                ],
                "explanation_zh": explanation[0],
                "explanation_en": explanation[1],
                "target_course_id": "C-LOG-01",
            },
            {
                "rule_key": "R-LOG-CERT",
                "rule_version": 2,
                "mode": "elective_fixed",
                "credits_centi": 300,
                "nominal_centi": 300,
                "sources": [
                    {
                        "owner": "INS-COL",
                        "record_id": "O0002",
                        "entry": cert,
                        "root_record_id": "O0002",
                        "root_entry": cert,
                    }
                ],
                "explanation_zh": "快递员三级证书认定选修 3 学分",
                "explanation_en": "Courier level 3 certificate: 3 elective credits",
            },
        ],
        "rule_notes": [],
        "record_notes": [],
    }
    decision = w.append("conversion.decided", BANK_ID, T_REG + timedelta(days=440), decision_body)
    void = w.append(
        "conversion.voided",
        BANK_ID,
        T_REG + timedelta(days=450),
        {
            "learner": LEARNER,
            "application_id": "A01",
            "decision_entry": decision,
            "grant_no": 1,
            "rule_key": "R-LOG-CERT",
            "rule_version": 2,
            "credits_centi": 300,
            "voided_at": "2025-03-28",
            "revocation_entry": revocation,
            "owner": "INS-COL",
            "record_id": "O0002",
            "reason": "来源记录 O0002 已撤销 / source record O0002 revoked",
        },
    )
    exam_body = {
        "application_id": "A02",
        "learner": LEARNER,
        "type": "exam_exemption",
        "applied_on": "2025-04-01",
        "rules_entry": 3,
        "reason": "exam_exemption_granted",
        "credits_centi": 0,
        "explanation_zh": "免考理论知识考试",
        "explanation_en": "Exempt from the theory exam",
        "certificate_type_id": "CT-COURIER-L4",
        "grants": [],
        "rule_notes": [],
        "record_notes": [],
        "exam": {
            "certificate_type_id": "CT-COURIER-L4",
            "granted": True,
            "exam_part": "theory",
            "rule_key": "E-COURIER-THEORY",
            "rule_version": 1,
            "basis": {
                "owner": "INS-COL",
                "record_id": "O0002",
                "entry": cert,
                "root_record_id": "O0002",
                "root_entry": cert,
            },
        },
    }
    exam = w.append("conversion.decided", BANK_ID, T_REG + timedelta(days=455), exam_body)
    w.seal()

    def rec(
        idx: int, iid: str, title: tuple[str | None, str | None], state: str = "current", **kw: Any
    ) -> RecordItem:
        body = parse_entry(w.entries[idx]).body
        return RecordItem(
            entry_idx=idx,
            institution=inst(iid),
            custodian=inst("INS-OU") if iid == "INS-OLD" else None,
            kind=body["kind"],
            record_id=body["record_id"],
            achieved_on=date.fromisoformat(body["achieved_on"]),
            title_zh=title[0],
            title_en=title[1],
            state=state,  # type: ignore[arg-type]
            evidence=w.record_evidence(idx),
            **kw,
        )

    w.records = [
        rec(course, "INS-OU", ("物流管理基础", "Fundamentals of Logistics Management")),
        rec(
            cert,
            "INS-COL",
            ("快递员", "Courier"),
            subtitle_zh="三级/高级工",
            subtitle_en="Level 3 / Senior worker",
        ),
        rec(training, "INS-OU", ("安全生产培训", None)),
        rec(
            revoked,
            "INS-OU",
            ("计算机应用基础", "Computer Applications"),
            state="revoked",
            revoked_on=date(2024, 7, 21),
            revocation_reason="成绩录入错误 / grade entered in error",
            revocation=w.evidence(revocation),
        ),
        rec(custodial, "INS-OLD", ("快递员", "Courier")),
        rec(custodial + 1, "INS-COL", ("全市快递技能大赛", "City courier skills contest")),
        rec(corrected, "INS-COL", ("叉车司机", "Forklift driver"), state="expired"),
    ] + [rec(i, "INS-OU", (f"课程 {i}", f"Course {i}")) for i in extras]
    program = ProgramRef(
        "P-OU-LOG", "物流管理(专科)", "Logistics Management (associate)", inst("INS-OU")
    )
    w.conversions = [
        ConversionItem(
            entry_idx=decision,
            application_id="A01",
            type="credit_conversion",
            program=program,
            applied_on=date(2025, 3, 15),
            reason="granted",
            credits_centi=700,
            explanation_zh="共认定 7 学分",
            explanation_en="7 credits recognised in total",
            grants=(
                GrantItem(
                    0,
                    "R-LOG-COURSE",
                    1,
                    "course_exemption",
                    400,
                    CourseRef("C-LOG-01", "物流管理基础", "Fundamentals of Logistics Management"),
                    (course,),
                    explanation[0],
                    explanation[1],
                ),
                GrantItem(
                    1,
                    "R-LOG-CERT",
                    2,
                    "elective_fixed",
                    300,
                    None,
                    (cert,),
                    "快递员三级证书认定选修 3 学分",
                    "Courier level 3 certificate: 3 elective credits",
                    voided=Voided(
                        date(2025, 3, 28),
                        "来源记录 O0002 已撤销 / source record O0002 revoked",
                        void,
                        w.evidence(void),
                    ),
                ),
            ),
            evidence=w.evidence(decision),
        )
    ]
    w.exam_conversion = ConversionItem(
        entry_idx=exam,
        application_id="A02",
        type="exam_exemption",
        program=ProgramRef("CT-COURIER-L4", "快递员四级", "Courier level 4"),
        applied_on=date(2025, 4, 1),
        reason="exam_exemption_granted",
        credits_centi=0,
        explanation_zh="免考理论知识考试",
        explanation_en="Exempt from the theory exam",
        grants=(),
        evidence=w.evidence(exam),
        exam=ExamExemptionItem("CT-COURIER-L4", True, "theory", "E-COURIER-THEORY", 1, cert),
    )
    w.transcript = TranscriptContent(
        w.holder,
        tuple(w.records),
        tuple(w.conversions),
        (ProgramTotal(program, 400, 1200, 800),),
    )
    return w
