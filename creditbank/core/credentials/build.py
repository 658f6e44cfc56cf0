"""Build transcript and certificate credentials (VC 2.0, Open Badges 3.0, our context).

The builders read every signed fact (payloads, dates, rule keys, explanations, source records)
from the entry bytes in each item's evidence and cross-check the content model against them,
so a credential never shows a fact its evidence does not sign; a mismatch is the caller's bug
and is refused (``credential.content``). Each entry is parsed once; the signed document is
canonicalized once, by the proof. See ``docs/formats/credentials.md`` for the shape.
"""

from __future__ import annotations

import base64
import unicodedata
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final

from creditbank.core.credentials.context import credential_contexts
from creditbank.core.credentials.did import did_web, verification_method_id
from creditbank.core.credentials.model import (
    CertificateContent,
    ConversionItem,
    GrantItem,
    Holder,
    IssuerProfile,
    LedgerEvidence,
    ProgramTotal,
    RecordEvidence,
    RecordItem,
    TranscriptContent,
    Voided,
)
from creditbank.core.credentials.proof import sign_credential
from creditbank.core.entries import Entry, parse_entry
from creditbank.core.identity import name_commitment
from creditbank.core.signing import Signer
from creditbank.core.status_list import StatusListEntry
from creditbank.errors import InvalidInputError

TRANSCRIPT_TYPE: Final = "CreditBankTranscript"
CERTIFICATE_TYPE: Final = "CreditBankCertificate"
RECORD_ENTRY_TYPES: Final = frozenset({"record.posted", "record.corrected"})

#: OB 3.0 ``achievementType`` per record kind (``ext:`` for kinds OB does not name).
ACHIEVEMENT_TYPES: Final[Mapping[str, str]] = {
    "academic_credit": "Course",
    "skill_certificate": "Certificate",
    "training_hours": "CertificateOfCompletion",
    "competition_award": "Award",
    "work_experience": "ext:WorkExperience",
}
KIND_LABELS: Final[Mapping[str, tuple[str, str]]] = {
    "academic_credit": ("课程学分", "Course credit"),
    "skill_certificate": ("技能证书", "Skill certificate"),
    "training_hours": ("培训学时", "Training hours"),
    "competition_award": ("竞赛获奖", "Competition award"),
    "work_experience": ("工作经历", "Work experience"),
}
TRANSCRIPT_NAME: Final = ("学习成果记录", "Learning Transcript")
CERTIFICATE_NAME: Final = ("学分银行证书", "Credit Bank Certificate")
RECOGNITION_NAME: Final = ("学分认定", "Credit recognition")
EXEMPTION_NAME: Final = ("考试免考认定", "Exam exemption")


def _mismatch(what: str) -> InvalidInputError:
    return InvalidInputError(
        f"content does not match its signed entry: {what}", code="credential.content"
    )


def stamp(t: datetime) -> str:
    """An XML Schema dateTimeStamp in UTC to the second (``2026-12-03T10:00:00Z``).

    Raises:
        InvalidInputError: ``credential.naive_time`` if ``t`` has no time zone.
    """
    if t.tzinfo is None:
        raise InvalidInputError(
            "credential times must be timezone-aware", code="credential.naive_time"
        )
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def issuer_profile(public_base_url: str, name_zh: str, name_en: str) -> IssuerProfile:
    """The bank as issuer: ``did:web`` of its public base URL and its names.

    Raises:
        InvalidInputError: ``credential.base_url`` for a URL that is not plain http(s).
    """
    return IssuerProfile(did_web(public_base_url), name_zh, name_en, public_base_url.rstrip("/"))


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _put(obj: dict[str, Any], key: str, value: Any) -> None:
    if value is not None:
        obj[key] = value


def _both(zh: str | None, en: str | None) -> str:
    return " / ".join(x for x in (zh, en) if x) or "—"


def evidence_json(ev: LedgerEvidence) -> dict[str, Any]:
    """The ``evidence`` item of one ledger entry (with the name disclosure for a record)."""
    out: dict[str, Any] = {
        "type": ["Evidence", "LedgerEvidence"],
        "entryIndex": ev.leaf_index,
        "entry": _b64(ev.entry),
        "treeSize": ev.tree_size,
        "inclusionPath": [_b64(h) for h in ev.inclusion_path],
        "checkpoint": ev.checkpoint,
    }
    if isinstance(ev, RecordEvidence):
        out["nameOnRecord"] = ev.name_on_record
        out["salt"] = _b64(ev.salt)
    return out


def _nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


