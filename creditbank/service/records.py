"""Records: learner resolution, the record validator run under the ledger lock, read models.

Rules enforced for ``record.*`` entries (each a stable error code):

* the body matches its JSON Schema and dates are sane (``creditbank.core.records``);
* the record belongs to its signer, or — with ``on_behalf_of`` — to a closed institution whose
  named custodian is the signer (``record.not_custodian``); a closed institution itself can no
  longer post (``record.institution_closed``); ``claimed_issuer`` (a learner's own upload) only
  in entries signed by the bank (``record.claimed_issuer``);
* the learner exists (``record.unknown_learner``); when the plain name is sent beside the
  entry it must open the signed ``name_commitment`` (``record.name_commitment``);
* ``record_id`` is unique per owner: the same content again is an idempotent re-post (answered
  with the original index), other content is a conflict (``record.conflict``);
* a correction names an existing record of the same owner and learner
  (``record.unknown_target``, ``record.learner_mismatch``); a revocation names an existing
  record and is recorded on its chain root, once (``record.already_revoked``).

The bodies of bank-authored entries (``institution.*``, ``rules.published``,
``conversion.*``) are checked against their schemas too (``registry.schema``,
``rules.schema``, ``conversion.schema``; :func:`creditbank.core.records.validate_bank_body`).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from sqlalchemy.engine import Connection

from creditbank.core.canonical import canonicalize
from creditbank.core.entries import Entry, format_time
from creditbank.core.identity import (
    check_person_name,
    identity_lookup_key,
    identity_lookup_key_from_prehashed,
    normalize_identity,
    verify_name_commitment,
)
from creditbank.core.records import BANK_ENTRY_SCHEMAS, validate_bank_body, validate_record_body
from creditbank.core.registry import Registry
from creditbank.errors import (
    ConflictError,
    CreditBankError,
    ForbiddenError,
    InvalidInputError,
    NotFoundError,
)
from creditbank.service.clock import Clock
from creditbank.service.ledger import Admission
from creditbank.service.projection import (
    CONVERSION_TYPES,
    DECIDED,
    VOIDED,
    conversion_row,
    record_row,
    revocation_row,
)
from creditbank.storage import conversion_repo as cr
from creditbank.storage import records_repo as rr

RECORD_TYPES = frozenset({"record.posted", "record.corrected", "record.revoked"})
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_learner_id() -> str:
    """``LRN-`` + 20 Crockford base32 characters (100 random bits)."""
    n = secrets.randbits(100)
    return "LRN-" + "".join(_CROCKFORD[(n >> (5 * i)) & 31] for i in range(20))


def _digest(body: Mapping[str, Any]) -> bytes:
    return hashlib.sha256(canonicalize(dict(body))).digest()


@dataclass
class RecordValidator:
    """The ledger validator for record entries (see the module docstring)."""

    clock: Clock
    bank_id: str
    #: set when the ledger runs :meth:`precheck` for every entry before taking the lock
    prechecked: bool = True

    # Per-request state (the ledger calls begin/finish/abort under its mutex, one request at a
    # time): rows read once per request, and inserts written together at the end.
    _records: dict[tuple[str, str], Any] = field(default_factory=dict)
    _learners: dict[str, Any] = field(default_factory=dict)
    _pending_records: list[dict[str, Any]] = field(default_factory=list)
    _pending_names: list[tuple[int, str, str]] = field(default_factory=list)
    _pending_conversions: list[tuple[Any, dict[str, Any]]] = field(default_factory=list)
    #: application ids and (decision, grant) pairs taken by this request's pending rows
    _pending_keys: set[object] = field(default_factory=set)

    def begin(self, conn: Connection, entries: Sequence[Entry]) -> None:
        """Read in two queries every record and learner the request's entries refer to."""
        self.abort()
        keys: set[tuple[str, str]] = set()
        learners: set[str] = set()
        for e in entries:
            if e.type not in RECORD_TYPES:
                continue
            owner = str(e.body.get("on_behalf_of") or e.issuer)
            for rid in (e.body.get("record_id"), e.body.get("corrects")):
                if isinstance(rid, str):
                    keys.add((owner, rid))
            if isinstance(e.body.get("learner"), str):
                learners.add(str(e.body["learner"]))
        found = rr.records_by_keys(conn, keys)
        self._records = {k: found.get(k) for k in keys}
        got = rr.learners_by_ids(conn, learners)
        self._learners = {lid: got.get(lid) for lid in learners}

    def finish(self, conn: Connection) -> None:
        """Write the request's projection rows (inside the request's savepoint)."""
        rr.insert_records(conn, self._pending_records)
        for idx, learner, name in self._pending_names:
            rr.insert_record_name(conn, idx, learner, name)
        for table, row in self._pending_conversions:
            conn.execute(table.insert().values(**row))
        self.abort()

    def abort(self) -> None:
        self._records, self._learners = {}, {}
        self._pending_records, self._pending_names = [], []
        self._pending_conversions, self._pending_keys = [], set()

    def _get_record(self, conn: Connection, owner: str, record_id: str) -> Any:
        key = (owner, record_id)
        if key not in self._records:
            self._records[key] = rr.get_record(conn, owner, record_id)
        return self._records[key]

    def _get_learner(self, conn: Connection, learner_id: str) -> Any:
        if learner_id not in self._learners:
            self._learners[learner_id] = rr.get_learner(conn, learner_id)
        return self._learners[learner_id]

    def precheck(self, entry: Entry) -> None:
        """The state-free part (schema, dates), run by the ledger outside the lock.

        Record bodies and the bodies of bank-authored entries (registry, rules, conversion)
        are checked against their schemas.

        Raises:
            InvalidInputError: if the body does not match its schema (``record.*``,
                ``registry.schema``, ``rules.schema`` or ``conversion.schema``).
        """
        if entry.type in RECORD_TYPES:
            validate_record_body(entry.type, entry.body, today=self.clock.now().date())
        elif entry.type in BANK_ENTRY_SCHEMAS:
            validate_bank_body(entry.type, entry.body)

    def __call__(
        self,
        conn: Connection,
        entry: Entry,
        registry: Registry,
        idx: int,
        extra: Mapping[str, Any] | None,
    ) -> Admission:
        if not self.prechecked:
            self.precheck(entry)
        if entry.type not in RECORD_TYPES:
            learner = entry.body.get("learner")
            if entry.type in CONVERSION_TYPES and entry.issuer == self.bank_id:
                self._project_conversion(conn, entry, idx)
            return Admission(subject=learner if isinstance(learner, str) else None)
        repeat = self._repeat(conn, entry)
        if repeat is not None:  # an identical re-post is answered before any other rule
            return repeat
        owner = self._owner(entry, registry)
        if entry.type == "record.revoked":
            return self._revoke(conn, entry, owner, idx)
        return self._post(conn, entry, owner, idx, extra)

    def _project_conversion(self, conn: Connection, entry: Entry, idx: int) -> None:
        """Project a bank-authored rules/conversion entry in the append's transaction (ADR
        0007), refusing what its projection's unique keys would refuse.

        Raises:
            ConflictError: ``conversion.application_conflict`` (an application id decided
                before) or ``conversion.void_conflict`` (a grant voided before).
        """
        table, row = conversion_row(idx, entry.type, entry.at, entry.body)
        key: object = None
        taken = False
        if entry.type == DECIDED:
            key = ("app", row["application_id"])
            taken = bool(cr.decisions_by_applications(conn, [row["application_id"]]))
            code, what = "conversion.application_conflict", f"application {row['application_id']}"
        elif entry.type == VOIDED:
            key = ("void", row["decision_idx"], row["grant_no"])
            taken = cr.void_exists(conn, row["decision_idx"], row["grant_no"])
            code, what = "conversion.void_conflict", f"grant {row['grant_no']} of entry " + str(
                row["decision_idx"]
            )
        if key is not None and (taken or key in self._pending_keys):
            raise ConflictError(f"{what} is already in the log", code=code)
        if key is not None:
            self._pending_keys.add(key)
        self._pending_conversions.append((table, row))

    def _repeat(self, conn: Connection, entry: Entry) -> Admission | None:
        """The original index if this exact record content was already admitted."""
        body = entry.body
        owner = str(body.get("on_behalf_of") or entry.issuer)
        if entry.type == "record.revoked":
            target = self._get_record(conn, owner, str(body["record_id"]))
            if target is None:
                return None
            root = str(target.chain_root)
            rev = rr.get_revocation(conn, owner, root)
            if rev is not None and bytes(rev.digest) == _digest({**body, "record_id": root}):
                return Admission(subject=str(target.learner_id), duplicate_of=int(rev.entry_idx))
            return None
        existing = self._get_record(conn, owner, str(body["record_id"]))
        if (
            existing is not None
            and existing.entry_type == entry.type
            and bytes(existing.digest) == _digest(body)
        ):
            return Admission(subject=str(existing.learner_id), duplicate_of=int(existing.entry_idx))
        return None

    def _owner(self, entry: Entry, registry: Registry) -> str:
        body, signer = entry.body, entry.issuer
        signer_state = registry.institution(signer)
        if body.get("claimed_issuer") is not None and signer != self.bank_id:
            raise ForbiddenError(
                "only the bank posts a learner's own uploads", code="record.claimed_issuer"
            )
        ward = body.get("on_behalf_of")
        if ward is not None and ward != signer:
            try:
                ward_state = registry.institution(ward)
            except NotFoundError as e:
                raise InvalidInputError(
                    f"unknown institution {ward}", code="record.unknown_institution"
                ) from e
            if ward_state.custodian != signer:
                raise ForbiddenError(
                    f"{signer} is not the records custodian of {ward}", code="record.not_custodian"
                )
            return str(ward)
        if signer_state.closed_on is not None:
            raise ForbiddenError(
                f"{signer} is closed; its custodian {signer_state.custodian} posts for it",
                code="record.institution_closed",
            )
        return signer

    def _post(
        self,
        conn: Connection,
        entry: Entry,
        owner: str,
        idx: int,
        extra: Mapping[str, Any] | None,
    ) -> Admission:
        body = entry.body
        record_id, learner = str(body["record_id"]), str(body["learner"])
        digest = _digest(body)
        existing = self._get_record(conn, owner, record_id)
        if existing is not None:
            if bytes(existing.digest) == digest and existing.entry_type == entry.type:
                return Admission(subject=learner, duplicate_of=int(existing.entry_idx))
            raise ConflictError(
                f"record {record_id} of {owner} already exists with other content",
                code="record.conflict",
            )
        person = self._get_learner(conn, learner)
        if person is None:
            raise InvalidInputError(f"unknown learner {learner}", code="record.unknown_learner")
        chain_root = record_id
        corrects = body.get("corrects")
        if entry.type == "record.corrected":
            target = self._get_record(conn, owner, str(corrects))
            if target is None:
                raise NotFoundError(
                    f"record {corrects} of {owner} does not exist", code="record.unknown_target"
                )
            if target.learner_id != learner:
                raise InvalidInputError(
                    "a correction cannot move a record to another learner",
                    code="record.learner_mismatch",
                )
            chain_root = str(target.chain_root)
        name = (extra or {}).get("name_on_record")
        if name is not None:
            try:
                name = check_person_name(name, "name_on_record")
            except InvalidInputError as e:
                raise InvalidInputError(e.message, code="record.name") from e
            if person.salt is None:
                raise InvalidInputError("learner's personal data was erased", code="record.erased")
            try:
                verify_name_commitment(bytes(person.salt), name, str(body["name_commitment"]))
            except CreditBankError as e:
                raise InvalidInputError(str(e), code="record.name_commitment") from e
            self._pending_names.append((idx, learner, name))
        row = record_row(idx, entry.type, entry.issuer, entry.at, body, chain_root)
        self._pending_records.append(row)
        self._records[(owner, record_id)] = SimpleNamespace(**row)
        return Admission(subject=learner)

    def _revoke(self, conn: Connection, entry: Entry, owner: str, idx: int) -> Admission:
        body = entry.body
        record_id = str(body["record_id"])
        target = self._get_record(conn, owner, record_id)
        if target is None:
            raise NotFoundError(
                f"record {record_id} of {owner} does not exist", code="record.unknown_target"
            )
        root = str(target.chain_root)
        digest = _digest({**body, "record_id": root})
        existing = rr.get_revocation(conn, owner, root)
        if existing is not None:
            if bytes(existing.digest) == digest:
                return Admission(
                    subject=str(target.learner_id), duplicate_of=int(existing.entry_idx)
                )
            raise ConflictError(
                f"record {root} of {owner} is already revoked", code="record.already_revoked"
            )
        rr.insert_revocation(conn, revocation_row(idx, entry.issuer, body, root))
        return Admission(subject=str(target.learner_id))


