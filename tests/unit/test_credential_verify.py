"""Offline verification of credentials: every check passes on a genuine credential, and each
named check breaks when the thing it guards changes (re-signed by the bank where needed, so
the check under test is the only defence)."""

from __future__ import annotations

import base64
import copy
import dataclasses
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from credential_fixtures import (
    BANK_ID,
    LOG_ORIGIN,
    T_ISSUE,
    T_REG,
    T_UNTIL,
    World,
    make_world,
    signer,
)

from creditbank.core.checkpoint import Checkpoint, sign_checkpoint
from creditbank.core.credentials.did import did_document
from creditbank.core.credentials.model import CertificateContent
from creditbank.core.credentials.verify import (
    Check,
    CredentialCheckError,
    RegistryKeys,
    check_credential,
    failed_checks,
    verify_credential,
)
from creditbank.core.entries import build_entry, parse_entry, sign_entry
from creditbank.core.registry import replay
from creditbank.core.signing import Ed25519Signer, entry_key_id
from creditbank.errors import InvalidInputError


@pytest.fixture(scope="module")
def world() -> World:
    return make_world()


@pytest.fixture(scope="module")
def genuine(world: World) -> dict[str, Any]:
    doc: dict[str, Any] = world.transcript_credential()
    return doc


def _check(world: World, doc: dict[str, Any], **kw: Any) -> list[Check]:
    args: dict[str, Any] = {
        "did_document": world.did_document,
        "keys": world.keys,
        "log_key": world.log_key,
        "now": T_ISSUE,
    }
    args.update(kw)
    return check_credential(doc, **args)


def _resign(world: World, doc: dict[str, Any]) -> dict[str, Any]:
    unsigned = {k: v for k, v in doc.items() if k != "proof"}
    signed: dict[str, Any] = world.sign(unsigned)
    return signed


def _evidence(doc: dict[str, Any], index: int) -> dict[str, Any]:
    return next(e for e in doc["evidence"] if e["entryIndex"] == index)


def _record(doc: dict[str, Any], index: int) -> dict[str, Any]:
    return next(r for r in doc["credentialSubject"]["records"] if r["entryIndex"] == index)


def test_genuine_transcript_and_certificates_verify(world: World, genuine: dict[str, Any]) -> None:
    for doc in (
        genuine,
        world.certificate_credential(world.certificate_record),
        world.certificate_credential(world.certificate_conversion),
    ):
        checks = verify_credential(
            doc,
            did_document=world.did_document,
            keys=world.keys,
            log_key=world.log_key,
            now=T_ISSUE,
        )
        assert all(c.ok for c in checks)
    names = {c.name for c in _check(world, genuine)}
    first = world.records[0].entry_idx
    decision = world.conversions[0].entry_idx
    assert {
        "credential.issuer",
        "credential.proof",
        "credential.validity",
        f"checkpoint[{world.records[0].evidence.tree_size}].signature",
        f"record[{first}].institution_signature",
        f"record[{first}].inclusion",
        f"record[{first}].name_commitment",
        f"record[{first}].facts",
        f"conversion[{decision}].bank_signature",
        f"conversion[{decision}].inclusion",
        f"conversion[{decision}].facts",
    } <= names
    # every record shown gets all four checks
    for rec in world.records:
        for what in ("institution_signature", "inclusion", "name_commitment", "facts"):
            assert f"record[{rec.entry_idx}].{what}" in names


def _edit_entry(doc: dict[str, Any], index: int, old: bytes, new: bytes) -> None:
    ev = _evidence(doc, index)
    raw = base64.b64decode(ev["entry"])
    assert raw.count(old) == 1
    ev["entry"] = base64.b64encode(raw.replace(old, new)).decode()


def test_edited_entry_breaks_signature_inclusion_and_facts(
    world: World, genuine: dict[str, Any]
) -> None:
    idx = world.records[0].entry_idx
    doc = copy.deepcopy(genuine)
    _edit_entry(doc, idx, b'"grade":82', b'"grade":92')
    failed = failed_checks(_check(world, doc))
    assert failed == [
        "credential.proof",
        f"record[{idx}].institution_signature",
        f"record[{idx}].inclusion",
        f"record[{idx}].facts",
    ]
    resigned = failed_checks(_check(world, _resign(world, doc)))
    assert "credential.proof" not in resigned
    assert f"record[{idx}].institution_signature" in resigned


