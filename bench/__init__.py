"""Shared helpers for the benchmark scripts (not part of the package, not unit tests).

Each script makes its own throw-away bank: a temporary SQLite home, or a fresh PostgreSQL
database created on the server named by ``--pg-url`` and dropped afterwards.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import multiprocessing as mp
import os
import platform
import shutil
import sqlite3
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

from creditbank.config import Settings
from creditbank.core.entries import build_entry, sign_entry
from creditbank.core.signing import Ed25519Signer, b64encode, entry_key_id
from creditbank.service.bank import Bank, init_home
from creditbank.service.clock import Clock

DEFAULT_PG = os.environ.get("CREDITBANK_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")

perf = time.perf_counter
cpu_time = time.process_time


@dataclass
class BenchBank:
    bank: Bank
    backend: str
    home: Path | None
    db_name: str | None
    admin_url: str | None

    def close(self) -> None:
        """Dispose of the engine, the home and the database (idempotent)."""
        if self.home is None:
            return
        self.bank.close()
        shutil.rmtree(self.home, ignore_errors=True)
        if self.db_name and self.admin_url:
            drop_pg_database(self.admin_url, self.db_name)
        self.home = None


def _pg_parts(url: str) -> tuple[str, str]:
    """(URL of the server without database, current database name)."""
    base, _, db = url.rpartition("/")
    return base, db


def drop_pg_database(admin_url: str, name: str) -> None:
    eng = create_engine(_sa_url(admin_url), isolation_level="AUTOCOMMIT")
    with eng.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    eng.dispose()


def _sa_url(url: str) -> str:
    if url.startswith("postgresql://"):
        return "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return url


def make_bank(backend: str, pg_url: str = DEFAULT_PG, *, tag: str = "bench") -> BenchBank:
    """Initialise a fresh bank on ``sqlite`` (temp dir) or ``pg`` (a new database)."""
    home = Path(tempfile.mkdtemp(prefix=f"cb-{tag}-"))
    if backend == "sqlite":
        bank = init_home(Settings(home=home), validate_records=False)
        return BenchBank(bank, backend, home, None, None)
    if backend != "pg":
        raise SystemExit(f"unknown backend {backend!r}")
    base, _ = _pg_parts(pg_url)
    name = f"cb_{tag}_{os.getpid()}_{int(perf() * 1000) % 100000}"
    eng = create_engine(_sa_url(pg_url), isolation_level="AUTOCOMMIT")
    with eng.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    eng.dispose()
    try:
        bank = init_home(Settings(home=home, database_url=f"{base}/{name}"), validate_records=False)
    except BaseException:
        drop_pg_database(pg_url, name)
        raise
    return BenchBank(bank, backend, home, name, pg_url)


@contextlib.contextmanager
def bench_bank(backend: str, pg_url: str = DEFAULT_PG, *, tag: str = "bench") -> Iterator[Bank]:
    bb = make_bank(backend, pg_url, tag=tag)
    try:
        yield bb.bank
    finally:
        bb.close()


def register_college(bank: Bank, institution_id: str, seed: bytes | None = None) -> Ed25519Signer:
    """Register a college with one fresh key (bank-signed registry entry); return its signer."""
    signer = Ed25519Signer.from_seed(seed or os.urandom(32))
    pub = signer.public_bytes
    body = {
        "institution_id": institution_id,
        "kind": "college",
        "name_zh": "测试学院",
        "name_en": f"Test College {institution_id}",
        "keys": [{"key_id": entry_key_id(pub), "public_key": b64encode(pub)}],
    }
    bank.ledger.append([bank.bank_entry("institution.registered", body)], publish=True)
    return signer


def record_body(i: int, salt: str = "") -> dict[str, Any]:
    """A record body shaped like the sample data's (entries of about 560 bytes once signed)."""
    digest = hashlib.sha256(f"{salt}/{i}".encode()).hexdigest()
    return {
        "record_id": f"R{salt}{i:09d}",
        "dedup_key": f"course:C-LOG-{i % 97:02d}:2024S:{salt}{i}",
        "kind": "academic_credit",
        "learner": f"L{i % 50_000:06d}",
        "achieved_on": "2024-07-10",
        "name_commitment": "sha256:" + digest[::-1],
        "payload": {
            "course_id": f"C-LOG-{i % 97:02d}",
            "course_name_zh": "物流管理基础",
            "credits": 400 + i % 7,
            "grade": 60 + i % 40,
            "term": "2024S",
        },
        "evidence": {"sha256": "sha256:" + digest},
    }


def sign_records(
    clock: Clock, issuer: str, signer: Ed25519Signer, n: int, *, salt: str = "", start: int = 0
) -> list[bytes]:
    """``n`` signed ``record.posted`` entries, each with ``at = clock.now()``."""
    return _sign_range((issuer, signer.seed, salt, start, start + n, clock))


