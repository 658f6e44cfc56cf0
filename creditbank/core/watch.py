"""The checks behind the institution's watch over the log (pure; no I/O).

Shared by ``creditbank monitor`` (:mod:`creditbank.client.monitor`, which fetches the log
over HTTP and trusts nothing) and the institution console's "Log watch" (which runs them
over the bank's own stored log): the same alert codes and wording in both places.

- :func:`check_claim`: an entry in the institution's name (issuer = it, or ``on_behalf_of``
  = it) must be signed under a key the issuer had registered and not revoked at the entry's
  ``at``, and a custodian must be the institution's registered custodian.
- :func:`check_signature`: the entry's signature verifies with that key.
- :func:`change_about`: a registry entry's change for the institution, in words.
- :func:`check_checkpoints`: every stored checkpoint verifies with the log key, sizes grow,
  and each root is the root of the tree's first ``size`` leaves.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from creditbank.core.checkpoint import verify_checkpoint
from creditbank.core.entries import Entry, parse_time, verify_entry_signature
from creditbank.core.registry import Registry
from creditbank.core.signing import VerifierKey
from creditbank.errors import CreditBankError, InvalidInputError, RevokedError, UnknownKeyError


@dataclass(frozen=True, slots=True)
class Alert:
    """Something the institution must look at. ``index`` names the entry; checkpoint-level
    alerts name the checkpoint ``size`` instead."""

    code: str
    detail: str
    index: int | None = None
    size: int | None = None

    @property
    def where(self) -> str:
        """``index N``, ``checkpoint N`` or ``log``."""
        if self.index is not None:
            return f"index {self.index}"
        if self.size is not None:
            return f"checkpoint {self.size}"
        return "log"

    def as_dict(self) -> dict[str, Any]:
        """The alert as JSON-ready data."""
        return {"index": self.index, "size": self.size, "code": self.code, "detail": self.detail}


def claims_institution(issuer: Any, on_behalf_of: Any, me: str) -> bool:
    """Whether an entry with this issuer and ``on_behalf_of`` claims the institution ``me``."""
    return bool(issuer == me or (on_behalf_of or issuer) == me)


def check_claim(
    registry: Registry | None,
    me: str,
    index: int,
    kind: Any,
    issuer: str,
    key_id: str,
    at: str,
) -> tuple[bytes | None, Alert | None]:
    """Check an entry in ``me``'s name against the registry (not its signature).

    Args:
        registry: the registry as replayed up to the entry (None: no genesis yet).
        me: the watched institution.
        index: the entry's index.
        kind: the entry's type.
        issuer: the entry's issuer.
        key_id: the key id the entry says it is signed with.
        at: the entry's signing time, as written.

    Returns:
        ``(public key, None)`` if the key was valid at ``at``, else ``(None, alert)``.
    """
    try:
        when = parse_time(at)
    except InvalidInputError:
        return None, Alert(
            "entry.malformed", f"entry {index} in {me}'s name has no valid time", index
        )
    if registry is None:
        return None, Alert(
            "entry.unknown_key",
            f"{kind} entry {index} claims {me} but precedes the bank's registry",
            index,
        )
    try:
        public = registry.key_for(issuer, key_id, when)
    except UnknownKeyError:
        return None, Alert(
            "entry.unknown_key",
            f"{kind} entry {index} claims {me} (issuer {issuer}) but is signed with key "
            f"{key_id}, which {issuer} had not registered at {at}",
            index,
        )
    except RevokedError as err:
        return None, Alert(
            "entry.revoked_key",
            f"{kind} entry {index} claims {me} but is signed with a revoked key: {err}",
            index,
        )
    if issuer != me:
        inst = registry.institutions.get(me)
        if inst is None or inst.custodian != issuer:
            return None, Alert(
                "entry.not_custodian",
                f"{kind} entry {index} was posted on behalf of {me} by {issuer}, which is "
                f"not {me}'s registered custodian",
                index,
            )
    return public, None


def check_signature(e: Entry, public: bytes, index: int, me: str) -> Alert | None:
    """An ``entry.signature`` alert if ``e``'s signature does not verify with ``public``."""
    try:
        verify_entry_signature(e, public)
    except CreditBankError as err:
        return Alert(
            "entry.signature",
            f"{e.type} entry {index} claims {me} but its signature does not verify with "
            f"{e.issuer}'s registered key {e.key_id}: {err}",
            index,
        )
    return None


