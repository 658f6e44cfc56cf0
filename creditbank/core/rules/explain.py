"""Plain-language, bilingual (Chinese, English) explanations of engine decisions.

Every function returns a ``(zh, en)`` pair. Texts name the record (root id, effective
version when it differs, kind, dates), the rule and version, and the cap that bound a grant.
"""

from __future__ import annotations

import datetime as dt

from .decision import Cap
from .model import (
    CENTI,
    AcademicCredit,
    Centi,
    CompetitionAward,
    ConversionRule,
    Mode,
    Record,
    SkillCertificate,
    TrainingHours,
    WorkExperience,
)

Text = tuple[str, str]

KIND_LABELS: dict[str, Text] = {
    "academic_credit": ("课程成绩", "course result"),
    "skill_certificate": ("技能证书", "skill certificate"),
    "training_hours": ("培训学时", "training hours"),
    "competition_award": ("竞赛获奖", "competition award"),
    "work_experience": ("工作经历", "work experience"),
}
MODE_LABELS: dict[str, Text] = {
    Mode.COURSE_EXEMPTION: ("课程免修", "course exemption"),
    Mode.ELECTIVE_FIXED: ("固定额度选修学分", "fixed elective credits"),
    Mode.ELECTIVE_BY_TIER: ("按获奖级别计选修学分", "elective credits by award tier"),
    Mode.HOURS_TO_CREDITS: ("学时折算学分", "hours to credits"),
    Mode.EXAM_EXEMPTION: ("免考", "exam exemption"),
}
CAP_LABELS: dict[Cap, Text] = {
    Cap.MAX_CREDITS: ("规则学分上限", "the rule's credit cap"),
    Cap.MAX_OUTCOMES: ("规则记录数上限", "the rule's record-count cap"),
    Cap.ELECTIVE_POOL_MAX: ("专业选修学分池上限", "the programme's elective pool"),
    Cap.MAX_CONVERTED_CREDITS: ("专业转换学分总上限", "the programme's conversion cap"),
}


def fmt(value: Centi) -> str:
    """Format a centi quantity as a plain decimal (``400`` -> ``4``, ``150`` -> ``1.5``).

    Args:
        value: Hundredths.

    Returns:
        The decimal text, without trailing zeros.
    """
    sign = "-" if value < 0 else ""
    whole, frac = divmod(abs(value), CENTI)
    if frac == 0:
        return f"{sign}{whole}"
    return f"{sign}{whole}.{frac:02d}".rstrip("0")


def _d(day: dt.date | None) -> str:
    return day.isoformat() if day is not None else "—"


def rule_text(rule: ConversionRule) -> Text:
    """Describe a rule version: key, version, mode, period in force.

    Args:
        rule: The rule version.

    Returns:
        ``(zh, en)``.
    """
    mode_zh, mode_en = MODE_LABELS.get(rule.target.mode, (rule.target.mode, rule.target.mode))
    until_zh = f"至 {_d(rule.effective_to)}" if rule.effective_to else "长期有效"
    until_en = f"to {_d(rule.effective_to)}" if rule.effective_to else "open-ended"
    return (
        f"规则 {rule.rule_key} 第{rule.version}版({mode_zh};{_d(rule.effective_from)} 起,"
        f"{until_zh})",
        f"rule {rule.rule_key} v{rule.version} ({mode_en}; in force from "
        f"{_d(rule.effective_from)}, {until_en})",
    )


def record_text(root_id: str, eff: Record) -> Text:
    """Describe a record: root id, effective version, kind and subject, dates, issuer.

    Args:
        root_id: The chain root id.
        eff: The effective version at the decision date.

    Returns:
        ``(zh, en)``.
    """
    kind_zh, kind_en = KIND_LABELS.get(eff.kind, (eff.kind, eff.kind))
    subject = _subject(eff)
    version_zh = f",现行版本 {eff.id}" if eff.id != root_id else ""
    version_en = f", effective version {eff.id}" if eff.id != root_id else ""
    return (
        f"记录 {root_id}({kind_zh} {subject},{_d(eff.achieved_on)} 取得,"
        f"{_d(eff.posted_at)} 入库,机构 {eff.issuer_id}{version_zh})",
        f"record {root_id} ({kind_en} {subject}, achieved {_d(eff.achieved_on)}, posted "
        f"{_d(eff.posted_at)}, issuer {eff.issuer_id}{version_en})",
    )


