"""Inclusion and consistency proof latency at growing log sizes, in process, from the database.

For each backend the log is grown to each of ``--sizes`` (default 10k, 100k, 1M). Entries are
real signed record entries (signed once, in parallel, before any timing), inserted with
``bench.raw_append``: the rows and ``merkle.append_leaves`` nodes that ``Ledger.append``
stores, in batches of 10,000, minus the signature and registry checks (building 1M entries
through the full signed path would take minutes per backend for no benefit to this
measurement). A checkpoint is published after every batch, so there are many published sizes.

At each size ``n`` (a published size):

* ``Ledger.inclusion_proof(i, n)`` for random ``i`` (default 1,000 calls),
* ``Ledger.consistency_proof(m, n)`` for random earlier published ``m`` (default 300 calls),

each timed from call to return (connection checkout, published-size check, one node read,
assembly), and every proof verified against the checkpoint roots (outside the timing).

Naive baseline: the same proofs from all leaf hashes read from the database (RFC 6962's
recursive definition over the level-0 hashes: O(n) reads and hashing per proof).

Target: <= 1 ms (median) at 1M on SQLite, growing with log n.

    .venv/bin/python -m bench.bench_proofs [--backends sqlite,pg] [--sizes 10000,100000,1000000]
"""

from __future__ import annotations

import argparse
import math
from typing import Any