def test_entry_edited_to_match_the_display_still_fails(
    world: World, genuine: dict[str, Any]
) -> None:
    idx = world.records[0].entry_idx
    doc = copy.deepcopy(genuine)
    _edit_entry(doc, idx, b'"grade":82', b'"grade":92')
    _record(doc, idx)["payload"]["grade"] = 92
    failed = failed_checks(_check(world, _resign(world, doc)))
    assert failed == [f"record[{idx}].institution_signature", f"record[{idx}].inclusion"]


Mutation = Callable[[World, dict[str, Any]], str]


def _path_byte(world: World, doc: dict[str, Any]) -> str:
    idx = world.records[2].entry_idx
    ev = _evidence(doc, idx)
    h = bytearray(base64.b64decode(ev["inclusionPath"][0]))
    h[5] ^= 1
    ev["inclusionPath"][0] = base64.b64encode(bytes(h)).decode()
    return f"record[{idx}].inclusion"


def _path_of_another_index(world: World, doc: dict[str, Any]) -> str:
    a, b = world.records[0].entry_idx, world.records[1].entry_idx
    _evidence(doc, a)["inclusionPath"] = _evidence(doc, b)["inclusionPath"]
    return f"record[{a}].inclusion"


def _tree_size(world: World, doc: dict[str, Any]) -> str:
    idx = world.records[1].entry_idx
    _evidence(doc, idx)["treeSize"] += 1
    return f"record[{idx}].inclusion"


def _salt(world: World, doc: dict[str, Any]) -> str:
    idx = world.records[3].entry_idx
    ev = _evidence(doc, idx)
    salt = bytearray(base64.b64decode(ev["salt"]))
    salt[0] ^= 0x80
    ev["salt"] = base64.b64encode(bytes(salt)).decode()
    return f"record[{idx}].name_commitment"


def _name_on_record(world: World, doc: dict[str, Any]) -> str:
    idx = world.records[1].entry_idx
    _evidence(doc, idx)["nameOnRecord"] = "Wang Jianguo "
    _record(doc, idx)["nameOnRecord"] = "Wang Jianguo "
    return f"record[{idx}].name_commitment"


def _displayed_payload(world: World, doc: dict[str, Any]) -> str:
    idx = world.records[0].entry_idx
    _record(doc, idx)["payload"]["credits_centi"] = 500
    return f"record[{idx}].facts"


def _displayed_institution(world: World, doc: dict[str, Any]) -> str:
    idx = world.records[0].entry_idx
    _record(doc, idx)["institutionId"] = "INS-COL"
    return f"record[{idx}].facts"


def _displayed_institution_name(world: World, doc: dict[str, Any]) -> str:
    idx = world.records[0].entry_idx
    _record(doc, idx)["institutionNameEn"] = "Donghu Open Universities"
    return f"record[{idx}].facts"


def _custodian_hidden(world: World, doc: dict[str, Any]) -> str:
    rec = next(r for r in world.records if r.custodian is not None)
    shown = _record(doc, rec.entry_idx)
    for key in ("custodianId", "custodianNameZh", "custodianNameEn"):
        del shown[key]
    return f"record[{rec.entry_idx}].facts"


def _displayed_revocation_reason(world: World, doc: dict[str, Any]) -> str:
    idx = world.records[3].entry_idx
    _record(doc, idx)["revocationReason"] = "撤销"
    return f"record[{idx}].facts"


def _name_differs_flag(world: World, doc: dict[str, Any]) -> str:
    idx = world.records[1].entry_idx
    _record(doc, idx)["nameDiffers"] = False
    return f"record[{idx}].facts"


def _grant_credits(world: World, doc: dict[str, Any]) -> str:
    doc["credentialSubject"]["conversions"][0]["grants"][0]["creditsCenti"] = 600
    return f"conversion[{world.conversions[0].entry_idx}].facts"


def _grant_explanation(world: World, doc: dict[str, Any]) -> str:
    doc["credentialSubject"]["conversions"][0]["grants"][1]["explanationEn"] += "!"
    return f"conversion[{world.conversions[0].entry_idx}].facts"