def _subject(eff: Record) -> str:
    p = eff.payload
    if isinstance(p, SkillCertificate):
        return p.certificate_type_id
    if isinstance(p, AcademicCredit):
        return f"{p.course_id} {fmt(p.grade)}"
    if isinstance(p, TrainingHours):
        return f"{p.training_program_id} {fmt(p.hours)}h"
    if isinstance(p, CompetitionAward):
        return f"{p.tier} #{p.rank} {p.field}"
    if isinstance(p, WorkExperience):
        return f"{p.occupation_key} {p.duration_months}m"
    raise AssertionError(p)  # pragma: no cover - exhaustive


def cap_text(cap: Cap, limit: Centi | int, used: Centi | int) -> Text:
    """Describe a binding cap with its limit and what is already used.

    Args:
        cap: The cap.
        limit: Its value (centicredits, or a record count for ``max_outcomes``).
        used: What the learner's active grants already use.

    Returns:
        ``(zh, en)``.
    """
    zh, en = CAP_LABELS[cap]
    if cap is Cap.MAX_OUTCOMES:
        return (
            f"{zh}({cap.value} {limit},已占 {used} 条)",
            f"{en} ({cap.value} {limit}, {used} record(s) already held)",
        )
    return (
        f"{zh}({cap.value} {fmt(limit)},已用 {fmt(used)})",
        f"{en} ({cap.value} {fmt(limit)}, {fmt(used)} already used)",
    )


def grant_text(
    rule: ConversionRule,
    records: list[Text],
    credits: Centi,
    nominal: Centi,
    *,
    course: tuple[str, str, str] | None = None,
    hours: tuple[Centi, Centi, Centi] | None = None,
    bound: Text | None = None,
) -> Text:
    """Explain a grant.

    Args:
        rule: The rule version.
        records: Descriptions of the consumed records.
        credits: Granted credits.
        nominal: The rule's amount before caps.
        course: ``(course_id, name_zh, name_en)`` for a course exemption.
        hours: ``(hours_used, hours_per_credit, raw_credits)`` for hours_to_credits.
        bound: The binding cap, when credits < nominal.

    Returns:
        ``(zh, en)``.
    """
    r_zh, r_en = rule_text(rule)
    rec_zh = "、".join(t[0] for t in records)
    rec_en = "; ".join(t[1] for t in records)
    if course is not None:
        cid, name_zh, name_en = course
        what_zh = f"免修课程 {cid} {name_zh},计 {fmt(credits)} 学分(课程目录学分)"
        what_en = f"exempts course {cid} {name_en}, {fmt(credits)} credit(s) (catalogue credits)"
    elif hours is not None:
        used, per, raw = hours
        lost = used - (credits // CENTI) * per
        what_zh = (
            f"累计 {fmt(used)} 学时 ÷ 每学分 {fmt(per)} 学时 = {fmt(raw)} 学分,"
            f"计 {fmt(credits)} 选修学分;未折算的 {fmt(lost)} 学时作废"
        )
        what_en = (
            f"{fmt(used)} h summed / {fmt(per)} h per credit = {fmt(raw)} credit(s); "
            f"{fmt(credits)} elective credit(s) granted; the {fmt(lost)} h not converted are "
            "used up"
        )
    else:
        what_zh = f"计 {fmt(credits)} 选修学分(规则额度 {fmt(nominal)})"
        what_en = f"{fmt(credits)} elective credit(s) (rule amount {fmt(nominal)})"
    bound_zh = f";受{bound[0]}限制" if bound else ""
    bound_en = f"; limited by {bound[1]}" if bound else ""
    return (
        f"依{r_zh},{rec_zh}:{what_zh}{bound_zh}。",
        f"Under {r_en}, {rec_en}: {what_en}{bound_en}.",
    )


def denial_text(rule: ConversionRule, why: Text) -> Text:
    """Explain why a rule granted nothing (or stopped).

    Args:
        rule: The rule version.
        why: The reason, already worded.

    Returns:
        ``(zh, en)``.
    """
    r_zh, r_en = rule_text(rule)
    return (f"{r_zh}:{why[0]}。", f"{r_en[0].upper()}{r_en[1:]}: {why[1]}.")


def issue_text(record: Text, detail: Text) -> Text:
    """Explain a record note.

    Args:
        record: The record description.
        detail: Issue-specific detail, already worded.

    Returns:
        ``(zh, en)``.
    """
    return (f"{record[0]}:{detail[0]}。", f"{record[1][0].upper()}{record[1][1:]}: {detail[1]}.")
