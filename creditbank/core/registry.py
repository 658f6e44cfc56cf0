"""The institution key registry, as a pure fold over registry entries.

Registry entries are bank-authored (signed by the bank's issuer key), except the genesis
entry: the bank registering itself, signed by the key it registers. Bodies:

* ``institution.registered``: ``{"institution_id", "kind", "name_zh", "name_en",
  "keys": [{"key_id", "public_key"}]}``
* ``institution.key_added``: ``{"institution_id", "key_id", "public_key"}``
* ``institution.key_revoked``: ``{"institution_id", "key_id", "effective_at", "reason"}``
* ``institution.closed``: ``{"institution_id", "closed_on", "custodian"}``

A key is valid for entries whose ``at`` is at or after the registering entry's ``at`` and
strictly before its revocation's ``effective_at``. Entries signed before a revocation stay
valid forever.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from creditbank.core.entries import REGISTRY_TYPES, Entry, parse_time
from creditbank.core.signing import b64decode, entry_key_id, load_public_key
from creditbank.errors import (
    ConflictError,
    ForbiddenError,
    InvalidInputError,
    NotFoundError,
    RevokedError,
    UnknownKeyError,
)

INSTITUTION_KINDS = frozenset(
    {
        "college",
        "open_university",
        "craftsman_academy",
        "training_center",
        "enterprise_college",
        "enterprise_university",
        "vocational_school",
        "certifying_authority",
        "government_authority",
        "competition_organizer",
        "credit_bank",
    }
)


@dataclass(slots=True)
class KeyState:
    """One registered key of an institution."""

    key_id: str
    public: bytes
    added_at: datetime
    revoked_at: datetime | None = None


@dataclass(slots=True)
class InstitutionState:
    """What the registry knows about one institution."""

    institution_id: str
    kind: str
    name_zh: str
    name_en: str
    keys: dict[str, KeyState] = field(default_factory=dict)
    closed_on: date | None = None
    custodian: str | None = None


def _str(body: Mapping[str, Any], name: str, *, max_len: int = 200) -> str:
    v = body.get(name)
    if not isinstance(v, str) or not v or len(v) > max_len:
        raise InvalidInputError(
            f"registry body needs a non-empty string {name!r}", code="registry.body"
        )
    return v


def _public(key: Mapping[str, Any]) -> tuple[str, bytes]:
    if not isinstance(key, Mapping):
        raise InvalidInputError("key must be an object", code="registry.body")
    public = b64decode(_str(key, "public_key"), what="public_key")
    load_public_key(public)
    key_id = _str(key, "key_id")
    if entry_key_id(public) != key_id:
        raise InvalidInputError("key_id does not match public_key", code="registry.key_id")
    return key_id, public


class Registry:
    """Replays registry entries and answers "which key may sign for whom, when"."""

    def __init__(self, bank_id: str) -> None:
        self.bank_id = bank_id
        self.institutions: dict[str, InstitutionState] = {}
        self._by_key_id: dict[str, tuple[str, KeyState]] = {}

    # -- queries ------------------------------------------------------------------------
    def key_for(self, issuer: str, key_id: str, at: datetime) -> bytes:
        """Return the public key that ``issuer`` may sign with at ``at``.

        Raises:
            UnknownKeyError: if the issuer or key is not registered (yet).
            RevokedError: if the key was revoked at or before ``at``.
        """
        inst = self.institutions.get(issuer)
        ks = inst.keys.get(key_id) if inst else None
        if ks is None:
            raise UnknownKeyError(f"key {key_id} is not registered for {issuer}")
        if at < ks.added_at:
            raise UnknownKeyError(f"key {key_id} of {issuer} was not yet registered at that time")
        if ks.revoked_at is not None and at >= ks.revoked_at:
            raise RevokedError(f"key {key_id} of {issuer} was revoked from {ks.revoked_at}")
        return ks.public

    def public_keys(self) -> dict[str, bytes]:
        """Every registered key id and its public key (for parallel signature checks)."""
        return {kid: ks.public for kid, (_, ks) in self._by_key_id.items()}

    def institution(self, institution_id: str) -> InstitutionState:
        """Raises: NotFoundError if unknown."""
        inst = self.institutions.get(institution_id)
        if inst is None:
            raise NotFoundError(f"unknown institution {institution_id}", code="registry.unknown")
        return inst

    # -- replay -------------------------------------------------------------------------
    def authorize(self, entry: Entry) -> bytes:
        """Check who may sign ``entry`` and return the public key to verify it with.

        The genesis registration of the bank is self-signed; every other registry entry
        must be signed by the bank.

        Raises:
            UnknownKeyError, RevokedError, ForbiddenError, InvalidInputError.
        """
        at = parse_time(entry.at)
        if entry.type in REGISTRY_TYPES:
            if entry.issuer != self.bank_id:
                raise ForbiddenError(
                    "only the bank signs registry entries", code="registry.not_bank"
                )
            if self.bank_id not in self.institutions:
                body = entry.body
                genesis = entry.type == "institution.registered"
                if not genesis or body.get("institution_id") != self.bank_id:
                    raise UnknownKeyError("the log must begin with the bank's registration")
                keys = dict(_public(k) for k in body.get("keys", []))
                if entry.key_id not in keys:
                    raise UnknownKeyError("genesis entry must be signed by a key it registers")
                return keys[entry.key_id]
        return self.key_for(entry.issuer, entry.key_id, at)

    def apply(self, entry: Entry) -> None:
        """Apply a registry entry (other types are ignored). Call after :meth:`authorize`.

        Raises:
            InvalidInputError: malformed body.
            ConflictError: re-registration, duplicate key, unknown key to revoke.
            NotFoundError: unknown institution.
        """
        if entry.type not in REGISTRY_TYPES:
            return
        body, at = entry.body, parse_time(entry.at)
        iid = _str(body, "institution_id", max_len=64)
        if entry.type == "institution.registered":
            if iid in self.institutions:
                raise ConflictError(
                    f"institution {iid} is already registered", code="registry.exists"
                )
            kind = _str(body, "kind")
            if kind not in INSTITUTION_KINDS:
                raise InvalidInputError(f"unknown institution kind {kind!r}", code="registry.kind")
            keys = body.get("keys", [])
            if not isinstance(keys, list):
                raise InvalidInputError("keys must be a list", code="registry.body")
            inst = InstitutionState(iid, kind, _str(body, "name_zh"), _str(body, "name_en"))
            self.institutions[iid] = inst
            for k in keys:
                self._add_key(inst, *_public(k), at)
        elif entry.type == "institution.key_added":
            self._add_key(self.institution(iid), *_public(body), at)
        elif entry.type == "institution.key_revoked":
            inst = self.institution(iid)
            ks = inst.keys.get(_str(body, "key_id"))
            if ks is None:
                raise ConflictError("cannot revoke an unknown key", code="registry.unknown_key")
            if ks.revoked_at is not None:
                raise ConflictError("key already revoked", code="registry.revoked_twice")
            ks.revoked_at = parse_time(_str(body, "effective_at"))
        elif entry.type == "institution.closed":
            inst = self.institution(iid)
            if inst.closed_on is not None:
                raise ConflictError(f"{iid} is already closed", code="registry.closed_twice")
            custodian = _str(body, "custodian", max_len=64)
            if custodian not in self.institutions or custodian == iid:
                raise InvalidInputError(
                    "custodian must be another registered institution", code="registry.custodian"
                )
            try:
                inst.closed_on = date.fromisoformat(_str(body, "closed_on"))
            except ValueError as e:
                raise InvalidInputError("closed_on must be a date", code="registry.body") from e
            inst.custodian = custodian

    def _add_key(self, inst: InstitutionState, key_id: str, public: bytes, at: datetime) -> None:
        if key_id in self._by_key_id:
            raise ConflictError(f"key {key_id} is already registered", code="registry.key_exists")
        ks = KeyState(key_id, public, at)
        inst.keys[key_id] = ks
        self._by_key_id[key_id] = (inst.institution_id, ks)


def replay(bank_id: str, entries: Iterable[Entry]) -> Registry:
    """Fold registry entries into a :class:`Registry` (authorizing each).

    Raises:
        CreditBankError: the first entry that does not apply.
    """
    reg = Registry(bank_id)
    for e in entries:
        if e.type in REGISTRY_TYPES:
            reg.authorize(e)
            reg.apply(e)
    return reg
