"""One negotiation rule for error answers, security headers everywhere, the home form, static
files and the offline /docs page, through the assembled app (API + pages) in process."""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import pytest
from fastapi import Depends
from starlette.exceptions import StarletteDeprecationWarning

with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

from creditbank.api.app import _accepts_html
from creditbank.asgi import create_app
from creditbank.errors import StorageError
from creditbank.service.bank import Bank
from creditbank.web.ratelimit import rate_limit

BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8"


@pytest.fixture
def client(bank: Bank) -> Iterator[TestClient]:
    app = create_app(bank.settings, bank=bank)

    @app.get("/test/boom")
    async def boom() -> None:
        raise RuntimeError("a bug")

    @app.get("/test/down")
    async def down() -> None:
        raise StorageError("database unreachable")

    @app.get("/test/limited", dependencies=[Depends(rate_limit("code-lookups"))])
    async def limited() -> dict[str, str]:
        return {"ok": "yes"}

    @app.get("/api/v1/test/boom")
    async def api_boom() -> None:
        raise RuntimeError("a bug")

    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


@pytest.mark.parametrize(
    ("accept", "html"),
    [
        (BROWSER, True),
        ("text/html", True),
        ("*/*", False),  # curl: a wildcard alone is not a browser
        ("", False),
        ("application/json", False),
        ("application/problem+json", False),
        ("application/json, text/html;q=0.5", False),
        ("text/html;q=0.5, application/json", False),
        ("text/html, application/json", True),
        ("text/html;q=0", False),
        ("text/html;q=abc", False),
    ],
)
def test_accept_rule(accept: str, html: bool) -> None:
    assert _accepts_html(accept) is html


def _is_page(resp: object) -> bool:
    return str(getattr(resp, "headers", {}).get("content-type", "")).startswith("text/html")


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/no/such/page", 404, "http.not_found"),
        ("DELETE", "/", 405, "http.method_not_allowed"),
        ("GET", "/test/boom", 500, "internal"),
        ("GET", "/test/down", 503, "storage.unavailable"),
    ],
)
def test_errors_are_pages_for_browsers_and_problems_for_programs(
    client: TestClient, method: str, path: str, status: int, code: str
) -> None:
    page = client.request(method, path, headers={"Accept": BROWSER, "Accept-Language": "en"})
    assert page.status_code == status
    assert _is_page(page)
    assert f"<code>{code}</code>" in page.text
    assert f'<p class="error-status">{status}</p>' in page.text
    assert "a bug" not in page.text  # a crash shows nothing of its cause
    program = client.request(method, path, headers={"Accept": "*/*"})
    assert program.status_code == status
    assert program.headers["content-type"] == "application/problem+json"
    assert program.json()["code"] == code
    for resp in (page, program):
        assert "default-src 'none'" in resp.headers["content-security-policy"]
        assert resp.headers["x-content-type-options"] == "nosniff"
    if status == 405:
        assert page.headers["allow"] == program.headers["allow"] == "GET"
    if status == 503:
        assert page.headers["retry-after"] == program.headers["retry-after"]


@pytest.mark.parametrize("path", ["/api/v1/no/such", "/api/v1/test/boom", "/api", "/api/x"])
def test_api_paths_are_always_problem_json(client: TestClient, path: str) -> None:
    resp = client.get(path, headers={"Accept": BROWSER})
    assert resp.headers["content-type"] == "application/problem+json"


def test_rate_limit_429_page_and_problem_with_retry_after(client: TestClient) -> None:
    # the bucket (20 at once, 0.5/s) never refills: the test bank's clock is fixed
    for _ in range(20):
        assert client.get("/test/limited").status_code == 200
    program = client.get("/test/limited")
    assert program.status_code == 429
    assert program.headers["content-type"] == "application/problem+json"
    assert program.json()["code"] == "rate.limited"
    assert program.headers["retry-after"] == "2"
    page = client.get("/test/limited", headers={"Accept": BROWSER, "Accept-Language": "zh"})
    assert page.status_code == 429
    assert page.headers["retry-after"] == "2"
    assert "请求过于频繁" in page.text
    assert "请在 2 秒后重试" in page.text


def test_rate_limit_refills_with_the_clock(bank: Bank, client: TestClient) -> None:
    for _ in range(20):
        client.get("/test/limited")
    assert client.get("/test/limited").status_code == 429
    bank.clock.advance(2.0)  # type: ignore[attr-defined]  # the fixture's FixedClock
    assert client.get("/test/limited").status_code == 200
    assert client.get("/test/limited").status_code == 429


def test_home_page_languages_and_headers(client: TestClient) -> None:
    zh = client.get("/", headers={"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.8"})
    assert zh.status_code == 200
    assert '<html lang="zh-CN">' in zh.text
    assert "学分银行" in zh.text
    assert "Learning Credit Bank" in zh.text  # the name in both languages
    en = client.get("/", headers={"Accept-Language": "en-GB,en;q=0.9"})
    assert '<html lang="en">' in en.text
    assert "Vary" in en.headers
    assert "Accept-Language" in en.headers["vary"]
    # workers and institutions find the way in from the first page
    assert '<a class="signin-link" href="/signin">学员与院校登录</a>' in zh.text
    assert '<a class="signin-link" href="/signin">Sign in: workers and institutions</a>' in en.text
    assert "<script" not in zh.text
    assert "style=" not in zh.text
    assert "<style" not in zh.text
    switched = client.get("/?lang=en", headers={"Accept-Language": "zh"})
    assert '<html lang="en">' in switched.text
    assert "cb_lang=en" in switched.headers["set-cookie"]
    assert "HttpOnly" in switched.headers["set-cookie"]


def test_code_form_redirects_without_normalising(client: TestClient) -> None:
    resp = client.get("/v", params={"code": "ab0O-1Il/ x"}, follow_redirects=False)
    assert resp.status_code == 303
    assert resp.headers["location"] == "/v/ab0O-1Il%2F%20x"
    empty = client.get("/v", params={"code": "  "}, headers={"Accept-Language": "en"})
    assert empty.status_code == 400
    assert "Please enter a verification code." in empty.text


def test_static_files_are_versioned_and_immutable(client: TestClient) -> None:
    home = client.get("/").text
    href = home.split('rel="stylesheet" href="')[1].split('"')[0]
    assert href.startswith("/static/site.css?v=")
    css = client.get(href)
    assert css.status_code == 200
    assert css.headers["content-type"].startswith("text/css")
    assert "immutable" in css.headers["cache-control"]
    assert "immutable" not in client.get("/static/site.css").headers["cache-control"]
    assert client.get("/static/../app.py").status_code == 404
    assert client.get("/static/nope.css").status_code == 404


def test_docs_page_uses_only_local_assets(client: TestClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp
    assert "unsafe" not in csp
    assert "cdn" not in page.text.lower()
    assert "<script>" not in page.text  # no inline script
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "init.js", "favicon.png"):
        assert f"/docs/assets/{asset}?v=" in page.text
        resp = client.get(f"/docs/assets/{asset}?v=1")
        assert resp.status_code == 200
        assert len(resp.content) > 100
    assert client.get("/docs/assets/other.js").status_code == 404
    assert client.get("/openapi.json").json()["paths"]["/api/v1/log/proofs/inclusion"]
