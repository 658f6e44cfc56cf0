"""Build a document's view from its signed credential: the PDF is a rendering of the credential.

:func:`view_from_credential` reads the credential JSON (docs/formats/credentials.md) and
nothing else: names, dates, credits, states and explanations all come from the signed
document, so what the page shows is exactly what the attached ``credential.json`` proves.
Only the verification code, its URL and its expiry — which the credential does not hold,
because a worker can renew or revoke a code without reissuing — are passed in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any, Final

from creditbank.core.codes import format_code
from creditbank.errors import InvalidInputError
from creditbank.render.qr import qr_svg
from creditbank.render.views import (
    KIND_NAMES,
    CertificateView,
    ConversionBlock,
    DocumentView,
    Fact,
    GrantRow,
    InstitutionHeading,
    InstitutionSection,
    IssuerLine,
    RecordGroup,
    RecordRow,
    TotalRow,
    TranscriptView,
    VerificationBlock,
    format_credits,
)

_TIERS: Final = {
    "enterprise": ("企业级", "enterprise"),
    "municipal": ("市级", "municipal"),
    "provincial": ("省级", "provincial"),
    "national": ("国家级", "national"),
    "international": ("国际级", "international"),
}


def _bad(message: str) -> InvalidInputError:
    return InvalidInputError(message, code="render.credential")


def _map(value: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _bad(f"credential {what} is not an object")
    return value


def _list(value: Any, what: str) -> Sequence[Any]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise _bad(f"credential {what} is not a list")
    return value


def _str(obj: Mapping[str, Any], key: str, default: str | None = None) -> str:
    value = obj.get(key, default)
    if value is None and default is not None:
        return default
    if not isinstance(value, str):
        raise _bad(f"credential field {key!r} is missing or not a string")
    return value


def _opt(obj: Mapping[str, Any], key: str) -> str:
    value = obj.get(key)
    return value if isinstance(value, str) else ""


def _int(obj: Mapping[str, Any], key: str) -> int:
    value = obj.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise _bad(f"credential field {key!r} is missing or not an integer")
    return value


def _date(text: Any, what: str) -> date:
    if not isinstance(text, str) or len(text) < 10:
        raise _bad(f"credential {what} is not a date")
    try:
        return date.fromisoformat(text[:10])
    except ValueError as e:
        raise _bad(f"credential {what} is not a date") from e


def _opt_date(obj: Mapping[str, Any], key: str) -> date | None:
    value = obj.get(key)
    return None if value in (None, "") else _date(value, key)


def _facts(kind: str, payload: Mapping[str, Any]) -> tuple[Fact, ...]:
    """Labelled values of a record's signed payload, by kind."""
    facts: list[Fact] = []

    def add(zh: str, en: str, value: Any) -> None:
        if value not in (None, ""):
            facts.append(Fact(zh, en, str(value)))

    if kind == "academic_credit":
        centi = payload.get("credits_centi")
        add("学分", "Credits", format_credits(centi) if isinstance(centi, int) else None)
        add("成绩", "Grade", payload.get("grade"))
        add("学期", "Term", payload.get("term"))
    elif kind == "skill_certificate":
        add("证书编号", "No.", payload.get("certificate_no"))
        add("发证日期", "Issued", payload.get("issued_on"))
        expires = payload.get("expires_on")
        add("有效期至", "Valid until", expires if expires else "长期 no expiry")
    elif kind == "training_hours":
        add("学时", "Hours", payload.get("hours"))
        add("期次", "Cohort", payload.get("cohort"))
    elif kind == "competition_award":
        tier = payload.get("tier")
        zh, en = _TIERS.get(str(tier), (str(tier), str(tier))) if tier else ("", "")
        add("名次", "Rank", payload.get("rank"))
        add("级别", "Tier", f"{zh} {en}".strip() or None)
    elif kind == "work_experience":
        start, end = payload.get("start_on"), payload.get("end_on")
        add("期间", "Period", f"{start} – {end}" if start and end else None)
        add("月数", "Months", payload.get("duration_months"))
    return tuple(facts)


def _state_notes(rec: Mapping[str, Any], state: str) -> tuple[str, str]:
    """A record state's note: Chinese, English (the reason is printed once, as signed)."""
    if state == "revoked":
        on = _opt(rec, "revokedOn")
        reason = _opt(rec, "revocationReason")
        return (f"{on} 撤销 Revoked", reason)
    if state == "expired":
        payload = rec.get("payload")
        until = payload.get("expires_on") if isinstance(payload, Mapping) else None
        return (f"{until} 过期 Expired", "") if until else ("", "")
    if state == "corrected":
        return ("经机构更正，此为更正后版本", "Corrected by the institution; the corrected version")
    return ("", "")


