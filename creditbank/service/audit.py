"""``creditbank audit``: replay the whole log and check everything that can be checked.

For every entry, in index order: the index sequence has no gap; the stored bytes parse
strictly (canonical JCS, v1); the stored leaf hash and level-0 node equal SHA-256(0x00‖bytes);
the signature verifies against the key registered for its signer at its time (registry
replayed from the log itself). Every stored Merkle node is recomputed; the head row matches;
every stored checkpoint's signature verifies with the log key, its root equals the recomputed
root at its size, and consecutive checkpoints are proven consistent.

Signature checks, the expensive part, run in worker processes over chunks; the main process
replays the registry, hashes and rebuilds the tree. Workers only do crypto with keys they are
given; every authorization decision is made in order by the main process, which re-verifies
anything a worker could not (a key registered inside the same chunk).
"""

from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from creditbank.core import merkle
from creditbank.core.checkpoint import verify_checkpoint
from creditbank.core.entries import REGISTRY_TYPES, Entry, parse_entry, parse_time
from creditbank.core.registry import Registry
from creditbank.core.signing import (
    b64decode,
    load_public_key,
    parse_verifier_key,
    verify_signature,
)
from creditbank.errors import CreditBankError
from creditbank.service.bank import Bank
from creditbank.service.clock import SystemClock
from creditbank.storage import ledger_repo as repo

CHUNK = 4000


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


# -- worker side ----------------------------------------------------------------------------
_W_KEYS: dict[str, Any] = {}

#: (index, error code or None, signature verified, type, issuer, key_id, at)
Checked = tuple[int, "str | None", bool, str, str, str, str]


def _worker_init(keys: dict[str, bytes]) -> None:
    _W_KEYS.clear()
    _W_KEYS.update({kid: load_public_key(pub) for kid, pub in keys.items()})


def _check_chunk(rows: list[tuple[int, bytes]]) -> list[Checked]:
    """Parse each entry strictly and verify its signature if the key is known."""
    out: list[Checked] = []
    for idx, data in rows:
        try:
            e = parse_entry(data)
        except CreditBankError as err:
            out.append((idx, err.code, False, "", "", "", ""))
            continue
        key = _W_KEYS.get(e.key_id)
        ok = False
        if key is not None:
            try:
                verify_signature(key, e.signed_bytes, e.sig)
                ok = True
            except CreditBankError as err:
                out.append((idx, err.code, False, e.type, e.issuer, e.key_id, e.at))
                continue
        out.append((idx, None, ok, e.type, e.issuer, e.key_id, e.at))
    return out


# -- main side ------------------------------------------------------------------------------
def _rows(bank: Bank) -> Iterator[list[Any]]:
    with bank.engine.connect() as conn:
        chunk: list[Any] = []
        for row in repo.iter_entries(conn, chunk=CHUNK):
            chunk.append(row)
            if len(chunk) >= CHUNK:
                yield chunk
                chunk = []
        if chunk:
            yield chunk


class _StopReplay(Exception):  # noqa: N818 - control flow only
    pass


