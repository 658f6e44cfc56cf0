"""Value types of the conversion engine: catalogue, records, rules, applications.

Everything here is an immutable value (``@dataclass(frozen=True, slots=True)``). Quantities
that can be fractional in the wild (credits, hours, grades) are stored as ``int``
hundredths -- *centi* units -- and never as ``float``: ``150`` centicredits is 1.5 credits.
Conversion to and from JSON numbers happens only at the edges (:mod:`.dataset` and
:mod:`.report`).

The semantics these values feed are those of ``sample/README.md``, "Conversion semantics"
(rules 0-13); see ``docs/conversion.md``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import ClassVar, TypeAlias

Centi: TypeAlias = int
"""An exact quantity in hundredths (centicredits, centihours, centi-points of a grade)."""

CENTI = 100
"""Centi units per whole unit."""

NATIVE_PASS_GRADE: Centi = 60 * CENTI
"""Grade (in centi-points) at or above which a course counts as passed natively (rule 7)."""


class RecordKind(StrEnum):
    """The five kinds of posted learning record."""

    ACADEMIC_CREDIT = "academic_credit"
    SKILL_CERTIFICATE = "skill_certificate"
    TRAINING_HOURS = "training_hours"
    COMPETITION_AWARD = "competition_award"
    WORK_EXPERIENCE = "work_experience"


class Mode(StrEnum):
    """Conversion modes of a rule's target."""

    COURSE_EXEMPTION = "course_exemption"
    ELECTIVE_FIXED = "elective_fixed"
    ELECTIVE_BY_TIER = "elective_by_tier"
    HOURS_TO_CREDITS = "hours_to_credits"
    EXAM_EXEMPTION = "exam_exemption"


CREDIT_MODES: frozenset[str] = frozenset(
    {Mode.COURSE_EXEMPTION, Mode.ELECTIVE_FIXED, Mode.ELECTIVE_BY_TIER, Mode.HOURS_TO_CREDITS}
)
ELECTIVE_MODES: frozenset[str] = frozenset({Mode.ELECTIVE_FIXED, Mode.ELECTIVE_BY_TIER})


class ApplicationType(StrEnum):
    """What a learner asks for."""

    CREDIT_CONVERSION = "credit_conversion"
    EXAM_EXEMPTION = "exam_exemption"


INSTITUTION_KINDS: frozenset[str] = frozenset(
    {
        "college",
        "open_university",
        "craftsman_academy",
        "training_center",
        "enterprise_university",
        "vocational_school",
        "government_authority",
        "competition_organizer",
        "credit_bank",
    }
)


# --- catalogue -----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Institution:
    """A learning institution, permit authority, competition organiser or the bank itself.

    Attributes:
        id: Institution id, e.g. ``INS-VS``.
        kind: One of :data:`INSTITUTION_KINDS` (matched by ``source.issuer_kinds``).
        status: ``active`` or ``closed``. A closed institution's records stay valid.
        closed_on: Closure date, if closed.
        records_custodian: Who holds and may post/correct the records after closure.
        name_zh: Chinese name (label only).
        name_en: English name (label only).
    """

    id: str
    kind: str
    status: str = "active"
    closed_on: dt.date | None = None
    records_custodian: str | None = None
    name_zh: str = ""
    name_en: str = ""


@dataclass(frozen=True, slots=True)
class CertificateType:
    """One occupation x level entry of the certificate catalogue.

    ``level`` is an ascending ordinal (1 = 五级/初级工 ... 5 = 一级/高级技师) or ``None`` for
    unlevelled permits. The labels are kept for display only and are never compared.

    Attributes:
        id: Certificate type id.
        occupation_key: The occupation (rule 4 groups certificates by it).
        level: Ascending ordinal, or ``None``.
        field: Subject field, matched by ``source.fields``.
        family: ``vocational_skill_level``, ``1+X``, ``operating_permit``...
        validity_years: Validity of permits, ``None`` when they do not expire.
        occupation_zh: Label.
        occupation_en: Label.
        level_label_zh: Label (official Chinese numbering, descending).
        level_label_en: Label.
    """

    id: str
    occupation_key: str
    level: int | None
    field: str
    family: str = ""
    validity_years: int | None = None
    occupation_zh: str = ""
    occupation_en: str = ""
    level_label_zh: str = ""
    level_label_en: str = ""


@dataclass(frozen=True, slots=True)
class Course:
    """A catalogue course.

    Attributes:
        id: Course id.
        credits: Catalogue credits, in centicredits.
        name_zh: Label.
        name_en: Label.
    """

    id: str
    credits: Centi
    name_zh: str = ""
    name_en: str = ""


