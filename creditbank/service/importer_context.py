"""The state the import steps share: the dataset, the report, the resolved learners, the
signing keys of this home; appending in batches and remembering the dataset's references.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from sqlalchemy import select

from creditbank.core.canonical import canonicalize
from creditbank.core.entries import build_entry, format_time, sign_entry
from creditbank.core.registry import Registry
from creditbank.core.signing import Signer, entry_key_id
from creditbank.errors import BatchRejected, ConfigurationError, ConflictError
from creditbank.service.bank import Bank
from creditbank.service.importer_dataset import (
    REF_RECORD,
    Dataset,
    ImportReport,
    OutcomeRef,
    Progress,
)
from creditbank.service.keys import load_key_file
from creditbank.service.ledger import AppendOutcome
from creditbank.service.records import ResolvedLearner
from creditbank.storage.tables import dataset_refs_t

#: entries per ledger append (one transaction each)
DEFAULT_BATCH: Final = 500


# -- the import context ---------------------------------------------------------------------
@dataclass
class Pending:
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

    def append(self, step: str, pending: Sequence[Pending]) -> None:
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

    def _account(self, chunk: Sequence[Pending], outcomes: Sequence[AppendOutcome]) -> None:
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

    def ref_row(self, p: Pending, index: int) -> dict[str, Any]:
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


def _ref_of(chunk: Sequence[Pending], index: object) -> str | None:
    if isinstance(index, int) and 0 <= index < len(chunk):
        p = chunk[index]
        return f"{p.ref_kind} {p.ref}" if p.ref is not None else "a registry entry"
    return None


def record_digest(body: Mapping[str, Any]) -> bytes:
    """The projection digest of a record body (as the record validator computes it)."""
    return hashlib.sha256(canonicalize(dict(body))).digest()
