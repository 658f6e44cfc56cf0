"""``creditbank serve --workers N``: N API processes over one PostgreSQL database keep one
contiguous log (no gap, no index used twice, no checkpoint signed twice, a clean audit) while
posters hit them concurrently; on SQLite the command refuses, saying why."""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from records_fixtures import Learner, commitment, payload, resident_id
from sqlalchemy import text

from creditbank.config import Settings
from creditbank.core.entries import build_entry, sign_entry
from creditbank.core.signing import Ed25519Signer, entry_key_id
from creditbank.service import institutions as svc
from creditbank.service.bank import init_home, open_bank
from creditbank.service.clock import SystemClock

CLI = str(Path(sys.executable).parent / "creditbank")
POSTERS = 6
BATCHES = 8
PER_BATCH = 5


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CREDITBANK_")}
    env["CREDITBANK_HOME"] = str(settings.home)
    if settings.database_url:
        env["CREDITBANK_DATABASE_URL"] = settings.database_url
    env["CREDITBANK_CHECKPOINT_INTERVAL"] = "0.2"  # both workers' publishers race often
    return env


@pytest.mark.slow
def test_serve_workers(
    engine_kind: str, settings_factory: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = settings_factory()
    bank = init_home(settings)  # validating, real clock (what `creditbank serve` runs)
    signer = Ed25519Signer.from_seed(bytes(range(32)))
    try:
        svc.register_institution(
            bank, "INS-A", kind="college", name_zh="甲学院", name_en="College A",
            public_keys=[signer.public_bytes],
        )
        token, _ = svc.issue_institution_token(bank, "INS-A")
    finally:
        bank.close()
    port = _free_port()
    cmd = [CLI, "serve", "--workers", "2", "--port", str(port)]
    if engine_kind == "sqlite":
        done = subprocess.run(cmd, env=_env(settings), capture_output=True, text=True, timeout=60)
        assert done.returncode == 2
        assert "[config.workers_need_postgres]" in done.stderr
        assert done.stderr.startswith("error: --workers > 1 needs PostgreSQL")
        return
    log_path = tmp_path / "serve.log"
    with log_path.open("w") as log_file:
        proc = subprocess.Popen(cmd, env=_env(settings), stdout=log_file, stderr=log_file)
        try:
            _post_concurrently(f"http://127.0.0.1:{port}", proc, signer, token)
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=60)
    served = log_path.read_text()
    assert served.count("Started server process") == 2, served  # two API workers
    assert "checkpoint publishing failed" not in served
    assert "Traceback" not in served

    reopened = open_bank(settings)  # the same database, read back
    try:
        with reopened.engine.connect() as conn:
            idx = [r[0] for r in conn.execute(text("SELECT idx FROM log_entries ORDER BY idx"))]
            sizes = [r[0] for r in conn.execute(text("SELECT size FROM log_checkpoints"))]
            posted = conn.execute(
                text("SELECT count(*) FROM log_entries WHERE type = 'record.posted'")
            ).scalar_one()
        assert idx == list(range(len(idx)))  # contiguous: no gap, no reuse
        assert len(sizes) == len(set(sizes))  # no size signed twice
        assert posted == POSTERS * BATCHES * PER_BATCH
    finally:
        reopened.close()
    audit = subprocess.run(
        [CLI, "audit"], env=_env(settings), capture_output=True, text=True, timeout=300
    )
    assert audit.returncode == 0, audit.stdout + audit.stderr


def _post_concurrently(
    url: str, proc: subprocess.Popen[bytes], signer: Ed25519Signer, token: str
) -> None:
    deadline = time.monotonic() + 120
    while True:
        assert proc.poll() is None, "serve exited"
        try:
            if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "serve did not answer"
        time.sleep(0.2)
    auth = {"Authorization": f"Bearer {token}"}
    clock = SystemClock()
    kid = entry_key_id(signer.public_bytes)
    indexes: list[int] = []
    errors: list[str] = []
    lock = threading.Lock()

    def poster(p: int) -> None:
        try:
            got = httpx.post(
                url + "/api/v1/learners/resolve",
                json={"name": "王建国", "id_type": "resident_id", "id_number": resident_id(p + 1)},
                headers=auth,
                timeout=30,
            )
            assert got.status_code in (200, 201), got.text
            doc = got.json()
            learner = Learner(doc["learner_id"], base64.b64decode(doc["salt"]), "王建国")
            for b in range(BATCHES):
                entries: list[dict[str, Any]] = []
                for r in range(PER_BATCH):
                    n = (p * BATCHES + b) * PER_BATCH + r
                    body = {
                        "record_id": f"INS-A-R{n:05d}",
                        "dedup_key": f"INS-A:academic_credit:{n}",
                        "kind": "academic_credit",
                        "learner": learner.id,
                        "achieved_on": "2024-07-01",
                        "name_commitment": commitment(learner.salt, learner.name),
                        "payload": payload("academic_credit", "INS-A"),
                    }
                    raw = sign_entry(
                        build_entry("record.posted", "INS-A", kid, clock.now(), body), signer
                    )
                    entries.append(json.loads(raw))
                # a new connection per request, so the kernel spreads them over the workers
                resp = httpx.post(
                    url + "/api/v1/records", json={"entries": entries}, headers=auth, timeout=60
                )
                assert resp.status_code == 201, resp.text
                with lock:
                    indexes.extend(x["index"] for x in resp.json()["results"])
        except BaseException as e:  # reported by the main thread
            with lock:
                errors.append(f"poster {p}: {e!r}")

    threads = [threading.Thread(target=poster, args=(p,)) for p in range(POSTERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    assert len(indexes) == len(set(indexes)) == POSTERS * BATCHES * PER_BATCH
