"""The W3C ``eddsa-jcs-2022`` test vectors, reproduced byte for byte at every step.

Reads only the copy in ``tests/vectors/vc_di_eddsa/`` (see its PROVENANCE.md): key pair,
unsigned credential, canonical proof configuration, both hashes, the combined hash data,
canonical document, signature (hex and base58btc) and the signed credential.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from creditbank.core.credentials.proof import (
    ProofError,
    b58decode,
    b58encode,
    create_proof,
    hash_data,
    multibase_b58,
    proof_config,
    public_key_from_multibase,
    seed_from_multibase,
    sign_credential,
    verify_credential_proof,
)
from creditbank.core.signing import Ed25519Signer

DIR = Path(__file__).parent / "vc_di_eddsa"
JCS = DIR / "eddsa-jcs-2022"


def _json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _text(name: str) -> str:
    return (JCS / name).read_text(encoding="utf-8").strip()


@pytest.fixture(scope="module")
def keys() -> tuple[Ed25519Signer, bytes]:
    pair = _json(DIR / "keyPair.json")
    signer = Ed25519Signer.from_seed(seed_from_multibase(pair["privateKeyMultibase"]))
    public = public_key_from_multibase(pair["publicKeyMultibase"])
    return signer, public


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    c: dict[str, Any] = _json(JCS / "proofConfigJCS.json")
    return c


def test_key_pair_matches(keys: tuple[Ed25519Signer, bytes]) -> None:
    signer, public = keys
    assert signer.public_bytes == public
    assert multibase_b58(b"\xed\x01" + public) == _json(DIR / "keyPair.json")["publicKeyMultibase"]


def test_proof_configuration_is_built_as_the_vector(config: dict[str, Any]) -> None:
    unsigned = _json(DIR / "unsigned.json")
    built = proof_config(
        unsigned["@context"],
        verification_method=config["verificationMethod"],
        created=config["created"],
    )
    assert built == config


def test_every_intermediate(config: dict[str, Any]) -> None:
    unsigned = _json(DIR / "unsigned.json")
    got = hash_data(config, unsigned)
    assert got.canonical_proof_config == (JCS / "proofCanonJCS.txt").read_bytes().strip()
    assert got.canonical_document == (JCS / "canonDocJCS.txt").read_bytes().strip()
    assert got.proof_config_hash.hex() == _text("proofHashJCS.txt")
    assert got.document_hash.hex() == _text("docHashJCS.txt")
    assert got.hash_data.hex() == _text("combinedHashJCS.txt")
    assert hashlib.sha256(got.canonical_document).digest() == got.document_hash


def test_signature_hex_and_base58(
    keys: tuple[Ed25519Signer, bytes], config: dict[str, Any]
) -> None:
    signer, _ = keys
    data = hash_data(config, _json(DIR / "unsigned.json")).hash_data
    sig = signer.sign(data)
    assert sig.hex() == _text("sigHexJCS.txt")
    assert "z" + b58encode(sig) == _text("sigBTC58JCS.txt")
    assert b58decode(_text("sigBTC58JCS.txt")[1:]) == sig


def test_signed_credential_equals_the_vector(
    keys: tuple[Ed25519Signer, bytes], config: dict[str, Any]
) -> None:
    signer, _ = keys
    signed = sign_credential(
        _json(DIR / "unsigned.json"),
        signer,
        verification_method=config["verificationMethod"],
        created=config["created"],
    )
    expected = _json(JCS / "signedJCS.json")
    assert signed == expected
    assert list(signed["proof"]) == list(expected["proof"])  # member order too
    proof = create_proof(
        _json(DIR / "unsigned.json"),
        signer,
        verification_method=config["verificationMethod"],
        created=config["created"],
    )
    assert proof == expected["proof"]


def test_vector_verifies_and_breaks_on_change(keys: tuple[Ed25519Signer, bytes]) -> None:
    _, public = keys
    signed = _json(JCS / "signedJCS.json")
    verify_credential_proof(signed, public)
    tampered = json.loads(json.dumps(signed))
    tampered["credentialSubject"]["alumniOf"] = "The School of Examplez"
    with pytest.raises(ProofError):
        verify_credential_proof(tampered, public)
    tampered = json.loads(json.dumps(signed))
    tampered["proof"]["created"] = "2023-02-24T23:36:39Z"
    with pytest.raises(ProofError):
        verify_credential_proof(tampered, public)


def test_base58_leading_zeros_round_trip() -> None:
    for data in (b"", b"\0", b"\0\0\x01", b"\xff" * 40, bytes(range(64))):
        assert b58decode(b58encode(data)) == data
    assert b58encode(b"\0\0\x01") == "112"