def _void_hidden(world: World, doc: dict[str, Any]) -> str:
    doc["credentialSubject"]["conversions"][0]["grants"][1]["voided"]["voidedOn"] = "2025-04-28"
    return f"conversion[{world.conversions[0].entry_idx}].facts"


def _learner(world: World, doc: dict[str, Any]) -> str:
    doc["credentialSubject"]["learnerId"] = "LRN-ZZZZZZZZZZZZZZZZZZ"
    return f"record[{world.records[0].entry_idx}].facts"


def _checkpoint_by_another_key(world: World, doc: dict[str, Any]) -> str:
    size = world.records[0].evidence.tree_size
    text = world.records[0].evidence.checkpoint
    body, _, _ = text.partition("\n\n")
    cp = Checkpoint(LOG_ORIGIN, size, base64.b64decode(body.split("\n")[2]))
    forged = sign_checkpoint(cp, LOG_ORIGIN, Ed25519Signer.from_seed(bytes([77]) * 32))
    for ev in doc["evidence"]:
        ev["checkpoint"] = forged
    return f"checkpoint[{size}].signature"


def _checkpoint_of_another_tree(world: World, doc: dict[str, Any]) -> str:
    size = world.records[0].evidence.tree_size
    cp = Checkpoint(LOG_ORIGIN, size, bytes(32))
    other = sign_checkpoint(cp, LOG_ORIGIN, Ed25519Signer.from_seed(bytes([9]) * 32))
    idx = world.records[0].entry_idx
    _evidence(doc, idx)["checkpoint"] = other
    return f"record[{idx}].inclusion"


def _evidence_removed(world: World, doc: dict[str, Any]) -> str:
    idx = world.records[4].entry_idx
    doc["evidence"] = [e for e in doc["evidence"] if e["entryIndex"] != idx]
    return f"record[{idx}].evidence"


def _entry_not_base64(world: World, doc: dict[str, Any]) -> str:
    doc["evidence"][0]["entry"] = doc["evidence"][0]["entry"][:-4] + "@@@@"
    return "evidence[0].format"


MUTATIONS: dict[str, Mutation] = {
    "path byte": _path_byte,
    "path of another index": _path_of_another_index,
    "tree size": _tree_size,
    "salt": _salt,
    "name on record": _name_on_record,
    "displayed payload": _displayed_payload,
    "displayed institution": _displayed_institution,
    "revocation reason": _displayed_revocation_reason,
    "institution name": _displayed_institution_name,
    "custodian hidden": _custodian_hidden,
    "name differs flag": _name_differs_flag,
    "grant credits": _grant_credits,
    "grant explanation": _grant_explanation,
    "void date": _void_hidden,
    "learner": _learner,
    "checkpoint by another key": _checkpoint_by_another_key,
    "checkpoint of another tree": _checkpoint_of_another_tree,
    "evidence removed": _evidence_removed,
    "entry not base64": _entry_not_base64,
}


@pytest.mark.parametrize("name", sorted(MUTATIONS))
def test_each_check_breaks(world: World, genuine: dict[str, Any], name: str) -> None:
    doc = copy.deepcopy(genuine)
    expected = MUTATIONS[name](world, doc)
    assert "credential.proof" in failed_checks(_check(world, doc))  # as received: proof breaks
    failed = failed_checks(_check(world, _resign(world, doc)))  # even if the bank re-signs
    assert expected in failed, failed
    assert "credential.proof" not in failed
    with pytest.raises(CredentialCheckError) as e:
        verify_credential(
            _resign(world, doc),
            did_document=world.did_document,
            keys=world.keys,
            log_key=world.log_key,
        )
    assert expected in e.value.extra["failed"]


def test_issuer_key_and_validity(world: World, genuine: dict[str, Any]) -> None:
    other_bank = did_document(
        world.issuer.did, Ed25519Signer.from_seed(bytes([5]) * 32).public_bytes
    )
    assert failed_checks(_check(world, genuine, did_document=other_bank)) == ["credential.proof"]
    stranger = did_document("did:web:bank.example", world.bank_signer.public_bytes)
    assert failed_checks(_check(world, genuine, did_document=stranger))[:2] == [
        "credential.issuer",
        "credential.proof",
    ]
    assert failed_checks(_check(world, genuine, now=T_UNTIL)) == ["credential.validity"]
    assert failed_checks(_check(world, genuine, now=T_ISSUE - timedelta(seconds=1))) == [
        "credential.validity"
    ]
    assert failed_checks(_check(world, genuine, now=T_UNTIL - timedelta(seconds=1))) == []


