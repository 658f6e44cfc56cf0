"""Who may post and read records (docs/trust-model.md), on SQLite and PostgreSQL.

Institution A cannot post, correct, revoke, list or read B's records; anonymous callers read
no private entry; revoked keys and tokens are refused; a custodian acts only for the
institution it was named for, and a closed institution no longer posts itself. Every refusal
writes nothing.
"""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from records_fixtures import (
    NOW,
    Inst,
    Learner,
    World,
    assert_problem,
    item_codes,
    world_fixture,  # noqa: F401 - the ``world`` fixture
)

from creditbank.api.deps import ANONYMOUS, Principal
from creditbank.core.entries import ENTRY_TYPES, PRIVATE_TYPES
from creditbank.errors import NotFoundError
from creditbank.service import institutions as svc
from creditbank.service import learners, tokens
from creditbank.storage.token_repo import issue_token


@pytest.fixture
def posted(world: World) -> tuple[Learner, dict[str, int]]:
    """A learner with one record from A (``INS-A-R0001``) and one from B (``INS-B-R0001``)."""
    lrn = world.learner()
    out: dict[str, int] = {}
    for iid in ("INS-A", "INS-B"):
        inst = world[iid]
        resp = world.post(inst, [inst.record(1, lrn)], names=[lrn.name])
        assert resp.status_code == 201, resp.text
        out[iid] = resp.json()["results"][0]["index"]
    return lrn, out


# -- posting for someone else -----------------------------------------------------------------
def test_a_cannot_post_correct_or_revoke_bs_records(
    world: World, posted: tuple[Learner, dict[str, int]]
) -> None:
    a, b = world["INS-A"], world["INS-B"]
    lrn, _ = posted
    before = world.snapshot()
    attempts = {
        # B's own signed entries, relayed with A's token
        "B's record": b.record(2, lrn),
        "B's correction": b.correction(3, "INS-B-R0001", lrn),
        "B's revocation": b.revocation("INS-B-R0001"),
        # entries A signs, claiming to act for B (which is open, and has no custodian)
        "record for B": a.record(4, lrn, on_behalf_of="INS-B"),
        "correction for B": a.correction(5, "INS-B-R0001", lrn, on_behalf_of="INS-B"),
        "revocation for B": a.revocation("INS-B-R0001", on_behalf_of="INS-B"),
        # A's key, but B named as issuer
        "forged issuer": a.sign("record.posted", b.body(6, lrn), issuer="INS-B"),
    }
    for name, raw in attempts.items():
        doc = assert_problem(world.post(a, [a.record(9, lrn), raw]), 403, "auth.wrong_institution")
        assert item_codes(doc) == {1: "auth.wrong_institution"}, name
        assert world.snapshot() == before, name
    # all at once: every failing item is listed
    doc = assert_problem(world.post(a, list(attempts.values())), 403, "auth.wrong_institution")
    assert item_codes(doc) == dict.fromkeys(range(len(attempts)), "auth.wrong_institution")
    # A correcting or revoking "its own" copy of B's record id finds nothing of its own
    for raw in (a.correction(7, "INS-B-R0001", lrn), a.revocation("INS-B-R0001")):
        doc = assert_problem(world.post(a, [raw]), 422, "batch.rejected")
        assert item_codes(doc) == {0: "record.unknown_target"}
    assert world.snapshot() == before


def test_entries_signed_with_another_institutions_key_are_refused(
    world: World, posted: tuple[Learner, dict[str, int]]
) -> None:
    a, b = world["INS-A"], world["INS-B"]
    lrn, _ = posted
    before = world.snapshot()
    # A names itself as issuer but signs with B's key: the key is not A's
    stolen = a.sign("record.posted", a.body(2, lrn), signer=b.signer)
    doc = assert_problem(world.post(a, [stolen]), 422, "batch.rejected")
    assert item_codes(doc) == {0: "verify.unknown_key"}
    assert world.snapshot() == before


