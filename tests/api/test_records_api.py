"""POST /api/v1/records, learner resolution and the read APIs, on SQLite and PostgreSQL.

The bad-input table: every case is a 4xx problem+json with a stable code, the batch is refused
as a whole (the good entry beside the bad one is not written either: log size and projection
rows unchanged), and the rejected items name their index and code.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from records_fixtures import (
    NOW,
    RECORDS,
    RESOLVE,
    STRANGER,
    Inst,
    Learner,
    World,
    assert_problem,
    batch,
    item_codes,
    resident_id,
    shared_world_fixture,  # noqa: F401 - the ``shared_world`` fixture
    world_fixture,  # noqa: F401 - the ``world`` fixture
)

from creditbank.core import merkle
from creditbank.core.entries import MEDIA_TYPE
from creditbank.core.signing import b64encode
from creditbank.service import institutions as svc
from creditbank.service import learners, posting, tokens

JSON = {"Content-Type": "application/json"}
KINDS = (
    "academic_credit",
    "skill_certificate",
    "training_hours",
    "competition_award",
    "work_experience",
)


# -- posting ----------------------------------------------------------------------------------
def test_post_appends_the_signed_bytes_and_reposts_are_idempotent(world: World) -> None:
    a = world["INS-A"]
    lrn = world.learner()
    raws = [a.record(n, lrn, kind) for n, kind in enumerate(KINDS)]
    before = world.size()

    resp = world.post(a, raws, names=[lrn.name] * len(raws))
    assert resp.status_code == 201, resp.text
    results = resp.json()["results"]
    assert [r["index"] for r in results] == list(range(before, before + len(raws)))
    assert not any(r["duplicate"] for r in results)
    for raw, r in zip(raws, results, strict=True):
        assert r["leaf_hash"] == b64encode(merkle.leaf_hash(raw))
        got = world.entry(a, r["index"])
        assert got.status_code == 200
        assert got.headers["content-type"] == MEDIA_TYPE
        assert got.content == raw  # exactly the bytes the institution signed
    counts = world.counts()
    assert counts["records"] == len(raws)
    assert counts["record_names"] == len(raws)

    # the same signed entries again: 200, the original indexes, nothing new
    again = world.post(a, raws)
    assert again.status_code == 200, again.text
    assert again.json()["results"] == [{**r, "duplicate": True} for r in results]
    # the same record re-signed later (other bytes, same content): the original index too
    world.clock.advance(60)
    resigned = a.record(0, lrn, KINDS[0])
    assert resigned != raws[0]
    third = world.post(a, [resigned])
    assert third.status_code == 200, third.text
    assert third.json()["results"][0]["index"] == results[0]["index"]
    assert third.json()["results"][0]["duplicate"] is True
    assert world.size() == before + len(raws)
    assert world.counts() == counts


def test_a_batch_mixing_new_and_known_entries_is_201(world: World) -> None:
    a = world["INS-A"]
    lrn = world.learner()
    first = world.post(a, [a.record(1, lrn)])
    assert first.status_code == 201
    resp = world.post(a, [a.record(1, lrn), a.record(2, lrn)])
    assert resp.status_code == 201
    dup, new = resp.json()["results"]
    assert dup["duplicate"]
    assert dup["index"] == first.json()["results"][0]["index"]
    assert not new["duplicate"]


def test_corrections_and_revocations_post_through_the_api(world: World) -> None:
    a = world["INS-A"]
    lrn = world.learner()
    rid = "INS-A-R0001"
    resp = world.post(
        a,
        [
            a.record(1, lrn),
            a.correction(2, rid, lrn, dedup_key="INS-A:academic_credit:1"),
            a.revocation(rid),
        ],
    )
    assert resp.status_code == 201, resp.text
    assert world.counts()["records"] == 2
    assert world.counts()["record_revocations"] == 1


def test_post_needs_an_institution_token(world: World, auditor: str, learner_token: str) -> None:
    a = world["INS-A"]
    lrn = world.learner()
    body = batch([a.record(1, lrn)])
    assert_problem(world.post_raw(None, body), 401, "auth.required")
    assert_problem(world.post_raw(auditor, body), 403, "auth.forbidden")
    assert_problem(world.post_raw(learner_token, body), 403, "auth.forbidden")
    assert_problem(world.post_raw("cbt_" + "x" * 43, body), 401, "auth.bad_token")
    assert world.counts()["records"] == 0


@pytest.fixture
def auditor(world: World) -> str:
    from creditbank.storage.token_repo import issue_token

    token, _ = issue_token(world.bank.engine, role="auditor", now="2025-03-01T08:00:00Z")
    return token


@pytest.fixture
def learner_token(world: World) -> str:
    lrn = world.learner("李四")
    token, _ = tokens.issue_learner_token(world.bank, lrn.id)
    return token


# -- the bad-input table ----------------------------------------------------------------------
# Each case returns (entries, names); entry 0 is always good, the bad one is the last.
Case = Callable[[World, Inst, Learner], list[bytes]]


def _payload(kind: str, **changes: Any) -> Callable[[World, Inst, Learner], list[bytes]]:
    def make(w: World, a: Inst, lrn: Learner) -> list[bytes]:
        body = a.body(9, lrn, kind)
        for k, v in changes.items():
            if v is _DROP:
                del body["payload"][k]
            else:
                body["payload"][k] = v
        return [a.record(1, lrn), a.sign("record.posted", body)]

    return make


_DROP = object()


def _bad_signature(w: World, a: Inst, lrn: Learner) -> list[bytes]:
    doc = json.loads(a.record(9, lrn))
    sig = bytearray(base64.b64decode(doc["sig"]))
    sig[5] ^= 1
    doc["sig"] = b64encode(bytes(sig))
    return [a.record(1, lrn), json.dumps(doc).encode()]


def _unknown_key(w: World, a: Inst, lrn: Learner) -> list[bytes]:
    return [a.record(1, lrn), a.sign("record.posted", a.body(9, lrn), signer=STRANGER)]


def _revoked_key(w: World, a: Inst, lrn: Learner) -> list[bytes]:
    svc.revoke_key(
        w.bank, a.id, a.key_id, effective_at=NOW + timedelta(seconds=10), reason="key leaked"
    )
    good = a.record(1, lrn)  # signed at NOW, before the revocation takes effect
    late = a.sign("record.posted", a.body(9, lrn), at=NOW + timedelta(seconds=20))
    return [good, late]


def _body(**fields: Any) -> Case:
    def make(w: World, a: Inst, lrn: Learner) -> list[bytes]:
        return [a.record(1, lrn), a.record(9, lrn, **fields)]

    return make


def _conflict(w: World, a: Inst, lrn: Learner) -> list[bytes]:
    assert w.post(a, [a.record(5, lrn)]).status_code == 201
    changed = a.body(5, lrn)
    changed["payload"]["grade"] = 99
    return [a.record(1, lrn), a.sign("record.posted", changed)]


def _unknown_learner(w: World, a: Inst, lrn: Learner) -> list[bytes]:
    other = Learner("LRN-" + "Z" * 20, lrn.salt, lrn.name)
    return [a.record(1, lrn), a.record(9, other)]


def _entry_type(w: World, a: Inst, lrn: Learner) -> list[bytes]:
    return [a.record(1, lrn), a.sign("conversion.decided", {"learner": lrn.id})]


def _unknown_target(w: World, a: Inst, lrn: Learner) -> list[bytes]:
    return [a.record(1, lrn), a.correction(9, "INS-A-R7777", lrn)]


def _revoke_unknown(w: World, a: Inst, lrn: Learner) -> list[bytes]:
    return [a.record(1, lrn), a.revocation("INS-A-R7777")]


def _revocation_without_reason(w: World, a: Inst, lrn: Learner) -> list[bytes]:
    return [a.record(1, lrn), a.sign("record.revoked", {"record_id": "INS-A-R0001"})]


def _envelope(w: World, a: Inst, lrn: Learner) -> list[bytes]:
    doc = json.loads(a.record(9, lrn))
    doc["v"] = 2
    return [a.record(1, lrn), json.dumps(doc).encode()]


BAD_ENTRIES: dict[str, tuple[Case, str]] = {
    "bad signature": (_bad_signature, "verify.signature"),
    "unknown key": (_unknown_key, "verify.unknown_key"),
    "key revoked before the signing time": (_revoked_key, "verify.revoked"),
    "schema: academic_credit": (_payload("academic_credit", term=_DROP), "record.schema"),
    "schema: skill_certificate": (
        _payload("skill_certificate", certificate_no=_DROP),
        "record.schema",
    ),
    "schema: training_hours": (_payload("training_hours", hours=0), "record.schema"),
    "schema: competition_award": (_payload("competition_award", tier="galactic"), "record.schema"),
    "schema: work_experience": (_payload("work_experience", employer=_DROP), "record.schema"),
    "schema: unknown member": (_body(colour="blue"), "record.schema"),
    "schema: learner is an ID number": (_body(learner="110101199001010011"), "record.schema"),
    "level 6": (_payload("skill_certificate", level=6), "record.level_range"),
    "level 0": (_payload("skill_certificate", level=0), "record.level_range"),
    "negative credits": (_payload("academic_credit", credits_centi=-100), "record.credits"),
    "non-numeric credits": (_payload("academic_credit", credits_centi="4"), "record.credits"),
    "expiry before issue": (
        _payload("skill_certificate", expires_on="2024-05-31"),
        "record.expiry_before_issue",
    ),
    "end before start": (
        _payload("work_experience", end_on="2019-12-31"),
        "record.end_before_start",
    ),
    "achieved in the future": (_body(achieved_on="2025-03-02"), "record.future_date"),
    "issued in the future": (
        _payload("skill_certificate", issued_on="2025-12-01"),
        "record.future_date",
    ),
    "same record_id, other content": (_conflict, "record.conflict"),
    "unknown learner": (_unknown_learner, "record.unknown_learner"),
    "not a record entry": (_entry_type, "record.entry_type"),
    "correction of an unknown record": (_unknown_target, "record.unknown_target"),
    "revocation of an unknown record": (_revoke_unknown, "record.unknown_target"),
    "revocation without a reason": (_revocation_without_reason, "record.schema"),
    "entry version 2": (_envelope, "input.unsupported_version"),
}


@pytest.mark.parametrize("case", list(BAD_ENTRIES), ids=list(BAD_ENTRIES))
def test_bad_entries_reject_the_whole_batch(world: World, case: str) -> None:
    make, code = BAD_ENTRIES[case]
    a = world["INS-A"]
    lrn = world.learner()
    entries = make(world, a, lrn)
    before = world.snapshot()

    resp = world.post(a, entries, names=[lrn.name] * len(entries))
    assert 400 <= resp.status_code < 500
    doc = assert_problem(resp, resp.status_code)
    assert item_codes(doc) == {len(entries) - 1: code}, doc
    assert world.snapshot() == before  # nothing written, the good entry neither
    # the good entry alone still goes in: the batch was untouched, not half-applied
    assert world.post(a, entries[:1]).status_code == 201


def test_every_failing_item_is_listed(world: World) -> None:
    a = world["INS-A"]
    lrn = world.learner()
    entries = [
        a.record(1, lrn),
        a.record(2, lrn, achieved_on="2030-01-01"),
        a.record(3, lrn),
        a.sign("record.posted", a.body(4, lrn), signer=STRANGER),
        a.record(5, lrn, kind="skill_certificate", payload={"level": 9}),
    ]
    before = world.snapshot()
    doc = assert_problem(world.post(a, entries), 422, "batch.rejected")
    assert item_codes(doc) == {
        1: "record.future_date",
        3: "verify.unknown_key",
        4: "record.schema",
    }
    assert all(i["detail"] for i in doc["items"])
    assert world.snapshot() == before


def test_a_wrong_name_on_record_is_refused(world: World) -> None:
    a = world["INS-A"]
    lrn = world.learner("王建国")
    before = world.snapshot()
    doc = assert_problem(
        world.post(a, [a.record(1, lrn), a.record(2, lrn)], names=["王建国", "王建军"]), 422
    )
    assert item_codes(doc) == {1: "record.name_commitment"}
    assert "王建军" not in json.dumps(doc, ensure_ascii=False)  # no personal data echoed
    assert world.snapshot() == before


BAD_BODIES: dict[str, tuple[bytes, int, str]] = {
    "non-UTF-8": (b'{"entries":[{"v":1,"issuer":"\xff"}]}', 400, "input.not_utf8"),
    "duplicate keys": (b'{"entries":[],"entries":[]}', 400, "input.duplicate_key"),
    "duplicate keys inside an entry": (
        b'{"entries":[{"v":1,"v":1}]}',
        400,
        "input.duplicate_key",
    ),
    "float": (b'{"entries":[{"v":1.0}]}', 400, "input.float"),
    "NaN": (b'{"entries":[{"v":NaN}]}', 400, "input.json"),
    "huge integer": (b'{"entries":[{"v":' + b"9" * 5000 + b"}]}", 400, "input.big_int"),
    "deep nesting": (b'{"entries":' + b"[" * 5000 + b"]" * 5000 + b"}", 400, "input.too_deep"),
    "not JSON": (b"entries=1", 400, "input.json"),
    "empty body": (b"", 400, "input.json"),
    "truncated": (b'{"entries":[{"v":1', 400, "input.json"),
    "a list": (b"[]", 400, "request.invalid"),
    "a string": (b'"entries"', 400, "request.invalid"),
    "no entries": (b"{}", 400, "request.invalid"),
    "unknown member": (b'{"entries":[{}],"extra":1}', 400, "request.invalid"),
    "entries not a list": (b'{"entries":{}}', 400, "request.invalid"),
    "empty batch": (b'{"entries":[]}', 400, "batch.empty"),
    "names of the wrong length": (b'{"entries":[{}],"names":[]}', 400, "request.invalid"),
    "names not text": (b'{"entries":[{}],"names":[1]}', 400, "request.invalid"),
    "lone surrogate": (b'{"entries":[{"v":"\\ud800"}]}', 422, "batch.rejected"),
    "entry not an object": (b'{"entries":[1]}', 422, "batch.rejected"),
    "entry without fields": (b'{"entries":[{}]}', 422, "batch.rejected"),
    "entry with wrong field types": (
        b'{"entries":[{"v":1,"type":"record.posted","issuer":"INS-A","key_id":1,"at":2,'
        b'"body":[],"sig":null}]}',
        422,
        "batch.rejected",
    ),
    "sig not base64": (b"", 422, "batch.rejected"),  # built in the test
}


@pytest.mark.parametrize("case", list(BAD_BODIES), ids=list(BAD_BODIES))
def test_malformed_bodies_are_problems_not_500s(shared_world: World, case: str) -> None:
    world = shared_world  # nothing is written: one world per module and engine
    content, status, code = BAD_BODIES[case]
    a = world["INS-A"]
    if case == "sig not base64":
        doc = json.loads(a.record(1, world.learner()))
        doc["sig"] = "not base64!"
        content = json.dumps({"entries": [doc]}).encode()
    before = world.snapshot()
    assert_problem(world.post_raw(a, content), status, code)
    assert world.snapshot() == before


def test_oversize_batches_are_413(world: World) -> None:
    a = world["INS-A"]
    lrn = world.learner()
    before = world.snapshot()
    one = json.loads(a.record(1, lrn))
    too_many = json.dumps({"entries": [one] * (posting.MAX_POST_ENTRIES + 1)}).encode()
    assert len(too_many) < posting.MAX_POST_BYTES
    assert_problem(world.post_raw(a, too_many), 413, "input.too_large")
    too_big = b'{"entries":["' + b"x" * posting.MAX_POST_BYTES + b'"]}'
    assert_problem(world.post_raw(a, too_big), 413, "input.too_large")

    def chunks() -> Any:  # no Content-Length: refused while streaming
        yield b'{"entries":["'
        for _ in range(5):
            yield b"x" * (1024 * 1024)
        yield b'"]}'

    resp = world.client.post(
        RECORDS, content=chunks(), headers={"Content-Type": "application/json", **a.auth}
    )
    assert_problem(resp, 413, "input.too_large")
    assert world.snapshot() == before
    # exactly the limit of entries is fine
    ok = world.post(a, [a.record(n, lrn) for n in range(posting.MAX_POST_ENTRIES)])
    assert ok.status_code == 201, ok.text
    assert len(ok.json()["results"]) == posting.MAX_POST_ENTRIES


# -- learner resolution -----------------------------------------------------------------------
def test_resolve_creates_once_and_returns_the_salt(world: World) -> None:
    a, b = world["INS-A"], world["INS-B"]
    number = resident_id(42)
    first = world.client.post(
        RESOLVE,
        json={"name": "张三", "id_type": "resident_id", "id_number": number},
        headers=a.auth,
    )
    assert first.status_code == 201, first.text
    doc = first.json()
    assert doc["created"] is True
    assert doc["learner_id"].startswith("LRN-")
    assert len(base64.b64decode(doc["salt"])) == 16
    # another institution, the same person (lower-case x and spaces normalize too)
    again = world.client.post(
        RESOLVE,
        json={"name": "张 三", "id_type": "resident_id", "id_number": f" {number} "},
        headers=b.auth,
    )
    assert again.status_code == 200, again.text
    assert again.json() == {**doc, "created": False}
    # a passport with nationality
    pp = world.client.post(
        RESOLVE,
        json={
            "name": "John Smith",
            "id_type": "passport",
            "id_number": "E1234567",
            "nationality": "GBR",
        },
        headers=a.auth,
    )
    assert pp.status_code == 201, pp.text
    assert pp.json()["learner_id"] != doc["learner_id"]


BAD_IDENTITIES: dict[str, tuple[dict[str, Any], int, str]] = {
    "wrong checksum": (
        {"id_type": "resident_id", "id_number": resident_id(1)[:17] + "0"},
        422,
        "identity.checksum",
    ),
    "wrong length": (
        {"id_type": "resident_id", "id_number": "11010119900101"},
        422,
        "identity.format",
    ),
    "not a date": (
        {"id_type": "resident_id", "id_number": resident_id(1, birth="19901301")},
        422,
        "identity.format",
    ),
    "passport without nationality": (
        {"id_type": "passport", "id_number": "E1234567"},
        422,
        "identity.nationality",
    ),
    "unknown document type": (
        {"id_type": "driving_licence", "id_number": "X1"},
        400,
        "request.invalid",
    ),
    "number not text": ({"id_type": "resident_id", "id_number": 110101}, 400, "request.invalid"),
    "missing number": ({"id_type": "resident_id"}, 400, "request.invalid"),
    "unknown member": (
        {"id_type": "resident_id", "id_number": resident_id(1), "phone": "1"},
        400,
        "request.invalid",
    ),
}


@pytest.mark.parametrize("case", list(BAD_IDENTITIES), ids=list(BAD_IDENTITIES))
def test_resolve_refuses_bad_documents(shared_world: World, case: str) -> None:
    world = shared_world
    fields, status, code = BAD_IDENTITIES[case]
    before = world.counts()["learners"]
    resp = world.client.post(RESOLVE, json={"name": "张三", **fields}, headers=world["INS-A"].auth)
    doc = assert_problem(resp, status, code)
    number = fields.get("id_number")
    if isinstance(number, str):
        assert number not in json.dumps(doc)  # the number is never echoed
    assert world.counts()["learners"] == before


def test_resolve_bad_bodies_and_auth(world: World, auditor: str) -> None:
    a = world["INS-A"]
    ok = {"name": "张三", "id_type": "resident_id", "id_number": resident_id(3)}
    assert_problem(world.client.post(RESOLVE, json=ok), 401, "auth.required")
    assert_problem(
        world.client.post(RESOLVE, json=ok, headers=world.headers(auditor)), 403, "auth.forbidden"
    )
    for content, code in [
        (b'{"name":"a","name":"b"}', "input.duplicate_key"),
        (b"\xff\xfe", "input.not_utf8"),
        (b"[1]", "request.invalid"),
        (b'{"name":1.5}', "input.float"),
    ]:
        resp = world.client.post(RESOLVE, content=content, headers={**JSON, **a.auth})
        assert_problem(resp, 400, code)
    big = json.dumps({**ok, "name": "x" * learners.MAX_SMALL_BODY}).encode()
    assert_problem(
        world.client.post(RESOLVE, content=big, headers={**JSON, **a.auth}), 413, "input.too_large"
    )
    assert world.counts()["learners"] == 0


# -- reading ----------------------------------------------------------------------------------
def test_a_learners_records_come_with_their_current_state(world: World, auditor: str) -> None:
    a, b = world["INS-A"], world["INS-B"]
    lrn = world.learner()
    other = world.learner("李四")
    posted = world.post(
        a,
        [
            a.record(1, lrn),  # corrected twice
            a.record(2, lrn, "skill_certificate"),  # revoked
            a.record(3, lrn, dedup_key="course:C-101:2024S"),  # canonical of a duplicate
            a.record(4, other),  # another learner's
        ],
    )
    assert posted.status_code == 201, posted.text
    idx = [r["index"] for r in posted.json()["results"]]
    world.clock.advance(24 * 3600)
    later = world.post(
        a,
        [
            a.correction(
                11, "INS-A-R0001", lrn, dedup_key="INS-A:academic_credit:1", posted_at="2025-03-02"
            ),
            a.revocation("INS-A-R0002", reason="证书撤销", effective_on="2025-03-02"),
        ],
    )
    assert later.status_code == 201, later.text
    world.clock.advance(24 * 3600)
    last = world.post(
        a,
        [
            a.correction(
                12, "INS-A-R0011", lrn, dedup_key="INS-A:academic_credit:1", posted_at="2025-03-03"
            ),
        ],
    )
    assert last.status_code == 201, last.text
    dup = world.post(b, [b.record(5, lrn, dedup_key="course:C-101:2024S", posted_at="2025-03-03")])
    assert dup.status_code == 201, dup.text
    c11, _rev = (r["index"] for r in later.json()["results"])
    c12 = last.json()["results"][0]["index"]
    b5 = dup.json()["results"][0]["index"]

    token, _ = tokens.issue_learner_token(world.bank, lrn.id)
    resp = world.client.get(f"/api/v1/learners/{lrn.id}/records", headers=world.headers(token))
    assert resp.status_code == 200, resp.text
    doc = resp.json()
    assert doc["learner_id"] == lrn.id
    chains = {(c["owner"], c["record_id"]): c for c in doc["chains"]}
    assert set(chains) == {
        ("INS-A", "INS-A-R0001"),
        ("INS-A", "INS-A-R0002"),
        ("INS-A", "INS-A-R0003"),
        ("INS-B", "INS-B-R0005"),
    }
    corrected = chains["INS-A", "INS-A-R0001"]
    assert corrected["versions"] == [idx[0], c11, c12]
    assert (corrected["current_record_id"], corrected["current_index"]) == ("INS-A-R0012", c12)
    assert corrected["revoked"] is False
    assert corrected["duplicate_of"] is None
    revoked = chains["INS-A", "INS-A-R0002"]
    assert revoked["revoked"] is True
    assert revoked["revoked_on"] == "2025-03-02"
    assert revoked["revocation_reason"] == "证书撤销"
    assert revoked["kind"] == "skill_certificate"
    assert chains["INS-A", "INS-A-R0003"]["duplicate_of"] is None
    assert chains["INS-B", "INS-B-R0005"]["duplicate_of"] == "INS-A/INS-A-R0003"
    assert chains["INS-B", "INS-B-R0005"]["current_index"] == b5

    # an auditor reads it too; the other learner, institutions and strangers do not
    assert (
        world.client.get(
            f"/api/v1/learners/{lrn.id}/records", headers=world.headers(auditor)
        ).json()
        == doc
    )
    other_token, _ = tokens.issue_learner_token(world.bank, other.id)
    for who, status, code in [
        (other_token, 403, "auth.forbidden"),
        (a.token, 403, "auth.forbidden"),
        (None, 401, "auth.required"),
    ]:
        resp = world.client.get(f"/api/v1/learners/{lrn.id}/records", headers=world.headers(who))
        assert_problem(resp, status, code)
    assert_problem(
        world.client.get(
            "/api/v1/learners/LRN-ZZZZZZZZZZZZZZZZZZZZ/records", headers=world.headers(auditor)
        ),
        404,
        "learner.unknown",
    )
    assert_problem(
        world.client.get(
            "/api/v1/learners/110101199001010011/records", headers=world.headers(auditor)
        ),
        400,
        "request.invalid",
    )


def test_an_institution_lists_its_records_page_by_page(world: World) -> None:
    a, b = world["INS-A"], world["INS-B"]
    lrn = world.learner()
    resp = world.post(a, [a.record(n, lrn) for n in range(5)])
    idx = [r["index"] for r in resp.json()["results"]]
    assert world.post(b, [b.record(1, lrn)]).status_code == 201
    assert world.post(a, [a.revocation("INS-A-R0002")]).status_code == 201

    url = "/api/v1/institutions/INS-A/records"
    seen: list[int] = []
    after: int | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2}
        if after is not None:
            params["after"] = after
        page = world.client.get(url, params=params, headers=a.auth)
        assert page.status_code == 200, page.text
        doc = page.json()
        seen += [r["index"] for r in doc["records"]]
        pages += 1
        after = doc["next_after"]
        if after is None:
            break
    assert seen == idx
    assert pages == 3
    rows = world.client.get(url, headers=a.auth).json()["records"]
    assert {r["record_id"]: r["chain_revoked"] for r in rows}["INS-A-R0002"] is True
    assert all(r["owner"] == "INS-A" and r["learner"] == lrn.id for r in rows)
    assert rows[0]["type"] == "record.posted"

    assert_problem(world.client.get(url, headers=b.auth), 403, "auth.wrong_institution")
    assert_problem(world.client.get(url), 401, "auth.required")
    for params in ({"limit": 0}, {"limit": 1001}, {"after": -1}, {"after": "1.0"}):
        assert_problem(world.client.get(url, params=params, headers=a.auth), 400)


def test_openapi_documents_the_new_endpoints(world: World) -> None:
    spec = world.client.get("/openapi.json").json()
    paths = spec["paths"]
    assert "requestBody" in paths["/api/v1/records"]["post"]
    assert "/api/v1/learners/resolve" in paths
    assert "/api/v1/institutions/{institution_id}/records" in paths
    assert "/api/v1/learners/{learner_id}/records" in paths


def test_resolution_waits_for_a_writer_instead_of_failing(world: World) -> None:
    """On SQLite a read-then-write transaction whose snapshot another writer made stale
    cannot upgrade (SQLITE_BUSY_SNAPSHOT, no retry): resolution must take the write lock
    up front, and so wait for a ledger batch rather than fail with 503."""
    from creditbank.storage.engine import IMMEDIATE

    a = world["INS-A"]
    started = threading.Event()
    results: list[int] = []

    def hold_the_write_lock() -> None:
        engine = world.bank.engine
        with engine.connect().execution_options(**{IMMEDIATE: True}) as conn, conn.begin():
            started.set()
            time.sleep(0.5)
            conn.exec_driver_sql("UPDATE api_tokens SET label = label")  # a write: stale reads

    holder = threading.Thread(target=hold_the_write_lock)
    holder.start()
    started.wait(10)
    for n in range(3):
        resp = world.client.post(
            RESOLVE,
            json={"name": "赵六", "id_type": "resident_id", "id_number": resident_id(500 + n)},
            headers=a.auth,
        )
        results.append(resp.status_code)
    holder.join(10)
    assert results == [201, 201, 201]
