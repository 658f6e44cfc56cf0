"""Institutions: the registry use cases (register, add or revoke a key, close).

Registry changes are bank-signed ledger entries (docs/formats/entries.md, core.registry)
appended through ``bank.ledger``; each use case checks the registry first so that an operator
gets a precise error rather than a rejected batch.

The other use cases this module once held live in their own modules: posting records
(:mod:`creditbank.service.posting`), learners (:mod:`creditbank.service.learners`), API
tokens (:mod:`creditbank.service.tokens`) and listing an institution's records
(:mod:`creditbank.service.record_listing`). Their names are re-exported here for the
callers that still import them from this module.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any

from creditbank.core.entries import format_time
from creditbank.core.registry import INSTITUTION_KINDS
from creditbank.core.signing import b64encode, entry_key_id, load_public_key
from creditbank.errors import (
    BatchRejected,
    ConflictError,
    CreditBankError,
    InvalidInputError,
    NotFoundError,
)
from creditbank.service.bank import Bank
from creditbank.service.learners import (
    LEARNER_ID_RE,
    MAX_RESOLVE_BATCH,
    MAX_RESOLVE_BATCH_BYTES,
    MAX_SMALL_BODY,
    LearnerQuery,
    erase,
    learner_records,
    resolve,
    resolve_batch,
)
from creditbank.service.ledger import AppendOutcome
from creditbank.service.posting import (
    MAX_POST_BYTES,
    MAX_POST_ENTRIES,
    BatchForbidden,
    PostRequest,
    Submit,
    check_post_authority,
    parse_post_request,
    post_records,
)
from creditbank.service.record_listing import (
    DEFAULT_PAGE,
    MAX_PAGE,
    RecordPage,
    list_records,
    may_list_records,
)
from creditbank.service.registry_checks import (
    INSTITUTION_ID_RE,
    check_institution_id,
    require_registered,
)
from creditbank.service.tokens import issue_institution_token, issue_learner_token, revoke_token


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
    require_registered(registry, check_institution_id(institution_id))
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
    require_registered(registry, check_institution_id(institution_id))
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
    require_registered(registry, check_institution_id(institution_id))
    require_registered(registry, check_institution_id(custodian))
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


__all__ = [
    "DEFAULT_PAGE",
    "INSTITUTION_ID_RE",
    "LEARNER_ID_RE",
    "MAX_PAGE",
    "MAX_POST_BYTES",
    "MAX_POST_ENTRIES",
    "MAX_RESOLVE_BATCH",
    "MAX_RESOLVE_BATCH_BYTES",
    "MAX_SMALL_BODY",
    "BatchForbidden",
    "LearnerQuery",
    "PostRequest",
    "RecordPage",
    "Submit",
    "add_key",
    "check_institution_id",
    "check_post_authority",
    "close_institution",
    "erase",
    "issue_institution_token",
    "issue_learner_token",
    "learner_records",
    "list_records",
    "may_list_records",
    "parse_instant",
    "parse_post_request",
    "post_records",
    "register_institution",
    "resolve",
    "resolve_batch",
    "revoke_key",
    "revoke_token",
]
