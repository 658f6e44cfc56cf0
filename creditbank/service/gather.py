"""Gather what a transcript or certificate shows, from the log and projections, into the
credential core's content model (:mod:`creditbank.core.credentials.model`).

Records: the current version of each of the learner's record chains (duplicates of another
chain left out), with its state (current, corrected, revoked, expired as of the issuing day),
the name on record and the learner's salt, the owner's names and the custodian of a closed
owner. Conversions: every decision of the learner with its grants, explanations and voids;
exam exemptions with their basis and void. Totals: granted credits per programme against its
cap. Every record and decision comes with its inclusion proof against ONE checkpoint: the
latest published one (published first when it does not yet contain them all).

What a document covers, for its status bit (:func:`covered_items`): the records shown that are
not revoked (by chain), the grants shown that are not voided, their source chains, and each
decision shown. A revocation or void of any of them later sets the document's bit.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from sqlalchemy.engine import Connection

from creditbank.core import merkle
from creditbank.core.credentials.model import (
    CertificateContent,
    ConversionItem,
    CourseRef,
    ExamExemptionItem,
    GrantItem,
    Holder,
    InstitutionRef,
    LedgerEvidence,
    ProgramRef,
    ProgramTotal,
    RecordEvidence,
    RecordItem,
    TranscriptContent,
    Voided,
)
from creditbank.core.registry import Registry
from creditbank.errors import ConflictError, InvalidInputError, NotFoundError
from creditbank.service.bank import Bank
from creditbank.service.conversion import RuleSet, current_rules
from creditbank.service.records import ChainState, learner_chains
from creditbank.storage import conversion_repo as cr
from creditbank.storage import ledger_repo
from creditbank.storage import records_repo as rr

#: most records one transcript may show
MAX_RECORDS: Final = 500


@dataclass(frozen=True, slots=True)
class Gathered:
    """A document's content, what it covers (for the status bit) and its checkpoint size."""

    content: TranscriptContent | CertificateContent
    items: tuple[dict[str, Any], ...]
    checkpoint_size: int
    item_count: int


@dataclass
class _Proofs:
    """Inclusion proofs of many entries against one published checkpoint."""

    bank: Bank
    size: int
    note: str
    cache: dict[int, LedgerEvidence] = field(default_factory=dict)

    paths: dict[int, tuple[bytes, ...]] = field(default_factory=dict)

    def load(self, idxs: Iterable[int]) -> None:
        """Every inclusion path at once: one read of all the stored nodes they need."""
        plans = {i: merkle.inclusion_plan(i, self.size) for i in set(idxs) if i not in self.paths}
        if not plans:
            return
        ids = list(dict.fromkeys(n for plan in plans.values() for n in merkle.plan_nodes(plan)))
        with self.bank.engine.connect() as conn:
            nodes = ledger_repo.fetch_nodes(conn, ids)
        for i, plan in plans.items():
            self.paths[i] = tuple(merkle.assemble(plan, nodes))

    def evidence(self, idx: int, entry: bytes) -> LedgerEvidence:
        got = self.cache.get(idx)
        if got is None:
            self.load([idx])
            got = self.cache[idx] = LedgerEvidence(
                entry, idx, self.size, self.paths[idx], self.note
            )
        return got


def _checkpoint(bank: Bank, needed: int) -> _Proofs:
    """The latest published checkpoint, published now if it does not contain ``needed``."""
    with bank.engine.connect() as conn:
        cp = ledger_repo.latest_checkpoint(conn)
    if cp is None or cp.size <= needed:
        bank.ledger.publish()
        cp = bank.ledger.latest_checkpoint()
    return _Proofs(bank, cp.size, cp.note)


def _inst(registry: Registry, iid: str) -> InstitutionRef:
    st = registry.institutions.get(iid)
    if st is None:
        return InstitutionRef(iid, iid, iid)
    return InstitutionRef(iid, st.name_zh, st.name_en)