def _record_entry(item: RecordItem, holder: Holder) -> Entry:
    entry = parse_entry(item.evidence.entry)
    body = entry.body
    if entry.type not in RECORD_ENTRY_TYPES:
        raise _mismatch(f"entry {item.entry_idx} is a {entry.type}, not a record")
    owner = body.get("on_behalf_of") or entry.issuer
    checks = (
        ("owner", owner, item.institution.institution_id),
        ("kind", body.get("kind"), item.kind),
        ("record_id", body.get("record_id"), item.record_id),
        ("achieved_on", body.get("achieved_on"), item.achieved_on.isoformat()),
        ("learner", body.get("learner"), holder.learner_id),
    )
    for name, signed, shown in checks:
        if signed != shown:
            raise _mismatch(f"record at {item.entry_idx}: {name}")
    if item.evidence.salt != holder.salt:
        raise _mismatch(f"record at {item.entry_idx}: salt is not the holder's")
    if name_commitment(item.evidence.salt, item.evidence.name_on_record) != body.get(
        "name_commitment"
    ):
        raise _mismatch(f"record at {item.entry_idx}: name on record does not open the commitment")
    return entry


def record_json(item: RecordItem, holder: Holder, entry: Entry) -> dict[str, Any]:
    """The ``LedgerRecord`` object shown for one record (facts from the signed body)."""
    body = entry.body
    rec: dict[str, Any] = {
        "type": "LedgerRecord",
        "entryIndex": item.entry_idx,
        "recordId": body["record_id"],
        "kind": body["kind"],
        "institutionId": item.institution.institution_id,
        "institutionNameZh": item.institution.name_zh,
        "institutionNameEn": item.institution.name_en,
    }
    if item.custodian is not None:
        rec["custodianId"] = item.custodian.institution_id
        rec["custodianNameZh"] = item.custodian.name_zh
        rec["custodianNameEn"] = item.custodian.name_en
    rec["achievedOn"] = body["achieved_on"]
    _put(rec, "titleZh", item.title_zh)
    _put(rec, "titleEn", item.title_en)
    _put(rec, "subtitleZh", item.subtitle_zh)
    _put(rec, "subtitleEn", item.subtitle_en)
    rec["state"] = item.state
    if item.revoked_on is not None:
        rec["revokedOn"] = item.revoked_on.isoformat()
    _put(rec, "revocationReason", item.revocation_reason)
    if item.revocation is not None:
        rec["revocationEntryIndex"] = item.revocation.leaf_index
    rec["nameOnRecord"] = item.evidence.name_on_record
    rec["nameDiffers"] = _nfc(item.evidence.name_on_record) != _nfc(holder.name)
    rec["payload"] = body["payload"]
    return rec


def _void_json(v: Voided) -> dict[str, Any]:
    return {
        "type": "GrantVoid",
        "voidedOn": v.on.isoformat(),
        "voidReason": v.reason,
        "voidEntryIndex": v.entry_idx,
    }


def _grant_json(item: GrantItem, signed: Mapping[str, Any], where: str) -> dict[str, Any]:
    sources = [s["entry"] for s in signed["sources"]]
    checks = (
        ("rule_key", signed["rule_key"], item.rule_key),
        ("rule_version", signed["rule_version"], item.rule_version),
        ("mode", signed["mode"], item.mode),
        ("credits", signed["credits_centi"], item.credits_centi),
        ("sources", sources, list(item.source_entries)),
        ("explanation_zh", signed["explanation_zh"], item.explanation_zh),
        ("explanation_en", signed["explanation_en"], item.explanation_en),
        (
            "target course",
            signed.get("target_course_id"),
            None if item.target_course is None else item.target_course.course_id,
        ),
    )
    for name, a, b in checks:
        if a != b:
            raise _mismatch(f"{where} grant {item.grant_no}: {name}")
    out: dict[str, Any] = {
        "type": "ConversionGrant",
        "grantNo": item.grant_no,
        "ruleKey": signed["rule_key"],
        "ruleVersion": signed["rule_version"],
        "mode": signed["mode"],
        "creditsCenti": signed["credits_centi"],
    }
    if item.target_course is not None:
        out["targetCourseId"] = item.target_course.course_id
        out["targetCourseNameZh"] = item.target_course.name_zh
        out["targetCourseNameEn"] = item.target_course.name_en
    out["sourceEntries"] = sources
    out["explanationZh"] = signed["explanation_zh"]
    out["explanationEn"] = signed["explanation_en"]
    if item.voided is not None:
        out["voided"] = _void_json(item.voided)
    return out


