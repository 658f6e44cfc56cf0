"""Ed25519 primitives, key ids and C2SP key strings (creditbank.core.signing).

Key strings are the published *test* keys from the tlog vectors (golang/mod
sumdb/note/note_test.go and our e2e re-keying of the same seed); they are copied here so unit
tests need no files. Never use them for anything but tests.
"""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from creditbank.core.signing import (
    Ed25519Signer,
    VerifierKey,
    b64decode,
    b64encode,
    entry_key_id,
    format_signer_key,
    format_verifier_key,
    load_public_key,
    note_key_id,
    parse_signer_key,
    parse_verifier_key,
    verify_signature,
)
from creditbank.errors import InvalidInputError, SignatureError

PETER_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
E2E_SKEY = (
    "PRIVATE+KEY+example.com/lcb-test-log+03a07313+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
)
E2E_VKEY = "example.com/lcb-test-log+03a07313+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
PUBLISHED_VKEYS = [
    PETER_VKEY,
    E2E_VKEY,
    "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop",
    "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",
    "sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8",
    "monkeys+db4d9f7e+AULaJMvTtDLHPUcUrjdDad9vDlh/PTfC2VV60JUtCfWT",
]

# RFC 8032 §7.1, tests 1-3: (secret seed, public key, message, signature), hex.
RFC8032 = [
    (
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        "",
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
    ),
    (
        "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
        "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        "72",
        "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
    ),
    (
        "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
        "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
        "af82",
        "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
    ),
]


# --- RFC 8032 ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("seed", "public", "message", "signature"), RFC8032)
def test_rfc8032_vectors(seed: str, public: str, message: str, signature: str) -> None:
    signer = Ed25519Signer.from_seed(bytes.fromhex(seed))
    assert signer.public_bytes.hex() == public
    assert signer.seed.hex() == seed
    sig = signer.sign(bytes.fromhex(message))
    assert sig.hex() == signature
    verify_signature(bytes.fromhex(public), bytes.fromhex(message), sig)
    verify_signature(load_public_key(bytes.fromhex(public)), bytes.fromhex(message), sig)


def test_rfc8032_test1_rejects_changes() -> None:
    seed, public, _, signature = RFC8032[0]
    pub, sig = bytes.fromhex(public), bytes.fromhex(signature)
    with pytest.raises(SignatureError):
        verify_signature(pub, b"\x00", sig)  # another message
    for pos in (0, 31, 32, 63):
        bad = bytearray(sig)
        bad[pos] ^= 0x01
        with pytest.raises(SignatureError):
            verify_signature(pub, b"", bytes(bad))
    other = Ed25519Signer.from_seed(bytes.fromhex(RFC8032[1][0])).public_bytes
    with pytest.raises(SignatureError):
        verify_signature(other, b"", sig)
    for wrong_len in (sig[:63], sig + b"\x00", b""):
        with pytest.raises(SignatureError):
            verify_signature(pub, b"", wrong_len)
    assert Ed25519Signer.from_seed(bytes.fromhex(seed)).sign(b"") == sig  # deterministic


def test_bad_seed_and_public_key_lengths() -> None:
    for seed in (b"", b"\x00" * 31, b"\x00" * 33):
        with pytest.raises(InvalidInputError) as e:
            Ed25519Signer.from_seed(seed)
        assert e.value.code == "key.bad_seed"
    for pub in (b"", b"\x00" * 31, b"\x00" * 33):
        with pytest.raises(InvalidInputError) as e:
            load_public_key(pub)
        assert e.value.code == "key.bad_public"
        with pytest.raises(InvalidInputError):
            verify_signature(pub, b"", b"\x00" * 64)


def test_signer_wraps_a_cryptography_key() -> None:
    key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(RFC8032[0][0]))
    assert Ed25519Signer(key).public_bytes.hex() == RFC8032[0][1]


# --- key ids ----------------------------------------------------------------------------------
def test_entry_key_id() -> None:
    pub = bytes.fromhex(RFC8032[0][1])
    kid = entry_key_id(pub)
    assert kid.startswith("ed25519:")
    assert len(kid) == len("ed25519:") + 16
    assert kid == entry_key_id(pub)
    assert kid != entry_key_id(bytes.fromhex(RFC8032[1][1]))


def test_note_key_id_of_published_keys() -> None:
    name, signer = parse_signer_key(PETER_SKEY)
    assert note_key_id(name, signer.public_bytes).hex() == "c74f20a3"
    # same key, other name: other id (the name is hashed in)
    assert note_key_id("example.com/lcb-test-log", signer.public_bytes).hex() == "03a07313"


# --- key strings ------------------------------------------------------------------------------
@pytest.mark.parametrize("text", PUBLISHED_VKEYS)
def test_published_verifier_keys_round_trip(text: str) -> None:
    key = parse_verifier_key(text)
    assert str(key) == text
    assert format_verifier_key(key.name, key.public) == text
    assert key.key_id == note_key_id(key.name, key.public)
    assert len(key.public) == 32
    assert isinstance(key, VerifierKey)


