"""Ledger service: sequencing, idempotency, bad input (nothing written), registry, publishing."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa

from creditbank.config import Settings
from creditbank.core import merkle
from creditbank.core.checkpoint import verify_checkpoint
from creditbank.core.entries import build_entry, format_time, sign_entry
from creditbank.core.signing import (
    Ed25519Signer,
    b64encode,
    entry_key_id,
    parse_verifier_key,
)
from creditbank.errors import (
    BatchRejected,
    InconsistentLogError,
    InvalidInputError,
)
from creditbank.service.bank import Bank, init_home
from creditbank.service.clock import FixedClock
from creditbank.service.ledger import MAX_CLOCK_SKEW, MAX_SIGNATURE_AGE, GroupCommitter
from creditbank.storage import ledger_repo

INST = Ed25519Signer.from_seed(bytes(range(32)))
INST_KID = entry_key_id(INST.public_bytes)
OTHER = Ed25519Signer.from_seed(bytes(range(1, 33)))


def register(bank: Bank, iid: str = "INS-A", signer: Ed25519Signer = INST) -> None:
    bank.ledger.append(
        [
            bank.bank_entry(
                "institution.registered",
                {
                    "institution_id": iid,
                    "kind": "college",
                    "name_zh": "甲学院",
                    "name_en": "College A",
                    "keys": [
                        {
                            "key_id": entry_key_id(signer.public_bytes),
                            "public_key": b64encode(signer.public_bytes),
                        }
                    ],
                },
            )
        ],
        publish=True,
    )


def record(bank: Bank, n: int, *, signer: Ed25519Signer = INST, iid: str = "INS-A") -> bytes:
    unsigned = build_entry(
        "record.posted",
        iid,
        entry_key_id(signer.public_bytes),
        bank.clock.now(),
        {"record_id": f"R{n}", "learner": "LRN-TEST", "n": n},
    )
    return sign_entry(unsigned, signer)


def state(bank: Bank) -> tuple[int, bytes, int]:
    with bank.engine.connect() as c:
        head = ledger_repo.read_head(c)
        n = c.execute(sa.text("SELECT count(*) FROM log_entries")).scalar_one()
        nodes = c.execute(sa.text("SELECT count(*) FROM log_nodes")).scalar_one()
    assert n == head.size
    return head.size, head.root, nodes


def test_genesis_is_published_and_verifies(svc_bank: Bank) -> None:
    cp = svc_bank.ledger.latest_checkpoint()
    assert cp.size == 1
    body = verify_checkpoint(cp.note, parse_verifier_key(svc_bank.verifier_key))
    assert body.origin == "creditbank.localhost/log"
    assert body.root == merkle.leaf_hash(svc_bank.ledger.entry(0).data)


def test_append_is_contiguous_and_idempotent(svc_bank: Bank) -> None:
    register(svc_bank)
    raws = [record(svc_bank, i) for i in range(50)]
    out = svc_bank.ledger.append(raws)
    assert [o.index for o in out] == list(range(2, 52))
    assert not any(o.duplicate for o in out)
    again = svc_bank.ledger.append([raws[7], raws[7], record(svc_bank, 1000)])
    assert [(o.index, o.duplicate) for o in again] == [(9, True), (9, True), (52, False)]
    assert state(svc_bank)[0] == 53


@pytest.mark.parametrize(
    ("mutate", "code"),
    [
        (lambda raw: raw.replace(b'{"at"', b'{ "at"', 1), "input.non_canonical"),
        (lambda raw: raw.replace(b'"v":1', b'"v":2'), "input.unsupported_version"),
        (lambda raw: raw.replace(b'"n":3', b'"n":4'), "verify.signature"),
        (lambda raw: raw.replace(b"record.posted", b"record.stolen"), "entry.unknown_type"),
        (lambda raw: raw[:-1] + b',"v":1}', "input.duplicate_key"),
        (lambda raw: b"\xff" + raw, "input.not_utf8"),
        (lambda raw: raw.replace(b'"n":3', b'"n":3.5'), "input.float"),
        (lambda raw: raw.replace(b'"n":3', b'"n":"' + b"x" * 70000 + b'"'), "input.too_large"),
    ],
)
def test_bad_entry_rejects_whole_batch_and_writes_nothing(svc_bank: Bank, mutate, code) -> None:  # type: ignore[no-untyped-def]
    register(svc_bank)
    before = state(svc_bank)
    good = record(svc_bank, 1)
    bad = mutate(record(svc_bank, 3))
    with pytest.raises(BatchRejected) as ei:
        svc_bank.ledger.append([good, bad])
    assert ei.value.items[0]["index"] == 1
    assert ei.value.items[0]["code"] == code, ei.value.items
    assert state(svc_bank) == before


def test_unknown_key_and_wrong_issuer_rejected(svc_bank: Bank) -> None:
    register(svc_bank)
    before = state(svc_bank)
    with pytest.raises(BatchRejected) as ei:
        svc_bank.ledger.append([record(svc_bank, 1, signer=OTHER)])
    assert ei.value.items[0]["code"] == "verify.unknown_key"
    # A registered key used in another institution's name
    register(svc_bank, "INS-B", OTHER)
    before = state(svc_bank)
    with pytest.raises(BatchRejected) as ei:
        svc_bank.ledger.append([record(svc_bank, 2, signer=OTHER, iid="INS-A")])
    assert ei.value.items[0]["code"] == "verify.unknown_key"
    assert state(svc_bank) == before


def test_registry_entries_only_from_the_bank(svc_bank: Bank) -> None:
    register(svc_bank)
    before = state(svc_bank)
    forged = sign_entry(
        build_entry(
            "institution.key_added",
            "INS-A",
            INST_KID,
            svc_bank.clock.now(),
            {
                "institution_id": "INS-A",
                "key_id": entry_key_id(OTHER.public_bytes),
                "public_key": b64encode(OTHER.public_bytes),
            },
        ),
        INST,
    )
    with pytest.raises(BatchRejected) as ei:
        svc_bank.ledger.append([forged])
    assert ei.value.items[0]["code"] == "registry.not_bank"
    assert state(svc_bank) == before


def test_revoked_key_refused_after_effective_time_only(svc_bank: Bank, clock: FixedClock) -> None:
    register(svc_bank)
    early = record(svc_bank, 1)  # signed before the revocation takes effect
    effective = format_time(clock.now() + timedelta(seconds=30))
    clock.advance(60)
    svc_bank.ledger.append(
        [
            svc_bank.bank_entry(
                "institution.key_revoked",
                {
                    "institution_id": "INS-A",
                    "key_id": INST_KID,
                    "effective_at": effective,
                    "reason": "laptop stolen",
                },
            )
        ]
    )
    late = record(svc_bank, 2)
    with pytest.raises(BatchRejected) as ei:
        svc_bank.ledger.append([late])
    assert ei.value.items[0]["code"] == "verify.revoked"
    assert svc_bank.ledger.append([early])[0].duplicate is False


def _record_at(bank: Bank, n: int, at: datetime) -> bytes:
    unsigned = build_entry("record.posted", "INS-A", INST_KID, at, {"record_id": f"R{n}", "n": n})
    return sign_entry(unsigned, INST)


def test_signing_time_must_be_near_the_bank_clock(svc_bank: Bank, clock: FixedClock) -> None:
    register(svc_bank)
    skew, age = MAX_CLOCK_SKEW, MAX_SIGNATURE_AGE
    clock.advance(int(age.total_seconds()) + 3600)  # the key is older than the oldest bound
    now = clock.now()
    before = state(svc_bank)
    for at, code in (
        (now + skew + timedelta(microseconds=1), "entry.at_future"),
        (now + timedelta(days=365), "entry.at_future"),
        (now - age - timedelta(microseconds=1), "entry.at_stale"),
        (now - timedelta(days=3650), "entry.at_stale"),
    ):
        with pytest.raises(BatchRejected) as ei:
            svc_bank.ledger.append([record(svc_bank, 0), _record_at(svc_bank, 1, at)])
        assert [(p["index"], p["code"]) for p in ei.value.items] == [(1, code)]
        assert state(svc_bank) == before  # the good entry beside it is not written either
    # the bounds themselves are accepted
    edge = [_record_at(svc_bank, 2, now + skew), _record_at(svc_bank, 3, now - age)]
    first = svc_bank.ledger.append(edge)
    assert [o.duplicate for o in first] == [False, False]
    # a re-post of an entry already in the log stays idempotent however old it has become
    clock.advance(int(age.total_seconds()) * 2)
    again = svc_bank.ledger.append(edge)
    assert [(o.index, o.duplicate) for o in again] == [(o.index, True) for o in first]


def test_a_revoked_key_cannot_backdate_beyond_the_signature_age(
    svc_bank: Bank, clock: FixedClock
) -> None:
    """Key validity is judged at the claimed signing time; the age bound keeps a holder of a
    revoked key from claiming any time before the revocation (only the last
    MAX_SIGNATURE_AGE, which the operator covers by setting effective_at that far back)."""
    register(svc_bank)
    clock.advance(int(MAX_SIGNATURE_AGE.total_seconds()) + 3600)
    effective = clock.now() - MAX_SIGNATURE_AGE
    svc_bank.ledger.append(
        [
            svc_bank.bank_entry(
                "institution.key_revoked",
                {
                    "institution_id": "INS-A",
                    "key_id": INST_KID,
                    "effective_at": format_time(effective),
                    "reason": "laptop stolen",
                },
            )
        ]
    )
    codes = set()
    for at in (effective - timedelta(seconds=1), effective, clock.now()):
        with pytest.raises(BatchRejected) as ei:
            svc_bank.ledger.append([_record_at(svc_bank, 9, at)])
        codes.add(ei.value.items[0]["code"])
    assert codes == {"entry.at_stale", "verify.revoked"}


def test_failed_request_in_group_commit_leaves_others_intact(svc_bank: Bank) -> None:
    register(svc_bank)
    good1 = [record(svc_bank, i) for i in range(10)]
    bad = [record(svc_bank, 100), b"{}"]
    good2 = [record(svc_bank, i) for i in range(200, 205)]
    results = svc_bank.ledger.append_many([good1, bad, good2])
    assert isinstance(results[1], BatchRejected)
    assert [o.index for o in results[0]] == list(range(2, 12))  # type: ignore[union-attr]
    assert [o.index for o in results[2]] == list(range(12, 17))  # type: ignore[union-attr]
    assert state(svc_bank)[0] == 17


def test_group_committer_threads(svc_bank: Bank) -> None:
    register(svc_bank)
    gc = GroupCommitter(svc_bank.ledger)
    got: list[int] = []
    lock = threading.Lock()

    def work(t: int) -> None:
        for b in range(5):
            out = gc.submit([record(svc_bank, t * 1000 + b * 10 + i) for i in range(10)])
            with lock:
                got.extend(o.index for o in out)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    gc.close()
    assert sorted(got) == list(range(2, 2 + 300))


def test_publish_only_when_grown_and_proofs_only_for_published_sizes(svc_bank: Bank) -> None:
    register(svc_bank)
    assert svc_bank.ledger.publish() is None  # nothing new since the last checkpoint
    svc_bank.ledger.append([record(svc_bank, i) for i in range(5)], publish=False)
    with pytest.raises(InvalidInputError) as ei:
        svc_bank.ledger.inclusion_proof(3, 7)
    assert ei.value.code == "log.unpublished_size"
    cp = svc_bank.ledger.publish()
    assert cp is not None
    assert cp.size == 7
    leaf, path = svc_bank.ledger.inclusion_proof(3, 7)
    merkle.verify_inclusion(3, 7, leaf, path, cp.root)
    proof = svc_bank.ledger.consistency_proof(2, 7)
    first = ledger_repo.StoredCheckpoint
    with svc_bank.engine.connect() as c:
        old = ledger_repo.checkpoint_at(c, 2)
    assert old is not None
    assert isinstance(old, first)
    merkle.verify_consistency(2, 7, old.root, cp.root, proof)
    with pytest.raises(InvalidInputError):
        svc_bank.ledger.inclusion_proof(7, 7)
    with pytest.raises(InvalidInputError):
        svc_bank.ledger.consistency_proof(7, 2)


def test_never_signs_an_inconsistent_checkpoint(svc_bank: Bank) -> None:
    register(svc_bank)
    svc_bank.ledger.append([record(svc_bank, i) for i in range(3)], publish=False)
    # Corrupt the head row (the one mutable row) as a buggy or malicious writer might.
    with svc_bank.engine.begin() as c:
        c.execute(sa.text("UPDATE log_head SET root = :r"), {"r": b"\x00" * 32})
    with pytest.raises(InconsistentLogError):
        svc_bank.ledger.publish()
    with svc_bank.engine.connect() as c:
        assert ledger_repo.latest_checkpoint(c).size == 2  # type: ignore[union-attr]


def test_export_shape_is_exact_bytes(svc_bank: Bank) -> None:
    register(svc_bank)
    raw = record(svc_bank, 1)
    idx = svc_bank.ledger.append([raw])[0].index
    assert bytes(svc_bank.ledger.entry(idx).data) == raw
    assert json.loads(raw)["body"]["n"] == 1


def test_the_signing_time_window_is_configurable(
    settings_factory: Callable[..., Settings], clock: FixedClock
) -> None:
    settings = settings_factory(max_clock_skew_seconds=0, max_signature_age_seconds=3600)
    bank = init_home(settings, clock=clock, validate_records=False)
    try:
        register(bank)
        clock.advance(7200)
        now = clock.now()
        assert bank.ledger.append([_record_at(bank, 1, now - timedelta(seconds=3600))])
        for at, code in (
            (now - timedelta(seconds=3601), "entry.at_stale"),
            (now + timedelta(microseconds=1), "entry.at_future"),
        ):
            with pytest.raises(BatchRejected) as ei:
                bank.ledger.append([_record_at(bank, 2, at)])
            assert ei.value.items[0]["code"] == code
    finally:
        bank.close()
    with pytest.raises(ValueError, match="max_signature_age_seconds"):
        settings_factory(max_signature_age_seconds=0)
