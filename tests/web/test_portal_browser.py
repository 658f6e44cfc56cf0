"""The portals' main journeys in headless Debian Chromium (Playwright, no browser download),
over a live server of the assembled app on a populated bank (tests/portal_fixtures.py).

* A worker signs up, claims their records (identity number, name, one-time code), sees them,
  previews and applies for a programme (and is warned before a second application that
  would grant nothing), issues and downloads a transcript, makes a share code; an employer
  opens it and sees VALID; the worker sees the verification counted.
* An institution operator uploads a CSV with two bad rows and sees the per-row report.

Screenshots at 390x844 and 1280x800 go to tests/artifacts/ (``portal-*``). Every page must
make no request off 127.0.0.1, break no Content-Security-Policy rule, log no console error.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from browser_fixtures import Recorded, serve_app
from portal_fixtures import PASSWORD, PortalWorld, make_portal_world, resident_id

from creditbank.asgi import create_app


@dataclass
class Live:
    url: str
    world: PortalWorld


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    world = make_portal_world(tmp_path_factory.mktemp("portal-live") / "home")
    app = create_app(world.bank.settings, bank=world.bank)
    app.state.accounts = world.accounts
    try:
        with serve_app(app) as url:
            yield Live(url, world)
    finally:
        world.close()


def sign_in(rec: Recorded, live: Live, login: str) -> None:
    page = rec.page
    page.goto(f"{live.url}/signin")
    page.fill("input[name=login]", login)
    page.fill("input[name=password]", PASSWORD)
    page.click("form[action='/signin'] button[type=submit]")
    page.wait_for_load_state()


@pytest.mark.slow
def test_worker_journey(live: Live, open_page: Callable[..., Recorded], tmp_path: Path) -> None:
    world = live.world
    rec = open_page("phone", "zh")
    page = rec.page
    # sign up
    page.goto(f"{live.url}/signup")
    page.fill("input[name=login]", "sun.ba@example.com")
    page.fill("input[name=display_name]", "孙八")
    page.fill("input[name=password]", PASSWORD)
    page.fill("input[name=password2]", PASSWORD)
    rec.shot("portal-signup")
    page.click("form[action='/signup'] button[type=submit]")
    page.wait_for_url(f"{live.url}/me/claim")
    # claim: identity number + name, then the one-time code sent to the account
    page.fill("input[name=name]", "孙八")
    page.fill("input[name=id_number]", world.people["Z"].number)
    rec.shot("portal-claim")
    page.click("form[action='/me/claim'] button[type=submit]")
    page.wait_for_selector("input[name=code]")
    code = world.outbox.last_code("sun.ba@example.com")
    assert code is not None
    page.fill("input[name=code]", code)
    page.click("form[action='/me/claim/code'] button[type=submit]")
    page.wait_for_url(f"{live.url}/me?claimed=1")
    assert page.locator("article.record").count() == 3
    body = page.inner_text("main")
    assert "快递员" in body
    assert "电子商务概论" in body
    rec.shot("portal-records")
    # what-if, then apply
    page.click("nav.pnav >> text=学分转换")
    page.select_option("select[name=program]", "P-OU-LOG")
    page.click("form[action='/me/what-if'] button")
    page.wait_for_url(re.compile(r".*/me/what-if\?program=P-OU-LOG"))
    assert "尚未记录任何内容" in page.inner_text("main")
    rec.shot("portal-whatif")
    size = world.bank.ledger.head().size
    page.click("form[action='/me/apply'] button[type=submit]")
    page.wait_for_url(re.compile(r".*/me/conversions#.*"))
    assert world.bank.ledger.head().size == size + 1
    assert page.locator("article.decision").count() == 1
    rec.shot("portal-conversions")
    # a second application would grant nothing: said before anything is recorded
    page.goto(f"{live.url}/me/what-if?program=P-OU-LOG")
    page.click("form[action='/me/apply'] button[type=submit]")
    page.wait_for_selector("text=此申请不会获得任何学分")
    assert world.bank.ledger.head().size == size + 1
    rec.shot("portal-apply-nothing")
    page.click("text=不申请")
    page.wait_for_url(f"{live.url}/me/conversions")
    # a transcript: issue, then download the PDF and the JSON
    page.click("nav.pnav >> text=成绩单证书")
    page.click("form[action='/me/documents/transcript'] button[type=submit]")
    page.wait_for_selector("p.code")
    shown = page.inner_text("p.code")
    assert re.fullmatch(r"[0-9A-Z]{4}(-[0-9A-Z]{4}){3}", shown)
    rec.shot("portal-issued")
    with page.expect_download() as got:
        page.click("text=下载 PDF")
    pdf = tmp_path / "transcript.pdf"
    got.value.save_as(pdf)
    assert pdf.read_bytes().startswith(b"%PDF")
    with page.expect_download() as got_json:
        page.click("text=下载 JSON 凭证")
    cred = tmp_path / "transcript.json"
    got_json.value.save_as(cred)
    assert "孙八" in cred.read_text("utf-8")
    # a share code for the employer
    page.click("nav.pnav >> text=分享码")
    page.fill("input[name=days]", "30")
    page.click("form[action='/me/share-codes'] button[type=submit]")
    page.wait_for_selector("section.ok p.code")
    share = page.inner_text("section.ok p.code")
    rec.shot("portal-share-codes")
    rec.assert_clean()
    # the employer opens it on a phone
    employer = open_page("phone", "zh")
    employer.page.goto(f"{live.url}/v/{share}")
    verdict = employer.page.locator("#verdict")
    assert verdict.get_attribute("data-status") == "VALID"
    assert "孙八" in employer.page.inner_text("main")
    employer.shot("portal-employer-verifies")
    employer.assert_clean()
    # the worker sees the verification counted
    page.reload()
    card = page.locator("article", has_text="30").first
    assert card is not None
    counts = [int(x) for x in page.locator("dd.count").all_inner_texts()]
    assert 1 in counts
    # the same pages on a desktop screen, in English
    desk = open_page("desktop", "en")
    sign_in(desk, live, "sun.ba@example.com")
    for path, name in (
        ("/me", "records"),
        ("/me/conversions", "conversions"),
        ("/me/documents", "documents"),
        ("/me/share-codes", "share-codes"),
        ("/account", "account"),
    ):
        desk.page.goto(f"{live.url}{path}")
        assert desk.page.locator("html").get_attribute("lang") == "en"
        desk.shot(f"portal-{name}")
    desk.page.goto(f"{live.url}/me?lang=zh")
    desk.shot("portal-records-zh")
    desk.assert_clean()


def _bad_csv() -> bytes:
    header = [
        "record_id", "kind", "learner_name", "id_type", "id_number", "achieved_on", "course_id",
        "credits", "grade", "term", "course_name_zh",
    ]  # fmt: skip
    rows = []
    for n in range(1, 9):
        rows.append(
            [f"COL-2026S-{n:03d}", "academic_credit", ["王建国", "李秀英", "张伟"][n % 3],
             "resident_id", resident_id(200 + n), "2026-01-10", "C-ECM-03", "3", str(70 + n),
             "2026S", "网络营销"]
        )  # fmt: skip
    rows[2][4] = resident_id(203)[:-1] + ("0" if resident_id(203)[-1] != "0" else "1")  # row 4
    rows[5][7] = "1.005"  # row 7: credits with a third decimal
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue().encode("utf-8")


@pytest.mark.parametrize("viewport", ["phone", "desktop"])
def test_operator_uploads_a_csv_with_two_bad_rows(
    live: Live, open_page: Callable[..., Recorded], tmp_path: Path, viewport: str
) -> None:
    world = live.world
    rec = open_page(viewport, "zh")
    sign_in(rec, live, world.logins["B"].login)
    rec.page.wait_for_url(f"{live.url}/console")
    rec.shot("portal-console")
    upload = tmp_path / "2026s-results.csv"
    upload.write_bytes(_bad_csv())
    size = world.bank.ledger.head().size
    rec.page.set_input_files("input[name=file]", str(upload))
    rec.page.click("form[action='/console/upload'] button[type=submit]")
    rec.page.wait_for_selector("table.report")
    trs = rec.page.locator("table.report tbody tr")
    rows: list[Any] = [trs.nth(i).locator("td").all_inner_texts() for i in range(trs.count())]
    assert [(r[0], r[2]) for r in rows] == [("4", "identity.checksum"), ("7", "record.credits")]
    text = rec.page.inner_text("main")
    assert "creditbank post 2026s-results.csv --institution INS-COL" in text
    counts = rec.page.locator("dd.count").all_inner_texts()
    assert counts[:4] == ["8", "6", "0", "2"]
    assert world.bank.ledger.head().size == size  # the console posts nothing
    rec.shot("portal-upload-report")
    rec.page.goto(f"{live.url}/console/log")
    rec.shot("portal-console-log")
    rec.assert_clean()
