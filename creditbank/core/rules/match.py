"""Source matching (rule 6a), compiled once per rule version.

A :class:`SourceMatcher` turns a rule's ``source`` pattern into set lookups, so that the
engine's inner loop does no per-call preparation. ``first_failure`` names the first
condition a record fails, which is also what the explanations report.
"""

from __future__ import annotations

import datetime as dt

from .model import (
    AcademicCredit,
    Catalog,
    CompetitionAward,
    ConversionRule,
    Record,
    SkillCertificate,
    TrainingHours,
    WorkExperience,
)


def years_before(on: dt.date, years: int) -> dt.date:
    """Return the same calendar day ``years`` years earlier; 29 February maps to 28 February.

    Args:
        on: The decision date D.
        years: ``recency_years``.

    Returns:
        The first day of the recency window (inclusive).
    """
    year = on.year - years
    if year < dt.MINYEAR:
        return dt.date.min
    if on.month == 2 and on.day == 29:
        return dt.date(year, 2, 28)
    return on.replace(year=year)


def _set(values: tuple[str, ...] | None) -> frozenset[str] | None:
    return None if values is None else frozenset(values)


class SourceMatcher:
    """The ``source`` pattern and recency window of one rule version, ready to match."""

    __slots__ = (
        "certificate_type_ids",
        "course_ids",
        "fields",
        "issuer_kinds",
        "kind",
        "max_rank",
        "min_grade",
        "min_level",
        "min_months",
        "occupations",
        "recency_years",
        "tiers",
    )

    def __init__(self, rule: ConversionRule) -> None:
        """Compile a rule's source pattern.

        Args:
            rule: The rule version.
        """
        src = rule.source
        self.kind = src.kind
        self.recency_years = rule.recency_years
        self.certificate_type_ids = _set(src.certificate_type_ids)
        self.occupations = _set(src.occupations)
        self.fields = _set(src.fields)
        self.min_level = src.min_level
        self.course_ids = _set(src.course_ids)
        self.min_grade = src.min_grade
        self.issuer_kinds = _set(src.issuer_kinds)
        self.tiers = None if src.credits_by_tier is None else dict(src.credits_by_tier)
        self.max_rank = src.max_rank
        self.min_months = src.min_months

    def window_start(self, on: dt.date) -> dt.date | None:
        """Return the first day of the recency window for a decision date.

        Args:
            on: The decision date D.

        Returns:
            The earliest accepted ``achieved_on``, or ``None`` without a window.
        """
        return None if self.recency_years is None else years_before(on, self.recency_years)

    def first_failure(self, eff: Record, start: dt.date | None, catalog: Catalog) -> str | None:
        """Return the first condition a record fails, or ``None`` if it matches.

        Args:
            eff: The record's effective version at D.
            start: :meth:`window_start` for D.
            catalog: For certificate types, training programmes and issuers.

        Returns:
            ``kind``, ``recency_years`` or the name of the failed source condition;
            ``None`` when the record matches.
        """
        p = eff.payload
        if self.kind != p.KIND:
            return "kind"
        if start is not None and eff.achieved_on < start:
            return "recency_years"
        if isinstance(p, SkillCertificate):
            ct = catalog.certificate_types.get(p.certificate_type_id)
            if ct is None:
                return "certificate_type_ids"
            if self.certificate_type_ids is not None and ct.id not in self.certificate_type_ids:
                return "certificate_type_ids"
            if self.occupations is not None and ct.occupation_key not in self.occupations:
                return "occupations"
            if self.fields is not None and ct.field not in self.fields:
                return "fields"
            if self.min_level is not None and (ct.level is None or ct.level < self.min_level):
                return "min_level"
        elif isinstance(p, AcademicCredit):
            if self.course_ids is not None and p.course_id not in self.course_ids:
                return "course_ids"
            if self.min_grade is not None and p.grade < self.min_grade:
                return "min_grade"
        elif isinstance(p, TrainingHours):
            if self.fields is not None:
                tp = catalog.training_programs.get(p.training_program_id)
                if tp is None or tp.field not in self.fields:
                    return "fields"
            if self.issuer_kinds is not None:
                inst = catalog.institutions.get(eff.issuer_id)
                if inst is None or inst.kind not in self.issuer_kinds:
                    return "issuer_kinds"
        elif isinstance(p, CompetitionAward):
            if self.tiers is not None and p.tier not in self.tiers:
                return "credits_by_tier"
            if self.max_rank is not None and p.rank > self.max_rank:
                return "max_rank"
            if self.fields is not None and p.field not in self.fields:
                return "fields"
        elif isinstance(p, WorkExperience):
            if self.occupations is not None and p.occupation_key not in self.occupations:
                return "occupations"
            if self.min_months is not None and p.duration_months < self.min_months:
                return "min_months"
        return None
