"""``creditbank demo`` end to end: the real command in a subprocess with the embedded defaults
(SQLite, the real clock, the render pool, Argon2 as configured), then what it printed is
used as a person would: the one URL, a login per role through the portal's sign-in form,
the sample verification code's /v/ URL. The server is stopped by its PID.

The first run takes a while on a loaded machine (import, five documents rendered, three
Argon2 hashes; the banner says how long each step took), so this is one module-wide run.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from creditbank.config import Settings
from creditbank.service import share_codes
from creditbank.service.bank import open_bank
from creditbank.service.conversion import resolve_learner_ref
from creditbank.service.demo import DEMO_STATE, LOGIN_DOMAIN

CREDITBANK = Path(sys.executable).parent / "creditbank"
#: the first run's budget (a 2-core machine shared by several test runs)
SETUP_TIMEOUT = 900.0
LOGIN_LINE = re.compile(r"^\s+(worker|operator|admin)\s+(\S+)\s+password (\S+)\s")
V_URL = re.compile(r"http://127\.0\.0\.1:(\d+)/v/([0-9A-Z]{4}(?:-[0-9A-Z]{4}){3})")
#: what a person must never see from a demo that works
SCARY = re.compile(r"Traceback|ERROR|CRITICAL|WARNING|Exception|error:", re.IGNORECASE)

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env() -> dict[str, str]:
    """The caller's environment without any CREDITBANK_* setting: the embedded defaults."""
    return {k: v for k, v in os.environ.items() if not k.startswith("CREDITBANK_")}


@dataclass
class Demo:
    proc: subprocess.Popen[str]
    home: Path
    port: int
    out: list[str] = field(default_factory=list)
    err: list[str] = field(default_factory=list)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def logins(self) -> dict[str, tuple[str, str]]:
        return {
            m[1]: (m[2], m[3]) for m in (LOGIN_LINE.match(x) for x in self.out) if m is not None
        }


def _pump(stream: object, sink: list[str]) -> None:
    for line in stream:  # type: ignore[attr-defined]
        sink.append(line.rstrip("\n"))


