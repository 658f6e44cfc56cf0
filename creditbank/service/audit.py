"""``creditbank audit``: replay the whole log and check everything that can be checked.

For every entry, in index order: the index sequence has no gap; the stored bytes parse
strictly (canonical JCS, v1); the stored leaf hash and level-0 node equal SHA-256(0x00‖bytes);
the signature verifies against the key registered for its signer at its time (registry
replayed from the log itself). Every stored Merkle node is recomputed; the head row matches;
every stored checkpoint's signature verifies with the log key, its root equals the recomputed
root at its size, and consecutive checkpoints are proven consistent.

Worker processes (one per core) each take an aligned power-of-two chunk of indexes, read it
from the database themselves, and check the sequence, leaf hashes, strict parse, signatures
(with the key each key id names in the registry entries, prescanned) and every Merkle node
inside the chunk. Only a summary crosses back. Every authorization decision is made in order
by the main process, which replays the registry: registry entries and entries whose key the
workers lack are decided one by one (re-verifying where needed); between two registry entries
one registry state applies, and a signer key's validity is an interval of time, so each
(issuer, key id) of such a run is checked at the earliest and the latest time it signed (a run
that fails is re-read and decided entry by entry). The main process also joins the chunks'
subtrees, checking the nodes above them, the head and the checkpoints.

The workers' side (the chunk checks, the key prescan, the chunking) is ``audit_chunks``.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from creditbank.core import merkle
from creditbank.core.checkpoint import verify_checkpoint
from creditbank.core.entries import REGISTRY_TYPES, parse_entry, parse_time
from creditbank.core.registry import Registry
from creditbank.core.signing import load_public_key, parse_verifier_key, verify_signature
from creditbank.errors import CreditBankError
from creditbank.service.audit_chunks import (
    Checked,
    ChunkResult,
    WorkerState,
    audit_chunk,
    blame,
    chunks_of,
    prescan_keys,
    windowed,
    worker_init,
)
from creditbank.service.bank import Bank
from creditbank.service.clock import SystemClock
from creditbank.service.projection import compare_with_log
from creditbank.storage import ledger_repo as repo


@dataclass(frozen=True, slots=True)
class AuditProblem:
    index: int | None
    code: str
    detail: str


@dataclass
class AuditReport:
    size: int = 0
    checkpoints: int = 0
    problems: list[AuditProblem] = field(default_factory=list)
    seconds: float = 0.0
    workers: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first_bad_index(self) -> int | None:
        idx = [p.index for p in self.problems if p.index is not None]
        return min(idx) if idx else None

    @property
    def entries_per_second(self) -> float:
        return self.size / self.seconds if self.seconds > 0 else 0.0


# -- main side ------------------------------------------------------------------------------
class _StopReplay(Exception):  # noqa: N818 - control flow only
    pass


class _Replay:
    """The in-order part of the audit: registry, authorization, joining chunk subtrees."""

    def __init__(
        self,
        bank: Bank,
        prescan: dict[str, bytes],
        want_sizes: set[int],
        problems: list[AuditProblem],
    ) -> None:
        self.bank = bank
        self.prescan = prescan
        self.want_sizes = sorted(want_sizes)
        self.problems = problems
        self.registry = Registry(bank.settings.bank_id)
        self.pubcache: dict[bytes, Any] = {}
        self.size = 0
        #: compact range of the tree so far: (level, index, hash), left to right
        self.stack: list[tuple[int, int, bytes]] = []
        self.roots_at: dict[int, bytes] = {0: merkle.EMPTY_ROOT}
        #: mismatched nodes (level, index) -> the index their problem names
        self.bad_nodes: dict[tuple[int, int], int] = {}

    @property
    def border(self) -> list[bytes]:
        return [h for _, _, h in self.stack]

    def cuts_for(self, start: int, end: int) -> tuple[int, ...]:
        return tuple(s for s in self.want_sizes if start < s <= end)

    def _authorize(self, idx: int, data: bytes, c: Checked) -> AuditProblem | None:
        _, err, verified, type_, issuer, key_id, at = c
        if err is not None:
            return AuditProblem(idx, err, f"entry {idx}: {err}")
        try:
            if type_ in REGISTRY_TYPES or not verified:
                e = parse_entry(data)
                pub = self.registry.authorize(e)
                if not (verified and self.prescan.get(e.key_id) == pub):
                    key = self.pubcache.get(pub)
                    if key is None:
                        key = self.pubcache[pub] = load_public_key(pub)
                    verify_signature(key, e.signed_bytes, e.sig)
                self.registry.apply(e)
                return None
            pub = self.registry.key_for(issuer, key_id, parse_time(at))
            if self.prescan.get(key_id) != pub:  # worker used another key: check ourselves
                e = parse_entry(data)
                verify_signature(pub, e.signed_bytes, e.sig)
        except CreditBankError as ex:
            return AuditProblem(idx, ex.code, f"entry {idx}: {ex}")
        return None

    def _segment(
        self,
        begin: int,
        end: int,
        groups: dict[tuple[str, str], tuple[datetime, datetime]],
        skip: set[int],
        out: list[tuple[int, AuditProblem]],
    ) -> None:
        """Authorize a run of worker-verified entries under one registry state.

        ``key_for`` accepts an interval of times, so it accepts every entry of a group iff it
        accepts the earliest and the latest, with the key the worker verified with. A group
        that fails is re-read and decided entry by entry, exactly as for a single entry.
        """
        failed: set[tuple[str, str]] = set()
        for (issuer, key_id), (lo, hi) in groups.items():
            want = self.prescan.get(key_id)
            try:
                ok = (
                    self.registry.key_for(issuer, key_id, lo) == want
                    and self.registry.key_for(issuer, key_id, hi) == want
                )
            except CreditBankError:
                ok = False
            if not ok:
                failed.add((issuer, key_id))
        if not failed:
            return
        with self.bank.engine.connect() as conn:
            rows = repo.entry_tuples(conn, begin, end)
        for idx, data, _ in rows:
            if idx in skip:
                continue
            try:
                e = parse_entry(data)
            except CreditBankError:
                continue  # reported by the worker
            if (e.issuer, e.key_id) not in failed or e.type in REGISTRY_TYPES:
                continue
            if e.key_id not in self.prescan:
                continue  # not part of a group (decided as a single entry)
            p = self._authorize(idx, data, (idx, None, True, e.type, e.issuer, e.key_id, e.at))
            if p is not None:
                out.append((idx, p))

    def consume(self, r: ChunkResult) -> None:
        if r.start != self.size:
            raise AssertionError(f"chunk at {r.start}, replay at {self.size}")
        found: list[tuple[int, int, AuditProblem]] = [
            (i, 0, AuditProblem(i, "log.leaf_hash", f"stored leaf hash of entry {i} is wrong"))
            for i in r.leaf_bad
        ]
        found += [(i, 1, AuditProblem(i, code, f"entry {i}: {code}")) for i, code in r.errors]
        found += [
            (
                i,
                2,
                AuditProblem(
                    i, "log.column", f"log_entries row {i}: {col} is {have!r}, the log says {exp!r}"
                ),
            )
            for i, col, have, exp in r.columns_bad
        ]
        skip = {i for i, _ in r.errors}
        decided: list[tuple[int, AuditProblem]] = []
        for ev in r.events:
            if ev[0] == "s":
                _, begin, end, groups = ev  # type: ignore[misc]
                if groups:
                    self._segment(begin, end, groups, skip, decided)
            else:
                _, c, data = ev  # type: ignore[misc]
                p = self._authorize(c[0], data, c)
                if p is not None:
                    decided.append((c[0], p))
        found += [(i, 1, p) for i, p in decided]
        found.sort(key=lambda t: (t[0], t[1]))
        self.problems.extend(p for _, _, p in found)
        if r.gap:
            self.problems.append(AuditProblem(r.stop, "log.gap", f"entry {r.stop} is missing"))
        self.problems.extend(
            AuditProblem(at, "log.node", f"stored node ({lvl},{i}) is {what}")
            for at, lvl, i, what in r.node_problems
        )
        self.bad_nodes.update(r.bad_nodes)
        self._join(r)
        if r.gap:
            raise _StopReplay

    def _join(self, r: ChunkResult) -> None:
        """Push the chunk's subtrees onto the compact range; check the nodes that completes."""
        if r.stop == r.start:
            return
        before = self.border
        for size, hashes in r.cuts.items():
            self.roots_at[size] = merkle.fold_right(before + hashes)
        made: list[tuple[int, int, bytes]] = []
        for (lvl, i), h in zip(merkle.range_nodes(r.start, r.stop), r.tops, strict=True):
            cur = h
            while self.stack and self.stack[-1][0] == lvl:
                _, _, left = self.stack.pop()
                cur = merkle.node_hash(left, cur)
                lvl, i = lvl + 1, i >> 1
                made.append((lvl, i, cur))
            self.stack.append((lvl, i, cur))
        self.size = r.stop
        self.roots_at[r.stop] = merkle.fold_right(self.border)
        if not made:
            return
        with self.bank.engine.connect() as conn:
            stored = repo.fetch_nodes(conn, [(lvl, i) for lvl, i, _ in made])
        for lvl, i, hsh in made:  # children come before their parents
            got = stored.get((lvl, i))
            if got != hsh:
                what = "missing" if got is None else "wrong"
                at = blame(self.bad_nodes, lvl, i)
                self.bad_nodes[(lvl, i)] = at
                self.problems.append(
                    AuditProblem(at, "log.node", f"stored node ({lvl},{i}) is {what}")
                )