def _conversion_entry(item: ConversionItem, holder: Holder) -> Entry:
    entry = parse_entry(item.evidence.entry)
    body = entry.body
    where = f"decision at {item.entry_idx}"
    if entry.type != "conversion.decided":
        raise _mismatch(f"{where} is a {entry.type}")
    program = body.get("program_id") or body.get("certificate_type_id")
    checks = (
        ("learner", body.get("learner"), holder.learner_id),
        ("application", body.get("application_id"), item.application_id),
        ("type", body.get("type"), item.type),
        ("applied_on", body.get("applied_on"), item.applied_on.isoformat()),
        ("reason", body.get("reason"), item.reason),
        ("credits", body.get("credits_centi"), item.credits_centi),
        ("explanation_zh", body.get("explanation_zh"), item.explanation_zh),
        ("explanation_en", body.get("explanation_en"), item.explanation_en),
        ("program", program, item.program.program_id),
        ("grant count", len(body.get("grants", [])), len(item.grants)),
    )
    for name, signed, shown in checks:
        if signed != shown:
            raise _mismatch(f"{where}: {name}")
    return entry


def conversion_json(item: ConversionItem, entry: Entry) -> dict[str, Any]:
    """The ``ConversionDecision`` object shown for one decision (facts from the signed body).

    Raises:
        InvalidInputError: ``credential.content`` if a grant differs from the signed body.
    """
    body = entry.body
    where = f"decision at {item.entry_idx}"
    out: dict[str, Any] = {
        "type": "ConversionDecision",
        "entryIndex": item.entry_idx,
        "applicationId": body["application_id"],
        "conversionType": body["type"],
        "programId": item.program.program_id,
        "programNameZh": item.program.name_zh,
        "programNameEn": item.program.name_en,
        "appliedOn": body["applied_on"],
        "decisionReason": body["reason"],
        "creditsCenti": body["credits_centi"],
        "explanationZh": body["explanation_zh"],
        "explanationEn": body["explanation_en"],
        "grants": [
            _grant_json(g, body["grants"][g.grant_no], where)
            for g in item.grants
            if 0 <= g.grant_no < len(body["grants"])
        ],
    }
    if len(out["grants"]) != len(item.grants) or [g.grant_no for g in item.grants] != list(
        range(len(item.grants))
    ):
        raise _mismatch(f"{where}: grants must be numbered 0..n-1 in body order")
    exam = body.get("exam")
    if (exam is None) != (item.exam is None):
        raise _mismatch(f"{where}: exam exemption")
    if exam is not None and item.exam is not None:
        basis = exam.get("basis")
        signed_exam = (
            exam["certificate_type_id"],
            exam["granted"],
            exam["exam_part"],
            exam["rule_key"],
            exam["rule_version"],
            None if basis is None else basis["entry"],
        )
        shown = (
            item.exam.certificate_type_id,
            item.exam.granted,
            item.exam.exam_part,
            item.exam.rule_key,
            item.exam.rule_version,
            item.exam.basis_entry,
        )
        if signed_exam != shown:
            raise _mismatch(f"{where}: exam exemption")
        ex: dict[str, Any] = {
            "type": "ExamExemption",
            "certificateTypeId": exam["certificate_type_id"],
            "granted": exam["granted"],
        }
        _put(ex, "examPart", exam["exam_part"])
        _put(ex, "ruleKey", exam["rule_key"])
        _put(ex, "ruleVersion", exam["rule_version"])
        _put(ex, "basisEntry", None if basis is None else basis["entry"])
        if item.exam.voided is not None:
            ex["voided"] = _void_json(item.exam.voided)
        out["exam"] = ex
    return out


def total_json(total: ProgramTotal) -> dict[str, Any]:
    """The ``ProgramTotal`` object of one programme."""
    return {
        "type": "ProgramTotal",
        "programId": total.program.program_id,
        "programNameZh": total.program.name_zh,
        "programNameEn": total.program.name_en,
        "grantedCenti": total.granted_centi,
        "capCenti": total.cap_centi,
        "roomLeftCenti": total.room_left_centi,
    }


def _collect_evidence(
    records: Sequence[RecordItem], conversions: Sequence[ConversionItem]
) -> list[dict[str, Any]]:
    items: dict[int, LedgerEvidence] = {}

    def add(ev: LedgerEvidence | None) -> None:
        if ev is None:
            return
        seen = items.get(ev.leaf_index)
        if seen is not None and seen != ev:
            raise _mismatch(f"two different evidences for entry {ev.leaf_index}")
        items[ev.leaf_index] = ev

    for r in records:
        add(r.evidence)
        add(r.revocation)
    for c in conversions:
        add(c.evidence)
        for g in c.grants:
            add(g.voided.evidence if g.voided else None)
        if c.exam is not None and c.exam.voided is not None:
            add(c.exam.voided.evidence)
    return [evidence_json(items[i]) for i in sorted(items)]


