"""The serving path under load: wrk at 64 connections against one ``creditbank serve`` process.

Three targets, measured one after the other in the same run, with the same wrk settings:

* ``bare``: a bare FastAPI endpoint (``async def`` returning a small dict) served by uvicorn
  with exactly the options ``creditbank serve`` uses, in the same venv: the ceiling for
  this server, framework and machine (the baseline the targets are a ratio of);
* ``healthz``: the bank's ``GET /healthz`` (reads the log head from the database);
* ``proof``: ``GET /api/v1/log/proofs/inclusion?index=I&size=N`` for a random ``I`` on each
  request (a wrk Lua script), against the latest published size of a log of ``--entries``
  signed record entries;
* ``checkpoint``: ``GET /api/v1/log/checkpoint``, a route left as it was (sync ``def``,
  SQLAlchemy), for comparison.

Target (issue #9): ``healthz`` and ``proof`` each >= 0.7 x ``bare``. Reported per target: the
median of ``--rounds`` wrk runs (req/s, p50, p99) with the per-round ratio to ``bare``, and the
server process's CPU time per request (``/proc/<pid>/stat`` before and after each run), whose
ratio to ``bare`` estimates the capacity ratio even when other processes share the cores.

``--profile`` also samples the bank process with py-spy while wrk runs the proof (and the
healthz) load, and prints the share of samples in each part of the serving path.

``--workers N`` serves the bank with N workers (PostgreSQL only; the bare app keeps one).

    .venv/bin/python -m bench.bench_http [--backends sqlite,pg] [--duration 10] [--profile]
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from bench import DEFAULT_PG, machine_info, make_bank, register_college, sign_records_parallel
from bench import write_json as _write_json
from creditbank.service.clock import SystemClock

#: the bare FastAPI app served as the baseline (``bench.bench_http:bare_app``)
bare_app = FastAPI()


@bare_app.get("/bare")
async def bare() -> dict[str, str]:
    return {"status": "ok"}


ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
LUA_PROOF = """
math.randomseed(42)
request = function()
  local i = math.random(0, {n} - 1)
  return wrk.format(nil, "/api/v1/log/proofs/inclusion?index=" .. i .. "&size={n}")
end
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode} before answering {url}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"server did not answer {url} within {timeout} s")


@contextmanager
def server(cmd: list[str], env: dict[str, str], ready_url: str) -> Iterator[int]:
    """Start a server process, wait until ``ready_url`` answers 200, yield its pid."""
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL)
    try:
        wait_ready(ready_url, proc)
        yield proc.pid
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