def _cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def run_audit(
    bank: Bank,
    *,
    progress: Callable[[int, int], None] | None = None,
    workers: int | None = None,
    projections: bool = True,
) -> AuditReport:
    """Replay and check the whole log. Problems are reported, not raised.

    Then the stored checkpoint history (no hole) and, with ``projections``, every derived
    column and projection row against what the log implies (``log.column``,
    ``projection.wrong|missing|extra``, naming the row).

    Raises:
        StorageError: only if the database cannot be read at all.
    """
    clock = SystemClock()
    started = clock.monotonic()
    report = AuditReport()
    problems = report.problems
    with bank.engine.connect() as conn:
        head, end = repo.head_and_entry_end(conn)
        checkpoints = repo.all_checkpoints(conn)
        prescan = prescan_keys(repo.registry_entries(conn))
    total = head.size
    nproc = workers if workers is not None else _cores()
    report.workers = nproc
    report.checkpoints = len(checkpoints)
    replay = _Replay(bank, prescan, {cp.size for cp in checkpoints}, problems)
    tasks = [(a, b, replay.cuts_for(a, b)) for a, b in chunks_of(end, nproc)]
    last_report = started
    stopped = False
    pool: ProcessPoolExecutor | None = None
    try:
        if nproc > 0:  # start the workers first: they run while the checkpoints are checked
            ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else None
            url = bank.engine.url.render_as_string(hide_password=False)
            pool = ProcessPoolExecutor(
                nproc, mp_context=ctx, initializer=worker_init, initargs=(url, prescan)
            )
            results: Iterator[ChunkResult] = windowed(pool, tasks, 2 * nproc + 2)
        else:
            local = WorkerState(bank.engine, {k: load_public_key(p) for k, p in prescan.items()})
            results = (audit_chunk(local, *t) for t in tasks)
        vkey = parse_verifier_key(bank.verifier_key)
        for cp in checkpoints:
            try:
                body = verify_checkpoint(cp.note, vkey)
            except CreditBankError as e:
                problems.append(
                    AuditProblem(None, "checkpoint.signature", f"checkpoint of size {cp.size}: {e}")
                )
                continue
            if body.size != cp.size or body.root != cp.root:
                problems.append(
                    AuditProblem(
                        None,
                        "checkpoint.columns",
                        f"checkpoint of size {cp.size}: note and stored columns differ",
                    )
                )
        for r in results:
            replay.consume(r)
            if progress is not None and clock.monotonic() - last_report >= 1.0:
                progress(replay.size, total)
                last_report = clock.monotonic()
    except _StopReplay:
        stopped = True
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    if progress is not None:
        progress(replay.size, total)
    if not stopped:
        if replay.size != head.size:
            problems.append(
                AuditProblem(
                    replay.size, "log.gap", f"head says {head.size} entries, found {replay.size}"
                )
            )
        elif merkle.fold_right(replay.border) != head.root:
            problems.append(AuditProblem(None, "log.head", "head root differs from the log"))
    prev: repo.StoredCheckpoint | None = None
    for cp in checkpoints:
        want = replay.roots_at.get(cp.size)
        if want is None:
            if not stopped:
                problems.append(
                    AuditProblem(
                        None,
                        "checkpoint.beyond_log",
                        f"checkpoint of size {cp.size} is beyond the log",
                    )
                )
            continue
        if cp.root != want:
            problems.append(
                AuditProblem(
                    max(cp.size - 1, 0),
                    "checkpoint.root",
                    f"checkpoint of size {cp.size} does not match the log",
                )
            )
            continue
        if prev is not None and prev.size > 0 and not stopped:
            try:
                with bank.engine.connect() as conn:
                    proof = merkle.consistency_proof(
                        prev.size, cp.size, lambda ids: repo.fetch_nodes(conn, ids)
                    )
                merkle.verify_consistency(prev.size, cp.size, prev.root, cp.root, proof)
            except (CreditBankError, KeyError) as e:
                problems.append(
                    AuditProblem(
                        None,
                        "checkpoint.inconsistent",
                        f"checkpoints {prev.size} and {cp.size}: {e}",
                    )
                )
        prev = cp
    problems.extend(_checkpoint_history(bank, checkpoints))
    if not stopped and projections:
        problems.extend(_projection_problems(bank, replay.size))
    report.size = replay.size
    report.seconds = clock.monotonic() - started
    return report


