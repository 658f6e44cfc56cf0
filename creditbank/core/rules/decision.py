"""What the engine produces: grants, notes, exam results, decisions and learner state.

Every grant and every denial carries a machine-readable ``reason`` (a :class:`Reason` or
:class:`RecordIssue` value) and a plain-language explanation in Chinese and English.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum

from .model import Application, Centi


class Reason(StrEnum):
    """Why a rule granted or did not grant, or why a decision came out as it did."""

    GRANTED = "granted"
    GRANTED_THEN_CAPPED = "granted_then_capped"
    NO_RULE_IN_FORCE = "no_rule_in_force"
    NO_CANDIDATE = "no_candidate"
    COURSE_ALREADY_EXEMPTED = "course_already_exempted"
    COURSE_PASSED_NATIVELY = "course_passed_natively"
    CAP_BLOCKS_EXEMPTION = "cap_blocks_exemption"
    MAX_OUTCOMES_REACHED = "max_outcomes_reached"
    NO_ROOM = "no_room"
    HOURS_BELOW_ONE_CREDIT = "hours_below_one_credit"
    NOTHING_GRANTED = "nothing_granted"
    EXAM_GRANTED = "exam_exemption_granted"
    EXAM_NO_MATCHING_RECORD = "exam_no_matching_record"
    EXAM_NO_RULE = "exam_no_rule_in_force"


class RecordIssue(StrEnum):
    """Why a record of the learner did or could not count at a decision."""

    DUPLICATE = "duplicate"
    NOT_YET_ACHIEVED = "not_yet_achieved"
    REVOKED = "revoked"
    EXPIRED = "expired"
    LOWER_LEVEL_BLOCKED = "lower_level_blocked"
    CONSUMED = "consumed"
    CORRECTED = "corrected"
    NAME_DIFFERS = "name_differs"


class Cap(StrEnum):
    """The caps that can bind a grant (rules 6-9)."""

    MAX_CREDITS = "max_credits"
    MAX_OUTCOMES = "max_outcomes"
    ELECTIVE_POOL_MAX = "elective_pool_max"
    MAX_CONVERTED_CREDITS = "max_converted_credits"


@dataclass(frozen=True, slots=True)
class Grant:
    """Credits granted by one rule version from one or more records (a snapshot, rule 5).

    Attributes:
        application_id: The application it was granted on.
        learner_id: The learner.
        program_id: The degree programme.
        index: Position within its decision (0-based, grant order).
        rule_key: The rule.
        rule_version: The version in force on ``granted_on``.
        mode: The rule's mode.
        outcome_ids: Canonical root ids consumed, in candidate order.
        effective_version_ids: Their effective versions at ``granted_on``, same order.
        target_course_id: The exempted course (``course_exemption``), else ``None``.
        credits: Granted credits (centicredits).
        granted_on: The decision date.
        nominal_credits: What the rule would give before caps (course credits, amount per
            outcome or tier, or raw hours credits), centicredits.
        bound_by: The cap that cut ``credits`` below ``nominal_credits``, if any.
        hours_used: ``hours_to_credits``: summed hours (centihours).
        raw_credits: ``hours_to_credits``: floor(hours / hours_per_credit), centicredits.
        reason: Always :attr:`Reason.GRANTED`.
        explanation_zh: Plain-language explanation (Chinese).
        explanation_en: Plain-language explanation (English).
    """

    application_id: str
    learner_id: str
    program_id: str
    index: int
    rule_key: str
    rule_version: int
    mode: str
    outcome_ids: tuple[str, ...]
    effective_version_ids: tuple[str, ...]
    target_course_id: str | None
    credits: Centi
    granted_on: dt.date
    nominal_credits: Centi
    bound_by: Cap | None = None
    hours_used: Centi | None = None
    raw_credits: Centi | None = None
    reason: Reason = Reason.GRANTED
    explanation_zh: str = ""
    explanation_en: str = ""

    @property
    def key(self) -> str:
        """A stable engine-internal grant key: ``<application_id>/<n>`` (1-based)."""
        return f"{self.application_id}/{self.index + 1}"


@dataclass(frozen=True, slots=True)
class RuleNote:
    """What one rule did in a decision (one note per rule tried).

    Attributes:
        rule_key: The rule.
        rule_version: The version in force.
        mode: Its mode.
        reason: :attr:`Reason.GRANTED`, :attr:`Reason.GRANTED_THEN_CAPPED` or a denial.
        outcome_ids: Records concerned (granted, or the near misses of a denial).
        bound_by: The cap that stopped or blocked it, if any.
        explanation_zh: Plain-language explanation (Chinese).
        explanation_en: Plain-language explanation (English).
    """

    rule_key: str
    rule_version: int
    mode: str
    reason: Reason
    outcome_ids: tuple[str, ...] = ()
    bound_by: Cap | None = None
    explanation_zh: str = ""
    explanation_en: str = ""


@dataclass(frozen=True, slots=True)
class RecordNote:
    """Why one of the learner's records counts differently at a decision.

    Attributes:
        outcome_id: The record's root id (or the duplicate's own root id).
        version_id: Its effective version at the decision date, if posted.
        issue: What is special about it.
        related_id: The canonical record, the higher certificate, or the consuming
            grant's key, depending on ``issue``.
        explanation_zh: Plain-language explanation (Chinese).
        explanation_en: Plain-language explanation (English).
    """

    outcome_id: str
    version_id: str | None
    issue: RecordIssue
    related_id: str | None = None
    explanation_zh: str = ""
    explanation_en: str = ""


@dataclass(frozen=True, slots=True)
class ExamResult:
    """The outcome of an exam-exemption request (rule 11).

    Attributes:
        certificate_type_id: The requested certificate type.
        granted: Whether a part is waived.
        exam_part: The waived part, or when denied the part of the last rule tried.
        rule_key: The granting rule (``None`` when denied).
        rule_version: Its version (``None`` when denied).
        basis_outcome_id: Effective-version id of the basis record (``None`` when denied).
        basis_root_id: Root id of the basis record (``None`` when denied).
    """

    certificate_type_id: str
    granted: bool
    exam_part: str | None
    rule_key: str | None = None
    rule_version: int | None = None
    basis_outcome_id: str | None = None
    basis_root_id: str | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    """The decision on one application.

    Attributes:
        application: The application decided.
        grants: Grants made, in order (rule order, then candidate order).
        rule_notes: One note per rule tried, in processing order.
        record_notes: Notes on the learner's records at the decision date.
        exam: The result of an exam-exemption request; ``None`` for credit conversion.
        reason: Summary code.
        explanation_zh: Summary (Chinese).
        explanation_en: Summary (English).
    """

    application: Application
    grants: tuple[Grant, ...]
    rule_notes: tuple[RuleNote, ...]
    record_notes: tuple[RecordNote, ...]
    exam: ExamResult | None
    reason: Reason
    explanation_zh: str
    explanation_en: str

    @property
    def decided_on(self) -> dt.date:
        """The decision date D (``applied_on``)."""
        return self.application.applied_on

    @property
    def credits_granted(self) -> Centi:
        """Sum of the grants' credits at decision time (centicredits)."""
        return sum(g.credits for g in self.grants)