# -- reading ----------------------------------------------------------------------------------
def test_record_entries_are_read_only_by_their_institution_learner_and_auditors(
    world: World, posted: tuple[Learner, dict[str, int]]
) -> None:
    a, b = world["INS-A"], world["INS-B"]
    lrn, idx = posted
    other = world.learner("李四")
    auditor, _ = issue_token(world.bank.engine, role="auditor", now="2025-03-01T08:00:00Z")
    mine, _ = tokens.issue_learner_token(world.bank, lrn.id)
    theirs, _ = tokens.issue_learner_token(world.bank, other.id)
    readers: list[tuple[Inst | str | None, int]] = [
        (a, 200),
        (auditor, 200),
        (mine, 200),
        (b, 403),
        (world["INS-C"], 403),
        (theirs, 403),
        (None, 403),
    ]
    for who, status in readers:
        resp = world.entry(who, idx["INS-A"])
        assert resp.status_code == status, (who, resp.text)
        if status == 200:
            assert resp.headers["cache-control"] == "private, no-store"
        else:
            assert_problem(resp, 403, "auth.forbidden")
    assert world.entry(b, idx["INS-B"]).status_code == 200
    assert world.entry(a, idx["INS-B"]).status_code == 403
    # registry entries stay public
    assert world.entry(None, 1).status_code == 200
    assert world.entry(None, 1).headers["cache-control"].startswith("public")


def test_a_cannot_list_bs_records(world: World, posted: tuple[Learner, dict[str, int]]) -> None:
    a, b = world["INS-A"], world["INS-B"]
    url = "/api/v1/institutions/INS-B/records"
    assert_problem(world.client.get(url, headers=a.auth), 403, "auth.wrong_institution")
    mine = world.client.get(url, headers=b.auth)
    assert mine.status_code == 200
    assert [r["record_id"] for r in mine.json()["records"]] == ["INS-B-R0001"]
    assert_problem(world.client.get(url), 401, "auth.required")


def test_access_policy_of_principals() -> None:
    learner = Principal("learner", "LRN-1")
    inst = Principal("institution", "INS-A")
    auditor = Principal("auditor")
    for type_ in ENTRY_TYPES:
        private = type_ in PRIVATE_TYPES
        for who in (ANONYMOUS, learner, inst, auditor):
            if not private:
                assert who.may_read_entry(type_, "INS-A", None)
        if private:
            assert not ANONYMOUS.may_read_entry(type_, "INS-A", "LRN-1", {"INS-A"})
            assert auditor.may_read_entry(type_, "INS-A", "LRN-1")
            assert learner.may_read_entry(type_, "INS-A", "LRN-1")
            assert not learner.may_read_entry(type_, "INS-A", "LRN-2", {"LRN-1"})
            assert not learner.may_read_entry(type_, "INS-A", None)
            assert inst.may_read_entry(type_, "INS-X", "LRN-1", {"INS-X", "INS-A"})
            assert not inst.may_read_entry(type_, "INS-A", "LRN-1")  # fails closed
            assert not inst.may_read_entry(type_, "INS-B", "INS-A", {"INS-B"})
            assert not Principal("institution").may_read_entry(type_, "INS-A", None, {"INS-A"})
            assert not Principal("mystery", "INS-A").may_read_entry(type_, "INS-A", None, {"INS-A"})


# -- revoked keys and tokens --------------------------------------------------------------------
def test_a_revoked_key_signs_nothing_after_its_effective_time(
    world: World, posted: tuple[Learner, dict[str, int]]
) -> None:
    a = world["INS-A"]
    lrn, _ = posted
    early = a.record(2, lrn)  # signed at NOW
    svc.revoke_key(
        world.bank, a.id, a.key_id, effective_at=NOW + timedelta(seconds=30), reason="leaked"
    )
    world.clock.advance(60)
    before = world.snapshot()
    late = a.record(3, lrn)  # signed after the effective time
    doc = assert_problem(world.post(a, [late]), 422, "batch.rejected")
    assert item_codes(doc) == {0: "verify.revoked"}
    backdated_to_the_instant = a.sign(
        "record.posted", a.body(4, lrn), at=NOW + timedelta(seconds=30)
    )
    doc = assert_problem(world.post(a, [backdated_to_the_instant]), 422)
    assert item_codes(doc) == {0: "verify.revoked"}
    assert world.snapshot() == before
    # signed before the effective time: still valid, also when posted later
    assert world.post(a, [early]).status_code == 201


