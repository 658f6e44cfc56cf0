"""Helpers shared by the storage tests and the child processes they start.

Run as a script by the concurrency and crash tests. Every child process opens its own
:class:`Bank`, engine and connections (the crash children are forked by ``crash-server``
from an interpreter that has only imported, to spare a second of start-up per kill)::

    python tests/storage/_workers.py concurrent --home H [--db-url U] --sync S --seed HEX \
        --institution ID --worker K --count 2000 --batch 100 --out FILE --go FILE
    python tests/storage/_workers.py crash --home H [--db-url U] --seed HEX \
        --institution ID --run R --batch B --ack FILE
    python tests/storage/_workers.py crash-server --home H [--db-url U] --batch B
        (forks a ``crash`` child per ``run N ACKFILE`` line on stdin)

Only ``creditbank`` is imported here, never the test modules, so the script needs no
``sys.path`` tricks.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TextIO

from creditbank.config import Settings
from creditbank.core.entries import build_entry, sign_entry
from creditbank.core.signing import Ed25519Signer, b64encode, entry_key_id
from creditbank.service.bank import Bank, open_bank
from creditbank.service.clock import Clock, SystemClock

COLLEGE_ID = "COLLEGE-1"
#: ``validate_records`` for every bank opened here: these tests are about the log itself, so
#: the record semantics (schemas, learners, chains) are off (the ledger-only mode); signatures
#: and key validity are still checked under the lock.
VALIDATE_RECORDS = False
#: a fixed test seed for the college's Ed25519 key (tests only)
COLLEGE_SEED = bytes(range(32))


def college_signer(seed: bytes = COLLEGE_SEED) -> Ed25519Signer:
    return Ed25519Signer.from_seed(seed)


def register_college(bank: Bank, signer: Ed25519Signer, institution_id: str = COLLEGE_ID) -> int:
    """Append the ``institution.registered`` entry for a college; returns its index."""
    raw = bank.bank_entry(
        "institution.registered",
        {
            "institution_id": institution_id,
            "kind": "college",
            "name_zh": "测试学院",
            "name_en": "Test College",
            "keys": [
                {
                    "key_id": entry_key_id(signer.public_bytes),
                    "public_key": b64encode(signer.public_bytes),
                }
            ],
        },
    )
    (out,) = bank.ledger.append([raw], publish=True)
    return out.index


def record_entries(
    signer: Ed25519Signer,
    institution_id: str,
    tag: str,
    start: int,
    count: int,
    at: datetime,
) -> list[bytes]:
    """``count`` distinct signed ``record.posted`` entries (distinct by ``tag`` and number)."""
    key_id = entry_key_id(signer.public_bytes)
    out: list[bytes] = []
    for n in range(start, start + count):
        body = {
            "record_id": f"{tag}-{n}",
            "learner": f"L{n % 97:04d}",
            "kind": "training_hours",
            "payload": {"hours": n % 40 + 1},
        }
        out.append(
            sign_entry(build_entry("record.posted", institution_id, key_id, at, body), signer)
        )
    return out


def _settings(args: argparse.Namespace, **extra: object) -> Settings:
    return Settings(home=Path(args.home), database_url=args.db_url or None, **extra)


def _write_synced(f: TextIO, line: str) -> None:
    f.write(line)
    f.flush()
    os.fsync(f.fileno())


def run_concurrent(args: argparse.Namespace) -> None:
    """Append ``count`` entries in batches once ``--go`` exists; write every outcome."""
    clock: Clock = SystemClock()
    settings = _settings(args, sqlite_synchronous=args.sync, checkpoint_interval=0.5)
    bank = open_bank(settings, validate_records=VALIDATE_RECORDS)
    signer = college_signer(bytes.fromhex(args.seed))
    raws = record_entries(signer, args.institution, f"w{args.worker}", 0, args.count, clock.now())
    Path(f"{args.out}.ready").touch()
    go = Path(args.go)
    while not go.exists():  # a start line, so that all workers contend from the first batch
        time.sleep(0.005)
    batches: list[list[tuple[int, str]]] = []
    for i in range(0, len(raws), args.batch):
        outcomes = bank.ledger.append(raws[i : i + args.batch])
        batches.append([(o.index, o.leaf_hash.hex()) for o in outcomes])
        assert not any(o.duplicate for o in outcomes)
    bank.close()
    tmp = Path(f"{args.out}.tmp")
    tmp.write_text(json.dumps(batches))
    tmp.replace(args.out)


def run_crash(args: argparse.Namespace) -> None:
    """Append batches forever; after each acknowledged append, log it to ``--ack`` (fsync).

    ``checkpoint_interval=0`` publishes a checkpoint in every append transaction. The first
    line written is ``{"ready": true}``, once the bank is open; the parent SIGKILLs us.
    """
    clock: Clock = SystemClock()
    bank = open_bank(_settings(args, checkpoint_interval=0.0), validate_records=VALIDATE_RECORDS)
    signer = college_signer(bytes.fromhex(args.seed))
    with open(args.ack, "a", encoding="utf-8") as ack:
        _write_synced(ack, json.dumps({"ready": args.run}) + "\n")
        n = 0
        while True:
            size = 1 + n % args.batch  # vary the batch size: 1 .. batch
            raws = record_entries(signer, args.institution, f"r{args.run}", n, size, clock.now())
            outcomes = bank.ledger.append(raws)
            line = {
                "run": args.run,
                "indices": [o.index for o in outcomes],
                "leaf_hashes": [o.leaf_hash.hex() for o in outcomes],
            }
            _write_synced(ack, json.dumps(line) + "\n")
            n += size


def serve_crash_children(args: argparse.Namespace) -> None:
    """Fork a fresh crash child per request, from this interpreter with its imports done.

    Starting an interpreter costs about a second; forking one that has imported everything
    costs milliseconds, so the crash test can afford many kills. Nothing here opens a
    database or starts a thread before forking: each child opens its own :class:`Bank`.

    Commands on stdin, answers on stdout, one line each:
    ``run N ACKFILE`` -> the child's pid; ``reap PID`` -> its raw wait status.
    """
    # warm the imports every child needs (the drivers and their dialects load lazily)
    import sqlite3  # noqa: F401

    import psycopg  # noqa: F401
    import sqlalchemy.dialects.postgresql.psycopg
    import sqlalchemy.dialects.sqlite.pysqlite  # noqa: F401

    while line := sys.stdin.readline():
        cmd, *rest = line.split()
        if cmd == "run":
            sys.stdout.flush()
            pid = os.fork()
            if pid == 0:
                code = 1
                try:
                    run_crash(
                        argparse.Namespace(**{**vars(args), "run": int(rest[0]), "ack": rest[1]})
                    )
                except BaseException:
                    traceback.print_exc()
                finally:
                    os._exit(code)
            print(pid, flush=True)
        elif cmd == "reap":
            _, status = os.waitpid(int(rest[0]), 0)
            print(status, flush=True)


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["concurrent", "crash", "crash-server"])
    p.add_argument("--home", required=True)
    p.add_argument("--db-url", default="")
    p.add_argument("--sync", default="FULL")
    p.add_argument("--seed", default=COLLEGE_SEED.hex())
    p.add_argument("--institution", default=COLLEGE_ID)
    p.add_argument("--worker", type=int, default=0)
    p.add_argument("--count", type=int, default=2000)
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--out", default="")
    p.add_argument("--go", default="")
    p.add_argument("--run", type=int, default=0)
    p.add_argument("--ack", default="")
    args = p.parse_args(argv)
    if args.mode == "concurrent":
        run_concurrent(args)
    elif args.mode == "crash":
        run_crash(args)
    else:
        serve_crash_children(args)


if __name__ == "__main__":
    main(sys.argv[1:])
