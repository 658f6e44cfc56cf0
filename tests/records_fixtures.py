"""Fixtures for the records API and CLI tests: a validating bank with institutions and tokens.

The root ``bank`` fixture runs the ledger-only mode (no record validation); these tests need
the product's behaviour, so :func:`world` builds its own home with ``init_home`` (validating)
on the engine under test and registers, through :mod:`creditbank.service.institutions`:

* ``INS-A`` and ``INS-B`` (colleges), ``INS-C`` (custodian-to-be), ``INS-W`` (to be closed);
* an institution token for each.

Import the fixture into a test module with ``from records_fixtures import world_fixture``
(it is named ``world``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import unicodedata
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from schema_template import with_sqlite_schema
from sqlalchemy import func, select
from starlette.testclient import TestClient

from creditbank.api.app import create_app
from creditbank.config import Settings
from creditbank.core.entries import build_entry, sign_entry
from creditbank.core.identity import gb11643_check_char
from creditbank.core.signing import Ed25519Signer, entry_key_id
from creditbank.service import institutions as svc
from creditbank.service import tokens
from creditbank.service.bank import Bank, init_home
from creditbank.service.clock import FixedClock
from creditbank.storage.tables import learners_t, record_names_t, records_t, revocations_t

PROBLEM = "application/problem+json"
RECORDS = "/api/v1/records"
RESOLVE = "/api/v1/learners/resolve"
#: the fixed "now" of these tests (the root conftest's T0)
NOW = datetime(2025, 3, 1, 8, 0, 0, tzinfo=UTC)
SEEDS = {
    "INS-A": bytes(range(32)),
    "INS-B": bytes(range(100, 132)),
    "INS-C": bytes(range(50, 82)),
    "INS-W": bytes(range(150, 182)),
}
#: a key no institution registered
STRANGER = Ed25519Signer.from_seed(bytes(range(200, 232)))


def resident_id(seq: int, birth: str = "19900101") -> str:
    """A valid GB 11643 resident ID (Beijing Dongcheng), distinct for each ``seq``."""
    first17 = f"110101{birth}{seq % 1000:03d}"
    return first17 + gb11643_check_char(first17)


def commitment(salt: bytes, name: str) -> str:
    data = salt + unicodedata.normalize("NFC", name).encode("utf-8")
    return base64.b64encode(hashlib.sha256(data).digest()).decode("ascii")


def payload(kind: str, issuer: str = "INS-A") -> dict[str, Any]:
    """A valid v1 payload of each record kind."""
    return {
        "academic_credit": {
            "course_id": "C-101",
            "course_name_zh": "物流管理基础",
            "credits_centi": 400,
            "grade": 82,
            "term": "2024S",
        },
        "skill_certificate": {
            "certificate_type_id": "CT-ELEC-3",
            "occupation": "electrician",
            "level": 3,
            "level_label_zh": "三级/高级工",
            "certificate_no": "S2024-0001",
            "issued_on": "2024-06-01",
            "expires_on": None,
        },
        "training_hours": {"training_program_id": "TP-7", "hours": 40, "cohort": "2024-09"},
        "competition_award": {
            "competition": "全国职业院校技能大赛",
            "tier": "national",
            "rank": 3,
            "field": "welding",
        },
        "work_experience": {
            "occupation_key": "welder",
            "employer": "某制造有限公司",
            "start_on": "2020-01-01",
            "end_on": "2023-12-31",
            "duration_months": 48,
            "verified_by": issuer,
        },
    }[kind]


@dataclass(frozen=True)
class Learner:
    id: str
    salt: bytes
    name: str

    @property
    def commitment(self) -> str:
        return commitment(self.salt, self.name)


@dataclass
class Inst:
    """A registered institution: its key, token, and helpers to sign entries."""

    id: str
    signer: Ed25519Signer
    token: str
    clock: FixedClock

    @property
    def key_id(self) -> str:
        return entry_key_id(self.signer.public_bytes)

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def body(
        self, n: int, learner: Learner, kind: str = "academic_credit", /, **fields: Any
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "record_id": f"{self.id}-R{n:04d}",
            "dedup_key": f"{self.id}:{kind}:{n}",
            "kind": kind,
            "learner": learner.id,
            "achieved_on": "2024-07-01",
            "name_commitment": learner.commitment,
            "payload": payload(kind, self.id),
        }
        body.update(fields)
        return body

    def sign(
        self,
        type_: str,
        body: Mapping[str, Any],
        *,
        at: datetime | None = None,
        signer: Ed25519Signer | None = None,
        issuer: str | None = None,
    ) -> bytes:
        key = signer or self.signer
        unsigned = build_entry(
            type_,
            issuer or self.id,
            entry_key_id(key.public_bytes),
            at or self.clock.now(),
            body,
        )
        return sign_entry(unsigned, key)

    def record(self, n: int, learner: Learner, kind: str = "academic_credit", /, **f: Any) -> bytes:
        return self.sign("record.posted", self.body(n, learner, kind, **f))

    def correction(self, n: int, corrects: str, learner: Learner, /, **f: Any) -> bytes:
        return self.sign("record.corrected", self.body(n, learner, corrects=corrects, **f))

    def revocation(self, record_id: str, **f: Any) -> bytes:
        body = {"record_id": record_id, "reason": "发证信息有误", "effective_on": "2025-02-01"}
        body.update(f)
        return self.sign("record.revoked", body)


def batch(entries: list[bytes], names: list[str | None] | None = None) -> bytes:
    """A POST /records body (pretty-printed: the transport need not be canonical)."""
    doc: dict[str, Any] = {"entries": [json.loads(e) for e in entries]}
    if names is not None:
        doc["names"] = names
    return json.dumps(doc, ensure_ascii=False, indent=1).encode("utf-8")


@dataclass
class World:
    bank: Bank
    client: TestClient
    clock: FixedClock
    inst: dict[str, Inst] = field(default_factory=dict)
    _seq: int = 0

    def __getitem__(self, iid: str) -> Inst:
        return self.inst[iid]

    # -- requests ---------------------------------------------------------------------------
    def post(
        self,
        who: Inst | str | None,
        entries: list[bytes],
        names: list[str | None] | None = None,
    ) -> httpx.Response:
        return self.post_raw(who, batch(entries, names))

    def post_raw(self, who: Inst | str | None, content: bytes) -> httpx.Response:
        resp: httpx.Response = self.client.post(
            RECORDS,
            content=content,
            headers={"Content-Type": "application/json", **self.headers(who)},
        )
        return resp

    @staticmethod
    def headers(who: Inst | str | None) -> dict[str, str]:
        if who is None:
            return {}
        token = who.token if isinstance(who, Inst) else who
        return {"Authorization": f"Bearer {token}"}

    def learner(self, name: str = "王建国", number: str | None = None) -> Learner:
        """Resolve a new learner through the API (as INS-A)."""
        self._seq += 1
        resp = self.client.post(
            RESOLVE,
            json={
                "name": name,
                "id_type": "resident_id",
                "id_number": number or resident_id(self._seq),
            },
            headers=self.inst["INS-A"].auth,
        )
        assert resp.status_code in (200, 201), resp.text
        doc = resp.json()
        return Learner(doc["learner_id"], base64.b64decode(doc["salt"]), name)

    def entry(self, who: Inst | str | None, index: int) -> httpx.Response:
        resp: httpx.Response = self.client.get(
            f"/api/v1/log/entries/{index}", headers=self.headers(who)
        )
        return resp

    # -- state ------------------------------------------------------------------------------
    def size(self) -> int:
        return self.bank.ledger.head().size

    def counts(self) -> dict[str, int]:
        """Rows of the record projections and personal-data tables."""
        with self.bank.engine.connect() as conn:
            return {
                t.name: int(conn.execute(select(func.count()).select_from(t)).scalar_one())
                for t in (records_t, revocations_t, record_names_t, learners_t)
            }

    def snapshot(self) -> tuple[int, dict[str, int]]:
        return self.size(), self.counts()


def assert_problem(resp: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    """RFC 9457 problem+json with our members, the expected status and code."""
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == PROBLEM, resp.headers
    doc: dict[str, Any] = resp.json()
    assert {"type", "title", "status", "detail", "code"} <= doc.keys()
    assert doc["status"] == status
    assert doc["type"] == f"urn:creditbank:problem:{doc['code']}"
    if code is not None:
        assert doc["code"] == code, doc
    return doc


def item_codes(doc: Mapping[str, Any]) -> dict[int, str]:
    """``{index: code}`` of a rejected batch's items."""
    items = doc.get("items")
    assert isinstance(items, list), doc
    return {int(i["index"]): str(i["code"]) for i in items}