@pytest.mark.parametrize(("skey", "vkey"), [(PETER_SKEY, PETER_VKEY), (E2E_SKEY, E2E_VKEY)])
def test_published_signer_keys_round_trip(skey: str, vkey: str) -> None:
    name, signer = parse_signer_key(skey)
    assert format_signer_key(name, signer.seed) == skey
    assert format_verifier_key(name, signer.public_bytes) == vkey
    assert parse_verifier_key(vkey).public == signer.public_bytes
    assert parse_signer_key(skey + "\n")[0] == name  # key files end with a newline


def test_verifier_key_with_mismatched_key_id_is_rejected() -> None:
    name, kid, key = PETER_VKEY.split("+")
    for bad in (
        f"{name}+{'00000000'}+{key}",
        f"{name}+{kid[:-1] + ('0' if kid[-1] != '0' else '1')}+{key}",
        f"example.com/lcb-test-log+{kid}+{key}",  # right key, other name
        f"{name}+03a07313+{key}",  # the id of the same key under another name
        f"{name}+{kid}+{PUBLISHED_VKEYS[2].split('+')[2]}",  # other key, same name and id
    ):
        with pytest.raises(InvalidInputError) as e:
            parse_verifier_key(bad)
        assert e.value.code == "key.bad_vkey"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "PeterNeumann",
        "PeterNeumann+c74f20a3",
        "+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # empty name
        "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # space
        "PeterNeumann+C74F20A3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # upper hex
        "PeterNeumann+c74f20a+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # 7 hex
        "PeterNeumann+c74f20ag+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # not hex
        "PeterNeumann+c74f20a3+Ahpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # algorithm 2
        "PeterNeumann+c74f20a3+Gpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # no algorithm
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWAA==",  # 34 bytes
    ],
)
def test_malformed_verifier_keys(text: str) -> None:
    with pytest.raises(InvalidInputError):
        parse_verifier_key(text)


@pytest.mark.parametrize(
    "key_b64",
    [
        "ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TX",  # non-canonical: trailing bits set
        "ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10T",  # missing padding / truncated
        "ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq_LDE4izWy10TW",  # url-safe alphabet
        "ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW\n",  # trailing newline
        " ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # leading space
        "ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWé",  # non-ASCII
    ],
)
def test_verifier_key_bad_base64(key_b64: str) -> None:
    with pytest.raises(InvalidInputError) as e:
        parse_verifier_key(f"PeterNeumann+c74f20a3+{key_b64}")
    assert e.value.code in {"input.base64", "key.bad_vkey"}


@pytest.mark.parametrize(
    "text",
    [
        "PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz",  # no prefix
        "PRIVATE+KEY+PeterNeumann+c74f20a3",
        "PRIVATE+KEY+PeterNeumann+00000000+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz",
        "PRIVATE+KEY+EnochRoot+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz",
        "PRIVATE+KEY+PeterNeumann+c74f20a3+AoEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz",
        "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDF",
        "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr-Y7hfZx09iUvxdXHKDFz",
    ],
)
def test_malformed_signer_keys(text: str) -> None:
    with pytest.raises(InvalidInputError):
        parse_signer_key(text)


def test_signer_key_name_must_be_valid() -> None:
    # A name that could never be a verifier key name is refused even when its id matches.
    _, signer = parse_signer_key(PETER_SKEY)
    for name in ("Peter Neumann", "Peter\tNeumann", "Peter\u00a0Neumann"):
        kid = note_key_id(name, signer.public_bytes).hex()
        seed_b64 = b64encode(b"\x01" + signer.seed)
        with pytest.raises(InvalidInputError):
            parse_signer_key(f"PRIVATE+KEY+{name}+{kid}+{seed_b64}")
        with pytest.raises(InvalidInputError):
            format_signer_key(name, signer.seed)
        with pytest.raises(InvalidInputError):
            format_verifier_key(name, signer.public_bytes)


@pytest.mark.parametrize("name", ["", "a+b", "a b", "a\nb", "a\u2028b", "\u200b"])
def test_invalid_key_names(name: str) -> None:
    pub = bytes.fromhex(RFC8032[0][1])
    with pytest.raises(InvalidInputError) as e:
        format_verifier_key(name, pub)
    assert e.value.code == "key.bad_name"


# --- strict base64 ----------------------------------------------------------------------------
@pytest.mark.parametrize("raw", [b"", b"f", b"fo", b"foo", bytes(range(256))])
def test_b64_round_trip(raw: bytes) -> None:
    text = b64encode(raw)
    assert text == base64.b64encode(raw).decode()
    assert b64decode(text) == raw


@pytest.mark.parametrize(
    "text", ["Zg", "Zg=", "Zh==", "Zm9=", "Zm 9v", "Zm9v\n", "Zm9v=", "Zm-v", "Zm_v", "Zm9vé", "=="]
)
def test_b64_rejects_non_canonical(text: str) -> None:
    with pytest.raises(InvalidInputError, match="what-it-was") as e:
        b64decode(text, what="what-it-was")
    assert e.value.code == "input.base64"
