"""View models of the documents: what a transcript or certificate page shows, as plain data.

The templates in ``templates/certificates/`` read only these frozen dataclasses; they hold
strings and dates ready to print (credits already formatted, states already named), so the
templates contain layout and wording, and no logic beyond loops and conditions.

A view is built from the signed credential (:mod:`creditbank.render.credential_view`), so the
PDF is a rendering of the credential and never a second source.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Final, Literal

RecordStateName = Literal["current", "corrected", "revoked", "expired"]

#: kinds in display order, with their bilingual names
KIND_NAMES: Final[dict[str, tuple[str, str]]] = {
    "academic_credit": ("课程学分", "Course credits"),
    "skill_certificate": ("职业技能证书", "Skill certificates"),
    "training_hours": ("培训学时", "Training"),
    "competition_award": ("竞赛获奖", "Competition awards"),
    "work_experience": ("工作经历", "Work experience"),
}

#: a single record's kind, as a certificate names it
KIND_SINGULAR_EN: Final[dict[str, str]] = {
    "academic_credit": "Course credit",
    "skill_certificate": "Skill certificate",
    "training_hours": "Training",
    "competition_award": "Competition award",
    "work_experience": "Work experience",
}

#: record states with their bilingual labels
STATE_NAMES: Final[dict[str, tuple[str, str]]] = {
    "current": ("有效", "Current"),
    "corrected": ("已更正", "Corrected"),
    "revoked": ("已撤销", "Revoked"),
    "expired": ("已过期", "Expired"),
}


def format_credits(centi: int) -> str:
    """Print hundredths of a credit without trailing zeros (``400`` → ``4``, ``150`` → ``1.5``).

    Args:
        centi: credits in hundredths.

    Returns:
        The credits as printed.

    Raises:
        Nothing: pure arithmetic on an int.
    """
    whole, frac = divmod(abs(centi), 100)
    sign = "-" if centi < 0 else ""
    if frac == 0:
        return f"{sign}{whole}"
    return f"{sign}{whole}.{frac:02d}".rstrip("0")


@dataclass(frozen=True, slots=True)
class Fact:
    """One labelled value of a record (credits, grade, level, hours…)."""

    label_zh: str
    label_en: str
    value: str


@dataclass(frozen=True, slots=True)
class InstitutionHeading:
    """An institution as a group heading; ``custodian_*`` set when it closed."""

    name_zh: str
    name_en: str
    institution_id: str
    custodian_zh: str | None = None
    custodian_en: str | None = None


@dataclass(frozen=True, slots=True)
class RecordRow:
    """One record as a table row.

    Attributes:
        title_zh / title_en: course, certificate, training, competition or occupation.
        subtitle_zh / subtitle_en: a second line (level label, employer…), may be empty.
        facts: labelled values (credits, grade, term, hours, certificate number…).
        achieved_on: the date the outcome was achieved.
        state: current, corrected, revoked or expired.
        state_note_zh / state_note_en: why (revocation date and reason, expiry date…).
        name_on_record: the name as the institution wrote it, when it differs from the
            holder's registered name; else None.
        ledger_index: the log index of the entry shown (the record's proof).
    """

    title_zh: str
    title_en: str
    achieved_on: date
    state: RecordStateName
    ledger_index: int
    subtitle_zh: str = ""
    subtitle_en: str = ""
    facts: tuple[Fact, ...] = ()
    state_note_zh: str = ""
    state_note_en: str = ""
    name_on_record: str | None = None

    @property
    def state_zh(self) -> str:
        """The state's Chinese label."""
        return STATE_NAMES[self.state][0]

    @property
    def state_en(self) -> str:
        """The state's English label."""
        return STATE_NAMES[self.state][1]


@dataclass(frozen=True, slots=True)
class RecordGroup:
    """The records of one kind from one institution."""

    institution: InstitutionHeading
    kind: str
    rows: tuple[RecordRow, ...]

    @property
    def kind_zh(self) -> str:
        """The kind's Chinese name."""
        return KIND_NAMES.get(self.kind, (self.kind, self.kind))[0]

    @property
    def kind_en(self) -> str:
        """The kind's English name."""
        return KIND_NAMES.get(self.kind, (self.kind, self.kind))[1]


@dataclass(frozen=True, slots=True)
class InstitutionSection:
    """All groups of one institution, under one heading."""

    institution: InstitutionHeading
    groups: tuple[RecordGroup, ...]


@dataclass(frozen=True, slots=True)
class GrantRow:
    """One grant of a conversion decision (credits or a course exemption).

    Attributes:
        target_zh / target_en: the course credited or "elective credits".
        credits: credits granted, printed.
        rule: rule key and version (``R-OU-LOG-01 v2``).
        explanation_zh / explanation_en: the signed explanation.
        sources: ledger indexes of the source records, printed (``#12, #15``).
        voided_on / void_reason: set when the grant was voided afterwards.
    """

    target_zh: str
    target_en: str
    credits: str
    rule: str
    explanation_zh: str
    explanation_en: str
    sources: str
    voided_on: date | None = None
    void_reason: str | None = None


@dataclass(frozen=True, slots=True)
class ConversionBlock:
    """One decided application: credit recognition (学分认定) or an exam exemption.

    Attributes:
        kind: ``credit_conversion`` or ``exam_exemption``.
        program_zh / program_en: the programme (or certificate type for an exemption).
        institution_zh / institution_en: who runs the programme ("" when not known).
        applied_on: the application date.
        credits: total credits granted, printed.
        explanation_zh / explanation_en: the decision's signed explanation.
        grants: each grant.
        exam_zh / exam_en: the exam part exempted, for exam exemptions ("" otherwise).
        exam_voided_on / exam_void_reason: set when the exemption was voided.
        ledger_index: the decision entry's log index.
    """

    kind: str
    program_zh: str
    program_en: str
    applied_on: date
    credits: str
    explanation_zh: str
    explanation_en: str
    ledger_index: int
    institution_zh: str = ""
    institution_en: str = ""
    grants: tuple[GrantRow, ...] = ()
    exam_zh: str = ""
    exam_en: str = ""
    exam_voided_on: date | None = None
    exam_void_reason: str | None = None

    @property
    def is_exemption(self) -> bool:
        """True for an exam exemption decision."""
        return self.kind == "exam_exemption"


@dataclass(frozen=True, slots=True)
class TotalRow:
    """Converted credits of one programme against its cap."""

    program_zh: str
    program_en: str
    granted: str
    cap: str
    room_left: str


@dataclass(frozen=True, slots=True)
class VerificationBlock:
    """How a reader checks the document: the code, its URL and QR, and the code's expiry.

    Attributes:
        code: the code as shown (``XXXX-XXXX-XXXX-XXXX``).
        url: ``{public_base_url}/v/{code}``, the QR's content.
        qr_svg: the QR code as an SVG document (built by :func:`creditbank.render.qr.qr_svg`).
        expires_on: the last day the code answers.
    """

    code: str
    url: str
    qr_svg: str
    expires_on: date


@dataclass(frozen=True, slots=True)
class IssuerLine:
    """The bank as issuer."""

    name_zh: str
    name_en: str
    did: str


@dataclass(frozen=True, slots=True)
class TranscriptView:
    """Everything a transcript shows.

    Attributes:
        holder_name: the learner's name exactly as registered.
        learner_id: the bank's learner id.
        issued_on: the issuance date.
        issuer: the bank.
        credential_id: the credential's id (``urn:uuid:…``), printed in the footer.
        sections: records by institution, then kind.
        conversions: decided applications.
        totals: converted credits per programme with the room left under each cap.
        verification: code, URL, QR, expiry.
        complete: True when the transcript holds all records; False for a chosen subset.
        lang: the document language (``zh`` — Chinese first, English beside it).
    """

    holder_name: str
    learner_id: str
    issued_on: date
    issuer: IssuerLine
    credential_id: str
    sections: tuple[InstitutionSection, ...]
    verification: VerificationBlock
    conversions: tuple[ConversionBlock, ...] = ()
    totals: tuple[TotalRow, ...] = ()
    complete: bool = True
    lang: str = "zh"

    @property
    def record_count(self) -> int:
        """Number of records shown."""
        return sum(len(g.rows) for s in self.sections for g in s.groups)

    @property
    def title(self) -> str:
        """The PDF title (Info /Title and XMP dc:title)."""
        return f"学习成果证明 Transcript — {self.holder_name}"

    def text(self) -> str:
        """Every variable string the page prints (for the font coverage check)."""
        parts = _header_text(self)
        for s in self.sections:
            parts += _institution_text(s.institution)
            for g in s.groups:
                for r in g.rows:
                    parts += _row_text(r)
        for c in self.conversions:
            parts += _conversion_text(c, institution=True)
        for t in self.totals:
            parts += [t.program_zh, t.program_en]
        return "\n".join(parts)


@dataclass(frozen=True, slots=True)
class CertificateView:
    """Everything a one-page certificate shows: one record or one conversion decision.

    Attributes:
        holder_name: the learner's name exactly as registered.
        learner_id: the bank's learner id.
        issued_on: the issuance date.
        issuer: the bank.
        credential_id: the credential's id.
        verification: code, URL, QR, expiry.
        institution: the record's institution (for a record certificate).
        kind: the record's kind (for a record certificate).
        record: the record, or None.
        conversion: the decision, or None.
        lang: the document language.
    """

    holder_name: str
    learner_id: str
    issued_on: date
    issuer: IssuerLine
    credential_id: str
    verification: VerificationBlock
    institution: InstitutionHeading | None = None
    kind: str = ""
    record: RecordRow | None = None
    conversion: ConversionBlock | None = None
    lang: str = "zh"

    def __post_init__(self) -> None:
        if (self.record is None) == (self.conversion is None):
            raise ValueError("a certificate shows exactly one record or one conversion")

    @property
    def kind_zh(self) -> str:
        """The record kind's Chinese name ("学分认定" for a conversion)."""
        if self.conversion is not None:
            return "免考认定" if self.conversion.is_exemption else "学分认定"
        return KIND_NAMES.get(self.kind, (self.kind, self.kind))[0]

    @property
    def kind_en(self) -> str:
        """The record kind's English name ("Credit recognition" for a conversion)."""
        if self.conversion is not None:
            return "Exam exemption" if self.conversion.is_exemption else "Credit recognition"
        return KIND_SINGULAR_EN.get(self.kind, self.kind)

    @property
    def title(self) -> str:
        """The PDF title."""
        return f"证书 Certificate — {self.holder_name}"

    def text(self) -> str:
        """Every variable string the page prints (for the font coverage check)."""
        parts = _header_text(self)
        if self.institution is not None:
            parts += _institution_text(self.institution)
        if self.record is not None:
            parts += _row_text(self.record)
        if self.conversion is not None:
            # the certificate names the programme, not the institution that runs it
            parts += _conversion_text(self.conversion, institution=False)
        return "\n".join(parts)


DocumentView = TranscriptView | CertificateView


def _header_text(view: DocumentView) -> list[str]:
    """The strings every document prints in its header and verification block."""
    return [
        view.holder_name,
        view.learner_id,
        view.credential_id,
        view.issuer.name_zh,
        view.issuer.name_en,
        view.verification.code,
        view.verification.url,
    ]


def _institution_text(h: InstitutionHeading) -> list[str]:
    """The strings an institution heading prints."""
    return [h.name_zh, h.name_en, h.custodian_zh or "", h.custodian_en or ""]


def _row_text(r: RecordRow) -> list[str]:
    """The strings a record row prints."""
    return [
        r.title_zh,
        r.title_en,
        r.subtitle_zh,
        r.subtitle_en,
        r.state_note_zh,
        r.state_note_en,
        r.name_on_record or "",
        *(f.value for f in r.facts),
    ]


def _conversion_text(c: ConversionBlock, *, institution: bool) -> list[str]:
    """The strings a conversion block prints: programme, explanation, exam part, every grant
    (target, rule, sources, explanation, void reason); the programme's institution when the
    page shows it (the transcript does, the certificate does not)."""
    parts = [c.program_zh, c.program_en]
    if institution:
        parts += [c.institution_zh, c.institution_en]
    parts += [c.explanation_zh, c.explanation_en, c.exam_zh, c.exam_en, c.exam_void_reason or ""]
    for gr in c.grants:
        parts += [
            gr.target_zh,
            gr.target_en,
            gr.rule,
            gr.explanation_zh,
            gr.explanation_en,
            gr.sources,
            gr.void_reason or "",
        ]
    return parts
