"""Verified, signed appends per second, by batch size, on SQLite and PostgreSQL.

Setup (not timed): a fresh bank per backend and mode, one registered college, the log
pre-filled to ``--prefill`` entries (default 100,000) with ``bench.raw_append``, and every
entry to append signed beforehand (distinct entries, so none is an idempotent re-post).

Timed: ``Ledger.append(batch)`` calls back to back on one thread. Each call parses every
entry strictly, verifies its Ed25519 signature, takes the sequencing lock, authorizes the
key against the registry, computes and inserts the entry rows and Merkle nodes, updates the
head and commits durably (SQLite: WAL, ``synchronous=FULL``, the default; PostgreSQL:
``synchronous_commit=on``). Modes:

* ``none``: ``publish=False``, no checkpoint;
* ``per batch``: ``publish=True``, a signed checkpoint (with its consistency check against
  the previous one) in every transaction;
* ``group x8``: batch size 1 from 8 threads through ``GroupCommitter`` (the API's path),
  which merges concurrent requests into shared transactions.

Naive baseline (same run, its own bank with the same pre-fill): what a first implementation
would do: per batch one transaction that verifies and inserts the entries and then recomputes
the root from all leaf hashes in the log (no stored nodes, so O(n) per commit).

Targets: >= 5,000/s on SQLite and >= 3,000/s on PostgreSQL at the best batch size.

    .venv/bin/python -m bench.bench_append [--backends sqlite,pg] [--prefill 100000] [--json f]
"""

from __future__ import annotations

import argparse
import threading
from collections.abc import Sequence
from typing import Any

from bench import (
    DEFAULT_PG,
    BenchBank,
    machine_info,
    make_bank,
    perf,
    print_table,
    raw_append,
    register_college,
    sign_records_parallel,
    write_json,
)
from creditbank.core import merkle
from creditbank.core.entries import parse_entry
from creditbank.core.registry import Registry
from creditbank.core.signing import Ed25519Signer, verify_signature
from creditbank.service.bank import Bank
from creditbank.service.clock import SystemClock
from creditbank.service.ledger import GroupCommitter
from creditbank.storage import ledger_repo as repo
from creditbank.storage.engine import IMMEDIATE
from creditbank.storage.tables import entries_t

SEED = bytes(range(1, 33))
#: entries timed per (batch size, mode); sized for a few seconds each
COUNTS = {1: 2_000, 100: 20_000, 1000: 50_000}
NAIVE_COUNTS = {1: 50, 100: 2_000, 1000: 10_000}
GROUP_THREADS = 8
GROUP_COUNT = 8_000


class Pool:
    """Pre-signed entries, handed out once each."""

    def __init__(self, raws: list[bytes]) -> None:
        self.raws = raws
        self.pos = 0

    def take(self, n: int) -> list[bytes]:
        if self.pos + n > len(self.raws):
            raise SystemExit("pre-signed pool exhausted (a bug in the counts)")
        out = self.raws[self.pos : self.pos + n]
        self.pos += n
        return out


def new_bank(backend: str, args: argparse.Namespace) -> BenchBank:
    """A bank with COL-1 registered (before any of its entries is signed)."""
    bb = make_bank(backend, args.pg_url, tag="append")
    register_college(bb.bank, "COL-1", SEED)
    return bb


def prefill_bank(bb: BenchBank, prefill: list[bytes]) -> None:
    for i in range(0, len(prefill), 10_000):
        raw_append(bb.bank, prefill[i : i + 10_000])
    bb.bank.ledger.publish()


def run_ours(bank: Bank, raws: list[bytes], batch: int, publish: bool) -> float:
    led = bank.ledger
    led.append(raws[:batch], publish=publish)  # warm up (registry cache, statements)
    rest = raws[batch:]
    t = perf()
    for i in range(0, len(rest), batch):
        led.append(rest[i : i + batch], publish=publish)
    return len(rest) / (perf() - t)


def run_group(bank: Bank, raws: list[bytes], threads: int) -> float:
    gc = GroupCommitter(bank.ledger)
    gc.submit(raws[:1])
    rest = raws[1:]
    parts = [rest[k::threads] for k in range(threads)]

    def work(part: list[bytes]) -> None:
        for raw in part:
            gc.submit([raw])

    ts = [threading.Thread(target=work, args=(p,)) for p in parts]
    t = perf()
    for th in ts:
        th.start()
    for th in ts:
        th.join()
    rate = len(rest) / (perf() - t)
    gc.close()
    return rate


