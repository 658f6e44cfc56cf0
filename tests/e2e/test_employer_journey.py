"""The employer's journey end to end, in real headless Chromium (Debian's, via Playwright) at
a 390x844 phone viewport: a transcript is issued; its PDF is rendered to PNG (pdftoppm,
150 dpi) and the QR code decoded with zbarimg; that URL opens VALID with the learner's
Chinese name; the institution revokes one record; the reload shows REVOKED with the reason;
the switch shows it in English. Screenshots: tests/artifacts/ (git-ignored).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import uvicorn
from browser_fixtures import ARTIFACTS, Recorded, browser, open_page  # noqa: F401
from verify_world import World, build_world

from creditbank.asgi import create_app


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[World, str]]:
    """A world whose public base URL is the live server's, so the printed QR code opens it."""
    for tool in ("pdftoppm", "zbarimg"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (poppler-utils, zbar-tools)")
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    home = tmp_path_factory.mktemp("journey") / "home"
    worlds = build_world(home, public_base_url=base)
    # pyHanko signs through asyncio.run, which refuses to run beside Playwright's loop in
    # this thread: the world (issuing renders and signs PDFs) is built in another thread
    with ThreadPoolExecutor(1) as pool:
        world = pool.submit(next, worlds).result()
    server = uvicorn.Server(
        uvicorn.Config(create_app(world.bank.settings, bank=world.bank), host="127.0.0.1",
                       port=port, log_level="warning", lifespan="on")
    )  # fmt: skip
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("the live server did not start")
            time.sleep(0.05)
        yield world, base
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        worlds.close()


def qr_url_of(pdf: bytes, workdir: Path) -> str:
    """The URL the PDF's first page QR code encodes (pdftoppm at 150 dpi, then zbarimg)."""
    src = workdir / "transcript.pdf"
    src.write_bytes(pdf)
    subprocess.run(["pdftoppm", "-r", "150", "-f", "1", "-l", "1", "-png", str(src),
                    str(workdir / "page")], check=True, timeout=120)  # fmt: skip
    (png,) = sorted(workdir.glob("page*.png"))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(png, ARTIFACTS / "employer-journey-transcript-page1.png")
    done = subprocess.run(["zbarimg", "--raw", "-q", str(png)], capture_output=True,
                          timeout=120, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.decode().split()
    assert len(lines) == 1, lines
    return lines[0]


@pytest.mark.slow
def test_scan_verify_revoke_reload_switch(
    served: tuple[World, str],
    open_page: Callable[..., Recorded],  # noqa: F811 - the fixture
    tmp_path: Path,
) -> None:
    world, base = served
    issued = world.issued["L01"]
    url = qr_url_of(issued.pdf, tmp_path)
    assert url == issued.verify_url
    assert url.startswith(base + "/v/")

    rec = open_page(viewport="phone", lang="zh")
    page = rec.page
    resp = page.goto(url)
    assert resp is not None
    assert resp.status == 200
    verdict = page.locator("#verdict")
    assert verdict.get_attribute("data-status") == "VALID"
    assert "有效" in verdict.inner_text()
    assert "VALID" in verdict.inner_text()
    assert page.locator("#holder-name").inner_text() == "王建国"
    # one large verdict, at the top of the phone screen, readable at arm's length
    box = verdict.bounding_box()
    assert box is not None
    assert box["y"] + box["height"] <= 844
    size = page.locator(".verdict-word").evaluate("e => parseFloat(getComputedStyle(e).fontSize)")
    assert size >= 40
    assert page.evaluate(
        "document.documentElement.scrollWidth <= document.documentElement.clientWidth"
    )
    marks = page.locator("#checks .check")
    assert marks.count() > 10
    assert page.locator("#checks .check.fail").count() == 0
    rec.shot("valid-zh")

    rec_info = world.revoke_record("L01", reason="课程成绩录入错误 / grade entered in error")
    page.reload()
    assert verdict.get_attribute("data-status") == "REVOKED"
    assert "已撤销" in verdict.inner_text()
    assert "REVOKED" in verdict.inner_text()
    revoked = page.locator(".revocations")
    assert "课程成绩录入错误 / grade entered in error" in revoked.inner_text()
    assert "2026-01-15" in revoked.inner_text()
    assert rec_info["titleZh"] in revoked.inner_text()
    failed = page.locator("#checks .check.fail")
    assert failed.count() == 1
    assert failed.get_attribute("data-check") == "status"
    rec.shot("revoked-zh")

    page.locator(".lang-switch").click()
    page.wait_for_url("**lang=en")
    assert verdict.inner_text().strip() == "REVOKED"
    assert "What was revoked" in page.locator(".revocations").inner_text()
    assert "grade entered in error" in page.locator(".revocations").inner_text()
    assert page.locator("#holder-name").inner_text() == "王建国"
    assert "Every check performed" in page.inner_text("body")
    rec.shot("revoked-en")
    rec.assert_clean()