def _sign_range(job: tuple[str, bytes, str, int, int, Any]) -> list[bytes]:
    issuer, seed, salt, lo, hi, clock = job
    signer = Ed25519Signer.from_seed(seed)
    kid = entry_key_id(signer.public_bytes)
    out = []
    for i in range(lo, hi):
        unsigned = build_entry("record.posted", issuer, kid, clock.now(), record_body(i, salt))
        out.append(sign_entry(unsigned, signer))
    return out


def sign_records_parallel(
    clock: Clock,
    issuer: str,
    signer: Ed25519Signer,
    n: int,
    *,
    salt: str = "",
    start: int = 0,
    procs: int | None = None,
) -> list[bytes]:
    """:func:`sign_records` on every core (setup only, never timed)."""
    procs = procs or os.cpu_count() or 1
    step = max(1000, -(-n // (procs * 8)))
    jobs = [
        (issuer, signer.seed, salt, lo, min(lo + step, start + n), clock)
        for lo in range(start, start + n, step)
    ]
    if procs == 1 or len(jobs) == 1:
        return [raw for job in jobs for raw in _sign_range(job)]
    with mp.get_context("fork").Pool(procs) as pool:
        return [raw for part in pool.imap(_sign_range, jobs) for raw in part]


class Rng:
    """A small seeded generator (splitmix64): the package bans ``random``; this is for load."""

    def __init__(self, seed: int) -> None:
        self.state = seed & 0xFFFFFFFFFFFFFFFF

    def next64(self) -> int:
        self.state = (self.state + 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
        return z ^ (z >> 31)

    def randrange(self, n: int) -> int:
        return self.next64() % n

    def choice(self, xs: Sequence[Any]) -> Any:
        return xs[self.randrange(len(xs))]


# -- reporting ------------------------------------------------------------------------------
def machine_info(pg_url: str | None = None) -> dict[str, Any]:
    info: dict[str, Any] = {
        "nproc": os.cpu_count(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
    }
    with contextlib.suppress(Exception):
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                info["cpu"] = line.split(":", 1)[1].strip()
    with contextlib.suppress(Exception):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                info["ram_gib"] = round(int(line.split()[1]) / 1024 / 1024, 1)
    if pg_url:
        with contextlib.suppress(Exception):
            eng = create_engine(_sa_url(pg_url))
            with eng.connect() as c:
                info["postgresql"] = c.execute(text("SHOW server_version")).scalar_one()
            eng.dispose()
    return info


def print_table(title: str, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    cells = [[str(h) for h in header]] + [[_fmt(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    print(f"\n## {title}")
    for j, r in enumerate(cells):
        print("| " + " | ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) + " |")
        if j == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")


def _fmt(c: Any) -> str:
    if isinstance(c, float):
        if c >= 100:
            return f"{c:,.0f}"
        if c >= 1:
            return f"{c:.2f}"
        return f"{c:.4f}"
    if isinstance(c, int):
        return f"{c:,}"
    return str(c)


def write_json(path: str | None, payload: dict[str, Any]) -> None:
    if path:
        Path(path).write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n")
        print(f"\nwrote {path}")


def median(xs: Sequence[float]) -> float:
    return statistics.median(xs)


def raw_append(bank: Bank, raws: Sequence[bytes], *, publish: bool = False) -> int:
    """Insert entries the way ``Ledger.append`` stores them, minus every check.

    Same rows, same ``merkle.append_leaves`` nodes, same head update, one transaction, but no
    parsing, signature or registry check: for building large logs fast (and, in tests, for
    logging entries the ledger would refuse). Returns the new size.
    """
    from creditbank.core import merkle
    from creditbank.core.entries import parse_entry
    from creditbank.storage import ledger_repo as repo
    from creditbank.storage.engine import IMMEDIATE

    now = "2026-11-22T00:00:00Z"
    with bank.engine.connect().execution_options(**{IMMEDIATE: True}) as conn, conn.begin():
        head = repo.lock_head(conn)
        ids = merkle.compact_range(head.size)
        got = repo.fetch_nodes(conn, ids)
        rows = []
        for i, raw in enumerate(raws):
            try:
                e = parse_entry(raw)
                typ, issuer, kid, at = e.type, e.issuer, e.key_id, e.at
                learner = e.body.get("learner")
                subject = learner if isinstance(learner, str) else None
            except Exception:  # a malformed entry, logged on purpose by a test
                typ, issuer, kid, at, subject = "record.posted", "?", "?", "?", None
            rows.append(
                {
                    "idx": head.size + i,
                    "data": raw,
                    "leaf_hash": merkle.leaf_hash(raw),
                    "type": typ,
                    "issuer": issuer,
                    "key_id": kid,
                    "at": at,
                    "subject": subject,
                    "ingested_at": now,
                }
            )
        app = merkle.append_leaves(head.size, [got[i] for i in ids], [r["leaf_hash"] for r in rows])
        repo.insert_entries(conn, rows)
        repo.insert_nodes(conn, app.nodes)
        reg = sum(1 for r in rows if str(r["type"]).startswith("institution."))
        new_head = repo.Head(app.size, app.root, head.registry_count + reg)
        repo.write_head(conn, new_head, now)
    if publish:
        bank.ledger.publish()
    return app.size