@dataclass(frozen=True, slots=True)
class ResolvedLearner:
    learner_id: str
    salt: bytes
    created: bool

    @property
    def salt_b64(self) -> str:
        return base64.b64encode(self.salt).decode("ascii")


def resolve_learner(
    conn: Connection,
    *,
    pepper: bytes,
    now: str,
    name: str,
    doc_type: str | None = None,
    number: str | None = None,
    nationality: str | None = None,
    prehash: str | None = None,
    name_latin: str | None = None,
    external_ref: str | None = None,
) -> ResolvedLearner:
    """Map an identity document (or a dataset's pre-hashed identity) to the opaque learner id.

    Creates the learner with a fresh 128-bit salt on first use. Nothing here enters the log.

    Raises:
        InvalidInputError: ``identity.*`` for a malformed document, ``identity.name`` for a
            name :func:`~creditbank.core.identity.check_person_name` refuses.
    """
    name = check_person_name(name)
    if name_latin is not None:
        name_latin = check_person_name(name_latin, "name_latin")
    if prehash is not None:
        key = identity_lookup_key_from_prehashed(prehash, pepper)
    else:
        if doc_type is None or number is None:
            raise InvalidInputError(
                "identity document type and number are required", code="identity.format"
            )
        doc = normalize_identity(doc_type, number, nationality)
        key = identity_lookup_key(doc, pepper)
    row = rr.learner_by_lookup(conn, key)
    if row is not None:
        return ResolvedLearner(str(row.learner_id), bytes(row.salt), False)
    learner_id, salt = new_learner_id(), secrets.token_bytes(16)
    rr.insert_learner(
        conn,
        {
            "learner_id": learner_id,
            "lookup_key": key,
            "salt": salt,
            "name": name,
            "name_latin": name_latin,
            "external_ref": external_ref,
            "created_at": now,
        },
    )
    return ResolvedLearner(learner_id, salt, True)


