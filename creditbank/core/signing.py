"""Ed25519 signing primitives, key identifiers and C2SP verifier-key strings.

Two key-id schemes live here:

* ``entry_key_id(public)`` names a key that signs ledger entries:
  ``"ed25519:" + hex(SHA-256(raw public key))[:16]`` — independent of any name, so an
  institution's key keeps its id if the institution is renamed.
* ``note_key_id(name, public)`` is the C2SP signed-note key id: the first four bytes of
  ``SHA-256(name || 0x0A || 0x01 || public)``, used in checkpoints and verifier keys.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from typing import Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from creditbank.errors import InvalidInputError, SignatureError

ED25519_ALG = 0x01
SIGNATURE_SIZE = 64
PUBLIC_KEY_SIZE = 32


class Signer(Protocol):
    """Anything that signs bytes with an Ed25519 key it keeps to itself."""

    @property
    def public_bytes(self) -> bytes: ...

    def sign(self, message: bytes) -> bytes: ...


@dataclass(frozen=True, slots=True)
class Ed25519Signer:
    """An in-memory Ed25519 private key."""

    private: Ed25519PrivateKey

    @classmethod
    def from_seed(cls, seed: bytes) -> Ed25519Signer:
        """Build a signer from a 32-byte RFC 8032 seed.

        Raises:
            InvalidInputError: if the seed is not 32 bytes.
        """
        if len(seed) != 32:
            raise InvalidInputError("Ed25519 seed must be 32 bytes", code="key.bad_seed")
        return cls(Ed25519PrivateKey.from_private_bytes(seed))

    @property
    def public_bytes(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )

    @property
    def seed(self) -> bytes:
        return self.private.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )

    def sign(self, message: bytes) -> bytes:
        return self.private.sign(message)


def load_public_key(public: bytes) -> Ed25519PublicKey:
    """Parse a raw 32-byte Ed25519 public key.

    Raises:
        InvalidInputError: if the bytes are not a valid public key.
    """
    if len(public) != PUBLIC_KEY_SIZE:
        raise InvalidInputError("Ed25519 public key must be 32 bytes", code="key.bad_public")
    try:
        return Ed25519PublicKey.from_public_bytes(public)
    except ValueError as e:
        raise InvalidInputError("invalid Ed25519 public key", code="key.bad_public") from e


def verify_signature(public: bytes | Ed25519PublicKey, message: bytes, signature: bytes) -> None:
    """Verify an Ed25519 signature.

    Raises:
        SignatureError: if the signature does not verify.
        InvalidInputError: if the public key is malformed.
    """
    key = public if isinstance(public, Ed25519PublicKey) else load_public_key(public)
    if len(signature) != SIGNATURE_SIZE:
        raise SignatureError("Ed25519 signature must be 64 bytes")
    try:
        key.verify(signature, message)
    except InvalidSignature as e:
        raise SignatureError("signature does not verify") from e


def entry_key_id(public: bytes) -> str:
    """Key id used in ledger entries: ``ed25519:`` + 16 hex digits of SHA-256(public)."""
    return "ed25519:" + hashlib.sha256(public).hexdigest()[:16]


def note_key_id(name: str, public: bytes) -> bytes:
    """C2SP signed-note key id (4 bytes) for an Ed25519 key named ``name``."""
    return hashlib.sha256(name.encode() + b"\n" + bytes([ED25519_ALG]) + public).digest()[:4]


def b64encode(data: bytes) -> str:
    """Standard base64 with padding, as text."""
    return base64.b64encode(data).decode("ascii")


def b64decode(text: str, *, what: str = "value") -> bytes:
    """Strict standard base64 (padding required, no stray characters).

    Raises:
        InvalidInputError: if ``text`` is not canonical standard base64.
    """
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError) as e:
        raise InvalidInputError(f"{what} is not valid base64", code="input.base64") from e
    if base64.b64encode(raw).decode("ascii") != text:
        raise InvalidInputError(f"{what} is not canonical base64", code="input.base64")
    return raw


def _valid_key_name(name: str) -> bool:
    return bool(name) and all(c > " " and c != "+" for c in name) and name.isprintable()


def format_verifier_key(name: str, public: bytes) -> str:
    """C2SP verifier key string ``name+hex8+base64(0x01 || public)``.

    Raises:
        InvalidInputError: if the name is not a valid key name.
    """
    if not _valid_key_name(name):
        raise InvalidInputError(f"invalid key name {name!r}", code="key.bad_name")
    kid = note_key_id(name, public).hex()
    return f"{name}+{kid}+{b64encode(bytes([ED25519_ALG]) + public)}"


@dataclass(frozen=True, slots=True)
class VerifierKey:
    """A parsed C2SP Ed25519 verifier key."""

    name: str
    key_id: bytes  # 4 bytes
    public: bytes  # 32 bytes raw Ed25519

    def __str__(self) -> str:
        return format_verifier_key(self.name, self.public)


def parse_verifier_key(text: str) -> VerifierKey:
    """Parse ``name+hex8+base64`` and check the key id matches name and key.

    Raises:
        InvalidInputError: on any syntax, algorithm or key-id mismatch.
    """
    parts = text.split("+", 2)
    if len(parts) != 3:
        raise InvalidInputError("verifier key must be name+hash+key", code="key.bad_vkey")
    name, kid_hex, key_b64 = parts
    if not _valid_key_name(name):
        raise InvalidInputError(f"invalid key name {name!r}", code="key.bad_vkey")
    if len(kid_hex) != 8 or any(c not in "0123456789abcdef" for c in kid_hex):
        raise InvalidInputError("key id must be 8 lowercase hex digits", code="key.bad_vkey")
    raw = b64decode(key_b64, what="verifier key")
    if len(raw) != 1 + PUBLIC_KEY_SIZE or raw[0] != ED25519_ALG:
        raise InvalidInputError("verifier key is not an Ed25519 key", code="key.bad_vkey")
    public = raw[1:]
    load_public_key(public)
    if note_key_id(name, public).hex() != kid_hex:
        raise InvalidInputError("verifier key id does not match name and key", code="key.bad_vkey")
    return VerifierKey(name=name, key_id=bytes.fromhex(kid_hex), public=public)


def format_signer_key(name: str, seed: bytes) -> str:
    """C2SP/Go private key string ``PRIVATE+KEY+name+hex8+base64(0x01 || seed)``.

    Raises:
        InvalidInputError: if the seed or the name is invalid.
    """
    signer = Ed25519Signer.from_seed(seed)
    kid = note_key_id(name, signer.public_bytes).hex()
    if not _valid_key_name(name):
        raise InvalidInputError(f"invalid key name {name!r}", code="key.bad_name")
    return f"PRIVATE+KEY+{name}+{kid}+{b64encode(bytes([ED25519_ALG]) + seed)}"


def parse_signer_key(text: str) -> tuple[str, Ed25519Signer]:
    """Parse ``PRIVATE+KEY+name+hex8+base64`` into the key name and a signer.

    Raises:
        InvalidInputError: on any syntax or key-id mismatch.
    """
    parts = text.strip().split("+", 4)
    if len(parts) != 5 or parts[0] != "PRIVATE" or parts[1] != "KEY":
        raise InvalidInputError("not a PRIVATE+KEY string", code="key.bad_skey")
    name, kid_hex, key_b64 = parts[2:]
    if not _valid_key_name(name):
        raise InvalidInputError(f"invalid key name {name!r}", code="key.bad_skey")
    raw = b64decode(key_b64, what="private key")
    if len(raw) != 33 or raw[0] != ED25519_ALG:
        raise InvalidInputError("private key is not an Ed25519 seed", code="key.bad_skey")
    signer = Ed25519Signer.from_seed(raw[1:])
    if note_key_id(name, signer.public_bytes).hex() != kid_hex:
        raise InvalidInputError("private key id does not match", code="key.bad_skey")
    return name, signer
