"""Generated requests against a live server (uvicorn on 127.0.0.1, a free port) with the
sample imported: schemathesis, run once per principal (a learner's token, an institution's
token, no token). No request may be answered with a 5xx, and the served OpenAPI document
must pass openapi-spec-validator (issue #12).

SQLite only (the routes and their validation are the engine's concern nowhere; the
concurrency and outage tests cover PostgreSQL), to keep the suite's time.
``CREDITBANK_TEST_SCHEMATHESIS_EXAMPLES`` sets the examples per operation (default 15).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import uvicorn
from openapi_spec_validator import validate
from sample_data import SAMPLE

from creditbank.api.app import create_app
from creditbank.config import Settings
from creditbank.service import institutions as svc
from creditbank.service.bank import Bank, init_home
from creditbank.service.clock import FixedClock
from creditbank.service.importer import import_dataset

T_IMPORT = datetime(2026, 1, 15, 9, 0, 0, tzinfo=UTC)
EXAMPLES = os.environ.get("CREDITBANK_TEST_SCHEMATHESIS_EXAMPLES", "15")
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")

pytestmark = pytest.mark.slow


@pytest.fixture
def live(tmp_path: Path) -> Iterator[tuple[Bank, str]]:
    settings = Settings(
        home=tmp_path / "home",
        checkpoint_interval=0.5,
        sqlite_synchronous="NORMAL",
        learner_write_burst=100_000,
        institution_write_burst=100_000,
    )
    bank = init_home(settings, clock=FixedClock(T_IMPORT))
    try:
        import_dataset(bank, SAMPLE)
        bank.ledger.publish()
        app = create_app(settings, bank=bank)
        config = uvicorn.Config(
            app, host="127.0.0.1", port=0, log_level="warning", access_log=False, lifespan="on"
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
        thread.start()
        deadline = time.monotonic() + 30
        while not server.started:
            assert thread.is_alive(), "uvicorn stopped"
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        port = server.servers[0].sockets[0].getsockname()[1]
        try:
            yield bank, f"http://127.0.0.1:{port}"
        finally:
            server.should_exit = True
            thread.join(timeout=60)
    finally:
        bank.close()


def _token(bank: Bank, principal: str) -> str | None:
    if principal == "learner":
        with bank.engine.connect() as conn:
            from sqlalchemy import select

            from creditbank.storage.tables import learners_t

            lid = conn.execute(select(learners_t.c.learner_id).limit(1)).scalar_one()
        return svc.issue_learner_token(bank, str(lid))[0]
    if principal == "institution":
        inst = sorted(i for i in bank.ledger.registry().institutions if i != "BANK")[0]
        return svc.issue_institution_token(bank, inst)[0]
    return None


@pytest.mark.parametrize("principal", ["learner", "institution", "anonymous"])
def test_generated_requests_never_get_a_5xx(live: tuple[Bank, str], principal: str) -> None:
    bank, url = live
    doc = httpx.get(f"{url}/openapi.json", timeout=30).json()
    validate(doc)
    token = _token(bank, principal)
    cmd = [
        str(SCHEMATHESIS),
        "run",
        f"{url}/openapi.json",
        "--checks",
        "not_a_server_error",
        "--max-examples",
        EXAMPLES,
        "--seed",
        "12",
        "--request-timeout",
        "60",
        "--suppress-health-check",
        "all",
        "--no-color",
    ]
    if token is not None:
        cmd += ["--header", f"Authorization: Bearer {token}"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=1500, check=False)
    failures = done.stdout.find("FAILURES")
    tail = done.stdout[failures : failures + 6000] if failures >= 0 else done.stdout[-6000:]
    assert done.returncode == 0, tail
    counts = re.search(r"(\d+) generated, (\d+) passed", done.stdout)
    assert counts is not None, tail
    assert counts[1] == counts[2], tail
    assert int(counts[1]) > 0
    print(f"\n{principal}: {counts[1]} generated requests, no 5xx")  # pytest -s
