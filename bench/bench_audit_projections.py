"""What checking the projections adds to ``creditbank audit`` (issue #12, ADR 0007).

Builds a log through the product path (``init_home`` with record validation): one college,
``--learners`` learners, ``--size`` record entries in batches of 1,000 with a correction every
50th and a revocation every 100th entry, so the records and revocations projections are
populated. Then, alternating so that load drift hits both alike, ``--repeat`` times each:

* ``run_audit(bank, workers=2, projections=False)``: the log audit (hashes, signatures,
  nodes, checkpoints and their history, and the envelope columns the workers compare while
  they parse each entry);
* ``run_audit(bank, workers=2)``: the same plus the projection pass (records, revocations,
  conversion rows, documents and revocation subjects replayed and compared).

    .venv/bin/python -m bench.bench_audit_projections [--size 20000] [--repeat 3] [--json out]
"""

from __future__ import annotations

import argparse
import secrets
import tempfile
import time
from pathlib import Path

from bench import machine_info, median, print_table, record_body, register_college, write_json
from creditbank.config import Settings
from creditbank.core.entries import build_entry, sign_entry
from creditbank.core.identity import name_commitment
from creditbank.core.signing import entry_key_id
from creditbank.service.audit import run_audit
from creditbank.service.bank import init_home
from creditbank.service.records import resolve_learner


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=20_000)
    ap.add_argument("--learners", type=int, default=500)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    home = Path(tempfile.mkdtemp(prefix="cb-auditproj-"))
    bank = init_home(Settings(home=home, checkpoint_interval=3600))
    try:
        started = time.perf_counter()
        signer = register_college(bank, "INS-B")
        kid = entry_key_id(signer.public_bytes)
        with bank.engine.begin() as conn:
            learners = [
                resolve_learner(
                    conn,
                    pepper=bank.pepper,
                    now="2026-01-01T00:00:00Z",
                    name=f"学员{n}",
                    prehash=secrets.token_hex(32),
                ).learner_id
                for n in range(args.learners)
            ]
        raws: list[bytes] = []
        for i in range(args.size):
            body = record_body(i)
            body["learner"] = learners[i % len(learners)]
            body.pop("evidence", None)
            body["name_commitment"] = name_commitment(bytes(16), f"学员{i}")
            body["payload"] = {
                "course_id": f"C-{i % 97:02d}",
                "course_name_zh": "物流管理基础",
                "credits_centi": 400,
                "grade": 60 + i % 40,
                "term": "2024S",
            }
            type_ = "record.posted"
            if i % 100 == 99:
                type_ = "record.revoked"
                body = {
                    "record_id": f"R{i - 1:09d}",
                    "reason": "issued in error",
                    "effective_on": "2025-01-01",
                }
            elif i % 50 == 49:
                type_ = "record.corrected"
                body["corrects"] = f"R{i - 2:09d}"
                body["learner"] = learners[(i - 2) % len(learners)]
            unsigned = build_entry(type_, "INS-B", kid, bank.clock.now(), body)
            raws.append(sign_entry(unsigned, signer))
        for start in range(0, len(raws), 1000):
            bank.ledger.append(raws[start : start + 1000])
        bank.ledger.publish()
        built = time.perf_counter() - started
        print(f"built a validated log of {bank.ledger.head().size:,} entries in {built:.0f} s")
        plain: list[float] = []
        full: list[float] = []
        for _ in range(args.repeat):
            t = time.perf_counter()
            report = run_audit(bank, workers=2, projections=False)
            plain.append(time.perf_counter() - t)
            assert report.ok, report.problems[:3]
            t = time.perf_counter()
            report = run_audit(bank, workers=2)
            full.append(time.perf_counter() - t)
            assert report.ok, report.problems[:3]
        size = bank.ledger.head().size
        rows = [
            (
                "log audit (projections=False)",
                f"{median(plain):.2f} s",
                f"{size / median(plain):,.0f}/s",
            ),
            (
                "with projections (default)",
                f"{median(full):.2f} s",
                f"{size / median(full):,.0f}/s",
            ),
            ("projection pass share", f"{(median(full) - median(plain)) / median(full):.1%}", ""),
        ]
        print_table(
            f"audit of {size:,} entries, SQLite, 2 workers", ["run", "median", "rate"], rows
        )
        write_json(
            args.json,
            {
                "machine": machine_info(),
                "size": size,
                "plain_seconds": plain,
                "full_seconds": full,
            },
        )
    finally:
        bank.close()


if __name__ == "__main__":
    main()
