"""Posting records (``POST /api/v1/records``): parse the request once, check the caller's
authority, append through the ledger.

The request body is parsed strictly (duplicate keys, floats, non-UTF-8 and oversize input are
refused with stable codes), each entry object is re-encoded with JCS — exactly the bytes its
issuer signed, since the signature covers the JCS of the object without ``sig`` — and the
batch is checked against the caller before anything is appended: only ``record.*`` entries,
each signed by the caller itself, or by the caller as the named custodian of the closed
institution in ``on_behalf_of`` (the policy's ``RECORD_ENTRY_POST``,
:mod:`creditbank.core.policy`). Then the ledger checks signatures, key validity at the
signing time and record semantics under its lock
(:class:`creditbank.service.records.RecordValidator`); the batch is atomic.

Each entry is parsed once on its way in: the request's JSON is decoded once, and the entry
objects become :class:`~creditbank.core.entries.Entry` values
(:func:`~creditbank.core.entries.entry_from_object`) that the ledger, its validator and
projection, and the after-append hook (the voids a revocation implies, called with the new
revocations only) take as they are. An entry that would not parse is handed to the ledger as
its bytes, so that it is refused exactly as before.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from creditbank.core import policy
from creditbank.core.canonical import canonicalize, parse_json_strict
from creditbank.core.entries import Entry, entry_from_object
from creditbank.core.registry import Registry
from creditbank.errors import (
    BatchRejected,
    CreditBankError,
    ForbiddenError,
    InvalidInputError,
    TooLargeError,
)
from creditbank.service import conversion
from creditbank.service.bank import Bank
from creditbank.service.ledger import AppendOutcome
from creditbank.service.records import RECORD_TYPES

#: most entries in one ``POST /api/v1/records`` request
MAX_POST_ENTRIES: Final = 1000
#: largest ``POST /api/v1/records`` body, in bytes
MAX_POST_BYTES: Final = 4 * 1024 * 1024

#: ``(entries, extras) -> outcomes``: ``Ledger.append`` or ``GroupCommitter.submit``
Submit = Callable[
    [Sequence[bytes | Entry], Sequence[Mapping[str, Any] | None] | None], list[AppendOutcome]
]


class BatchForbidden(ForbiddenError):  # noqa: N818 - a refusal, like BatchRejected
    """A batch holds entries the caller may not post; ``items`` lists every failing entry."""

    code = "auth.wrong_institution"
    title = "Forbidden"

    def __init__(self, message: str, items: list[dict[str, object]], *, code: str) -> None:
        super().__init__(message, code=code)
        self.items = items


@dataclass(frozen=True, slots=True)
class PostRequest:
    """A parsed ``POST /api/v1/records`` body: canonical entry bytes and their side data.

    ``objects`` are the entry objects as parsed (the bytes of each are ``raws``);
    :meth:`entries` makes the ledger's entries of them without parsing again."""

    raws: list[bytes]
    extras: list[dict[str, Any] | None]
    objects: list[dict[str, Any]]

    def entries(self) -> list[bytes | Entry]:
        """Each entry as the :class:`Entry` its bytes parse to, or as its bytes where they
        would not parse (the ledger then refuses it with its usual item)."""
        out: list[bytes | Entry] = []
        for obj, raw in zip(self.objects, self.raws, strict=True):
            try:
                out.append(entry_from_object(obj, raw))
            except CreditBankError:
                out.append(raw)
        return out


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


def posted_entry(registry: Registry, obj: Mapping[str, Any]) -> policy.PostedEntry:
    """The policy's view of one posted record entry object."""
    issuer, body = obj.get("issuer"), obj.get("body")
    ward = body.get("on_behalf_of") if isinstance(body, dict) else None
    ward_state = registry.institutions.get(ward) if isinstance(ward, str) else None
    return policy.PostedEntry(
        issuer if isinstance(issuer, str) else None,
        ward if isinstance(ward, str) else None,
        ward_known=ward_state is not None,
        ward_custodian=ward_state.custodian if ward_state is not None else None,
    )


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
    who = policy.Principal("institution", caller)
    problems: list[dict[str, object]] = []
    for i, obj in enumerate(objects):
        if not isinstance(obj, dict):
            continue  # parse_post_request refuses these
        if obj.get("type") not in RECORD_TYPES:
            problems.append(
                {
                    "index": i,
                    "code": "record.entry_type",
                    "detail": "only record.posted, record.corrected and record.revoked "
                    "entries are posted here",
                }
            )
            continue
        if policy.allows(who, policy.Action.RECORD_ENTRY_POST, posted_entry(registry, obj)):
            continue
        issuer = obj.get("issuer")
        if issuer != caller:
            detail = f"entry is signed by {issuer!s:.64}, not by the token's institution {caller}"
        else:
            ward = obj["body"].get("on_behalf_of")
            detail = f"{caller} is not the records custodian of {ward}"
        problems.append({"index": i, "code": "auth.wrong_institution", "detail": detail})
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
        ForbiddenError: ``auth.forbidden`` if ``caller`` is not an institution the policy
            lets post at all.
        BatchForbidden: entries the caller may not post (nothing is appended).
        BatchRejected: entries the ledger refuses (bad signature, unknown or revoked key,
            schema, conflicts, …), every failing one listed; nothing is written.
        StorageError: if the database is unavailable.
    """
    policy.authorize(policy.Principal("institution", caller), policy.Action.RECORDS_POST)
    check_post_authority(bank.ledger.registry(), caller, request.objects)
    entries = request.entries()
    append = submit if submit is not None else _ledger_submit(bank)
    outcomes = append(entries, request.extras)
    revoked = [
        (e, o)
        for e, o in zip(entries, outcomes, strict=True)
        if isinstance(e, Entry) and e.type == "record.revoked" and not o.duplicate
    ]
    if revoked:  # the voids those revocations imply
        conversion.after_records_posted(bank, [e for e, _ in revoked], [o for _, o in revoked])
    return outcomes


def _ledger_submit(bank: Bank) -> Submit:
    def submit(
        entries: Sequence[bytes | Entry], extras: Sequence[Mapping[str, Any] | None] | None
    ) -> list[AppendOutcome]:
        return bank.ledger.append(entries, extras=extras)

    return submit


__all__ = [
    "MAX_POST_BYTES",
    "MAX_POST_ENTRIES",
    "BatchForbidden",
    "PostRequest",
    "Submit",
    "check_post_authority",
    "parse_post_request",
    "post_records",
    "posted_entry",
]
