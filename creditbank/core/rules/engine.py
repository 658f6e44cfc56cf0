"""The conversion engine: ``sample/README.md`` "Conversion semantics", rules 0-13.

Pure functions only. The decision for one learner needs only that learner's records
(:class:`~.records.LearnerRecords`), the validated :class:`~.validate.RuleBook`, the
:class:`~.model.Catalog` and the learner's :class:`~.decision.LearnerState`; a decision never
looks at another learner, so a run over many learners is linear in their records.

Entry points:

* :func:`decide` -- one application, given the state left by earlier decisions;
* :func:`run_all` -- every application in rule-0 order, carrying state per learner;
* :func:`preview` -- what an application would grant on a date, without deciding it;
* :func:`active_grants`, :func:`void_of`, :func:`voids`, :func:`native_passes` -- queries.
"""

from __future__ import annotations

import datetime as dt
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from creditbank.errors import InvalidInputError, RuleError

from . import explain
from .decision import (
    Cap,
    Decision,
    ExamResult,
    Grant,
    LearnerState,
    Reason,
    RecordIssue,
    RecordNote,
    RuleNote,
    Void,
)
from .explain import Text, fmt
from .match import SourceMatcher, years_before
from .model import (
    CENTI,
    ELECTIVE_MODES,
    NATIVE_PASS_GRADE,
    AcademicCredit,
    Application,
    ApplicationType,
    Catalog,
    Centi,
    CompetitionAward,
    ConversionRule,
    DegreeProgram,
    Learner,
    Mode,
    Record,
    RecordKind,
    SkillCertificate,
    TrainingHours,
    WorkExperience,
)
from .records import Chain, LearnerRecords, index_records
from .validate import RuleBook


# --- record views at a date ----------------------------------------------------------------
class _View:
    """A canonical chain as seen on D: its effective version and validity (rule 3)."""

    __slots__ = ("chain", "eff", "issue", "kind", "order", "root_id")

    def __init__(self, chain: Chain, eff: Record, on: dt.date) -> None:
        self.chain = chain
        self.eff = eff
        self.issue = _validity(chain, eff, on)  # None: valid at D
        self.root_id = chain.root.id
        self.kind: str = eff.payload.KIND
        self.order = (eff.achieved_on, self.root_id)  # candidate order (rule 6)


def _views(records: LearnerRecords, on: dt.date, kind: str | None = None) -> list[_View]:
    """Canonical chains posted by D with their effective versions, in candidate order.

    With ``kind``, only the chains whose effective version is of that kind.
    """
    out: list[_View] = []
    for chain in records.chains:
        if chain.root.posted_at > on:
            continue
        versions = chain.versions
        if len(versions) == 1:
            eff = versions[0]
        else:
            found = chain.effective(on)
            if found is None:  # pragma: no cover - the root itself is posted by D
                continue
            eff = found
        if kind is None or kind == eff.payload.KIND:
            out.append(_View(chain, eff, on))
    out.sort(key=_order)
    return out


def _order(v: _View) -> tuple[dt.date, str]:
    return v.order


def _by_kind(views: Iterable[_View]) -> dict[str, list[_View]]:
    """Views grouped by kind, each group keeping candidate order."""
    groups: dict[str, list[_View]] = {}
    for v in views:
        group = groups.get(v.kind)
        if group is None:
            groups[v.kind] = [v]
        else:
            group.append(v)
    return groups


def _validity(chain: Chain, eff: Record, on: dt.date) -> RecordIssue | None:
    revoked_at = chain.root.revoked_at
    if revoked_at is not None and revoked_at <= on:
        return RecordIssue.REVOKED
    if eff.achieved_on > on:
        return RecordIssue.NOT_YET_ACHIEVED
    payload = eff.payload
    if (
        isinstance(payload, SkillCertificate)
        and payload.expires_on is not None
        and on > payload.expires_on
    ):
        return RecordIssue.EXPIRED
    return None


# --- grants and voids ----------------------------------------------------------------------
def void_of(grant: Grant, records: LearnerRecords, as_of: dt.date) -> Void | None:
    """Tell whether a grant is voided on a date, and since when (rule 10).

    Args:
        grant: The grant.
        records: The learner's records (revocations are read from chain roots).
        as_of: The date.

    Returns:
        The void (``voided_at`` = earliest ``revoked_at`` <= ``as_of`` among the chains it
        used), or ``None`` if the grant is active on ``as_of``.
    """
    best: tuple[dt.date, str, str | None] | None = None
    for oid in grant.outcome_ids:
        chain = records.by_root.get(oid)
        if chain is None:
            continue
        revoked_at = chain.root.revoked_at
        if revoked_at is None or revoked_at > as_of:
            continue
        if best is None or (revoked_at, oid) < (best[0], best[1]):
            best = (revoked_at, oid, chain.root.revocation_reason)
    if best is None:
        return None
    return Void(grant=grant, voided_at=best[0], outcome_id=best[1], revocation_reason=best[2])


def active_grants(state: LearnerState, records: LearnerRecords, on: dt.date) -> tuple[Grant, ...]:
    """Return the learner's grants that are active on a date.

    Args:
        state: The learner's state.
        records: The learner's records.
        on: The date.

    Returns:
        Grants none of whose chains is revoked on or before ``on``, in grant order.
    """
    return tuple(g for g in state.grants if void_of(g, records, on) is None)


