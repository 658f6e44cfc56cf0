"""Hypothesis properties of the conversion engine over generated records, rules and caps.

* decisions are deterministic and independent of the order of every input;
* no record is consumed twice by grants active at the same time;
* no cap is ever exceeded by a grant (max_credits, max_outcomes, programme and pool caps);
* a grant never exceeds the course's credits, the rule's amount or the raw hours credits,
  and uses only records valid on the decision date;
* voiding never creates credit: voids only move credit from active to voided, and a
  revocation after the last decision changes no decision.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sample_data import SAMPLE

from creditbank.core.rules import (
    CENTI,
    AcademicCredit,
    Application,
    ApplicationType,
    Catalog,
    CompetitionAward,
    ConversionRule,
    Grant,
    Mode,
    Record,
    RuleBook,
    RunResult,
    SkillCertificate,
    TrainingHours,
    WorkExperience,
    build_report,
    load_catalog,
    parse_rule,
    run_all,
    validate_rules,
)


def _json(name: str) -> Any:
    return json.loads((SAMPLE / f"{name}.json").read_text("utf-8"))


CATALOG = load_catalog(_json("institutions"), _json("programs"), _json("certificate_types"))
RULE_ROWS: list[dict[str, Any]] = _json("conversion_rules")
PROGRAMS = sorted(CATALOG.degree_programs)
CERT_TYPES = sorted(CATALOG.certificate_types)
TRAININGS = sorted(CATALOG.training_programs)
COURSES = sorted(
    {(p.institution_id, c.id) for p in CATALOG.degree_programs.values() for c in p.courses}
    | {(p.institution_id, c.id) for p in CATALOG.source_programs.values() for c in p.courses}
)
LEARNERS = ("L1", "L2")
START, END = dt.date(2019, 1, 1), dt.date(2026, 6, 30)
# What each programme's sample rules can convert: records are drawn mostly from the
# learner's favourite programme so that rules fire, caps bind and records compete.
Maker = tuple[str, str]  # (kind, catalogue id)
RELEVANT: dict[str, list[Maker]] = {
    "P-COL-ELEC": [
        ("cert", "CT-ELEC-L2"),
        ("cert", "CT-ELEC-L3"),
        ("cert", "CT-ELEC-L4"),
        ("cert", "CT-SAFE-LV"),
        ("cert", "CT-ROBOT-X-MID"),
        ("cert", "CT-ROBOT-X-ADV"),
        ("cert", "CT-ELEVATOR-L2"),
        ("course", "C-ELE-01"),
    ],
    "P-OU-LOG": [
        ("cert", "CT-COURIER-L1"),
        ("cert", "CT-COURIER-L2"),
        ("cert", "CT-COURIER-L3"),
        ("cert", "CT-FORKLIFT"),
        ("cert", "CT-WAREHOUSE-L2"),
        ("work", "courier"),
        ("work", "warehouse_keeper"),
        ("hours", "T-EU-COURIER"),
        ("hours", "T-TC-WAREHOUSE"),
        ("hours", "T-EU-DISPATCH"),
        ("course", "C-LOG-02"),
    ],
    "P-OU-MECH": [
        ("course", "VS-EL-101"),
        ("course", "C-ELE-01"),
        ("course", "C-MEC-01"),
        ("cert", "CT-WELD-L2"),
        ("cert", "CT-WELD-L3"),
        ("cert", "CT-WELD-L4"),
        ("award", "welding"),
        ("award", "electrical"),
        ("hours", "T-CA-WELD"),
        ("hours", "T-CA-ROBOT"),
    ],
    "P-COL-ECOM": [
        ("cert", "CT-LIVE-L2"),
        ("cert", "CT-LIVE-L3"),
        ("hours", "T-TC-LIVE"),
        ("course", "C-ECM-02"),
    ],
}
ANY: list[Maker] = (
    [("cert", c) for c in CERT_TYPES]
    + [("course", c) for _, c in COURSES]
    + [("hours", t) for t in TRAININGS]
    + [("award", f) for f in ("welding", "general", "automation")]
    + [("work", o) for o in ("courier", "assembly_worker")]
)
COURSE_INSTITUTION = dict((c, i) for i, c in COURSES)
AS_OF = dt.date(2026, 12, 31)

PROPERTY = settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,
)


@dataclasses.dataclass(frozen=True)
class World:
    catalog: Catalog
    rules: tuple[ConversionRule, ...]
    records: tuple[Record, ...]
    applications: tuple[Application, ...]

    @property
    def book(self) -> RuleBook:
        return validate_rules(self.rules, self.catalog)


# --- strategies ----------------------------------------------------------------------------
dates = st.dates(START, dt.date(2025, 6, 30))
centi_amounts = st.sampled_from([50, 100, 150, 200, 300, 400, 600])


@st.composite
def payloads(draw: st.DrawFn, achieved: dt.date, program: str, dense: bool) -> tuple[str, Any]:
    pool = RELEVANT[program] if dense else draw(st.sampled_from([RELEVANT[program], ANY]))
    kind, ref = draw(st.sampled_from(pool))
    if kind == "cert":
        ct = CATALOG.certificate_types[ref]
        expires = None
        if ct.validity_years:
            expires = achieved.replace(year=achieved.year + ct.validity_years) - dt.timedelta(1)
        return "INS-TC", SkillCertificate(ct.id, None, expires)
    if kind == "course":
        grade = draw(st.integers(50, 100)) * CENTI
        return COURSE_INSTITUTION[ref], AcademicCredit(ref, 300, grade)
    if kind == "hours":
        tp = CATALOG.training_programs[ref]
        return tp.institution_id, TrainingHours(tp.id, draw(st.integers(1, 80)) * CENTI)
    if kind == "award":
        tier = draw(st.sampled_from(["provincial", "national", "municipal", "enterprise"]))
        return "EXT-CONTEST", CompetitionAward("c", tier, draw(st.integers(1, 4)), ref)
    return "INS-EU", WorkExperience(ref, draw(st.integers(24, 48)))


@st.composite
def learner_records(draw: st.DrawFn, learner: str, program: str, dense: bool) -> list[Record]:
    out: list[Record] = []
    for i in range(draw(st.integers(6, 14) if dense else st.integers(2, 10))):
        rid = f"{learner}-R{i}"
        achieved = draw(dates)
        posted = achieved + dt.timedelta(days=draw(st.integers(0, 60)))
        revoked = None
        if draw(st.integers(0, 9)) == 9:
            revoked = posted + dt.timedelta(days=draw(st.integers(1, 500)))
        corrects = None
        if out and draw(st.integers(0, 6)) == 6:
            corrects = draw(st.sampled_from([r.id for r in out]))
            posted = max(posted, next(r for r in out if r.id == corrects).posted_at)
        issuer, payload = draw(payloads(achieved, program, dense))
        out.append(
            Record(
                id=rid,
                learner_id=learner,
                issuer_id=issuer,
                achieved_on=achieved,
                posted_at=posted,
                payload=payload,
                dedup_key=draw(st.sampled_from([f"u:{rid}", "d1", f"u:{rid}", "d2", f"u:{rid}"])),
                corrects=corrects,
                revoked_at=revoked,
                revocation_reason="r" if revoked else None,
            )
        )
    return out


@st.composite
def applications(draw: st.DrawFn, learner: str, favourite: str) -> list[Application]:
    out: list[Application] = []
    for i in range(draw(st.integers(1, 4))):
        on = draw(st.dates(dt.date(2024, 1, 1), END))
        if draw(st.integers(0, 4)) == 4:
            cert = draw(st.sampled_from(["CT-ELEC-L2", "CT-COURIER-L2", "CT-WELD-L2"]))
            out.append(
                Application(
                    f"X{learner}{i}", learner, ApplicationType.EXAM_EXEMPTION, on, None, cert
                )
            )
        else:
            program = draw(st.sampled_from([favourite, favourite, *PROGRAMS]))
            out.append(
                Application(
                    f"A{learner}{i}", learner, ApplicationType.CREDIT_CONVERSION, on, program
                )
            )
    return out


def _caps(draw: st.DrawFn) -> dict[str, Any]:
    caps: dict[str, Any] = {}
    max_credits = draw(st.sampled_from([None, 4, 2.5, 6, 2, 1, 0]))
    if max_credits is not None:
        caps["max_credits"] = max_credits
    max_outcomes = draw(st.sampled_from([None, 2, 1, 3, 0]))
    if max_outcomes is not None:
        caps["max_outcomes"] = max_outcomes
    return caps


@st.composite
def rule_sets(draw: st.DrawFn) -> tuple[ConversionRule, ...]:
    rows: list[dict[str, Any]] = []
    keys = sorted({r["rule_key"] for r in RULE_ROWS})
    for key in keys:
        versions = [json.loads(json.dumps(r)) for r in RULE_ROWS if r["rule_key"] == key]
        credit = versions[0]["target"]["mode"] != Mode.EXAM_EXEMPTION
        if credit and len(versions) == 1 and draw(st.booleans()):
            split = draw(st.dates(dt.date(2023, 6, 1), dt.date(2026, 1, 1)))
            second = json.loads(json.dumps(versions[0]))
            versions[0]["effective_to"] = (split - dt.timedelta(1)).isoformat()
            second.update(version=2, effective_from=split.isoformat(), effective_to=None)
            versions.append(second)
        for row in versions:
            if credit:
                row["caps"] = _caps(draw)
                if "credits_per_outcome" in row:
                    row["credits_per_outcome"] = draw(st.sampled_from([2, 4, 1.5, 1, 0.5]))
                if "hours_per_credit" in row:
                    row["hours_per_credit"] = draw(st.sampled_from([16, 8, 12, 18, 24]))
                row["recency_years"] = draw(st.sampled_from([None, None, 5, 3, 1]))
                row["priority"] = draw(st.sampled_from([10, 15, 20, 30]))
            rows.append(row)
    return tuple(parse_rule(r) for r in rows)


@st.composite
def catalogs(draw: st.DrawFn) -> Catalog:
    programs = {}
    for pid, program in CATALOG.degree_programs.items():
        programs[pid] = dataclasses.replace(
            program,
            max_converted_credits=draw(st.sampled_from([None, 600, 450, 1000, 300, 0])),
            elective_pool_max=draw(st.sampled_from([None, 450, 200, 600, 250, 0])),
        )
    return dataclasses.replace(CATALOG, degree_programs=programs)


@st.composite
def worlds(draw: st.DrawFn) -> World:
    records: list[Record] = []
    apps: list[Application] = []
    dense = draw(st.booleans())
    for learner in LEARNERS:
        favourite = draw(st.sampled_from(PROGRAMS))
        records += draw(learner_records(learner, favourite, dense))
        apps += draw(applications(learner, favourite))
    return World(draw(catalogs()), draw(rule_sets()), tuple(records), tuple(apps))


def _run(world: World, *, explain: bool = True) -> RunResult:
    return run_all(world.applications, world.records, world.book, world.catalog, explain=explain)


def _report(world: World, result: RunResult, as_of: dt.date = AS_OF) -> dict[str, Any]:
    return build_report(as_of, list(LEARNERS), result.decisions, result.records, world.catalog)


def _revoked(world: World, grant: Grant, on: dt.date) -> bool:
    roots = {r.id: r for r in world.records}
    return any(
        roots[o].revoked_at is not None and roots[o].revoked_at <= on  # type: ignore[operator]
        for o in grant.outcome_ids
    )


def _history(world: World, result: RunResult) -> list[tuple[dt.date, list[Grant], list[Grant]]]:
    """Per decision: (D, grants made then, every grant of that learner made so far)."""
    so_far: dict[str, list[Grant]] = {}
    out = []
    for decision in result.decisions:
        lid = decision.application.learner_id
        so_far.setdefault(lid, []).extend(decision.grants)
        out.append((decision.decided_on, list(decision.grants), list(so_far[lid])))
    return out


# --- properties ----------------------------------------------------------------------------
@PROPERTY
@given(worlds(), st.data())
def test_deterministic_and_independent_of_input_order(world: World, data: st.DataObject) -> None:
    first = _run(world)
    shuffled = World(
        world.catalog,
        tuple(data.draw(st.permutations(world.rules))),
        tuple(data.draw(st.permutations(world.records))),
        tuple(data.draw(st.permutations(world.applications))),
    )
    second = _run(shuffled)
    assert first.decisions == second.decisions
    assert _report(world, first) == _report(shuffled, second)
    quiet = _run(world, explain=False)  # texts aside, the same grants
    for a, b in zip(quiet.decisions, first.decisions, strict=True):
        assert [(g.rule_key, g.outcome_ids, g.credits) for g in a.grants] == [
            (g.rule_key, g.outcome_ids, g.credits) for g in b.grants
        ]


@PROPERTY
@given(worlds())
def test_no_record_consumed_twice_by_active_grants(world: World) -> None:
    result = _run(world)
    checkpoints = [(d, made, everything) for d, made, everything in _history(world, result)]
    for on, _, everything in checkpoints:
        active = [g for g in everything if not _revoked(world, g, on)]
        used = [o for g in active for o in g.outcome_ids]
        assert len(used) == len(set(used)), (on, used)


@PROPERTY
@given(worlds())
def test_no_cap_is_ever_exceeded(world: World) -> None:
    result = _run(world)
    book = world.book
    for decision in result.decisions:
        for grant in decision.grants:
            event(f"grant {grant.mode}" + (f" bound by {grant.bound_by}" if grant.bound_by else ""))
    if any(d.chain.root_id for lr in result.records.values() for d in lr.duplicates):
        event("duplicates")
    if any(r.corrects for r in world.records):
        event("corrections")
    if any(_revoked(world, g, AS_OF) for d in result.decisions for g in d.grants):
        event("a grant is voided")
    for on, made, everything in _history(world, result):
        active = [g for g in everything if not _revoked(world, g, on)]
        for grant in made:
            rule = book.version_in_force(grant.rule_key, on)
            assert rule is not None
            assert rule.target.program_id == grant.program_id
            under_key = [g for g in active if g.rule_key == grant.rule_key]
            if rule.caps.max_credits is not None:
                assert sum(g.credits for g in under_key) <= rule.caps.max_credits
            elective = rule.target.mode in (Mode.ELECTIVE_FIXED, Mode.ELECTIVE_BY_TIER)
            if elective and rule.caps.max_outcomes is not None:
                held = sum(len(g.outcome_ids) for g in under_key)
                assert held <= rule.caps.max_outcomes
            program = world.catalog.degree_programs[grant.program_id]
            in_program = [g for g in active if g.program_id == program.id]
            if program.max_converted_credits is not None:
                assert sum(g.credits for g in in_program) <= program.max_converted_credits
            if grant.target_course_id is None and program.elective_pool_max is not None:
                pool = sum(g.credits for g in in_program if g.target_course_id is None)
                assert pool <= program.elective_pool_max


@PROPERTY
@given(worlds())
def test_grants_never_exceed_their_amounts_and_use_valid_records(world: World) -> None:
    result = _run(world)
    book = world.book
    by_id = {r.id: r for r in world.records}
    for decision in result.decisions:
        on = decision.decided_on
        for grant in decision.grants:
            rule = book.version_in_force(grant.rule_key, on)
            assert rule is not None
            assert grant.credits > 0
            assert grant.credits <= grant.nominal_credits
            if rule.target.mode == Mode.COURSE_EXEMPTION:
                course = world.catalog.degree_programs[grant.program_id].course(
                    grant.target_course_id or ""
                )
                assert course is not None
                assert grant.credits == course.credits
                assert len(grant.outcome_ids) == 1
            elif rule.target.mode == Mode.ELECTIVE_FIXED:
                assert grant.credits <= (rule.credits_per_outcome or 0)
            elif rule.target.mode == Mode.ELECTIVE_BY_TIER:
                payload = by_id[grant.effective_version_ids[0]].payload
                assert isinstance(payload, CompetitionAward)
                assert grant.credits <= (rule.source.tier_credits(payload.tier) or 0)
            else:
                assert rule.target.mode == Mode.HOURS_TO_CREDITS
                summed = 0
                for vid in grant.effective_version_ids:
                    payload = by_id[vid].payload
                    assert isinstance(payload, TrainingHours)
                    summed += payload.hours
                assert grant.hours_used == summed
                assert grant.raw_credits == summed // (rule.hours_per_credit or 1) * CENTI
                assert grant.credits <= grant.raw_credits
            for root_id, version_id in zip(
                grant.outcome_ids, grant.effective_version_ids, strict=True
            ):
                root, version = by_id[root_id], by_id[version_id]
                assert root.posted_at <= on
                assert version.posted_at <= on
                assert version.achieved_on <= on
                assert root.revoked_at is None or root.revoked_at > on
                payload = version.payload
                if isinstance(payload, SkillCertificate) and payload.expires_on is not None:
                    assert on <= payload.expires_on


@PROPERTY
@given(worlds())
def test_voiding_never_creates_credit(world: World) -> None:
    result = _run(world)
    granted: dict[tuple[str, str], int] = {}
    for decision in result.decisions:
        for grant in decision.grants:
            key = (grant.learner_id, grant.program_id)
            granted[key] = granted.get(key, 0) + grant.credits
    last = max((a.applied_on for a in world.applications), default=START)
    previous: dict[str, float] | None = None
    for as_of in (
        last,
        last + dt.timedelta(200),
        last + dt.timedelta(400),
        AS_OF + dt.timedelta(900),
    ):
        totals: dict[str, float] = {}
        for entry in _report(world, result, as_of)["learners"]:
            for p in entry["per_program_as_of"]:
                key = (entry["learner_id"], p["program_id"])
                both = p["converted_credits_active"] + p["converted_credits_voided"]
                assert round(both * CENTI) == granted.get(key, 0)
            totals[entry["learner_id"]] = entry["converted_credits_active_total"]
        if previous is not None:
            assert all(totals[k] <= previous[k] for k in totals)
        previous = totals


@PROPERTY
@given(worlds(), st.data())
def test_a_revocation_after_the_last_decision_changes_no_decision(
    world: World, data: st.DataObject
) -> None:
    if not world.records:
        return
    last = max(a.applied_on for a in world.applications)
    target = data.draw(st.sampled_from([r.id for r in world.records]))
    later = last + dt.timedelta(days=data.draw(st.integers(1, 100)))
    records = tuple(
        dataclasses.replace(r, revoked_at=later) if r.id == target and r.revoked_at is None else r
        for r in world.records
    )
    before = _run(world)
    after = _run(dataclasses.replace(world, records=records))
    assert [d.grants for d in before.decisions] == [d.grants for d in after.decisions]
    old = _report(world, before)
    new = _report(world, after)
    for a, b in zip(old["learners"], new["learners"], strict=True):
        assert b["converted_credits_active_total"] <= a["converted_credits_active_total"]
