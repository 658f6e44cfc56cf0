"""Our credentials verify with the independent ../shared/tools/vc-verify (JSON-LD check on),
and a one-character change to any field is rejected by it."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from credential_fixtures import BASE_URL, World, make_world

from creditbank.core.credentials.context import context_bytes, context_url
from creditbank.core.status_list import StatusList, build_status_list_credential
from interop.conftest import VcVerify, VcVerifyBatch

NOW = "2025-09-02T00:00:00Z"
CONTEXT_URL = context_url(BASE_URL)


def _bytes(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, ensure_ascii=False).encode("utf-8")


@pytest.fixture(scope="module")
def world() -> World:
    return make_world()


@pytest.fixture(scope="module")
def context_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ctx") / "creditbank-v1.jsonld"
    path.write_bytes(context_bytes())
    return path


@pytest.mark.parametrize("which", ["transcript", "record certificate", "decision certificate"])
def test_verifies_with_the_cli(
    world: World, context_file: Path, vc_verify: VcVerify, which: str
) -> None:
    if which == "transcript":
        doc = world.transcript_credential()
    elif which == "record certificate":
        doc = world.certificate_credential(world.certificate_record)
    else:
        doc = world.certificate_credential(world.certificate_conversion)
    verdict = vc_verify(_bytes(doc), world.did_document, context_file, now=NOW)
    assert verdict["verified"] is True, verdict["errors"]
    assert verdict["checks"]["jsonld"] == {"ok": True}
    (proof,) = verdict["checks"]["proofs"]
    assert proof["verified"] is True
    assert proof["cryptosuite"] == "eddsa-jcs-2022"
    assert CONTEXT_URL in verdict["documentsLoaded"]


@pytest.mark.parametrize(
    "name",
    [
        "Аблимит·Турсун",
        "Abdurehim·Tursun",
        "Maximilian Alexander Wolfgang von Hohenzollern-Sigmaringen",
    ],
)
def test_other_names_verify(context_file: Path, vc_verify_batch: VcVerifyBatch, name: str) -> None:
    w = make_world(name=name)
    docs = [w.transcript_credential(), w.certificate_credential(w.certificate_record)]
    assert docs[0]["credentialSubject"]["name"] == name
    verdicts = vc_verify_batch(
        [_bytes(d) for d in docs], w.did_document, context_file, context_url=CONTEXT_URL, now=NOW
    )
    assert [v["verified"] for v in verdicts] == [True, True], [v["errors"] for v in verdicts]


def test_sixty_record_transcript_verifies(
    context_file: Path, vc_verify_batch: VcVerifyBatch
) -> None:
    w = make_world(extra_records=53)
    doc = w.transcript_credential()
    assert len(doc["credentialSubject"]["records"]) == 60
    (verdict,) = vc_verify_batch(
        [_bytes(doc)], w.did_document, context_file, context_url=CONTEXT_URL, now=NOW
    )
    assert verdict["verified"] is True, verdict["errors"]


# --- one character changed anywhere: rejected -----------------------------------------------------
def _flip(text: str) -> str:
    """Change one character (the last letter or digit) of a string."""
    for i in range(len(text) - 1, -1, -1):
        c = text[i]
        if c.isdigit():
            return text[:i] + str((int(c) + 1) % 10) + text[i + 1 :]
        if c.isalpha():
            return text[:i] + ("b" if c == "a" else "a") + text[i + 1 :]
    return text + "x"


Path_ = tuple[str | int, ...]
FIELDS: dict[str, Path_] = {
    "holder name": ("credentialSubject", "name"),
    "learner id": ("credentialSubject", "learnerId"),
    "record title": ("credentialSubject", "records", 0, "titleZh"),
    "record payload term": ("credentialSubject", "records", 0, "payload", "term"),
    "record state": ("credentialSubject", "records", 3, "state"),
    "name on record": ("credentialSubject", "records", 1, "nameOnRecord"),
    "custodian": ("credentialSubject", "records", 4, "custodianNameEn"),
    "grant explanation": ("credentialSubject", "conversions", 0, "grants", 0, "explanationEn"),
    "void reason": ("credentialSubject", "conversions", 0, "grants", 1, "voided", "voidReason"),
    "total program": ("credentialSubject", "totals", 0, "programId"),
    "evidence entry": ("evidence", 0, "entry"),
    "evidence checkpoint": ("evidence", 2, "checkpoint"),
    "evidence salt": ("evidence", 1, "salt"),
    "issuer name": ("issuer", "name"),
    "valid from": ("validFrom",),
    "valid until": ("validUntil",),
    "status index": ("credentialStatus", "statusListIndex"),
    "verification url": ("verificationUrl",),
    "credential id": ("id",),
    "achievement name": ("credentialSubject", "achievement", "name"),
    "proof created": ("proof", "created"),
    "proof value": ("proof", "proofValue"),
}
INT_FIELDS: dict[str, Path_] = {
    "record entry index": ("credentialSubject", "records", 0, "entryIndex"),
    "grant credits": ("credentialSubject", "conversions", 0, "grants", 0, "creditsCenti"),
    "room left": ("credentialSubject", "totals", 0, "roomLeftCenti"),
    "tree size": ("evidence", 0, "treeSize"),
}


def _set(doc: Any, path: Path_, change: Any) -> None:
    *parents, last = path
    for p in parents:
        doc = doc[p]
    doc[last] = change(doc[last])


@pytest.fixture(scope="module")
def tamper_verdicts(
    world: World, context_file: Path, vc_verify_batch: VcVerifyBatch
) -> dict[str, dict[str, Any]]:
    genuine = world.transcript_credential()
    cases: dict[str, dict[str, Any]] = {"genuine": genuine}
    for name, path in FIELDS.items():
        doc = copy.deepcopy(genuine)
        _set(doc, path, _flip)
        cases[name] = doc
    for name, path in INT_FIELDS.items():
        doc = copy.deepcopy(genuine)
        _set(doc, path, lambda v: v + 1)
        cases[name] = doc
    undefined = copy.deepcopy(genuine)
    undefined["credentialSubject"]["nickname"] = "老王"
    cases["undefined term (re-signed)"] = world.sign(
        {k: v for k, v in undefined.items() if k != "proof"}
    )
    verdicts = vc_verify_batch(
        [_bytes(d) for d in cases.values()],
        world.did_document,
        context_file,
        context_url=CONTEXT_URL,
        now=NOW,
    )
    return dict(zip(cases, verdicts, strict=True))


def test_genuine_in_batch_verifies(tamper_verdicts: dict[str, dict[str, Any]]) -> None:
    assert tamper_verdicts["genuine"]["verified"] is True, tamper_verdicts["genuine"]["errors"]


@pytest.mark.parametrize("field", sorted(FIELDS) + sorted(INT_FIELDS))
def test_one_character_change_is_rejected(
    tamper_verdicts: dict[str, dict[str, Any]], field: str
) -> None:
    verdict = tamper_verdicts[field]
    assert verdict["verified"] is False
    assert verdict["errors"]


def test_jsonld_safe_mode_is_really_on(tamper_verdicts: dict[str, dict[str, Any]]) -> None:
    verdict = tamper_verdicts["undefined term (re-signed)"]
    assert verdict["verified"] is False
    assert verdict["checks"]["jsonld"]["ok"] is False
    assert verdict["checks"]["signatureAndStructure"] == {"ok": True}


def test_status_list_credential_verifies(
    world: World, context_file: Path, vc_verify_batch: VcVerifyBatch
) -> None:
    url = f"{BASE_URL}/api/v1/status/1"
    doc = world.sign(
        build_status_list_credential(
            StatusList.with_set([4242]),
            list_credential_url=url,
            issuer=world.issuer.did,
            valid_from="2025-09-01T08:00:00Z",
        )
    )
    tampered = copy.deepcopy(doc)
    tampered["credentialSubject"]["encodedList"] = StatusList().encode()
    good, bad = vc_verify_batch(
        [_bytes(doc), _bytes(tampered)],
        world.did_document,
        context_file,
        context_url=CONTEXT_URL,
        now=NOW,
    )
    assert good["verified"] is True, good["errors"]
    assert bad["verified"] is False
