"""The browser-test harness: a live bank over HTTP and headless Debian Chromium (Playwright).

Import the fixtures into a suite's ``conftest.py``::

    from browser_fixtures import browser, live_bank, open_page  # noqa: F401

Pieces (each documented below):

* :func:`serve_app` - run any ASGI app (e.g. ``creditbank.asgi.create_app(settings,
  bank=bank)`` over a bank a test prepared) with uvicorn on ``127.0.0.1:<free port>`` in a
  thread; yields the base URL.
* ``live_bank`` (module) - an initialised bank (SQLite, fixed clock at ``T0``, genesis and the
  test institution ``INST-1`` registered) served by :func:`serve_app`: a :class:`LiveBank`.
* ``browser`` (module) - ONE Chromium per module, ``/usr/bin/chromium`` (never downloaded),
  ``--headless --no-sandbox --disable-gpu --disable-background-networking``; the suite skips,
  saying why, when the binary is missing.
* ``open_page`` (function) - ``open_page(viewport="phone"|"desktop", lang="zh"|"en")`` gives a
  :class:`Recorded` page in a fresh context (390x844 or 1280x800) that records every request
  URL, console error and Content-Security-Policy violation, and cuts the network to
  127.0.0.1 (any other request is aborted and recorded as external).
* :meth:`Recorded.shot` - a full-page screenshot saved under ``tests/artifacts/`` (git
  ignored), named after the test.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import uvicorn

from creditbank.config import Settings
from creditbank.core.signing import Ed25519Signer, b64encode, entry_key_id
from creditbank.service.bank import Bank, init_home
from creditbank.service.clock import FixedClock

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
VIEWPORTS: dict[str, dict[str, int]] = {
    "phone": {"width": 390, "height": 844},
    "desktop": {"width": 1280, "height": 800},
}
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
LOCAL_HOSTS = frozenset({"127.0.0.1"})
#: the clock of ``live_bank`` (the same instant as tests/conftest.py's T0)
LIVE_T0 = datetime(2025, 3, 1, 8, 0, 0, tzinfo=UTC)
LIVE_INSTITUTION_SEED = bytes(range(32))

# reported by the init script below, and by Chromium itself, on a violation
_CSP_SCRIPT = """
document.addEventListener("securitypolicyviolation", (e) => {
  console.error("CSP-VIOLATION " + e.violatedDirective + " " + e.blockedURI);
});
"""
_CSP_CONSOLE = re.compile(r"Content Security Policy|CSP-VIOLATION", re.IGNORECASE)


# -- the live server ------------------------------------------------------------------------
@contextmanager
def serve_app(app: Any, *, timeout: float = 30.0) -> Iterator[str]:
    """Serve ``app`` (lifespan on) on 127.0.0.1 at a free port in a thread; yield the URL.

    Raises:
        RuntimeError: if the server does not start within ``timeout`` seconds.
    """
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_level="warning", access_log=False, lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="live-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@dataclass
class LiveBank:
    """A served bank: ``url`` (no trailing slash), the open ``bank``, its ``clock``."""

    url: str
    bank: Bank
    clock: FixedClock


def register_test_institution(bank: Bank, institution_id: str = "INST-1") -> Ed25519Signer:
    """Register ``institution_id`` with the fixed test key (a bank-signed registry entry)."""
    signer = Ed25519Signer.from_seed(LIVE_INSTITUTION_SEED)
    body = {
        "institution_id": institution_id,
        "kind": "college",
        "name_zh": "测试学院",
        "name_en": f"Test Institution {institution_id}",
        "keys": [
            {
                "key_id": entry_key_id(signer.public_bytes),
                "public_key": b64encode(signer.public_bytes),
            }
        ],
    }
    bank.ledger.append([bank.bank_entry("institution.registered", body)], publish=True)
    return signer


@pytest.fixture(scope="module")
def live_bank(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveBank]:
    """ONE live server per module: the API and the pages (``creditbank.asgi``) over a fresh
    SQLite bank (fixed clock at :data:`LIVE_T0`, ``INST-1`` registered, publisher idle)."""
    from creditbank.asgi import create_app

    saved = {k: os.environ.pop(k) for k in list(os.environ) if _is_setting(k)}
    home = tmp_path_factory.mktemp("live") / "home"
    clock = FixedClock(LIVE_T0)
    settings = Settings(home=home, checkpoint_interval=3600.0, sqlite_synchronous="NORMAL")
    bank = init_home(settings, clock=clock, validate_records=False)
    try:
        register_test_institution(bank)
        with serve_app(create_app(settings, bank=bank)) as url:
            yield LiveBank(url, bank, clock)
    finally:
        bank.close()
        os.environ.update(saved)


def _is_setting(name: str) -> bool:
    return name.startswith("CREDITBANK_") and not name.startswith("CREDITBANK_TEST_")


# -- the browser ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """ONE headless Debian Chromium for the module (Playwright, no browser download).

    Module scope, not session: Playwright's sync API keeps an event loop running in the main
    thread while it is started, where ``asyncio.run`` then refuses to start; a browser kept
    for the session broke every later test module on that worker that runs a loop.

    Suites in different folders import this fixture into their own conftest or module, which
    makes separate fixture definitions; the first one started is shared with the others (a
    second Playwright cannot start beside the first in one thread)."""
    if not CHROMIUM.exists():
        pytest.skip(f"browser tests need Debian's chromium at {CHROMIUM} (apt install chromium)")
    if _SHARED_BROWSER:
        yield _SHARED_BROWSER[0]
        return
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        _SHARED_BROWSER.append(b)
        try:
            yield b
        finally:
            _SHARED_BROWSER.clear()
            b.close()


#: the running browser of the first ``browser`` fixture started in this session
_SHARED_BROWSER: list[Any] = []


@dataclass
class Recorded:
    """A page and what it did: request URLs, external (aborted) requests, console errors,
    CSP violations. ``shot(name)`` saves a screenshot under tests/artifacts/."""

    page: Any
    test_name: str
    viewport: str
    requests: list[str] = field(default_factory=list)
    external: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    csp_violations: list[str] = field(default_factory=list)

    def shot(self, name: str) -> Path:
        """A full-page PNG ``tests/artifacts/<test>-<name>-<viewport>.png``."""
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{self.test_name}-{name}-{self.viewport}")
        path = ARTIFACTS / f"{safe}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def assert_clean(self) -> None:
        """No request left 127.0.0.1, no CSP violation, no console error."""
        assert self.external == [], f"requests outside 127.0.0.1: {self.external}"
        assert self.csp_violations == [], f"CSP violations: {self.csp_violations}"
        assert self.console_errors == [], f"console errors: {self.console_errors}"


@pytest.fixture
def open_page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Callable[..., Recorded]]:
    """``open_page(viewport="phone", lang="zh") -> Recorded``: a fresh context per call
    (its own cookies), the network cut to 127.0.0.1, everything recorded."""
    contexts: list[Any] = []

    def make(viewport: str = "phone", lang: str = "zh") -> Recorded:
        locale = {"zh": "zh-CN", "en": "en-US"}[lang]
        ctx = browser.new_context(
            viewport=VIEWPORTS[viewport],
            locale=locale,
            extra_http_headers={"Accept-Language": f"{locale},{lang};q=0.9"},
            service_workers="block",
        )
        contexts.append(ctx)
        ctx.add_init_script(_CSP_SCRIPT)
        page = ctx.new_page()
        rec = Recorded(page, request.node.name, viewport)

        def route(r: Any) -> None:
            url = r.request.url
            rec.requests.append(url)
            host = urlsplit(url).hostname
            if url.startswith(("data:", "blob:")) or host in LOCAL_HOSTS:
                r.continue_()
            else:
                rec.external.append(url)
                r.abort()

        def console(msg: Any) -> None:
            if msg.type != "error":
                return
            text = msg.text
            if _CSP_CONSOLE.search(text):
                rec.csp_violations.append(text)
            elif "the server responded with a status of" not in text:
                rec.console_errors.append(text)  # an HTTP error status is expected on error pages

        ctx.route("**/*", route)
        page.on("console", console)
        return rec

    yield make
    for ctx in contexts:
        ctx.close()