@dataclass
class ChainState:
    """Current state of one record chain of a learner."""

    owner: str
    root_record_id: str
    root_index: int
    current_index: int
    current_record_id: str
    versions: list[int] = field(default_factory=list)
    kind: str = ""
    dedup_key: str = ""
    posted_at: str = ""
    revoked: bool = False
    revoked_on: str | None = None
    revocation_reason: str | None = None
    duplicate_of: str | None = None  # "<owner>/<root record id>" of the canonical chain

    def as_dict(self) -> dict[str, Any]:
        return {
            "owner": self.owner,
            "record_id": self.root_record_id,
            "root_index": self.root_index,
            "current_record_id": self.current_record_id,
            "current_index": self.current_index,
            "versions": self.versions,
            "kind": self.kind,
            "dedup_key": self.dedup_key,
            "revoked": self.revoked,
            "revoked_on": self.revoked_on,
            "revocation_reason": self.revocation_reason,
            "duplicate_of": self.duplicate_of,
        }


def learner_chains(
    conn: Connection, learner_id: str, *, as_of: str | None = None
) -> list[ChainState]:
    """Every record chain of a learner with its current version, revocation and duplicates.

    The current version is the chain member with the greatest (claimed ``posted_at``, record
    id) — the sample's rule 1;
    among chains sharing a ``dedup_key`` the root posted first is canonical (tie: lower record
    id), the others are duplicates of it. With ``as_of`` (a date), later postings and
    revocations are ignored.
    """
    rows = [
        r for r in rr.records_of_learner(conn, learner_id) if as_of is None or r.posted_at <= as_of
    ]
    chains: dict[tuple[str, str], ChainState] = {}
    for r in rows:
        key = (str(r.owner), str(r.chain_root))
        ch = chains.get(key)
        if ch is None:
            ch = chains[key] = ChainState(
                owner=key[0],
                root_record_id=key[1],
                root_index=-1,
                current_index=-1,
                current_record_id="",
            )
        ch.versions.append(int(r.entry_idx))
        if r.record_id == r.chain_root:
            ch.root_index = int(r.entry_idx)
            ch.dedup_key = str(r.dedup_key)
            ch.posted_at = str(r.posted_at)
    by_idx = {int(r.entry_idx): r for r in rows}
    for ch in chains.values():
        cur = max(ch.versions, key=lambda i: (str(by_idx[i].posted_at), str(by_idx[i].record_id)))
        ch.current_index, ch.current_record_id = cur, str(by_idx[cur].record_id)
        ch.kind = str(by_idx[cur].kind)
    revs = rr.revocations_for(conn, set(chains))
    for key, rev in revs.items():
        if as_of is None or rev.effective_on <= as_of:
            ch = chains[key]
            ch.revoked, ch.revoked_on, ch.revocation_reason = (
                True,
                str(rev.effective_on),
                str(rev.reason),
            )
    by_dedup: dict[str, list[ChainState]] = {}
    for ch in chains.values():
        if ch.root_index >= 0:
            by_dedup.setdefault(ch.dedup_key, []).append(ch)
    for group in by_dedup.values():
        group.sort(key=lambda c: (c.posted_at, c.root_record_id))
        for other in group[1:]:
            other.duplicate_of = f"{group[0].owner}/{group[0].root_record_id}"
    return sorted(chains.values(), key=lambda c: c.root_index)


def erase_learner(conn: Connection, learner_id: str, now: str) -> None:
    """Delete a learner's names, salt and identity key; the log is untouched.

    Raises:
        NotFoundError: if the learner does not exist.
    """
    if rr.get_learner(conn, learner_id) is None:
        raise NotFoundError(f"unknown learner {learner_id}", code="learner.unknown")
    rr.erase_learner(conn, learner_id, now)


def now_text(clock: Clock) -> str:
    return format_time(clock.now())
