"""The monitor's first run over a log of ``--entries`` record entries, against uvicorn.

Three clients, one after the other in the same run, each from an empty state:

* ``tree``: the naive monitor (the baseline): fetch and verify the checkpoint, fetch every
  leaf hash and rebuild the root; it knows nothing of who signed what;
* ``keys``: ``creditbank monitor`` without a token: the above plus the envelope listing, the
  registry replay and the key-validity check of every entry in the institution's name;
* ``signatures``: with the institution's token: also reads every entry in its name and
  verifies its bytes against the leaf and its signature (one request per entry).

All entries are the watched institution's (the worst case for ``signatures``). The bank is
one ``uvicorn`` process (the options of ``creditbank serve``) in a thread of this process.

    .venv/bin/python -m bench.bench_monitor [--backend sqlite] [--entries 20000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from bench import (
    DEFAULT_PG,
    machine_info,
    make_bank,
    median,
    register_college,
    sign_records_parallel,
)
from bench import write_json as _write_json
from creditbank.api.app import create_app
from creditbank.client.monitor import LEAF_CHUNK, run_monitor
from creditbank.core import merkle
from creditbank.core.checkpoint import verify_checkpoint
from creditbank.core.signing import b64decode, parse_verifier_key
from creditbank.service import institutions as svc
from creditbank.service.bank import Bank

INSTITUTION = "INS-MON"


@contextmanager
def served(bank: Bank) -> Iterator[str]:
    config = uvicorn.Config(
        create_app(bank.settings, bank=bank),
        host="127.0.0.1",
        port=0,
        log_level="warning",
        access_log=False,
        lifespan="on",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def tree_only(url: str) -> int:
    """The baseline: checkpoint, every leaf hash, the root rebuilt."""
    with httpx.Client(base_url=url, timeout=60) as http:
        key = parse_verifier_key(http.get("/api/v1/log/key").text.strip())
        cp = verify_checkpoint(http.get("/api/v1/log/checkpoint").text, key)
        leaves: list[bytes] = []
        for start in range(0, cp.size, LEAF_CHUNK):
            end = min(start + LEAF_CHUNK, cp.size)
            doc = http.get("/api/v1/log/leaf-hashes", params={"start": start, "end": end}).json()
            leaves.extend(b64decode(h) for h in doc["leaf_hashes"])
        if merkle.root_from_leaf_hashes(leaves) != cp.root:
            raise SystemExit("root mismatch")
        return cp.size


def timed(fn: Callable[[], Any], repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", default="sqlite", choices=["sqlite", "pg"])
    ap.add_argument("--pg-url", default=DEFAULT_PG)
    ap.add_argument("--entries", type=int, default=20_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()

    bb = make_bank(args.backend, args.pg_url, tag="monitor")
    bank = bb.bank
    try:
        signer = register_college(bank, INSTITUTION)
        raws = sign_records_parallel(bank.clock, INSTITUTION, signer, args.entries)
        for i in range(0, len(raws), 5_000):
            bank.ledger.append(raws[i : i + 5_000], publish=False)
        bank.ledger.publish(force=True)
        token, _ = svc.issue_institution_token(bank, INSTITUTION)
        size = bank.ledger.latest_checkpoint().size
        print(f"log: {size} entries ({args.entries} records of {INSTITUTION}), {args.backend}")
        results: dict[str, list[float]] = {}
        with served(bank) as url, tempfile.TemporaryDirectory() as tmp:
            n = {"k": 0}

            def fresh() -> Path:
                n["k"] += 1
                return Path(tmp) / f"state-{n['k']}.json"

            def keys() -> None:
                report = run_monitor(INSTITUTION, fresh(), url=url)
                assert report.ok, report.alerts
                assert report.claimed == args.entries

            def signatures() -> None:
                report = run_monitor(INSTITUTION, fresh(), url=url, token=token)
                assert report.ok, report.alerts
                assert report.verified == args.entries

            results["tree"] = timed(lambda: tree_only(url), args.repeat)
            results["keys"] = timed(keys, args.repeat)
            results["signatures"] = timed(signatures, args.repeat)
        base = median(results["tree"])
        print(f"{'client':<12}{'median s':>10}{'entries/s':>12}{'x tree':>9}")
        for name, xs in results.items():
            m = median(xs)
            print(f"{name:<12}{m:>10.2f}{size / m:>12,.0f}{m / base:>9.1f}")
        _write_json(
            args.json,
            {
                "machine": machine_info(args.pg_url if args.backend == "pg" else None),
                "backend": args.backend,
                "size": size,
                "runs": results,
                "medians": {k: median(v) for k, v in results.items()},
            },
        )
    finally:
        bb.close()


if __name__ == "__main__":
    main()