def _envelope(
    *,
    kind_type: str,
    name: str,
    description: str,
    issuer: IssuerProfile,
    credential_id: str,
    valid_from: datetime,
    valid_until: datetime | None,
    status: StatusListEntry | None,
    verify_url: str | None,
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "@context": credential_contexts(issuer.url),
        "id": credential_id,
        "type": ["VerifiableCredential", "AchievementCredential", kind_type],
        "issuer": {
            "id": issuer.did,
            "type": ["Profile"],
            "name": _both(issuer.name_zh, issuer.name_en),
            "issuerNameZh": issuer.name_zh,
            "issuerNameEn": issuer.name_en,
            "url": issuer.url,
        },
        "name": name,
        "description": description,
        "validFrom": stamp(valid_from),
    }
    if valid_until is not None:
        if valid_until <= valid_from:
            raise InvalidInputError(
                "validUntil must be after validFrom", code="credential.validity"
            )
        doc["validUntil"] = stamp(valid_until)
    if status is not None:
        doc["credentialStatus"] = status.to_json()
    _put(doc, "verificationUrl", verify_url)
    return doc


def _subject(
    holder: Holder,
    achievement: dict[str, Any],
    records: list[dict[str, Any]],
    conversions: list[dict[str, Any]],
    totals: list[dict[str, Any]],
    complete: bool | None,
) -> dict[str, Any]:
    subject: dict[str, Any] = {
        "type": ["AchievementSubject"],
        "name": holder.name,
        "learnerId": holder.learner_id,
        "achievement": achievement,
    }
    if complete is not None:
        subject["complete"] = complete
    subject["records"] = records
    subject["conversions"] = conversions
    subject["totals"] = totals
    return subject


def build_transcript_credential(
    content: TranscriptContent,
    *,
    issuer: IssuerProfile,
    credential_id: str,
    valid_from: datetime,
    valid_until: datetime | None = None,
    status: StatusListEntry | None = None,
    verify_url: str | None = None,
) -> dict[str, Any]:
    """The unsigned transcript credential (sign it with :func:`issue`).

    Args:
        content: what the transcript holds.
        issuer: the bank (see :func:`issuer_profile`).
        credential_id: the credential's URI (``urn:uuid:…`` or an https URL).
        valid_from: issuance time (aware).
        valid_until: end of validity, e.g. the verification code's expiry.
        status: the credential's place in the revocation status list.
        verify_url: ``{public_base_url}/v/{code}``, the URL the PDF's QR code encodes.

    Raises:
        InvalidInputError: ``credential.content`` if the content does not match its signed
            entries; ``credential.naive_time`` / ``credential.validity`` for bad times; any
            entry parsing error (the evidence bytes are not a canonical entry).
    """
    holder = content.holder
    records = [record_json(r, holder, _record_entry(r, holder)) for r in content.records]
    conversions = [conversion_json(c, _conversion_entry(c, holder)) for c in content.conversions]
    totals = [total_json(t) for t in content.totals]
    zh, en = TRANSCRIPT_NAME
    scope_zh = "全部记录" if content.complete else "所选记录"
    scope_en = "all records" if content.complete else "selected records"
    achievement = {
        "id": f"{credential_id}#achievement",
        "type": ["Achievement"],
        "achievementType": "ext:Transcript",
        "name": f"{zh} / {en}",
        "description": (
            f"{holder.name}: {len(records)} 条学习成果（{scope_zh}）、"
            f"{len(conversions)} 项学分认定 / {len(records)} learning outcomes ({scope_en}), "
            f"{len(conversions)} credit decisions"
        ),
        "criteria": {
            "narrative": (
                "每条记录由其机构签名并收录于学分银行公开日志 / Each record is signed by its "
                "institution and included in the Credit Bank's public log."
            )
        },
    }
    doc = _envelope(
        kind_type=TRANSCRIPT_TYPE,
        name=f"{zh} / {en}",
        description=f"{zh}：{holder.name} / {en}: {holder.name}",
        issuer=issuer,
        credential_id=credential_id,
        valid_from=valid_from,
        valid_until=valid_until,
        status=status,
        verify_url=verify_url,
    )
    doc["credentialSubject"] = _subject(
        holder, achievement, records, conversions, totals, content.complete
    )
    doc["evidence"] = _collect_evidence(content.records, content.conversions)
    return doc


