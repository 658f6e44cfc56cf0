"""The public, metadata-only envelope listing that monitors read (docs/monitor.md, ADR 0009).

For each index of the published log it gives what an entry's envelope says — ``type``,
``issuer``, ``key_id``, ``at`` and the owner it was posted for (``on_behalf_of``, institution
metadata) — and the leaf hash of the stored bytes, never a body field about the learner and
never the subject. A monitor checks each listed leaf hash against the leaf hashes that rebuild
the signed root, so the listing cannot point at bytes outside the verified tree.

Every field is read from the stored entry bytes (the bytes the tree commits to), not from the
derived ``log_entries`` columns, so a changed ``type`` or ``issuer`` column changes nothing
here. An entry whose stored bytes do not parse is listed with ``type`` and the other fields
null, and its leaf hash.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from sqlalchemy import select

from creditbank.core.entries import parse_entry_fields
from creditbank.core.merkle import leaf_hash
from creditbank.core.registry import Registry
from creditbank.core.signing import b64encode
from creditbank.errors import CreditBankError, InvalidInputError
from creditbank.service.bank import Bank
from creditbank.storage import ledger_repo as repo
from creditbank.storage.tables import entries_t

#: envelopes returned by one request at most
MAX_ENVELOPES: Final = 1_000
#: entries read by one batch request at most
MAX_BATCH_ENTRIES: Final = 100


def envelope_of(index: int, data: bytes) -> dict[str, Any]:
    """The listing item of entry ``index`` with stored bytes ``data``."""
    item: dict[str, Any] = {
        "index": index,
        "type": None,
        "issuer": None,
        "key_id": None,
        "at": None,
        "on_behalf_of": None,
        "leaf_hash": b64encode(leaf_hash(data)),
    }
    try:
        obj, _, _, _ = parse_entry_fields(data)
    except CreditBankError:
        return item
    body = obj.get("body")
    owner = body.get("on_behalf_of") if isinstance(body, dict) else None
    item.update(
        type=obj["type"],
        issuer=obj["issuer"],
        key_id=obj["key_id"],
        at=obj["at"],
        on_behalf_of=owner if isinstance(owner, str) else None,
    )
    return item


def envelopes(bank: Bank, start: int, end: int) -> list[dict[str, Any]]:
    """Envelopes of the entries ``[start, end)``, within the latest published size.

    Raises:
        InvalidInputError: ``log.bad_range`` for an empty, reversed or too long range;
            ``log.unpublished_size`` if ``end`` is beyond the latest published checkpoint.
    """
    if start < 0 or end <= start or end - start > MAX_ENVELOPES:
        raise InvalidInputError(
            f"need 0 <= start < end, at most {MAX_ENVELOPES} envelopes", code="log.bad_range"
        )
    with bank.engine.connect() as conn:
        cp = repo.latest_checkpoint(conn)
        if cp is None or end > cp.size:
            raise InvalidInputError(
                "range goes beyond the published size", code="log.unpublished_size"
            )
        rows = repo.entry_tuples(conn, start, end)
    return [envelope_of(int(idx), bytes(data)) for idx, data, _ in rows]


def entries_at(bank: Bank, indexes: Sequence[int]) -> tuple[dict[int, Any], Registry]:
    """The stored rows of the given indexes that exist (one query), and one snapshot of the
    registry to decide who may read them with
    (:func:`creditbank.service.record_listing.entry_resource`).

    Raises:
        InvalidInputError: ``log.bad_batch`` for no index or more than
            :data:`MAX_BATCH_ENTRIES`.
    """
    wanted = sorted(set(indexes))
    if not wanted or len(wanted) > MAX_BATCH_ENTRIES:
        raise InvalidInputError(
            f"give 1 to {MAX_BATCH_ENTRIES} distinct indexes", code="log.bad_batch"
        )
    with bank.engine.connect() as conn:
        rows = conn.execute(select(entries_t).where(entries_t.c.idx.in_(wanted))).all()
    return {int(r.idx): r for r in rows}, bank.ledger.registry()


__all__ = [
    "MAX_BATCH_ENTRIES",
    "MAX_ENVELOPES",
    "entries_at",
    "envelope_of",
    "envelopes",
]