def _registry_with(world: World, extra: list[bytes], drop_type: str | None = None) -> RegistryKeys:
    entries = [parse_entry(e) for e in world.entries if parse_entry(e).type != drop_type]
    return RegistryKeys(replay(BANK_ID, entries + [parse_entry(e) for e in extra]))


def _bank_entry(type_: str, body: dict[str, Any], at: Any) -> bytes:
    s = signer(BANK_ID)
    return sign_entry(build_entry(type_, BANK_ID, entry_key_id(s.public_bytes), at, body), s)


def test_key_revoked_before_the_entry_fails_the_signature(
    world: World, genuine: dict[str, Any]
) -> None:
    kid = entry_key_id(signer("INS-COL").public_bytes)
    revoke = _bank_entry(
        "institution.key_revoked",
        {"institution_id": "INS-COL", "key_id": kid, "effective_at": "2024-03-01T00:00:00Z"},
        T_REG + timedelta(days=100),
    )
    keys = _registry_with(world, [revoke])
    failed = failed_checks(_check(world, genuine, keys=keys))
    col = [r.entry_idx for r in world.records if r.institution.institution_id == "INS-COL"]
    assert failed == [f"record[{i}].institution_signature" for i in col]


def test_custodian_must_be_the_owners_custodian(world: World, genuine: dict[str, Any]) -> None:
    closed = _bank_entry(
        "institution.closed",
        {"institution_id": "INS-OLD", "closed_on": "2024-02-01", "custodian": "INS-COL"},
        T_REG + timedelta(days=30),
    )
    keys = _registry_with(world, [closed], drop_type="institution.closed")
    custodial = next(r for r in world.records if r.institution.institution_id == "INS-OLD")
    assert failed_checks(_check(world, genuine, keys=keys)) == [
        f"record[{custodial.entry_idx}].institution_signature",
        f"record[{custodial.entry_idx}].facts",  # the credential names another custodian
    ]


def test_unknown_institution_fails_its_records(world: World, genuine: dict[str, Any]) -> None:
    keys = RegistryKeys(
        replay(
            BANK_ID,
            [
                parse_entry(e)
                for e in world.entries
                if not (parse_entry(e).type == "institution.registered" and b"INS-OU" in e)
                and parse_entry(e).type != "institution.closed"
            ],
        )
    )
    failed = failed_checks(_check(world, genuine, keys=keys))
    ou = [r.entry_idx for r in world.records if r.evidence.entry.find(b'"issuer":"INS-OU"') >= 0]
    assert ou
    assert all(f"record[{i}].institution_signature" in failed for i in ou)


def test_exam_exemption_certificate(world: World) -> None:
    assert world.exam_conversion is not None
    content = CertificateContent(world.holder, conversion=world.exam_conversion)
    doc = world.certificate_credential(content)
    (conv,) = doc["credentialSubject"]["conversions"]
    assert conv["conversionType"] == "exam_exemption"
    assert conv["exam"]["examPart"] == "theory"
    assert conv["exam"]["basisEntry"] == world.records[1].entry_idx
    assert doc["credentialSubject"]["achievement"]["name"].startswith("考试免考认定")
    assert failed_checks(_check(world, doc)) == []
    tampered = copy.deepcopy(doc)
    tampered["credentialSubject"]["conversions"][0]["exam"]["examPart"] = "practice"
    idx = world.exam_conversion.entry_idx
    assert failed_checks(_check(world, _resign(world, tampered))) == [f"conversion[{idx}].facts"]
    exam = world.exam_conversion.exam
    assert exam is not None
    wrong = dataclasses.replace(
        world.exam_conversion, exam=dataclasses.replace(exam, exam_part="practice")
    )
    with pytest.raises(InvalidInputError):
        world.certificate_credential(CertificateContent(world.holder, conversion=wrong))