class _Replay:
    """The in-order part of the audit: registry, hashes, nodes, roots at checkpoint sizes."""

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
        self.border: list[bytes] = []
        self.roots_at: dict[int, bytes] = {0: merkle.EMPTY_ROOT}
        #: mismatched nodes (level, index) -> the index their problem names
        self.bad_nodes: dict[tuple[int, int], int] = {}

    def _authorize(self, idx: int, data: bytes, c: Checked) -> None:
        _, err, verified, type_, issuer, key_id, at = c
        if err is not None:
            self.problems.append(AuditProblem(idx, err, f"entry {idx}: {err}"))
            return
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
                return
            pub = self.registry.key_for(issuer, key_id, parse_time(at))
            if self.prescan.get(key_id) != pub:  # worker used another key: check ourselves
                e = parse_entry(data)
                verify_signature(pub, e.signed_bytes, e.sig)
        except CreditBankError as ex:
            self.problems.append(AuditProblem(idx, ex.code, f"entry {idx}: {ex}"))

    def consume(self, rows: list[Any], checked: list[Checked]) -> None:
        leaf_hashes: list[bytes] = []
        for row, c in zip(rows, checked, strict=True):
            idx = int(row.idx)
            expect = self.size + len(leaf_hashes)
            if idx != expect:
                self.problems.append(AuditProblem(expect, "log.gap", f"entry {expect} is missing"))
                self._advance(leaf_hashes)
                raise _StopReplay
            data = bytes(row.data)
            h = merkle.leaf_hash(data)
            if bytes(row.leaf_hash) != h:
                self.problems.append(
                    AuditProblem(idx, "log.leaf_hash", f"stored leaf hash of entry {idx} is wrong")
                )
            leaf_hashes.append(h)
            self._authorize(idx, data, c)
        self._advance(leaf_hashes)

    def _advance(self, leaf_hashes: list[bytes]) -> None:
        """Append leaves, check stored nodes, record roots at checkpoint sizes."""
        if not leaf_hashes:
            return
        start = self.size
        end = start + len(leaf_hashes)
        cuts = [s for s in self.want_sizes if start < s < end] + [end]
        nodes: list[tuple[int, int, bytes]] = []
        pos = start
        for cut in cuts:
            app = merkle.append_leaves(pos, self.border, leaf_hashes[pos - start : cut - start])
            nodes.extend(app.nodes)
            self.border = list(app.border)
            self.roots_at[cut] = app.root
            pos = cut
        self.size = end
        with self.bank.engine.connect() as conn:
            stored = repo.fetch_nodes(conn, [(lvl, i) for lvl, i, _ in nodes])
        for lvl, i, hsh in nodes:  # children come before their parents
            got = stored.get((lvl, i))
            if got != hsh:
                what = "missing" if got is None else "wrong"
                # A bad child makes every ancestor differ too: blame the first bad index
                # below, not the first leaf of the subtree (which may be a good entry).
                below = [
                    self.bad_nodes[c]
                    for c in ((lvl - 1, 2 * i), (lvl - 1, 2 * i + 1))
                    if lvl and c in self.bad_nodes
                ]
                at = min(below) if below else i << lvl
                self.bad_nodes[(lvl, i)] = at
                self.problems.append(
                    AuditProblem(at, "log.node", f"stored node ({lvl},{i}) is {what}")
                )


def run_audit(
    bank: Bank,
    *,
    progress: Callable[[int, int], None] | None = None,
    workers: int | None = None,
) -> AuditReport:
    """Replay and check the whole log. Problems are reported, not raised.

    Raises:
        StorageError: only if the database cannot be read at all.
    """
    clock = SystemClock()
    started = clock.monotonic()
    report = AuditReport()
    problems = report.problems
    with bank.engine.connect() as conn:
        head = repo.read_head(conn)
        checkpoints = repo.all_checkpoints(conn)
        prescan = _prescan_keys(repo.registry_entries(conn))
    total = head.size
    nproc = workers if workers is not None else max(1, os.cpu_count() or 1)
    report.workers = nproc
    report.checkpoints = len(checkpoints)
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
    replay = _Replay(bank, prescan, {cp.size for cp in checkpoints}, problems)
    ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else mp.get_context()
    pool = (
        ProcessPoolExecutor(nproc, mp_context=ctx, initializer=_worker_init, initargs=(prescan,))
        if nproc > 0
        else None
    )
    if pool is None:
        _worker_init(prescan)
    last_report = started
    stopped = False
    try:
        pending: list[tuple[list[Any], Future[list[Checked]] | list[Checked]]] = []
        for rows in _rows(bank):
            payload = [(int(r.idx), bytes(r.data)) for r in rows]
            pending.append(
                (rows, pool.submit(_check_chunk, payload) if pool else _check_chunk(payload))
            )
            while len(pending) > 2 * max(nproc, 1) or (pending and pool is None):
                r0, f0 = pending.pop(0)
                replay.consume(r0, f0.result() if isinstance(f0, Future) else f0)
                if progress is not None and clock.monotonic() - last_report >= 1.0:
                    progress(replay.size, total)
                    last_report = clock.monotonic()
        while pending:
            r0, f0 = pending.pop(0)
            replay.consume(r0, f0.result() if isinstance(f0, Future) else f0)
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
    report.size = replay.size
    report.seconds = clock.monotonic() - started
    return report


def _prescan_keys(registry_raws: list[bytes]) -> dict[str, bytes]:
    """Every key id → public key named by registry entries (for the workers only)."""
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
                    keys[k["key_id"]] = b64decode(str(k.get("public_key", "")))
                except CreditBankError:
                    continue
    return keys
