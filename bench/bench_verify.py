"""Verification for employers under load (issue #9), on PostgreSQL.

1. ``/v/{code}``: wrk at 64 connections against ``creditbank serve --workers 2``; each request
   opens a random one of ``--codes`` share codes (spread over ``--docs`` issued transcripts)
   and asks for the HTML page. The bank sits behind a trusted reverse proxy in production, so
   each wrk connection sends its own ``X-Forwarded-For`` address (uvicorn trusts it from
   127.0.0.1): the per-address rate limit (20 lookups, then 0.5/s) applies to each simulated
   employer, not to the whole load. Baseline in the same run: a bare FastAPI endpoint served
   with the same uvicorn options and 2 workers. Target: >= 500 requests/s, p99 <= 50 ms.
   Then the same pages **open loop** (``bench/loadgen.py``): ``--rate`` requests/s (500, the
   target) on a fixed schedule over the same 64 connections, latency from each request's
   scheduled send time (no coordinated omission). wrk's closed loop measures capacity, but
   its latency at 64 connections is 64 / throughput by construction; the p99 a user sees at
   the target rate is the open-loop one. The bare endpoint is measured both ways too.
2. ``POST /api/v1/verify`` of a 2-page transcript PDF, sequential requests: median latency
   (target <= 100 ms) and the share of the server's time in each check phase (the report's
   ``timings_ms``). In-process in the same run: the warm verifier (immutable checks cached)
   against a naive one that re-runs every check on every request.

    .venv/bin/python -m bench.bench_verify [--pg-url URL] [--duration 20] [--json out.json]
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, text

from bench import DEFAULT_PG, _pg_parts, _sa_url, drop_pg_database, machine_info, print_table
from bench import write_json as _write_json
from bench.bench_http import ROOT, VENV_BIN, bare_cmd, cpu_seconds, free_port, server, wrk
from bench.loadgen import open_loop
from creditbank.config import Settings
from creditbank.service import issuance, share_codes
from creditbank.service.bank import Bank, init_home
from creditbank.service.importer import import_dataset
from creditbank.service.verification import Verifier

SAMPLE = ROOT / "creditbank" / "data" / "sample"
LUA_CODES = """
local paths = {{{paths}}}
local n = 0
setup = function(thread)
  n = n + 1
  thread:set("tid", n)
end
init = function(args)
  math.randomseed(1000 + tid)
  counter = 0
