"""Institutions: the registry use cases, API tokens, posting and reading records.

Registry changes are bank-signed ledger entries (docs/formats/entries.md, core.registry)
appended through ``bank.ledger``; each use case checks the registry first so that an operator
gets a precise error rather than a rejected batch.

Posting (``POST /api/v1/records``): the request body is parsed strictly (duplicate keys,
floats, non-UTF-8 and oversize input are refused with stable codes), each entry object is
re-encoded with JCS — exactly the bytes its issuer signed, since the signature covers the JCS
of the object without ``sig`` — and the batch is checked against the caller before anything is
appended: only ``record.*`` entries, each signed by the caller itself, or by the caller as the
named custodian of the closed institution in ``on_behalf_of``. Then the ledger checks
signatures, key validity at the signing time and record semantics under its lock
(:class:`creditbank.service.records.RecordValidator`); the batch is atomic.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Final

from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from creditbank.core.canonical import canonicalize, parse_json_strict
from creditbank.core.entries import PRIVATE_TYPES, format_time
from creditbank.core.registry import INSTITUTION_KINDS, Registry
from creditbank.core.signing import b64encode, entry_key_id, load_public_key
from creditbank.errors import (
    BatchRejected,
    ConflictError,
    CreditBankError,
    ForbiddenError,
    InvalidInputError,
    NotFoundError,
    StorageError,
    TooLargeError,
)
from creditbank.service import conversion
from creditbank.service.bank import Bank
from creditbank.service.ledger import AppendOutcome
from creditbank.service.records import (
    RECORD_TYPES,
    ChainState,
    ResolvedLearner,
    erase_learner,
    learner_chains,
    resolve_learner,
)
from creditbank.storage import documents_repo, token_repo
from creditbank.storage import records_repo as rr
from creditbank.storage.engine import IMMEDIATE
from creditbank.storage.token_repo import StoredToken

#: most entries in one ``POST /api/v1/records`` request
MAX_POST_ENTRIES: Final = 1000
#: largest ``POST /api/v1/records`` body, in bytes
MAX_POST_BYTES: Final = 4 * 1024 * 1024
#: largest body of the small JSON requests (learner resolution)
MAX_SMALL_BODY: Final = 16 * 1024
#: page size bounds of record listings
DEFAULT_PAGE: Final = 100
MAX_PAGE: Final = 1000

INSTITUTION_ID_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:\-]{0,63}")
LEARNER_ID_RE: Final = re.compile(r"LRN-[0-9A-Z]{16,32}")

#: ``(raws, extras) -> outcomes``: ``Ledger.append`` or ``GroupCommitter.submit``
Submit = Callable[[Sequence[bytes], Sequence[Mapping[str, Any] | None] | None], list[AppendOutcome]]


class BatchForbidden(ForbiddenError):  # noqa: N818 - a refusal, like BatchRejected
    """A batch holds entries the caller may not post; ``items`` lists every failing entry."""

    code = "auth.wrong_institution"
    title = "Forbidden"

    def __init__(self, message: str, items: list[dict[str, object]], *, code: str) -> None:
        super().__init__(message, code=code)
        self.items = items


def _now(bank: Bank) -> str:
    return format_time(bank.clock.now())


def check_institution_id(institution_id: str) -> str:
    """Raises: InvalidInputError ``registry.institution_id`` unless a valid id."""
    if not INSTITUTION_ID_RE.fullmatch(institution_id):
        raise InvalidInputError(
            "an institution id is 1-64 letters, digits or . _ : - (starting alphanumeric)",
            code="registry.institution_id",
        )
    return institution_id


def _append_registry(bank: Bank, type_: str, body: Mapping[str, Any]) -> AppendOutcome:
    """Sign and append one registry entry; a refusal is raised as its own error code."""
    raw = bank.bank_entry(type_, body)
    try:
        (out,) = bank.ledger.append([raw], publish=True)
    except BatchRejected as e:
        item = e.items[0] if e.items else {}
        raise ConflictError(
            str(item.get("detail", e.message)), code=str(item.get("code", e.code))
        ) from e
    return out


def _registered(registry: Registry, institution_id: str) -> None:
    if institution_id not in registry.institutions:
        raise NotFoundError(
            f"institution {institution_id} is not registered", code="registry.unknown"
        )


def _key_entry(public: bytes) -> dict[str, str]:
    try:
        load_public_key(public)
    except CreditBankError as e:
        raise InvalidInputError(
            f"not an Ed25519 public key: {e.message}", code="registry.public_key"
        ) from e
    return {"key_id": entry_key_id(public), "public_key": b64encode(public)}


# -- registry use cases -----------------------------------------------------------------------
def register_institution(
    bank: Bank,
    institution_id: str,
    *,
    kind: str,
    name_zh: str,
    name_en: str,
    public_keys: Sequence[bytes],
) -> AppendOutcome:
    """Append ``institution.registered`` with the institution's public key(s).

    Raises:
        InvalidInputError: bad id (``registry.institution_id``), kind (``registry.kind``),
            names (``registry.body``) or key (``registry.public_key``), or no key.
        ConflictError: ``registry.exists`` or ``registry.key_exists``.
    """
    check_institution_id(institution_id)
    if kind not in INSTITUTION_KINDS - {"credit_bank"}:
        raise InvalidInputError(
            f"unknown institution kind {kind!r}; one of "
            + ", ".join(sorted(INSTITUTION_KINDS - {"credit_bank"})),
            code="registry.kind",
        )
    for label, name in (("name_zh", name_zh), ("name_en", name_en)):
        if not name.strip() or len(name) > 200:
            raise InvalidInputError(f"{label} must be 1-200 characters", code="registry.body")
    if not public_keys:
        raise InvalidInputError("an institution needs a public key", code="registry.public_key")
    keys = [_key_entry(k) for k in public_keys]
    if len({k["key_id"] for k in keys}) != len(keys):
        raise InvalidInputError("the same key is given twice", code="registry.public_key")
    registry = bank.ledger.registry()
    if institution_id in registry.institutions:
        raise ConflictError(
            f"institution {institution_id} is already registered", code="registry.exists"
        )
    known = registry.public_keys()
    for k in keys:
        if k["key_id"] in known:
            raise ConflictError(
                f"key {k['key_id']} is already registered", code="registry.key_exists"
            )
    return _append_registry(
        bank,
        "institution.registered",
        {
            "institution_id": institution_id,
            "kind": kind,
            "name_zh": name_zh,
            "name_en": name_en,
            "keys": keys,
        },
    )


def add_key(bank: Bank, institution_id: str, public_key: bytes) -> AppendOutcome:
    """Append ``institution.key_added``; the key signs from this entry's time on.

    Raises:
        NotFoundError: ``registry.unknown``.
        InvalidInputError: ``registry.public_key``.
        ConflictError: ``registry.key_exists``.
    """
    key = _key_entry(public_key)
    registry = bank.ledger.registry()
    _registered(registry, check_institution_id(institution_id))
    if key["key_id"] in registry.public_keys():
        raise ConflictError(
            f"key {key['key_id']} is already registered", code="registry.key_exists"
        )
    return _append_registry(
        bank, "institution.key_added", {"institution_id": institution_id, **key}
    )


def parse_instant(text: str) -> datetime:
    """An RFC 3339 date-time with an offset (``Z`` or ``+08:00``), as aware UTC.

    Raises:
        InvalidInputError: ``registry.effective_at`` if not such a date-time.
    """
    try:
        t = datetime.fromisoformat(text.strip())
    except (ValueError, AttributeError) as e:
        raise InvalidInputError(
            "want an RFC 3339 date-time such as 2025-03-01T08:00:00Z", code="registry.effective_at"
        ) from e
    if t.tzinfo is None or "T" not in text.upper():
        raise InvalidInputError(
            "the date-time needs a time and an offset (Z or +08:00)", code="registry.effective_at"
        )
    return t.astimezone(UTC)


def revoke_key(
    bank: Bank, institution_id: str, key_id: str, *, effective_at: datetime, reason: str
) -> AppendOutcome:
    """Append ``institution.key_revoked``: entries signed at or after ``effective_at`` with
    this key are refused; earlier ones stay valid and verifiable.

    Raises:
        NotFoundError: ``registry.unknown`` (institution) or ``registry.unknown_key``.
        ConflictError: ``registry.revoked_twice``.
        InvalidInputError: ``registry.body`` for an empty reason.
    """
    if not reason.strip() or len(reason) > 1000:
        raise InvalidInputError("a revocation needs a reason (1-1000 chars)", code="registry.body")
    registry = bank.ledger.registry()
    _registered(registry, check_institution_id(institution_id))
    ks = registry.institutions[institution_id].keys.get(key_id)
    if ks is None:
        raise NotFoundError(f"{institution_id} has no key {key_id}", code="registry.unknown_key")
    if ks.revoked_at is not None:
        raise ConflictError(
            f"key {key_id} is already revoked from {format_time(ks.revoked_at)}",
            code="registry.revoked_twice",
        )
    return _append_registry(
        bank,
        "institution.key_revoked",
        {
            "institution_id": institution_id,
            "key_id": key_id,
            "effective_at": format_time(effective_at),
            "reason": reason,
        },
    )


def close_institution(
    bank: Bank, institution_id: str, *, closed_on: date, custodian: str
) -> AppendOutcome:
    """Append ``institution.closed``: from now on only ``custodian`` posts (corrections,
    revocations, records) for the institution, with ``on_behalf_of``.

    Raises:
        NotFoundError: ``registry.unknown`` (either institution).
        ConflictError: ``registry.closed_twice``.
        InvalidInputError: ``registry.custodian`` (itself, the bank's own id is fine, a closed
            custodian is not) or ``registry.closed_on`` (a date after today).
    """
    registry = bank.ledger.registry()
    _registered(registry, check_institution_id(institution_id))
    _registered(registry, check_institution_id(custodian))
    if institution_id == bank.settings.bank_id:
        raise InvalidInputError("the bank cannot close itself", code="registry.custodian")
    inst = registry.institutions[institution_id]
    if inst.closed_on is not None:
        raise ConflictError(
            f"{institution_id} is already closed (custodian {inst.custodian})",
            code="registry.closed_twice",
        )
    if custodian == institution_id or registry.institutions[custodian].closed_on is not None:
        raise InvalidInputError(
            "the custodian must be another institution that is not closed",
            code="registry.custodian",
        )
    if closed_on > bank.clock.now().date():
        raise InvalidInputError(
            f"closed_on {closed_on.isoformat()} is in the future", code="registry.closed_on"
        )
    return _append_registry(
        bank,
        "institution.closed",
        {
            "institution_id": institution_id,
            "closed_on": closed_on.isoformat(),
            "custodian": custodian,
        },
    )


# -- tokens -----------------------------------------------------------------------------------
def issue_institution_token(
    bank: Bank, institution_id: str, *, label: str | None = None
) -> tuple[str, StoredToken]:
    """A new API token for a registered institution (show it once).

    Raises:
        NotFoundError: ``registry.unknown``.
        StorageError: if the database is unavailable.
    """
    _registered(bank.ledger.registry(), check_institution_id(institution_id))
    return token_repo.issue_token(
        bank.engine, role="institution", subject=institution_id, now=_now(bank), label=label
    )


def _learner_exists(bank: Bank, learner_id: str) -> Any:
    if not LEARNER_ID_RE.fullmatch(learner_id):
        raise InvalidInputError("a learner id is LRN- and 16-32 characters", code="learner.id")
    try:
        with bank.engine.connect() as conn:
            row = rr.get_learner(conn, learner_id)
    except SQLAlchemyError as e:
        raise StorageError(f"cannot read learners: {type(e).__name__}") from e
    if row is None:
        raise NotFoundError(f"unknown learner {learner_id}", code="learner.unknown")
    return row


def issue_learner_token(
    bank: Bank, learner_id: str, *, label: str | None = None
) -> tuple[str, StoredToken]:
    """A new API token for a learner (reads that learner's records; show it once).

    Raises:
        InvalidInputError: ``learner.id``.
        NotFoundError: ``learner.unknown``; also for an erased learner (``learner.erased``).
        StorageError: if the database is unavailable.
    """
    row = _learner_exists(bank, learner_id)
    if row.erased_at is not None:
        raise NotFoundError(f"learner {learner_id} was erased", code="learner.erased")
    return token_repo.issue_token(
        bank.engine, role="learner", subject=learner_id, now=_now(bank), label=label
    )


def revoke_token(bank: Bank, token_id: str) -> StoredToken:
    """Revoke a token by its id (idempotent). Raises: as :func:`token_repo.revoke_token`."""
    return token_repo.revoke_token(bank.engine, token_id, now=_now(bank))


# -- learners ---------------------------------------------------------------------------------
@contextmanager
def _write_transaction(bank: Bank) -> Iterator[Connection]:
    """A transaction that reads then writes: on SQLite it takes the write lock when it begins
    (waiting for a ledger batch to finish) instead of failing to upgrade a stale read."""
    with bank.engine.connect().execution_options(**{IMMEDIATE: True}) as conn, conn.begin():
        yield conn


def resolve(
    bank: Bank,
    *,
    name: str,
    doc_type: str,
    number: str,
    nationality: str | None = None,
) -> ResolvedLearner:
    """Map an identity document and name to the learner id and salt (creating the learner).

    Raises:
        InvalidInputError: ``identity.*`` for a malformed document or name.
        StorageError: if the database is unavailable.
    """
    pepper = bank.pepper
    for attempt in range(2):
        try:
            with _write_transaction(bank) as conn:
                return resolve_learner(
                    conn,
                    pepper=pepper,
                    now=_now(bank),
                    name=name,
                    doc_type=doc_type,
                    number=number,
                    nationality=nationality,
                )
        except IntegrityError as e:  # a concurrent first resolution of the same person
            if attempt:
                raise StorageError("cannot resolve learner: concurrent update") from e
        except SQLAlchemyError as e:
            raise StorageError(f"cannot resolve learner: {type(e).__name__}") from e
    raise AssertionError("unreachable")  # pragma: no cover


#: most learners in one ``POST /api/v1/learners/resolve-batch`` request, and its largest body
MAX_RESOLVE_BATCH: Final = 1000
MAX_RESOLVE_BATCH_BYTES: Final = 1024 * 1024


@dataclass(frozen=True, slots=True)
class LearnerQuery:
    """One identity document and name of a batch resolution."""

    name: str
    doc_type: str
    number: str
    nationality: str | None = None


def resolve_batch(
    bank: Bank, queries: Sequence[LearnerQuery]
) -> list[ResolvedLearner | InvalidInputError]:
    """Resolve many learners in one write transaction (IMMEDIATE on SQLite, as :func:`resolve`).

    Each item is resolved as :func:`resolve` would; an item refused with ``identity.*`` is
    answered with its error (nothing is created for it) and does not fail the others. The same
    person twice in one batch resolves to the same learner (created once).

    Raises:
        TooLargeError: ``input.too_large`` over :data:`MAX_RESOLVE_BATCH` items.
        StorageError: if the database is unavailable.
    """
    if len(queries) > MAX_RESOLVE_BATCH:
        raise TooLargeError(f"{len(queries)} learners in one request; at most {MAX_RESOLVE_BATCH}")
    pepper = bank.pepper
    for attempt in range(2):
        try:
            with _write_transaction(bank) as conn:
                now = _now(bank)
                out: list[ResolvedLearner | InvalidInputError] = []
                for q in queries:
                    try:
                        out.append(
                            resolve_learner(
                                conn,
                                pepper=pepper,
                                now=now,
                                name=q.name,
                                doc_type=q.doc_type,
                                number=q.number,
                                nationality=q.nationality,
                            )
                        )
                    except InvalidInputError as e:
                        if not e.code.startswith("identity."):
                            raise
                        out.append(e)  # refused before anything was written for it
                return out
        except IntegrityError as e:  # a concurrent first resolution of the same person
            if attempt:
                raise StorageError("cannot resolve learners: concurrent update") from e
        except SQLAlchemyError as e:
            raise StorageError(f"cannot resolve learners: {type(e).__name__}") from e
    raise AssertionError("unreachable")  # pragma: no cover


def erase(bank: Bank, learner_id: str) -> int:
    """Erase a learner's personal data (names, salt, identity key, the stored bytes of the
    learner's documents, which disclose name and salt) and revoke the learner's tokens. The
    log and every proof stay valid; the documents' status bits are set. Returns the number
    of tokens revoked.

    Raises:
        InvalidInputError: ``learner.id``.
        NotFoundError: ``learner.unknown``.
        StorageError: if the database is unavailable.
    """
    _learner_exists(bank, learner_id)
    now = _now(bank)
    try:
        with _write_transaction(bank) as conn:
            erase_learner(conn, learner_id, now)
            documents_repo.erase_files_of_learner(conn, learner_id)  # they hold name and salt
            return token_repo.revoke_subject_tokens(
                conn, role="learner", subject=learner_id, now=now
            )
    except SQLAlchemyError as e:
        raise StorageError(f"cannot erase learner: {type(e).__name__}") from e


# -- posting ----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class PostRequest:
    """A parsed ``POST /api/v1/records`` body: canonical entry bytes and their side data."""

    raws: list[bytes]
    extras: list[dict[str, Any] | None]
    objects: list[dict[str, Any]]


def parse_post_request(data: bytes) -> PostRequest:
    """Parse ``{"entries": [<entry object>...], "names": [<name or null>...]?}`` strictly.

    Raises:
        TooLargeError: ``input.too_large`` over :data:`MAX_POST_BYTES` or
            :data:`MAX_POST_ENTRIES` entries.
        InvalidInputError: ``input.*`` for bad JSON (duplicate keys, floats, non-UTF-8, …),
            ``request.invalid`` for a wrong shape, ``batch.empty`` for no entries;
            ``BatchRejected`` (``items``) if an entry cannot be canonicalized.
    """
    if len(data) > MAX_POST_BYTES:
        raise TooLargeError(f"request body of {len(data)} bytes exceeds {MAX_POST_BYTES}")
    doc = parse_json_strict(data, max_size=MAX_POST_BYTES)
    if not isinstance(doc, dict) or not set(doc) <= {"entries", "names"} or "entries" not in doc:
        raise InvalidInputError(
            'the body must be {"entries": [...], "names": [...]} (names optional)',
            code="request.invalid",
        )
    entries, names = doc["entries"], doc.get("names")
    if not isinstance(entries, list):
        raise InvalidInputError("entries must be a list", code="request.invalid")
    if not entries:
        raise InvalidInputError("empty batch", code="batch.empty")
    if len(entries) > MAX_POST_ENTRIES:
        raise TooLargeError(f"batch of {len(entries)} entries exceeds {MAX_POST_ENTRIES}")
    if names is not None and (
        not isinstance(names, list)
        or len(names) != len(entries)
        or not all(n is None or isinstance(n, str) for n in names)
    ):
        raise InvalidInputError(
            "names must list a name (or null) for each entry", code="request.invalid"
        )
    raws: list[bytes] = []
    problems: list[dict[str, object]] = []
    for i, obj in enumerate(entries):
        if not isinstance(obj, dict):
            problems.append(
                {"index": i, "code": "entry.not_object", "detail": "entry must be a JSON object"}
            )
            continue
        try:
            raws.append(canonicalize(obj))
        except CreditBankError as e:
            problems.append({"index": i, "code": e.code, "detail": e.message})
    if problems:
        raise BatchRejected(f"{len(problems)} of {len(entries)} entries rejected", problems)
    extras: list[dict[str, Any] | None] = [
        None if n is None else {"name_on_record": n} for n in (names or [None] * len(entries))
    ]
    return PostRequest(raws, extras, entries)


def check_post_authority(registry: Registry, caller: str, objects: Sequence[object]) -> None:
    """Refuse a batch unless every entry is a record entry the caller may post.

    The caller may post an entry it signed itself (``issuer``) — for itself, or, with
    ``on_behalf_of`` naming another institution, as that institution's custodian. Whether a
    closed institution may still post (only identical re-posts) is the ledger's
    :class:`~creditbank.service.records.RecordValidator`'s call, under the ledger lock.

    Raises:
        BatchForbidden: ``auth.wrong_institution``, with an item for every failing entry.
        BatchRejected: if entries are not record entries (``record.entry_type``) only.
    """
    problems: list[dict[str, object]] = []
    for i, obj in enumerate(objects):
        if not isinstance(obj, dict):
            continue  # parse_post_request refuses these
        type_, issuer, body = obj.get("type"), obj.get("issuer"), obj.get("body")
        if type_ not in RECORD_TYPES:
            problems.append(
                {
                    "index": i,
                    "code": "record.entry_type",
                    "detail": "only record.posted, record.corrected and record.revoked "
                    "entries are posted here",
                }
            )
            continue
        if issuer != caller:
            problems.append(
                {
                    "index": i,
                    "code": "auth.wrong_institution",
                    "detail": f"entry is signed by {issuer!s:.64}, not by the token's "
                    f"institution {caller}",
                }
            )
            continue
        ward = body.get("on_behalf_of") if isinstance(body, dict) else None
        if ward is not None and ward != caller:
            ward_state = registry.institutions.get(ward) if isinstance(ward, str) else None
            if ward_state is not None and ward_state.custodian != caller:
                problems.append(
                    {
                        "index": i,
                        "code": "auth.wrong_institution",
                        "detail": f"{caller} is not the records custodian of {ward}",
                    }
                )
    if not problems:
        return
    message = f"{len(problems)} of {len(objects)} entries refused"
    if any(p["code"] == "auth.wrong_institution" for p in problems):
        raise BatchForbidden(message, problems, code="auth.wrong_institution")
    raise BatchRejected(message, problems)


def post_records(
    bank: Bank, caller: str, request: PostRequest, *, submit: Submit | None = None
) -> list[AppendOutcome]:
    """Append a parsed batch for institution ``caller``: authority first, then the ledger.

    Raises:
        BatchForbidden: entries the caller may not post (nothing is appended).
        BatchRejected: entries the ledger refuses (bad signature, unknown or revoked key,
            schema, conflicts, …), every failing one listed; nothing is written.
        StorageError: if the database is unavailable.
    """
    check_post_authority(bank.ledger.registry(), caller, request.objects)
    append = submit if submit is not None else _ledger_submit(bank)
    outcomes = append(request.raws, request.extras)
    conversion.after_records_posted(bank, request.raws, outcomes)  # voids of revocations
    return outcomes


def _ledger_submit(bank: Bank) -> Submit:
    def submit(
        raws: Sequence[bytes], extras: Sequence[Mapping[str, Any] | None] | None
    ) -> list[AppendOutcome]:
        return bank.ledger.append(raws, extras=extras)

    return submit


# -- reading ----------------------------------------------------------------------------------
def may_list_records(registry: Registry, caller: str, institution_id: str) -> bool:
    """An institution lists its own records; the custodian of a closed one lists its ward's."""
    if caller == institution_id:
        return True
    inst = registry.institutions.get(institution_id)
    return inst is not None and inst.closed_on is not None and inst.custodian == caller


@dataclass(frozen=True, slots=True)
class RecordPage:
    records: list[dict[str, Any]]
    next_after: int | None


def list_records(
    bank: Bank, caller: str, institution_id: str, *, after: int = -1, limit: int = DEFAULT_PAGE
) -> RecordPage:
    """One page of the records owned by ``institution_id``, by ledger index after ``after``.

    Raises:
        ForbiddenError: ``auth.wrong_institution`` unless :func:`may_list_records`.
        InvalidInputError: ``request.invalid`` for a limit outside 1..MAX_PAGE.
        StorageError: if the database is unavailable.
    """
    if not may_list_records(bank.ledger.registry(), caller, institution_id):
        raise ForbiddenError(
            f"{caller} may not list the records of {institution_id}", code="auth.wrong_institution"
        )
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInputError(f"limit must be 1..{MAX_PAGE}", code="request.invalid")
    try:
        with bank.engine.connect() as conn:
            rows = rr.records_of_owner(conn, institution_id, after=after, limit=limit)
            revs = rr.revocations_for(conn, {(str(r.owner), str(r.chain_root)) for r in rows})
    except SQLAlchemyError as e:
        raise StorageError(f"cannot read records: {type(e).__name__}") from e
    out = []
    for r in rows:
        rev = revs.get((str(r.owner), str(r.chain_root)))
        out.append(
            {
                "index": int(r.entry_idx),
                "type": str(r.entry_type),
                "record_id": str(r.record_id),
                "owner": str(r.owner),
                "posted_by": str(r.posted_by),
                "learner": str(r.learner_id),
                "kind": str(r.kind),
                "dedup_key": str(r.dedup_key),
                "corrects": r.corrects,
                "chain_root": str(r.chain_root),
                "achieved_on": str(r.achieved_on),
                "posted_at": str(r.posted_at),
                "chain_revoked": rev is not None,
            }
        )
    next_after = out[-1]["index"] if len(out) == limit else None
    return RecordPage(out, next_after)


def learner_records(bank: Bank, learner_id: str) -> list[ChainState]:
    """Every record chain of a learner with its current state (see :func:`learner_chains`).

    Raises:
        InvalidInputError: ``learner.id``.
        NotFoundError: ``learner.unknown``.
        StorageError: if the database is unavailable.
    """
    _learner_exists(bank, learner_id)
    try:
        with bank.engine.connect() as conn:
            return learner_chains(conn, learner_id)
    except SQLAlchemyError as e:
        raise StorageError(f"cannot read records: {type(e).__name__}") from e


def entry_institutions(bank: Bank, entry_type: str, issuer: str, data: bytes) -> frozenset[str]:
    """The institutions entitled to read a private entry: its issuer, the owner it was posted
    for (``on_behalf_of``) and that owner's custodian. Empty for public entry types."""
    if entry_type not in PRIVATE_TYPES:
        return frozenset()
    try:
        body = json.loads(data).get("body")
    except (ValueError, AttributeError):  # stored bytes are canonical JSON; be safe anyway
        return frozenset({issuer})
    ward = body.get("on_behalf_of") if isinstance(body, dict) else None
    owner = ward if isinstance(ward, str) else issuer
    inst = bank.ledger.registry().institutions.get(owner)
    custodian = inst.custodian if inst is not None else None
    return frozenset(x for x in (issuer, owner, custodian) if x is not None)