def _record_achievement(
    item: RecordItem, credential_id: str, body: Mapping[str, Any]
) -> dict[str, Any]:
    kind_zh, kind_en = KIND_LABELS[item.kind]
    title = _both(item.title_zh, item.title_en) if (item.title_zh or item.title_en) else None
    shown = title or item.record_id
    ach_type = ACHIEVEMENT_TYPES[item.kind]
    if item.kind == "skill_certificate" and body.get("payload", {}).get("level") is None:
        ach_type = "License"
    return {
        "id": f"{credential_id}#achievement",
        "type": ["Achievement"],
        "achievementType": ach_type,
        "name": title or f"{kind_zh} / {kind_en}",
        "description": f"{kind_zh} / {kind_en}: {shown}",
        "criteria": {
            "narrative": (
                f"由{item.institution.name_zh}签名，学分银行日志第 {item.entry_idx} 条 / Signed by "
                f"{item.institution.name_en}, Credit Bank log entry {item.entry_idx}."
            )
        },
    }


def _conversion_achievement(item: ConversionItem, credential_id: str) -> dict[str, Any]:
    zh, en = EXEMPTION_NAME if item.type == "exam_exemption" else RECOGNITION_NAME
    return {
        "id": f"{credential_id}#achievement",
        "type": ["Achievement"],
        "achievementType": "ext:CreditRecognition",
        "name": f"{zh}：{item.program.name_zh} / {en}: {item.program.name_en}",
        "description": f"{item.explanation_zh} / {item.explanation_en}",
        "criteria": {
            "narrative": (
                f"学分银行认定决定，日志第 {item.entry_idx} 条 / Credit Bank decision, log entry "
                f"{item.entry_idx}."
            )
        },
    }


def build_certificate_credential(
    content: CertificateContent,
    *,
    issuer: IssuerProfile,
    credential_id: str,
    valid_from: datetime,
    valid_until: datetime | None = None,
    status: StatusListEntry | None = None,
    verify_url: str | None = None,
) -> dict[str, Any]:
    """The unsigned certificate credential of one record or one decision.

    Arguments as :func:`build_transcript_credential`.

    Raises:
        InvalidInputError: as :func:`build_transcript_credential`.
    """
    holder = content.holder
    zh, en = CERTIFICATE_NAME
    if content.record is not None:
        item = content.record
        entry = _record_entry(item, holder)
        records = [record_json(item, holder, entry)]
        conversions: list[dict[str, Any]] = []
        achievement = _record_achievement(item, credential_id, entry.body)
        evidence = _collect_evidence([item], [])
    elif content.conversion is not None:
        conv = content.conversion
        records = []
        conversions = [conversion_json(conv, _conversion_entry(conv, holder))]
        achievement = _conversion_achievement(conv, credential_id)
        evidence = _collect_evidence([], [conv])
    else:  # pragma: no cover - CertificateContent holds exactly one of them
        raise InvalidInputError("a certificate needs content", code="credential.content")
    doc = _envelope(
        kind_type=CERTIFICATE_TYPE,
        name=f"{zh} / {en}: {achievement['name']}",
        description=f"{holder.name}: {achievement['name']}",
        issuer=issuer,
        credential_id=credential_id,
        valid_from=valid_from,
        valid_until=valid_until,
        status=status,
        verify_url=verify_url,
    )
    doc["credentialSubject"] = _subject(holder, achievement, records, conversions, [], None)
    doc["evidence"] = evidence
    return doc


def issue(
    document: Mapping[str, Any], signer: Signer, *, issuer: IssuerProfile, created: datetime
) -> dict[str, Any]:
    """Sign a built credential with the bank's issuer key (``<did>#key-1``, eddsa-jcs-2022).

    Raises:
        InvalidInputError: ``credential.issuer`` if the document's issuer is not this bank;
            as :func:`creditbank.core.credentials.proof.create_proof` otherwise.
    """
    doc_issuer = document.get("issuer")
    issuer_id = doc_issuer.get("id") if isinstance(doc_issuer, Mapping) else doc_issuer
    if issuer_id != issuer.did:
        raise InvalidInputError("the credential names another issuer", code="credential.issuer")
    return sign_credential(
        document,
        signer,
        verification_method=verification_method_id(issuer.did),
        created=stamp(created),
    )


__all__ = [
    "ACHIEVEMENT_TYPES",
    "build_certificate_credential",
    "build_transcript_credential",
    "conversion_json",
    "evidence_json",
    "issue",
    "issuer_profile",
    "record_json",
    "stamp",
    "total_json",
]