@dataclass
class _Catalog:
    """Display names from the rules publication in force (empty without one)."""

    courses: dict[str, tuple[str, str]] = field(default_factory=dict)
    programs: dict[str, tuple[str, str, str, int | None]] = field(default_factory=dict)
    trainings: dict[str, tuple[str, str]] = field(default_factory=dict)
    certs: dict[str, tuple[str, str, str, str]] = field(default_factory=dict)

    @classmethod
    def of(cls, ruleset: RuleSet | None) -> _Catalog:
        out = cls()
        if ruleset is None:
            return out
        pub = ruleset.publication
        for dp in pub.degree_programs:
            for c in dp.courses:
                out.courses.setdefault(c.id, (c.name_zh, c.name_en))
        for sp in pub.source_programs:
            for c in sp.courses:
                out.courses.setdefault(c.id, (c.name_zh, c.name_en))
        for dp in pub.degree_programs:
            out.programs[dp.id] = (
                dp.name_zh,
                dp.name_en,
                dp.institution_id,
                dp.max_converted_credits,
            )
        for t in pub.training_programs:
            out.trainings[t.id] = (t.name_zh, t.name_en)
        for ct in pub.certificate_types:
            out.certs[ct.id] = (
                ct.occupation_zh,
                ct.occupation_en,
                ct.level_label_zh or "",
                ct.level_label_en or "",
            )
        return out


def _titles(
    kind: str, payload: Mapping[str, Any], cat: _Catalog
) -> tuple[str | None, str | None, str | None, str | None]:
    """(title_zh, title_en, subtitle_zh, subtitle_en) of a record."""
    if kind == "academic_credit":
        zh, en = cat.courses.get(str(payload.get("course_id")), ("", ""))
        return payload.get("course_name_zh") or zh or None, en or None, None, None
    if kind == "skill_certificate":
        occ_zh, occ_en, lvl_zh, lvl_en = cat.certs.get(
            str(payload.get("certificate_type_id")), ("", "", "", "")
        )
        return (
            occ_zh or str(payload.get("occupation") or "") or None,
            occ_en or None,
            payload.get("level_label_zh") or lvl_zh or None,
            lvl_en or None,
        )
    if kind == "training_hours":
        zh, en = cat.trainings.get(str(payload.get("training_program_id")), ("", ""))
        return payload.get("training_name_zh") or zh or None, en or None, None, None
    if kind == "competition_award":
        return str(payload.get("competition") or "") or None, None, None, None
    if kind == "work_experience":
        return str(payload.get("employer") or "") or None, None, None, None
    return None, None, None, None


@dataclass
class _Learner:
    """One learner's records and decisions as stored, read in a few queries."""

    learner_id: str
    holder: Holder
    chains: list[ChainState]
    data: dict[int, bytes]
    names: dict[int, str | None]
    decisions: list[Any]
    voids: dict[tuple[int, int], Any]


def _load(conn: Connection, learner_id: str) -> _Learner:
    person = rr.get_learner(conn, learner_id)
    if person is None:
        raise NotFoundError(f"unknown learner {learner_id}", code="learner.unknown")
    if person.erased_at is not None or person.salt is None or not person.name:
        raise ConflictError(
            f"learner {learner_id}'s personal data was erased: no document can be issued",
            code="learner.erased",
        )
    chains = [c for c in learner_chains(conn, learner_id) if c.duplicate_of is None]
    decisions = cr.decisions_of_learners(conn, [learner_id])
    voids = {
        (int(v.decision_idx), int(v.grant_no)): v for v in cr.voids_of_learners(conn, [learner_id])
    }
    idxs = [c.current_index for c in chains] + [int(d.entry_idx) for d in decisions]
    idxs += [int(v.entry_idx) for v in voids.values()]
    data = cr.entry_data(conn, idxs)
    names = rr.names_for(conn, [c.current_index for c in chains])
    return _Learner(
        learner_id,
        Holder(learner_id, str(person.name), bytes(person.salt)),
        chains,
        data,
        names,
        decisions,
        voids,
    )


