"""Import a dataset in the sample layout through the signed ledger path (``creditbank import``).

The layout is that of the bundled synthetic sample (``creditbank/data/sample``): every file is
imported (see :data:`STEPS`) except ``expected.json``, the oracle, which is listed as skipped.

Every outcome enters the log exactly as an institution's post would, through
:meth:`creditbank.service.ledger.Ledger.append` and its record validator:

* institutions not yet registered are registered by the bank, each with its own Ed25519 key
  created in ``$CREDITBANK_HOME/keys/institutions/<ID>.key`` (mode 0600);
* learners are resolved by the dataset's pre-hashed identity (``id_document.hash``), which
  stays out of the log like the names (docs/trust-model.md);
* each outcome becomes a ``record.posted`` (or ``record.corrected``) entry signed by its
  poster's own key: the issuing institution; the bank with ``claimed_issuer`` for a learner's
  own upload (``posted_by`` = the learner); the records custodian with ``on_behalf_of`` for a
  post made after the issuer closed. The plain ``name_on_record`` travels beside the entry
  (``extras``) into the personal-data tables;
* revocations (``revoked_at`` on a chain root) are ``record.revoked`` entries with the reason
  and ``effective_on`` = ``revoked_at``, signed by the record's owner or, once it has closed,
  its custodian; ``revoked_at`` on a correction has no effect (sample rule 10) and is skipped;
* the dataset's closures (``closed_on``) are ``institution.closed`` entries.

Events are appended in the dataset's timeline order, (claimed date, phase, id) with phases
post < revocation < closure < custodian action on the same day, so that an institution's own
posts precede its closure and its custodian's follow it; a correction or revocation never
precedes the record it names. Bodies keep the claimed dates (``achieved_on``, ``posted_at``,
``effective_on``); each entry's ``at`` is the bank clock at ingestion.

Re-running is idempotent. Records already present are re-signed (new ``at``) and re-sent; the
validator answers identical content as a duplicate of the original entry and other content as
``record.conflict``. An entry whose signer has closed since cannot be re-sent (the validator
refuses a closed institution's own posts); its body is compared with the stored projection
instead (same digest → already present, else ``record.conflict``).

Conversions (:mod:`creditbank.service.conversion`) follow the records:

* ``conversion_rules.json`` with ``programs.json`` and ``certificate_types.json`` is published
  as one bank-signed ``rules.published`` entry (validated first; skipped when equal to the
  publication in force);
* ``applications.json`` is decided in rule-0 order (``applied_on``, then id), each decision
  dated ``applied_on`` (its entry's ``at`` is the bank clock) and appended as a
  ``conversion.decided`` entry; an application already decided is not decided again;
* the voids that the dataset's revocations imply are posted as ``conversion.voided`` entries.

What each dataset id became is kept in ``dataset_refs`` (:func:`dataset_refs`); an application
id maps to its decision entry (kind ``application``, ``record_id`` = the application id).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, Final

from sqlalchemy import Engine, select
from sqlalchemy.engine import Connection

from creditbank.core.canonical import canonicalize
from creditbank.core.entries import build_entry, format_time, parse_entry, sign_entry
from creditbank.core.identity import name_commitment
from creditbank.core.records import (
    record_body_from_sample,
    record_entry_type_from_sample,
    revocation_body_from_sample,
    validate_record_body,
)
from creditbank.core.registry import Registry
from creditbank.core.signing import Signer, entry_key_id
from creditbank.errors import (
    BatchRejected,
    ConfigurationError,
    ConflictError,
    CreditBankError,
    InvalidInputError,
)
from creditbank.service import conversion
from creditbank.service.bank import Bank
from creditbank.service.demo import closure_entry, institution_key, registration_entry
from creditbank.service.keys import load_key_file
from creditbank.service.ledger import AppendOutcome
from creditbank.service.records import ResolvedLearner, resolve_learner
from creditbank.storage import ledger_repo
from creditbank.storage.tables import dataset_refs_t, records_t, revocations_t

#: entries per ledger append (one transaction each)
DEFAULT_BATCH: Final = 500
#: files of the layout that no step imports
NOT_IMPORTED: Final = ("expected.json",)
#: ``dataset_refs.kind`` values
REF_LEARNER: Final = "learner"
REF_RECORD: Final = "record"
REF_REVOCATION: Final = "revocation"
REF_APPLICATION: Final = "application"

# same-day order of timeline events
_PHASE_POST: Final = 0
_PHASE_REVOKE: Final = 1
_PHASE_CLOSE: Final = 2
_PHASE_CUSTODIAN: Final = 3

#: ``progress(step, done, total)``
Progress = Callable[[str, int, int], None]
DatasetSource = str | os.PathLike[str] | Traversable


# -- results --------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class OutcomeRef:
    """Where one dataset outcome (or its revocation) sits: the record's owner and id and the
    index of the entry that first recorded it."""

    learner_id: str
    owner: str
    record_id: str
    entry_index: int


@dataclass
class ImportReport:
    """What one import did. Counts are of entries appended now; ``duplicates`` counts the
    records and revocations that were already in the log (re-posts answered as duplicates)."""

    dataset: str
    institutions_registered: int = 0
    institutions_closed: int = 0
    learners_created: int = 0
    learners_existing: int = 0
    records_posted: int = 0
    corrections_posted: int = 0
    revocations_posted: int = 0
    duplicates: int = 0
    entries_appended: int = 0
    rules_published: int = 0
    applications_decided: int = 0
    applications_existing: int = 0
    voids_posted: int = 0
    checkpoint_size: int | None = None
    seconds: float = 0.0
    skipped_files: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: dataset learner id → the bank's learner id
    learner_ids: dict[str, str] = field(default_factory=dict)
    #: outcome id → its record entry
    records: dict[str, OutcomeRef] = field(default_factory=dict)
    #: outcome id → its revocation entry
    revocations: dict[str, OutcomeRef] = field(default_factory=dict)
    #: application id → its conversion.decided entry
    applications: dict[str, int] = field(default_factory=dict)

    @property
    def learners(self) -> int:
        return self.learners_created + self.learners_existing


# -- the dataset ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Dataset:
    """A directory (or package resource directory) in the sample layout."""

    root: Traversable
    name: str

    def has(self, file: str) -> bool:
        return self.root.joinpath(file).is_file()

    def load(self, file: str) -> Any:
        """Parse one JSON file of the dataset.

        Raises:
            InvalidInputError: ``import.missing_file`` or ``import.bad_json``.
        """
        item = self.root.joinpath(file)
        if not item.is_file():
            raise InvalidInputError(
                f"dataset {self.name} has no {file}", code="import.missing_file"
            )
        try:
            return json.loads(item.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise InvalidInputError(
                f"{file} of dataset {self.name} is not UTF-8 JSON: {e}", code="import.bad_json"
            ) from e

    def rows(self, file: str) -> list[dict[str, Any]]:
        """A JSON array of objects with unique string ``id`` members.

        Raises:
            InvalidInputError: ``import.bad_rows`` (or as :meth:`load`).
        """
        data = self.load(file)
        if not isinstance(data, list) or not all(
            isinstance(r, dict) and isinstance(r.get("id"), str) and r["id"] for r in data
        ):
            raise InvalidInputError(
                f"{file} must be an array of objects with an id", code="import.bad_rows"
            )
        ids = [r["id"] for r in data]
        if len(set(ids)) != len(ids):
            dup = next(i for i in ids if ids.count(i) > 1)
            raise InvalidInputError(f"{file}: id {dup} appears twice", code="import.bad_rows")
        return data


def open_dataset(source: DatasetSource, name: str | None = None) -> Dataset:
    """A dataset from a directory path or an ``importlib.resources`` directory.

    ``name`` labels its references in ``dataset_refs``; default: the directory's name.

    Raises:
        InvalidInputError: ``import.not_a_dataset`` if it is not a directory with
            ``outcomes.json``; ``import.name`` for a bad label.
    """
    if isinstance(source, str | os.PathLike):
        path = Path(source).resolve()
        root: Traversable = path
        default_name = path.name
    else:
        root, default_name = source, source.name
    label = default_name if name is None else name
    if not label or len(label) > 64:
        raise InvalidInputError("dataset name must be 1-64 characters", code="import.name")
    if not root.is_dir() or not root.joinpath("outcomes.json").is_file():
        raise InvalidInputError(
            f"{source} is not a dataset directory (no outcomes.json)", code="import.not_a_dataset"
        )
    return Dataset(root, label)


# -- the import context ---------------------------------------------------------------------
@dataclass
class _Pending:
    raw: bytes
    extra: Mapping[str, Any] | None
    counter: str  # ImportReport attribute to bump when appended
    ref_kind: str | None = None
    ref: str | None = None
    learner_id: str = ""
    owner: str = ""
    record_id: str = ""


@dataclass
class ImportContext:
    """State shared by the import steps."""

    bank: Bank
    dataset: Dataset
    report: ImportReport
    progress: Progress | None = None
    batch_size: int = DEFAULT_BATCH
    institutions: dict[str, dict[str, Any]] = field(default_factory=dict)
    learners: dict[str, ResolvedLearner] = field(default_factory=dict)
    learner_rows: dict[str, dict[str, Any]] = field(default_factory=dict)
    _signers: dict[str, Signer] = field(default_factory=dict)
    _registry: Registry | None = None

    @property
    def bank_id(self) -> str:
        return self.bank.settings.bank_id

    def now(self) -> str:
        return format_time(self.bank.clock.now())

    def registry(self, *, refresh: bool = False) -> Registry:
        if self._registry is None or refresh:
            self._registry = self.bank.ledger.registry()
        return self._registry

    def tick(self, step: str, done: int, total: int) -> None:
        if self.progress is not None:
            self.progress(step, done, total)

    def signer(self, institution_id: str) -> Signer:
        """The key this home holds for ``institution_id`` (the bank's issuer key for the bank).

        Raises:
            ConfigurationError: ``import.no_key`` if the home holds no registered key of it.
        """
        got = self._signers.get(institution_id)
        if got is not None:
            return got
        if institution_id == self.bank_id:
            signer: Signer = self.bank.issuer
        else:
            path = self.bank.settings.keys_dir / "institutions" / f"{institution_id}.key"
            state = self.registry().institutions.get(institution_id)
            if not path.exists() or state is None:
                raise ConfigurationError(
                    f"this home holds no key of institution {institution_id}",
                    code="import.no_key",
                )
            signer = load_key_file(path)[1]
            if entry_key_id(signer.public_bytes) not in state.keys:
                raise ConfigurationError(
                    f"the key of {institution_id} in {path.parent} is not registered for it",
                    code="import.no_key",
                )
        self._signers[institution_id] = signer
        return signer

    def sign(self, type_: str, issuer: str, body: Mapping[str, Any]) -> bytes:
        """Sign an entry as ``issuer`` at the bank clock's time."""
        if issuer == self.bank_id:
            return self.bank.bank_entry(type_, body)
        signer = self.signer(issuer)
        unsigned = build_entry(
            type_, issuer, entry_key_id(signer.public_bytes), self.bank.clock.now(), body
        )
        return sign_entry(unsigned, signer)

    def append(self, step: str, pending: Sequence[_Pending]) -> None:
        """Append in batches, count what was new, and remember the references."""
        total = len(pending)
        for start in range(0, total, self.batch_size):
            chunk = pending[start : start + self.batch_size]
            try:
                outcomes = self.bank.ledger.append(
                    [p.raw for p in chunk], extras=[p.extra for p in chunk], publish=False
                )
            except BatchRejected as e:
                items = [{**item, "ref": _ref_of(chunk, item.get("index"))} for item in e.items]
                first = items[0] if items else {}
                raise BatchRejected(
                    f"import of {self.dataset.name} stopped at {first.get('ref')}: "
                    f"{first.get('code')}: {first.get('detail')} ({len(items)} item(s) refused; "
                    "earlier batches are kept, re-run after fixing)",
                    items,
                ) from e
            self._account(chunk, outcomes)
            self.tick(step, min(start + len(chunk), total), total)

    def _account(self, chunk: Sequence[_Pending], outcomes: Sequence[AppendOutcome]) -> None:
        refs: list[dict[str, Any]] = []
        for p, out in zip(chunk, outcomes, strict=True):
            if out.duplicate:
                self.report.duplicates += 1 if p.ref_kind is not None else 0
            else:
                setattr(self.report, p.counter, getattr(self.report, p.counter) + 1)
                self.report.entries_appended += 1
            if p.ref_kind is not None and p.ref is not None:
                refs.append(self.ref_row(p, out.index))
        self.remember(refs)

    def ref_row(self, p: _Pending, index: int) -> dict[str, Any]:
        ref = OutcomeRef(p.learner_id, p.owner, p.record_id, index)
        target = self.report.records if p.ref_kind == REF_RECORD else self.report.revocations
        target[str(p.ref)] = ref
        return {
            "kind": p.ref_kind,
            "ref": p.ref,
            "learner_id": p.learner_id,
            "owner": p.owner,
            "record_id": p.record_id,
            "entry_idx": index,
        }

    def remember(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Insert the ``dataset_refs`` rows not there yet (existing ones must agree).

        Raises:
            ConflictError: ``import.ref_conflict`` if a reference already points elsewhere.
        """
        wanted = {(str(r["kind"]), str(r["ref"])): r for r in rows}
        if not wanted:
            return
        now = self.now()
        with self.bank.engine.begin() as conn:
            have: dict[tuple[str, str], Any] = {}
            refs = sorted({ref for _, ref in wanted})
            for start in range(0, len(refs), 500):
                query = select(dataset_refs_t).where(
                    dataset_refs_t.c.dataset == self.dataset.name,
                    dataset_refs_t.c.ref.in_(refs[start : start + 500]),
                )
                have.update({(str(r.kind), str(r.ref)): r for r in conn.execute(query)})
            new = []
            for key, row in wanted.items():
                old = have.get(key)
                if old is None:
                    new.append({"dataset": self.dataset.name, "created_at": now, **row})
                elif (old.learner_id, old.owner, old.record_id, old.entry_idx) != (
                    row["learner_id"],
                    row.get("owner"),
                    row.get("record_id"),
                    row.get("entry_idx"),
                ):
                    raise ConflictError(
                        f"dataset {self.dataset.name}: {key[0]} {key[1]} was imported as "
                        "something else before",
                        code="import.ref_conflict",
                    )
            if new:
                conn.execute(dataset_refs_t.insert(), new)


def _ref_of(chunk: Sequence[_Pending], index: object) -> str | None:
    if isinstance(index, int) and 0 <= index < len(chunk):
        p = chunk[index]
        return f"{p.ref_kind} {p.ref}" if p.ref is not None else "a registry entry"
    return None


def _digest(body: Mapping[str, Any]) -> bytes:
    """The projection digest of a record body (as the record validator computes it)."""
    return hashlib.sha256(canonicalize(dict(body))).digest()


# -- steps ----------------------------------------------------------------------------------
def step_institutions(ctx: ImportContext) -> None:
    """Register the dataset's institutions that are not registered yet (closures come later,
    in the timeline). Keys are created in the home on first use."""
    rows = ctx.dataset.rows("institutions.json")
    ctx.institutions = {r["id"]: r for r in rows}
    registry = ctx.registry(refresh=True)
    pending = [
        _Pending(
            registration_entry(ctx.bank, inst, institution_key(ctx.bank, iid)),
            None,
            "institutions_registered",
        )
        for iid, inst in ctx.institutions.items()
        if iid != ctx.bank_id and iid not in registry.institutions
    ]
    if pending:
        ctx.append("institutions", pending)
        ctx.registry(refresh=True)


def step_learners(ctx: ImportContext) -> None:
    """Resolve every learner by the dataset's pre-hashed identity (created on first use)."""
    rows = ctx.dataset.rows("learners.json")
    now = ctx.now()
    pepper = ctx.bank.pepper
    with ctx.bank.engine.begin() as conn:
        for n, row in enumerate(rows, 1):
            doc = row.get("id_document")
            prehash = doc.get("hash") if isinstance(doc, dict) else None
            if not isinstance(prehash, str):
                raise InvalidInputError(
                    f"learner {row['id']} has no id_document.hash", code="import.identity"
                )
            name = row.get("name_zh") or row.get("name_latin")
            if not isinstance(name, str):
                raise InvalidInputError(f"learner {row['id']} has no name", code="import.name")
            latin = row.get("name_latin")
            resolved = resolve_learner(
                conn,
                pepper=pepper,
                now=now,
                name=name,
                prehash=prehash,
                name_latin=latin if isinstance(latin, str) else None,
                external_ref=row["id"],
            )
            ctx.learners[row["id"]] = resolved
            ctx.learner_rows[row["id"]] = row
            if resolved.created:
                ctx.report.learners_created += 1
            else:
                ctx.report.learners_existing += 1
            ctx.report.learner_ids[row["id"]] = resolved.learner_id
            ctx.tick("learners", n, len(rows))
    ctx.remember(
        {"kind": REF_LEARNER, "ref": ref, "learner_id": r.learner_id}
        for ref, r in ctx.learners.items()
    )


@dataclass
class _Event:
    day: str
    phase: int
    key: str  # outcome id (posts), "rev:"+id, "close:"+institution id
    depends: str | None
    pending: _Pending | None
    #: already present and checked locally (its signer has closed): its stored reference
    present: tuple[_Pending, int] | None = None


def step_records(ctx: ImportContext) -> None:
    """Post every outcome, revocation and closure in timeline order (see the module doc)."""
    outcomes = ctx.dataset.rows("outcomes.json")
    ctypes = (
        {r["id"]: r for r in ctx.dataset.rows("certificate_types.json")}
        if ctx.dataset.has("certificate_types.json")
        else {}
    )
    by_id = {o["id"]: o for o in outcomes}
    registry = ctx.registry(refresh=True)
    bank_id = ctx.bank_id

    closed_now = {
        iid: str(st.custodian)
        for iid, st in registry.institutions.items()
        if st.closed_on is not None
    }
    pending_closures = {
        iid: (str(inst["closed_on"]), str(inst.get("records_custodian") or bank_id))
        for iid, inst in ctx.institutions.items()
        if inst.get("closed_on") and iid not in closed_now and iid != bank_id
    }

    def custodian_at(owner: str, day: str) -> str | None:
        """Who acts for ``owner`` on ``day``: its custodian once it has closed, else None."""
        if owner in closed_now:
            return closed_now[owner]
        closing = pending_closures.get(owner)
        if closing is not None and day > closing[0]:
            return closing[1]
        return None

    def check(o: Mapping[str, Any]) -> None:
        oid = o["id"]
        for member in ("learner_id", "issuer_id", "posted_by", "posted_at", "kind"):
            if not isinstance(o.get(member), str):
                raise InvalidInputError(f"outcome {oid} lacks {member}", code="import.outcome")
        if o["learner_id"] not in ctx.learners:
            raise InvalidInputError(
                f"outcome {oid} names unknown learner {o['learner_id']}", code="import.learner"
            )
        for who in (o["issuer_id"], o["posted_by"]):
            if (
                who not in (o["learner_id"], bank_id)
                and who not in ctx.institutions
                and (who not in registry.institutions)
            ):
                raise InvalidInputError(
                    f"outcome {oid} names unknown institution {who}", code="import.institution"
                )
        seen = {oid}
        cur = o
        while cur.get("corrects") is not None:
            nxt = by_id.get(cur["corrects"])
            if nxt is None:
                raise InvalidInputError(
                    f"outcome {cur['id']} corrects unknown outcome {cur['corrects']}",
                    code="import.corrects",
                )
            if nxt["id"] in seen:
                raise InvalidInputError(
                    f"outcome {oid}: corrections form a cycle", code="import.corrects"
                )
            seen.add(nxt["id"])
            cur = nxt

    def owner_of(o: Mapping[str, Any]) -> str:
        return bank_id if o["posted_by"] == o["learner_id"] else str(o["issuer_id"])

    for o in outcomes:
        check(o)
    existing_records = _existing(
        ctx.bank.engine, records_t, {(owner_of(o), o["id"]) for o in outcomes}
    )
    revoked = [o for o in outcomes if o.get("revoked_at") is not None]
    existing_revs = _existing(
        ctx.bank.engine, revocations_t, {(owner_of(o), o["id"]) for o in revoked}
    )

    events: list[_Event] = []
    for o in outcomes:
        events.append(
            _post_event(ctx, o, owner_of(o), existing_records, closed_now, custodian_at, ctypes)
        )
    for o in revoked:
        if o.get("corrects") is not None:
            ctx.report.notes.append(
                f"{o['id']}: revoked_at on a correction has no effect (rule 10); not posted"
            )
            continue
        events.append(_revoke_event(ctx, o, owner_of(o), existing_revs, closed_now, custodian_at))
    for iid, (closed_on, _custodian) in sorted(pending_closures.items()):
        raw = closure_entry(ctx.bank, ctx.institutions[iid])
        events.append(
            _Event(
                closed_on,
                _PHASE_CLOSE,
                "close:" + iid,
                None,
                _Pending(raw, None, "institutions_closed"),
            )
        )
    ordered = _timeline(events)
    present = [e.present for e in ordered if e.present is not None]
    ctx.report.duplicates += len(present)
    ctx.remember(ctx.ref_row(p, index) for p, index in present)
    ctx.append("records", [e.pending for e in ordered if e.pending is not None])


def step_rules(ctx: ImportContext) -> None:
    """Publish ``conversion_rules.json`` with the programmes and certificate types it needs
    as one ``rules.published`` entry (validated; nothing appended if unchanged)."""
    if not ctx.dataset.has("conversion_rules.json"):
        return
    doc: dict[str, Any] = {"conversion_rules": ctx.dataset.load("conversion_rules.json")}
    for file, key in (
        ("programs.json", "programs"),
        ("certificate_types.json", "certificate_types"),
    ):
        if ctx.dataset.has(file):
            doc[key] = ctx.dataset.load(file)
    current = conversion.current_rules(ctx.bank)
    publication = conversion.parse_rules_document(
        doc, base=current.publication if current is not None else None
    )
    result = conversion.publish_rules(ctx.bank, publication)
    if result.created:
        ctx.report.rules_published += 1
        ctx.report.entries_appended += 1
    ctx.tick("rules", 1, 1)


_TARGETS: Final = {"credit_conversion": "program_id", "exam_exemption": "certificate_type_id"}


def _application_request(
    ctx: ImportContext, row: Mapping[str, Any]
) -> conversion.ApplicationRequest:
    aid = str(row["id"])
    learner = ctx.learners.get(str(row.get("learner_id")))
    if learner is None:
        raise InvalidInputError(
            f"application {aid} names unknown learner {row.get('learner_id')}",
            code="import.learner",
        )
    applied_on, target = row.get("applied_on"), _TARGETS.get(str(row.get("type")))
    value = row.get(target) if target is not None else None
    if not isinstance(applied_on, str) or not isinstance(value, str):
        raise InvalidInputError(
            f"application {aid} needs applied_on, a known type and its target",
            code="import.application",
        )
    return conversion.ApplicationRequest(
        learner_id=learner.learner_id,
        applied_on=conversion.parse_date(applied_on, f"application {aid} applied_on"),
        program_id=value if target == "program_id" else None,
        certificate_type_id=value if target == "certificate_type_id" else None,
        application_id=aid,
    )


def step_applications(ctx: ImportContext) -> None:
    """Decide ``applications.json`` in rule-0 order (``applied_on``, then id), each on its
    ``applied_on``; applications decided by an earlier import are answered from the log."""
    if not ctx.dataset.has("applications.json"):
        return
    rows = ctx.dataset.rows("applications.json")
    requests = sorted(
        (_application_request(ctx, r) for r in rows),
        key=lambda q: (q.applied_on, q.application_id or ""),
    )
    decided = conversion.decide_applications(ctx.bank, requests, batch_size=ctx.batch_size)
    refs = []
    for d in decided:
        if d.created:
            ctx.report.applications_decided += 1
            ctx.report.entries_appended += 1
        else:
            ctx.report.applications_existing += 1
        ctx.report.applications[d.application_id] = d.entry_index
        refs.append(
            {
                "kind": REF_APPLICATION,
                "ref": d.application_id,
                "learner_id": d.learner_id,
                "owner": None,
                "record_id": d.application_id,
                "entry_idx": d.entry_index,
            }
        )
    ctx.remember(refs)
    ctx.tick("applications", len(decided), len(rows))


def step_voids(ctx: ImportContext) -> None:
    """Post the ``conversion.voided`` entries the revocations imply (idempotent): the
    dataset's own decisions, and earlier decisions its revocations void."""
    if not ctx.learners:
        return
    posted = conversion.reconcile_voids(ctx.bank, {r.learner_id for r in ctx.learners.values()})
    ctx.report.voids_posted += posted
    ctx.report.entries_appended += posted


def step_checkpoint(ctx: ImportContext) -> None:
    """Publish a checkpoint covering everything appended."""
    ctx.bank.ledger.publish()
    ctx.report.checkpoint_size = ctx.bank.ledger.latest_checkpoint().size


#: One step: reads the dataset through the context and appends through ``ctx.append``.
ImportStep = Callable[[ImportContext], None]

#: The import, in order.
STEPS: list[tuple[str, ImportStep]] = [
    ("institutions", step_institutions),
    ("learners", step_learners),
    ("records", step_records),
    ("rules", step_rules),
    ("applications", step_applications),
    ("voids", step_voids),
    ("checkpoint", step_checkpoint),
]


def import_dataset(
    bank: Bank,
    source: DatasetSource,
    *,
    name: str | None = None,
    progress: Progress | None = None,
    batch_size: int = DEFAULT_BATCH,
    steps: Sequence[tuple[str, ImportStep]] | None = None,
) -> ImportReport:
    """Import a dataset in the sample layout (see the module docstring); idempotent.

    Args:
        bank: an open bank that validates records (the product mode).
        source: the dataset directory (a path, or an ``importlib.resources`` directory such
            as ``resources.files("creditbank.data.sample")``).
        name: label of the dataset's references in ``dataset_refs`` (default: directory name).
        progress: called as ``progress(step, done, total)``.
        batch_size: entries per ledger append.
        steps: the steps to run (default :data:`STEPS`).

    Raises:
        InvalidInputError: the dataset is malformed (``import.*``), or an entry fails its
            schema (the record codes, naming the outcome).
        BatchRejected: the ledger refused a batch (items name the outcome); the batches
            before it stay appended and a re-run continues after them.
        ConflictError: ``record.conflict`` if a record already in the log has other content.
        ConfigurationError: the home lacks an institution's key, or the bank does not
            validate records.
    """
    if bank.ledger.validator is None:
        raise ConfigurationError(
            "import needs a bank that validates records", code="import.ledger_only"
        )
    if batch_size < 1:
        raise InvalidInputError("batch_size must be at least 1", code="import.batch_size")
    started = time.monotonic()
    dataset = open_dataset(source, name)
    report = ImportReport(dataset.name)
    report.skipped_files = [f for f in NOT_IMPORTED if dataset.has(f)]
    ctx = ImportContext(bank, dataset, report, progress=progress, batch_size=batch_size)
    for _step_name, step in steps if steps is not None else STEPS:
        step(ctx)
    report.seconds = time.monotonic() - started
    return report


# -- records: helpers -----------------------------------------------------------------------
def _existing(engine: Engine, table: Any, keys: set[tuple[str, str]]) -> dict[tuple[str, str], Any]:
    """Projection rows (records or revocations) for ``(owner, record_id)`` keys."""
    out: dict[tuple[str, str], Any] = {}
    ids = sorted({rid for _, rid in keys})
    with engine.connect() as conn:
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            for r in conn.execute(select(table).where(table.c.record_id.in_(chunk))):
                key = (str(r.owner), str(r.record_id))
                if key in keys:
                    out[key] = r
    return out


def _stored_issuer(conn: Connection, index: int) -> str:
    row = ledger_repo.get_entry(conn, index)
    return parse_entry(bytes(row.data)).issuer


def _post_event(
    ctx: ImportContext,
    o: Mapping[str, Any],
    owner: str,
    existing: Mapping[tuple[str, str], Any],
    closed: Mapping[str, str],
    custodian_at: Callable[[str, str], str | None],
    ctypes: Mapping[str, Mapping[str, Any]],
) -> _Event:
    """The event posting outcome ``o`` (``closed``: institutions closed before the import,
    with their custodians; a stored record whose signer is among them is checked locally)."""
    oid, learner = str(o["id"]), ctx.learners[o["learner_id"]]
    bank_id = ctx.bank_id
    posted_at = str(o["posted_at"])
    by_learner = o["posted_by"] == o["learner_id"]
    row = existing.get((owner, oid))
    if row is not None:
        signer = str(row.posted_by)
    elif by_learner:
        signer = bank_id
    elif o["posted_by"] != o["issuer_id"]:
        signer = str(o["posted_by"])
    else:
        custodian = custodian_at(owner, posted_at)
        signer = owner if custodian is None else custodian
        if custodian is not None:
            ctx.report.notes.append(
                f"{oid}: posted by {owner} after it closed; posted by its custodian {custodian}"
            )
    phase = _PHASE_POST if signer == owner else _PHASE_CUSTODIAN
    name = o.get("name_on_record") or ctx.learner_rows[o["learner_id"]].get("name_zh")
    if not isinstance(name, str) or not name:
        raise InvalidInputError(f"outcome {oid} has no name_on_record", code="import.name")
    try:
        body = record_body_from_sample(
            o,
            learner=learner.learner_id,
            name_commitment=name_commitment(learner.salt, name),
            certificate_types=ctypes,
        )
    except CreditBankError as e:
        raise InvalidInputError(f"outcome {oid}: {e.message}", code=e.code) from e
    body.pop("on_behalf_of", None)
    if by_learner and o["issuer_id"] != bank_id:
        body["claimed_issuer"] = o["issuer_id"]
    if signer != owner:
        body["on_behalf_of"] = owner
    type_ = record_entry_type_from_sample(o)
    try:
        validate_record_body(type_, body, today=ctx.bank.clock.now().date())
    except CreditBankError as e:
        raise InvalidInputError(
            f"outcome {oid}: {e.message}", code=e.code, path=e.extra.get("path")
        ) from e
    depends = str(o["corrects"]) if o.get("corrects") is not None else None
    ref = dict(
        ref_kind=REF_RECORD, ref=oid, learner_id=learner.learner_id, owner=owner, record_id=oid
    )
    if row is not None and signer in closed:
        # the signer can no longer post: compare with what is stored instead of re-sending
        if bytes(row.digest) != _digest(body) or row.entry_type != type_:
            raise ConflictError(
                f"record {oid} of {owner} already exists with other content",
                code="record.conflict",
            )
        local = (_Pending(b"", None, "", **ref), int(row.entry_idx))
        return _Event(posted_at, phase, oid, depends, None, local)
    counter = "corrections_posted" if type_ == "record.corrected" else "records_posted"
    pending = _Pending(ctx.sign(type_, signer, body), {"name_on_record": name}, counter, **ref)
    return _Event(posted_at, phase, oid, depends, pending)


def _revoke_event(
    ctx: ImportContext,
    o: Mapping[str, Any],
    owner: str,
    existing: Mapping[tuple[str, str], Any],
    closed: Mapping[str, str],
    custodian_at: Callable[[str, str], str | None],
) -> _Event:
    """The event revoking the chain of root outcome ``o`` (see :func:`_post_event`)."""
    oid = str(o["id"])
    revoked_at = str(o["revoked_at"])
    row = existing.get((owner, oid))
    phase = _PHASE_REVOKE
    if row is not None:
        with ctx.bank.engine.connect() as conn:
            signer = _stored_issuer(conn, int(row.entry_idx))
    else:
        custodian = custodian_at(owner, revoked_at)
        signer = owner if custodian is None else custodian
    if signer != owner:
        phase = _PHASE_CUSTODIAN
    try:
        body = revocation_body_from_sample(o, on_behalf_of=owner if signer != owner else None)
        if body is None:  # pragma: no cover - only revoked outcomes get here
            raise InvalidInputError("not revoked", code="import.outcome")
        validate_record_body("record.revoked", body, today=ctx.bank.clock.now().date())
    except CreditBankError as e:
        raise InvalidInputError(f"revocation of {oid}: {e.message}", code=e.code) from e
    learner_id = ctx.learners[o["learner_id"]].learner_id
    ref = dict(ref_kind=REF_REVOCATION, ref=oid, learner_id=learner_id, owner=owner, record_id=oid)
    if row is not None and signer in closed:
        if bytes(row.digest) != _digest(body):
            raise ConflictError(
                f"record {oid} of {owner} is already revoked", code="record.already_revoked"
            )
        local = (_Pending(b"", None, "", **ref), int(row.entry_idx))
        return _Event(revoked_at, phase, "rev:" + oid, oid, None, local)
    pending = _Pending(ctx.sign("record.revoked", signer, body), None, "revocations_posted", **ref)
    return _Event(revoked_at, phase, "rev:" + oid, oid, pending)


def _timeline(events: list[_Event]) -> list[_Event]:
    """Sort by (day, phase, key); an event waits for the event it depends on.

    Raises:
        InvalidInputError: ``import.order`` if dependencies cannot be satisfied.
    """
    scheduled = {e.key for e in events}
    ordered: list[_Event] = []
    emitted: set[str] = set()
    waiting: dict[str, list[_Event]] = {}

    def emit(e: _Event) -> None:
        stack = [e]
        while stack:
            cur = stack.pop()
            ordered.append(cur)
            emitted.add(cur.key)
            stack.extend(reversed(waiting.pop(cur.key, [])))

    for e in sorted(events, key=lambda e: (e.day, e.phase, e.key)):
        if e.depends is None or e.depends in emitted or e.depends not in scheduled:
            emit(e)
        else:
            waiting.setdefault(e.depends, []).append(e)
    if waiting:
        stuck = sorted(k for group in waiting.values() for k in (ev.key for ev in group))
        raise InvalidInputError(f"cannot order events {stuck[:5]}", code="import.order")
    return ordered


# -- references -----------------------------------------------------------------------------
@dataclass
class DatasetRefs:
    """What a dataset's ids became (read back from ``dataset_refs``)."""

    learner_ids: dict[str, str] = field(default_factory=dict)
    records: dict[str, OutcomeRef] = field(default_factory=dict)
    revocations: dict[str, OutcomeRef] = field(default_factory=dict)
    #: application id → its conversion.decided entry
    applications: dict[str, int] = field(default_factory=dict)


def dataset_refs(engine: Engine, dataset: str) -> DatasetRefs:
    """The learner, outcome and application references of an imported dataset (by name)."""
    out = DatasetRefs()
    with engine.connect() as conn:
        rows = conn.execute(select(dataset_refs_t).where(dataset_refs_t.c.dataset == dataset))
        for r in rows:
            if r.kind == REF_LEARNER:
                out.learner_ids[str(r.ref)] = str(r.learner_id)
                continue
            if r.kind == REF_APPLICATION:
                out.applications[str(r.ref)] = int(r.entry_idx)
                continue
            ref = OutcomeRef(str(r.learner_id), str(r.owner), str(r.record_id), int(r.entry_idx))
            (out.records if r.kind == REF_RECORD else out.revocations)[str(r.ref)] = ref
    return out
