"""The verification pages ``/v/{code}`` and ``/verify`` over a real bank: codes as people
type them (through the home page's form), malformed and unknown codes, code states that show
no data, uploads (genuine, tampered, not a document, another site's form), the shared rate
limit as an HTML 429 page, the CSP; one upload in headless Chromium at 390x844.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from browser_fixtures import Recorded, serve_app
from starlette.exceptions import StarletteDeprecationWarning
from verify_world import World, build_world

from creditbank.api.hot import CreditBankAPI
from creditbank.asgi import create_app
from creditbank.service import share_codes

with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

HTML = {"accept": "text/html,application/xhtml+xml"}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    worlds = build_world(tmp_path_factory.mktemp("verify-pages") / "home")
    # built in another thread: pyHanko's asyncio.run must not meet Playwright's loop
    with ThreadPoolExecutor(1) as pool:
        built = pool.submit(next, worlds).result()
    yield built
    worlds.close()


@pytest.fixture
def client(world: World) -> Iterator[TestClient]:
    with TestClient(create_app(world.bank.settings, bank=world.bank)) as c:
        yield c


def verdict_of(html: str) -> str:
    m = re.search(r'data-status="([A-Z_]+)"', html)
    assert m is not None, html[:2000]
    return m.group(1)


def test_codes_typed_on_the_home_page(client: TestClient, world: World) -> None:
    code = world.issued["L01"].code
    typed = [code.lower(), "-".join(code[i : i + 4] for i in range(0, 16, 4)).lower()]
    if "0" in code:
        typed.append(code.replace("0", "O"))
    if "1" in code:
        typed.append(code.replace("1", "l"))
    for text in typed:
        resp = client.get("/v", params={"code": text}, headers=HTML, follow_redirects=False)
        assert resp.status_code == 303
        page = client.get(resp.headers["location"], headers=HTML)
        assert page.status_code == 200
        assert verdict_of(page.text) == "VALID", text
        assert "王建国" in page.text


def test_page_shows_verdict_contents_and_checks(client: TestClient, world: World) -> None:
    page = client.get(f"/v/{world.issued['L01'].display_code}", headers=HTML)
    html = page.text
    assert verdict_of(html) == "VALID"
    assert "有效" in html
    assert 'class="verdict-token" lang="en">VALID<' in html
    assert html.index('id="verdict"') < html.index('id="holder-name"') < html.index('id="checks"')
    checks = re.findall(r'class="check (ok|fail)" data-check="([^"]+)"', html)
    assert ("ok", "credential.proof") in checks
    assert ("ok", "status") in checks
    assert all(mark == "ok" for mark, _ in checks)
    assert html.count("✓") == len(checks)
    assert "<script" not in html
    assert "style=" not in html
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp
    assert "script-src" not in csp or "'unsafe-inline'" not in csp
    english = client.get(f"/v/{world.issued['L01'].code}?lang=en", headers=HTML).text
    assert 'class="verdict-word">VALID<' in english
    assert "Every check performed" in english


def test_malformed_and_unknown_codes(client: TestClient) -> None:
    bad = client.get("/v/hello", headers=HTML)
    assert bad.status_code == 400
    assert "这不是一个验证码" in bad.text
    unknown = client.get("/v/0000-0000-0000-0000", headers=HTML)
    assert unknown.status_code == 200
    assert verdict_of(unknown.text) == "NOT_FOUND"
    assert 'id="holder-name"' not in unknown.text


def test_expired_and_revoked_codes_show_their_state_and_no_data(
    client: TestClient, world: World
) -> None:
    learner, doc = world.learner("L02"), world.issued["L02"].doc_id
    revoked = share_codes.create_share_code(world.bank, learner, doc)
    share_codes.revoke_share_code(world.bank, learner, revoked.code_id)
    page = client.get(f"/v/{revoked.code}", headers=HTML).text
    assert verdict_of(page) == "CODE_REVOKED"
    assert "李秀英" not in page
    assert 'id="holder-name"' not in page
    short = share_codes.create_share_code(world.bank, learner, doc, days=1)
    world.clock.advance(2 * 86400)
    try:
        page = client.get(f"/v/{short.code}?lang=en", headers=HTML).text
    finally:
        world.clock.advance(-2 * 86400)
    assert verdict_of(page) == "CODE_EXPIRED"
    assert "CODE EXPIRED" in page
    assert "李秀英" not in page


def test_uploads(client: TestClient, world: World) -> None:
    issued = world.issued["L01"]
    form = client.get("/verify", headers=HTML)
    assert form.status_code == 200
    assert 'enctype="multipart/form-data"' in form.text
    ok = client.post("/verify", files={"file": ("t.pdf", issued.pdf, "application/pdf")},
                     headers=HTML)  # fmt: skip
    assert verdict_of(ok.text) == "VALID"
    assert "王建国" in ok.text
    assert 'data-check="pdf.whole_file"' in ok.text
    tampered = bytearray(issued.pdf)
    tampered[tampered.index(b"stream\n", len(tampered) // 4) + 40] ^= 1
    bad = client.post("/verify", files={"file": ("t.pdf", bytes(tampered), "application/pdf")},
                      headers=HTML)  # fmt: skip
    assert verdict_of(bad.text) == "INVALID"
    assert 'class="check fail" data-check="pdf.signature"' in bad.text
    junk = client.post("/verify", files={"file": ("a.txt", b"hello", "text/plain")}, headers=HTML)
    assert junk.status_code == 400
    assert "无法验证这个文件" in junk.text


def test_another_sites_form_is_refused(client: TestClient, world: World) -> None:
    resp = client.post(
        "/verify",
        files={"file": ("t.pdf", world.issued["L01"].pdf, "application/pdf")},
        headers=HTML | {"origin": "https://evil.example"},
    )
    assert resp.status_code == 403
    assert resp.headers["content-type"].startswith("text/html")
    cross = client.post(
        "/verify",
        files={"file": ("t.pdf", world.issued["L01"].pdf, "application/pdf")},
        headers=HTML | {"origin": "null", "sec-fetch-site": "cross-site"},
    )
    assert cross.status_code == 403
    same = client.post(
        "/verify",
        files={"file": ("t.pdf", world.issued["L01"].pdf, "application/pdf")},
        headers=HTML | {"origin": "http://testserver"},
    )
    assert verdict_of(same.text) == "VALID"


def test_lookups_share_the_rate_limit_with_the_api(client: TestClient) -> None:
    statuses = []
    for n in range(40):
        path = "/api/v1/verify/0000-0000-0000-0000" if n % 2 else "/v/0000-0000-0000-0000"
        resp = client.get(path, headers=HTML)
        statuses.append(resp.status_code)
        if resp.status_code == 429:
            break
    assert statuses[-1] == 429
    assert len(statuses) == 21  # one bucket of 20 for the page and the API together
    assert int(resp.headers["retry-after"]) >= 1
    if resp.request.url.path.startswith("/v/"):
        assert resp.headers["content-type"].startswith("text/html")


def test_upload_in_the_browser(
    world: World,
    open_page: Callable[..., Recorded],
    tmp_path: Path,
) -> None:
    pdf = tmp_path / "transcript.pdf"
    pdf.write_bytes(world.issued["L06"].pdf)
    with serve_app(create_app(world.bank.settings, bank=world.bank)) as url:
        rec = open_page(viewport="phone", lang="zh")
        page = rec.page
        page.goto(url + "/verify")
        page.set_input_files("#file", str(pdf))
        page.locator(".upload-form button").click()
        page.wait_for_selector("#verdict")
        assert page.locator("#verdict").get_attribute("data-status") == "VALID"
        assert page.locator("#checks .check.fail").count() == 0
        assert page.locator('[data-check="pdf.trusted"]').count() == 1
        rec.shot("upload-valid")
        rec.assert_clean()


def test_the_door_answers_what_the_route_answers(client: TestClient, world: World) -> None:
    """``/v/{code}`` at the app's door (creditbank/api/hot.py) and through the route: the same
    status, headers and bytes, for every kind of code and language choice."""
    app = client.app
    assert isinstance(app, CreditBankAPI)
    learner, doc = world.learner("L03"), world.issued["L03"].doc_id
    revoked = share_codes.create_share_code(world.bank, learner, doc)
    share_codes.revoke_share_code(world.bank, learner, revoked.code_id)
    code = world.issued["L03"].code
    cases: list[tuple[str, dict[str, str]]] = [
        (f"/v/{code}", HTML),
        (f"/v/{code}", HTML | {"accept-language": "en-GB,en;q=0.9"}),
        (f"/v/{code}", HTML | {"cookie": "cb_lang=en"}),
        (f"/v/{code}?lang=en", HTML),
        (f"/v/{code.lower()}", HTML),
        (f"/v/{code.replace('-', '')}", HTML),
        (f"/v/{code}", {"accept": "application/json"}),
        (f"/v/{revoked.code}", HTML),
        ("/v/0000-0000-0000-0000", HTML),
        ("/v/hello", HTML),
        ("/v/" + "7" * 80, HTML),
        ("/v/a%2Fb", HTML),
        ("/v/", HTML),
    ]
    for url, headers in cases:
        answers = []
        for door in (True, False):
            app.hot_paths = door
            app.state.rate_limiters.clear()  # each answer from a full bucket
            try:
                resp = client.get(url, headers=headers)
            finally:
                app.hot_paths = True
            answers.append((resp.status_code, resp.headers.raw, resp.content))
        assert answers[0] == answers[1], url


def test_the_door_answers_the_page_without_the_route(
    client: TestClient, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    framework = CreditBankAPI.__mro__[1]
    inner = framework.__call__

    async def counting(self: Any, scope: Any, receive: Any, send: Any) -> None:
        if scope.get("type") == "http":
            calls.append(scope["path"])
        await inner(self, scope, receive, send)

    monkeypatch.setattr(framework, "__call__", counting)
    code = world.issued["L04"].code
    assert verdict_of(client.get(f"/v/{code}", headers=HTML).text) == "VALID"
    assert client.get("/v/hello", headers=HTML).status_code == 400
    assert calls == []  # both answered at the door (a malformed code is the route's answer too)
    assert client.get("/v/a%2Fb", headers=HTML).status_code == 404
    assert calls == ["/v/a/b"]  # not a /v/{code} path: passed on