@dataclass(frozen=True, slots=True)
class Void:
    """A grant voided by the revocation of a record it used (rule 10).

    Attributes:
        grant: The voided grant.
        voided_at: The earliest ``revoked_at`` among its revoked chains.
        outcome_id: The root revoked on that date (lowest id on ties).
        revocation_reason: The root's revocation reason, if any.
    """

    grant: Grant
    voided_at: dt.date
    outcome_id: str
    revocation_reason: str | None

    @property
    def void_reason(self) -> str:
        """Free-text reason, e.g. ``source record O0057 revoked: ...``."""
        tail = f": {self.revocation_reason}" if self.revocation_reason else ""
        return f"source record {self.outcome_id} revoked{tail}"


@dataclass(frozen=True, slots=True)
class LearnerState:
    """What earlier decisions left for one learner (rule 0): grants, never deleted.

    Whether a grant is active at a date follows from the records (revocations), so the
    state only accumulates; see :func:`creditbank.core.rules.engine.active_grants`.

    Attributes:
        learner_id: The learner.
        grants: Every grant ever made, in decision order.
        exams: Every exam-exemption result, with its application id, in decision order.
        last_order_key: (``applied_on``, application id) of the last decision applied.
    """

    learner_id: str
    grants: tuple[Grant, ...] = ()
    exams: tuple[tuple[str, ExamResult], ...] = ()
    last_order_key: tuple[dt.date, str] | None = None

    def apply(self, decision: Decision) -> LearnerState:
        """Return the state after a decision.

        Args:
            decision: A decision on this learner, later than every decision applied.

        Returns:
            The new state (this one is unchanged).

        Raises:
            RuntimeError: The decision is for another learner or out of order (a
                programmer error: :func:`~creditbank.core.rules.engine.decide` already
                refuses such input).
        """
        app = decision.application
        if app.learner_id != self.learner_id:
            raise RuntimeError(f"decision for {app.learner_id} applied to {self.learner_id}")
        if self.last_order_key is not None and app.order_key <= self.last_order_key:
            raise RuntimeError(f"decision {app.id} applied out of order")
        exams = self.exams
        if decision.exam is not None:
            exams = (*exams, (app.id, decision.exam))
        return LearnerState(
            learner_id=self.learner_id,
            grants=self.grants + decision.grants,
            exams=exams,
            last_order_key=app.order_key,
        )