@dataclass(frozen=True, slots=True)
class DegreeProgram:
    """A conversion target: a degree programme with its courses and caps.

    Attributes:
        id: Programme id.
        institution_id: The awarding institution (native passes are its records).
        courses: The catalogue courses.
        max_converted_credits: Cap on all conversions into the programme (centicredits);
            ``None`` means no cap.
        elective_pool_max: Cap on the conversions without a target course (centicredits);
            ``None`` means no cap.
        name_zh: Label.
        name_en: Label.
    """

    id: str
    institution_id: str
    courses: tuple[Course, ...]
    max_converted_credits: Centi | None = None
    elective_pool_max: Centi | None = None
    name_zh: str = ""
    name_en: str = ""

    def course(self, course_id: str) -> Course | None:
        """Return the course with that id, or ``None``.

        Args:
            course_id: The course id.

        Returns:
            The course, or ``None`` when the programme has no such course.
        """
        for course in self.courses:
            if course.id == course_id:
                return course
        return None


@dataclass(frozen=True, slots=True)
class SourceProgram:
    """A programme whose courses appear only as sources (e.g. a closed school's).

    Attributes:
        id: Programme id.
        institution_id: The institution.
        courses: Its courses.
        name_zh: Label.
        name_en: Label.
    """

    id: str
    institution_id: str
    courses: tuple[Course, ...]
    name_zh: str = ""
    name_en: str = ""


@dataclass(frozen=True, slots=True)
class TrainingProgram:
    """A non-degree training programme; ``field`` is matched by ``source.fields``.

    Attributes:
        id: Programme id.
        institution_id: The training institution.
        field: Subject field.
        name_zh: Label.
        name_en: Label.
    """

    id: str
    institution_id: str
    field: str
    name_zh: str = ""
    name_en: str = ""


@dataclass(frozen=True, slots=True, eq=False)
class Catalog:
    """Lookup tables for everything rules and records refer to.

    Build it with :meth:`build`; the mappings are keyed by id.

    Attributes:
        institutions: By id.
        certificate_types: By id.
        degree_programs: By id.
        source_programs: By id.
        training_programs: By id.
    """

    institutions: Mapping[str, Institution]
    certificate_types: Mapping[str, CertificateType]
    degree_programs: Mapping[str, DegreeProgram]
    source_programs: Mapping[str, SourceProgram] = field(default_factory=dict)
    training_programs: Mapping[str, TrainingProgram] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        *,
        institutions: tuple[Institution, ...] | list[Institution] = (),
        certificate_types: tuple[CertificateType, ...] | list[CertificateType] = (),
        degree_programs: tuple[DegreeProgram, ...] | list[DegreeProgram] = (),
        source_programs: tuple[SourceProgram, ...] | list[SourceProgram] = (),
        training_programs: tuple[TrainingProgram, ...] | list[TrainingProgram] = (),
    ) -> Catalog:
        """Index catalogue entries by id.

        Args:
            institutions: Institutions.
            certificate_types: Certificate types.
            degree_programs: Degree programmes (conversion targets).
            source_programs: Source-only programmes.
            training_programs: Training programmes.

        Returns:
            The catalogue. Later entries with a repeated id replace earlier ones; the loader
            (:func:`creditbank.core.rules.dataset.load_dataset`) rejects repeated ids.
        """
        return cls(
            institutions={i.id: i for i in institutions},
            certificate_types={c.id: c for c in certificate_types},
            degree_programs={p.id: p for p in degree_programs},
            source_programs={p.id: p for p in source_programs},
            training_programs={p.id: p for p in training_programs},
        )

    def known_course_ids(self) -> frozenset[str]:
        """Return the ids of all courses of degree and source programmes.

        Returns:
            The course ids.
        """
        ids: set[str] = set()
        for dp in self.degree_programs.values():
            ids.update(c.id for c in dp.courses)
        for sp in self.source_programs.values():
            ids.update(c.id for c in sp.courses)
        return frozenset(ids)

    def occupation_keys(self) -> frozenset[str]:
        """Return every ``occupation_key`` of the certificate catalogue.

        Returns:
            The occupation keys.
        """
        return frozenset(c.occupation_key for c in self.certificate_types.values())


@dataclass(frozen=True, slots=True)
class Learner:
    """A registered learner, as far as the engine needs one (rule 13: names are notes only).

    Attributes:
        id: The bank's opaque learner id.
        name_zh: Registered Chinese name (may be empty).
        name_latin: Registered Latin-script name (may be empty).
    """

    id: str
    name_zh: str = ""
    name_latin: str = ""

    def registered_names(self) -> tuple[str, ...]:
        """Return the non-empty registered names.

        Returns:
            The names, Chinese first.
        """
        return tuple(n for n in (self.name_zh, self.name_latin) if n)