class _Builder:
    """Turns stored rows into content-model items (one checkpoint for all proofs)."""

    def __init__(self, bank: Bank, ld: _Learner, today: dt.date) -> None:
        self.bank, self.ld, self.today = bank, ld, today
        self.registry = bank.ledger.registry()
        self.catalog = _Catalog.of(current_rules(bank))
        self.proofs: _Proofs | None = None
        self.chain_by_entry: dict[int, ChainState] = {}
        for ch in ld.chains:
            for v in ch.versions:
                self.chain_by_entry[v] = ch

    def prove(self, idxs: Iterable[int]) -> None:
        wanted = list(idxs)
        self.proofs = _checkpoint(self.bank, max(wanted, default=0))
        self.proofs.load(wanted)

    def _evidence(self, idx: int) -> LedgerEvidence:
        return self._proved().evidence(idx, self.ld.data[idx])

    def _proved(self) -> _Proofs:
        if self.proofs is None:
            raise RuntimeError("prove() before building items")
        return self.proofs

    @property
    def size(self) -> int:
        """The checkpoint size every proof is against."""
        return self._proved().size

    def record(self, ch: ChainState) -> RecordItem:
        idx = ch.current_index
        raw = self.ld.data[idx]
        body = json.loads(raw)["body"]
        name = self.ld.names.get(idx)
        if not name:
            raise ConflictError(
                f"record {ch.owner}/{ch.current_record_id} has no name on record with the bank,"
                " so its name commitment cannot be shown",
                code="document.no_name_on_record",
            )
        ev = self._evidence(idx)
        evidence = RecordEvidence(
            ev.entry, ev.leaf_index, ev.tree_size, ev.inclusion_path, ev.checkpoint,
            name_on_record=name, salt=self.ld.holder.salt,
        )  # fmt: skip
        owner = self.registry.institutions.get(ch.owner)
        custodian = None
        if owner is not None and owner.closed_on is not None and owner.custodian:
            custodian = _inst(self.registry, owner.custodian)
        payload = body.get("payload") or {}
        t_zh, t_en, s_zh, s_en = _titles(ch.kind, payload, self.catalog)
        if ch.revoked:
            state = "revoked"
        elif ch.kind == "skill_certificate" and _expired(payload, self.today):
            state = "expired"
        elif ch.current_index != ch.root_index:
            state = "corrected"
        else:
            state = "current"
        return RecordItem(
            entry_idx=idx,
            institution=_inst(self.registry, ch.owner),
            custodian=custodian,
            kind=ch.kind,  # type: ignore[arg-type]  # a stored record kind
            record_id=ch.current_record_id,
            achieved_on=dt.date.fromisoformat(str(body["achieved_on"])),
            title_zh=t_zh,
            title_en=t_en,
            subtitle_zh=s_zh,
            subtitle_en=s_en,
            state=state,  # type: ignore[arg-type]
            evidence=evidence,
            revoked_on=dt.date.fromisoformat(ch.revoked_on) if ch.revoked_on else None,
            revocation_reason=ch.revocation_reason if ch.revoked else None,
        )

    def _voided(self, key: tuple[int, int]) -> Voided | None:
        v = self.ld.voids.get(key)
        if v is None:
            return None
        body = json.loads(self.ld.data[int(v.entry_idx)])["body"]
        return Voided(
            dt.date.fromisoformat(str(v.voided_at)), str(body["reason"]), int(v.entry_idx)
        )

    def conversion(self, row: Any) -> ConversionItem:
        idx = int(row.entry_idx)
        body = json.loads(self.ld.data[idx])["body"]
        grants = []
        for n, g in enumerate(body["grants"]):
            course = g.get("target_course_id")
            names = self.catalog.courses.get(str(course), (str(course), str(course)))
            grants.append(
                GrantItem(
                    grant_no=n,
                    rule_key=str(g["rule_key"]),
                    rule_version=int(g["rule_version"]),
                    mode=str(g["mode"]),
                    credits_centi=int(g["credits_centi"]),
                    target_course=None if course is None else CourseRef(str(course), *names),
                    source_entries=tuple(int(s["entry"]) for s in g["sources"]),
                    explanation_zh=str(g["explanation_zh"]),
                    explanation_en=str(g["explanation_en"]),
                    voided=self._voided((idx, n)),
                )
            )
        exam = None
        if body.get("exam") is not None:
            e = body["exam"]
            exam = ExamExemptionItem(
                certificate_type_id=str(e["certificate_type_id"]),
                granted=bool(e["granted"]),
                exam_part=e["exam_part"],
                rule_key=e["rule_key"],
                rule_version=e["rule_version"],
                basis_entry=None if e["basis"] is None else int(e["basis"]["entry"]),
                voided=self._voided((idx, 0)) if not body["grants"] else None,
            )
        return ConversionItem(
            entry_idx=idx,
            application_id=str(body["application_id"]),
            type=body["type"],
            program=self._program(body),
            applied_on=dt.date.fromisoformat(str(body["applied_on"])),
            reason=str(body["reason"]),
            credits_centi=int(body["credits_centi"]),
            explanation_zh=str(body["explanation_zh"]),
            explanation_en=str(body["explanation_en"]),
            grants=tuple(grants),
            evidence=self._evidence(idx),
            exam=exam,
        )

    def _program(self, body: Mapping[str, Any]) -> ProgramRef:
        pid = body.get("program_id")
        if pid is not None:
            zh, en, inst, _ = self.catalog.programs.get(str(pid), (str(pid), str(pid), "", None))
            return ProgramRef(str(pid), zh, en, _inst(self.registry, inst) if inst else None)
        ct = str(body.get("certificate_type_id") or "")
        occ_zh, occ_en, lvl_zh, lvl_en = self.catalog.certs.get(ct, (ct, ct, "", ""))
        return ProgramRef(ct, f"{occ_zh}{lvl_zh}", f"{occ_en} {lvl_en}".strip() or ct)

    def totals(self, conversions: Sequence[ConversionItem]) -> tuple[ProgramTotal, ...]:
        granted: dict[str, int] = {}
        refs: dict[str, ProgramRef] = {}
        for c in conversions:
            if c.type != "credit_conversion":
                continue
            pid = c.program.program_id
            refs[pid] = c.program
            granted[pid] = granted.get(pid, 0) + sum(
                g.credits_centi for g in c.grants if g.voided is None
            )
        out = []
        for pid, total in granted.items():
            cap = self.catalog.programs.get(pid, ("", "", "", None))[3]
            if cap is None:  # no cap: nothing to show against it
                continue
            out.append(ProgramTotal(refs[pid], total, cap, max(cap - total, 0)))
        return tuple(out)


