"""The audit's log checks over chunks of entries, run in worker processes (or in the
auditing process): sequence, leaf hashes, strict parse, signatures with the prescanned
keys, and every Merkle node inside a chunk; only a :class:`ChunkResult` crosses back.
The in-order decisions (registry, authorization, joining the chunks) are
:mod:`creditbank.service.audit`'s.
"""

from __future__ import annotations

import gc
import hashlib
import itertools
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.engine import Connection

from creditbank.core import merkle
from creditbank.core.entries import REGISTRY_TYPES, Entry, parse_entry, parse_entry_fields
from creditbank.core.signing import b64decode, entry_key_id, load_public_key, verify_signature
from creditbank.errors import CreditBankError
from creditbank.storage import ledger_repo as repo
from creditbank.storage.engine import make_engine

#: entries per worker task: a complete subtree (level CHUNK_LEVEL), so a worker can rebuild
#: and check every node inside its chunk; the main process only joins chunk roots.
CHUNK_LEVEL = 12
CHUNK = 1 << CHUNK_LEVEL

_sha256 = hashlib.sha256


#: (index, error code or None, signature verified, type, issuer, key_id, at)
Checked = tuple[int, "str | None", bool, str, str, str, str]

#: A run of entries between registry entries (so one registry state applies to all of it):
#: ``("s", begin, end, {(issuer, key_id): (earliest at, latest at)})`` over its entries whose
#: signature a worker verified with the prescanned key of their ``key_id``.
Segment = tuple[str, int, int, dict[tuple[str, str], tuple[datetime, datetime]]]
#: An entry the main process decides itself (registry entries, keys the workers lack).
Single = tuple[str, Checked, bytes]


@dataclass(frozen=True, slots=True)
class ChunkResult:
    """What a worker found in entries ``[start, stop)`` (``stop < end`` after a gap)."""

    start: int
    stop: int
    gap: bool
    leaf_bad: list[int]  # stored leaf hash differs
    errors: list[tuple[int, str]]  # (index, code): parse or signature failures
    events: list[Segment | Single]  # in index order
    node_problems: list[tuple[int, int, int, str]]  # (blamed index, level, index, what)
    bad_nodes: dict[tuple[int, int], int]  # mismatched node -> blamed index
    tops: list[bytes]  # hashes of merkle.range_nodes(start, stop)
    cuts: dict[int, list[bytes]]  # start < size < stop -> hashes of range_nodes(start, size)
    #: (index, column, stored, from the bytes): envelope columns that differ from the entry
    columns_bad: list[tuple[int, str, object, object]] = field(default_factory=list)


# -- worker side ----------------------------------------------------------------------------
@dataclass
class WorkerState:
    engine: Engine
    keys: dict[str, Any]  # key id -> loaded Ed25519 public key


_W: WorkerState | None = None


def worker_init(url: str, prescan: dict[str, bytes]) -> None:
    """Pool initializer: a worker's own engine (never the parent's pooled connections)."""
    global _W  # per-process worker state
    _W = WorkerState(make_engine(url), {k: load_public_key(p) for k, p in prescan.items()})
    # A worker makes no reference cycles worth collecting often: fewer young-generation
    # collections over the millions of short-lived parse objects.
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)


def _worker_chunk(start: int, end: int, cuts: tuple[int, ...]) -> ChunkResult:
    assert _W is not None  # noqa: S101 - set by the pool initializer
    return audit_chunk(_W, start, end, cuts)