def make_world(settings: Settings, clock: FixedClock) -> Iterator[World]:
    with_sqlite_schema(settings)
    bank = init_home(settings, clock=clock)
    try:
        with TestClient(create_app(settings, bank=bank)) as client:
            world = World(bank, client, clock)
            for iid, seed in SEEDS.items():
                signer = Ed25519Signer.from_seed(seed)
                svc.register_institution(
                    bank,
                    iid,
                    kind="college" if iid != "INS-C" else "open_university",
                    name_zh=f"{iid}学院",
                    name_en=f"College {iid}",
                    public_keys=[signer.public_bytes],
                )
                token, _ = tokens.issue_institution_token(bank, iid)
                world.inst[iid] = Inst(iid, signer, token, clock)
            yield world
    finally:
        bank.close()


@pytest.fixture(name="world")
def world_fixture(settings: Settings, clock: FixedClock) -> Iterator[World]:
    """A validating bank on the engine under test, its API client and four institutions."""
    yield from make_world(settings, clock)


@pytest.fixture(
    name="shared_world",
    scope="module",
    params=["sqlite", pytest.param("pg", marks=pytest.mark.pg)],
)
def shared_world_fixture(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    """:func:`world_fixture` built once per module and engine, for tests that write nothing
    (each asserts so): refusals. Never use it for a test that appends or changes state."""
    from conftest import engine_database

    home = tmp_path_factory.mktemp("shared-world") / "home"
    with engine_database(request.param, request) as url:
        settings = Settings(
            home=home, database_url=url, checkpoint_interval=3600.0, sqlite_synchronous="NORMAL"
        )
        yield from make_world(settings, FixedClock(NOW))