def _record_row(rec: Mapping[str, Any]) -> RecordRow:
    kind = _str(rec, "kind")
    state = _str(rec, "state")
    if state not in ("current", "corrected", "revoked", "expired"):
        raise _bad(f"unknown record state {state!r}")
    payload = _map(rec.get("payload", {}), "record payload")
    note_zh, note_en = _state_notes(rec, state)
    title_zh = _opt(rec, "titleZh") or _opt(rec, "titleEn") or _str(rec, "recordId")
    name_on_record = _opt(rec, "nameOnRecord") if rec.get("nameDiffers") else ""
    return RecordRow(
        title_zh=title_zh,
        title_en=_opt(rec, "titleEn"),
        subtitle_zh=_opt(rec, "subtitleZh"),
        subtitle_en=_opt(rec, "subtitleEn"),
        facts=_facts(kind, payload),
        achieved_on=_date(rec.get("achievedOn"), "achievedOn"),
        state=state,  # type: ignore[arg-type]  # checked above
        state_note_zh=note_zh,
        state_note_en=note_en,
        name_on_record=name_on_record or None,
        ledger_index=_int(rec, "entryIndex"),
    )


def _heading(rec: Mapping[str, Any]) -> InstitutionHeading:
    return InstitutionHeading(
        institution_id=_str(rec, "institutionId"),
        name_zh=_opt(rec, "institutionNameZh") or _str(rec, "institutionId"),
        name_en=_opt(rec, "institutionNameEn"),
        custodian_zh=_opt(rec, "custodianNameZh") or _opt(rec, "custodianId") or None,
        custodian_en=_opt(rec, "custodianNameEn") or _opt(rec, "custodianId") or None,
    )


def _sections(records: Sequence[Any]) -> tuple[InstitutionSection, ...]:
    """Group records by institution (first appearance), then by kind (fixed order)."""
    order: dict[str, InstitutionHeading] = {}
    rows: dict[str, dict[str, list[RecordRow]]] = {}
    for raw in records:
        rec = _map(raw, "record")
        heading = _heading(rec)
        order.setdefault(heading.institution_id, heading)
        kind = _str(rec, "kind")
        rows.setdefault(heading.institution_id, {}).setdefault(kind, []).append(_record_row(rec))
    kinds = list(KIND_NAMES)
    out = []
    for inst_id, heading in order.items():
        by_kind = rows[inst_id]
        ordered = sorted(by_kind, key=lambda k: kinds.index(k) if k in kinds else len(kinds))
        groups = tuple(RecordGroup(heading, k, tuple(by_kind[k])) for k in ordered)
        out.append(InstitutionSection(heading, groups))
    return tuple(out)


def _voided(obj: Any) -> tuple[date | None, str | None]:
    """A ``GrantVoid`` (``voidedOn``, ``voidReason``) or nothing."""
    if not isinstance(obj, Mapping):
        return None, None
    return _date(obj.get("voidedOn"), "voidedOn"), _opt(obj, "voidReason") or None


def _conversion(raw: Any) -> ConversionBlock:
    c = _map(raw, "conversion")
    grants = []
    for g_raw in _list(c.get("grants"), "grants"):
        g = _map(g_raw, "grant")
        voided_on, void_reason = _voided(g.get("voided"))
        sources = ", ".join(f"#{i}" for i in _list(g.get("sourceEntries"), "sourceEntries"))
        grants.append(
            GrantRow(
                target_zh=_opt(g, "targetCourseNameZh") or "选修学分",
                target_en=_opt(g, "targetCourseNameEn") or "Elective credits",
                credits=format_credits(_int(g, "creditsCenti")),
                rule=f"{_str(g, 'ruleKey')} v{_int(g, 'ruleVersion')}",
                explanation_zh=_opt(g, "explanationZh"),
                explanation_en=_opt(g, "explanationEn"),
                sources=sources,
                voided_on=voided_on,
                void_reason=void_reason,
            )
        )
    exam = c.get("exam")
    exam_zh = exam_en = ""
    exam_voided_on: date | None = None
    exam_void_reason: str | None = None
    if isinstance(exam, Mapping):
        part = _opt(exam, "examPart")
        exam_zh = part or ("未获免考" if exam.get("granted") is False else "")
        exam_en = "" if part else ("not granted" if exam.get("granted") is False else "")
        exam_voided_on, exam_void_reason = _voided(exam.get("voided"))
    centi = c.get("creditsCenti")
    return ConversionBlock(
        kind=_str(c, "conversionType"),
        program_zh=_opt(c, "programNameZh") or _str(c, "programId"),
        program_en=_opt(c, "programNameEn"),
        institution_zh=_opt(c, "institutionNameZh"),
        institution_en=_opt(c, "institutionNameEn"),
        applied_on=_date(c.get("appliedOn"), "appliedOn"),
        credits=format_credits(centi) if isinstance(centi, int) else "0",
        explanation_zh=_opt(c, "explanationZh"),
        explanation_en=_opt(c, "explanationEn"),
        grants=tuple(grants),
        exam_zh=exam_zh,
        exam_en=exam_en,
        exam_voided_on=exam_voided_on,
        exam_void_reason=exam_void_reason,
        ledger_index=_int(c, "entryIndex"),
    )


