"""Audit rate vs the raw Ed25519 verify rate of the cores the audit uses.

For each backend: build a log of ``--size`` signed entries through the full signed path
(``Ledger.append`` in batches of 1,000: parse, verify, sequence, commit), from five
institutions, with a key rotation (a second key added, the first revoked) in the middle and a
checkpoint every 10,000 entries. Then, alternating so that load drift hits both alike:

* the raw verify rate of one core: ``Ed25519PublicKey.verify`` (cryptography) over the signed
  bytes of 20,000 entries of this log, with their keys (same message sizes);
* ``run_audit(bank, workers=W)`` (W = the cores, by default), wall clock from call to report,
  plus the CPU time of the main process and of its workers;
* the naive baseline: one process, entry by entry: the reference strict parse (duplicate-key
  hook, re-canonicalize), registry authorization, verification with the registry key, leaf
  hash; then every node recomputed from all leaf hashes and compared in batches, and every
  checkpoint root recomputed from the leaf hashes.

Target: audit rate >= 80 % of (verify rate per core x cores used).

    .venv/bin/python -m bench.bench_audit [--backends sqlite,pg] [--size 100000] [--json out]
"""

from __future__ import annotations

import argparse
import datetime as dt
import multiprocessing as mp
import os
import resource
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from bench import (
    DEFAULT_PG,
    BenchBank,
    cpu_time,
    machine_info,
    make_bank,
    median,
    perf,
    print_table,
    register_college,
    sign_records_parallel,
    write_json,
)
from creditbank.core import canonical, merkle
from creditbank.core.checkpoint import verify_checkpoint
from creditbank.core.entries import (
    MAX_ENTRY_SIZE,
    Entry,
    _check_envelope,
    format_time,
    parse_entry,
)
from creditbank.core.registry import Registry
from creditbank.core.signing import (
    Ed25519Signer,
    b64decode,
    b64encode,
    entry_key_id,
    load_public_key,
    parse_verifier_key,
    verify_signature,
)
from creditbank.service.audit import AuditReport, run_audit
from creditbank.service.bank import Bank
from creditbank.storage import ledger_repo as repo

COLLEGES = 4
BATCH = 1000
CHECKPOINT_EVERY = 10  # batches


# -- building the log ---------------------------------------------------------------------
def build_log(backend: str, size: int, pg_url: str) -> BenchBank:
    bb = make_bank(backend, pg_url, tag="audit")
    bank = bb.bank
    t0 = perf()
    signers = {f"COL-{c}": register_college(bank, f"COL-{c}") for c in range(COLLEGES)}
    first = (size - bank.ledger.head().size) // 2
    _append_round_robin(bank, signers, first, "a")
    # rotation: COL-0 gets a second key, its first key is revoked from now on
    new = Ed25519Signer.from_seed(os.urandom(32))
    old = signers["COL-0"]
    bank.ledger.append(
        [
            bank.bank_entry(
                "institution.key_added",
                {
                    "institution_id": "COL-0",
                    "key_id": entry_key_id(new.public_bytes),
                    "public_key": b64encode(new.public_bytes),
                },
            ),
            bank.bank_entry(
                "institution.key_revoked",
                {
                    "institution_id": "COL-0",
                    "key_id": entry_key_id(old.public_bytes),
                    "effective_at": format_time(bank.clock.now() + dt.timedelta(seconds=1)),
                    "reason": "rotation",
                },
            ),
        ],
        publish=True,
    )
    signers["COL-0"] = new
    _append_round_robin(bank, signers, size - bank.ledger.head().size, "b")
    bank.ledger.publish()
    print(f"[{backend}] built a log of {bank.ledger.head().size:,} entries in {perf() - t0:.0f} s")
    return bb


