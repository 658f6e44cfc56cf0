"""Publish-time validation of conversion rules, and the validated :class:`RuleBook`.

``validate_rules`` is the only way to get a :class:`RuleBook`, and the engine only accepts a
``RuleBook``: a rule set that was never validated cannot be used to decide anything.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from creditbank.errors import RuleError

from .match import SourceMatcher
from .model import (
    CREDIT_MODES,
    INSTITUTION_KINDS,
    Catalog,
    ConversionRule,
    Mode,
    RecordKind,
    SourcePattern,
)

# Which source conditions each record kind understands (rule 6a).
APPLICABLE_CONDITIONS: Mapping[str, frozenset[str]] = {
    RecordKind.SKILL_CERTIFICATE: frozenset(
        {"certificate_type_ids", "occupations", "fields", "min_level"}
    ),
    RecordKind.ACADEMIC_CREDIT: frozenset({"course_ids", "min_grade"}),
    RecordKind.TRAINING_HOURS: frozenset({"fields", "issuer_kinds"}),
    RecordKind.COMPETITION_AWARD: frozenset({"credits_by_tier", "max_rank", "fields"}),
    RecordKind.WORK_EXPERIENCE: frozenset({"occupations", "min_months"}),
}
_LIST_CONDITIONS = (
    "certificate_type_ids",
    "occupations",
    "fields",
    "course_ids",
    "issuer_kinds",
    "credits_by_tier",
)
_ALL_CONDITIONS = (*_LIST_CONDITIONS, "min_level", "min_grade", "max_rank", "min_months")


@dataclass(frozen=True, slots=True)
class RuleProblem:
    """One reason a rule set cannot be published.

    Attributes:
        code: Stable machine code, e.g. ``rules.overlapping_versions``.
        rule_key: The rule concerned.
        version: The version concerned (``None`` when it concerns several).
        message: Plain-language description.
    """

    code: str
    rule_key: str
    version: int | None
    message: str


class RuleValidationError(RuleError):
    """A rule set was rejected at publish time.

    ``code`` is the code of the first problem; ``problems`` lists all of them, in rule order.
    """

    code = "rules.invalid"

    def __init__(self, problems: tuple[RuleProblem, ...], **extra: Any) -> None:
        first = problems[0]
        more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
        super().__init__(f"{first.message}{more}", code=first.code, **extra)
        self.problems = problems


@dataclass(frozen=True, slots=True, eq=False)
class RuleBook:
    """A validated rule set, indexed for the engine.

    Attributes:
        rules: Every rule version, sorted by (``rule_key``, ``version``).
        versions: Per ``rule_key``, its versions sorted by ``effective_from``.
        credit_keys_by_program: Per degree programme, the keys with a version targeting it.
        exam_keys_by_certificate: Per certificate type, the keys of reverse rules targeting it.
        matchers: Per (``rule_key``, ``version``), the compiled source pattern.
    """

    rules: tuple[ConversionRule, ...]
    versions: Mapping[str, tuple[ConversionRule, ...]]
    credit_keys_by_program: Mapping[str, tuple[str, ...]]
    exam_keys_by_certificate: Mapping[str, tuple[str, ...]]
    matchers: Mapping[tuple[str, int], SourceMatcher]
    _cache: dict[tuple[str, str, dt.date], tuple[ConversionRule, ...]] = field(
        default_factory=dict, repr=False
    )

    def matcher(self, rule: ConversionRule) -> SourceMatcher:
        """Return the compiled source pattern of a rule version of this book.

        Args:
            rule: A rule version returned by this book.

        Returns:
            Its matcher (compiled on the fly for a rule from elsewhere).
        """
        found = self.matchers.get((rule.rule_key, rule.version))
        return found if found is not None else SourceMatcher(rule)

    def version_in_force(self, rule_key: str, on: dt.date) -> ConversionRule | None:
        """Return the version of a rule in force on a date (rule 5).

        Args:
            rule_key: The rule.
            on: The date.

        Returns:
            The version, or ``None`` if no version covers the date (the rule does not exist
            then).
        """
        for rule in self.versions.get(rule_key, ()):
            if rule.in_force(on):
                return rule
        return None

    def credit_rules(self, program_id: str, on: dt.date) -> tuple[ConversionRule, ...]:
        """Return the credit rules in force on a date for a programme, in processing order.

        Args:
            program_id: The degree programme.
            on: The decision date.

        Returns:
            Rule versions sorted by (``priority``, ``rule_key``) (rule 6).
        """
        cache_key = ("credit", program_id, on)
        cached = self._cache.get(cache_key)
        if cached is None:
            cached = self._cache[cache_key] = self._credit_rules(program_id, on)
        return cached

    def _credit_rules(self, program_id: str, on: dt.date) -> tuple[ConversionRule, ...]:
        found: list[ConversionRule] = []
        for key in self.credit_keys_by_program.get(program_id, ()):
            rule = self.version_in_force(key, on)
            if (
                rule is not None
                and rule.target.mode in CREDIT_MODES
                and rule.target.program_id == program_id
            ):
                found.append(rule)
        found.sort(key=lambda r: (r.priority, r.rule_key))
        return tuple(found)

    def exam_rules(self, certificate_type_id: str, on: dt.date) -> tuple[ConversionRule, ...]:
        """Return the reverse rules in force on a date for a certificate, by ``rule_key``.

        Args:
            certificate_type_id: The requested certificate type.
            on: The request date.

        Returns:
            Rule versions sorted by ``rule_key`` (rule 11).
        """
        found: list[ConversionRule] = []
        for key in self.exam_keys_by_certificate.get(certificate_type_id, ()):
            rule = self.version_in_force(key, on)
            if (
                rule is not None
                and rule.target.mode == Mode.EXAM_EXEMPTION
                and rule.target.certificate_type_id == certificate_type_id
            ):
                found.append(rule)
        found.sort(key=lambda r: r.rule_key)
        return tuple(found)


def check_rules(rules: Iterable[ConversionRule], catalog: Catalog) -> tuple[RuleProblem, ...]:
    """List every problem of a rule set without raising.

    Args:
        rules: Every version of every rule to publish (the whole rule set).
        catalog: Programmes, courses, certificate types and institutions they may refer to.

    Returns:
        The problems, sorted by (``rule_key``, ``version``); empty when the set is valid.
    """
    rule_list = sorted(rules, key=lambda r: (r.rule_key, r.version))
    problems: list[RuleProblem] = []
    course_ids = catalog.known_course_ids()
    occupations = catalog.occupation_keys()
    for rule in rule_list:
        problems.extend(_check_one(rule, catalog, course_ids, occupations))
    problems.extend(_check_versions(rule_list))
    problems.sort(key=lambda p: (p.rule_key, p.version if p.version is not None else -1))
    return tuple(problems)


def validate_rules(rules: Iterable[ConversionRule], catalog: Catalog) -> RuleBook:
    """Validate a rule set at publish time and index it for the engine.

    Rejected: overlapping or repeated versions of one ``rule_key``; ``effective_to`` before
    ``effective_from``; unknown programme, course, certificate type, occupation, record kind,
    issuer kind or mode; a ``course_exemption`` without a course (or another mode with one);
    negative caps; missing or non-positive amounts; source conditions that do not apply to
    the source kind; empty condition lists; negative ``recency_years``.

    Args:
        rules: Every version of every rule (the whole rule set).
        catalog: What the rules may refer to.

    Returns:
        The validated, indexed rule book.

    Raises:
        RuleValidationError: With ``code`` of the first problem and ``problems`` listing
            all of them.
    """
    rule_list = tuple(sorted(rules, key=lambda r: (r.rule_key, r.version)))
    problems = check_rules(rule_list, catalog)
    if problems:
        raise RuleValidationError(problems)
    versions: dict[str, list[ConversionRule]] = {}
    by_program: dict[str, set[str]] = {}
    by_cert: dict[str, set[str]] = {}
    for rule in rule_list:
        versions.setdefault(rule.rule_key, []).append(rule)
        target = rule.target
        if target.mode == Mode.EXAM_EXEMPTION and target.certificate_type_id is not None:
            by_cert.setdefault(target.certificate_type_id, set()).add(rule.rule_key)
        elif target.program_id is not None:
            by_program.setdefault(target.program_id, set()).add(rule.rule_key)
    return RuleBook(
        rules=rule_list,
        versions={k: tuple(sorted(v, key=lambda r: r.effective_from)) for k, v in versions.items()},
        credit_keys_by_program={k: tuple(sorted(v)) for k, v in by_program.items()},
        exam_keys_by_certificate={k: tuple(sorted(v)) for k, v in by_cert.items()},
        matchers={(r.rule_key, r.version): SourceMatcher(r) for r in rule_list},
    )


def _check_one(
    rule: ConversionRule,
    catalog: Catalog,
    course_ids: frozenset[str],
    occupations: frozenset[str],
) -> list[RuleProblem]:
    out: list[RuleProblem] = []

    def bad(code: str, message: str) -> None:
        out.append(RuleProblem(code, rule.rule_key, rule.version, f"{_name(rule)}: {message}"))

    if not rule.rule_key:
        bad("rules.missing_key", "rule_key is empty")
    if rule.version < 1:
        bad("rules.bad_version", f"version {rule.version} must be 1 or more")
    if rule.effective_to is not None and rule.effective_to < rule.effective_from:
        bad(
            "rules.bad_effective_range",
            f"effective_to {rule.effective_to} is before effective_from {rule.effective_from}",
        )
    if rule.recency_years is not None and rule.recency_years < 0:
        bad("rules.bad_recency", f"recency_years {rule.recency_years} is negative")

    target = rule.target
    mode = target.mode
    if mode not in CREDIT_MODES and mode != Mode.EXAM_EXEMPTION:
        bad("rules.unknown_mode", f"unknown mode {mode!r}")
    elif mode == Mode.EXAM_EXEMPTION:
        if target.certificate_type_id is None:
            bad("rules.missing_certificate_type", "exam_exemption needs a certificate_type_id")
        elif target.certificate_type_id not in catalog.certificate_types:
            bad(
                "rules.unknown_certificate_type",
                f"unknown certificate type {target.certificate_type_id}",
            )
        if not target.exam_part:
            bad("rules.missing_exam_part", "exam_exemption needs an exam_part")
        if target.program_id is not None or target.course_id is not None:
            bad(
                "rules.unexpected_target",
                "exam_exemption converts into no programme or course",
            )
    else:
        program = catalog.degree_programs.get(target.program_id or "")
        if target.program_id is None:
            bad("rules.missing_program", f"{mode} needs a target program_id")
        elif program is None:
            bad("rules.unknown_program", f"unknown degree programme {target.program_id}")
        if mode == Mode.COURSE_EXEMPTION:
            if target.course_id is None:
                bad("rules.missing_course", "course_exemption needs a target course_id")
            elif program is not None:
                course = program.course(target.course_id)
                if course is None:
                    bad(
                        "rules.unknown_course",
                        f"course {target.course_id} is not a course of {program.id}",
                    )
                elif course.credits <= 0:
                    bad(
                        "rules.bad_amount",
                        f"course {course.id} carries no credits to exempt",
                    )
        elif target.course_id is not None:
            bad(
                "rules.unexpected_course",
                f"{mode} grants elective credits and takes no course_id",
            )
        if target.certificate_type_id is not None or target.exam_part is not None:
            bad("rules.unexpected_target", f"{mode} takes no certificate_type_id or exam_part")

    caps = rule.caps
    if caps.max_credits is not None and caps.max_credits < 0:
        bad("rules.negative_cap", f"max_credits {caps.max_credits / 100:g} is negative")
    if caps.max_outcomes is not None and caps.max_outcomes < 0:
        bad("rules.negative_cap", f"max_outcomes {caps.max_outcomes} is negative")

    source = rule.source
    if mode == Mode.ELECTIVE_FIXED:
        if rule.credits_per_outcome is None:
            bad("rules.missing_amount", "elective_fixed needs credits_per_outcome")
        elif rule.credits_per_outcome <= 0:
            bad("rules.bad_amount", "credits_per_outcome must be positive")
    elif rule.credits_per_outcome is not None:
        bad("rules.unexpected_amount", f"{mode} takes no credits_per_outcome")
    if mode == Mode.HOURS_TO_CREDITS:
        if rule.hours_per_credit is None:
            bad("rules.missing_amount", "hours_to_credits needs hours_per_credit")
        elif rule.hours_per_credit <= 0:
            bad("rules.bad_amount", "hours_per_credit must be positive")
        if source.kind != RecordKind.TRAINING_HOURS:
            bad("rules.kind_mismatch", "hours_to_credits needs a training_hours source")
    elif rule.hours_per_credit is not None:
        bad("rules.unexpected_amount", f"{mode} takes no hours_per_credit")
    if mode == Mode.ELECTIVE_BY_TIER:
        if not source.credits_by_tier:
            bad("rules.missing_amount", "elective_by_tier needs source.credits_by_tier")
        if source.kind != RecordKind.COMPETITION_AWARD:
            bad("rules.kind_mismatch", "elective_by_tier needs a competition_award source")
    for tier, amount in source.credits_by_tier or ():
        if amount <= 0:
            bad("rules.bad_amount", f"credits_by_tier[{tier}] must be positive")

    _check_source(source, catalog, course_ids, occupations, bad)
    return out


def _check_source(
    source: SourcePattern,
    catalog: Catalog,
    course_ids: frozenset[str],
    occupations: frozenset[str],
    bad: Callable[[str, str], None],
) -> None:
    """The source pattern's problems, each told to ``bad`` (the rule's own reporter)."""
    applicable = APPLICABLE_CONDITIONS.get(source.kind)
    if applicable is None:
        bad("rules.unknown_kind", f"unknown source kind {source.kind!r}")
        return
    for name in _ALL_CONDITIONS:
        value = getattr(source, name)
        if value is None:
            continue
        if name not in applicable:
            bad(
                "rules.condition_not_applicable",
                f"condition {name} does not apply to {source.kind} records",
            )
        elif name in _LIST_CONDITIONS and len(value) == 0:
            bad("rules.empty_condition", f"condition {name} is empty and can never match")
    for ct in source.certificate_type_ids or ():
        if ct not in catalog.certificate_types:
            bad("rules.unknown_certificate_type", f"unknown certificate type {ct}")
    if source.kind == RecordKind.SKILL_CERTIFICATE:
        for occ in source.occupations or ():
            if occ not in occupations:
                bad("rules.unknown_occupation", f"no certificate type has occupation {occ}")
    for cid in source.course_ids or ():
        if cid not in course_ids:
            bad("rules.unknown_course", f"unknown source course {cid}")
    for ik in source.issuer_kinds or ():
        if ik not in INSTITUTION_KINDS:
            bad("rules.unknown_issuer_kind", f"unknown issuer kind {ik}")
    if source.min_grade is not None and not 0 <= source.min_grade <= 100 * 100:
        bad("rules.bad_condition", "min_grade must be within 0-100")
    if source.max_rank is not None and source.max_rank < 1:
        bad("rules.bad_condition", "max_rank must be 1 or more")
    if source.min_months is not None and source.min_months < 0:
        bad("rules.bad_condition", "min_months must not be negative")
    if source.min_level is not None and source.min_level < 0:
        bad("rules.bad_condition", "min_level must not be negative")


def _check_versions(rule_list: list[ConversionRule]) -> list[RuleProblem]:
    out: list[RuleProblem] = []
    by_key: dict[str, list[ConversionRule]] = {}
    for rule in rule_list:
        by_key.setdefault(rule.rule_key, []).append(rule)
    for key, versions in by_key.items():
        seen: set[int] = set()
        for rule in versions:
            if rule.version in seen:
                out.append(
                    RuleProblem(
                        "rules.duplicate_version",
                        key,
                        rule.version,
                        f"{_name(rule)}: version {rule.version} is published twice",
                    )
                )
            seen.add(rule.version)
        ordered = sorted(versions, key=lambda r: (r.effective_from, r.version))
        for i, earlier in enumerate(ordered):
            for later in ordered[i + 1 :]:
                if _overlap(earlier, later):
                    out.append(
                        RuleProblem(
                            "rules.overlapping_versions",
                            key,
                            later.version,
                            f"{key}: versions {earlier.version} "
                            f"({_range(earlier)}) and {later.version} ({_range(later)}) "
                            "overlap",
                        )
                    )
    return out


def _overlap(a: ConversionRule, b: ConversionRule) -> bool:
    # Inclusive ranges [from, to]; None = open-ended. Bad ranges are reported elsewhere.
    a_end = a.effective_to or dt.date.max
    b_end = b.effective_to or dt.date.max
    return a.effective_from <= b_end and b.effective_from <= a_end


def _range(rule: ConversionRule) -> str:
    end = rule.effective_to.isoformat() if rule.effective_to else "open"
    return f"{rule.effective_from.isoformat()}..{end}"


def _name(rule: ConversionRule) -> str:
    return f"{rule.rule_key} v{rule.version}"


__all__ = [
    "APPLICABLE_CONDITIONS",
    "RuleBook",
    "RuleProblem",
    "RuleValidationError",
    "check_rules",
    "validate_rules",
]