from bench import (
    DEFAULT_PG,
    BenchBank,
    Rng,
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
from creditbank.core.signing import Ed25519Signer
from creditbank.service.bank import Bank
from creditbank.service.clock import SystemClock
from creditbank.storage import ledger_repo as repo

BATCH = 10_000


def percentile(xs: list[float], p: float) -> float:
    ys = sorted(xs)
    return ys[min(len(ys) - 1, max(0, math.ceil(p / 100 * len(ys)) - 1))]


def grow(bank: Bank, raws: list[bytes], to: int) -> None:
    """Append ``raws`` from the current size up to ``to`` entries, a checkpoint per batch."""
    size = bank.ledger.head().size
    while size < to:
        n = min(BATCH, to - size)
        off = size - 2  # genesis and the college come first
        size = raw_append(bank, raws[off : off + n], publish=True)


def naive_inclusion(conn: Any, index: int, size: int) -> list[bytes]:
    leaves = repo.leaf_hashes(conn, 0, size)
    return [
        merkle.root_from_leaf_hashes(leaves[b:e]) for b, e in merkle.inclusion_plan(index, size)
    ]


def naive_consistency(conn: Any, first: int, second: int) -> list[bytes]:
    leaves = repo.leaf_hashes(conn, 0, second)
    return [
        merkle.root_from_leaf_hashes(leaves[b:e]) for b, e in merkle.consistency_plan(first, second)
    ]


def measure(bank: Bank, size: int, args: argparse.Namespace, seed: int) -> dict[str, Any]:
    rng = Rng(seed)
    with bank.engine.connect() as conn:
        cps = {cp.size: cp for cp in repo.all_checkpoints(conn)}
    assert size in cps, "benchmark sizes must be published sizes"
    root = cps[size].root
    earlier = [s for s in cps if 0 < s < size]
    led = bank.ledger
    for _ in range(20):  # warm up (connection pool, statement caches)
        led.inclusion_proof(rng.randrange(size), size)
    incl: list[float] = []
    for _ in range(args.inclusion):
        i = rng.randrange(size)
        t = perf()
        leaf, proof = led.inclusion_proof(i, size)
        incl.append(perf() - t)
        merkle.verify_inclusion(i, size, leaf, proof, root)
    cons: list[float] = []
    for _ in range(args.consistency):
        m = rng.choice(earlier)
        t = perf()
        proof2 = led.consistency_proof(m, size)
        cons.append(perf() - t)
        merkle.verify_consistency(m, size, cps[m].root, root, proof2)
    naive_i: list[float] = []
    naive_c: list[float] = []
    k = args.naive if size <= 100_000 else args.naive_large
    with bank.engine.connect() as conn:
        for _ in range(k):
            i = rng.randrange(size)
            t = perf()
            got = naive_inclusion(conn, i, size)
            naive_i.append(perf() - t)
            assert got == led.inclusion_proof(i, size)[1]
            m = rng.choice(earlier)
            t = perf()
            got = naive_consistency(conn, m, size)
            naive_c.append(perf() - t)
            assert got == led.consistency_proof(m, size)
    ms = 1e3
    return {
        "size": size,
        "inclusion_calls": len(incl),
        "inclusion_median_ms": percentile(incl, 50) * ms,
        "inclusion_p90_ms": percentile(incl, 90) * ms,
        "inclusion_p99_ms": percentile(incl, 99) * ms,
        "consistency_calls": len(cons),
        "consistency_median_ms": percentile(cons, 50) * ms,
        "consistency_p90_ms": percentile(cons, 90) * ms,
        "consistency_p99_ms": percentile(cons, 99) * ms,
        "naive_calls": k,
        "naive_inclusion_median_ms": percentile(naive_i, 50) * ms if naive_i else None,
        "naive_consistency_median_ms": percentile(naive_c, 50) * ms if naive_c else None,
    }


def run_backend(
    backend: str, bb: BenchBank, raws: list[bytes], args: argparse.Namespace
) -> list[dict[str, Any]]:
    bank = bb.bank
    out = []
    for size in args.sizes:
        t = perf()
        grow(bank, raws, size)
        built = perf() - t
        r = measure(bank, size, args, seed=size)
        r["backend"] = backend
        r["build_seconds"] = built
        out.append(r)
        print(
            f"[{backend}] {size:>9,}: inclusion {r['inclusion_median_ms']:.3f} ms, "
            f"consistency {r['consistency_median_ms']:.3f} ms (grown in {built:.0f} s)",
            flush=True,
        )
    bb.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--backends", default="sqlite,pg")
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--inclusion", type=int, default=1000, help="inclusion proofs per size")
    ap.add_argument("--consistency", type=int, default=300, help="consistency proofs per size")
    ap.add_argument("--naive", type=int, default=5, help="naive proofs per size up to 100k")
    ap.add_argument("--naive-large", type=int, default=2, help="naive proofs per size above")
    ap.add_argument("--pg-url", default=DEFAULT_PG)
    ap.add_argument("--json")
    args = ap.parse_args()
    args.sizes = sorted(int(s) for s in args.sizes.split(","))
    if any(s % BATCH and s > BATCH for s in args.sizes):
        raise SystemExit(f"sizes above {BATCH} must be multiples of {BATCH}")
    info = machine_info(args.pg_url)
    seed = bytes(range(32))
    signer = Ed25519Signer.from_seed(seed)
    backends = [b for b in args.backends.split(",") if b]
    # every bank registers COL-1 (same key) before the entries are signed, so that they are
    # valid in each log (an audit of it passes)
    banks: dict[str, BenchBank] = {}
    try:
        for b in backends:
            banks[b] = make_bank(b, args.pg_url, tag="proofs")
            register_college(banks[b].bank, "COL-1", seed)
        t = perf()
        raws = sign_records_parallel(SystemClock(), "COL-1", signer, args.sizes[-1] - 2)
        print(f"signed {len(raws):,} entries in {perf() - t:.0f} s", flush=True)
        results = [r for b in backends for r in run_backend(b, banks[b], raws, args)]
    finally:
        for bb in banks.values():
            bb.close()
    rows = []
    for r in results:
        rows.append(
            [
                r["backend"],
                r["size"],
                r["inclusion_median_ms"],
                r["inclusion_p99_ms"],
                r["consistency_median_ms"],
                r["consistency_p99_ms"],
                r["naive_inclusion_median_ms"] or "-",
                r["naive_consistency_median_ms"] or "-",
                math.ceil(math.log2(r["size"])),
            ]
        )
    print_table(
        "proof latency (ms, in process, from the database)",
        [
            "backend",
            "entries",
            "incl. median",
            "incl. p99",
            "cons. median",
            "cons. p99",
            "naive incl.",
            "naive cons.",
            "log2 n",
        ],
        rows,
    )
    write_json(args.json, {"benchmark": "proofs", "machine": info, "results": results})


if __name__ == "__main__":
    main()
