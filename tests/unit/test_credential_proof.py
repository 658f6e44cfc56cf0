"""The proof module's own edges: JCS refusals, proof shape refusals."""

from __future__ import annotations

import math
from typing import Any

import pytest
import rfc8785
from credential_fixtures import World, make_world

from creditbank.core.credentials.proof import (
    ProofError,
    b58decode,
    create_proof,
    jcs,
    multibase_b58_decode,
    verify_credential_proof,
)
from creditbank.errors import InvalidInputError


@pytest.mark.parametrize(
    "value",
    [{"a": None, "b": math.nan}, {"a": None, "b": (1, math.inf)}, {"a": 2**60}, {1: "x"}],
)
def test_jcs_refuses_what_jcs_cannot_encode(value: Any) -> None:
    with pytest.raises(InvalidInputError):
        jcs(value)


@pytest.mark.parametrize(
    "value",
    [{"a": None, "b": 1.5}, {"x": "1.5]"}, [1e16, None], {"é": "\u001f😀"}, {"a": -0.0}, 0.0],
)
def test_jcs_equals_the_reference(value: Any) -> None:
    assert jcs(value) == rfc8785.dumps(value)


def test_base58_refuses_foreign_characters() -> None:
    for text in ("0", "O", "I", "l", "abc+"):
        with pytest.raises(InvalidInputError):
            b58decode(text)
    with pytest.raises(InvalidInputError):
        multibase_b58_decode("uABC")


@pytest.fixture(scope="module")
def world() -> World:
    return make_world()


def _signed(world: World) -> dict[str, Any]:
    doc: dict[str, Any] = world.certificate_credential(world.certificate_record)
    return doc


@pytest.mark.parametrize(
    ("change", "why"),
    [
        (lambda p: p.pop("proofValue"), "no proofValue"),
        (lambda p: p.update(cryptosuite="eddsa-rdfc-2022"), "cryptosuite"),
        (lambda p: p.update(type="Ed25519Signature2020"), "type"),
        (lambda p: p.update(proofPurpose="authentication"), "purpose"),
        (lambda p: p.update(proofValue="u" + p["proofValue"][1:]), "multibase"),
        (lambda p: p.update(proofValue="z" + p["proofValue"][2:]), "63 bytes"),
        (lambda p: p.update({"@context": ["https://example.org/other"]}), "context prefix"),
    ],
)
def test_malformed_proofs_are_refused(world: World, change: Any, why: str) -> None:
    doc = _signed(world)
    change(doc["proof"])
    with pytest.raises(ProofError):
        verify_credential_proof(doc, world.bank_signer.public_bytes)


def test_method_and_list_forms(world: World) -> None:
    doc = _signed(world)
    key = world.bank_signer.public_bytes
    with pytest.raises(ProofError):
        verify_credential_proof(doc, key, verification_method="did:web:other#key-1")
    verify_credential_proof({**doc, "proof": [doc["proof"]]}, key)
    with pytest.raises(ProofError):
        verify_credential_proof({**doc, "proof": [doc["proof"], doc["proof"]]}, key)
    with pytest.raises(ProofError):
        verify_credential_proof({k: v for k, v in doc.items() if k != "proof"}, key)
    with pytest.raises(InvalidInputError):
        create_proof(doc, world.bank_signer, verification_method="x", created="y")
    with pytest.raises(InvalidInputError):
        create_proof({"a": 1}, world.bank_signer, verification_method="x", created="y")