def naive_append(bank: Bank, registry: Registry, raws: Sequence[bytes]) -> None:
    """One transaction: verify, insert, recompute the root from every leaf hash, update."""
    entries = [parse_entry(r) for r in raws]
    for e in entries:
        verify_signature(registry.authorize(e), e.signed_bytes, e.sig)
    with bank.engine.connect().execution_options(**{IMMEDIATE: True}) as conn, conn.begin():
        head = repo.lock_head(conn)
        rows = [
            {
                "idx": head.size + i,
                "data": e.raw,
                "leaf_hash": merkle.leaf_hash(e.raw),
                "type": e.type,
                "issuer": e.issuer,
                "key_id": e.key_id,
                "at": e.at,
                "subject": e.body.get("learner"),
                "ingested_at": "2026-11-22T00:00:00Z",
            }
            for i, e in enumerate(entries)
        ]
        repo.insert_entries(conn, rows)
        leaves = [
            bytes(r[0])
            for r in conn.execute(
                entries_t.select()
                .with_only_columns(entries_t.c.leaf_hash)
                .order_by(entries_t.c.idx)
            )
        ]
        root = merkle.root_from_leaf_hashes(leaves)
        repo.write_head(
            conn, repo.Head(len(leaves), root, head.registry_count), "2026-11-22T00:00:00Z"
        )


def run_naive(bank: Bank, raws: list[bytes], batch: int) -> float:
    registry = bank.ledger.registry()
    naive_append(bank, registry, raws[:batch])
    rest = raws[batch:]
    t = perf()
    for i in range(0, len(rest), batch):
        naive_append(bank, registry, rest[i : i + batch])
    return len(rest) / (perf() - t)


def run_backend(
    backend: str,
    banks: tuple[BenchBank, BenchBank | None],
    args: argparse.Namespace,
    prefill: list[bytes],
    pool: Pool,
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []

    def row(mode: str, batch: int, n: int, rate: float) -> None:
        out.append({"backend": backend, "mode": mode, "batch": batch, "entries": n, "rate": rate})
        print(f"[{backend}] {mode:>9} batch {batch:>5}: {rate:>9,.0f} entries/s", flush=True)

    ours, naive = banks
    prefill_bank(ours, prefill)
    for batch in args.batches:
        n = COUNTS[batch] // args.scale
        row("none", batch, n, run_ours(ours.bank, pool.take(n + batch), batch, False))
    for batch in args.batches:
        n = COUNTS[batch] // args.scale // 2
        row("per batch", batch, n, run_ours(ours.bank, pool.take(n + batch), batch, True))
    n = GROUP_COUNT // args.scale
    row(f"group x{GROUP_THREADS}", 1, n, run_group(ours.bank, pool.take(n + 1), GROUP_THREADS))
    ours.close()
    if naive is not None:
        prefill_bank(naive, prefill)
        for batch in args.batches:
            n = NAIVE_COUNTS[batch] // args.scale
            row("naive", batch, n, run_naive(naive.bank, pool.take(n + batch), batch))
        naive.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--backends", default="sqlite,pg")
    ap.add_argument("--batches", default="1,100,1000")
    ap.add_argument("--prefill", type=int, default=100_000, help="log size before timing")
    ap.add_argument("--scale", type=int, default=1, help="divide every timed count by this")
    ap.add_argument("--no-naive", action="store_true")
    ap.add_argument("--pg-url", default=DEFAULT_PG)
    ap.add_argument("--json")
    args = ap.parse_args()
    args.batches = [int(b) for b in args.batches.split(",")]
    backends = [b for b in args.backends.split(",") if b]
    info = machine_info(args.pg_url)
    signer = Ed25519Signer.from_seed(SEED)
    per_backend = sum(
        COUNTS[b] // args.scale + b + COUNTS[b] // args.scale // 2 + b for b in args.batches
    )
    per_backend += GROUP_COUNT // args.scale + 1
    per_backend += sum(NAIVE_COUNTS[b] // args.scale + b for b in args.batches)
    # every bank registers COL-1 first, so the entries' times fall inside its key's validity
    banks = {b: (new_bank(b, args), None if args.no_naive else new_bank(b, args)) for b in backends}
    try:
        t = perf()
        clock = SystemClock()
        prefill = sign_records_parallel(clock, "COL-1", signer, args.prefill, salt="p")
        timed = sign_records_parallel(clock, "COL-1", signer, per_backend * len(backends), salt="t")
        print(f"signed {len(prefill) + len(timed):,} entries in {perf() - t:.0f} s", flush=True)
        pool = Pool(timed)
        results = [r for b in backends for r in run_backend(b, banks[b], args, prefill, pool)]
    finally:
        for pair in banks.values():
            for bb in pair:
                if bb is not None:
                    bb.close()
    print_table(
        f"verified signed appends per second (log pre-filled to {args.prefill:,})",
        ["backend", "mode", "batch", "entries", "entries/s"],
        [[r["backend"], r["mode"], r["batch"], r["entries"], r["rate"]] for r in results],
    )
    for backend, target in (("sqlite", 5000), ("pg", 3000)):
        rs = [r for r in results if r["backend"] == backend and r["mode"] == "none"]
        if rs:
            best = max(rs, key=lambda r: r["rate"])
            verdict = "PASS" if best["rate"] >= target else "FAIL"
            print(
                f"[{backend}] best {best['rate']:,.0f}/s at batch {best['batch']}: "
                f"target {target:,}/s {verdict}"
            )
    write_json(args.json, {"benchmark": "append", "machine": info, "results": results})


if __name__ == "__main__":
    main()
