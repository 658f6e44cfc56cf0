"""The console's "Log watch" (issue #10 item 4: "The console shows the same" as
``creditbank monitor``): the monitor's checks over the bank's stored log, for the operator's
own institution.

A clean sample log shows "no alerts"; a record in INS-EU's name signed with a key nobody
registered, written straight into the database the way a forging bank would (the monitor
tests' helper), is an alert naming its index for INS-EU's operator only.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from client.test_monitor import FORGER_SEED, forge_append  # the tests folder is on sys.path
from portal_fixtures import PASSWORD, PortalWorld, make_portal_world
from starlette.testclient import TestClient

from creditbank.asgi import create_app
from creditbank.core.canonical import canonicalize
from creditbank.core.entries import build_entry, parse_entry
from creditbank.core.signing import Ed25519Signer, b64encode, entry_key_id
from creditbank.service.watch import watch_institution

HTML = {"Accept": "text/html"}


@pytest.fixture
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PortalWorld]:
    w = make_portal_world(tmp_path_factory.mktemp("watch") / "home")
    try:
        yield w
    finally:
        w.close()


@pytest.fixture
def client(world: PortalWorld) -> Iterator[TestClient]:
    app = create_app(world.bank.settings, bank=world.bank)
    app.state.accounts = world.accounts
    with TestClient(app) as c:
        yield c


def sign_in(client: TestClient, world: PortalWorld, who: str, lang: str = "en") -> None:
    client.cookies.clear()
    signed = world.accounts.sign_in(world.logins[who].login, PASSWORD)
    client.cookies.set("cb_session", signed.token)
    client.cookies.set("cb_lang", lang)


def watch_section(html: str) -> str:
    m = re.search(r'<section class="card" id="watch".*?</section>', html, re.S)
    assert m is not None, html[:800]
    return m.group(0)


def forge_eu_record(world: PortalWorld) -> int:
    """A copy of an INS-EU record under a new record id, signed by an unregistered key."""
    model = parse_entry(bytes(world.bank.ledger.entry(world.records["X"][0]).data))
    forger = Ed25519Signer.from_seed(FORGER_SEED)
    body = {**model.body, "record_id": "EU-FORGED-1"}
    unsigned = build_entry(
        "record.posted", model.issuer, entry_key_id(forger.public_bytes), model.at, body
    )
    raw = canonicalize({**unsigned, "sig": b64encode(forger.sign(canonicalize(unsigned)))})
    return forge_append(world.bank, raw)


def test_clean_sample_shows_no_alerts(client: TestClient, world: PortalWorld) -> None:
    for who, iid in (("A", "INS-EU"), ("B", "INS-COL")):
        report = watch_institution(world.bank, iid)
        assert report.alerts == [], report.alerts
        assert report.claimed > 0
        assert report.verified == report.claimed
        assert report.checkpoints > 0
        assert report.baseline
        sign_in(client, world, who)
        resp = client.get("/console/log", headers=HTML)
        assert resp.status_code == 200
        section = watch_section(resp.text)
        assert "Log watch" in section
        assert 'id="watch-ok"' in section
        assert "No alerts." in section
    sign_in(client, world, "A", "zh")
    section = watch_section(client.get("/console/log", headers=HTML).text)
    assert "账本监视" in section
    assert "没有警报。" in section


def test_forged_record_is_an_alert_with_its_index_for_its_institution_only(
    client: TestClient, world: PortalWorld
) -> None:
    index = forge_eu_record(world)
    codes = [(a.index, a.code) for a in watch_institution(world.bank, "INS-EU").alerts]
    assert codes == [(index, "entry.unknown_key")]
    assert watch_institution(world.bank, "INS-COL").alerts == []

    sign_in(client, world, "A")
    section = watch_section(client.get("/console/log", headers=HTML).text)
    assert 'id="watch-ok"' not in section
    assert f'data-index="{index}"' in section
    assert f"entry #{index}" in section
    assert "[entry.unknown_key]" in section
    assert "Alerts: 1" in section

    sign_in(client, world, "B")
    section = watch_section(client.get("/console/log", headers=HTML).text)
    assert 'id="watch-ok"' in section
    assert f"#{index}" not in section
    assert "entry.unknown_key" not in section


def test_the_watch_is_for_operators_only(client: TestClient, world: PortalWorld) -> None:
    sign_in(client, world, "X")
    assert client.get("/console/log", headers=HTML).status_code == 403
