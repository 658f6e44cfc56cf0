"""The import's records step: every outcome, revocation and closure of the dataset posted
in timeline order, each signed by its poster (see :mod:`creditbank.service.importer`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import Engine, select
from sqlalchemy.engine import Connection

from creditbank.core.entries import parse_entry
from creditbank.core.identity import name_commitment
from creditbank.core.records import (
    record_body_from_sample,
    record_entry_type_from_sample,
    revocation_body_from_sample,
    validate_record_body,
)
from creditbank.errors import ConflictError, CreditBankError, InvalidInputError
from creditbank.service.demo import closure_entry
from creditbank.service.importer_context import ImportContext, Pending, record_digest
from creditbank.service.importer_dataset import REF_RECORD, REF_REVOCATION
from creditbank.storage import ledger_repo
from creditbank.storage.tables import records_t, revocations_t

# same-day order of timeline events
_PHASE_POST: Final = 0
_PHASE_REVOKE: Final = 1
_PHASE_CLOSE: Final = 2
_PHASE_CUSTODIAN: Final = 3


@dataclass
class _Event:
    day: str
    phase: int
    key: str  # outcome id (posts), "rev:"+id, "close:"+institution id
    depends: str | None
    pending: Pending | None
    #: already present and checked locally (its signer has closed): its stored reference
    present: tuple[Pending, int] | None = None


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
                Pending(raw, None, "institutions_closed"),
            )
        )
    ordered = _timeline(events)
    present = [e.present for e in ordered if e.present is not None]
    ctx.report.duplicates += len(present)
    ctx.remember(ctx.ref_row(p, index) for p, index in present)
    ctx.append("records", [e.pending for e in ordered if e.pending is not None])


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
        if bytes(row.digest) != record_digest(body) or row.entry_type != type_:
            raise ConflictError(
                f"record {oid} of {owner} already exists with other content",
                code="record.conflict",
            )
        local = (Pending(b"", None, "", **ref), int(row.entry_idx))
        return _Event(posted_at, phase, oid, depends, None, local)
    counter = "corrections_posted" if type_ == "record.corrected" else "records_posted"
    pending = Pending(ctx.sign(type_, signer, body), {"name_on_record": name}, counter, **ref)
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
        if bytes(row.digest) != record_digest(body):
            raise ConflictError(
                f"record {oid} of {owner} is already revoked", code="record.already_revoked"
            )
        local = (Pending(b"", None, "", **ref), int(row.entry_idx))
        return _Event(revoked_at, phase, "rev:" + oid, oid, None, local)
    pending = Pending(ctx.sign("record.revoked", signer, body), None, "revocations_posted", **ref)
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
