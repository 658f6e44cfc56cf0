"""The portals over HTTP (TestClient, no browser): sessions and cookies, CSRF, sign-in
limits, claiming, the worker's pages, the institution console, tokens and erasure.

One populated bank per module (tests/portal_fixtures.py: the sample dataset imported plus
workers X and Y, operators of INS-EU and INS-COL, an admin)."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator

import pytest
from portal_fixtures import PASSWORD, PortalWorld, make_portal_world, resident_id
from sqlalchemy import func, select
from starlette.testclient import TestClient

from creditbank.asgi import create_app
from creditbank.service import conversion, institutions, share_codes
from creditbank.storage.tables import conversion_decisions_t, learners_t

HTML = {"Accept": "text/html"}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PortalWorld]:
    w = make_portal_world(tmp_path_factory.mktemp("portal") / "home")
    try:
        yield w
    finally:
        w.close()


@pytest.fixture(scope="module")
def app(world: PortalWorld) -> object:
    application = create_app(world.bank.settings, bank=world.bank)
    application.state.accounts = world.accounts
    return application


@pytest.fixture
def client(app: object) -> Iterator[TestClient]:
    app.state.rate_limiters = {}  # type: ignore[attr-defined]  # each test starts afresh
    with TestClient(app) as c:  # type: ignore[arg-type]
        yield c


def sign_in(client: TestClient, world: PortalWorld, who: str) -> None:
    """A session cookie for ``who`` (through the service: the form is tested on its own)."""
    client.cookies.clear()
    signed = world.accounts.sign_in(world.logins[who].login, PASSWORD)
    client.cookies.set("cb_session", signed.token)


def csrf_of(html: str) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', html)
    assert m is not None, html[:500]
    return m.group(1)


def page_csrf(client: TestClient, path: str = "/account") -> str:
    resp = client.get(path)
    assert resp.status_code == 200, resp.text[:300]
    return csrf_of(resp.text)


def log_size(world: PortalWorld) -> int:
    return world.bank.ledger.head().size


# -- sessions, cookies, CSRF -------------------------------------------------------------------
def test_pages_send_anonymous_visitors_to_sign_in(client: TestClient) -> None:
    for path in ("/me", "/me/documents", "/console", "/admin", "/account"):
        resp = client.get(path, follow_redirects=False)
        assert resp.status_code == 303, path
        assert resp.headers["location"] == f"/signin?next={path}"


def test_sign_in_form_sets_a_hardened_session_cookie(app: object, world: PortalWorld) -> None:
    with TestClient(app, base_url="https://bank.example") as c:  # type: ignore[arg-type]
        app.state.rate_limiters = {}  # type: ignore[attr-defined]
        form = c.get("/signin?next=/me/documents")
        assert "cb_csrf=" in form.headers["set-cookie"]
        assert "samesite=strict" in form.headers["set-cookie"].lower()
        resp = c.post(
            "/signin",
            data={
                "csrf": csrf_of(form.text),
                "login": "X@Example.com",
                "password": PASSWORD,
                "next": "/me/documents",
            },
            follow_redirects=False,
        )
        assert resp.status_code == 303
        assert resp.headers["location"] == "/me/documents"
        cookie = resp.headers["set-cookie"].lower()
        for flag in ("httponly", "secure", "samesite=lax", "path=/", "max-age=43200"):
            assert flag in cookie, cookie
        assert c.get("/me").status_code == 200
        page = c.get("/me")
        assert page.headers["cache-control"] == "no-store"
        out = c.post("/signout", data={"csrf": csrf_of(page.text)}, follow_redirects=False)
        assert out.status_code == 303
        assert c.get("/me", follow_redirects=False).status_code == 303


def test_cookies_are_secure_behind_a_tls_proxy(world: PortalWorld) -> None:
    settings = world.bank.settings.model_copy(update={"public_base_url": "https://bank.example"})
    proxied = create_app(settings, bank=world.bank)
    proxied.state.accounts = world.accounts
    proxied.state.rate_limiters = {}
    with TestClient(proxied) as c:  # plain http, as a proxy that ended TLS forwards it
        form = c.get("/signin")
        assert "secure" in form.headers["set-cookie"].lower()
        seed = form.cookies["cb_csrf"]
        c.cookies.clear()  # the client keeps Secure cookies for https; the browser sends them
        resp = c.post(
            "/signin",
            data={"csrf": csrf_of(form.text), "login": "x@example.com", "password": PASSWORD},
            headers={"Cookie": f"cb_csrf={seed}"},
            follow_redirects=False,
        )
        assert resp.status_code == 303
        assert "secure" in resp.headers["set-cookie"].lower()


def test_sign_in_never_redirects_off_site(client: TestClient) -> None:
    form = client.get("/signin")
    for evil in ("//evil.example/x", "https://evil.example", "/\\evil.example"):
        resp = client.post(
            "/signin",
            data={
                "csrf": csrf_of(form.text),
                "login": "x@example.com",
                "password": PASSWORD,
                "next": evil,
            },
            follow_redirects=False,
        )
        assert resp.status_code == 303
        assert resp.headers["location"] == "/me"
        client.cookies.delete("cb_session")


def test_sign_in_is_rate_limited_per_address(client: TestClient) -> None:
    token = csrf_of(client.get("/signin").text)
    statuses = [
        client.post(
            "/signin", data={"csrf": token, "login": f"n{i}@example.com", "password": "wrong!!!!!"}
        ).status_code
        for i in range(7)
    ]
    assert statuses[:5] == [401] * 5
    assert statuses[5:] == [429, 429]
    resp = client.post("/signin", data={"csrf": token, "login": "x@example.com", "password": "x"})
    assert resp.status_code == 429
    assert int(resp.headers["retry-after"]) >= 1


def test_forms_refuse_missing_foreign_or_cross_site_tokens(
    client: TestClient, world: PortalWorld
) -> None:
    sign_in(client, world, "Y")
    y_token = page_csrf(client)
    sign_in(client, world, "X")
    x_token = page_csrf(client)
    before = len(world.accounts.list_tokens(world.logins["X"]))
    cases = [
        ({}, {}),  # no token
        ({"csrf": ""}, {}),
        ({"csrf": y_token}, {}),  # another session's token
        ({"csrf": x_token[:-2] + "AA"}, {}),
        ({"csrf": x_token}, {"Origin": "https://evil.example"}),  # right token, other site
    ]
    for data, headers in cases:
        resp = client.post(
            "/account/tokens", data={**data, "label": "t"}, headers={**HTML, **headers}
        )
        assert resp.status_code == 403, (data, headers)
        assert "text/html" in resp.headers["content-type"]
    assert len(world.accounts.list_tokens(world.logins["X"])) == before  # nothing was made
    ok = client.post("/account/tokens", data={"csrf": x_token, "label": "t"})
    assert ok.status_code == 200
    assert len(world.accounts.list_tokens(world.logins["X"])) == before + 1


# -- claiming, records ---------------------------------------------------------------------------
def test_sign_up_and_claim_through_the_pages(client: TestClient, world: PortalWorld) -> None:
    z = world.people["Z"]
    form = client.get("/signup")
    resp = client.post(
        "/signup",
        data={
            "csrf": csrf_of(form.text),
            "login": "+86 139 0000 0001",
            "password": PASSWORD,
            "password2": PASSWORD,
            "display_name": "小孙",
        },
        follow_redirects=False,
    )
    assert resp.status_code == 303
    assert resp.headers["location"] == "/me/claim"
    assert client.get("/me", follow_redirects=False).headers["location"] == "/me/claim"
    page = client.get("/me/claim")
    wrong = client.post(
        "/me/claim",
        data={
            "csrf": csrf_of(page.text),
            "name": "孙八八",
            "id_type": "resident_id",
            "id_number": z.number,
        },
    )
    assert wrong.status_code == 200  # the same answer as a match
    code_id = re.search(r'name="code_id" value="([^"]+)"', wrong.text)
    assert code_id is not None
    code = world.outbox.last_code("+8613900000001")
    assert code is not None
    bad = client.post(
        "/me/claim/code",
        data={"csrf": csrf_of(wrong.text), "code_id": code_id.group(1), "code": code},
    )
    assert bad.status_code == 401
    assert "不一致" in bad.text
    right = client.post(
        "/me/claim",
        data={
            "csrf": csrf_of(page.text),
            "name": "孙八",
            "id_type": "resident_id",
            "id_number": z.number.lower(),
        },
    )
    cid = re.search(r'name="code_id" value="([^"]+)"', right.text)
    assert cid is not None
    code = world.outbox.last_code("+8613900000001")
    done = client.post(
        "/me/claim/code",
        data={"csrf": csrf_of(right.text), "code_id": cid.group(1), "code": code},
        follow_redirects=False,
    )
    assert done.status_code == 303
    assert done.headers["location"] == "/me?claimed=1"
    mine = client.get("/me?claimed=1&lang=zh")
    assert "认领成功" in mine.text
    assert "电子商务概论" in mine.text
    assert mine.text.count('class="card record') == 3


def test_records_show_content_and_state(client: TestClient, world: PortalWorld) -> None:
    sign_in(client, world, "X")
    zh = client.get("/me").text
    assert "快递员" in zh  # the certificate type's occupation, from the catalogue
    assert "三级/高级工" in zh
    assert "电子商务概论" in zh
    assert re.search(r"<dt>学分</dt><dd>3</dd>", zh)
    assert re.search(r"<dt>成绩</dt><dd>88</dd>", zh)
    assert "已撤销" in zh
    assert "证书编号登记错误" in zh
    assert "企业大学" in zh or "INS-EU" in zh
    en = client.get("/me?lang=en").text
    assert "Courier" in en
    assert "revoked" in en
    assert "Achieved" in en


def test_a_second_application_that_grants_nothing_says_so_first(
    client: TestClient, world: PortalWorld
) -> None:
    sign_in(client, world, "X")
    lid = world.people["X"].learner_id
    token = page_csrf(client, "/me/what-if?program=P-OU-LOG")

    def decisions() -> int:
        with world.bank.engine.connect() as conn:
            q = select(func.count()).select_from(conversion_decisions_t)
            return int(conn.execute(q.where(conversion_decisions_t.c.learner_id == lid)).scalar())

    n = decisions()
    first = client.post(
        "/me/apply", data={"csrf": token, "program": "P-OU-LOG"}, follow_redirects=False
    )
    assert first.status_code == 303
    assert decisions() == n + 1
    apps = conversion.list_applications(world.bank, lid)
    assert apps[-1]["credits_granted"] == 4
    size = log_size(world)
    second = client.post("/me/apply", data={"csrf": token, "program": "P-OU-LOG"})
    assert second.status_code == 200
    assert "不会获得任何学分" in second.text
    assert "已申请过" in second.text
    assert (decisions(), log_size(world)) == (n + 1, size)  # nothing recorded
    anyway = client.post(
        "/me/apply",
        data={"csrf": token, "program": "P-OU-LOG", "confirm": "yes"},
        follow_redirects=False,
    )
    assert anyway.status_code == 303
    assert decisions() == n + 2
    page = client.get("/me/conversions").text
    assert apps[-1]["application_id"] in page
    assert apps[-1]["explanation_zh"][:10] in page


# -- documents and share codes --------------------------------------------------------------------
def test_documents_download_only_for_their_owner(client: TestClient, world: PortalWorld) -> None:
    sign_in(client, world, "X")
    pdf = client.get(f"/me/documents/{world.x_doc}/pdf")
    assert pdf.status_code == 200
    assert pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF")
    assert "attachment" in pdf.headers["content-disposition"]
    cred = client.get(f"/me/documents/{world.x_doc}/json")
    assert cred.status_code == 200
    assert cred.json()["type"]
    sign_in(client, world, "Y")
    for path in (
        f"/me/documents/{world.x_doc}/pdf",
        f"/me/documents/{world.x_doc}/json",
        "/me/documents/DOC-00000000000000000000000000/pdf",
    ):
        resp = client.get(path, headers=HTML)
        assert resp.status_code == 404, path
        assert "赵小林" not in resp.text


def test_issue_a_transcript_of_chosen_records(client: TestClient, world: PortalWorld) -> None:
    sign_in(client, world, "X")
    page = client.get("/me/documents")
    chosen = world.records["X"][2]  # the course only
    resp = client.post(
        "/me/documents/transcript",
        data={"csrf": csrf_of(page.text), "scope": "chosen", "record": str(chosen)},
    )
    assert resp.status_code == 201, resp.text[:400]
    code = re.search(r'<p class="code">([0-9A-Z-]+)</p>', resp.text)
    assert code is not None
    doc_id = re.search(r"/me/documents/(DOC-[0-9A-Z]+)/pdf", resp.text)
    assert doc_id is not None
    assert doc_id.group(1) in client.get("/me/documents").text
    credential = client.get(f"/me/documents/{doc_id.group(1)}/json").text
    assert "电子商务概论" in credential
    assert "CT-COURIER-L3" not in credential  # only the chosen record
    other = world.records["Y"][0]
    refused = client.post(
        "/me/documents/transcript",
        data={"csrf": csrf_of(page.text), "scope": "chosen", "record": str(other)},
    )
    assert refused.status_code == 404  # another learner's record: not found, nothing issued


def test_issue_a_certificate_of_one_record(client: TestClient, world: PortalWorld) -> None:
    sign_in(client, world, "X")
    page = client.get("/me/documents")
    courier = world.records["X"][0]
    assert f'value="record:{courier}"' in page.text
    revoked = world.records["X"][1]
    assert f'value="record:{revoked}"' not in page.text  # a revoked record is not offered
    resp = client.post(
        "/me/documents/certificate",
        data={"csrf": csrf_of(page.text), "subject": f"record:{courier}"},
    )
    assert resp.status_code == 201, resp.text[:400]
    assert "证书已出具" in resp.text
    doc_id = re.search(r"/me/documents/(DOC-[0-9A-Z]+)/pdf", resp.text)
    assert doc_id is not None
    assert client.get(f"/me/documents/{doc_id.group(1)}/pdf").content.startswith(b"%PDF")
    other = client.post(
        "/me/documents/certificate",
        data={"csrf": csrf_of(page.text), "subject": f"record:{world.records['Y'][0]}"},
    )
    assert other.status_code == 404  # another learner's record


def test_share_codes_make_count_extend_revoke(client: TestClient, world: PortalWorld) -> None:
    sign_in(client, world, "X")
    page = client.get("/me/share-codes")
    made = client.post(
        "/me/share-codes", data={"csrf": csrf_of(page.text), "doc_id": world.x_doc, "days": "30"}
    )
    assert made.status_code == 201
    code = re.search(r'<p class="code">([0-9A-Z-]+)</p>', made.text)
    assert code is not None
    code_id = share_codes.lookup_code(world.bank, code.group(1)).code_id
    share_codes.lookup_code(world.bank, code.group(1))  # an employer verifies twice
    listing = client.get("/me/share-codes").text
    block = listing[listing.index(code_id) :]
    assert re.search(r'<dd class="count">2</dd>', block[:1500])
    token = csrf_of(listing)
    ext = client.post(
        f"/me/share-codes/{code_id}/extend",
        data={"csrf": token, "days": "180"},
        follow_redirects=False,
    )
    assert ext.status_code == 303
    sign_in(client, world, "Y")  # Y cannot touch X's code
    y_token = page_csrf(client, "/me/share-codes")
    stolen = client.post(f"/me/share-codes/{code_id}/revoke", data={"csrf": y_token}, headers=HTML)
    assert stolen.status_code == 404
    assert share_codes.lookup_code(world.bank, code.group(1), count=False).state == "valid"
    sign_in(client, world, "X")
    gone = client.post(
        f"/me/share-codes/{code_id}/revoke",
        data={"csrf": page_csrf(client, "/me/share-codes")},
        follow_redirects=False,
    )
    assert gone.status_code == 303
    assert share_codes.lookup_code(world.bank, code.group(1), count=False).state == "revoked"


# -- tokens ---------------------------------------------------------------------------------------
def test_own_api_tokens_work_and_revoke(client: TestClient, world: PortalWorld) -> None:
    sign_in(client, world, "X")
    made = client.post("/account/tokens", data={"csrf": page_csrf(client), "label": "phone"})
    token = re.search(r"(cbt_[A-Za-z0-9_-]+)", made.text)
    assert token is not None
    lid = world.people["X"].learner_id
    bearer = {"Authorization": f"Bearer {token.group(1)}"}
    client.cookies.clear()
    api = client.get(f"/api/v1/learners/{lid}/records", headers=bearer)
    assert api.status_code == 200
    assert api.json()["chains"][0]["content"]
    other = world.people["Y"].learner_id
    assert client.get(f"/api/v1/learners/{other}/records", headers=bearer).status_code == 403
    sign_in(client, world, "X")
    tokens = world.accounts.list_tokens(world.logins["X"])
    token_id = next(t["token_id"] for t in tokens if t["label"] == "phone")
    client.post(f"/account/tokens/{token_id}/revoke", data={"csrf": page_csrf(client)})
    client.cookies.clear()
    assert client.get(f"/api/v1/learners/{lid}/records", headers=bearer).status_code == 401


# -- console --------------------------------------------------------------------------------------
def _rows_csv() -> bytes:
    header = [
        "record_id",
        "kind",
        "learner_name",
        "id_type",
        "id_number",
        "achieved_on",
        "certificate_type_id",
        "occupation",
        "level",
        "level_label_zh",
        "certificate_no",
    ]
    good = [
        "EU-NEW-{n}",
        "skill_certificate",
        "周九",
        "resident_id",
        resident_id(4),
        "2025-09-01",
        "CT-COURIER-L2",
        "courier",
        "2",
        "四级/中级工",
        "NO-{n}",
    ]
    rows = [[v.format(n=n) for v in good] for n in range(1, 6)]
    rows[1][4] = resident_id(4)[:-1] + "1"  # row 3: wrong check character
    rows[3][8] = "9"  # row 5: level out of range
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue().encode("utf-8")


def test_console_upload_reports_every_bad_row_and_posts_nothing(
    client: TestClient, world: PortalWorld
) -> None:
    sign_in(client, world, "A")
    size = log_size(world)
    page = client.get("/console")
    assert "EU-X-1" in page.text
    resp = client.post(
        "/console/upload",
        data={"csrf": csrf_of(page.text)},
        files={"file": ("term.csv", _rows_csv(), "text/csv")},
    )
    assert resp.status_code == 200, resp.text[:500]
    problems = re.findall(
        r'<tr class="st-invalid"><td class="mono">(\d+)</td>.*?'
        r'<td class="mono nobreak">([a-z_.]+)</td>',
        resp.text,
    )
    assert problems == [("3", "identity.checksum"), ("5", "record.level_range")]
    assert re.search(r'<dd class="count good">3</dd>', resp.text)
    assert "creditbank post term.csv --institution INS-EU" in resp.text
    assert log_size(world) == size


def test_console_is_scoped_to_the_operators_institution(
    client: TestClient, world: PortalWorld
) -> None:
    eu_record = world.records["X"][0]
    sign_in(client, world, "B")
    for path in (
        f"/console/records/{eu_record}",
        f"/console/records/{eu_record}/correction.csv",
        f"/console/records/{eu_record}/revocation?reason=x&effective_on=2026-01-15",
    ):
        assert client.get(path, headers=HTML).status_code == 404, path
    assert "EU-X-1" not in client.get("/console").text
    sign_in(client, world, "A")
    assert client.get(f"/console/records/{eu_record}").status_code == 200
    sign_in(client, world, "X")
    assert client.get("/console", headers=HTML).status_code == 403


def test_console_prepares_revocations_and_corrections(
    client: TestClient, world: PortalWorld
) -> None:
    sign_in(client, world, "A")
    idx = world.records["X"][0]
    report = client.get(
        f"/console/records/{idx}/revocation",
        params={"reason": "误登", "effective_on": "2026-01-15"},
    )
    assert report.status_code == 200
    assert re.search(r'<dd class="count good">1</dd>', report.text)
    data = client.get(
        f"/console/records/{idx}/revocation.csv",
        params={"reason": "误登", "effective_on": "2026-01-15"},
    )
    assert data.content.decode("utf-8-sig").splitlines()[1] == "EU-X-1,误登,2026-01-15"
    fix = client.get(f"/console/records/{idx}/correction.csv").content.decode("utf-8-sig")
    row = next(csv.DictReader(io.StringIO(fix)))
    assert (row["corrects"], row["certificate_type_id"], row["level"]) == (
        "EU-X-1",
        "CT-COURIER-L3",
        "3",
    )
    assert row["learner_name"] == ""
    revoked = world.records["X"][1]
    already = client.get(
        f"/console/records/{revoked}/revocation",
        params={"reason": "x", "effective_on": "2026-01-15"},
    )
    assert "record.already_revoked" in already.text
    log = client.get("/console/log").text
    assert f'<td class="mono">{idx}</td>' in log
    assert "institution.registered" in log


# -- erasure --------------------------------------------------------------------------------------
def test_erase_my_personal_data(client: TestClient, world: PortalWorld) -> None:
    got = institutions.resolve(
        world.bank, name="吴十", doc_type="resident_id", number=resident_id(120)
    )
    acc = world.accounts.add_worker_for("wu@example.com", PASSWORD, got.learner_id)
    client.cookies.set("cb_session", world.accounts.sign_in(acc.login, PASSWORD).token)
    page = client.get("/me/erase")
    assert "保留在公开日志中" in page.text
    size = log_size(world)
    wrong = client.post(
        "/me/erase", data={"csrf": csrf_of(page.text), "confirm": "yes", "password": "nope"}
    )
    assert wrong.status_code == 401
    done = client.post(
        "/me/erase", data={"csrf": csrf_of(page.text), "confirm": "yes", "password": PASSWORD}
    )
    assert done.status_code == 200
    assert "已删除" in done.text
    with world.bank.engine.connect() as conn:
        row = conn.execute(
            select(learners_t).where(learners_t.c.learner_id == got.learner_id)
        ).one()
    assert (row.name, row.lookup_key, row.salt) == (None, None, None)
    assert log_size(world) == size
    assert client.get("/me", follow_redirects=False).status_code == 303