def _total(raw: Any) -> TotalRow:
    t = _map(raw, "total")
    return TotalRow(
        program_zh=_opt(t, "programNameZh") or _str(t, "programId"),
        program_en=_opt(t, "programNameEn"),
        granted=format_credits(_int(t, "grantedCenti")),
        cap=format_credits(_int(t, "capCenti")),
        room_left=format_credits(_int(t, "roomLeftCenti")),
    )


def _issuer(raw: Any) -> IssuerLine:
    if isinstance(raw, str):
        return IssuerLine(name_zh=raw, name_en="", did=raw)
    issuer = _map(raw, "issuer")
    name = _opt(issuer, "name")
    zh = _opt(issuer, "issuerNameZh")
    en = _opt(issuer, "issuerNameEn")
    if not (zh or en) and " / " in name:
        zh, en = (part.strip() for part in name.split(" / ", 1))
    return IssuerLine(name_zh=zh or name, name_en=en, did=_str(issuer, "id"))


def view_from_credential(
    credential: Mapping[str, Any],
    *,
    code: str,
    verify_url: str,
    code_expires_on: date,
    lang: str = "zh",
) -> DocumentView:
    """The view of a transcript or certificate, read from its signed credential.

    Args:
        credential: the parsed credential JSON (a ``CreditBankTranscript`` or
            ``CreditBankCertificate``).
        code: the verification code (any accepted form; shown ``XXXX-XXXX-XXXX-XXXX``).
        verify_url: the URL the QR encodes (``{public_base_url}/v/{code}``).
        code_expires_on: the last day the code answers.
        lang: the document language (``zh``: Chinese first, English beside).

    Returns:
        A :class:`TranscriptView` or :class:`CertificateView`.

    Raises:
        InvalidInputError: ``render.credential`` when the credential lacks a field the page
            needs or has one of the wrong type; ``code.malformed`` for a bad code;
            ``render.url`` for an unusable URL.
    """
    types = _list(credential.get("type"), "type")
    subject = _map(credential.get("credentialSubject"), "credentialSubject")
    verification = VerificationBlock(
        code=format_code(code),
        url=verify_url,
        qr_svg=qr_svg(verify_url),
        expires_on=code_expires_on,
    )
    common: dict[str, Any] = {
        "holder_name": _str(subject, "name"),
        "learner_id": _str(subject, "learnerId"),
        "issued_on": _date(credential.get("validFrom"), "validFrom"),
        "issuer": _issuer(credential.get("issuer")),
        "credential_id": _str(credential, "id"),
        "verification": verification,
        "lang": lang,
    }
    records = _list(subject.get("records"), "records")
    conversions = _list(subject.get("conversions"), "conversions")
    if "CreditBankTranscript" in types:
        return TranscriptView(
            sections=_sections(records),
            conversions=tuple(_conversion(c) for c in conversions),
            totals=tuple(_total(t) for t in _list(subject.get("totals"), "totals")),
            complete=bool(subject.get("complete", True)),
            **common,
        )
    if "CreditBankCertificate" in types:
        if len(records) + len(conversions) != 1:
            raise _bad("a certificate holds exactly one record or one conversion")
        if records:
            rec = _map(records[0], "record")
            return CertificateView(
                institution=_heading(rec), kind=_str(rec, "kind"), record=_record_row(rec), **common
            )
        return CertificateView(conversion=_conversion(conversions[0]), **common)
    raise _bad("the credential is neither a transcript nor a certificate")
