"""The console's "Log watch": ``creditbank monitor``'s checks over the bank's own stored log.

The same pure checks (:mod:`creditbank.core.watch`) as the institution's monitor, run over
the log as the bank stores it, for one institution: every entry that claims it (issuer = it,
or ``on_behalf_of`` = it) must be signed under one of its keys registered and valid at the
entry's time (or by its registered custodian) and its signature must verify; every registry
entry must be signed by the bank and apply, and a change about the institution after its
registration (key added or revoked, closed, named custodian) is shown; every stored
checkpoint must verify with the log key and sign the root of the log's first ``size``
entries. The monitor remains the independent check (it trusts nothing the bank says); this
view shows the operator the same alerts without running it. See docs/monitor.md.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from creditbank.core import merkle
from creditbank.core.entries import REGISTRY_TYPES, parse_entry
from creditbank.core.registry import Registry
from creditbank.core.signing import parse_verifier_key
from creditbank.core.watch import (
    Alert,
    change_about,
    check_checkpoints,
    check_claim,
    check_signature,
    claims_institution,
    key_lines,
)
from creditbank.errors import CreditBankError, StorageError
from creditbank.service.bank import Bank
from creditbank.storage import ledger_repo as repo

#: bytes that only an entry naming an ``on_behalf_of`` owner contains (skips parsing the rest)
_OWNER_MARK = b'"on_behalf_of"'


@dataclass(slots=True)
class WatchReport:
    """What the watch saw for one institution over the whole stored log."""

    institution: str
    size: int = 0
    checkpoints: int = 0
    #: entries claiming the institution, and of them the ones whose signature verified
    claimed: int = 0
    verified: int = 0
    alerts: list[Alert] = field(default_factory=list)
    #: the registration itself (the baseline, not an alert): ``(index, words)``
    baseline: list[tuple[int, str]] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether there is no alert."""
        return not self.alerts


def watch_institution(bank: Bank, institution_id: str) -> WatchReport:
    """Run the monitor's checks over the stored log for ``institution_id``.

    Args:
        bank: the open bank.
        institution_id: the operator's institution.

    Returns:
        The report; alerts sorted by index, checkpoint alerts last.

    Raises:
        StorageError: if the database is unavailable.
    """
    rep = WatchReport(institution_id)
    me = institution_id
    registry = Registry(bank.settings.bank_id)
    try:
        with bank.engine.connect() as conn:
            head = repo.read_head(conn)
            rep.size = head.size
            for row in repo.iter_entries(conn, 0, head.size):
                index, kind, issuer = int(row.idx), str(row.type), str(row.issuer)
                raw = bytes(row.data)
                if kind in REGISTRY_TYPES:
                    _registry_entry(rep, registry, index, raw)
                    continue
                if issuer != me and _OWNER_MARK not in raw:
                    continue
                _claimed_entry(rep, registry, index, raw, row)
            stored = repo.all_checkpoints(conn)
            rep.checkpoints = len(stored)

            def root_of(size: int) -> bytes:
                return merkle.root_at(size, lambda ids: _nodes(conn, ids))

            rep.alerts.extend(
                check_checkpoints(
                    [(cp.size, cp.note) for cp in stored],
                    parse_verifier_key(bank.verifier_key),
                    root_of,
                )
            )
    except SQLAlchemyError as e:
        raise StorageError(f"cannot read the log: {type(e).__name__}") from e
    rep.alerts.sort(key=lambda a: (a.index is None, a.index or 0, a.size or 0, a.code))
    rep.keys = key_lines(registry, me)
    return rep


def _nodes(conn: Any, ids: Sequence[merkle.NodeID]) -> Mapping[merkle.NodeID, bytes]:
    return repo.fetch_nodes(conn, ids)


def _registry_entry(rep: WatchReport, registry: Registry, index: int, raw: bytes) -> None:
    """Replay one registry entry (its bank signature checked); note a change about us."""
    try:
        e = parse_entry(raw)
        registry.authorize(e)  # checks the bank's signature too
        registry.apply(e)
    except CreditBankError as err:
        rep.alerts.append(
            Alert(
                "registry.invalid",
                f"registry entry {index} does not apply: {err} [{err.code}]",
                index,
            )
        )
        return
    change = change_about(e, rep.institution)
    if change is not None:
        if e.type == "institution.registered" and e.body.get("institution_id") == rep.institution:
            rep.baseline.append((index, change))
        else:
            rep.alerts.append(Alert("registry.changed", change, index))


def _claimed_entry(rep: WatchReport, registry: Registry, index: int, raw: bytes, row: Any) -> None:
    """Check one entry that may claim the institution: key, custodian, signature."""
    me = rep.institution
    try:
        e = parse_entry(raw)
    except CreditBankError as err:
        if str(row.issuer) == me:
            rep.alerts.append(
                Alert("entry.malformed", f"entry {index} does not parse: {err}", index)
            )
        return
    owner = e.body.get("on_behalf_of")
    if not claims_institution(e.issuer, owner if isinstance(owner, str) else None, me):
        return
    rep.claimed += 1
    public, alert = check_claim(registry, me, index, e.type, e.issuer, e.key_id, e.at)
    if alert is None and public is not None:
        alert = check_signature(e, public, index, me)
    if alert is not None:
        rep.alerts.append(alert)
    else:
        rep.verified += 1


__all__ = ["WatchReport", "watch_institution"]