def _expired(payload: Mapping[str, Any], today: dt.date) -> bool:
    exp = payload.get("expires_on")
    return isinstance(exp, str) and dt.date.fromisoformat(exp) < today


def _covered(
    records: Sequence[RecordItem],
    chains: Mapping[int, ChainState],
    conversions: Sequence[ConversionItem],
    decision_bodies: Mapping[int, Mapping[str, Any]],
) -> tuple[dict[str, Any], ...]:
    """The items a later revocation or void flips the document for (see the module doc)."""
    out: list[dict[str, Any]] = []
    seen: set[tuple[Any, ...]] = set()

    def add(item: str, idx: int, grant_no: int | None, owner: str | None, root: str | None) -> None:
        key = (item, idx, grant_no, owner, root)
        if key not in seen:
            seen.add(key)
            out.append(
                {"item": item, "entry_idx": idx, "grant_no": grant_no, "owner": owner,
                 "chain_root": root}
            )  # fmt: skip

    for r in records:
        if r.state != "revoked":
            ch = chains[r.entry_idx]
            add("record", r.entry_idx, None, ch.owner, ch.root_record_id)
    for c in conversions:
        body = decision_bodies[c.entry_idx]
        active = [g for g in c.grants if g.voided is None]
        exam_active = c.exam is not None and c.exam.granted and c.exam.voided is None
        if not active and not exam_active:
            continue
        if exam_active:
            add("decision", c.entry_idx, None, None, None)
        sources: list[Mapping[str, Any]] = []
        for g in active:
            add("grant", c.entry_idx, g.grant_no, None, None)
            sources.extend(body["grants"][g.grant_no]["sources"])
        if exam_active and body["exam"]["basis"] is not None:
            sources.append(body["exam"]["basis"])
        for s in sources:
            add("basis", int(s["entry"]), None, str(s["owner"]), str(s["root_record_id"]))
    return tuple(out)


def _pick(ld: _Learner, record_indices: Sequence[int] | None) -> list[ChainState]:
    if record_indices is None:
        return list(ld.chains)
    if not record_indices:
        raise InvalidInputError("choose at least one record", code="document.no_records")
    if len(record_indices) > MAX_RECORDS:
        raise InvalidInputError(
            f"at most {MAX_RECORDS} records per document", code="document.too_many_records"
        )
    by_entry = {v: ch for ch in ld.chains for v in ch.versions}
    picked: dict[tuple[str, str], ChainState] = {}
    for i in record_indices:
        if isinstance(i, bool) or not isinstance(i, int):
            raise InvalidInputError("record indices are integers", code="document.record_index")
        ch = by_entry.get(i)
        if ch is None:  # not found or not this learner's: the same answer (no oracle)
            raise NotFoundError(f"no record at index {i}", code="document.record_not_found")
        picked[(ch.owner, ch.root_record_id)] = ch
    return sorted(picked.values(), key=lambda c: c.root_index)