end
request = function()
  counter = counter + 1
  local p = paths[math.random(1, #paths)]
  -- one simulated client address per request slot (the proxy's X-Forwarded-For)
  local addr = "10." .. tid .. "." .. (counter % 250) .. "." .. (math.random(1, 250))
  return wrk.format("GET", p, {{["Accept"] = "text/html", ["X-Forwarded-For"] = addr}})
end
"""


def _employer(i: int) -> dict[str, str]:
    """The headers of open-loop request ``i``: an HTML page for one of many employers behind
    the trusted proxy (each its own address, as in the wrk script)."""
    return {"Accept": "text/html", "X-Forwarded-For": f"10.{i % 200}.{i // 200 % 250}.{i % 250}"}


@contextmanager
def pg_bank(pg_url: str) -> Iterator[Bank]:
    """A fresh home over a new PostgreSQL database, the product's validating bank."""
    base, _ = _pg_parts(pg_url)
    name = f"cb_verify_{uuid.uuid4().hex[:12]}"
    eng = create_engine(_sa_url(pg_url), isolation_level="AUTOCOMMIT")
    with eng.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    eng.dispose()
    home = Path(tempfile.mkdtemp(prefix="cb-verify-"))
    bank = None
    try:
        bank = init_home(Settings(home=home, database_url=f"{base}/{name}"))
        yield bank
    finally:
        if bank is not None:
            bank.close()
        shutil.rmtree(home, ignore_errors=True)
        drop_pg_database(pg_url, name)


def pages_of(pdf: bytes) -> int:
    from pypdf import PdfReader

    return len(PdfReader(io.BytesIO(pdf)).pages)


def prepare(bank: Bank, docs: int, codes: int) -> tuple[list[str], bytes]:
    """Import the sample, issue ``docs`` transcripts, make ``codes`` share codes over them;
    returns the codes and one 2-page transcript PDF."""
    report = import_dataset(bank, SAMPLE)
    bank.ledger.publish()
    issued: list[issuance.Issued] = []
    two_pages = None
    for lid in sorted(report.learner_ids):
        if len(issued) >= docs and two_pages is not None:
            break
        doc = issuance.issue_transcript(bank, report.learner_ids[lid])
        issued.append(doc)
        if two_pages is None and pages_of(doc.pdf) == 2:
            two_pages = doc.pdf
    if two_pages is None:
        raise SystemExit("no 2-page transcript among the sample learners")
    bank.ledger.publish()
    out = [d.code for d in issued]
    n = 0
    while len(out) < codes:
        d = issued[n % len(issued)]
        out.append(share_codes.create_share_code(bank, d.learner_id, d.doc_id).code)
        n += 1
    return out, two_pages


def tree_cpu(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and every process under it (the uvicorn
    supervisor and its workers) so far."""
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        try:
            total += cpu_seconds(p)
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def measured_tree(pid: int, url: str, **kw: Any) -> dict[str, Any]:
    """:func:`wrk` plus the CPU time per request (µs) of the server's whole process tree: a
    load-robust cost on a shared machine, where the wall clock mostly measures the others."""
    before = tree_cpu(pid)
    result = wrk(url, **kw)
    used = tree_cpu(pid) - before
    result["cpu_us_per_request"] = round(1e6 * used / max(1, result["requests"]), 1)
    return result


def counted(bank: Bank) -> int:
    """Verifications counted on every share code so far."""
    with bank.engine.connect() as conn:
        return int(conn.execute(text("SELECT coalesce(sum(verify_count), 0) FROM share_codes"))
                   .scalar_one())  # fmt: skip


def bench_inprocess(bank: Bank, code: str, pdf: bytes, rounds: int) -> dict[str, Any]:
    """Median latency of a warm (cached) verifier vs a naive one (fresh for each call)."""
    warm = Verifier(bank)
    warm.by_code(code, count=False)
    warm.by_upload(pdf)

    def timed(fn: Any) -> float:
        t = time.perf_counter()
        fn()
        return (time.perf_counter() - t) * 1000

    out: dict[str, Any] = {}
    out["code_warm_ms"] = statistics.median(
        timed(lambda: warm.by_code(code, count=False)) for _ in range(rounds)
    )
    warm.by_code_fast(code, cold=True)
    out["code_fast_ms"] = statistics.median(
        timed(lambda: warm.by_code_fast(code)) for _ in range(rounds)
    )
    warm.close()  # writes the counts the fast path buffered
    out["code_naive_ms"] = statistics.median(
        timed(lambda: Verifier(bank).by_code(code, count=False)) for _ in range(rounds)
    )
    out["upload_warm_ms"] = statistics.median(
        timed(lambda: warm.by_upload(pdf)) for _ in range(rounds)
    )
    out["upload_naive_ms"] = statistics.median(
        timed(lambda: Verifier(bank).by_upload(pdf)) for _ in range(rounds)
    )
    return out


def bench_upload(base: str, pdf: bytes, rounds: int) -> dict[str, Any]:
    """Sequential POST /api/v1/verify: median latency and each phase's share of the time the
    server reports (its ``timings_ms``)."""
    lat: list[float] = []
    phases: dict[str, list[float]] = {}
    with httpx.Client(timeout=60) as client:
        for n in range(rounds + 3):
            t = time.perf_counter()
            resp = client.post(
                f"{base}/api/v1/verify",
                content=pdf,
                headers={"content-type": "application/pdf", "X-Forwarded-For": f"10.9.9.{n}"},
            )
            elapsed = (time.perf_counter() - t) * 1000
            body = resp.json()
            if resp.status_code != 200 or body["status"] != "VALID":
                raise SystemExit(f"upload not verified: {resp.status_code} {body}")
            if n < 3:  # warm-up (both workers)
                continue
            lat.append(elapsed)
            for phase, ms in body["timings_ms"].items():
                phases.setdefault(phase, []).append(ms)
    total = sum(statistics.median(v) for v in phases.values())
    return {
        "median_ms": round(statistics.median(lat), 1),
        "p90_ms": round(sorted(lat)[int(len(lat) * 0.9) - 1], 1),
        "server_phases_ms": {k: round(statistics.median(v), 2) for k, v in phases.items()},
        "server_phase_share": {
            k: round(statistics.median(v) / total, 3) for k, v in phases.items()
        },
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pg-url", default=DEFAULT_PG)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--docs", type=int, default=8)
    parser.add_argument("--codes", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--rate", type=float, default=500.0, help="open-loop requests/s")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    results: dict[str, Any] = {"machine": machine_info(args.pg_url), "args": vars(args)}
    print("machine:", results["machine"], file=sys.stderr)
    with pg_bank(args.pg_url) as bank:
        t = time.perf_counter()
        codes, pdf = prepare(bank, args.docs, args.codes)
        print(f"prepared {len(codes)} codes in {time.perf_counter() - t:.1f} s", file=sys.stderr)
        results["inprocess"] = bench_inprocess(bank, codes[0], pdf, args.rounds)
        print("in-process:", results["inprocess"], file=sys.stderr)
        lua = Path(tempfile.mkdtemp(prefix="cb-wrk-")) / "codes.lua"
        lua.write_text(LUA_CODES.format(paths=", ".join(f'"/v/{c}"' for c in codes)))
        env = {k: v for k, v in os.environ.items() if not k.startswith("CREDITBANK_")}
        env |= {"CREDITBANK_HOME": str(bank.settings.home),
                "CREDITBANK_DATABASE_URL": str(bank.settings.database_url)}  # fmt: skip
        port = free_port()
        cmd = [str(VENV_BIN / "creditbank"), "serve", "--port", str(port), "--workers",
               str(args.workers)]  # fmt: skip
        before = counted(bank)
        with server(cmd, env, f"http://127.0.0.1:{port}/healthz") as pid:
            base = f"http://127.0.0.1:{port}"
            warm = wrk(base, connections=args.connections, duration=5, script=lua)  # both workers
            results["v_code"] = measured_tree(
                pid, base, connections=args.connections, duration=args.duration, script=lua
            )
            print("/v/{code}:", results["v_code"], file=sys.stderr)
            paths = [f"/v/{c}" for c in codes]
            results["v_code_open"] = open_loop(
                base, paths, rate=args.rate, connections=args.connections,
                duration=args.duration, headers=_employer,
            )  # fmt: skip
            print("/v/{code} open loop:", results["v_code_open"], file=sys.stderr)
            results["upload"] = bench_upload(base, pdf, args.rounds)
            print("POST /api/v1/verify:", results["upload"], file=sys.stderr)
        # the server stopped gracefully (SIGINT): its buffered counts are written; wrk counts
        # the answers it read, the server may have answered a few more as wrk stopped
        answered = sum(r["requests"] - r["non_2xx"] for r in (warm, results["v_code"]))
        results["counts"] = {"answered_by_wrk": answered, "counted": counted(bank) - before}
        print("counts:", results["counts"], file=sys.stderr)
        bare_port = free_port()
        bare = bare_cmd(bare_port)
        bare[-1] = bare[-1].replace("**uvicorn_options())", f"workers={args.workers}, "
                                    "**uvicorn_options())")  # fmt: skip
        with server(bare, env, f"http://127.0.0.1:{bare_port}/bare") as pid:
            url = f"http://127.0.0.1:{bare_port}/bare"
            wrk(url, connections=args.connections, duration=3)
            results["bare"] = measured_tree(
                pid, url, connections=args.connections, duration=args.duration
            )
            print("bare:", results["bare"], file=sys.stderr)
            results["bare_open"] = open_loop(
                f"http://127.0.0.1:{bare_port}", ["/bare"], rate=args.rate,
                connections=args.connections, duration=args.duration,
            )  # fmt: skip
            print("bare open loop:", results["bare_open"], file=sys.stderr)
    v, b, u = results["v_code"], results["bare"], results["upload"]
    vo, bo = results["v_code_open"], results["bare_open"]
    print_table(
        f"open loop: {args.rate:g} requests/s offered over {args.connections} connections "
        "(latency from the scheduled send time)",
        ["target", "achieved/s", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms", "non-200",
         "errors"],
        [
            [name, o["achieved_rps"], o["p50"], o["p90"], o["p99"], o["p999"], o["max"],
             sum(n for st, n in o["statuses"].items() if st != 200), o["errors"]]
            for name, o in (("GET /v/{code} (HTML page)", vo), ("bare FastAPI endpoint", bo))
        ],
    )  # fmt: skip
    print_table(
        "verification (PostgreSQL, creditbank serve --workers 2, wrk -c64)",
        ["target", "requests/s", "p50 ms", "p99 ms", "non-2xx", "x bare", "cpu us/req",
         "cpu x bare"],
        [
            ["GET /v/{code} (HTML page)", v["rps"], v.get("p50"), v.get("p99"), v["non_2xx"],
             round(v["rps"] / b["rps"], 2), v["cpu_us_per_request"],
             round(b["cpu_us_per_request"] / v["cpu_us_per_request"], 2)],
            ["bare FastAPI endpoint", b["rps"], b.get("p50"), b.get("p99"), b["non_2xx"], 1.0,
             b["cpu_us_per_request"], 1.0],
        ],
    )  # fmt: skip
    print_table(
        "POST /api/v1/verify, 2-page PDF (sequential)",
        ["median ms", "p90 ms", *u["server_phase_share"]],
        [[u["median_ms"], u["p90_ms"], *(f"{s:.0%}" for s in u["server_phase_share"].values())]],
    )
    ip = results["inprocess"]
    print_table(
        "in process: cached vs naive (every check on every call)",
        ["path", "cached ms", "naive ms", "naive / cached"],
        [
            ["by code", round(ip["code_warm_ms"], 2), round(ip["code_naive_ms"], 2),
             round(ip["code_naive_ms"] / ip["code_warm_ms"], 1)],
            ["by code, serving path", round(ip["code_fast_ms"], 2),
             round(ip["code_naive_ms"], 2), round(ip["code_naive_ms"] / ip["code_fast_ms"], 1)],
            ["by upload (2-page PDF)", round(ip["upload_warm_ms"], 2),
             round(ip["upload_naive_ms"], 2),
             round(ip["upload_naive_ms"] / ip["upload_warm_ms"], 2)],
        ],
    )  # fmt: skip
    _write_json(args.json, results)


if __name__ == "__main__":
    main()
