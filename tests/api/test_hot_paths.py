"""The hot paths' door (creditbank/api/hot.py) answers exactly what the routes answer.

Every request below is sent twice to the same app: once through the door (``hot_paths`` on)
and once with the door shut, so the framework's middleware, routing and the route itself
answer. Status, headers (names, values and order) and body must be byte for byte the same, on
SQLite and PostgreSQL, for successes and for every refusal the door passes on. A second test
shows the door really answers (the route is not reached) and passes on what it must.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from conftest import Institution
from starlette.testclient import TestClient

from creditbank.api.app import create_app
from creditbank.api.hot import CreditBankAPI, query_ints
from creditbank.config import Settings
from creditbank.service.bank import Bank

PROOF = "/api/v1/log/proofs/inclusion"


@pytest.fixture
def door(bank: Bank, settings: Settings, institution: Institution) -> Iterator[TestClient]:
    bank.ledger.append(institution.records(12), publish=True)
    bank.ledger.append(institution.records(3, start=50), publish=False)  # unpublished tail
    app = create_app(settings, bank=bank)
    assert isinstance(app, CreditBankAPI)
    with TestClient(app) as client:
        yield client


def _both(client: TestClient, url: str, **kw: object) -> tuple[object, object]:
    app = client.app
    assert isinstance(app, CreditBankAPI)
    app.hot_paths = True
    hot = client.get(url, **kw)  # type: ignore[arg-type]
    app.hot_paths = False
    try:
        cold = client.get(url, **kw)  # type: ignore[arg-type]
    finally:
        app.hot_paths = True
    return (
        (hot.status_code, hot.headers.raw, hot.content),
        (cold.status_code, cold.headers.raw, cold.content),
    )


def test_the_door_answers_what_the_routes_answer(door: TestClient, bank: Bank) -> None:
    published = bank.ledger.latest_checkpoint().size
    head = bank.ledger.head().size
    urls = [
        "/healthz",
        f"{PROOF}?index=0",
        f"{PROOF}?index=5",
        f"{PROOF}?index={published - 1}",
        f"{PROOF}?index=3&size={published}",
        f"{PROOF}?size={published}&index=3",
        f"{PROOF}?index=0&size=1",
        # refusals and odd shapes: passed on to the route, which answers them
        f"{PROOF}?index={published}",  # outside the latest published tree
        f"{PROOF}?index=1&size={head}",  # not a published size
        f"{PROOF}?index=1&size=0",
        f"{PROOF}?index=1&size=9223372036854775808",
        f"{PROOF}?index=99999999999999999999",
        f"{PROOF}?index=-1",
        f"{PROOF}?index=x",
        f"{PROOF}?index=",
        f"{PROOF}?index",
        f"{PROOF}?index=1&index=2",
        f"{PROOF}?index=%31",
        f"{PROOF}?index=1&other=2",
        f"{PROOF}?size=3",
        PROOF,
        f"{PROOF}?index=1&size={published}&" + "x" * 80,
    ]
    for url in urls:
        hot, cold = _both(door, url)
        assert hot == cold, url
    # a GET with a body goes through the limits middleware, as before
    hot, cold = _both(door, "/healthz", headers={"content-length": "99999999999"})
    assert hot == cold


def test_the_door_answers_without_the_route(
    door: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = door.app
    assert isinstance(app, CreditBankAPI)
    calls: list[str] = []
    inner = CreditBankAPI.__mro__[1].__call__  # FastAPI's own entry: the middleware and routes

    async def counting(self: CreditBankAPI, scope: object, receive: object, send: object) -> None:
        if isinstance(scope, dict) and scope.get("type") == "http":
            calls.append(scope["path"])
        await inner(self, scope, receive, send)  # type: ignore[arg-type]

    monkeypatch.setattr(CreditBankAPI.__mro__[1], "__call__", counting)
    assert door.get("/healthz").status_code == 200
    assert door.get(f"{PROOF}?index=2").status_code == 200
    assert calls == []  # answered at the door
    assert door.get(f"{PROOF}?index=x").status_code == 400
    assert door.get("/api/v1/log/checkpoint").status_code == 200
    assert calls == [PROOF, "/api/v1/log/checkpoint"]  # passed on


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (b"", {}),
        (b"index=3", {b"index": 3}),
        (b"index=3&size=10", {b"index": 3, b"size": 10}),
        (b"index=0000000000000000009", {b"index": 9}),
        (b"index=00000000000000000009", None),  # 20 digits
        (b"index=3&index=3", None),
        (b"index=3&", None),
        (b"index=3&foo=1", None),
        (b"index=+3", None),
        (b"index=%33", None),
        (b"index=\xd9\xa3", None),  # a non-ASCII digit
        (b"index", None),
    ],
)
def test_query_ints(query: bytes, expected: dict[bytes, int] | None) -> None:
    assert query_ints(query, (b"index", b"size")) == expected