def gather_transcript(
    bank: Bank, learner_id: str, record_indices: Sequence[int] | None = None
) -> Gathered:
    """A transcript of all the learner's records (or the chosen ones) and conversions.

    A subset shows the chosen records and the decisions whose every source record is among
    them. Any index (root or correction) of a chain chooses the chain; its current version is
    shown.

    Raises:
        NotFoundError: ``learner.unknown``; ``document.record_not_found`` for an index that is
            not one of the learner's records (the same for one that does not exist).
        ConflictError: ``learner.erased``; ``document.no_name_on_record``.
        InvalidInputError: ``document.no_records``, ``document.too_many_records``,
            ``document.record_index``, ``document.empty`` (nothing to show).
    """
    with bank.engine.connect() as conn:
        ld = _load(conn, learner_id)
    chains = _pick(ld, record_indices)
    if len(chains) > MAX_RECORDS:
        raise InvalidInputError(
            f"at most {MAX_RECORDS} records per document", code="document.too_many_records"
        )
    b = _Builder(bank, ld, bank.clock.now().date())
    shown = {v for ch in chains for v in ch.versions}
    bodies = {int(d.entry_idx): json.loads(ld.data[int(d.entry_idx)])["body"] for d in ld.decisions}
    decisions = [
        d
        for d in ld.decisions
        if record_indices is None or _sources(bodies[int(d.entry_idx)]) <= shown
    ]
    if not chains and not decisions:
        raise InvalidInputError(
            f"learner {learner_id} has no records to put on a transcript", code="document.empty"
        )
    b.prove([c.current_index for c in chains] + [int(d.entry_idx) for d in decisions])
    records = tuple(b.record(ch) for ch in chains)
    conversions = tuple(b.conversion(d) for d in decisions)
    content = TranscriptContent(
        holder=ld.holder,
        records=records,
        conversions=conversions,
        totals=b.totals(conversions),
        complete=record_indices is None,
    )
    by_current = {ch.current_index: ch for ch in chains}
    return Gathered(
        content,
        _covered(records, by_current, conversions, bodies),
        b.size,
        len(records) + len(conversions),
    )


def _sources(body: Mapping[str, Any]) -> set[int]:
    out = {int(s["entry"]) for g in body["grants"] for s in g["sources"]}
    exam = body.get("exam")
    if exam is not None and exam.get("basis") is not None:
        out.add(int(exam["basis"]["entry"]))
    return out


def gather_certificate(
    bank: Bank, learner_id: str, *, record: int | None = None, decision: int | None = None
) -> Gathered:
    """A certificate of one of the learner's records or decisions.

    Raises:
        InvalidInputError: ``document.certificate_subject`` unless exactly one of ``record``
            and ``decision`` is given.
        NotFoundError: ``learner.unknown``; ``document.record_not_found`` /
            ``document.decision_not_found`` (also for another learner's).
        ConflictError: ``learner.erased``; ``document.no_name_on_record``;
            ``document.revoked_subject`` for a revoked record or a wholly voided decision.
    """
    if (record is None) == (decision is None):
        raise InvalidInputError(
            "a certificate is of one record or one decision", code="document.certificate_subject"
        )
    for v in (record, decision):
        if v is not None and (isinstance(v, bool) or not isinstance(v, int)):
            raise InvalidInputError("entry indices are integers", code="document.record_index")
    with bank.engine.connect() as conn:
        ld = _load(conn, learner_id)
    b = _Builder(bank, ld, bank.clock.now().date())
    if record is not None:
        (ch,) = _pick(ld, [record])
        if ch.revoked:
            raise ConflictError(
                f"record {ch.owner}/{ch.root_record_id} is revoked", code="document.revoked_subject"
            )
        b.prove([ch.current_index])
        item = b.record(ch)
        return Gathered(
            CertificateContent(ld.holder, record=item),
            _covered([item], {ch.current_index: ch}, [], {}),
            b.size,
            1,
        )
    row = next((d for d in ld.decisions if int(d.entry_idx) == decision), None)
    if row is None:
        raise NotFoundError(f"no decision at index {decision}", code="document.decision_not_found")
    idx = int(row.entry_idx)
    body = json.loads(ld.data[idx])["body"]
    b.prove([idx])
    conv = b.conversion(row)
    covered = _covered([], {}, [conv], {idx: body})
    if not covered:
        raise ConflictError(
            f"decision {idx} grants nothing that is still in force",
            code="document.revoked_subject",
        )
    return Gathered(CertificateContent(ld.holder, conversion=conv), covered, b.size, 1)
