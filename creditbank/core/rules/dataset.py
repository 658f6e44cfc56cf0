"""Build the engine's model from already-parsed JSON (the ``sample/`` file layout).

Pure: callers read and ``json.loads`` the files; these functions only check shapes and
convert. Numbers that may be fractional (credits, hours, grades) become exact ``int``
hundredths; a value that is not a whole number of hundredths is rejected rather than
rounded. Malformed input raises :class:`~creditbank.errors.InvalidInputError` naming the
offending item, e.g. ``outcomes[12].payload.hours``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from creditbank.errors import InvalidInputError

from .model import (
    CENTI,
    AcademicCredit,
    Application,
    ApplicationType,
    Caps,
    Catalog,
    Centi,
    CertificateType,
    CompetitionAward,
    ConversionRule,
    Course,
    DegreeProgram,
    Institution,
    Learner,
    Payload,
    Record,
    RecordKind,
    RuleTarget,
    SkillCertificate,
    SourcePattern,
    SourceProgram,
    TrainingHours,
    TrainingProgram,
    WorkExperience,
)

SOURCE_KEYS = frozenset(
    {
        "kind",
        "certificate_type_ids",
        "occupations",
        "fields",
        "min_level",
        "course_ids",
        "min_grade",
        "issuer_kinds",
        "credits_by_tier",
        "max_rank",
        "min_months",
    }
)
CAP_KEYS = frozenset({"max_credits", "max_outcomes"})


@dataclass(frozen=True, slots=True, eq=False)
class Dataset:
    """A whole dataset in the ``sample/`` layout, converted to model values.

    Attributes:
        catalog: Institutions, programmes and certificate types.
        rules: Every rule version (not yet validated: see ``validate_rules``).
        learners: Registered learners, in file order.
        records: Posted records, in file order.
        applications: Applications and exam-exemption requests, in file order.
    """

    catalog: Catalog
    rules: tuple[ConversionRule, ...]
    learners: tuple[Learner, ...]
    records: tuple[Record, ...]
    applications: tuple[Application, ...]


# --- primitive readers ---------------------------------------------------------------------
def _fail(where: str, message: str) -> InvalidInputError:
    return InvalidInputError(f"{where}: {message}", code="input.invalid", where=where)


def _obj(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _fail(where, "expected an object")
    return value


def _list(value: Any, where: str) -> Sequence[Any]:
    if not isinstance(value, list | tuple):
        raise _fail(where, "expected an array")
    return value


def _str(d: Mapping[str, Any], key: str, where: str) -> str:
    value = d.get(key)
    if not isinstance(value, str) or not value:
        raise _fail(f"{where}.{key}", "expected a non-empty string")
    return value


def _opt_str(d: Mapping[str, Any], key: str, where: str) -> str | None:
    value = d.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _fail(f"{where}.{key}", "expected a string or null")
    return value


def _parse_date(value: Any, where: str) -> dt.date:
    if isinstance(value, str):
        try:
            if len(value) == 10:
                return dt.date.fromisoformat(value)
            moment = dt.datetime.fromisoformat(value)
        except ValueError:
            raise _fail(where, f"not an ISO date: {value!r}") from None
        if moment.tzinfo is not None:
            moment = moment.astimezone(dt.UTC)
        return moment.date()
    raise _fail(where, "expected an ISO date string")


def _date(d: Mapping[str, Any], key: str, where: str) -> dt.date:
    return _parse_date(d.get(key), f"{where}.{key}")


def _opt_date(d: Mapping[str, Any], key: str, where: str) -> dt.date | None:
    value = d.get(key)
    return None if value is None else _parse_date(value, f"{where}.{key}")


def _number(value: Any, where: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _fail(where, "expected a number")
    try:
        number = Decimal(value) if isinstance(value, int) else Decimal(repr(value))
    except InvalidOperation:  # pragma: no cover - repr of a float is always a decimal
        raise _fail(where, f"not a number: {value!r}") from None
    if not number.is_finite():
        raise _fail(where, "expected a finite number")
    return number


def to_centi(value: Any, where: str = "value") -> Centi:
    """Convert a JSON number to exact hundredths.

    Args:
        value: An ``int`` or a ``float`` (read through its shortest repr, so ``1.1`` is
            exactly 110 hundredths).
        where: Location for the error message.

    Returns:
        ``value * 100`` as an ``int``.

    Raises:
        InvalidInputError: Not a number, or not a whole number of hundredths.
    """
    scaled = _number(value, where) * CENTI
    if scaled != scaled.to_integral_value():
        raise _fail(where, f"{value!r} has more than two decimal places")
    return int(scaled)


def _centi(d: Mapping[str, Any], key: str, where: str) -> Centi:
    if d.get(key) is None:
        raise _fail(f"{where}.{key}", "is required")
    return to_centi(d[key], f"{where}.{key}")


def _opt_centi(d: Mapping[str, Any], key: str, where: str) -> Centi | None:
    value = d.get(key)
    return None if value is None else to_centi(value, f"{where}.{key}")


def _int(d: Mapping[str, Any], key: str, where: str) -> int:
    value = d.get(key)
    if value is None:
        raise _fail(f"{where}.{key}", "is required")
    number = _number(value, f"{where}.{key}")
    if number != number.to_integral_value():
        raise _fail(f"{where}.{key}", "expected an integer")
    return int(number)


def _opt_int(d: Mapping[str, Any], key: str, where: str) -> int | None:
    return None if d.get(key) is None else _int(d, key, where)


def _opt_strs(d: Mapping[str, Any], key: str, where: str) -> tuple[str, ...] | None:
    value = d.get(key)
    if value is None:
        return None
    items = _list(value, f"{where}.{key}")
    for i, item in enumerate(items):
        if not isinstance(item, str):
            raise _fail(f"{where}.{key}[{i}]", "expected a string")
    return tuple(items)


def _unique(items: Sequence[Any], what: str) -> None:
    seen: set[str] = set()
    for item in items:
        if item.id in seen:
            raise InvalidInputError(
                f"{what}: id {item.id} appears twice", code="input.duplicate_id"
            )
        seen.add(item.id)


# --- catalogue -----------------------------------------------------------------------------
def parse_institution(value: Any, where: str = "institution") -> Institution:
    """Parse one ``institutions.json`` entry.

    Args:
        value: The parsed JSON object.
        where: Location for error messages.

    Returns:
        The institution.

    Raises:
        InvalidInputError: Malformed entry.
    """
    d = _obj(value, where)
    return Institution(
        id=_str(d, "id", where),
        kind=_str(d, "kind", where),
        status=_opt_str(d, "status", where) or "active",
        closed_on=_opt_date(d, "closed_on", where),
        records_custodian=_opt_str(d, "records_custodian", where),
        name_zh=_opt_str(d, "name_zh", where) or "",
        name_en=_opt_str(d, "name_en", where) or "",
    )


def parse_certificate_type(value: Any, where: str = "certificate_type") -> CertificateType:
    """Parse one ``certificate_types.json`` entry.

    Args:
        value: The parsed JSON object.
        where: Location for error messages.

    Returns:
        The certificate type.

    Raises:
        InvalidInputError: Malformed entry.
    """
    d = _obj(value, where)
    return CertificateType(
        id=_str(d, "id", where),
        occupation_key=_str(d, "occupation_key", where),
        level=_opt_int(d, "level", where),
        field=_str(d, "field", where),
        family=_opt_str(d, "family", where) or "",
        validity_years=_opt_int(d, "validity_years", where),
        occupation_zh=_opt_str(d, "occupation_zh", where) or "",
        occupation_en=_opt_str(d, "occupation_en", where) or "",
        level_label_zh=_opt_str(d, "level_label_zh", where) or "",
        level_label_en=_opt_str(d, "level_label_en", where) or "",
    )


def _courses(d: Mapping[str, Any], where: str) -> tuple[Course, ...]:
    out: list[Course] = []
    for i, item in enumerate(_list(d.get("courses", []), f"{where}.courses")):
        cw = f"{where}.courses[{i}]"
        c = _obj(item, cw)
        credits = _centi(c, "credits", cw)
        if credits < 0:
            raise _fail(f"{cw}.credits", "must not be negative")
        out.append(
            Course(
                id=_str(c, "id", cw),
                credits=credits,
                name_zh=_opt_str(c, "name_zh", cw) or "",
                name_en=_opt_str(c, "name_en", cw) or "",
            )
        )
    _unique(out, f"{where}.courses")
    return tuple(out)


def parse_programs(
    value: Any, where: str = "programs"
) -> tuple[tuple[DegreeProgram, ...], tuple[SourceProgram, ...], tuple[TrainingProgram, ...]]:
    """Parse ``programs.json`` (``degree_programs``, ``source_programs``, ``training_programs``).

    Args:
        value: The parsed JSON object.
        where: Location for error messages.

    Returns:
        Degree, source and training programmes.

    Raises:
        InvalidInputError: Malformed entry, or a negative cap or course credit.
    """
    d = _obj(value, where)
    degree: list[DegreeProgram] = []
    for i, item in enumerate(_list(d.get("degree_programs", []), f"{where}.degree_programs")):
        pw = f"{where}.degree_programs[{i}]"
        p = _obj(item, pw)
        caps = {k: _opt_centi(p, k, pw) for k in ("max_converted_credits", "elective_pool_max")}
        for k, v in caps.items():
            if v is not None and v < 0:
                raise _fail(f"{pw}.{k}", "must not be negative")
        degree.append(
            DegreeProgram(
                id=_str(p, "id", pw),
                institution_id=_str(p, "institution_id", pw),
                courses=_courses(p, pw),
                max_converted_credits=caps["max_converted_credits"],
                elective_pool_max=caps["elective_pool_max"],
                name_zh=_opt_str(p, "name_zh", pw) or "",
                name_en=_opt_str(p, "name_en", pw) or "",
            )
        )
    source: list[SourceProgram] = []
    for i, item in enumerate(_list(d.get("source_programs", []), f"{where}.source_programs")):
        pw = f"{where}.source_programs[{i}]"
        p = _obj(item, pw)
        source.append(
            SourceProgram(
                id=_str(p, "id", pw),
                institution_id=_str(p, "institution_id", pw),
                courses=_courses(p, pw),
                name_zh=_opt_str(p, "name_zh", pw) or "",
                name_en=_opt_str(p, "name_en", pw) or "",
            )
        )
    training: list[TrainingProgram] = []
    for i, item in enumerate(_list(d.get("training_programs", []), f"{where}.training_programs")):
        pw = f"{where}.training_programs[{i}]"
        p = _obj(item, pw)
        training.append(
            TrainingProgram(
                id=_str(p, "id", pw),
                institution_id=_str(p, "institution_id", pw),
                field=_str(p, "field", pw),
                name_zh=_opt_str(p, "name_zh", pw) or "",
                name_en=_opt_str(p, "name_en", pw) or "",
            )
        )
    _unique([*degree, *source, *training], where)
    return tuple(degree), tuple(source), tuple(training)


def load_catalog(institutions: Any, programs: Any, certificate_types: Any) -> Catalog:
    """Build the catalogue from the institutions, programmes and certificate-type files.

    Args:
        institutions: Parsed ``institutions.json`` (an array).
        programs: Parsed ``programs.json`` (an object).
        certificate_types: Parsed ``certificate_types.json`` (an array).

    Returns:
        The catalogue.

    Raises:
        InvalidInputError: Malformed entry or repeated id.
    """
    insts = tuple(
        parse_institution(x, f"institutions[{i}]")
        for i, x in enumerate(_list(institutions, "institutions"))
    )
    cts = tuple(
        parse_certificate_type(x, f"certificate_types[{i}]")
        for i, x in enumerate(_list(certificate_types, "certificate_types"))
    )
    _unique(insts, "institutions")
    _unique(cts, "certificate_types")
    degree, source, training = parse_programs(programs)
    return Catalog.build(
        institutions=insts,
        certificate_types=cts,
        degree_programs=degree,
        source_programs=source,
        training_programs=training,
    )


# --- rules ---------------------------------------------------------------------------------
def _tiers(value: Any, where: str) -> tuple[tuple[str, Centi], ...]:
    d = _obj(value, where)
    return tuple((str(k), to_centi(v, f"{where}.{k}")) for k, v in d.items())


def parse_rule(value: Any, where: str = "rule") -> ConversionRule:
    """Parse one ``conversion_rules.json`` row (one rule version).

    Shape errors raise here; semantic errors (unknown mode, overlapping versions, unknown
    programme...) are left to ``validate_rules`` so that publishing reports them all.

    Args:
        value: The parsed JSON object.
        where: Location for error messages.

    Returns:
        The rule version.

    Raises:
        InvalidInputError: Malformed row, or an unknown source condition or cap (an unknown
            condition would otherwise be silently ignored and widen the rule).
    """
    d = _obj(value, where)
    tw = f"{where}.target"
    t = _obj(d.get("target"), tw)
    sw = f"{where}.source"
    s = _obj(d.get("source"), sw)
    unknown = sorted(set(s) - SOURCE_KEYS)
    if unknown:
        raise InvalidInputError(
            f"{sw}: unknown condition(s) {', '.join(unknown)}", code="input.unknown_condition"
        )
    cw = f"{where}.caps"
    c = _obj(d.get("caps") or {}, cw)
    unknown = sorted(set(c) - CAP_KEYS)
    if unknown:
        raise InvalidInputError(
            f"{cw}: unknown cap(s) {', '.join(unknown)}", code="input.unknown_condition"
        )
    tiers_value = s.get("credits_by_tier")
    source = SourcePattern(
        kind=_str(s, "kind", sw),
        certificate_type_ids=_opt_strs(s, "certificate_type_ids", sw),
        occupations=_opt_strs(s, "occupations", sw),
        fields=_opt_strs(s, "fields", sw),
        min_level=_opt_int(s, "min_level", sw),
        course_ids=_opt_strs(s, "course_ids", sw),
        min_grade=_opt_centi(s, "min_grade", sw),
        issuer_kinds=_opt_strs(s, "issuer_kinds", sw),
        credits_by_tier=None
        if tiers_value is None
        else _tiers(tiers_value, f"{sw}.credits_by_tier"),
        max_rank=_opt_int(s, "max_rank", sw),
        min_months=_opt_int(s, "min_months", sw),
    )
    return ConversionRule(
        rule_key=_str(d, "rule_key", where),
        version=_int(d, "version", where),
        effective_from=_date(d, "effective_from", where),
        effective_to=_opt_date(d, "effective_to", where),
        target=RuleTarget(
            mode=_str(t, "mode", tw),
            program_id=_opt_str(t, "program_id", tw),
            course_id=_opt_str(t, "course_id", tw),
            certificate_type_id=_opt_str(t, "certificate_type_id", tw),
            exam_part=_opt_str(t, "exam_part", tw),
        ),
        source=source,
        priority=_opt_int(d, "priority", where) or 0,
        recency_years=_opt_int(d, "recency_years", where),
        caps=Caps(
            max_credits=_opt_centi(c, "max_credits", cw),
            max_outcomes=_opt_int(c, "max_outcomes", cw),
        ),
        credits_per_outcome=_opt_centi(d, "credits_per_outcome", where),
        hours_per_credit=_opt_centi(d, "hours_per_credit", where),
        name_zh=_opt_str(d, "name_zh", where) or "",
        name_en=_opt_str(d, "name_en", where) or "",
    )


def _number_out(value: Centi) -> int | float:
    whole, frac = divmod(value, CENTI)
    return whole if frac == 0 else value / CENTI


def target_json(target: RuleTarget) -> dict[str, Any]:
    """A rule target as JSON: its mode, then the ids it names (absent ones omitted).

    The same in the ``conversion_rules.json`` rows (:func:`dump_rule`) and the
    ``rules.published`` bodies (:func:`~.publication.rule_to_wire`).
    """
    out: dict[str, Any] = {"mode": target.mode}
    for key in ("program_id", "course_id", "certificate_type_id", "exam_part"):
        value = getattr(target, key)
        if value is not None:
            out[key] = value
    return out


def source_conditions_json(source: SourcePattern) -> dict[str, Any]:
    """A source pattern's kind and its conditions without quantities, as JSON.

    Absent conditions are omitted. What both rule formats write alike; each adds
    ``min_grade`` and ``credits_by_tier`` in its own units (:func:`dump_rule`,
    :func:`~.publication.rule_to_wire`).
    """
    out: dict[str, Any] = {"kind": source.kind}
    for key in ("certificate_type_ids", "occupations", "fields", "course_ids", "issuer_kinds"):
        value = getattr(source, key)
        if value is not None:
            out[key] = list(value)
    for key in ("min_level", "max_rank", "min_months"):
        value = getattr(source, key)
        if value is not None:
            out[key] = value
    return out


def dump_rule(rule: ConversionRule) -> dict[str, Any]:
    """Serialise a rule version to the ``conversion_rules.json`` row shape.

    ``parse_rule(dump_rule(r)) == r`` for every rule ``parse_rule`` can return.

    Args:
        rule: The rule version.

    Returns:
        A JSON-ready dict (conditions that are absent are omitted).
    """
    target = target_json(rule.target)
    src = rule.source
    source = source_conditions_json(src)
    if src.min_grade is not None:
        source["min_grade"] = _number_out(src.min_grade)
    if src.credits_by_tier is not None:
        source["credits_by_tier"] = {k: _number_out(v) for k, v in src.credits_by_tier}
    caps: dict[str, Any] = {}
    if rule.caps.max_credits is not None:
        caps["max_credits"] = _number_out(rule.caps.max_credits)
    if rule.caps.max_outcomes is not None:
        caps["max_outcomes"] = rule.caps.max_outcomes
    out: dict[str, Any] = {
        "rule_key": rule.rule_key,
        "version": rule.version,
        "effective_from": rule.effective_from.isoformat(),
        "effective_to": rule.effective_to.isoformat() if rule.effective_to else None,
        "name_zh": rule.name_zh,
        "name_en": rule.name_en,
        "priority": rule.priority,
        "target": target,
        "source": source,
        "recency_years": rule.recency_years,
        "caps": caps,
    }
    if rule.credits_per_outcome is not None:
        out["credits_per_outcome"] = _number_out(rule.credits_per_outcome)
    if rule.hours_per_credit is not None:
        out["hours_per_credit"] = _number_out(rule.hours_per_credit)
    return out


# --- records, learners, applications -------------------------------------------------------
def _payload(kind: RecordKind, value: Any, where: str) -> Payload:
    p = _obj(value, where)
    if kind is RecordKind.ACADEMIC_CREDIT:
        grade = _centi(p, "grade", where)
        credits = _opt_centi(p, "credits", where)
        return AcademicCredit(
            course_id=_str(p, "course_id", where),
            credits=credits or 0,
            grade=grade,
            term=_opt_str(p, "term", where),
        )
    if kind is RecordKind.SKILL_CERTIFICATE:
        return SkillCertificate(
            certificate_type_id=_str(p, "certificate_type_id", where),
            certificate_no=_opt_str(p, "certificate_no", where),
            expires_on=_opt_date(p, "expires_on", where),
        )
    if kind is RecordKind.TRAINING_HOURS:
        hours = _centi(p, "hours", where)
        if hours < 0:
            raise _fail(f"{where}.hours", "must not be negative")
        return TrainingHours(
            training_program_id=_str(p, "training_program_id", where),
            hours=hours,
            cohort=_opt_str(p, "cohort", where),
        )
    if kind is RecordKind.COMPETITION_AWARD:
        return CompetitionAward(
            competition=_opt_str(p, "competition", where) or "",
            tier=_str(p, "tier", where),
            rank=_int(p, "rank", where),
            field=_opt_str(p, "field", where) or "",
        )
    return WorkExperience(
        occupation_key=_str(p, "occupation_key", where),
        duration_months=_int(p, "duration_months", where),
        employer=_opt_str(p, "employer", where),
        start_on=_opt_date(p, "start_on", where),
        end_on=_opt_date(p, "end_on", where),
        verified_by=_opt_str(p, "verified_by", where),
    )


def parse_record(value: Any, where: str = "outcome") -> Record:
    """Parse one ``outcomes.json`` entry (one posted record version).

    Args:
        value: The parsed JSON object.
        where: Location for error messages.

    Returns:
        The record.

    Raises:
        InvalidInputError: Malformed entry or unknown kind.
    """
    d = _obj(value, where)
    kind_text = _str(d, "kind", where)
    try:
        kind = RecordKind(kind_text)
    except ValueError:
        raise _fail(f"{where}.kind", f"unknown record kind {kind_text!r}") from None
    return Record(
        id=_str(d, "id", where),
        learner_id=_str(d, "learner_id", where),
        issuer_id=_str(d, "issuer_id", where),
        achieved_on=_date(d, "achieved_on", where),
        posted_at=_date(d, "posted_at", where),
        payload=_payload(kind, d.get("payload"), f"{where}.payload"),
        dedup_key=_opt_str(d, "dedup_key", where),
        corrects=_opt_str(d, "corrects", where),
        revoked_at=_opt_date(d, "revoked_at", where),
        revocation_reason=_opt_str(d, "revocation_reason", where),
        posted_by=_opt_str(d, "posted_by", where),
        name_on_record=_opt_str(d, "name_on_record", where),
    )


# The fast path below parses the common, well-formed record with few calls. It is stricter
# than parse_record (exact built-in types, integer numbers only, YYYY-MM-DD dates) and
# returns None for anything else, which then goes through parse_record: the two agree on
# every input the fast path accepts (tests/unit/test_rules_dataset.py checks this).
_Dates = dict[str, dt.date]


def _fdate(value: Any, dates: _Dates) -> dt.date:
    found = dates.get(value) if type(value) is str else None
    if found is None:
        if type(value) is not str or len(value) != 10:
            raise _Slow
        found = dates[value] = dt.date.fromisoformat(value)
    return found


def _fopt_date(value: Any, dates: _Dates) -> dt.date | None:
    return None if value is None else _fdate(value, dates)


def _fstr(value: Any) -> str:
    if type(value) is not str or not value:
        raise _Slow
    return value


def _fopt_str(value: Any) -> str | None:
    if value is not None and type(value) is not str:
        raise _Slow
    return value


def _fint(value: Any) -> int:
    if type(value) is not int:
        raise _Slow
    return value


class _Slow(Exception):  # noqa: N818 - internal control flow, never escapes
    """The fast path declines; use the checking path."""


def _fast_payload(kind: str, p: Any, dates: _Dates) -> Payload:
    if type(p) is not dict:
        raise _Slow
    get = p.get
    if kind == "academic_credit":
        credits = get("credits")
        return AcademicCredit(
            course_id=_fstr(get("course_id")),
            credits=0 if credits is None else _fint(credits) * CENTI,
            grade=_fint(get("grade")) * CENTI,
            term=_fopt_str(get("term")),
        )
    if kind == "skill_certificate":
        return SkillCertificate(
            certificate_type_id=_fstr(get("certificate_type_id")),
            certificate_no=_fopt_str(get("certificate_no")),
            expires_on=_fopt_date(get("expires_on"), dates),
        )
    if kind == "training_hours":
        hours = _fint(get("hours"))
        if hours < 0:
            raise _Slow
        return TrainingHours(
            training_program_id=_fstr(get("training_program_id")),
            hours=hours * CENTI,
            cohort=_fopt_str(get("cohort")),
        )
    if kind == "competition_award":
        return CompetitionAward(
            competition=_fopt_str(get("competition")) or "",
            tier=_fstr(get("tier")),
            rank=_fint(get("rank")),
            field=_fopt_str(get("field")) or "",
        )
    if kind == "work_experience":
        return WorkExperience(
            occupation_key=_fstr(get("occupation_key")),
            duration_months=_fint(get("duration_months")),
            employer=_fopt_str(get("employer")),
            start_on=_fopt_date(get("start_on"), dates),
            end_on=_fopt_date(get("end_on"), dates),
            verified_by=_fopt_str(get("verified_by")),
        )
    raise _Slow


def _fast_record(value: Any, dates: _Dates) -> Record | None:
    if type(value) is not dict:
        return None
    get = value.get
    try:
        return Record(
            id=_fstr(get("id")),
            learner_id=_fstr(get("learner_id")),
            issuer_id=_fstr(get("issuer_id")),
            achieved_on=_fdate(get("achieved_on"), dates),
            posted_at=_fdate(get("posted_at"), dates),
            payload=_fast_payload(_fstr(get("kind")), get("payload"), dates),
            dedup_key=_fopt_str(get("dedup_key")),
            corrects=_fopt_str(get("corrects")),
            revoked_at=_fopt_date(get("revoked_at"), dates),
            revocation_reason=_fopt_str(get("revocation_reason")),
            posted_by=_fopt_str(get("posted_by")),
            name_on_record=_fopt_str(get("name_on_record")),
        )
    except (_Slow, ValueError):
        return None


def parse_records(values: Any, where: str = "outcomes") -> tuple[Record, ...]:
    """Parse a whole ``outcomes.json`` array (fast path for well-formed entries).

    Args:
        values: The parsed JSON array.
        where: Location for error messages.

    Returns:
        The records, in array order.

    Raises:
        InvalidInputError: Malformed entry or unknown kind.
    """
    dates: _Dates = {}
    out: list[Record] = []
    append = out.append
    for i, item in enumerate(_list(values, where)):
        record = _fast_record(item, dates)
        append(record if record is not None else parse_record(item, f"{where}[{i}]"))
    return tuple(out)


def parse_learner(value: Any, where: str = "learner") -> Learner:
    """Parse one ``learners.json`` entry (only id and names; the rest is personal data).

    Args:
        value: The parsed JSON object.
        where: Location for error messages.

    Returns:
        The learner.

    Raises:
        InvalidInputError: Malformed entry.
    """
    d = _obj(value, where)
    return Learner(
        id=_str(d, "id", where),
        name_zh=_opt_str(d, "name_zh", where) or "",
        name_latin=_opt_str(d, "name_latin", where) or "",
    )


def parse_application(value: Any, where: str = "application") -> Application:
    """Parse one ``applications.json`` entry.

    Args:
        value: The parsed JSON object.
        where: Location for error messages.

    Returns:
        The application.

    Raises:
        InvalidInputError: Malformed entry, unknown type, or the type's target missing.
    """
    d = _obj(value, where)
    type_text = _str(d, "type", where)
    try:
        app_type = ApplicationType(type_text)
    except ValueError:
        raise _fail(f"{where}.type", f"unknown application type {type_text!r}") from None
    program_id = _opt_str(d, "program_id", where)
    certificate_type_id = _opt_str(d, "certificate_type_id", where)
    if app_type is ApplicationType.CREDIT_CONVERSION and not program_id:
        raise _fail(f"{where}.program_id", "a credit conversion needs a program_id")
    if app_type is ApplicationType.EXAM_EXEMPTION and not certificate_type_id:
        raise _fail(f"{where}.certificate_type_id", "an exam exemption needs a certificate_type_id")
    return Application(
        id=_str(d, "id", where),
        learner_id=_str(d, "learner_id", where),
        type=app_type,
        applied_on=_date(d, "applied_on", where),
        program_id=program_id,
        certificate_type_id=certificate_type_id,
    )


def load_dataset(
    *,
    institutions: Any,
    programs: Any,
    certificate_types: Any,
    conversion_rules: Any,
    learners: Any,
    outcomes: Any,
    applications: Any,
) -> Dataset:
    """Build a :class:`Dataset` from the parsed JSON of the ``sample/`` files.

    Args:
        institutions: ``institutions.json``.
        programs: ``programs.json``.
        certificate_types: ``certificate_types.json``.
        conversion_rules: ``conversion_rules.json``.
        learners: ``learners.json``.
        outcomes: ``outcomes.json``.
        applications: ``applications.json``.

    Returns:
        The dataset. Rules are parsed but not validated.

    Raises:
        InvalidInputError: Any malformed entry or repeated id.
    """
    catalog = load_catalog(institutions, programs, certificate_types)
    rules = tuple(
        parse_rule(x, f"conversion_rules[{i}]")
        for i, x in enumerate(_list(conversion_rules, "conversion_rules"))
    )
    people = tuple(
        parse_learner(x, f"learners[{i}]") for i, x in enumerate(_list(learners, "learners"))
    )
    records = parse_records(outcomes)
    apps = tuple(
        parse_application(x, f"applications[{i}]")
        for i, x in enumerate(_list(applications, "applications"))
    )
    _unique(people, "learners")
    _unique(records, "outcomes")
    _unique(apps, "applications")
    return Dataset(
        catalog=catalog, rules=rules, learners=people, records=records, applications=apps
    )
