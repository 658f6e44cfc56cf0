"""The wire format of a ``rules.published`` entry, and rules files read into it.

Pure: a :class:`Publication` (a rule set with the catalogue it needs) to and from the entry
body (integers only: quantities in hundredths), and :func:`parse_rules_document` for the
sample's rules file shapes. The bank service publishes and reads these bodies
(:mod:`creditbank.service.conversion.publishing`); docs/conversion-service.md §1 shows one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from creditbank.errors import InvalidInputError

from .dataset import (
    parse_certificate_type,
    parse_programs,
    parse_rule,
    source_conditions_json,
    target_json,
)
from .model import (
    Caps,
    CertificateType,
    ConversionRule,
    Course,
    DegreeProgram,
    RuleTarget,
    SourcePattern,
    SourceProgram,
    TrainingProgram,
)

RULES_PUBLISHED: Final = "rules.published"


def _opt(out: dict[str, Any], key: str, value: Any) -> None:
    if value is not None:
        out[key] = value


def rule_to_wire(rule: ConversionRule) -> dict[str, Any]:
    """One rule version as stored in a ``rules.published`` body."""
    target = target_json(rule.target)
    src = rule.source
    source = source_conditions_json(src)
    _opt(source, "min_grade_centi", src.min_grade)
    if src.credits_by_tier is not None:
        source["credits_by_tier_centi"] = dict(src.credits_by_tier)
    caps: dict[str, Any] = {}
    _opt(caps, "max_credits_centi", rule.caps.max_credits)
    _opt(caps, "max_outcomes", rule.caps.max_outcomes)
    out: dict[str, Any] = {
        "rule_key": rule.rule_key,
        "version": rule.version,
        "effective_from": rule.effective_from.isoformat(),
        "effective_to": rule.effective_to.isoformat() if rule.effective_to else None,
        "priority": rule.priority,
        "target": target,
        "source": source,
        "caps": caps,
        "name_zh": rule.name_zh,
        "name_en": rule.name_en,
    }
    _opt(out, "recency_years", rule.recency_years)
    _opt(out, "credits_per_outcome_centi", rule.credits_per_outcome)
    _opt(out, "hours_per_credit_centi", rule.hours_per_credit)
    return out


def _tuple(value: Any) -> tuple[str, ...] | None:
    return None if value is None else tuple(str(v) for v in value)


def rule_from_wire(d: Mapping[str, Any]) -> ConversionRule:
    """Inverse of :func:`rule_to_wire`."""
    t, s, c = d["target"], d["source"], d.get("caps") or {}
    tiers = s.get("credits_by_tier_centi")
    return ConversionRule(
        rule_key=str(d["rule_key"]),
        version=int(d["version"]),
        effective_from=dt.date.fromisoformat(d["effective_from"]),
        effective_to=dt.date.fromisoformat(d["effective_to"]) if d.get("effective_to") else None,
        target=RuleTarget(
            mode=str(t["mode"]),
            program_id=t.get("program_id"),
            course_id=t.get("course_id"),
            certificate_type_id=t.get("certificate_type_id"),
            exam_part=t.get("exam_part"),
        ),
        source=SourcePattern(
            kind=str(s["kind"]),
            certificate_type_ids=_tuple(s.get("certificate_type_ids")),
            occupations=_tuple(s.get("occupations")),
            fields=_tuple(s.get("fields")),
            min_level=s.get("min_level"),
            course_ids=_tuple(s.get("course_ids")),
            min_grade=s.get("min_grade_centi"),
            issuer_kinds=_tuple(s.get("issuer_kinds")),
            credits_by_tier=None if tiers is None else tuple((k, int(v)) for k, v in tiers.items()),
            max_rank=s.get("max_rank"),
            min_months=s.get("min_months"),
        ),
        priority=int(d.get("priority") or 0),
        recency_years=d.get("recency_years"),
        caps=Caps(max_credits=c.get("max_credits_centi"), max_outcomes=c.get("max_outcomes")),
        credits_per_outcome=d.get("credits_per_outcome_centi"),
        hours_per_credit=d.get("hours_per_credit_centi"),
        name_zh=str(d.get("name_zh") or ""),
        name_en=str(d.get("name_en") or ""),
    )


def _course_wire(c: Course) -> dict[str, Any]:
    return {"id": c.id, "credits_centi": c.credits, "name_zh": c.name_zh, "name_en": c.name_en}


def _course(d: Mapping[str, Any]) -> Course:
    return Course(str(d["id"]), int(d["credits_centi"]), str(d["name_zh"]), str(d["name_en"]))


@dataclass(frozen=True, slots=True, eq=False)
class Publication:
    """A rule set with the catalogue it needs (the content of a ``rules.published`` entry)."""

    rules: tuple[ConversionRule, ...]
    degree_programs: tuple[DegreeProgram, ...]
    source_programs: tuple[SourceProgram, ...]
    training_programs: tuple[TrainingProgram, ...]
    certificate_types: tuple[CertificateType, ...]

    def body(self) -> dict[str, Any]:
        """The entry body (deterministic: rules by key and version, catalogue by id)."""
        return {
            "rules": [
                rule_to_wire(r) for r in sorted(self.rules, key=lambda r: (r.rule_key, r.version))
            ],
            "degree_programs": [
                {
                    "id": p.id,
                    "institution_id": p.institution_id,
                    "name_zh": p.name_zh,
                    "name_en": p.name_en,
                    "courses": [_course_wire(c) for c in p.courses],
                    **(
                        {}
                        if p.max_converted_credits is None
                        else {"max_converted_credits_centi": p.max_converted_credits}
                    ),
                    **(
                        {}
                        if p.elective_pool_max is None
                        else {"elective_pool_max_centi": p.elective_pool_max}
                    ),
                }
                for p in sorted(self.degree_programs, key=lambda p: p.id)
            ],
            "source_programs": [
                {
                    "id": p.id,
                    "institution_id": p.institution_id,
                    "name_zh": p.name_zh,
                    "name_en": p.name_en,
                    "courses": [_course_wire(c) for c in p.courses],
                }
                for p in sorted(self.source_programs, key=lambda p: p.id)
            ],
            "training_programs": [
                {
                    "id": p.id,
                    "institution_id": p.institution_id,
                    "field": p.field,
                    "name_zh": p.name_zh,
                    "name_en": p.name_en,
                }
                for p in sorted(self.training_programs, key=lambda p: p.id)
            ],
            "certificate_types": [
                {
                    "id": c.id,
                    "occupation_key": c.occupation_key,
                    "level": c.level,
                    "field": c.field,
                    "family": c.family,
                    "validity_years": c.validity_years,
                    "occupation_zh": c.occupation_zh,
                    "occupation_en": c.occupation_en,
                    "level_label_zh": c.level_label_zh,
                    "level_label_en": c.level_label_en,
                }
                for c in sorted(self.certificate_types, key=lambda c: c.id)
            ],
        }

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> Publication:
        """Read a stored ``rules.published`` body back."""
        return cls(
            rules=tuple(rule_from_wire(r) for r in body["rules"]),
            degree_programs=tuple(
                DegreeProgram(
                    id=str(p["id"]),
                    institution_id=str(p["institution_id"]),
                    courses=tuple(_course(c) for c in p["courses"]),
                    max_converted_credits=p.get("max_converted_credits_centi"),
                    elective_pool_max=p.get("elective_pool_max_centi"),
                    name_zh=str(p["name_zh"]),
                    name_en=str(p["name_en"]),
                )
                for p in body["degree_programs"]
            ),
            source_programs=tuple(
                SourceProgram(
                    id=str(p["id"]),
                    institution_id=str(p["institution_id"]),
                    courses=tuple(_course(c) for c in p["courses"]),
                    name_zh=str(p["name_zh"]),
                    name_en=str(p["name_en"]),
                )
                for p in body["source_programs"]
            ),
            training_programs=tuple(
                TrainingProgram(
                    id=str(p["id"]),
                    institution_id=str(p["institution_id"]),
                    field=str(p["field"]),
                    name_zh=str(p["name_zh"]),
                    name_en=str(p["name_en"]),
                )
                for p in body["training_programs"]
            ),
            certificate_types=tuple(
                CertificateType(
                    id=str(c["id"]),
                    occupation_key=str(c["occupation_key"]),
                    level=c["level"],
                    field=str(c["field"]),
                    family=str(c["family"]),
                    validity_years=c["validity_years"],
                    occupation_zh=str(c["occupation_zh"]),
                    occupation_en=str(c["occupation_en"]),
                    level_label_zh=str(c["level_label_zh"]),
                    level_label_en=str(c["level_label_en"]),
                )
                for c in body["certificate_types"]
            ),
        )


def parse_rules_document(doc: Any, *, base: Publication | None = None) -> Publication:
    """A publication from a rules file (the sample's file shapes).

    ``doc`` is either an array of rule rows (``conversion_rules.json``), or an object with
    ``conversion_rules`` (or ``rules``) and optionally ``programs`` (the ``programs.json``
    object) and ``certificate_types`` (the ``certificate_types.json`` array). What the
    document leaves out is taken from ``base`` (the publication in force).

    Raises:
        InvalidInputError: a malformed row (the path names it), or no catalogue at all
            (``conversion.no_catalog``).
    """
    if isinstance(doc, list):
        doc = {"conversion_rules": doc}
    if not isinstance(doc, Mapping):
        raise InvalidInputError(
            "a rules file is an array of rules or an object with conversion_rules",
            code="conversion.rules_file",
        )
    unknown = sorted(set(doc) - {"conversion_rules", "rules", "programs", "certificate_types"})
    if unknown:
        raise InvalidInputError(
            f"unknown member(s) of the rules file: {', '.join(unknown)}",
            code="conversion.rules_file",
        )
    rows = doc.get("conversion_rules", doc.get("rules"))
    if not isinstance(rows, list):
        raise InvalidInputError(
            "the rules file needs an array conversion_rules", code="conversion.rules_file"
        )
    rules = tuple(parse_rule(r, f"conversion_rules[{i}]") for i, r in enumerate(rows))
    if "programs" in doc:
        degree, source, training = parse_programs(doc["programs"])
    elif base is not None:
        degree, source, training = (
            base.degree_programs,
            base.source_programs,
            base.training_programs,
        )
    else:
        raise InvalidInputError(
            "no programs given and none published before", code="conversion.no_catalog"
        )
    if "certificate_types" in doc:
        cts = doc["certificate_types"]
        if not isinstance(cts, list):
            raise InvalidInputError(
                "certificate_types must be an array", code="conversion.rules_file"
            )
        ctypes = tuple(
            parse_certificate_type(c, f"certificate_types[{i}]") for i, c in enumerate(cts)
        )
    elif base is not None:
        ctypes = base.certificate_types
    else:
        raise InvalidInputError(
            "no certificate_types given and none published before", code="conversion.no_catalog"
        )
    return Publication(rules, tuple(degree), tuple(source), tuple(training), ctypes)


__all__ = [
    "RULES_PUBLISHED",
    "Publication",
    "parse_rules_document",
    "rule_from_wire",
    "rule_to_wire",
]