def change_about(e: Entry, me: str) -> str | None:
    """A registry entry's change for ``me`` in words, or None if it is not about ``me``."""
    body = e.body
    iid = body.get("institution_id")
    if e.type == "institution.closed" and body.get("custodian") == me and iid != me:
        return f"{me} was named custodian of {iid} (closed on {body.get('closed_on')})"
    if iid != me:
        return None
    if e.type == "institution.registered":
        keys = ", ".join(str(k.get("key_id")) for k in body.get("keys", []) if isinstance(k, dict))
        return f"{me} registered with key(s) {keys}"
    if e.type == "institution.key_added":
        return f"key {body.get('key_id')} added to {me}"
    if e.type == "institution.key_revoked":
        return (
            f"key {body.get('key_id')} of {me} revoked from {body.get('effective_at')} "
            f"({body.get('reason')})"
        )
    if e.type == "institution.closed":
        return f"{me} closed on {body.get('closed_on')}; custodian {body.get('custodian')}"
    return f"{e.type} about {me}"


def key_lines(registry: Registry | None, me: str) -> list[str]:
    """The institution's keys and their validity, in words."""
    inst = registry.institutions.get(me) if registry else None
    if inst is None:
        return []
    out = []
    for ks in inst.keys.values():
        until = f" until {ks.revoked_at.isoformat()}" if ks.revoked_at else ""
        out.append(f"key {ks.key_id} valid from {ks.added_at.isoformat()}{until}")
    if inst.closed_on is not None:
        out.append(f"closed on {inst.closed_on.isoformat()}; custodian {inst.custodian}")
    return out


def institution_summary(registry: Registry, me: str) -> str:
    """The institution's keys in one line (``not registered`` / ``no keys``)."""
    if me not in registry.institutions:
        return "not registered"
    lines = key_lines(registry, me)
    return "; ".join(lines) if lines else "no keys"


def check_checkpoints(
    notes: Sequence[tuple[int, str]],
    verifier: VerifierKey,
    root_of: Callable[[int], bytes],
) -> list[Alert]:
    """Check a history of signed checkpoints against the log key and the tree.

    Args:
        notes: ``(stored size, signed note)`` in the order they were published.
        verifier: the log's verifier key.
        root_of: the root of the first ``size`` leaves of the log as it is now.

    Returns:
        One alert per checkpoint that does not verify (``checkpoint.signature``), says
        another size than it is stored under or shrinks (``checkpoint.rollback``), or whose
        root is not the log's root at that size (``log.inconsistent``).
    """
    alerts: list[Alert] = []
    last = -1
    for stored, note in notes:
        try:
            cp = verify_checkpoint(note, verifier)
        except CreditBankError as err:
            alerts.append(Alert(
                "checkpoint.signature",
                f"the checkpoint of size {stored} does not verify with the log key: {err} "
                f"[{err.code}]",
                size=stored,
            ))  # fmt: skip
            continue
        if cp.size != stored or cp.size < last:
            alerts.append(Alert(
                "checkpoint.rollback",
                f"the checkpoint stored as size {stored} says size {cp.size} (after {last})",
                size=stored,
            ))  # fmt: skip
            continue
        last = cp.size
        if root_of(cp.size) != cp.root:
            alerts.append(Alert(
                "log.inconsistent",
                f"the checkpoint of size {cp.size} signs a root that is not the root of the "
                f"log's first {cp.size} entries: the log was rewritten after it",
                size=cp.size,
            ))  # fmt: skip
    return alerts


__all__ = [
    "Alert",
    "change_about",
    "check_checkpoints",
    "check_claim",
    "check_signature",
    "claims_institution",
    "institution_summary",
    "key_lines",
]
