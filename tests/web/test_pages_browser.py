"""The pages in real headless Chromium: zh and en, the switch, error pages, CSP, /docs offline.

Every page is opened with the network cut to 127.0.0.1 (``open_page``) and must make no
request elsewhere, report no CSP violation and log no console error. Screenshots land in
tests/artifacts/.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from browser_fixtures import LiveBank, Recorded

OpenPage = Callable[..., Recorded]


@pytest.mark.parametrize("viewport", ["phone", "desktop"])
def test_home_in_chinese(live_bank: LiveBank, open_page: OpenPage, viewport: str) -> None:
    rec = open_page(viewport=viewport, lang="zh")
    resp = rec.page.goto(live_bank.url + "/")
    assert resp is not None
    assert resp.status == 200
    page = rec.page
    assert page.locator("html").get_attribute("lang") == "zh-CN"
    assert page.locator(".brand-primary").inner_text() == "学分银行"
    assert page.locator(".brand-secondary").inner_text() == "Learning Credit Bank"
    assert "验证成绩单或证书" in page.locator("#verify-heading").inner_text()
    assert page.locator(".lang-switch").inner_text() == "English"
    # phone first: the code field and the button are thumb-sized and fit the screen
    box = page.locator("#code").bounding_box()
    button = page.locator(".code-form button").bounding_box()
    assert box is not None
    assert button is not None
    assert box["height"] >= 48
    assert button["height"] >= 48
    assert box["x"] >= 0
    assert box["x"] + box["width"] <= page.viewport_size["width"]
    no_horizontal_scroll = page.evaluate(
        "document.documentElement.scrollWidth <= document.documentElement.clientWidth"
    )
    assert no_horizontal_scroll
    rec.shot("home-zh")
    rec.assert_clean()
    assert any(u.endswith("/") for u in rec.requests)
    assert any("/static/site.css" in u for u in rec.requests)  # the style sheet loaded


@pytest.mark.parametrize("viewport", ["phone", "desktop"])
def test_home_in_english(live_bank: LiveBank, open_page: OpenPage, viewport: str) -> None:
    rec = open_page(viewport=viewport, lang="en")
    rec.page.goto(live_bank.url + "/")
    page = rec.page
    assert page.locator("html").get_attribute("lang") == "en"
    assert page.locator(".brand-primary").inner_text() == "Learning Credit Bank"
    assert page.locator(".brand-secondary").inner_text() == "学分银行"
    assert page.locator("#verify-heading").inner_text() == "Verify a transcript or certificate"
    assert page.locator(".lang-switch").inner_text() == "中文"
    rec.shot("home-en")
    rec.assert_clean()


def test_language_switch_is_remembered(live_bank: LiveBank, open_page: OpenPage) -> None:
    rec = open_page(viewport="phone", lang="zh")
    page = rec.page
    page.goto(live_bank.url + "/")
    assert page.locator(".brand-primary").inner_text() == "学分银行"
    page.locator(".lang-switch").click()
    page.wait_for_url("**/?lang=en")
    assert page.locator(".brand-primary").inner_text() == "Learning Credit Bank"
    rec.shot("switched-en")
    # remembered (cookie): a plain visit stays English although the browser prefers Chinese
    page.goto(live_bank.url + "/")
    assert page.locator(".brand-primary").inner_text() == "Learning Credit Bank"
    cookies = {c["name"]: c for c in page.context.cookies()}
    assert cookies["cb_lang"]["value"] == "en"
    assert cookies["cb_lang"]["httpOnly"] is True
    # and back
    page.locator(".lang-switch").click()
    page.wait_for_url("**/?lang=zh")
    assert page.locator(".brand-primary").inner_text() == "学分银行"
    rec.assert_clean()


def test_missing_page_is_html_in_the_browser_and_problem_json_from_the_api(
    live_bank: LiveBank, open_page: OpenPage
) -> None:
    rec = open_page(viewport="phone", lang="zh")
    resp = rec.page.goto(live_bank.url + "/no-such-page")
    assert resp is not None
    assert resp.status == 404
    assert resp.headers["content-type"].startswith("text/html")
    assert rec.page.locator(".error-status").inner_text() == "404"
    assert rec.page.locator("h1").inner_text() == "页面不存在"
    assert "http.not_found" in rec.page.locator(".error-card").inner_text()
    rec.shot("404-zh")
    rec.assert_clean()
    # the same browser asking under /api gets problem+json, never a page
    resp = rec.page.goto(live_bank.url + "/api/v1/no-such-thing")
    assert resp is not None
    assert resp.status == 404
    assert resp.headers["content-type"] == "application/problem+json"
    assert resp.json()["code"] == "http.not_found"
    # and a program (no text/html in Accept) gets problem+json for the page path too
    r = httpx.get(live_bank.url + "/no-such-page")
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["code"] == "http.not_found"


def test_error_page_in_english_on_a_desktop(live_bank: LiveBank, open_page: OpenPage) -> None:
    rec = open_page(viewport="desktop", lang="en")
    resp = rec.page.goto(live_bank.url + "/static/missing.css")
    assert resp is not None
    assert resp.status == 404
    assert rec.page.locator("h1").inner_text() == "Page not found"
    rec.shot("404-en")
    rec.assert_clean()


def test_code_form_goes_to_the_code_page_as_typed(live_bank: LiveBank, open_page: OpenPage) -> None:
    rec = open_page(viewport="phone", lang="en")
    page = rec.page
    page.goto(live_bank.url + "/")
    page.locator("#code").fill("abcd-efgh-ijkl-mnop")
    rec.shot("code-typed")
    with page.expect_navigation() as nav:
        page.locator(".code-form button").click()
    resp = nav.value
    # the form normalises nothing: the verification page receives the code as typed
    assert page.url == live_bank.url + "/v/abcd-efgh-ijkl-mnop"
    assert resp is not None
    assert resp.headers["content-type"].startswith("text/html")
    if resp.status == 404:  # before the verification page exists: a proper 404 page
        assert page.locator("h1").inner_text() == "Page not found"
    rec.shot("code-submitted")
    rec.assert_clean()


def test_empty_code_asks_for_one(live_bank: LiveBank, open_page: OpenPage) -> None:
    rec = open_page(viewport="phone", lang="zh")
    page = rec.page
    page.goto(live_bank.url + "/")
    with page.expect_navigation() as nav:
        page.locator(".code-form button").click()
    assert nav.value is not None
    assert nav.value.status == 400
    assert page.locator(".form-error").inner_text() == "请输入验证码。"
    rec.shot("empty-code")
    rec.assert_clean()


def test_every_page_sends_a_strict_csp(live_bank: LiveBank) -> None:
    for path in ("/", "/no-such-page", "/healthz", "/api/v1/log/checkpoint"):
        r = httpx.get(live_bank.url + path, headers={"Accept": "text/html"})
        csp = r.headers["content-security-policy"]
        assert "default-src 'none'" in csp
        assert "frame-ancestors 'none'" in csp
        assert "base-uri 'none'" in csp
        assert "script-src" not in csp  # no script at all on the pages
        assert "unsafe-inline" not in csp
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["referrer-policy"] == "no-referrer"


def test_docs_render_offline(live_bank: LiveBank, open_page: OpenPage) -> None:
    rec = open_page(viewport="desktop", lang="en")
    page = rec.page
    resp = page.goto(live_bank.url + "/docs")
    assert resp is not None
    assert resp.status == 200
    csp = resp.headers["content-security-policy"]
    assert "script-src 'self'" in csp
    assert "unsafe" not in csp
    # the operation list, rendered by Swagger UI from the bank's own assets
    page.wait_for_selector(".opblock", timeout=20_000)
    ops = page.locator(".opblock-summary-path").all_inner_texts()
    assert "/api/v1/log/proofs/inclusion" in [o.replace("\u200b", "") for o in ops]
    assert page.locator(".opblock").count() >= 6
    rec.shot("docs")
    rec.assert_clean()
    assert all(u.startswith(live_bank.url) or u.startswith("data:") for u in rec.requests)