def _start(home: Path, port: int) -> Demo:
    proc = subprocess.Popen(
        [str(CREDITBANK), "demo", "--home", str(home), "--port", str(port)],
        env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    demo = Demo(proc, home, port)
    for stream, sink in ((proc.stdout, demo.out), (proc.stderr, demo.err)):
        threading.Thread(target=_pump, args=(stream, sink), daemon=True).start()
    return demo


def _wait_ready(demo: Demo) -> None:
    """Until the banner is printed and /healthz answers 200."""
    deadline = time.monotonic() + SETUP_TIMEOUT
    while time.monotonic() < deadline:
        assert demo.proc.poll() is None, "\n".join(demo.out + demo.err)
        if any("Press Ctrl+C" in x for x in demo.out):
            try:
                if httpx.get(f"{demo.base}/healthz", timeout=5).status_code == 200:
                    return
            except httpx.TransportError:
                pass
        time.sleep(0.5)
    raise AssertionError("the demo did not come up:\n" + "\n".join(demo.out + demo.err))


def _stop(demo: Demo) -> int:
    """SIGINT to the PID (Ctrl+C), as a person stops it; SIGKILL after 60 s."""
    if demo.proc.poll() is None:
        os.kill(demo.proc.pid, signal.SIGINT)
        try:
            return demo.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            demo.proc.kill()
            demo.proc.wait()
            raise
    return int(demo.proc.returncode)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """One demo for the module. Stopping it by PID is checked at teardown (tests run in any
    order under pytest-randomly, so no test may stop it): exit 0, nothing scary said."""
    home = tmp_path_factory.mktemp("demo") / "home"
    running = _start(home, _free_port())
    try:
        _wait_ready(running)
        yield running
    finally:
        code = _stop(running)
    assert code == 0, "\n".join(running.err)
    assert not _scary(running), _scary(running)
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{running.base}/healthz", timeout=5)


def _scary(demo: Demo) -> list[str]:
    return [x for x in demo.out + demo.err if SCARY.search(x)]


@contextmanager
def _sign_in(base: str, login: str, password: str) -> Iterator[httpx.Client]:
    """Sign in through the portal's form (CSRF cookie and token as a browser sends them)."""
    with httpx.Client(base_url=base, timeout=30, headers={"Accept-Language": "en"}) as client:
        page = client.get("/signin")
        assert page.status_code == 200
        token = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert token is not None
        answer = client.post(
            "/signin", data={"csrf": token[1], "next": "", "login": login, "password": password}
        )
        assert answer.status_code == 303, answer.text[:500]
        assert "cb_session" in client.cookies
        yield client


def test_the_banner_has_one_url_three_logins_and_a_code(demo: Demo) -> None:
    text = "\n".join(demo.out)
    assert f"  Open      {demo.base}/" in demo.out
    assert set(demo.logins()) == {"worker", "operator", "admin"}
    assert {login for login, _ in demo.logins().values()} == {
        f"{role}@{LOGIN_DOMAIN}" for role in ("worker", "operator", "admin")
    }
    urls = V_URL.findall(text)
    assert len(urls) == 1
    assert urls[0][0] == str(demo.port)
    # the steps and how long they took; what was made
    assert re.search(r"ready in [0-9.]+ s \(home [0-9.]+ s, import [0-9.]+ s, documents", text)
    assert "5 documents rendered, 3 accounts made" in text
    for holder in ("王建国 (L01)", "艾合买提·吐尔逊 (L12)", "阿依古丽·努尔兰 (L14)"):
        assert holder in text
    assert "certificate of 王建国 (L01)" in text


def test_the_home_page_answers(demo: Demo) -> None:
    page = httpx.get(f"{demo.base}/", timeout=30)
    assert page.status_code == 200
    assert 'action="/v"' in page.text


def test_the_printed_code_opens_a_valid_transcript(demo: Demo) -> None:
    ((port, code),) = V_URL.findall("\n".join(demo.out))
    page = httpx.get(
        f"http://127.0.0.1:{port}/v/{code}", headers={"Accept-Language": "zh"}, timeout=30
    )
    assert page.status_code == 200
    assert 'data-status="VALID"' in page.text
    assert "王建国" in page.text
    api = httpx.get(f"{demo.base}/api/v1/verify/{code}", timeout=30).json()
    assert api["verified"] is True, api
    assert api["status"] == "VALID", api
    assert api["checks"]
    assert all(c["ok"] for c in api["checks"]), api["checks"]


def test_the_worker_signs_in_and_sees_l01s_records(demo: Demo) -> None:
    login, password = demo.logins()["worker"]
    with _sign_in(demo.base, login, password) as client:
        page = client.get("/me")
        assert page.status_code == 200, page.text[:500]
        assert "王建国" in page.text
        # O0001, the course 物流管理基础 INS-OU posted for L01, in English
        assert "Fundamentals of Logistics Management" in page.text
        assert "INS-OU / O0001" in page.text
        docs = client.get("/me/documents")
        assert docs.status_code == 200
        assert docs.text.count("/pdf") >= 2  # the transcript and the certificate


def test_the_operator_and_the_admin_reach_their_pages(demo: Demo) -> None:
    logins = demo.logins()
    with _sign_in(demo.base, *logins["operator"]) as client:
        page = client.get("/console")
        assert page.status_code == 200
        assert "INS-OU" in page.text or "Donghu Open University" in page.text
    with _sign_in(demo.base, *logins["admin"]) as client:
        assert client.get("/admin").status_code == 200


def test_a_wrong_password_is_refused(demo: Demo) -> None:
    login, _ = demo.logins()["worker"]
    with httpx.Client(base_url=demo.base, timeout=30) as client:
        page = client.get("/signin")
        token = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert token is not None
        answer = client.post(
            "/signin", data={"csrf": token[1], "login": login, "password": "not-the-password"}
        )
        assert answer.status_code == 401
        assert "cb_session" not in client.cookies


def test_the_state_file_is_private(demo: Demo) -> None:
    path = demo.home / DEMO_STATE
    assert path.stat().st_mode & 0o777 == 0o600
    state = json.loads(path.read_text("utf-8"))
    assert state["base_url"] == demo.base
    assert state["logins"]["worker"]["password"] == demo.logins()["worker"][1]


def test_a_second_run_adds_nothing_and_prints_the_same(demo: Demo) -> None:
    again = subprocess.run(
        [str(CREDITBANK), "demo", "--home", str(demo.home), "--port", str(demo.port),
         "--no-serve"],
        env=_env(), capture_output=True, text=True, timeout=SETUP_TIMEOUT,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert "(0 entries added)" in again.stdout
    assert "0 documents rendered, 0 accounts made" in again.stdout
    lines = again.stdout.splitlines()
    assert {
        m[1]: (m[2], m[3]) for m in (LOGIN_LINE.match(x) for x in lines) if m is not None
    } == demo.logins()
    assert V_URL.findall(again.stdout) == V_URL.findall("\n".join(demo.out))


def test_the_home_refuses_another_address(demo: Demo) -> None:
    other = subprocess.run(
        [str(CREDITBANK), "demo", "--home", str(demo.home), "--port", str(demo.port + 1),
         "--no-serve"],
        env=_env(), capture_output=True, text=True, timeout=SETUP_TIMEOUT,
    )  # fmt: skip
    assert other.returncode == 2
    assert other.stderr.strip().endswith("[demo.base_url]")
    assert len(other.stderr.strip().splitlines()) == 1


def test_nothing_scary_is_said(demo: Demo) -> None:
    # whatever ran before it (any order): the set-up, start-up and request lines so far
    assert httpx.get(f"{demo.base}/healthz", timeout=30).status_code == 200
    assert not _scary(demo), _scary(demo)
    assert any("Uvicorn running on" in x for x in demo.err)


def test_a_code_that_no_longer_opens_is_replaced_on_the_next_run(demo: Demo) -> None:
    line = next(x for x in demo.out if x.startswith("  Other documents: "))
    cert = re.search(r"certificate of 王建国 \(L01\) ([0-9A-Z-]{19})", line)
    assert cert is not None
    state = json.loads((demo.home / DEMO_STATE).read_text("utf-8"))
    held = state["documents"]["certificate:L01"]
    bank = open_bank(Settings(home=demo.home, database_url=None))
    try:  # the worker revokes the printed code (the service the share-codes page calls)
        found = share_codes.lookup_code(bank, cert[1], count=False)
        assert found.doc_id == held["doc_id"]
        share_codes.revoke_share_code(bank, resolve_learner_ref(bank, "L01"), found.code_id)
    finally:
        bank.close()
    page = httpx.get(f"{demo.base}/v/{cert[1]}", timeout=30)
    assert 'data-status="CODE_REVOKED"' in page.text
    again = subprocess.run(
        [str(CREDITBANK), "demo", "--home", str(demo.home), "--port", str(demo.port),
         "--no-serve"],
        env=_env(), capture_output=True, text=True, timeout=SETUP_TIMEOUT,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert "0 documents rendered" in again.stdout  # the document is valid: a new code only
    new = re.search(r"certificate of 王建国 \(L01\) ([0-9A-Z-]{19})", again.stdout)
    assert new is not None
    assert new[1] != cert[1]
    fresh = httpx.get(f"{demo.base}/v/{new[1]}", timeout=30)
    assert 'data-status="VALID"' in fresh.text
    state = json.loads((demo.home / DEMO_STATE).read_text("utf-8"))
    assert state["documents"]["certificate:L01"]["doc_id"] == held["doc_id"]


def test_a_port_in_use_is_said_at_once(tmp_path: Path) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        started = time.monotonic()
        res = subprocess.run(
            [str(CREDITBANK), "demo", "--home", str(tmp_path / "h"), "--port", str(port)],
            env=_env(), capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    assert res.returncode == 2
    assert res.stderr.strip() == (
        f"error: port {port} on 127.0.0.1 is in use: stop what holds it or pass --port "
        "[config.port_in_use]"
    )
    assert not (tmp_path / "h").exists()  # refused before anything was made
    assert time.monotonic() - started < 60