def _checkpoint_history(bank: Bank, checkpoints: list[repo.StoredCheckpoint]) -> list[AuditProblem]:
    """The stored checkpoint history has no hole (ADR 0007).

    Checkpoints are signed per batch, at sizes nothing else predicts, so each one stored since
    migration 0007 names the size published before it (``prev_size``), and the head row keeps
    the latest published size: a checkpoint deleted between two kept ones breaks the chain
    (the next names a size that is not stored), and a deleted latest one leaves the head's
    published size without its row.
    """
    out: list[AuditProblem] = []
    with bank.engine.connect() as conn:
        published = repo.published_size(conn)
    sizes = {cp.size for cp in checkpoints}
    prev: int | None = None
    for cp in checkpoints:  # in size order
        if cp.prev_size is not None and cp.prev_size != prev:
            missing = cp.prev_size not in sizes
            out.append(
                AuditProblem(
                    max(cp.prev_size - 1, 0) if missing else None,
                    "checkpoint.hole",
                    f"checkpoint of size {cp.size} follows the one of size {cp.prev_size}, "
                    + (
                        "which is not stored (deleted?)"
                        if missing
                        else f"but the one stored before it has size {prev}"
                    ),
                )
            )
        prev = cp.size
    latest = checkpoints[-1].size if checkpoints else 0
    if published != latest:
        out.append(
            AuditProblem(
                max(published - 1, 0) if published > latest else None,
                "checkpoint.hole",
                f"the head says a checkpoint of size {published} was published; the latest "
                f"stored has size {latest}",
            )
        )
    return out


#: projection differences listed per table at most (the first is what matters)
MAX_PROJECTION_PROBLEMS = 20


def _projection_problems(bank: Bank, size: int) -> list[AuditProblem]:
    """Every derived column and projection row equals what the log implies (first differing
    rows named; see :mod:`creditbank.service.projection`)."""
    validated = bank.ledger.validator is not None
    with bank.engine.connect() as conn:
        check = compare_with_log(
            conn, bank.settings.bank_id, validated=validated, size=size, envelope=False
        )
    out: list[AuditProblem] = []
    per_table: dict[str, int] = {}
    for d in sorted(check.differences, key=lambda d: (d.entry_idx, d.table)):
        n = per_table[d.table] = per_table.get(d.table, 0) + 1
        if n > MAX_PROJECTION_PROBLEMS:
            continue
        code = "log.column" if d.table in ("log_entries", "log_head") else "projection." + d.kind
        out.append(AuditProblem(d.entry_idx, code, d.describe()))
    return out
