"""schemathesis over the served OpenAPI document, against a live server of the assembled app
(API and pages, ``creditbank.asgi``), once per caller of the portals' authorization matrix:
anonymous, worker X, worker Y, the operators of INS-EU and INS-COL, and a bank admin — each
with an API token made on their own account (learner, institution and auditor tokens).
No generated request may be answered with a 5xx.

``CREDITBANK_TEST_SCHEMATHESIS_EXAMPLES`` sets the examples per operation (default 10).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser_fixtures import serve_app
from portal_fixtures import PortalWorld, make_portal_world

from creditbank.asgi import create_app

EXAMPLES = os.environ.get("CREDITBANK_TEST_SCHEMATHESIS_EXAMPLES", "10")
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
CALLERS = ("anon", "X", "Y", "A", "B", "admin")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[PortalWorld, str]]:
    world = make_portal_world(tmp_path_factory.mktemp("fuzz") / "home")
    app = create_app(world.bank.settings, bank=world.bank)
    app.state.accounts = world.accounts
    try:
        with serve_app(app) as url:
            yield world, url
    finally:
        world.close()


@pytest.mark.parametrize("caller", CALLERS)
def test_no_generated_request_gets_a_5xx(live: tuple[PortalWorld, str], caller: str) -> None:
    world, url = live
    cmd = [
        str(SCHEMATHESIS), "run", f"{url}/openapi.json",
        "--checks", "not_a_server_error",
        "--max-examples", EXAMPLES,
        "--seed", "10",
        "--request-timeout", "60",
        "--suppress-health-check", "all",
        "--no-color",
    ]  # fmt: skip
    if caller != "anon":
        account = world.accounts.get(world.logins[caller].account_id)
        token = world.accounts.create_token(account, "schemathesis").token
        cmd += ["--header", f"Authorization: Bearer {token}"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=1500, check=False)
    failures = done.stdout.find("FAILURES")
    tail = done.stdout[failures : failures + 6000] if failures >= 0 else done.stdout[-6000:]
    assert done.returncode == 0, tail
    counts = re.search(r"(\d+) generated, (\d+) passed", done.stdout)
    assert counts is not None, tail
    assert counts[1] == counts[2], tail
    assert int(counts[1]) > 0
    print(f"\n{caller}: {counts[1]} generated requests, no 5xx")  # pytest -s