def voids(state: LearnerState, records: LearnerRecords, as_of: dt.date) -> tuple[Void, ...]:
    """Return every void of the learner's grants as of a date (for ``conversion.voided``).

    Args:
        state: The learner's state.
        records: The learner's records.
        as_of: The date.

    Returns:
        The voids, in grant order.
    """
    out: list[Void] = []
    for grant in state.grants:
        void = void_of(grant, records, as_of)
        if void is not None:
            out.append(void)
    return tuple(out)


def native_passes(records: LearnerRecords, program: DegreeProgram, on: dt.date) -> dict[str, str]:
    """Return the programme's courses passed natively on a date (rule 7).

    A course is passed natively by a valid canonical ``academic_credit`` record whose
    issuer is the programme's institution, whose ``course_id`` is a course of the programme
    and whose grade is at least 60.

    Args:
        records: The learner's records.
        program: The degree programme.
        on: The date.

    Returns:
        Course id -> root id of the first such record in candidate order.
    """
    return passed_courses(records, (program,), on)[program.id]


def passed_courses(
    records: LearnerRecords, programs: Iterable[DegreeProgram], on: dt.date
) -> dict[str, dict[str, str]]:
    """Return :func:`native_passes` for several programmes at once.

    Args:
        records: The learner's records.
        programs: The degree programmes.
        on: The date.

    Returns:
        Programme id -> (course id -> root id of the passing record).
    """
    # The first passing record in candidate order, without building full views: this runs
    # once per learner and programme in every report.
    wanted = [(p.id, p.institution_id, {c.id for c in p.courses}) for p in programs]
    best: dict[str, dict[str, tuple[dt.date, str]]] = {pid: {} for pid, _, _ in wanted}
    for chain in records.chains:
        root = chain.root
        if root.posted_at > on or (root.revoked_at is not None and root.revoked_at <= on):
            continue
        versions = chain.versions
        eff = versions[0] if len(versions) == 1 else chain.effective(on)
        if eff is None:  # pragma: no cover - the root itself is posted by D
            continue
        payload = eff.payload
        if (
            not isinstance(payload, AcademicCredit)
            or eff.achieved_on > on
            or payload.grade < NATIVE_PASS_GRADE
        ):
            continue
        key = (eff.achieved_on, root.id)
        for pid, institution, course_ids in wanted:
            if eff.issuer_id == institution and payload.course_id in course_ids:
                found = best[pid].get(payload.course_id)
                if found is None or key < found:
                    best[pid][payload.course_id] = key
    return {pid: {cid: key[1] for cid, key in courses.items()} for pid, courses in best.items()}


def _native(academic: Sequence[_View], program: DegreeProgram) -> dict[str, _View]:
    """Courses of the programme passed natively, from the academic_credit views."""
    course_ids = {c.id for c in program.courses}
    institution = program.institution_id
    out: dict[str, _View] = {}
    for v in academic:
        payload = v.eff.payload
        if (
            v.issue is None
            and isinstance(payload, AcademicCredit)
            and v.eff.issuer_id == institution
            and payload.course_id in course_ids
            and payload.grade >= NATIVE_PASS_GRADE
        ):
            out.setdefault(payload.course_id, v)
    return out


# --- rule 4 --------------------------------------------------------------------------------
def _blocked_by_level(
    certificates: Sequence[_View], consumed: Mapping[str, Grant], catalog: Catalog
) -> dict[str, str]:
    """Rule 4: root id of each valid certificate that is not the top of its occupation ->
    root id of the top one. Computed before looking at any rule."""
    if len(certificates) < 2:
        return {}
    groups: dict[str, list[tuple[int, _View]]] = {}
    for v in certificates:
        payload = v.eff.payload
        if not isinstance(payload, SkillCertificate):
            continue
        if v.issue is not None and v.root_id not in consumed:
            continue
        ct = catalog.certificate_types.get(payload.certificate_type_id)
        if ct is None:
            continue
        groups.setdefault(ct.occupation_key, []).append((ct.level or 0, v))
    blocked: dict[str, str] = {}
    for members in groups.values():
        if len(members) < 2:
            continue
        _, top = min(
            members, key=lambda m: (-m[0], -m[1].eff.achieved_on.toordinal(), m[1].root_id)
        )
        for _, v in members:
            if v is not top and v.issue is None:
                blocked[v.root_id] = top.root_id
    return blocked