def audit_chunk(st: WorkerState, start: int, end: int, cuts: tuple[int, ...]) -> ChunkResult:
    """Check entries ``[start, end)`` (a power-of-two run, ``start`` a multiple of its length):
    sequence, leaf hashes, strict parse, signatures with the prescanned keys, and every node
    inside."""
    keys = st.keys
    with st.engine.connect() as conn:
        rows = repo.entry_tuples_with_columns(conn, start, end)
        stop, gap = end, False
        if len(rows) != end - start:  # indexes are unique, so a full count means no gap
            j = next((j for j, r in enumerate(rows) if r[0] != start + j), len(rows))
            stop, gap, rows = start + j, True, rows[:j]
        leaves: list[bytes] = []
        leaf_bad: list[int] = []
        errors: list[tuple[int, str]] = []
        events: list[Segment | Single] = []
        groups: dict[tuple[str, str], list[datetime]] = {}
        seg_start = start
        sha256, parse, add_leaf, group_of = _sha256, parse_entry_fields, leaves.append, groups.get
        columns_bad: list[tuple[int, str, object, object]] = []
        for idx, data, stored_leaf, *stored in rows:
            h = sha256(b"\x00" + data).digest()
            add_leaf(h)
            if h != stored_leaf:
                leaf_bad.append(idx)
            try:
                obj, sig, msg, t = parse(data)
            except CreditBankError as err:
                errors.append((idx, err.code))
                continue
            type_, issuer, key_id, at = obj["type"], obj["issuer"], obj["key_id"], obj["at"]
            learner = obj["body"].get("learner")
            want = (type_, issuer, key_id, at, learner if isinstance(learner, str) else None)
            if tuple(stored) != want:  # the envelope columns access control reads
                for col, have, exp in zip(repo.ENVELOPE_COLUMNS, stored, want, strict=True):
                    # a revocation is about its target's learner (checked with the projections)
                    if have != exp and not (col == "subject" and type_ == "record.revoked"):
                        columns_bad.append((idx, col, have, exp))
            key = keys.get(key_id)
            if key is not None:
                if msg is None:  # Entry.signed_bytes raises: the sig member is not unique
                    errors.append((idx, "entry.bad_sig"))
                    continue
                try:
                    key.verify(sig, msg)  # verify_signature minus its checks of the arguments
                except Exception:  # verify_signature decides and names the error
                    try:
                        verify_signature(key, msg, sig)
                    except CreditBankError as err:
                        errors.append((idx, err.code))
                        continue
            if key is None or type_ in REGISTRY_TYPES:
                if type_ in REGISTRY_TYPES:
                    events.append(("s", seg_start, idx, _freeze(groups)))
                    groups, seg_start = {}, idx + 1
                    group_of = groups.get
                events.append(("e", (idx, None, key is not None, type_, issuer, key_id, at), data))
                continue
            g = group_of((issuer, key_id))
            if g is None:
                groups[(issuer, key_id)] = [t, t]
            elif t < g[0]:
                g[0] = t
            elif t > g[1]:
                g[1] = t
        events.append(("s", seg_start, stop, _freeze(groups)))
        levels = _levels(leaves)
        node_problems, bad_nodes = _check_nodes(conn, start, levels)
    tops: list[bytes] = []
    cut_hashes: dict[int, list[bytes]] = {}
    if stop > start:
        tops = _range_hashes(start, stop, levels)
        for size in cuts:  # strictly inside: appended to the compact range of ``start``
            if start < size < stop:  # (aligned to the chunk length) they give that of ``size``
                cut_hashes[size] = _range_hashes(start, size, levels)
    return ChunkResult(
        start,
        stop,
        gap,
        leaf_bad,
        errors,
        events,
        node_problems,
        bad_nodes,
        tops,
        cut_hashes,
        columns_bad,
    )


def _freeze(
    groups: dict[tuple[str, str], list[datetime]],
) -> dict[tuple[str, str], tuple[datetime, datetime]]:
    """Earliest and latest time of each group."""
    return {k: (v[0], v[1]) for k, v in groups.items()}


def _levels(leaves: list[bytes]) -> list[list[bytes]]:
    """Every complete subtree hash over ``leaves`` (an aligned run), level by level."""
    levels = [leaves]
    cur = leaves
    while len(cur) >= 2:
        cur = [_sha256(b"\x01" + a + b).digest() for a, b in zip(cur[::2], cur[1::2], strict=False)]
        levels.append(cur)
    return levels


def _range_hashes(start: int, stop: int, levels: list[list[bytes]]) -> list[bytes]:
    return [levels[lvl][i - (start >> lvl)] for lvl, i in merkle.range_nodes(start, stop)]