# --- records -------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class AcademicCredit:
    """Payload of an ``academic_credit`` record.

    Attributes:
        course_id: The course passed or taken.
        credits: The record's own credits (centicredits); never used for conversion amounts.
        grade: 0-100, in centi-points (``6000`` = 60).
        term: Term label.
    """

    KIND: ClassVar[RecordKind] = RecordKind.ACADEMIC_CREDIT
    course_id: str
    credits: Centi
    grade: Centi
    term: str | None = None


@dataclass(frozen=True, slots=True)
class SkillCertificate:
    """Payload of a ``skill_certificate`` record.

    Attributes:
        certificate_type_id: Catalogue certificate type.
        certificate_no: Certificate number.
        expires_on: Last valid day (issued + N years - 1 day), ``None`` if it never expires.
    """

    KIND: ClassVar[RecordKind] = RecordKind.SKILL_CERTIFICATE
    certificate_type_id: str
    certificate_no: str | None = None
    expires_on: dt.date | None = None


@dataclass(frozen=True, slots=True)
class TrainingHours:
    """Payload of a ``training_hours`` record.

    Attributes:
        training_program_id: Catalogue training programme.
        hours: Hours, in centihours (``6400`` = 64 h).
        cohort: Cohort label.
    """

    KIND: ClassVar[RecordKind] = RecordKind.TRAINING_HOURS
    training_program_id: str
    hours: Centi
    cohort: str | None = None


@dataclass(frozen=True, slots=True)
class CompetitionAward:
    """Payload of a ``competition_award`` record.

    Attributes:
        competition: Competition name.
        tier: ``national``, ``provincial``, ``municipal`` or ``enterprise``.
        rank: Rank (1 = first).
        field: Subject field.
    """

    KIND: ClassVar[RecordKind] = RecordKind.COMPETITION_AWARD
    competition: str
    tier: str
    rank: int
    field: str


@dataclass(frozen=True, slots=True)
class WorkExperience:
    """Payload of a ``work_experience`` record (``achieved_on`` = ``end_on``).

    Attributes:
        occupation_key: Occupation worked in.
        duration_months: Verified months.
        employer: Employer name.
        start_on: First day.
        end_on: Last day.
        verified_by: Who verified it.
    """

    KIND: ClassVar[RecordKind] = RecordKind.WORK_EXPERIENCE
    occupation_key: str
    duration_months: int
    employer: str | None = None
    start_on: dt.date | None = None
    end_on: dt.date | None = None
    verified_by: str | None = None


Payload: TypeAlias = (
    AcademicCredit | SkillCertificate | TrainingHours | CompetitionAward | WorkExperience
)


@dataclass(frozen=True, slots=True)
class Record:
    """One posted learning record (one version of a record chain, rule 1).

    ``kind``, ``achieved_on``, ``issuer_id`` and ``payload`` are read from the *effective*
    version of a chain; ``dedup_key`` and ``revoked_at`` from its *root*.

    Attributes:
        id: Record id (also the version id).
        learner_id: The learner it belongs to (by identity, rule 13).
        issuer_id: The institution that issued the learning.
        achieved_on: Date the learning was completed or issued.
        posted_at: Date it was posted to the bank.
        payload: Kind-specific content; its type decides :attr:`kind`.
        dedup_key: Same-learner roots sharing it are duplicates (rule 2).
        corrects: Id of the record this one corrects (a new version of that chain).
        revoked_at: Revocation date (effective only on a canonical chain root, rule 10).
        revocation_reason: Free text.
        posted_by: Issuer, custodian, or the learner for self-uploads.
        name_on_record: The name as the source wrote it (notes only, rule 13).
    """

    id: str
    learner_id: str
    issuer_id: str
    achieved_on: dt.date
    posted_at: dt.date
    payload: Payload
    dedup_key: str | None = None
    corrects: str | None = None
    revoked_at: dt.date | None = None
    revocation_reason: str | None = None
    posted_by: str | None = None
    name_on_record: str | None = None

    @property
    def kind(self) -> RecordKind:
        """The record kind, given by the payload type."""
        return self.payload.KIND