# --- matching (rule 6a) --------------------------------------------------------------------
def _mismatch_text(
    cond: str, eff: Record, rule: ConversionRule, on: dt.date, catalog: Catalog
) -> Text:
    src = rule.source
    p = eff.payload
    if cond == "kind":
        return ("记录类型不符", f"it is not a {src.kind} record")
    if cond == "recency_years":
        start = years_before(on, rule.recency_years or 0).isoformat()
        return (
            f"取得日期 {eff.achieved_on} 早于 {rule.recency_years} 年时效窗口起点 {start}",
            f"achieved {eff.achieved_on}, before the {rule.recency_years}-year window "
            f"starting {start}",
        )
    if isinstance(p, SkillCertificate):
        ct = catalog.certificate_types.get(p.certificate_type_id)
        if cond == "min_level" and ct is not None:
            level = "无等级" if ct.level is None else f"{ct.level}"
            level_en = "unlevelled" if ct.level is None else f"level {ct.level}"
            return (
                f"证书等级({level},{ct.level_label_zh})低于要求的等级序数 {src.min_level}",
                f"{level_en} ({ct.level_label_en}) is below the required level {src.min_level}",
            )
        value = {
            "occupations": ct.occupation_key if ct else "?",
            "fields": ct.field if ct else "?",
        }.get(cond, p.certificate_type_id)
    elif isinstance(p, AcademicCredit):
        if cond == "min_grade":
            return (
                f"成绩 {fmt(p.grade)} 低于 {fmt(src.min_grade or 0)}",
                f"grade {fmt(p.grade)} is below {fmt(src.min_grade or 0)}",
            )
        value = p.course_id
    elif isinstance(p, TrainingHours):
        if cond == "issuer_kinds":
            inst = catalog.institutions.get(eff.issuer_id)
            kind = inst.kind if inst else "?"
            return (
                f"培训机构 {eff.issuer_id}({kind})不在适用机构类型内",
                f"issuer {eff.issuer_id} ({kind}) is not an accepted kind of institution",
            )
        tp = catalog.training_programs.get(p.training_program_id)
        value = tp.field if tp else p.training_program_id
    elif isinstance(p, CompetitionAward):
        if cond == "max_rank":
            return (
                f"名次 {p.rank} 低于要求(前 {src.max_rank} 名)",
                f"rank {p.rank} is worse than {src.max_rank}",
            )
        value = p.tier if cond == "credits_by_tier" else p.field
    elif isinstance(p, WorkExperience):
        if cond == "min_months":
            return (
                f"工作 {p.duration_months} 个月,不足 {src.min_months} 个月",
                f"{p.duration_months} months is less than {src.min_months}",
            )
        value = p.occupation_key
    else:  # pragma: no cover - exhaustive
        raise AssertionError(p)
    return (f"{cond} 条件不符({value})", f"{value} does not meet the {cond} condition")


# --- decision context ----------------------------------------------------------------------
class _Usage:
    """The learner's active grants at this moment of a decision (rule 6 rooms)."""

    def __init__(self, program_id: str, grants: Iterable[Grant]) -> None:
        self.program_id = program_id
        self.program = 0
        self.pool = 0
        self.credits: dict[str, Centi] = {}
        self.outcomes: dict[str, int] = {}
        self.exempted: dict[str, Grant] = {}
        self.consumed: dict[str, Grant] = {}
        for grant in grants:
            self.add(grant)

    def add(self, grant: Grant) -> None:
        if grant.program_id == self.program_id:
            self.program += grant.credits
            if grant.target_course_id is None:
                self.pool += grant.credits
            else:
                self.exempted[grant.target_course_id] = grant
        key = grant.rule_key
        self.credits[key] = self.credits.get(key, 0) + grant.credits
        self.outcomes[key] = self.outcomes.get(key, 0) + len(grant.outcome_ids)
        for oid in grant.outcome_ids:
            self.consumed[oid] = grant


@dataclass(frozen=True, slots=True)
class _Room:
    cap: Cap
    limit: Centi
    used: Centi

    @property
    def left(self) -> Centi:
        return self.limit - self.used

    def text(self) -> Text:
        return explain.cap_text(self.cap, self.limit, self.used)


def _rooms(
    rule: ConversionRule, program: DegreeProgram, usage: _Usage, *, pool: bool
) -> list[_Room]:
    """Rule, pool and programme rooms, in that order (ties report the first)."""
    rooms: list[_Room] = []
    if rule.caps.max_credits is not None:
        used = usage.credits.get(rule.rule_key, 0)
        rooms.append(_Room(Cap.MAX_CREDITS, rule.caps.max_credits, used))
    if pool and program.elective_pool_max is not None:
        rooms.append(_Room(Cap.ELECTIVE_POOL_MAX, program.elective_pool_max, usage.pool))
    if program.max_converted_credits is not None:
        rooms.append(_Room(Cap.MAX_CONVERTED_CREDITS, program.max_converted_credits, usage.program))
    return rooms


def _clip(amount: Centi, rooms: Sequence[_Room]) -> tuple[Centi, _Room | None]:
    """min(amount, rooms...) and the room that bound it (``None`` if the amount did)."""
    best, bound = amount, None
    for room in rooms:
        if room.left < best:
            best, bound = room.left, room
    return best, bound


_NO_TEXT: Text = ("", "")