def _check_nodes(
    conn: Connection, start: int, levels: list[list[bytes]]
) -> tuple[list[tuple[int, int, int, str]], dict[tuple[int, int], int]]:
    """Compare recomputed nodes with the stored ones, one range read per level."""
    wrong: list[tuple[int, int, str]] = []
    for lvl, hashes in enumerate(levels):
        if not hashes:
            break
        lo = start >> lvl
        if repo.node_hashes(conn, lvl, lo, lo + len(hashes)) == hashes:
            continue  # unique ids in the range and a full count: positions match
        got = dict(repo.node_tuples(conn, lvl, lo, lo + len(hashes)))
        for j, hsh in enumerate(hashes):
            have = got.get(merkle.node_key(lvl, lo + j))
            if have != hsh:
                wrong.append((lvl, lo + j, "missing" if have is None else "wrong"))
    # children before parents, in the order the nodes complete as leaves are appended
    wrong.sort(key=lambda w: (((w[1] + 1) << w[0]) - 1, w[0]))
    bad: dict[tuple[int, int], int] = {}
    out: list[tuple[int, int, int, str]] = []
    for lvl, i, what in wrong:
        at = blame(bad, lvl, i)
        bad[(lvl, i)] = at
        out.append((at, lvl, i, what))
    return out, bad


def blame(bad: dict[tuple[int, int], int], lvl: int, i: int) -> int:
    """A bad child makes every ancestor differ too: blame the first bad index below, not the
    first leaf of the subtree (which may be a good entry)."""
    below = [bad[c] for c in ((lvl - 1, 2 * i), (lvl - 1, 2 * i + 1)) if lvl and c in bad]
    return min(below) if below else i << lvl


def chunks_of(end: int, nproc: int) -> list[tuple[int, int]]:
    """Aligned power-of-two chunks covering ``[0, end)``: :data:`CHUNK` entries each, and a
    quarter of that over the last stretch so that the workers finish together."""
    small = CHUNK // 4
    big_end = max(0, end - 4 * max(nproc, 1) * CHUNK) // CHUNK * CHUNK
    out = [(a, a + CHUNK) for a in range(0, big_end, CHUNK)]
    return out + [(a, min(a + small, end)) for a in range(big_end, end, small)]


class windowed:  # noqa: N801 - used like a generator function
    """Results in task order with at most ``window`` tasks in flight; the first are
    submitted at once (so workers start while the caller does other work)."""

    def __init__(
        self,
        pool: ProcessPoolExecutor,
        tasks: list[tuple[int, int, tuple[int, ...]]],
        window: int,
    ) -> None:
        self.pool = pool
        self.it = iter(tasks)
        self.pending: deque[Future[ChunkResult]] = deque(
            pool.submit(_worker_chunk, *t) for t in itertools.islice(self.it, window)
        )

    def __iter__(self) -> Iterator[ChunkResult]:
        return self

    def __next__(self) -> ChunkResult:
        if not self.pending:
            raise StopIteration
        r = self.pending.popleft().result()
        for t in itertools.islice(self.it, 1):
            self.pending.append(self.pool.submit(_worker_chunk, *t))
        return r


def prescan_keys(registry_raws: list[bytes]) -> dict[str, bytes]:
    """Every key id → public key named by registry entries (for the workers only).

    Only keys that the registry could ever accept (a valid Ed25519 key whose id is its
    ``entry_key_id``) are kept; the workers' checks are then re-decided in order anyway.
    """
    keys: dict[str, bytes] = {}
    for raw in registry_raws:
        try:
            e: Entry = parse_entry(raw)
        except CreditBankError:
            continue
        body = e.body
        cands = body.get("keys", []) if e.type == "institution.registered" else [body]
        for k in cands if isinstance(cands, list) else []:
            if isinstance(k, dict) and isinstance(k.get("key_id"), str):
                try:
                    pub = b64decode(str(k.get("public_key", "")))
                    load_public_key(pub)
                except CreditBankError:
                    continue
                if entry_key_id(pub) == k["key_id"]:
                    keys[k["key_id"]] = pub
    return keys
