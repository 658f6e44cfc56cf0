"""A populated bank for the portal tests: the bundled sample dataset imported (institutions
with their keys in the home, rules, records, decided applications), plus learners with real
identity numbers and records signed by the sample institutions' own keys, and accounts for
every role.

:func:`make_portal_world` builds it (about 15 s: build it once per module). Roles:

* worker X (``x@example.com``) holds learner 赵小林 (claimed through the service with the
  identity number, name and one-time code), who has a courier certificate (INS-EU), an
  academic credit (INS-COL), a revoked warehouse-keeper certificate and one issued transcript with a
  share code;
* worker Y (``y@example.com``) holds learner 钱七 (one record of INS-COL);
* learner 孙八 (``CLAIMABLE``) has records and no account: the browser journey signs up and
  claims them;
* operators of INS-EU (A) and INS-COL (B), and an admin.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from sample_data import SAMPLE

from creditbank.config import Settings
from creditbank.core.entries import build_entry, sign_entry
from creditbank.core.identity import gb11643_check_char, name_commitment
from creditbank.core.signing import entry_key_id
from creditbank.service import institutions, issuance
from creditbank.service.accounts import Account, Accounts, OutboxSender
from creditbank.service.bank import Bank, init_home
from creditbank.service.clock import FixedClock
from creditbank.service.demo import institution_key
from creditbank.service.importer import import_dataset

#: the bank clock: after every date of the sample
T_WORLD = datetime(2026, 1, 15, 9, 0, 0, tzinfo=UTC)
PASSWORD = "portal-test-password"  # noqa: S105 - a test password
#: cheap Argon2id (behaviour, not cost, is under test)
FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


def resident_id(seq: int) -> str:
    """A valid GB 11643 number (Beijing Dongcheng, born 1991-02-03)."""
    first17 = f"11010119910203{seq:03d}"
    return first17 + gb11643_check_char(first17)


@dataclass(frozen=True)
class Person:
    name: str
    number: str
    learner_id: str
    salt: bytes


@dataclass
class PortalWorld:
    bank: Bank
    clock: FixedClock
    accounts: Accounts
    outbox: OutboxSender
    people: dict[str, Person] = field(default_factory=dict)
    logins: dict[str, Account] = field(default_factory=dict)
    #: X's issued transcript: document id, share code id, record indices
    x_doc: str = ""
    x_code_id: str = ""
    x_code: str = ""
    records: dict[str, list[int]] = field(default_factory=dict)

    def close(self) -> None:
        self.bank.close()


def _post(bank: Bank, iid: str, bodies: list[dict[str, Any]], names: list[str | None]) -> list[int]:
    signer = institution_key(bank, iid)
    entries = []
    for body in bodies:
        type_ = "record.revoked" if "reason" in body else "record.posted"
        unsigned = build_entry(
            type_, iid, entry_key_id(signer.public_bytes), bank.clock.now(), body
        )
        entries.append(json.loads(sign_entry(unsigned, signer)))
    data = json.dumps({"entries": entries, "names": names}, ensure_ascii=False).encode()
    outcomes = institutions.post_records(bank, iid, institutions.parse_post_request(data))
    return [o.index for o in outcomes]


def _person(bank: Bank, name: str, seq: int) -> Person:
    number = resident_id(seq)
    got = institutions.resolve(bank, name=name, doc_type="resident_id", number=number)
    return Person(name, number, got.learner_id, got.salt)


def _cert(p: Person, rid: str, occupation: str, level: int, type_id: str) -> dict[str, Any]:
    return {
        "record_id": rid,
        "dedup_key": f"cert:{rid}",
        "kind": "skill_certificate",
        "learner": p.learner_id,
        "achieved_on": "2025-06-01",
        "name_commitment": name_commitment(p.salt, p.name),
        "payload": {
            "certificate_type_id": type_id,
            "occupation": occupation,
            "level": level,
            "level_label_zh": {2: "四级/中级工", 3: "三级/高级工"}[level],
            "certificate_no": f"NO-{rid}",
            "issued_on": "2025-06-01",
            "expires_on": None,
        },
    }


def _course(p: Person, rid: str, course: str, name_zh: str, grade: int) -> dict[str, Any]:
    return {
        "record_id": rid,
        "dedup_key": f"course:INS-COL:{course}:2025S:{rid}",
        "kind": "academic_credit",
        "learner": p.learner_id,
        "achieved_on": "2025-07-10",
        "name_commitment": name_commitment(p.salt, p.name),
        "payload": {
            "course_id": course,
            "course_name_zh": name_zh,
            "credits_centi": 300,
            "grade": grade,
            "term": "2025S",
        },
    }


def make_portal_world(home: Path) -> PortalWorld:
    """Build the world in ``home`` (SQLite); see the module docstring.

    Built in a worker thread: signing a PDF (pyHanko) runs its own event loop, which fails
    in a thread where one already runs (Playwright's sync API in the main thread).
    """
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(_make_portal_world, home).result()


def _make_portal_world(home: Path) -> PortalWorld:
    clock = FixedClock(T_WORLD)
    settings = Settings(home=home, checkpoint_interval=3600.0, sqlite_synchronous="NORMAL")
    bank = init_home(settings, clock=clock)
    import_dataset(bank, SAMPLE)
    outbox = OutboxSender()
    accounts = Accounts(bank, sender=outbox, hasher=FAST_HASHER)
    world = PortalWorld(bank, clock, accounts, outbox)
    x = world.people["X"] = _person(bank, "赵小林", 101)
    y = world.people["Y"] = _person(bank, "钱七", 102)
    z = world.people["Z"] = _person(bank, "孙八", 103)
    world.records["X"] = _post(
        bank,
        "INS-EU",
        [
            _cert(x, "EU-X-1", "courier", 3, "CT-COURIER-L3"),
            _cert(x, "EU-X-2", "warehouse_keeper", 2, "CT-WAREHOUSE-L2"),
        ],
        [x.name, x.name],
    ) + _post(bank, "INS-COL", [_course(x, "COL-X-1", "C-ECM-01", "电子商务概论", 88)], [x.name])
    world.clock.advance(60)
    world.records["X-revoked"] = _post(
        bank,
        "INS-EU",
        [{"record_id": "EU-X-2", "reason": "证书编号登记错误", "effective_on": "2026-01-15"}],
        [None],
    )
    world.records["Y"] = _post(
        bank, "INS-COL", [_course(y, "COL-Y-1", "C-ECM-02", "网店运营", 75)], [y.name]
    )
    world.records["Z"] = _post(
        bank,
        "INS-EU",
        [
            _cert(z, "EU-Z-1", "courier", 3, "CT-COURIER-L3"),
            _cert(z, "EU-Z-2", "warehouse_keeper", 2, "CT-WAREHOUSE-L2"),
        ],
        [z.name, z.name],
    ) + _post(bank, "INS-COL", [_course(z, "COL-Z-1", "C-ECM-01", "电子商务概论", 91)], [z.name])
    bank.ledger.publish()
    # accounts: X claims through the service (number + name + code), Y is bound by the bank
    wx = accounts.sign_up_worker("x@example.com", PASSWORD, "赵小林")
    code_id = accounts.start_claim(wx, name=x.name, doc_type="resident_id", number=x.number)
    code = outbox.last_code("x@example.com")
    assert code is not None
    accounts.finish_claim(wx, code_id, code)
    world.logins["X"] = accounts.get(wx.account_id)
    world.logins["Y"] = accounts.add_worker_for("y@example.com", PASSWORD, y.learner_id, "钱七")
    world.logins["A"] = accounts.add_operator(
        "ops@ins-eu.example", PASSWORD, "INS-EU", "企业大学教务"
    )
    world.logins["B"] = accounts.add_operator(
        "ops@ins-col.example", PASSWORD, "INS-COL", "学院教务"
    )
    world.logins["admin"] = accounts.add_admin("admin@bank.example", PASSWORD, "银行管理员")
    issued = issuance.issue_transcript(bank, x.learner_id)
    world.x_doc, world.x_code_id, world.x_code = issued.doc_id, issued.code_id, issued.code
    return world