class _CreditDecision:
    """Mutable scratch space of one credit decision; never escapes :func:`decide`."""

    def __init__(
        self,
        app: Application,
        program: DegreeProgram,
        views: list[_View],
        by_kind: dict[str, list[_View]],
        usage: _Usage,
        blocked: dict[str, str],
        rulebook: RuleBook,
        catalog: Catalog,
        explain: bool,
    ) -> None:
        self.app = app
        self.rulebook = rulebook
        self.explain = explain
        self.on = app.applied_on
        self.program = program
        self.views = views
        self.usage = usage
        self.blocked = blocked
        self.catalog = catalog
        self.by_kind = by_kind
        self.native = _native(by_kind.get(RecordKind.ACADEMIC_CREDIT, []), program)
        self.grants: list[Grant] = []
        self.notes: list[RuleNote] = []

    # candidates ------------------------------------------------------------------------
    def candidates(self, rule: ConversionRule) -> list[_View]:
        """Eligible records matching the rule, in candidate order (rules 3, 4, 6, 6a)."""
        consumed = self.usage.consumed
        blocked = self.blocked
        catalog = self.catalog
        matcher = self.rulebook.matcher(rule)
        start = matcher.window_start(self.on)
        check = matcher.first_failure
        return [
            v
            for v in self.by_kind.get(rule.source.kind, ())
            if v.issue is None
            and v.root_id not in blocked
            and v.root_id not in consumed
            and check(v.eff, start, catalog) is None
        ]

    def why_not(self, v: _View, rule: ConversionRule, matcher: SourceMatcher) -> Text:
        if v.issue is not None:
            return _issue_detail(v)
        if v.root_id in self.blocked:
            return _blocked_detail(self.blocked[v.root_id])
        if v.root_id in self.usage.consumed:
            return _consumed_detail(self.usage.consumed[v.root_id])
        cond = matcher.first_failure(v.eff, matcher.window_start(self.on), self.catalog)
        return _mismatch_text(cond or "kind", v.eff, rule, self.on, self.catalog)

    def no_candidate(self, rule: ConversionRule) -> None:
        same_kind = self.by_kind.get(rule.source.kind, [])
        if not self.explain:
            why: Text = _NO_TEXT
        elif not same_kind:
            label = explain.KIND_LABELS[rule.source.kind]
            why = (
                f"学习者没有{label[0]}记录",
                f"the learner has no {label[1]} record",
            )
        else:
            matcher = self.rulebook.matcher(rule)
            details = [(v.root_id, self.why_not(v, rule, matcher)) for v in same_kind]
            why = (
                "没有可用的匹配记录(" + ";".join(f"{i}:{t[0]}" for i, t in details) + ")",
                "no eligible record matches ("
                + "; ".join(f"{i}: {t[1]}" for i, t in details)
                + ")",
            )
        self.deny(rule, Reason.NO_CANDIDATE, why, tuple(v.root_id for v in same_kind))

    def deny(
        self,
        rule: ConversionRule,
        reason: Reason,
        why: Text,
        outcome_ids: tuple[str, ...] = (),
        bound_by: Cap | None = None,
    ) -> None:
        zh, en = explain.denial_text(rule, why) if self.explain else _NO_TEXT
        self.notes.append(
            RuleNote(
                rule.rule_key,
                rule.version,
                rule.target.mode,
                reason,
                outcome_ids,
                bound_by,
                zh,
                en,
            )
        )

    # grants ----------------------------------------------------------------------------
    def grant(
        self,
        rule: ConversionRule,
        used: Sequence[_View],
        credits: Centi,
        nominal: Centi,
        bound: _Room | None,
        *,
        hours: tuple[Centi, Centi] | None = None,
    ) -> Grant:
        course_id = rule.target.course_id if rule.target.mode == Mode.COURSE_EXEMPTION else None
        course_info = None
        if course_id is not None:
            course = self.program.course(course_id)
            course_info = (
                course_id,
                course.name_zh if course else "",
                course.name_en if course else "",
            )
        zh, en = (
            explain.grant_text(
                rule,
                [explain.record_text(v.root_id, v.eff) for v in used],
                credits,
                nominal,
                course=course_info,
                hours=(hours[0], hours[1], nominal) if hours else None,
                bound=bound.text() if bound else None,
            )
            if self.explain
            else _NO_TEXT
        )
        grant = Grant(
            application_id=self.app.id,
            learner_id=self.app.learner_id,
            program_id=self.program.id,
            index=len(self.grants),
            rule_key=rule.rule_key,
            rule_version=rule.version,
            mode=rule.target.mode,
            outcome_ids=tuple(v.root_id for v in used),
            effective_version_ids=tuple(v.eff.id for v in used),
            target_course_id=course_id,
            credits=credits,
            granted_on=self.on,
            nominal_credits=nominal,
            bound_by=bound.cap if bound else None,
            hours_used=hours[0] if hours else None,
            raw_credits=nominal if hours else None,
            explanation_zh=zh,
            explanation_en=en,
        )
        self.grants.append(grant)
        self.usage.add(grant)
        return grant

    def granted_note(
        self, rule: ConversionRule, made: Sequence[Grant], stop: tuple[Cap, Text] | None
    ) -> None:
        ids = tuple(o for g in made for o in g.outcome_ids)
        total = sum(g.credits for g in made)
        why: Text = (
            f"认定 {len(made)} 项,共 {fmt(total)} 学分",
            f"{len(made)} grant(s), {fmt(total)} credit(s)",
        )
        if stop is None:
            self.deny(rule, Reason.GRANTED, why, ids)
        else:
            cap, text = stop
            why = (
                f"{why[0]};其余候选记录因{text[0]}未认定",
                f"{why[1]}; further candidates stopped by {text[1]}",
            )
            self.deny(rule, Reason.GRANTED_THEN_CAPPED, why, ids, cap)

    # modes -----------------------------------------------------------------------------
    def course_exemption(self, rule: ConversionRule) -> None:
        course_id = rule.target.course_id or ""
        course = self.program.course(course_id)
        if course is None:  # pragma: no cover - validate_rules rejects this
            raise RuleError(
                f"{rule.rule_key}: unknown course {course_id}", code="rules.unknown_course"
            )
        if course_id in self.usage.exempted:
            earlier = self.usage.exempted[course_id]
            self.deny(
                rule,
                Reason.COURSE_ALREADY_EXEMPTED,
                (
                    f"课程 {course_id} 已由 {earlier.granted_on} 的认定"
                    f"({earlier.rule_key} 第{earlier.rule_version}版)免修",
                    f"course {course_id} is already exempted by the grant of "
                    f"{earlier.granted_on} ({earlier.rule_key} v{earlier.rule_version})",
                ),
                earlier.outcome_ids,
            )
            return
        if course_id in self.native:
            nv = self.native[course_id]
            rec = explain.record_text(nv.root_id, nv.eff)
            self.deny(
                rule,
                Reason.COURSE_PASSED_NATIVELY,
                (
                    f"课程 {course_id} 已在本校修读通过({rec[0]}),无需免修",
                    f"course {course_id} is already passed natively ({rec[1]})",
                ),
                (nv.root_id,),
            )
            return
        cands = self.candidates(rule)
        if not cands:
            self.no_candidate(rule)
            return
        first = cands[0]
        rooms = _rooms(rule, self.program, self.usage, pool=False)
        got, bound = _clip(course.credits, rooms)
        if bound is not None:
            text = bound.text()
            self.deny(
                rule,
                Reason.CAP_BLOCKS_EXEMPTION,
                (
                    f"课程 {course_id} 为 {fmt(course.credits)} 学分,超过{text[0]}剩余的 "
                    f"{fmt(max(got, 0))} 学分;免修须整门认定,故不认定、不占用记录 {first.root_id}",
                    f"course {course_id} carries {fmt(course.credits)} credit(s), more than the "
                    f"{fmt(max(got, 0))} left under {text[1]}; an exemption is all or nothing, "
                    f"so nothing is granted and record {first.root_id} stays unused",
                ),
                (first.root_id,),
                bound.cap,
            )
            return
        made = self.grant(rule, [first], course.credits, course.credits, None)
        self.granted_note(rule, [made], None)

    def elective(self, rule: ConversionRule) -> None:
        cands = self.candidates(rule)
        if not cands:
            self.no_candidate(rule)
            return
        made: list[Grant] = []
        stop: tuple[Cap, Text] | None = None
        max_outcomes = rule.caps.max_outcomes
        for v in cands:
            held = self.usage.outcomes.get(rule.rule_key, 0)
            if max_outcomes is not None and held >= max_outcomes:
                stop = (Cap.MAX_OUTCOMES, explain.cap_text(Cap.MAX_OUTCOMES, max_outcomes, held))
                break
            amount = self._amount(rule, v)
            got, bound = _clip(amount, _rooms(rule, self.program, self.usage, pool=True))
            if got <= 0:
                # only a room can push the minimum to <= 0: amounts are positive (validated)
                if bound is not None:
                    stop = (bound.cap, bound.text())
                break
            made.append(self.grant(rule, [v], got, amount, bound))
        if made:
            self.granted_note(rule, made, stop)
        elif stop is not None:
            cap, text = stop
            reason = Reason.MAX_OUTCOMES_REACHED if cap is Cap.MAX_OUTCOMES else Reason.NO_ROOM
            self.deny(
                rule,
                reason,
                (f"{text[0]}已满,未认定", f"{text[1]} leaves no room; nothing granted"),
                tuple(v.root_id for v in cands),
                cap,
            )

    @staticmethod
    def _amount(rule: ConversionRule, v: _View) -> Centi:
        payload = v.eff.payload
        amount = rule.credits_per_outcome
        if rule.target.mode == Mode.ELECTIVE_BY_TIER and isinstance(payload, CompetitionAward):
            amount = rule.source.tier_credits(payload.tier)  # a key: it matched 6a
        if amount is None:  # pragma: no cover - validate_rules requires the amounts
            raise AssertionError(f"{rule.rule_key} v{rule.version} has no amount")
        return amount

    def hours_to_credits(self, rule: ConversionRule) -> None:
        cands = self.candidates(rule)
        if not cands:
            self.no_candidate(rule)
            return
        per = rule.hours_per_credit
        if per is None or per <= 0:  # pragma: no cover - validate_rules requires it
            raise AssertionError(f"{rule.rule_key} v{rule.version} has no hours_per_credit")
        hours = sum(v.eff.payload.hours for v in cands if isinstance(v.eff.payload, TrainingHours))
        raw = (hours // per) * CENTI
        got, bound = _clip(raw, _rooms(rule, self.program, self.usage, pool=True))
        ids = tuple(v.root_id for v in cands)
        if got > 0:
            made = self.grant(rule, cands, got, raw, bound, hours=(hours, per))
            self.granted_note(rule, [made], None)
        elif raw <= 0:
            self.deny(
                rule,
                Reason.HOURS_BELOW_ONE_CREDIT,
                (
                    f"累计 {fmt(hours)} 学时,不足每学分 {fmt(per)} 学时;不占用记录,学时继续累积",
                    f"{fmt(hours)} h summed is less than {fmt(per)} h per credit; nothing is "
                    "consumed and the hours keep accumulating",
                ),
                ids,
            )
        elif bound is not None:  # raw > 0 >= got: a room bound it
            text = bound.text()
            self.deny(
                rule,
                Reason.NO_ROOM,
                (
                    f"累计 {fmt(hours)} 学时可折 {fmt(raw)} 学分,但{text[0]}已满;"
                    "不占用记录,学时继续累积",
                    f"{fmt(hours)} h would give {fmt(raw)} credit(s) but {text[1]} leaves no "
                    "room; nothing is consumed and the hours keep accumulating",
                ),
                ids,
                bound.cap,
            )


def _issue_detail(v: _View) -> Text:
    eff = v.eff
    if v.issue is RecordIssue.REVOKED:
        return (f"已于 {v.chain.root.revoked_at} 撤销", f"revoked on {v.chain.root.revoked_at}")
    if v.issue is RecordIssue.EXPIRED and isinstance(eff.payload, SkillCertificate):
        return (f"证书已于 {eff.payload.expires_on} 到期", f"expired on {eff.payload.expires_on}")
    return (f"取得日期 {eff.achieved_on} 尚未到来", f"achieved only on {eff.achieved_on}")


def _blocked_detail(top_id: str) -> Text:
    return (
        f"同一职业只认定最高等级证书,{top_id} 优先",
        f"only the top certificate of an occupation may convert, and that is {top_id}",
    )


def _consumed_detail(grant: Grant) -> Text:
    return (
        f"已用于 {grant.granted_on} 的认定 {grant.key}({grant.rule_key} 第{grant.rule_version}版)",
        f"already used by grant {grant.key} of {grant.granted_on} "
        f"({grant.rule_key} v{grant.rule_version})",
    )


def _record_notes(
    records: LearnerRecords,
    views: Sequence[_View],
    blocked: Mapping[str, str],
    consumed: Mapping[str, Grant],
    on: dt.date,
    learner: Learner | None,
    with_text: bool = True,
) -> tuple[RecordNote, ...]:
    notes: list[RecordNote] = []

    def note(v_root: str, eff: Record, issue: RecordIssue, rel: str | None, d: Text) -> None:
        zh, en = explain.issue_text(explain.record_text(v_root, eff), d) if with_text else _NO_TEXT
        notes.append(RecordNote(v_root, eff.id, issue, rel, zh, en))

    names = (
        tuple(unicodedata.normalize("NFC", n) for n in learner.registered_names())
        if learner
        else ()
    )
    for v in views:
        if v.eff.id != v.root_id:
            note(
                v.root_id,
                v.eff,
                RecordIssue.CORRECTED,
                v.eff.id,
                (
                    f"以 {v.eff.posted_at} 入库的更正版本 {v.eff.id} 为准",
                    f"read from correction {v.eff.id} posted {v.eff.posted_at}",
                ),
            )
        if v.issue is not None:
            note(v.root_id, v.eff, v.issue, None, _issue_detail(v))
        elif v.root_id in blocked:
            top = blocked[v.root_id]
            note(v.root_id, v.eff, RecordIssue.LOWER_LEVEL_BLOCKED, top, _blocked_detail(top))
        if v.root_id in consumed:
            grant = consumed[v.root_id]
            note(v.root_id, v.eff, RecordIssue.CONSUMED, grant.key, _consumed_detail(grant))
        written = v.eff.name_on_record
        if names and written and unicodedata.normalize("NFC", written) not in names:
            note(
                v.root_id,
                v.eff,
                RecordIssue.NAME_DIFFERS,
                None,
                (
                    f"记录上的姓名“{written}”与登记姓名“{' / '.join(names)}”不同;"
                    "记录按身份关联,仍然有效",
                    f"the name on the record, '{written}', differs from the registered name "
                    f"'{' / '.join(names)}'; records link by identity, so it still counts",
                ),
            )
    for dup in records.duplicates:
        if dup.chain.root.posted_at > on:
            continue
        eff = dup.chain.effective(on) or dup.chain.root
        note(
            dup.chain.root_id,
            eff,
            RecordIssue.DUPLICATE,
            dup.canonical_id,
            (
                f"与先入库的 {dup.canonical_id} 重复(dedup_key 相同),不计",
                f"duplicates {dup.canonical_id}, posted earlier with the same dedup_key; "
                "it never counts",
            ),
        )
    return tuple(notes)


# --- public entry points -------------------------------------------------------------------
def decide(
    application: Application,
    records: LearnerRecords,
    rulebook: RuleBook,
    catalog: Catalog,
    state: LearnerState,
    *,
    learner: Learner | None = None,
    explain: bool = True,
) -> Decision:
    """Decide one application (rules 1-13), given the state of earlier decisions.

    Records posted after D and revocations dated after D are ignored, so the decision is a
    function of what the ledger held on D. Nothing is mutated: fold the result into the
    state with :meth:`LearnerState.apply`.

    Args:
        application: The application; its ``applied_on`` is the decision date D.
        records: The applicant's records (any dates; the engine filters by D).
        rulebook: The validated rule set.
        catalog: Programmes, certificate types, institutions.
        state: The applicant's state after every earlier decision (rule 0).
        learner: The registered learner, to note name differences (rule 13).
        explain: Word the explanations. ``False`` leaves every ``explanation_*`` text of
            grants, rule notes and record notes empty (reason codes stay) -- for bulk
            reports that never show them; the decision is otherwise identical.

    Returns:
        The decision, with grants and bilingual explanations.

    Raises:
        InvalidInputError: Records, state or learner belong to someone else, or the
            application names no (known) programme or no certificate type.
        RuleError: ``rules.out_of_order`` when the application is not later (rule 0) than
            the last decision in ``state``.
    """
    if state.last_order_key is not None and application.order_key <= state.last_order_key:
        raise RuleError(
            f"application {application.id} ({application.applied_on}) is not later than the "
            f"last decision {state.last_order_key[1]} ({state.last_order_key[0]})",
            code="rules.out_of_order",
        )
    return _decide(application, records, rulebook, catalog, state, learner, explain)


def preview(
    records: LearnerRecords,
    rulebook: RuleBook,
    catalog: Catalog,
    state: LearnerState,
    *,
    on: dt.date,
    program_id: str | None = None,
    certificate_type_id: str | None = None,
    learner: Learner | None = None,
    application_id: str = "what-if",
) -> Decision:
    """Preview what an application would get on a date, without deciding it ("what-if").

    Exactly one of ``program_id`` (credit conversion) or ``certificate_type_id`` (exam
    exemption) must be given. The state is read, never changed (it is immutable).

    Args:
        records: The learner's records.
        rulebook: The validated rule set.
        catalog: The catalogue.
        state: The learner's current state.
        on: The hypothetical application date; not before the last decision in ``state``.
        program_id: Target programme of a credit conversion.
        certificate_type_id: Requested certificate of an exam exemption.
        learner: The registered learner (name notes).
        application_id: Id to give the hypothetical application.

    Returns:
        The decision that :func:`decide` would make now.

    Raises:
        InvalidInputError: Not exactly one of ``program_id``/``certificate_type_id``, or as
            in :func:`decide`.
        RuleError: ``rules.out_of_order`` when ``on`` is before the last decision.
    """
    if (program_id is None) == (certificate_type_id is None):
        raise InvalidInputError(
            "give exactly one of program_id or certificate_type_id", code="input.invalid"
        )
    if state.last_order_key is not None and on < state.last_order_key[0]:
        raise RuleError(
            f"cannot preview on {on}: the learner already has a decision on "
            f"{state.last_order_key[0]}",
            code="rules.out_of_order",
        )
    app = Application(
        id=application_id,
        learner_id=state.learner_id,
        type=ApplicationType.CREDIT_CONVERSION
        if program_id is not None
        else ApplicationType.EXAM_EXEMPTION,
        applied_on=on,
        program_id=program_id,
        certificate_type_id=certificate_type_id,
    )
    return _decide(app, records, rulebook, catalog, state, learner, True)


def _decide(
    app: Application,
    records: LearnerRecords,
    rulebook: RuleBook,
    catalog: Catalog,
    state: LearnerState,
    learner: Learner | None,
    with_text: bool,
) -> Decision:
    lid = app.learner_id
    if records.learner_id != lid or state.learner_id != lid or (learner and learner.id != lid):
        raise InvalidInputError(
            f"application {app.id} is for {lid}, but records, state or learner are not",
            code="input.learner_mismatch",
        )
    on = app.applied_on
    views = _views(records, on)
    active = active_grants(state, records, on)
    if app.type == ApplicationType.EXAM_EXEMPTION:
        return _decide_exam(app, records, views, active, rulebook, catalog, learner)
    program = catalog.degree_programs.get(app.program_id or "")
    if program is None:
        raise InvalidInputError(
            f"application {app.id} names no known degree programme ({app.program_id})",
            code="input.unknown_program",
        )
    usage = _usage_for(program.id, active)
    by_kind = _by_kind(views)
    blocked = _blocked_by_level(
        by_kind.get(RecordKind.SKILL_CERTIFICATE, []), usage.consumed, catalog
    )
    notes = _record_notes(records, views, blocked, usage.consumed, on, learner, with_text)
    work = _CreditDecision(
        app, program, views, by_kind, usage, blocked, rulebook, catalog, with_text
    )
    rules = rulebook.credit_rules(program.id, on)
    for rule in rules:
        mode = rule.target.mode
        if mode == Mode.COURSE_EXEMPTION:
            work.course_exemption(rule)
        elif mode in ELECTIVE_MODES:
            work.elective(rule)
        elif mode == Mode.HOURS_TO_CREDITS:
            work.hours_to_credits(rule)
    grants = tuple(work.grants)
    total = sum(g.credits for g in grants)
    head_zh = f"申请 {app.id}({program.id},{on} 决定)"
    head_en = f"Application {app.id} ({program.id}, decided {on})"
    if grants:
        reason = Reason.GRANTED
        zh = f"{head_zh}:认定 {len(grants)} 项,共 {fmt(total)} 学分。"
        en = f"{head_en}: {len(grants)} grant(s), {fmt(total)} credit(s) in total."
    elif not rules:
        reason = Reason.NO_RULE_IN_FORCE
        zh = f"{head_zh}:当日没有适用于该专业的转换规则,未认定学分。"
        en = f"{head_en}: no conversion rule for this programme is in force; nothing granted."
    else:
        reason = Reason.NOTHING_GRANTED
        zh = f"{head_zh}:{len(rules)} 条规则均未认定学分(原因见各规则说明)。"
        en = f"{head_en}: none of the {len(rules)} rule(s) granted anything (see rule notes)."
    return Decision(app, grants, tuple(work.notes), notes, None, reason, zh, en)


def _usage_for(program_id: str, active: Iterable[Grant]) -> _Usage:
    return _Usage(program_id, active)


def _decide_exam(
    app: Application,
    records: LearnerRecords,
    views: list[_View],
    active: Sequence[Grant],
    rulebook: RuleBook,
    catalog: Catalog,
    learner: Learner | None,
) -> Decision:
    on = app.applied_on
    cert = app.certificate_type_id
    if cert is None:
        raise InvalidInputError(
            f"exam-exemption request {app.id} names no certificate type",
            code="input.missing_certificate_type",
        )
    consumed = {o: g for g in active for o in g.outcome_ids}
    notes = _record_notes(records, views, {}, consumed, on, learner)
    rules = rulebook.exam_rules(cert, on)
    valid = [v for v in views if v.issue is None]  # consumption and rule 4 do not apply
    rule_notes: list[RuleNote] = []
    head_zh = f"免考申请 {app.id}({cert},{on} 决定)"
    head_en = f"Exam-exemption request {app.id} ({cert}, decided {on})"
    for rule in rules:
        matcher = rulebook.matcher(rule)
        start = matcher.window_start(on)
        matches = [v for v in valid if matcher.first_failure(v.eff, start, catalog) is None]
        part = rule.target.exam_part
        if matches:
            basis = matches[0]
            rec = explain.record_text(basis.root_id, basis.eff)
            zh, en = explain.denial_text(
                rule,
                (f"依据{rec[0]}免考{part}部分", f"waives the {part} part on the basis of {rec[1]}"),
            )
            rule_notes.append(
                RuleNote(
                    rule.rule_key,
                    rule.version,
                    rule.target.mode,
                    Reason.EXAM_GRANTED,
                    (basis.root_id,),
                    None,
                    zh,
                    en,
                )
            )
            result = ExamResult(
                certificate_type_id=cert,
                granted=True,
                exam_part=part,
                rule_key=rule.rule_key,
                rule_version=rule.version,
                basis_outcome_id=basis.eff.id,
                basis_root_id=basis.root_id,
            )
            return Decision(
                app,
                (),
                tuple(rule_notes),
                notes,
                result,
                Reason.EXAM_GRANTED,
                f"{head_zh}:依{explain.rule_text(rule)[0]}免考{part}部分,依据{rec[0]}。",
                f"{head_en}: the {part} part is waived under {explain.rule_text(rule)[1]}, on "
                f"the basis of {rec[1]}.",
            )
        same_kind = [v for v in views if v.kind == rule.source.kind]
        parts = [
            (
                v.root_id,
                _issue_detail(v)
                if v.issue is not None
                else _mismatch_text(
                    matcher.first_failure(v.eff, start, catalog) or "kind",
                    v.eff,
                    rule,
                    on,
                    catalog,
                ),
            )
            for v in same_kind
        ]
        why: Text = (
            "没有有效的匹配记录"
            + ("(" + ";".join(f"{i}:{t[0]}" for i, t in parts) + ")" if parts else ""),
            "no valid record matches"
            + (" (" + "; ".join(f"{i}: {t[1]}" for i, t in parts) + ")" if parts else ""),
        )
        zh, en = explain.denial_text(rule, why)
        rule_notes.append(
            RuleNote(
                rule.rule_key,
                rule.version,
                rule.target.mode,
                Reason.EXAM_NO_MATCHING_RECORD,
                tuple(i for i, _ in parts),
                None,
                zh,
                en,
            )
        )
    last_part = rules[-1].target.exam_part if rules else None
    result = ExamResult(certificate_type_id=cert, granted=False, exam_part=last_part)
    if rules:
        reason = Reason.EXAM_NO_MATCHING_RECORD
        zh = f"{head_zh}:不予免考,{len(rules)} 条免考规则均无有效的匹配记录。"
        en = f"{head_en}: denied; no valid record matches any of the {len(rules)} rule(s) tried."
    else:
        reason = Reason.EXAM_NO_RULE
        zh = f"{head_zh}:不予免考,当日没有针对该证书的免考规则。"
        en = f"{head_en}: denied; no exam-exemption rule for this certificate is in force."
    return Decision(app, (), tuple(rule_notes), notes, result, reason, zh, en)


@dataclass(frozen=True, slots=True, eq=False)
class RunResult:
    """Everything :func:`run_all` decided.

    Attributes:
        decisions: Every decision, in decision order (rule 0).
        states: Final state per learner who applied.
        records: The record index per learner.
    """

    decisions: tuple[Decision, ...]
    states: Mapping[str, LearnerState]
    records: Mapping[str, LearnerRecords]


def run_all(
    applications: Iterable[Application],
    records: Iterable[Record] | Mapping[str, LearnerRecords],
    rulebook: RuleBook,
    catalog: Catalog,
    *,
    learners: Mapping[str, Learner] | None = None,
    explain: bool = True,
) -> RunResult:
    """Decide every application in rule-0 order, carrying each learner's state.

    Args:
        applications: Applications and exam-exemption requests, in any order.
        records: All records, or an index from :func:`~.records.index_records`.
        rulebook: The validated rule set.
        catalog: The catalogue.
        learners: Registered learners by id, for name notes (optional).
        explain: As in :func:`decide` (``False`` for bulk reports).

    Returns:
        The decisions in decision order, the final states and the record index.

    Raises:
        InvalidInputError: An application id repeats, or as in :func:`decide`.
    """
    index: Mapping[str, LearnerRecords] = (
        records if isinstance(records, Mapping) else index_records(records)
    )
    ordered = sorted(applications, key=lambda a: a.order_key)
    seen: set[str] = set()
    for app in ordered:
        if app.id in seen:
            raise InvalidInputError(
                f"application id {app.id} appears twice", code="input.duplicate_id"
            )
        seen.add(app.id)
    states: dict[str, LearnerState] = {}
    decisions: list[Decision] = []
    empty: dict[str, LearnerRecords] = {}
    for app in ordered:
        lid = app.learner_id
        learner_records = index.get(lid)
        if learner_records is None:
            learner_records = empty.setdefault(lid, LearnerRecords.empty(lid))
        state = states.get(lid) or LearnerState(lid)
        decision = decide(
            app,
            learner_records,
            rulebook,
            catalog,
            state,
            learner=learners.get(lid) if learners else None,
            explain=explain,
        )
        states[lid] = state.apply(decision)
        decisions.append(decision)
    full_index = dict(index)
    full_index.update(empty)
    return RunResult(decisions=tuple(decisions), states=states, records=full_index)
