"""The browser harness itself catches what the page tests rely on it to catch: a CSP
violation, a request leaving 127.0.0.1 (aborted, never sent), a console error."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from browser_fixtures import Recorded, serve_app
from starlette.applications import Starlette
from starlette.responses import HTMLResponse
from starlette.routing import Route

from creditbank.api.app import SecurityHeaders

BAD_PAGE = """<!DOCTYPE html><html><head><title>bad</title>
<style>body { color: red; }</style></head>
<body><p>bad</p><img src="http://203.0.113.7/pixel.png" alt="">
<script>console.error("boom")</script></body></html>"""


def _bad(_request: object) -> HTMLResponse:
    return HTMLResponse(BAD_PAGE)


def test_harness_records_csp_violations(open_page: Callable[..., Recorded]) -> None:
    app = SecurityHeaders(Starlette(routes=[Route("/", _bad)]))
    with serve_app(app) as url:
        rec = open_page(viewport="phone", lang="en")
        rec.page.goto(url + "/")
        rec.page.wait_for_load_state("load")
    # the inline style, the inline script and the outside image were refused by the bank's
    # CSP, and each refusal reported
    assert any("style-src" in v for v in rec.csp_violations), rec.csp_violations
    assert any("203.0.113.7" in v for v in rec.csp_violations), rec.csp_violations
    assert rec.console_errors == []  # the script never ran
    assert rec.external == []  # CSP stopped the image before any request


def test_harness_aborts_and_records_requests_leaving_localhost(
    open_page: Callable[..., Recorded],
) -> None:
    app = Starlette(routes=[Route("/", _bad)])  # no CSP: the browser tries everything
    with serve_app(app) as url:
        rec = open_page(viewport="phone", lang="en")
        rec.page.goto(url + "/")
        rec.page.wait_for_load_state("load")
    assert rec.external == ["http://203.0.113.7/pixel.png"]  # aborted, never sent
    assert "boom" in rec.console_errors
    with pytest.raises(AssertionError, match=r"203\.0\.113\.7"):
        rec.assert_clean()
