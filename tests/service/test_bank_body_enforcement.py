"""Bank-authored entry bodies are checked against their schemas when appended.

(a) The bodies the real code paths build — genesis, the sample import (registrations,
closures, rules, decisions, voids), the registry use cases and a document issued and
revoked — all conform.
(b) A malformed body, signed by the bank, is refused at append with the type's code and
nothing is written (both engines); the ledger-only mode does not check bodies.
"""

from __future__ import annotations

import copy
import json
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

import pytest
from sample_data import SAMPLE
from sqlalchemy import select

from creditbank.config import Settings
from creditbank.core.records import BANK_ENTRY_SCHEMAS, validate_bank_body
from creditbank.core.signing import Ed25519Signer, b64encode, entry_key_id
from creditbank.errors import BatchRejected, ConflictError, InvalidInputError
from creditbank.service import conversion, issuance
from creditbank.service import institutions as svc
from creditbank.service.bank import Bank, init_home, open_bank
from creditbank.service.clock import FixedClock
from creditbank.service.importer import import_dataset
from creditbank.storage.tables import entries_t

T_IMPORT = datetime(2026, 1, 15, 9, 0, 0, tzinfo=UTC)
CODES = {
    "institution": "registry.schema",
    "rules": "rules.schema",
    "conversion": "conversion.schema",
    "transcript": "transcript.schema",
}


def bank_bodies(bank: Bank) -> dict[str, list[dict[str, Any]]]:
    """Every bank-signed body of a bank-authored type in the log, by type."""
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    with bank.engine.connect() as conn:
        for row in conn.execute(
            select(entries_t.c.type, entries_t.c.data).order_by(entries_t.c.idx)
        ):
            entry = json.loads(bytes(row.data))
            if row.type in BANK_ENTRY_SCHEMAS and entry["issuer"] == bank.settings.bank_id:
                out[str(row.type)].append(entry["body"])
    return out


@pytest.fixture(scope="module")
def produced(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, Any]]]:
    """The bodies of a validating bank after the whole sample import and a key's life."""
    home = tmp_path_factory.mktemp("sample") / "home"
    settings = Settings(home=home, checkpoint_interval=3600, sqlite_synchronous="NORMAL")
    bank = init_home(settings, clock=FixedClock(T_IMPORT))
    try:
        report = import_dataset(bank, SAMPLE)
        assert report.records_posted > 0
        assert report.voids_posted > 0
        extra = Ed25519Signer.from_seed(b"\x07" * 32).public_bytes
        iid = next(i for i in bank.ledger.registry().institutions if i != "BANK")
        svc.add_key(bank, iid, extra)
        key_id = next(k for k in bank.ledger.registry().institutions[iid].keys)
        svc.revoke_key(bank, iid, key_id, effective_at=T_IMPORT, reason="rotated\nafter audit")
        learner = conversion.resolve_learner_ref(bank, "L01")  # a document's life
        doc = issuance.issue_transcript(bank, learner)
        issuance.revoke_document(bank, doc.doc_id, reason="superseded", by="bank")
        return dict(bank_bodies(bank))
    finally:
        bank.close()


def test_every_bank_authored_type_is_produced_and_conforms(
    produced: dict[str, list[dict[str, Any]]],
) -> None:
    assert set(produced) == set(BANK_ENTRY_SCHEMAS)
    for type_, bodies in produced.items():
        for body in bodies:
            validate_bank_body(type_, body)
    decided = produced["conversion.decided"]
    assert any(d["grants"] for d in decided)
    assert any("exam" in d for d in decided)
    assert any(d["record_notes"] for d in decided)


@pytest.fixture
def strict_bank(settings: Settings, clock: FixedClock) -> Iterator[Bank]:
    bank = init_home(settings, clock=clock)  # validates, as the product does
    try:
        yield bank
    finally:
        bank.close()