def test_a_revoked_token_is_refused(world: World, posted: tuple[Learner, dict[str, int]]) -> None:
    a = world["INS-A"]
    lrn, idx = posted
    token, row = tokens.issue_institution_token(world.bank, a.id, label="ci")
    assert world.post(token, [a.record(2, lrn)]).status_code == 201
    revoked = tokens.revoke_token(world.bank, row.token_id)
    assert revoked.revoked_at is not None
    assert tokens.revoke_token(world.bank, row.token_id) == revoked  # idempotent
    before = world.snapshot()
    assert_problem(world.post(token, [a.record(3, lrn)]), 401, "auth.bad_token")
    assert_problem(world.entry(token, idx["INS-A"]), 401, "auth.bad_token")
    assert world.snapshot() == before
    # the institution's other token still works
    assert world.post(a, [a.record(3, lrn)]).status_code == 201


def test_erasing_a_learner_revokes_the_learners_tokens(
    world: World, posted: tuple[Learner, dict[str, int]]
) -> None:
    lrn, idx = posted
    token, _ = tokens.issue_learner_token(world.bank, lrn.id)
    assert world.entry(token, idx["INS-A"]).status_code == 200
    assert learners.erase(world.bank, lrn.id) == 1
    assert_problem(world.entry(token, idx["INS-A"]), 401, "auth.bad_token")
    with pytest.raises(NotFoundError) as e:
        tokens.issue_learner_token(world.bank, lrn.id)
    assert e.value.code == "learner.erased"