_RPS = re.compile(r"Requests/sec:\s+([0-9.]+)")
_LAT = re.compile(r"^\s+(50|90|99)%\s+([0-9.]+)(us|ms|s)\s*$", re.MULTILINE)
_ERRS = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_COUNT = re.compile(r"(\d+) requests in ")
_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` (all its threads) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK
_UNIT = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def wrk(
    url: str, *, connections: int, duration: float, script: Path | None = None
) -> dict[str, Any]:
    """One wrk run (2 threads); requests/s, p50/p90/p99 in ms, non-2xx count."""
    cmd = ["wrk", "-t2", f"-c{connections}", f"-d{duration:g}s", "--latency"]
    if script is not None:
        cmd += ["-s", str(script)]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, check=True).stdout
    m = _RPS.search(out)
    if m is None:
        raise SystemExit(f"cannot read wrk output:\n{out}")
    lat = {f"p{p}": round(float(v) * _UNIT[u], 2) for p, v, u in _LAT.findall(out)}
    errs = _ERRS.search(out)
    count = _COUNT.search(out)
    return {
        "rps": round(float(m.group(1)), 1),
        **lat,
        "non_2xx": int(errs.group(1)) if errs else 0,
        "requests": int(count.group(1)) if count else 0,
    }


def measured(pid: int, url: str, **kw: Any) -> dict[str, Any]:
    """:func:`wrk`, plus the server's CPU time per request (µs): a load-robust cost, since
    other processes on a shared machine slow the wall clock far more than the CPU time."""
    before = cpu_seconds(pid)
    result = wrk(url, **kw)
    used = cpu_seconds(pid) - before
    result["cpu_us_per_request"] = round(1e6 * used / max(1, result["requests"]), 1)
    return result


def serve_cmd(home: Path, port: int, workers: int) -> list[str]:
    cmd = [str(VENV_BIN / "creditbank"), "--home", str(home), "serve", "--port", str(port)]
    if workers > 1:
        cmd += ["--workers", str(workers)]
    return cmd


def bare_cmd(port: int) -> list[str]:
    # the same uvicorn options as `creditbank serve` (creditbank.cli.main.uvicorn_options)
    code = (
        "import uvicorn; from creditbank.cli.main import uvicorn_options; "
        f"uvicorn.run('bench.bench_http:bare_app', host='127.0.0.1', port={port}, "
        "**uvicorn_options())"
    )
    return [sys.executable, "-c", code]


def profile(pid: int, seconds: float, out: Path) -> None:
    """py-spy record (raw collapsed stacks) of ``pid`` for ``seconds``, in the background."""
    subprocess.Popen(
        [
            str(VENV_BIN / "py-spy"), "record", "--pid", str(pid), "--duration",
            str(int(seconds)), "--format", "raw", "--rate", "200", "--output", str(out),
            "--nonblocking", "--gil",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


#: parts of the serving path, matched against each sampled stack (first match wins)
PARTS: list[tuple[str, tuple[str, ...]]] = [
    ("idle (event loop waiting)", ("select (selectors.py", "run_forever", "_run_once")),
    ("database driver (sqlite3/psycopg execute, fetch)", ("sqlite3", "psycopg", "execute (")),
    ("SQLAlchemy (connect, pool, compile, result)", ("sqlalchemy",)),
    ("thread-pool hop (anyio to_thread)", ("to_thread", "run_sync_in_worker_thread")),
    (
        "response validation and JSON (pydantic, jsonable_encoder)",
        ("pydantic", "jsonable_encoder", "serialize_response"),
    ),
    ("routing and dependencies (fastapi, starlette)", ("fastapi", "starlette")),
    ("HTTP server (uvicorn, httptools, h11)", ("uvicorn", "httptools", "h11")),
    ("merkle and proof assembly (creditbank.core)", ("creditbank/core",)),
]


def summarise_profile(path: Path) -> list[tuple[str, float]]:
    """Share of samples per part of the serving path (leaf-most matching part wins)."""
    counts: collections.Counter[str] = collections.Counter()
    total = 0
    if not path.exists():
        return []
    for line in path.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        samples = int(n)
        total += samples
        frames = stack.split(";")
        part = "other"
        for frame in reversed(frames):
            hit = next((name for name, keys in PARTS if any(k in frame for k in keys)), None)
            if hit is not None:
                part = hit
                break
        counts[part] += samples
    return [(name, 100.0 * c / total) for name, c in counts.most_common()] if total else []


def run_backend(backend: str, args: argparse.Namespace) -> dict[str, Any]:
    bb = make_bank(backend, args.pg_url, tag="http")
    work = Path(tempfile.mkdtemp(prefix="cb-http-"))
    try:
        bank = bb.bank
        clock = SystemClock()
        signer = register_college(bank, "INS-HTTP")
        raws = sign_records_parallel(clock, "INS-HTTP", signer, args.entries)
        for lo in range(0, len(raws), 5000):
            bank.ledger.append(raws[lo : lo + 5000], publish=False)
        cp = bank.ledger.publish(force=True)
        assert cp is not None
        n = cp.size
        bank.close()
        lua = work / "proof.lua"
        lua.write_text(LUA_PROOF.format(n=n))
        env = {k: v for k, v in os.environ.items() if not k.startswith("CREDITBANK_")}
        if bb.db_name:
            base = (args.pg_url or DEFAULT_PG).rpartition("/")[0]
            env["CREDITBANK_DATABASE_URL"] = f"{base}/{bb.db_name}"
        env["CREDITBANK_CHECKPOINT_INTERVAL"] = "3600"
        out: dict[str, Any] = {"backend": backend, "entries": n, "workers": args.workers}
        c, d = args.connections, args.duration
        bport, port = free_port(), free_port()
        bare_url = f"http://127.0.0.1:{bport}/bare"
        base_url = f"http://127.0.0.1:{port}"
        targets: dict[str, tuple[str, Path | None]] = {
            "bare": (bare_url, None),
            "healthz": (f"{base_url}/healthz", None),
            "proof": (f"{base_url}/", lua),
            # an untouched route for comparison: sync def, SQLAlchemy, FastAPI parameters
            "checkpoint": (f"{base_url}/api/v1/log/checkpoint", None),
        }
        rounds: dict[str, list[dict[str, Any]]] = {k: [] for k in targets}
        # both servers up at once (idle while the other is measured); the targets are
        # measured in turn, round after round, so a noisy spell hits all of them alike
        bank_cmd = serve_cmd(bb.home or work, port, args.workers)
        with (
            server(bare_cmd(bport), env, bare_url) as bare_pid,
            server(bank_cmd, env, f"{base_url}/healthz") as pid,
        ):
            for url, script in targets.values():
                wrk(url, connections=c, duration=2, script=script)  # warm-up
            for _ in range(args.rounds):
                for key, (url, script) in targets.items():
                    who = bare_pid if key == "bare" else pid
                    rounds[key].append(
                        measured(who, url, connections=c, duration=d, script=script)
                    )
            if args.profile:
                for key in ("healthz", "proof"):
                    url, script = targets[key]
                    profile(pid, d, work / f"{key}.txt")
                    time.sleep(0.5)
                    wrk(url, connections=c, duration=d, script=script)
                    time.sleep(1.5)
                    out.setdefault("profile", {})[key] = summarise_profile(work / f"{key}.txt")
        for key, runs in rounds.items():
            out[key] = {
                "rps": statistics.median(r["rps"] for r in runs),
                "p99": statistics.median(r.get("p99", 0.0) for r in runs),
                "p50": statistics.median(r.get("p50", 0.0) for r in runs),
                "non_2xx": sum(r["non_2xx"] for r in runs),
                "cpu_us": statistics.median(r["cpu_us_per_request"] for r in runs),
                "runs": runs,
            }
        for key in ("healthz", "proof", "checkpoint"):
            ratios = [
                r["rps"] / b["rps"] for r, b in zip(rounds[key], rounds["bare"], strict=True)
            ]
            out[key]["ratio"] = round(out[key]["rps"] / out["bare"]["rps"], 2)
            out[key]["ratios"] = [round(x, 2) for x in ratios]
            # capacity ratio from CPU per request (one process: req/s ~ 1 / CPU per request)
            out[key]["cpu_ratio"] = round(out["bare"]["cpu_us"] / out[key]["cpu_us"], 2)
        return out
    finally:
        bb.close()
        if os.environ.get("BENCH_KEEP"):
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--backends", default="sqlite")
    p.add_argument("--pg-url", default=DEFAULT_PG)
    p.add_argument("--entries", type=int, default=10_000)
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--duration", type=float, default=10)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--profile", action="store_true")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    results: dict[str, Any] = {"machine": machine_info(), "runs": []}
    print(f"load average before: {os.getloadavg()}")
    for backend in args.backends.split(","):
        r = run_backend(backend, args)
        results["runs"].append(r)
        print(f"\n== {backend}, {r['entries']} entries, {args.connections} connections, "
              f"{args.rounds} rounds of {args.duration:g} s, bank workers: {args.workers}")
        print(f"{'target':10} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'ratio':>6} "
              f"{'non-2xx':>8} {'cpu us/req':>10} {'cpu ratio':>9}  per-round req/s (ratios)")
        for key in ("bare", "healthz", "proof", "checkpoint"):
            m = r[key]
            ratio = f"{m['ratio']:.2f}" if "ratio" in m else "1.00"
            per = ", ".join(f"{x['rps']:.0f}" for x in m["runs"])
            if "ratios" in m:
                per += f" ({', '.join(f'{x:.2f}' for x in m['ratios'])})"
            cpu_ratio = f"{m['cpu_ratio']:.2f}" if "cpu_ratio" in m else "1.00"
            print(f"{key:10} {m['rps']:9.1f} {m['p50']:8.2f} {m['p99']:8.2f} "
                  f"{ratio:>6} {m['non_2xx']:8d} {m['cpu_us']:10.1f} {cpu_ratio:>9}  {per}")
        for key, parts in r.get("profile", {}).items():
            for name, share in parts:
                print(f"  profile {key}: {share:5.1f} %  {name}")
    print(f"load average after: {os.getloadavg()}")
    if args.json:
        _write_json(args.json, results)


if __name__ == "__main__":
    main()
