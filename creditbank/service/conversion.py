"""Conversion as a bank service: published rules, applications, decisions, voids, report.

The pure engine (:mod:`creditbank.core.rules`) decides; this module feeds it from the log and
writes what it decided back into the log (docs/conversion-service.md):

* **Rules** are published by the bank as a signed ``rules.published`` entry holding the whole
  rule set (every version of every rule key) and the catalogue the rules need (degree,
  source and training programmes with their courses, certificate types), all quantities in
  integer hundredths. Institutions come from the registry. A publication is validated with
  :func:`~creditbank.core.rules.validate_rules` first, and must keep every version published
  before unchanged except its ``effective_to`` (a version is never rewritten or dropped). The
  latest publication is the one in force; a decision records the index of the one it used.
* **Decisions**: each application (credit conversion or exam exemption) is decided by the
  engine from the learner's records *as the log holds them* (records projection plus entry
  bodies, revocations projection), the rules in force at the decision date D and every earlier
  decision of the learner (rule 0), and becomes one bank-signed ``conversion.decided`` entry:
  each grant names its rule key and version, its credits (integer hundredths), its source
  records by owner, record id and ledger index (root and effective version) and its bilingual
  explanation; denials carry their reasons. D is the application date; the entry's ``at`` is
  the bank clock. A decision is a snapshot: later rules or corrections never change it.
* **Voids**: a revocation voids every active grant that used the chain (rule 10). Each void is
  a ``conversion.voided`` entry naming the decision entry, the grant and the revocation entry.
  :func:`reconcile_voids` posts the voids the log implies and is idempotent; it runs after
  records are posted (:func:`on_records_appended`), before every decision, and in the import.
* **Reads**: application views with explanations, what-if previews (nothing recorded), and
  the conversion report (the structure of ``sample/expected.json``) built from the stored
  decision entries and record projections, with a dataset's own ids when it was imported.

Writes are serialised by one conversion lock (a file lock in the home on SQLite, an advisory
lock on PostgreSQL) held across read → decide → append, so two decisions never see the same
state. Projections (``rule_publications``, ``conversion_decisions``, ``conversion_voids``) are
written by the append, in the append's transaction (ADR 0007): a decision is either in the log
and its projection, or in neither, so an error answer never hides a written decision.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import json
import logging
import re
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Final

from sqlalchemy.engine import Connection

from creditbank.core.canonical import canonicalize
from creditbank.core.entries import MAX_ENTRY_SIZE, parse_entry
from creditbank.core.registry import Registry
from creditbank.core.rules import (
    AcademicCredit,
    Application,
    ApplicationType,
    Caps,
    Catalog,
    CertificateType,
    CompetitionAward,
    ConversionRule,
    Course,
    Decision,
    DegreeProgram,
    ExamResult,
    Grant,
    Institution,
    LearnerRecords,
    LearnerState,
    Reason,
    Record,
    RecordIssue,
    RuleBook,
    RuleTarget,
    SkillCertificate,
    SourcePattern,
    SourceProgram,
    TrainingHours,
    TrainingProgram,
    WorkExperience,
    build_report,
    centi_to_number,
    decide,
    parse_rule,
    preview,
    validate_rules,
    void_of,
)
from creditbank.core.rules.dataset import parse_certificate_type, parse_programs
from creditbank.core.rules.decision import Cap
from creditbank.core.rules.model import Payload
from creditbank.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    RuleError,
    StorageError,
)
from creditbank.service.bank import Bank
from creditbank.service.ledger import AppendOutcome
from creditbank.service.projection import conversion_row
from creditbank.storage import conversion_repo as repo
from creditbank.storage.engine import IMMEDIATE, UNAVAILABLE

RULES_PUBLISHED: Final = "rules.published"
DECIDED: Final = "conversion.decided"
VOIDED: Final = "conversion.voided"
#: largest canonical body written (the whole entry is limited to MAX_ENTRY_SIZE)
BODY_BUDGET: Final = MAX_ENTRY_SIZE - 4096
#: longest explanation kept in a decision entry when it must be shortened to fit
SHORT_TEXT: Final = 600
#: entries per ledger append
BATCH: Final = 500
#: PostgreSQL advisory lock key of the conversion lock ("cbconv")
PG_LOCK_KEY: Final = 0x6362636F6E76
log = logging.getLogger(__name__)

#: ids the bank accepts for applications
APPLICATION_ID_RE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,63}$")


# -- the conversion lock ----------------------------------------------------------------------
_LOCKS_GUARD = threading.Lock()
_LOCKS: dict[str, tuple[threading.RLock, list[int]]] = {}


@contextmanager
def conversion_lock(bank: Bank) -> Iterator[None]:
    """Serialise conversion writes across threads and processes (re-entrant per thread).

    SQLite: ``flock`` on ``$CREDITBANK_HOME/conversion.lock`` (a database write lock would
    block the ledger's own append). PostgreSQL: a session advisory lock on its own connection.
    """
    key = bank.settings.db_url
    with _LOCKS_GUARD:
        entry = _LOCKS.get(key)
        if entry is None:
            entry = _LOCKS[key] = (threading.RLock(), [0])
    rlock, depth = entry
    with rlock:
        if depth[0] > 0:
            depth[0] += 1
            try:
                yield
            finally:
                depth[0] -= 1
            return
        depth[0] = 1
        try:
            if bank.engine.dialect.name == "sqlite":
                path = bank.settings.home / "conversion.lock"
                path.parent.mkdir(parents=True, exist_ok=True)
                with open(path, "a+b") as fh:
                    fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
                    try:
                        yield
                    finally:
                        fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
            else:
                with bank.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                    repo.pg_lock(conn, PG_LOCK_KEY)
                    try:
                        yield
                    finally:
                        repo.pg_unlock(conn, PG_LOCK_KEY)
        finally:
            depth[0] = 0


# -- wire format of a rules publication (integers only: quantities in hundredths) -------------
def _opt(out: dict[str, Any], key: str, value: Any) -> None:
    if value is not None:
        out[key] = value


def rule_to_wire(rule: ConversionRule) -> dict[str, Any]:
    """One rule version as stored in a ``rules.published`` body."""
    target: dict[str, Any] = {"mode": rule.target.mode}
    for key in ("program_id", "course_id", "certificate_type_id", "exam_part"):
        _opt(target, key, getattr(rule.target, key))
    src = rule.source
    source: dict[str, Any] = {"kind": src.kind}
    for key in ("certificate_type_ids", "occupations", "fields", "course_ids", "issuer_kinds"):
        value = getattr(src, key)
        if value is not None:
            source[key] = list(value)
    for key in ("min_level", "max_rank", "min_months"):
        _opt(source, key, getattr(src, key))
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


# -- the rule set in force --------------------------------------------------------------------
@dataclass(frozen=True, slots=True, eq=False)
class RuleSet:
    """A publication read back from the log, validated and indexed for the engine."""

    entry_index: int
    published_at: str
    publication: Publication
    book: RuleBook
    catalog: Catalog


def _catalog(pub: Publication, registry: Registry) -> Catalog:
    institutions = [
        Institution(
            id=s.institution_id,
            kind=s.kind,
            status="closed" if s.closed_on is not None else "active",
            closed_on=s.closed_on,
            records_custodian=s.custodian,
            name_zh=s.name_zh,
            name_en=s.name_en,
        )
        for s in registry.institutions.values()
    ]
    return Catalog.build(
        institutions=institutions,
        certificate_types=pub.certificate_types,
        degree_programs=pub.degree_programs,
        source_programs=pub.source_programs,
        training_programs=pub.training_programs,
    )


_RULESETS: dict[tuple[str, int, int], RuleSet] = {}
_RULESETS_GUARD = threading.Lock()


def current_rules(bank: Bank) -> RuleSet | None:
    """The latest publication (``None`` if none), cached per publication and registry state."""
    with bank.engine.connect() as conn:
        row = repo.latest_publication(conn)
        if row is None:
            return None
        idx = int(row.entry_idx)
    registry_count = bank.ledger.head().registry_count
    key = (bank.settings.db_url, idx, registry_count)
    with _RULESETS_GUARD:
        found = _RULESETS.get(key)
    if found is not None:
        return found
    with bank.engine.connect() as conn:
        data = repo.entry_data(conn, [idx])[idx]
    entry = json.loads(data)
    pub = Publication.from_body(entry["body"])
    catalog = _catalog(pub, bank.ledger.registry())
    ruleset = RuleSet(idx, str(entry["at"]), pub, validate_rules(pub.rules, catalog), catalog)
    with _RULESETS_GUARD:
        if len(_RULESETS) > 32:
            _RULESETS.clear()
        _RULESETS[key] = ruleset
    return ruleset


def _require_rules(bank: Bank) -> RuleSet:
    ruleset = current_rules(bank)
    if ruleset is None:
        raise RuleError("no conversion rules are published yet", code="conversion.no_rules")
    return ruleset


# -- publishing -------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class PublishResult:
    """Where a publication sits; ``created`` is false when it equalled the one in force."""

    entry_index: int
    created: bool
    rule_versions: int
    rule_keys: int


def _compatible(old: Publication, new: Publication) -> None:
    """A new publication keeps every published version, changed at most in ``effective_to``.

    Raises:
        RuleError: ``rules.version_removed`` / ``rules.version_changed`` /
            ``rules.program_removed``.
    """
    by_key = {(r.rule_key, r.version): r for r in new.rules}
    for r in old.rules:
        now = by_key.get((r.rule_key, r.version))
        if now is None:
            raise RuleError(
                f"rule {r.rule_key} v{r.version} was published before and cannot be dropped; "
                "end it with effective_to instead",
                code="rules.version_removed",
            )
        a, b = rule_to_wire(r), rule_to_wire(now)
        a.pop("effective_to")
        b.pop("effective_to")
        if a != b:
            raise RuleError(
                f"rule {r.rule_key} v{r.version} was published before with other content; "
                "publish a new version instead (only effective_to may change)",
                code="rules.version_changed",
            )
    programs = {p.id for p in new.degree_programs}
    for p in old.degree_programs:
        if p.id not in programs:
            raise RuleError(
                f"degree programme {p.id} was published before and cannot be dropped",
                code="rules.program_removed",
            )


def publish_rules(bank: Bank, publication: Publication) -> PublishResult:
    """Validate and publish a rule set as a bank-signed ``rules.published`` entry.

    Idempotent: a publication equal to the one in force is not appended again.

    Raises:
        RuleValidationError: the rules are invalid (every problem listed; code of the first).
        RuleError: ``rules.unknown_institution`` (a programme's institution is not
            registered), ``rules.version_removed`` / ``rules.version_changed`` /
            ``rules.program_removed`` (incompatible with the publication in force).
        InvalidInputError: ``rules.too_large`` when the entry would exceed the entry size.
    """
    with conversion_lock(bank):
        _sync(bank)
        registry = bank.ledger.registry()
        catalog = _catalog(publication, registry)
        validate_rules(publication.rules, catalog)
        owners = [(p.id, p.institution_id) for p in publication.degree_programs]
        owners += [(p.id, p.institution_id) for p in publication.source_programs]
        for pid, institution_id in owners:
            if institution_id not in registry.institutions:
                raise RuleError(
                    f"programme {pid} names institution {institution_id}, which is not registered",
                    code="rules.unknown_institution",
                )
        body = publication.body()
        digest = hashlib.sha256(canonicalize(body)).digest()
        keys = len({r.rule_key for r in publication.rules})
        current = current_rules(bank)
        if current is not None:
            with bank.engine.connect() as conn:
                latest = repo.latest_publication(conn)
            if latest is not None and bytes(latest.digest) == digest:
                return PublishResult(int(latest.entry_idx), False, len(publication.rules), keys)
            _compatible(current.publication, publication)
        if len(canonicalize(body)) > BODY_BUDGET:
            raise InvalidInputError(
                f"the rule set is too large for one entry ({BODY_BUDGET} bytes)",
                code="rules.too_large",
            )
        (out,) = bank.ledger.append([bank.bank_entry(RULES_PUBLISHED, body)])
        _sync(bank)
        return PublishResult(out.index, not out.duplicate, len(publication.rules), keys)


# -- projections ------------------------------------------------------------------------------
def _sync(bank: Bank) -> int:
    """Project every conversion entry the projections lack (call under the conversion lock).

    The append projects each entry in its own transaction (ADR 0007), so this only completes
    a database written before that. It reads first and, only when behind, writes in a
    transaction that takes the write lock when it begins (``BEGIN IMMEDIATE`` on SQLite).
    """
    bank_id = bank.settings.bank_id
    with bank.engine.connect() as conn:
        if repo.last_conversion_entry(conn, bank_id) <= repo.projected_until(conn):
            return 0
    added = 0
    with bank.engine.connect().execution_options(**{IMMEDIATE: True}) as conn, conn.begin():
        after = repo.projected_until(conn)
        for row in repo.entries_after(conn, after):
            entry = json.loads(bytes(row.data))
            if entry["issuer"] != bank_id:
                continue  # only bank-authored conversion entries count
            table, values = conversion_row(int(row.idx), str(row.type), str(row.at), entry["body"])
            conn.execute(table.insert().values(**values))
            added += 1
    return added


def ensure_synced(bank: Bank) -> None:
    """Complete the projections if the log holds conversion entries they lack."""
    with bank.engine.connect() as conn:
        behind = repo.last_conversion_entry(conn, bank.settings.bank_id) > repo.projected_until(
            conn
        )
    if behind:
        with conversion_lock(bank):
            _sync(bank)


# -- the learner's records and decisions, from the log ----------------------------------------
@dataclass(frozen=True, slots=True)
class RecordRef:
    """Where one record version sits: its owner, record id, entry and its chain root's entry."""

    owner: str
    record_id: str
    entry_index: int
    root_entry_index: int


@dataclass(frozen=True, slots=True, eq=False)
class StoredDecision:
    """A ``conversion.decided`` entry read back, with the engine's view of it."""

    entry_index: int
    at: str
    body: Mapping[str, Any]
    decision: Decision


@dataclass(eq=False)
class LearnerData:
    """Everything the engine needs about one learner, read from the log and projections.

    Engine record ids are the institutions' record ids; a record id that another owner
    already used for this learner gets ``@<owner>`` appended (stable: the first keeps it).
    """

    learner_id: str
    records: LearnerRecords
    eid_by_entry: dict[int, str]
    ref_by_eid: dict[str, RecordRef]
    decisions: list[StoredDecision] = field(default_factory=list)
    state: LearnerState | None = None
    #: (decision entry, grant no) -> (voided_at, void entry)
    voided: dict[tuple[int, int], tuple[str, int]] = field(default_factory=dict)
    #: engine root id -> index of its record.revoked entry
    revocation_entry: dict[str, int] = field(default_factory=dict)

    def learner_state(self) -> LearnerState:
        return self.state if self.state is not None else LearnerState(self.learner_id)


_DATES: dict[str, dt.date] = {}


def _date(text: str) -> dt.date:
    found = _DATES.get(text)
    if found is None:
        found = dt.date.fromisoformat(text)
        if len(_DATES) < 100_000:
            _DATES[text] = found
    return found


def _opt_date(text: Any) -> dt.date | None:
    return None if text is None else _date(str(text))


def _payload(kind: str, p: Mapping[str, Any]) -> Payload:
    """The engine payload of a v1 record payload (credits, grades, hours in hundredths)."""
    if kind == "academic_credit":
        return AcademicCredit(
            course_id=str(p["course_id"]),
            credits=int(p.get("credits_centi") or 0),
            grade=int(p["grade"]) * 100,
            term=p.get("term"),
        )
    if kind == "skill_certificate":
        return SkillCertificate(
            certificate_type_id=str(p["certificate_type_id"]),
            certificate_no=p.get("certificate_no"),
            expires_on=_opt_date(p.get("expires_on")),
        )
    if kind == "training_hours":
        return TrainingHours(
            training_program_id=str(p["training_program_id"]),
            hours=int(p["hours"]) * 100,
            cohort=p.get("cohort"),
        )
    if kind == "competition_award":
        return CompetitionAward(
            competition=str(p.get("competition") or ""),
            tier=str(p["tier"]),
            rank=int(p["rank"]),
            field=str(p.get("field") or ""),
        )
    return WorkExperience(
        occupation_key=str(p["occupation_key"]),
        duration_months=int(p["duration_months"]),
        employer=p.get("employer"),
        start_on=_opt_date(p.get("start_on")),
        end_on=_opt_date(p.get("end_on")),
        verified_by=p.get("verified_by"),
    )


def _learner_records(
    learner_id: str,
    rows: Sequence[Any],
    data: Mapping[int, bytes],
    revocations: Mapping[tuple[str, str], Any],
) -> tuple[LearnerRecords, dict[int, str], dict[str, RecordRef], dict[str, int]]:
    """Engine records of one learner from record projection rows (in ledger order)."""
    used: set[str] = set()
    eid_of: dict[tuple[str, str], str] = {}
    idx_of: dict[tuple[str, str], int] = {}
    eid_by_entry: dict[int, str] = {}
    ref_by_eid: dict[str, RecordRef] = {}
    rev_entry: dict[str, int] = {}
    records: list[Record] = []
    for r in rows:
        owner, rid, idx = str(r.owner), str(r.record_id), int(r.entry_idx)
        eid = rid if rid not in used else f"{rid}@{owner}"
        while eid in used:  # pragma: no cover - a third owner with the same record id
            eid = f"{eid}#{idx}"
        used.add(eid)
        eid_of[(owner, rid)] = eid
        idx_of[(owner, rid)] = idx
        eid_by_entry[idx] = eid
        root_key = (owner, str(r.chain_root))
        ref_by_eid[eid] = RecordRef(owner, rid, idx, idx_of.get(root_key, idx))
        body = json.loads(data[idx])["body"]
        revoked_at: dt.date | None = None
        reason: str | None = None
        if rid == str(r.chain_root):
            rev = revocations.get(root_key)
            if rev is not None:
                revoked_at, reason = _date(str(rev.effective_on)), str(rev.reason)
                rev_entry[eid] = int(rev.entry_idx)
        corrects = body.get("corrects")
        records.append(
            Record(
                id=eid,
                learner_id=learner_id,
                issuer_id=str(body.get("claimed_issuer") or owner),
                achieved_on=_date(str(r.achieved_on)),
                posted_at=_date(str(r.posted_at)),
                payload=_payload(str(body["kind"]), body["payload"]),
                dedup_key=str(body["dedup_key"]),
                corrects=None if corrects is None else eid_of.get((owner, str(corrects))),
                revoked_at=revoked_at,
                revocation_reason=reason,
                posted_by=str(r.posted_by),
            )
        )
    return LearnerRecords.build(learner_id, records), eid_by_entry, ref_by_eid, rev_entry


def _decision_from_body(body: Mapping[str, Any], eid_by_entry: Mapping[int, str]) -> Decision:
    """The engine's view of a stored decision (grants and exam result; notes stay in JSON)."""
    learner = str(body["learner"])
    day = _date(str(body["applied_on"]))
    app = Application(
        id=str(body["application_id"]),
        learner_id=learner,
        type=ApplicationType(body["type"]),
        applied_on=day,
        program_id=body.get("program_id"),
        certificate_type_id=body.get("certificate_type_id"),
    )

    def eid(source: Mapping[str, Any], key: str, fallback: str) -> str:
        return eid_by_entry.get(int(source[key]), str(source[fallback]))

    grants = tuple(
        Grant(
            application_id=app.id,
            learner_id=learner,
            program_id=str(body.get("program_id") or ""),
            index=n,
            rule_key=str(g["rule_key"]),
            rule_version=int(g["rule_version"]),
            mode=str(g["mode"]),
            outcome_ids=tuple(eid(s, "root_entry", "root_record_id") for s in g["sources"]),
            effective_version_ids=tuple(eid(s, "entry", "record_id") for s in g["sources"]),
            target_course_id=g.get("target_course_id"),
            credits=int(g["credits_centi"]),
            granted_on=day,
            nominal_credits=int(g["nominal_centi"]),
            bound_by=Cap(g["bound_by"]) if g.get("bound_by") else None,
            hours_used=g.get("hours_used_centi"),
            raw_credits=g.get("raw_credits_centi"),
            explanation_zh=str(g.get("explanation_zh") or ""),
            explanation_en=str(g.get("explanation_en") or ""),
        )
        for n, g in enumerate(body["grants"])
    )
    exam: ExamResult | None = None
    e = body.get("exam")
    if e is not None:
        basis = e.get("basis")
        exam = ExamResult(
            certificate_type_id=str(e["certificate_type_id"]),
            granted=bool(e["granted"]),
            exam_part=e.get("exam_part"),
            rule_key=e.get("rule_key"),
            rule_version=e.get("rule_version"),
            basis_outcome_id=None if basis is None else eid(basis, "entry", "record_id"),
            basis_root_id=None if basis is None else eid(basis, "root_entry", "root_record_id"),
        )
    return Decision(
        application=app,
        grants=grants,
        rule_notes=(),
        record_notes=(),
        exam=exam,
        reason=Reason(body["reason"]),
        explanation_zh=str(body.get("explanation_zh") or ""),
        explanation_en=str(body.get("explanation_en") or ""),
    )


#: above this many learners, read whole tables in one pass (reports) rather than by IN lists
BULK_LEARNERS: Final = 2000
_LOADED_TYPES: Final = ("record.posted", "record.corrected", DECIDED)


def load_learners(conn: Connection, learner_ids: Iterable[str]) -> dict[str, LearnerData]:
    """Records, decisions and voids of the learners, as the log and projections hold them."""
    ids = sorted(set(learner_ids))
    if len(ids) > BULK_LEARNERS:  # a report: scan the tables once instead of IN lists
        wanted = set(ids)
        rows = [r for r in repo.all_records(conn) if r.learner_id in wanted]
        decisions = [d for d in repo.all_decisions(conn) if d.learner_id in wanted]
        need = {int(r.entry_idx) for r in rows} | {int(d.entry_idx) for d in decisions}
        data = {
            int(e.idx): bytes(e.data)
            for e in repo.entries_of_types(conn, _LOADED_TYPES)
            if int(e.idx) in need
        }
        revocations = repo.all_revocations(conn)
        voids = [v for v in repo.all_voids(conn) if v.learner_id in wanted]
    else:
        rows = repo.records_of_learners(conn, ids)
        decisions = repo.decisions_of_learners(conn, ids)
        data = repo.entry_data(
            conn, [int(r.entry_idx) for r in rows] + [int(d.entry_idx) for d in decisions]
        )
        revocations = repo.revocations_of(conn, {(str(r.owner), str(r.chain_root)) for r in rows})
        voids = repo.voids_of_learners(conn, ids)
    by_learner: dict[str, list[Any]] = {lid: [] for lid in ids}
    for r in rows:
        by_learner[str(r.learner_id)].append(r)
    out: dict[str, LearnerData] = {}
    for lid in ids:
        records, eid_by_entry, ref_by_eid, rev_entry = _learner_records(
            lid, by_learner[lid], data, revocations
        )
        out[lid] = LearnerData(lid, records, eid_by_entry, ref_by_eid, revocation_entry=rev_entry)
    for d in decisions:
        ld = out[str(d.learner_id)]
        idx = int(d.entry_idx)
        body = json.loads(data[idx])["body"]
        decision = _decision_from_body(body, ld.eid_by_entry)
        ld.decisions.append(StoredDecision(idx, str(d.decided_at), body, decision))
        ld.state = ld.learner_state().apply(decision)
    for v in voids:
        out[str(v.learner_id)].voided[(int(v.decision_idx), int(v.grant_no))] = (
            str(v.voided_at),
            int(v.entry_idx),
        )
    return out


# -- decision entries -------------------------------------------------------------------------
def _source(ld: LearnerData, root_eid: str, eff_eid: str) -> dict[str, Any]:
    root, eff = ld.ref_by_eid[root_eid], ld.ref_by_eid[eff_eid]
    return {
        "owner": eff.owner,
        "record_id": eff.record_id,
        "entry": eff.entry_index,
        "root_record_id": root.record_id,
        "root_entry": root.entry_index,
    }


def decision_body(decision: Decision, ld: LearnerData, rules_entry: int) -> dict[str, Any]:
    """The ``conversion.decided`` body of an engine decision (no personal data: no names)."""
    app = decision.application
    body: dict[str, Any] = {
        "application_id": app.id,
        "learner": app.learner_id,
        "type": app.type.value,
        "applied_on": app.applied_on.isoformat(),
        "rules_entry": rules_entry,
        "reason": decision.reason.value,
        "credits_centi": decision.credits_granted,
        "explanation_zh": decision.explanation_zh,
        "explanation_en": decision.explanation_en,
    }
    _opt(body, "program_id", app.program_id)
    _opt(body, "certificate_type_id", app.certificate_type_id)
    grants = []
    for g in decision.grants:
        out: dict[str, Any] = {
            "rule_key": g.rule_key,
            "rule_version": g.rule_version,
            "mode": g.mode,
            "credits_centi": g.credits,
            "nominal_centi": g.nominal_credits,
            "sources": [
                _source(ld, oid, vid)
                for oid, vid in zip(g.outcome_ids, g.effective_version_ids, strict=True)
            ],
            "explanation_zh": g.explanation_zh,
            "explanation_en": g.explanation_en,
        }
        _opt(out, "target_course_id", g.target_course_id)
        _opt(out, "bound_by", g.bound_by.value if g.bound_by else None)
        _opt(out, "hours_used_centi", g.hours_used)
        _opt(out, "raw_credits_centi", g.raw_credits)
        grants.append(out)
    body["grants"] = grants
    notes = []
    for n in decision.rule_notes:
        note: dict[str, Any] = {
            "rule_key": n.rule_key,
            "rule_version": n.rule_version,
            "mode": n.mode,
            "reason": n.reason.value,
            "records": list(n.outcome_ids),
            "explanation_zh": n.explanation_zh,
            "explanation_en": n.explanation_en,
        }
        _opt(note, "bound_by", n.bound_by.value if n.bound_by else None)
        notes.append(note)
    body["rule_notes"] = notes
    body["record_notes"] = [
        {
            "record": n.outcome_id,
            "version": n.version_id,
            "issue": n.issue.value,
            "related": n.related_id,
            "explanation_zh": n.explanation_zh,
            "explanation_en": n.explanation_en,
        }
        for n in decision.record_notes
        if n.issue is not RecordIssue.NAME_DIFFERS  # names are personal data: never logged
    ]
    if decision.exam is not None:
        e = decision.exam
        exam: dict[str, Any] = {
            "certificate_type_id": e.certificate_type_id,
            "granted": e.granted,
            "exam_part": e.exam_part,
            "rule_key": e.rule_key,
            "rule_version": e.rule_version,
            "basis": None,
        }
        if e.basis_root_id is not None and e.basis_outcome_id is not None:
            exam["basis"] = _source(ld, e.basis_root_id, e.basis_outcome_id)
        body["exam"] = exam
    return _fit(body)


def _shorten(items: list[dict[str, Any]], limit: int) -> None:
    for item in items:
        for key in ("explanation_zh", "explanation_en"):
            text = item.get(key)
            if isinstance(text, str) and len(text) > limit:
                item[key] = text[: limit - 1] + "…"


def _fit(body: dict[str, Any]) -> dict[str, Any]:
    """Shorten the notes of a decision that would not fit in one entry.

    Raises:
        RuleError: ``conversion.too_large`` if even the grants alone do not fit.
    """
    if len(canonicalize(body)) <= BODY_BUDGET:
        return body
    _shorten(body["record_notes"], SHORT_TEXT)
    _shorten(body["rule_notes"], SHORT_TEXT)
    if len(canonicalize(body)) <= BODY_BUDGET:
        return body
    body["record_notes"] = []
    _shorten(body["rule_notes"], 160)
    _shorten(body["grants"], SHORT_TEXT)
    if len(canonicalize(body)) <= BODY_BUDGET:
        return body
    raise RuleError(
        f"decision on {body['application_id']} is too large for one ledger entry",
        code="conversion.too_large",
    )


# -- deciding ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ApplicationRequest:
    """An application to decide: exactly one of ``program_id`` / ``certificate_type_id``.

    ``application_id`` is the caller's id (a dataset's); ``None`` lets the bank number it.
    """

    learner_id: str
    applied_on: dt.date
    program_id: str | None = None
    certificate_type_id: str | None = None
    application_id: str | None = None

    @property
    def type(self) -> ApplicationType:
        return (
            ApplicationType.CREDIT_CONVERSION
            if self.program_id is not None
            else ApplicationType.EXAM_EXEMPTION
        )


@dataclass(frozen=True, slots=True)
class Decided:
    """One decided application: its entry, and whether this call appended it."""

    application_id: str
    learner_id: str
    entry_index: int
    created: bool


def _check_request(req: ApplicationRequest, ruleset: RuleSet, today: dt.date) -> None:
    if (req.program_id is None) == (req.certificate_type_id is None):
        raise InvalidInputError(
            "an application names exactly one of program_id or certificate_type_id",
            code="conversion.bad_application",
        )
    if req.program_id is not None and req.program_id not in ruleset.catalog.degree_programs:
        raise InvalidInputError(
            f"unknown degree programme {req.program_id}", code="conversion.unknown_program"
        )
    if (
        req.certificate_type_id is not None
        and req.certificate_type_id not in ruleset.catalog.certificate_types
    ):
        raise InvalidInputError(
            f"unknown certificate type {req.certificate_type_id}",
            code="conversion.unknown_certificate_type",
        )
    if req.applied_on > today:
        raise InvalidInputError(
            f"an application cannot be dated after today ({req.applied_on} > {today})",
            code="conversion.future_date",
        )
    if req.application_id is not None and not APPLICATION_ID_RE.fullmatch(req.application_id):
        raise InvalidInputError(
            f"bad application id {req.application_id!r}", code="conversion.bad_application"
        )


def _same(row: Any, req: ApplicationRequest) -> bool:
    return (
        str(row.learner_id) == req.learner_id
        and str(row.app_type) == req.type.value
        and row.program_id == req.program_id
        and row.certificate_type_id == req.certificate_type_id
        and str(row.applied_on) == req.applied_on.isoformat()
    )


def decide_applications(
    bank: Bank, requests: Sequence[ApplicationRequest], *, batch_size: int = BATCH
) -> list[Decided]:
    """Decide applications in the order given (callers give rule-0 order) and append each
    decision as a bank-signed ``conversion.decided`` entry.

    An application whose id was already decided with the same learner, type, target and date
    is answered with its entry (``created=False``), so an import can be re-run.

    Raises:
        InvalidInputError: ``conversion.unknown_program``,
            ``conversion.unknown_certificate_type``, ``conversion.bad_application``,
            ``conversion.future_date``; nothing of the batch is written then.
        NotFoundError: ``learner.unknown``.
        ConflictError: ``conversion.application_conflict`` (the id was used for another
            application).
        RuleError: ``conversion.no_rules``; ``rules.out_of_order`` if an application is not
            later (rule 0) than the learner's last decision.
    """
    with conversion_lock(bank):
        _sync(bank)
        ruleset = _require_rules(bank)
        today = bank.clock.now().date()
        for req in requests:
            _check_request(req, ruleset, today)
        learners = {r.learner_id for r in requests}
        _reconcile_locked(bank, learners)
        with bank.engine.connect() as conn:
            known = repo.learner_rows(conn, learners)
            missing = sorted(learners - set(known))
            if missing:
                raise NotFoundError(f"unknown learner {missing[0]}", code="learner.unknown")
            existing = repo.decisions_by_applications(
                conn, [r.application_id for r in requests if r.application_id is not None]
            )
            data = load_learners(conn, learners)
        next_number = bank.ledger.head().size
        results: list[Decided | None] = []
        raws: list[bytes] = []
        fresh: list[tuple[int, str, str]] = []  # (result slot, application id, learner)
        taken: set[str] = set()
        for req in requests:
            app_id = req.application_id
            if app_id is not None:
                row = existing.get(app_id)
                if row is not None:
                    if not _same(row, req):
                        raise ConflictError(
                            f"application {app_id} was decided before for another learner, "
                            "target or date",
                            code="conversion.application_conflict",
                        )
                    results.append(Decided(app_id, req.learner_id, int(row.entry_idx), False))
                    continue
                if app_id in taken:
                    raise InvalidInputError(
                        f"application id {app_id} appears twice", code="conversion.bad_application"
                    )
            else:
                app_id = f"APP-{next_number + len(raws):010d}"
                while app_id in taken or app_id in existing:  # pragma: no cover - defensive
                    app_id += "X"
            taken.add(app_id)
            ld = data[req.learner_id]
            app = Application(
                id=app_id,
                learner_id=req.learner_id,
                type=req.type,
                applied_on=req.applied_on,
                program_id=req.program_id,
                certificate_type_id=req.certificate_type_id,
            )
            decision = decide(app, ld.records, ruleset.book, ruleset.catalog, ld.learner_state())
            ld.state = ld.learner_state().apply(decision)
            raws.append(bank.bank_entry(DECIDED, decision_body(decision, ld, ruleset.entry_index)))
            fresh.append((len(results), app_id, req.learner_id))
            results.append(None)
        outcomes = _append(bank, raws, batch_size)
        for (slot, app_id, lid), out in zip(fresh, outcomes, strict=True):
            results[slot] = Decided(app_id, lid, out.index, not out.duplicate)
        if raws:
            _sync(bank)
        return [r for r in results if r is not None]


def _append(bank: Bank, raws: Sequence[bytes], batch_size: int) -> list[AppendOutcome]:
    outcomes: list[AppendOutcome] = []
    for start in range(0, len(raws), batch_size):
        outcomes.extend(bank.ledger.append(raws[start : start + batch_size]))
    return outcomes


def apply(
    bank: Bank,
    learner_id: str,
    *,
    program_id: str | None = None,
    certificate_type_id: str | None = None,
    on: dt.date | None = None,
) -> dict[str, Any]:
    """Decide one application of a learner now (or on ``on``) and return its view.

    Raises:
        as :func:`decide_applications`.
    """
    day = on if on is not None else bank.clock.now().date()
    (got,) = decide_applications(
        bank,
        [ApplicationRequest(learner_id, day, program_id, certificate_type_id)],
    )
    return application_view(bank, got.application_id)


def idempotent_application_id(learner_id: str, key: str) -> str:
    """The application id an ``Idempotency-Key`` stands for: ``IK-`` + 40 hex digits of
    SHA-256(learner id, key). A retry with the same key names the same application, so it is
    answered with the original decision (the key itself is not stored)."""
    digest = hashlib.sha256(f"{learner_id}\0{key}".encode()).hexdigest()
    return f"IK-{digest[:40]}"


#: reads of a decision just appended are retried this often before giving up (the decision is
#: in the log whatever happens; the answer must say so, not "try again")
VIEW_ATTEMPTS: Final = 5
_TRANSIENT: Final[tuple[type[Exception], ...]] = (StorageError, *UNAVAILABLE)


def _view_after_append(bank: Bank, application_id: str) -> dict[str, Any]:
    """The view of a decision that is already committed, retried on a transient storage error
    (a read never hides a written decision behind a 503 while the database recovers).

    Raises:
        StorageError: only if every attempt failed (the decision stays in the log; a retry
            with the same ``Idempotency-Key`` returns it).
    """
    delay = 0.05
    for attempt in range(VIEW_ATTEMPTS):
        try:
            return application_view(bank, application_id)
        except _TRANSIENT:
            if attempt == VIEW_ATTEMPTS - 1:
                raise
            time.sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")  # pragma: no cover


def submit_application(
    bank: Bank,
    learner_id: str,
    *,
    program_id: str | None = None,
    certificate_type_id: str | None = None,
    idempotency_key: str | None = None,
) -> tuple[dict[str, Any], bool]:
    """A learner's application over the API: ``(view, created)``.

    With ``idempotency_key``, a retry returns the original decision (``created`` false),
    whatever day it is retried on; the same key for another target is refused.

    Raises:
        RuleError: ``conversion.idempotency_key_reused`` (the key named another target);
            else as :func:`decide_applications`.
    """
    app_id = None
    if idempotency_key is not None:
        app_id = idempotent_application_id(learner_id, idempotency_key)
        replay = replay_application(
            bank,
            app_id,
            learner_id,
            program_id=program_id,
            certificate_type_id=certificate_type_id,
        )
        if replay is not None:
            return replay, False
    day = bank.clock.now().date()
    (got,) = decide_applications(
        bank,
        [ApplicationRequest(learner_id, day, program_id, certificate_type_id, app_id)],
    )
    return _view_after_append(bank, got.application_id), got.created


def replay_application(
    bank: Bank,
    application_id: str,
    learner_id: str,
    *,
    program_id: str | None,
    certificate_type_id: str | None,
) -> dict[str, Any] | None:
    """The stored decision of ``application_id`` if that learner already applied with it for
    the same target (None: not decided yet).

    Raises:
        RuleError: ``conversion.idempotency_key_reused`` for another learner's or target's.
    """
    ensure_synced(bank)
    with bank.engine.connect() as conn:
        row = repo.decision_by_application(conn, application_id)
    if row is None:
        return None
    if (
        str(row.learner_id) != learner_id
        or row.program_id != program_id
        or row.certificate_type_id != certificate_type_id
    ):
        raise RuleError(
            "this Idempotency-Key was used for another application; use a new key",
            code="conversion.idempotency_key_reused",
        )
    return application_view(bank, application_id)


# -- voids ------------------------------------------------------------------------------------
def _reconcile_locked(
    bank: Bank, learner_ids: Iterable[str] | None, batch_size: int = BATCH
) -> int:
    today = bank.clock.now().date()
    with bank.engine.connect() as conn:
        if learner_ids is None:
            ids: set[str] = {str(r.learner_id) for r in repo.all_decisions(conn)}
        else:
            ids = set(learner_ids)
            with_decisions = {str(r.learner_id) for r in repo.decisions_of_learners(conn, ids)}
            ids &= with_decisions
        if not ids:
            return 0
        data = load_learners(conn, ids)
    pending: list[tuple[tuple[int, int, int], dict[str, Any]]] = []
    for ld in data.values():
        for sd in ld.decisions:
            for n, grant in enumerate(sd.decision.grants):
                if (sd.entry_index, n) in ld.voided:
                    continue
                void = void_of(grant, ld.records, today)
                if void is None:
                    continue
                ref = ld.ref_by_eid[void.outcome_id]
                rev_idx = ld.revocation_entry[void.outcome_id]
                body = {
                    "learner": ld.learner_id,
                    "application_id": sd.decision.application.id,
                    "decision_entry": sd.entry_index,
                    "grant_no": n,
                    "rule_key": grant.rule_key,
                    "rule_version": grant.rule_version,
                    "credits_centi": grant.credits,
                    "voided_at": void.voided_at.isoformat(),
                    "revocation_entry": rev_idx,
                    "owner": ref.owner,
                    "record_id": ref.record_id,
                    "reason": void.void_reason,
                }
                pending.append(((rev_idx, sd.entry_index, n), body))
            exam_void = _exam_void(ld, sd)
            if exam_void is not None:
                pending.append(exam_void)
    if not pending:
        return 0
    pending.sort(key=lambda p: p[0])  # in ledger order of the revocations, then grant order
    raws = [bank.bank_entry(VOIDED, body) for _, body in pending]
    outcomes = _append(bank, raws, batch_size)
    _sync(bank)
    return sum(1 for o in outcomes if not o.duplicate)


def _exam_void(
    ld: LearnerData, sd: StoredDecision
) -> tuple[tuple[int, int, int], dict[str, Any]] | None:
    """The void of a granted exam exemption whose basis record was revoked (issue #8 §4):
    voided like a credit grant, its own ``conversion.voided`` entry with ``exam_exemption``
    set and ``grant_no`` 0 (an exemption decision has no grants), reason and date. The report
    is not affected: it decides exemptions as of their day (docs/conversion.md reading 9)."""
    exam = sd.body.get("exam")
    if not exam or not exam.get("granted") or exam.get("basis") is None or sd.body["grants"]:
        return None
    if (sd.entry_index, 0) in ld.voided:
        return None
    root = ld.eid_by_entry.get(int(exam["basis"]["root_entry"]))
    chain = ld.records.by_root.get(root) if root is not None else None
    if chain is None or chain.root.revoked_at is None or root not in ld.revocation_entry:
        return None
    ref, rev_idx = ld.ref_by_eid[root], ld.revocation_entry[root]
    why = chain.root.revocation_reason or "revoked"
    body = {
        "learner": ld.learner_id,
        "application_id": sd.decision.application.id,
        "decision_entry": sd.entry_index,
        "grant_no": 0,
        "rule_key": exam["rule_key"],
        "rule_version": exam["rule_version"],
        "credits_centi": 0,
        "voided_at": chain.root.revoked_at.isoformat(),
        "revocation_entry": rev_idx,
        "owner": ref.owner,
        "record_id": ref.record_id,
        "reason": f"basis record {ref.record_id} revoked: {why}",
        "exam_exemption": True,
    }
    return (rev_idx, sd.entry_index, 0), body


def reconcile_voids(bank: Bank, learner_ids: Iterable[str] | None = None) -> int:
    """Post a ``conversion.voided`` entry for every grant a recorded revocation voids and that
    has none yet (all learners, or the given ones). Idempotent; returns how many were posted.
    """
    with conversion_lock(bank):
        _sync(bank)
        return _reconcile_locked(bank, learner_ids)


def on_records_appended(
    bank: Bank, raws: Sequence[bytes], outcomes: Sequence[AppendOutcome]
) -> int:
    """After record entries were appended: post the voids their revocations imply.

    Returns how many voids were posted (0 without new ``record.revoked`` entries).
    """
    idxs = [
        out.index
        for raw, out in zip(raws, outcomes, strict=True)
        if not out.duplicate and parse_entry(raw).type == "record.revoked"
    ]
    if not idxs:
        return 0
    with bank.engine.connect() as conn:
        data = repo.entry_data(conn, idxs)
        learners: set[str] = set()
        for raw in data.values():
            e = json.loads(raw)
            owner = str(e["body"].get("on_behalf_of") or e["issuer"])
            rows = repo.records_of_owner_ids(conn, owner, [str(e["body"]["record_id"])])
            learners.update(str(r.learner_id) for r in rows)
    if not learners:
        return 0
    return reconcile_voids(bank, learners)


def after_records_posted(
    bank: Bank, raws: Sequence[bytes], outcomes: Sequence[AppendOutcome]
) -> None:
    """The hook run right after a batch of record entries is appended: posts the voids its
    revocations imply. Never raises (the records are already committed): a failure is logged,
    and the voids are posted by the next reconciliation (every decision of the learner
    reconciles first)."""
    try:
        on_records_appended(bank, raws, outcomes)
    except Exception:  # the post succeeded; voids are completed later
        log.exception("posting the voids implied by revocations failed; will retry later")


# -- views ------------------------------------------------------------------------------------
def _number(centi: Any) -> int | float | None:
    return None if centi is None else centi_to_number(int(centi))


def _source_view(s: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "record_id": s["record_id"],
        "owner": s["owner"],
        "entry_index": s["entry"],
        "root_record_id": s["root_record_id"],
        "root_entry_index": s["root_entry"],
    }


def body_view(
    body: Mapping[str, Any],
    *,
    entry_index: int | None,
    decided_at: str | None,
    voided: Mapping[tuple[int, int], tuple[str, int]] | None = None,
) -> dict[str, Any]:
    """The API/CLI view of a decision body (credits as numbers, grant status as of now)."""
    grants = []
    for n, g in enumerate(body["grants"]):
        void = (voided or {}).get((entry_index, n)) if entry_index is not None else None
        grants.append(
            {
                "grant_no": n,
                "rule_key": g["rule_key"],
                "rule_version": g["rule_version"],
                "mode": g["mode"],
                "target_course_id": g.get("target_course_id"),
                "credits": _number(g["credits_centi"]),
                "nominal_credits": _number(g["nominal_centi"]),
                "bound_by": g.get("bound_by"),
                "hours_used": _number(g.get("hours_used_centi")),
                "raw_credits": _number(g.get("raw_credits_centi")),
                "sources": [_source_view(s) for s in g["sources"]],
                "status": "voided" if void else "active",
                "voided_at": void[0] if void else None,
                "void_entry_index": void[1] if void else None,
                "explanation_zh": g["explanation_zh"],
                "explanation_en": g["explanation_en"],
            }
        )
    exam = body.get("exam")
    exam_view = None
    if exam is not None:
        exam_view = {
            k: exam[k]
            for k in ("certificate_type_id", "granted", "exam_part", "rule_key", "rule_version")
        }
        exam_view["basis"] = None if exam.get("basis") is None else _source_view(exam["basis"])
    return {
        "application_id": body["application_id"],
        "learner_id": body["learner"],
        "type": body["type"],
        "program_id": body.get("program_id"),
        "certificate_type_id": body.get("certificate_type_id"),
        "applied_on": body["applied_on"],
        "recorded": entry_index is not None,
        "entry_index": entry_index,
        "decided_at": decided_at,
        "rules_entry": body["rules_entry"],
        "reason": body["reason"],
        "credits_granted": _number(body["credits_centi"]),
        "explanation_zh": body["explanation_zh"],
        "explanation_en": body["explanation_en"],
        "grants": grants,
        "rule_notes": [
            {
                "rule_key": n["rule_key"],
                "rule_version": n["rule_version"],
                "mode": n["mode"],
                "reason": n["reason"],
                "bound_by": n.get("bound_by"),
                "records": n["records"],
                "explanation_zh": n["explanation_zh"],
                "explanation_en": n["explanation_en"],
            }
            for n in body["rule_notes"]
        ],
        "record_notes": [dict(n) for n in body["record_notes"]],
        "exam": exam_view,
    }


def application_view(
    bank: Bank, application_id: str, *, learner_id: str | None = None
) -> dict[str, Any]:
    """One decided application with its grants, their status and the explanations.

    With ``learner_id``, another learner's application is reported as unknown.

    Raises:
        NotFoundError: ``conversion.unknown_application``.
    """
    ensure_synced(bank)
    with bank.engine.connect() as conn:
        row = repo.decision_by_application(conn, application_id)
        if row is None or (learner_id is not None and str(row.learner_id) != learner_id):
            raise NotFoundError(
                f"no application {application_id}", code="conversion.unknown_application"
            )
        idx = int(row.entry_idx)
        body = json.loads(repo.entry_data(conn, [idx])[idx])["body"]
        voided = {
            (int(v.decision_idx), int(v.grant_no)): (str(v.voided_at), int(v.entry_idx))
            for v in repo.voids_of_learners(conn, [str(row.learner_id)])
            if int(v.decision_idx) == idx
        }
    return body_view(body, entry_index=idx, decided_at=str(row.decided_at), voided=voided)


def list_applications(bank: Bank, learner_id: str) -> list[dict[str, Any]]:
    """Every decided application of a learner, in decision order, with explanations."""
    ensure_synced(bank)
    with bank.engine.connect() as conn:
        rows = repo.decisions_of_learners(conn, [learner_id])
        data = repo.entry_data(conn, [int(r.entry_idx) for r in rows])
        voided = {
            (int(v.decision_idx), int(v.grant_no)): (str(v.voided_at), int(v.entry_idx))
            for v in repo.voids_of_learners(conn, [learner_id])
        }
    return [
        body_view(
            json.loads(data[int(r.entry_idx)])["body"],
            entry_index=int(r.entry_idx),
            decided_at=str(r.decided_at),
            voided=voided,
        )
        for r in rows
    ]


def what_if(
    bank: Bank,
    learner_id: str,
    *,
    program_id: str | None = None,
    certificate_type_id: str | None = None,
    on: dt.date | None = None,
) -> dict[str, Any]:
    """What an application would get today (or on ``on``), recording nothing.

    Raises:
        InvalidInputError, NotFoundError, RuleError: as :func:`decide_applications`.
    """
    ensure_synced(bank)
    ruleset = _require_rules(bank)
    day = on if on is not None else bank.clock.now().date()
    req = ApplicationRequest(learner_id, day, program_id, certificate_type_id, "what-if")
    _check_request(req, ruleset, bank.clock.now().date())
    with bank.engine.connect() as conn:
        if not repo.learner_rows(conn, [learner_id]):
            raise NotFoundError(f"unknown learner {learner_id}", code="learner.unknown")
        ld = load_learners(conn, [learner_id])[learner_id]
    decision = preview(
        ld.records,
        ruleset.book,
        ruleset.catalog,
        ld.learner_state(),
        on=day,
        program_id=program_id,
        certificate_type_id=certificate_type_id,
    )
    body = decision_body(decision, ld, ruleset.entry_index)
    return body_view(body, entry_index=None, decided_at=None)


# -- the report -------------------------------------------------------------------------------
_NATURAL = re.compile(r"(\d+)")


def _natural(text: str) -> tuple[Any, ...]:
    return tuple(int(p) if p.isdigit() else p for p in _NATURAL.split(text))


@dataclass(frozen=True, slots=True)
class _Ids:
    """How bank ids print in a report: a dataset's own ids where it was imported."""

    learners: Mapping[str, str]  # bank learner id -> printed id
    records: Mapping[tuple[str, str], str]  # (owner, record id) -> printed id
    applications: Mapping[str, str]  # application id -> printed id


def _dataset_ids(conn: Connection, dataset: str) -> tuple[list[str], _Ids]:
    learners: dict[str, str] = {}
    records: dict[tuple[str, str], str] = {}
    applications: dict[str, str] = {}
    for r in repo.dataset_ref_rows(conn, dataset):
        if r.kind == "learner":
            learners[str(r.learner_id)] = str(r.ref)
        elif r.kind == "record":
            records[(str(r.owner), str(r.record_id))] = str(r.ref)
        elif r.kind == "application":
            applications[str(r.record_id)] = str(r.ref)
    if not learners:
        raise NotFoundError(f"no dataset named {dataset} was imported", code="report.dataset")
    order = sorted(learners, key=lambda lid: _natural(learners[lid]))
    return order, _Ids(learners, records, applications)


def conversion_report(
    bank: Bank,
    as_of: dt.date,
    *,
    dataset: str | None = None,
    explanations: bool = False,
) -> dict[str, Any]:
    """The conversion report as of a date: the structure of ``sample/expected.json``.

    Built from what the bank stores: the ``conversion.decided`` entries (each grant as decided,
    never recomputed), the record projections and entry bodies (revocations decide status and
    ``voided_at``, rule 10) and the catalogue of the publication in force (native credits).

    Args:
        dataset: print that imported dataset's learners with its own learner, outcome and
            application ids (learners in natural order of their ids); ``None``: the only
            dataset imported if there is exactly one, else every learner with bank ids;
            ``""``: every learner with bank ids.
        explanations: add the zh/en explanations to grants and exam exemptions.

    Raises:
        NotFoundError: ``report.dataset`` for a dataset that was never imported.
    """
    ensure_synced(bank)
    ruleset = current_rules(bank)
    catalog = ruleset.catalog if ruleset is not None else Catalog.build()
    with bank.engine.connect() as conn:
        if dataset is None:
            names = repo.dataset_names(conn)
            dataset = names[0] if len(names) == 1 else ""
        if dataset:
            learner_ids, ids = _dataset_ids(conn, dataset)
        else:
            learner_ids = sorted(repo.all_learner_ids(conn))
            ids = _Ids({}, {}, {})
        data = load_learners(conn, learner_ids)
    decisions = [sd.decision for lid in learner_ids for sd in data[lid].decisions]
    report = build_report(
        as_of,
        learner_ids,
        decisions,
        {lid: ld.records for lid, ld in data.items()},
        catalog,
        include_explanations=explanations,
    )
    for entry in report["learners"]:
        _rename(entry, data[entry["learner_id"]], ids)
    return report


def _rename(entry: dict[str, Any], ld: LearnerData, ids: _Ids) -> None:
    """Replace bank ids by printed ids in one learner's report entry."""

    def record(eid: str | None) -> str | None:
        if eid is None:
            return None
        ref = ld.ref_by_eid.get(eid)
        if ref is None:
            return eid
        return ids.records.get((ref.owner, ref.record_id), eid)

    learner = ids.learners.get(ld.learner_id, ld.learner_id)
    entry["learner_id"] = learner
    for app in entry["applications"]:
        app["application_id"] = ids.applications.get(app["application_id"], app["application_id"])
        if "learner_id" in app:
            app["learner_id"] = learner
        if "basis_outcome_id" in app:
            app["basis_outcome_id"] = record(app["basis_outcome_id"])
        for g in app.get("grants", ()):
            g["learner_id"] = learner
            g["application_id"] = app["application_id"]
            g["outcome_ids"] = [record(o) for o in g["outcome_ids"]]
            g["effective_version_ids"] = [record(o) for o in g["effective_version_ids"]]


def parse_date(text: str, what: str = "date") -> dt.date:
    """An ISO calendar date.

    Raises:
        InvalidInputError: ``conversion.bad_date``.
    """
    try:
        return dt.date.fromisoformat(text) if len(text) == 10 else _bad_date(text, what)
    except ValueError:
        return _bad_date(text, what)


def _bad_date(text: str, what: str) -> dt.date:
    raise InvalidInputError(f"{what} must be YYYY-MM-DD, not {text!r}", code="conversion.bad_date")


def resolve_learner_ref(bank: Bank, ref: str) -> str:
    """A learner given as the bank's id (``LRN-…``) or as an imported dataset's id.

    Raises:
        NotFoundError: ``learner.unknown`` (or ambiguous across datasets).
    """
    with bank.engine.connect() as conn:
        if repo.learner_rows(conn, [ref]):
            return ref
        rows = repo.learner_by_external_ref(conn, ref)
    if len(rows) == 1:
        return str(rows[0].learner_id)
    detail = "is ambiguous" if rows else "is not a learner id or an imported learner's id"
    raise NotFoundError(f"learner {ref} {detail}", code="learner.unknown")


__all__ = [
    "ApplicationRequest",
    "Decided",
    "LearnerData",
    "Publication",
    "PublishResult",
    "RuleSet",
    "after_records_posted",
    "application_view",
    "apply",
    "conversion_lock",
    "conversion_report",
    "current_rules",
    "decide_applications",
    "decision_body",
    "ensure_synced",
    "list_applications",
    "load_learners",
    "on_records_appended",
    "parse_date",
    "parse_rules_document",
    "publish_rules",
    "reconcile_voids",
    "replay_application",
    "resolve_learner_ref",
    "rule_from_wire",
    "rule_to_wire",
    "submit_application",
    "what_if",
]