# -- custodians ---------------------------------------------------------------------------------
def test_a_custodian_acts_only_for_the_institution_it_was_named_for(world: World) -> None:
    a, b, c, w = world["INS-A"], world["INS-B"], world["INS-C"], world["INS-W"]
    lrn = world.learner()
    # posted_at before today: the custodian's correction (today) is then the current version
    w_records = [w.record(n, lrn, posted_at="2025-02-20") for n in (1, 2)]
    resp = world.post(w, w_records, names=[lrn.name] * 2)
    assert resp.status_code == 201, resp.text
    w1, w2 = (r["index"] for r in resp.json()["results"])
    assert world.post(a, [a.record(1, lrn)]).status_code == 201

    # before the closure C is nobody's custodian
    before = world.snapshot()
    doc = assert_problem(
        world.post(c, [c.revocation("INS-W-R0001", on_behalf_of="INS-W")]),
        403,
        "auth.wrong_institution",
    )
    assert item_codes(doc) == {0: "auth.wrong_institution"}
    assert world.snapshot() == before

    svc.close_institution(world.bank, "INS-W", closed_on=date(2025, 2, 28), custodian="INS-C")
    before = world.snapshot()

    # the closed institution no longer posts itself (records, corrections, revocations)
    for raw in (
        w.record(3, lrn),
        w.correction(4, "INS-W-R0001", lrn),
        w.revocation("INS-W-R0002"),
    ):
        doc = assert_problem(world.post(w, [raw]), 422, "batch.rejected")
        assert item_codes(doc) == {0: "record.institution_closed"}
    # ... but re-running an upload it made before closing is answered as before
    rerun = world.post(w, w_records)
    assert rerun.status_code == 200, rerun.text
    assert [r["index"] for r in rerun.json()["results"]] == [w1, w2]
    # B is not the custodian of W; C is not the custodian of A
    for who, raw in (
        (b, b.revocation("INS-W-R0001", on_behalf_of="INS-W")),
        (b, b.correction(5, "INS-W-R0001", lrn, on_behalf_of="INS-W")),
        (c, c.revocation("INS-A-R0001", on_behalf_of="INS-A")),
        (c, c.correction(6, "INS-A-R0001", lrn, on_behalf_of="INS-A")),
        (c, c.record(7, lrn, on_behalf_of="INS-A")),
        # C's token relaying an entry signed by the closed institution itself
        (c, w.revocation("INS-W-R0001", on_behalf_of="INS-W")),
    ):
        doc = assert_problem(world.post(who, [raw]), 403, "auth.wrong_institution")
        assert item_codes(doc) == {0: "auth.wrong_institution"}
    assert world.snapshot() == before

    # C corrects and revokes W's records, for W
    fix = c.correction(
        8, "INS-W-R0001", lrn, on_behalf_of="INS-W", dedup_key="INS-W:academic_credit:1"
    )
    resp = world.post(
        c,
        [fix, c.revocation("INS-W-R0002", on_behalf_of="INS-W")],
        names=[lrn.name, None],
    )
    assert resp.status_code == 201, resp.text
    fix_idx, rev_idx = (r["index"] for r in resp.json()["results"])

    # reading: C (custodian), W (owner) and the learner read them; A and B do not
    mine, _ = tokens.issue_learner_token(world.bank, lrn.id)
    readers: list[tuple[Inst | str | None, int]] = [
        (c, 200), (w, 200), (mine, 200), (a, 403), (b, 403), (None, 403)
    ]  # fmt: skip
    for index in (w1, fix_idx, rev_idx):
        for reader, status in readers:
            got = world.entry(reader, index)
            assert got.status_code == status, (index, reader, got.text)

    # listing W's records: W and its custodian; nobody else
    url = "/api/v1/institutions/INS-W/records"
    for who, status in ((w, 200), (c, 200), (a, 403), (b, 403)):
        assert world.client.get(url, headers=world.headers(who)).status_code == status
    rows = world.client.get(url, headers=c.auth).json()["records"]
    assert {r["record_id"]: r["posted_by"] for r in rows} == {
        "INS-W-R0001": "INS-W",
        "INS-W-R0002": "INS-W",
        "INS-C-R0008": "INS-C",
    }
    assert world.client.get("/api/v1/institutions/INS-A/records", headers=c.auth).status_code == 403

    # the learner's view: W's first record is corrected by C, the second revoked
    chains = {
        ch["record_id"]: ch
        for ch in world.client.get(
            f"/api/v1/learners/{lrn.id}/records", headers=world.headers(mine)
        ).json()["chains"]
        if ch["owner"] == "INS-W"
    }
    assert chains["INS-W-R0001"]["current_record_id"] == "INS-C-R0008"
    assert chains["INS-W-R0002"]["revoked"] is True


def test_a_custodian_of_one_institution_is_not_custodian_of_another(world: World) -> None:
    c, w, b = world["INS-C"], world["INS-W"], world["INS-B"]
    lrn = world.learner()
    assert world.post(w, [w.record(1, lrn)]).status_code == 201
    assert world.post(b, [b.record(1, lrn)]).status_code == 201
    svc.close_institution(world.bank, "INS-W", closed_on=date(2025, 2, 28), custodian="INS-C")
    svc.close_institution(world.bank, "INS-B", closed_on=date(2025, 2, 28), custodian="INS-A")
    before = world.snapshot()
    doc = assert_problem(
        world.post(
            c,
            [
                c.revocation("INS-W-R0001", on_behalf_of="INS-W"),  # fine on its own
                c.revocation("INS-B-R0001", on_behalf_of="INS-B"),  # A's ward, not C's
            ],
        ),
        403,
        "auth.wrong_institution",
    )
    assert item_codes(doc) == {1: "auth.wrong_institution"}
    assert world.snapshot() == before