def _append_round_robin(bank: Bank, signers: dict[str, Ed25519Signer], n: int, salt: str) -> None:
    names = list(signers)
    per = [n // len(names) + (1 if i < n % len(names) else 0) for i in range(len(names))]
    parts = [
        sign_records_parallel(bank.clock, name, signers[name], k, salt=f"{salt}{name}")
        for name, k in zip(names, per, strict=True)
    ]
    mixed = [raw for group in zip(*parts, strict=False) for raw in group]
    mixed += [raw for p in parts for raw in p[min(map(len, parts)) :]]
    for b, i in enumerate(range(0, len(mixed), BATCH)):
        bank.ledger.append(mixed[i : i + BATCH], publish=(b % CHECKPOINT_EVERY == 0))


# -- measurements ---------------------------------------------------------------------------
def verify_sample(bank: Bank, n: int = 20_000) -> list[tuple[Ed25519PublicKey, bytes, bytes]]:
    """(key, signature, signed bytes) of ``n`` record entries of the log."""
    with bank.engine.connect() as conn:
        keys = {k: load_public_key(v) for k, v in bank.ledger.registry().public_keys().items()}
        out = []
        for row in repo.iter_entries(conn, 0, None, chunk=5000):
            e = parse_entry(bytes(row.data))
            if e.type == "record.posted":
                out.append((keys[e.key_id], e.sig, e.signed_bytes))
            if len(out) >= n:
                break
    return out


def verify_rate(sample: list[tuple[Ed25519PublicKey, bytes, bytes]]) -> tuple[float, float]:
    """Verifications per second on one core (wall clock), and CPU seconds per verification
    (best of 3 passes each)."""
    best, best_cpu = float("inf"), float("inf")
    for _ in range(3):
        t, c = perf(), cpu_time()
        for key, sig, msg in sample:
            key.verify(sig, msg)
        best, best_cpu = min(best, perf() - t), min(best_cpu, cpu_time() - c)
    return len(sample) / best, best_cpu / len(sample)


_SAMPLE: list[tuple[Ed25519PublicKey, bytes, bytes]] = []


def _verify_all(_: int) -> int:
    for key, sig, msg in _SAMPLE:
        key.verify(sig, msg)
    return len(_SAMPLE)


def parallel_verify_rate(sample: list[tuple[Ed25519PublicKey, bytes, bytes]], procs: int) -> float:
    """Aggregate verifications per second of ``procs`` processes verifying at once."""
    global _SAMPLE  # handed to the forked workers
    _SAMPLE = sample
    with mp.get_context("fork").Pool(procs) as pool:
        pool.map(_verify_all, range(procs))  # warm up
        t = perf()
        done = sum(pool.map(_verify_all, range(procs)))
        return done / (perf() - t)


def _cpu() -> tuple[float, float]:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime, kids.ru_utime + kids.ru_stime


def timed_audit(bank: Bank, workers: int) -> tuple[AuditReport, float, float, float]:
    """The report, wall seconds, main-process CPU seconds, worker CPU seconds."""
    m0, k0 = _cpu()
    t = perf()
    report = run_audit(bank, workers=workers)
    wall = perf() - t
    m1, k1 = _cpu()
    if not report.ok:
        raise SystemExit(f"audit found problems in a clean log: {report.problems[:3]}")
    return report, wall, m1 - m0, k1 - k0


def naive_audit(bank: Bank) -> tuple[int, float]:
    """The first implementation one would write (see the module docstring)."""
    t = perf()
    registry = Registry(bank.settings.bank_id)
    leaves: list[bytes] = []
    with bank.engine.connect() as conn:
        for row in repo.iter_entries(conn, chunk=5000):
            raw = bytes(row.data)
            obj = canonical._parse_canonical_reference(raw, max_size=MAX_ENTRY_SIZE)
            _check_envelope(obj)
            e = Entry(
                obj["type"],
                obj["issuer"],
                obj["key_id"],
                obj["at"],
                obj["body"],
                b64decode(obj["sig"]),
                raw,
            )
            pub = registry.authorize(e)
            verify_signature(pub, e.signed_bytes, e.sig)
            registry.apply(e)
            h = merkle.leaf_hash(raw)
            assert h == bytes(row.leaf_hash)
            leaves.append(h)
        app = merkle.append_leaves(0, [], leaves)
        nodes = list(app.nodes)
        for i in range(0, len(nodes), 4000):
            part = nodes[i : i + 4000]
            stored = repo.fetch_nodes(conn, [(lvl, j) for lvl, j, _ in part])
            assert all(stored[(lvl, j)] == h for lvl, j, h in part)
        head = repo.read_head(conn)
        assert head.size == len(leaves)
        assert head.root == app.root
        vkey = parse_verifier_key(bank.verifier_key)
        for cp in repo.all_checkpoints(conn):
            verify_checkpoint(cp.note, vkey)
            assert merkle.root_from_leaf_hashes(leaves[: cp.size]) == cp.root
    return len(leaves), perf() - t


# -- main -------------------------------------------------------------------------------------
def run_backend(backend: str, args: argparse.Namespace, cores: int) -> dict[str, Any]:
    bb = build_log(backend, args.size, args.pg_url)
    try:
        bank = bb.bank
        sample = verify_sample(bank)
        msg_len = sum(len(m) for _, _, m in sample) / len(sample)
        workers = args.workers or cores
        per_core, verify_cpus, audits = [], [], []
        for _ in range(args.repeat):
            v, c = verify_rate(sample)
            per_core.append(v)
            verify_cpus.append(c)
            audits.append(timed_audit(bank, workers))
        v, c = verify_rate(sample)
        per_core.append(v)
        verify_cpus.append(c)
        parallel = parallel_verify_rate(sample, min(workers, cores))
        n, naive_s = naive_audit(bank) if not args.no_naive else (0, float("nan"))
        rates = [r.size / wall for r, wall, _, _ in audits]
        i_med = rates.index(sorted(rates)[len(rates) // 2])
        report, wall, main_cpu, worker_cpu = audits[i_med]
        used = min(workers, cores)
        v1 = median(per_core)
        target = 0.8 * v1 * used
        rate = rates[i_med]
        cpu_per_entry = (main_cpu + worker_cpu) / report.size
        verify_cpu = median(verify_cpus)  # CPU seconds per verification
        result = {
            "backend": backend,
            "entries": report.size,
            "checkpoints": report.checkpoints,
            "workers": workers,
            "cores_used": used,
            "message_bytes": round(msg_len),
            "verify_per_core_per_s": v1,
            "verify_per_core_runs": per_core,
            "verify_parallel_per_s": parallel,
            "target_per_s": target,
            "audit_per_s": rate,
            "audit_runs_per_s": rates,
            "audit_seconds": wall,
            "audit_vs_verify_cores": rate / (v1 * used),
            "main_cpu_s": main_cpu,
            "worker_cpu_s": worker_cpu,
            "cpu_us_per_entry": cpu_per_entry * 1e6,
            "verify_cpu_us": verify_cpu * 1e6,
            "cpu_efficiency": verify_cpu / cpu_per_entry,
            "loadavg": os.getloadavg(),
            "naive_per_s": n / naive_s if n else None,
            "naive_seconds": naive_s if n else None,
            "pass": rate >= target,
        }
        return result
    finally:
        bb.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--backends", default="sqlite,pg")
    ap.add_argument("--size", type=int, default=100_000, help="entries in the log (>= 100k)")
    ap.add_argument("--workers", type=int, default=0, help="audit workers (0: one per core)")
    ap.add_argument("--repeat", type=int, default=3, help="audit runs (the median is reported)")
    ap.add_argument("--no-naive", action="store_true", help="skip the naive baseline")
    ap.add_argument("--pg-url", default=DEFAULT_PG)
    ap.add_argument("--json")
    args = ap.parse_args()
    cores = len(os.sched_getaffinity(0))
    info = machine_info(args.pg_url)
    results = [run_backend(b, args, cores) for b in args.backends.split(",") if b]
    print_table(
        f"audit of {args.size:,} signed entries ({cores} cores)",
        [
            "backend",
            "workers",
            "verify/s/core",
            "target",
            "audit/s",
            "% of verify",
            "CPU us/entry",
            "CPU eff.",
            "naive/s",
            "pass",
        ],
        [
            [
                r["backend"],
                r["workers"],
                r["verify_per_core_per_s"],
                r["target_per_s"],
                r["audit_per_s"],
                f"{r['audit_vs_verify_cores'] * 100:.1f} %",
                r["cpu_us_per_entry"],
                f"{r['cpu_efficiency'] * 100:.1f} %",
                r["naive_per_s"] if r["naive_per_s"] else "-",
                "PASS" if r["pass"] else "FAIL",
            ]
            for r in results
        ],
    )
    for r in results:
        print(
            f"[{r['backend']}] audit runs/s {[round(x) for x in r['audit_runs_per_s']]}, "
            f"verify/s/core runs {[round(x) for x in r['verify_per_core_runs']]}, "
            f"{r['cores_used']} processes verifying at once: {r['verify_parallel_per_s']:,.0f}/s, "
            f"main CPU {r['main_cpu_s']:.2f} s, workers CPU {r['worker_cpu_s']:.2f} s"
        )
    write_json(args.json, {"benchmark": "audit", "machine": info, "results": results})


if __name__ == "__main__":
    main()