# --- rules ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class RuleTarget:
    """What a rule converts into.

    Attributes:
        mode: One of :class:`Mode` (kept as text so publishing can reject unknown modes).
        program_id: Degree programme (credit modes).
        course_id: Exempted course (``course_exemption`` only).
        certificate_type_id: Certificate whose exam is waived (``exam_exemption`` only).
        exam_part: Waived exam part (``exam_exemption`` only).
    """

    mode: str
    program_id: str | None = None
    course_id: str | None = None
    certificate_type_id: str | None = None
    exam_part: str | None = None


@dataclass(frozen=True, slots=True)
class SourcePattern:
    """Which records a rule accepts (rule 6a). ``None`` means "condition absent".

    Attributes:
        kind: Record kind (kept as text so publishing can reject unknown kinds).
        certificate_type_ids: skill_certificate: allowed types.
        occupations: skill_certificate / work_experience: allowed occupation keys.
        fields: skill_certificate (type field), training_hours (programme field),
            competition_award (award field).
        min_level: skill_certificate: minimum ordinal level; unlevelled types never match.
        course_ids: academic_credit: allowed courses.
        min_grade: academic_credit: minimum grade, centi-points.
        issuer_kinds: training_hours: allowed kinds of issuing institution.
        credits_by_tier: competition_award: tier -> credits (centicredits); the tier must
            be a key.
        max_rank: competition_award: worst rank accepted.
        min_months: work_experience: minimum duration.
    """

    kind: str
    certificate_type_ids: tuple[str, ...] | None = None
    occupations: tuple[str, ...] | None = None
    fields: tuple[str, ...] | None = None
    min_level: int | None = None
    course_ids: tuple[str, ...] | None = None
    min_grade: Centi | None = None
    issuer_kinds: tuple[str, ...] | None = None
    credits_by_tier: tuple[tuple[str, Centi], ...] | None = None
    max_rank: int | None = None
    min_months: int | None = None

    def tier_credits(self, tier: str) -> Centi | None:
        """Return the credits for a competition tier.

        Args:
            tier: The award tier.

        Returns:
            Centicredits, or ``None`` when the tier is not a key of ``credits_by_tier``.
        """
        for key, value in self.credits_by_tier or ():
            if key == tier:
                return value
        return None


@dataclass(frozen=True, slots=True)
class Caps:
    """Per-learner caps of a rule version (compared with all versions' active grants).

    Attributes:
        max_credits: Credit cap for the ``rule_key`` (centicredits), every credit mode.
        max_outcomes: Record-count cap, elective modes only.
    """

    max_credits: Centi | None = None
    max_outcomes: int | None = None


@dataclass(frozen=True, slots=True)
class ConversionRule:
    """One version of a conversion rule.

    Attributes:
        rule_key: Stable key shared by all versions.
        version: Version number.
        effective_from: First day in force (inclusive).
        effective_to: Last day in force (inclusive); ``None`` = open-ended.
        target: What it converts into.
        source: Which records it accepts.
        priority: Lower runs first (ties by ``rule_key``).
        recency_years: Window counted back from the decision date; ``None`` = no window.
        caps: Per-learner caps.
        credits_per_outcome: ``elective_fixed`` amount (centicredits).
        hours_per_credit: ``hours_to_credits`` divisor (centihours).
        name_zh: Label.
        name_en: Label.
    """

    rule_key: str
    version: int
    effective_from: dt.date
    effective_to: dt.date | None
    target: RuleTarget
    source: SourcePattern
    priority: int = 0
    recency_years: int | None = None
    caps: Caps = field(default_factory=Caps)
    credits_per_outcome: Centi | None = None
    hours_per_credit: Centi | None = None
    name_zh: str = ""
    name_en: str = ""

    def in_force(self, on: dt.date) -> bool:
        """Tell whether this version is in force on a date (inclusive range, rule 5).

        Args:
            on: The date.

        Returns:
            ``True`` when ``effective_from <= on <= effective_to`` (open end allowed).
        """
        return self.effective_from <= on and (self.effective_to is None or on <= self.effective_to)


# --- applications --------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Application:
    """A credit-conversion application or an exam-exemption request.

    Attributes:
        id: Application id (ties on the same day are decided by it, rule 0).
        learner_id: The applicant.
        type: ``credit_conversion`` or ``exam_exemption``.
        applied_on: The decision date D.
        program_id: Target degree programme (credit conversion).
        certificate_type_id: Requested certificate (exam exemption).
    """

    id: str
    learner_id: str
    type: ApplicationType
    applied_on: dt.date
    program_id: str | None = None
    certificate_type_id: str | None = None

    @property
    def order_key(self) -> tuple[dt.date, str]:
        """Decision order (rule 0): ``applied_on``, then application id."""
        return (self.applied_on, self.id)