def _mutations(produced: dict[str, list[dict[str, Any]]]) -> list[tuple[str, dict[str, Any], str]]:
    """(type, malformed body, what) built from real bodies."""
    first = {t: copy.deepcopy(b[0]) for t, b in produced.items()}
    decided = copy.deepcopy(next(d for d in produced["conversion.decided"] if d["grants"]))
    cases: list[tuple[str, dict[str, Any], str]] = []

    def case(type_: str, base: dict[str, Any], what: str, edit: Any) -> None:
        body = copy.deepcopy(base)
        edit(body)
        cases.append((type_, body, what))

    reg = first["institution.registered"]
    case("institution.registered", reg, "missing name_en", lambda b: b.pop("name_en"))
    case("institution.registered", reg, "extra member", lambda b: b.update(note="x"))
    case("institution.registered", reg, "bad id", lambda b: b.update(institution_id="-x"))
    case("institution.registered", reg, "keys not a list", lambda b: b.update(keys="k"))
    case(
        "institution.registered",
        reg,
        "bad key_id",
        lambda b: b["keys"][0].update(key_id="ed25519:XYZ"),
    )
    added = first["institution.key_added"]
    case("institution.key_added", added, "extra member", lambda b: b.update(at="now"))
    case("institution.key_added", added, "int id", lambda b: b.update(institution_id=5))
    revoked = first["institution.key_revoked"]
    case(
        "institution.key_revoked",
        revoked,
        "offset time",
        lambda b: b.update(effective_at="2026-01-15T09:00:00+08:00"),
    )
    case("institution.key_revoked", revoked, "missing reason", lambda b: b.pop("reason"))
    closed = first["institution.closed"]
    case("institution.closed", closed, "bad date", lambda b: b.update(closed_on="2025-02-30"))
    rules = first["rules.published"]
    case("rules.published", rules, "string version", lambda b: b["rules"][0].update(version="1"))
    case("rules.published", rules, "missing caps", lambda b: b["rules"][0].pop("caps"))
    case(
        "rules.published",
        rules,
        "negative credits",
        lambda b: b["degree_programs"][0]["courses"][0].update(credits_centi=-350),
    )
    case("conversion.decided", decided, "string credits", lambda b: b.update(credits_centi="1"))
    case("conversion.decided", decided, "extra member", lambda b: b.update(name="王建国"))
    case("conversion.decided", decided, "missing grants", lambda b: b.pop("grants"))
    case(
        "conversion.decided",
        decided,
        "string entry",
        lambda b: b["grants"][0]["sources"][0].update(entry="1"),
    )
    voided = first["conversion.voided"]
    case("conversion.voided", voided, "negative grant_no", lambda b: b.update(grant_no=-1))
    case("conversion.voided", voided, "bad learner", lambda b: b.update(learner="L1"))
    issued = first["transcript.issued"]
    case("transcript.issued", issued, "a name in the body", lambda b: b.update(name="王建国"))
    case("transcript.issued", issued, "bad digest", lambda b: b.update(pdf_digest="sha256:00"))
    revoked = first["transcript.revoked"]
    case("transcript.revoked", revoked, "unknown revoker", lambda b: b.update(revoked_by="x"))
    return cases


def test_malformed_bank_bodies_are_refused_and_nothing_is_written(
    strict_bank: Bank, produced: dict[str, list[dict[str, Any]]]
) -> None:
    bank = strict_bank
    size = bank.ledger.head().size
    for type_, body, what in _mutations(produced):
        with pytest.raises(BatchRejected) as e:
            bank.ledger.append([bank.bank_entry(type_, body)], publish=True)
        (item,) = e.value.items
        assert item["code"] == CODES[type_.split(".")[0]], (type_, what, item)
        assert bank.ledger.head().size == size, (type_, what)
    # a good entry in the same batch as a bad one is not written either
    bad = _mutations(produced)[0]
    good_key = Ed25519Signer.from_seed(b"\x09" * 32)
    good = {
        "institution_id": "INS-NEW",
        "kind": "college",
        "name_zh": "新学院",
        "name_en": "New College",
        "keys": [
            {
                "key_id": entry_key_id(good_key.public_bytes),
                "public_key": b64encode(good_key.public_bytes),
            }
        ],
    }
    with pytest.raises(BatchRejected) as e:
        bank.ledger.append(
            [bank.bank_entry("institution.registered", good), bank.bank_entry(bad[0], bad[1])]
        )
    assert [i["index"] for i in e.value.items] == [1]
    assert bank.ledger.head().size == size
    assert "INS-NEW" not in bank.ledger.registry().institutions


def test_the_registry_use_cases_report_the_schema_code(strict_bank: Bank) -> None:
    bank = strict_bank
    size = bank.ledger.head().size
    # the use cases build well-formed bodies themselves; go round their checks to show the
    # code their callers see when the ledger refuses a body
    with pytest.raises(ConflictError) as e:
        svc._append_registry(
            bank,
            "institution.closed",
            {"institution_id": "BANK", "closed_on": "yesterday", "custodian": "BANK"},
        )
    assert e.value.code == "registry.schema"
    assert bank.ledger.head().size == size
    svc.register_institution(
        bank,
        "INS-OK",
        kind="college",
        name_zh="好学院",
        name_en="Good College",
        public_keys=[Ed25519Signer.from_seed(b"\x0a" * 32).public_bytes],
    )
    assert bank.ledger.head().size == size + 1
    svc.close_institution(bank, "INS-OK", closed_on=date(2020, 1, 1), custodian="BANK")
    assert bank.ledger.head().size == size + 2


def test_ledger_only_mode_does_not_check_bodies(
    settings: Settings, clock: FixedClock, produced: dict[str, list[dict[str, Any]]]
) -> None:
    init_home(settings, clock=clock, validate_records=False).close()
    bank = open_bank(settings, clock=clock, validate_records=False)
    try:
        voided = copy.deepcopy(produced["conversion.voided"][0])
        voided["grant_no"] = "zero"
        size = bank.ledger.head().size
        bank.ledger.append([bank.bank_entry("conversion.voided", voided)])
        assert bank.ledger.head().size == size + 1
    finally:
        bank.close()


def test_a_float_never_reaches_the_ledger(strict_bank: Bank) -> None:
    """Floats are refused before the schema: the entry cannot even be encoded (JCS, integers
    only); the schemas refuse them too (tests/unit/test_bank_body_schemas.py)."""
    with pytest.raises(InvalidInputError) as e:
        strict_bank.bank_entry("conversion.voided", {"grant_no": 0.0})
    assert e.value.code == "input.float"
