"""Data Integrity proofs with the ``eddsa-jcs-2022`` cryptosuite (W3C vc-di-eddsa §3.3).

Creating a proof (``create_proof``):

1. proof configuration = ``{type: DataIntegrityProof, cryptosuite: eddsa-jcs-2022, created,
   verificationMethod, proofPurpose, @context: <the document's @context>}``;
2. ``hashData`` = SHA-256(JCS(proof configuration)) ‖ SHA-256(JCS(document without proof));
3. ``proofValue`` = ``z`` + base58btc(Ed25519(hashData)).

Verifying (``verify_credential_proof``) recomputes the same bytes from the document as received
(after removing ``proof`` and the proof's ``proofValue``) and checks the signature with the
public key the caller trusts for ``verificationMethod``. JCS is :mod:`creditbank.core.canonical`
(exact RFC 8785 on our value domain, fast), falling back to the ``rfc8785`` reference for a
document holding floats.

Also here: base58btc (Bitcoin alphabet) and Multikey (``z6Mk…``) encodings of Ed25519 keys.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import orjson
import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from creditbank.core.canonical import canonicalize
from creditbank.core.signing import SIGNATURE_SIZE, Signer, load_public_key, verify_signature
from creditbank.errors import InvalidInputError, SignatureError, VerificationError

PROOF_TYPE: Final = "DataIntegrityProof"
CRYPTOSUITE: Final = "eddsa-jcs-2022"
ASSERTION_METHOD: Final = "assertionMethod"
ED25519_PUB_MULTICODEC: Final = b"\xed\x01"
ED25519_PRIV_MULTICODEC: Final = b"\x80\x26"
_B58_ALPHABET: Final = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX: Final = {c: i for i, c in enumerate(_B58_ALPHABET)}
_B58_PAIRS: Final = [a + b for a in _B58_ALPHABET for b in _B58_ALPHABET]
#: byte -> digit value (0xFF for bytes outside the alphabet), for ``bytes.translate``
_B58_VALUES: Final = bytes(_B58_INDEX.get(chr(b), 0xFF) for b in range(256))
_JCS_OPTS: Final = orjson.OPT_SORT_KEYS | orjson.OPT_STRICT_INTEGER
_BELOW_F0: Final = bytes(range(0xF0))  # every byte but the lead bytes of non-BMP characters
#: where orjson writes a float token (``1.5``, ``1.5e-7``, ``1e+16``) before ``,`` ``}`` ``]``
_FLOAT_FRACTION: Final = re.compile(rb"\.[0-9]+(?:e[-+][0-9]+)?[,}\]]")
_FLOAT_EXPONENT: Final = re.compile(rb"e[-+][0-9]+[,}\]]")
_SCAN_FROM: Final = 8192


class ProofError(VerificationError):
    """A Data Integrity proof is missing, malformed or does not verify."""

    code = "verify.credential_proof"


# --- base58btc / multibase / multikey ---------------------------------------------------------
def b58encode(data: bytes) -> str:
    """base58btc (Bitcoin alphabet), leading zero bytes written as ``1``.

    Two digits per step (base 58² with a table of digit pairs): half the big-integer work.
    """
    zeros = len(data) - len(data.lstrip(b"\0"))
    n = int.from_bytes(data, "big")
    out = []
    while n:
        n, r = divmod(n, 3364)
        out.append(_B58_PAIRS[r])
    return "1" * zeros + "".join(reversed(out)).lstrip("1")


def b58decode(text: str) -> bytes:
    """Decode base58btc text (digit values by one ``translate``, then two digits per step).

    Raises:
        InvalidInputError: ``input.base58`` on a character outside the alphabet.
    """
    try:
        digits = text.encode("ascii").translate(_B58_VALUES)
    except UnicodeEncodeError as e:
        raise InvalidInputError("not base58btc text", code="input.base58") from e
    if b"\xff" in digits:
        raise InvalidInputError("not base58btc text", code="input.base58")
    odd = len(digits) % 2
    n = digits[0] if odd else 0
    for i in range(odd, len(digits), 2):
        n = n * 3364 + digits[i] * 58 + digits[i + 1]
    zeros = len(digits) - len(digits.lstrip(b"\0"))
    body = n.to_bytes((n.bit_length() + 7) // 8, "big") if n else b""
    return b"\0" * zeros + body


def multibase_b58(data: bytes) -> str:
    """Multibase base58btc: ``z`` + base58btc(data)."""
    return "z" + b58encode(data)


def multibase_b58_decode(text: str) -> bytes:
    """Decode ``z``-prefixed multibase base58btc.

    Raises:
        InvalidInputError: ``input.base58`` if the prefix is not ``z`` or the text is not base58.
    """
    if not text.startswith("z"):
        raise InvalidInputError(
            "multibase value must start with z (base58btc)", code="input.base58"
        )
    return b58decode(text[1:])


def public_key_multibase(public: bytes) -> str:
    """The Multikey ``publicKeyMultibase`` of a raw Ed25519 public key (``z6Mk…``).

    Raises:
        InvalidInputError: ``key.bad_public`` unless ``public`` is 32 bytes.
    """
    if len(public) != 32:
        raise InvalidInputError("Ed25519 public key must be 32 bytes", code="key.bad_public")
    return multibase_b58(ED25519_PUB_MULTICODEC + public)


def public_key_from_multibase(text: str) -> bytes:
    """The raw Ed25519 public key of a Multikey ``publicKeyMultibase``.

    Raises:
        InvalidInputError: ``key.bad_public`` if it is not an Ed25519 Multikey.
    """
    return _multikey_bytes(
        text, ED25519_PUB_MULTICODEC, "not an Ed25519 Multikey", code="key.bad_public"
    )


def seed_from_multibase(text: str) -> bytes:
    """The 32-byte Ed25519 seed of a Multikey ``secretKeyMultibase`` (``z3u2…``).

    Raises:
        InvalidInputError: ``key.bad_seed`` if it is not an Ed25519 private Multikey.
    """
    return _multikey_bytes(
        text, ED25519_PRIV_MULTICODEC, "not an Ed25519 private Multikey", code="key.bad_seed"
    )


def _multikey_bytes(text: str, multicodec: bytes, refusal: str, *, code: str) -> bytes:
    """The 32 key bytes of a multibase text that must be ``multicodec`` followed by them."""
    try:
        raw = multibase_b58_decode(text)
    except InvalidInputError as e:
        raise InvalidInputError(refusal, code=code) from e
    if len(raw) != 34 or raw[:2] != multicodec:
        raise InvalidInputError(refusal, code=code)
    return raw[2:]


# --- JCS and hashing --------------------------------------------------------------------------
def _has_float(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is dict:
            stack.extend(item.values())
        elif kind is list or kind is tuple:
            stack.extend(item)
        elif kind is float:
            return True
    return False


def jcs(value: Any) -> bytes:
    """RFC 8785 bytes of a JSON value (floats allowed, via the reference encoder).

    Fast path (as ADR 0005): ``orjson`` with sorted keys and strict integers writes exactly
    the JCS bytes when the value holds no float and no character outside the BMP. Floats are
    looked for in the value (small documents, and any holding ``null``, which is how
    ``orjson`` writes NaN) or in the output text (conservatively: text inside strings can
    trigger the check).
    Anything else takes the checked path.

    Raises:
        InvalidInputError: if the value is not JSON (foreign types, huge integers).
    """
    try:
        out = orjson.dumps(value, option=_JCS_OPTS)
    except (TypeError, orjson.JSONEncodeError):
        out = b""
    if (
        out[:1] in (b"{", b"[")  # a float token then always ends in , } or ]
        and not out.translate(None, _BELOW_F0)
        and (
            not _has_float(value)
            # small documents: walking the value is cheaper than scanning the text; NaN is
            # written as null, so a document with null is walked too
            if len(out) < _SCAN_FROM or b"null" in out
            else _FLOAT_FRACTION.search(out) is None and _FLOAT_EXPONENT.search(out) is None
        )
    ):
        return out
    try:
        return canonicalize(value)
    except InvalidInputError as e:
        if e.code != "input.float":
            raise
    try:
        return rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, TypeError, ValueError) as e:
        raise InvalidInputError(f"cannot canonicalize: {e}", code="input.json") from e


@dataclass(frozen=True, slots=True)
class ProofIntermediates:
    """Every intermediate of an ``eddsa-jcs-2022`` proof (for tests and diagnostics)."""

    canonical_proof_config: bytes
    proof_config_hash: bytes
    canonical_document: bytes
    document_hash: bytes
    hash_data: bytes


def proof_config(
    context: Any, *, verification_method: str, created: str, proof_purpose: str = ASSERTION_METHOD
) -> dict[str, Any]:
    """The proof configuration object (the proof without ``proofValue``)."""
    return {
        "type": PROOF_TYPE,
        "cryptosuite": CRYPTOSUITE,
        "created": created,
        "verificationMethod": verification_method,
        "proofPurpose": proof_purpose,
        "@context": context,
    }


def hash_data(config: Mapping[str, Any], unsecured: Mapping[str, Any]) -> ProofIntermediates:
    """Canonicalize and hash the proof configuration and the unsecured document.

    Raises:
        InvalidInputError: if either is not JSON.
    """
    canon_config = jcs(config)
    canon_doc = jcs(unsecured)
    config_hash = hashlib.sha256(canon_config).digest()
    doc_hash = hashlib.sha256(canon_doc).digest()
    return ProofIntermediates(
        canon_config, config_hash, canon_doc, doc_hash, config_hash + doc_hash
    )


def create_proof(
    document: Mapping[str, Any],
    signer: Signer,
    *,
    verification_method: str,
    created: str,
    proof_purpose: str = ASSERTION_METHOD,
) -> dict[str, Any]:
    """The ``eddsa-jcs-2022`` proof of an unsecured document.

    Args:
        document: the credential without ``proof``; must carry ``@context``.
        signer: the issuer's Ed25519 key.
        verification_method: e.g. ``did:web:…#key-1``.
        created: the proof time, XML Schema dateTimeStamp (``2026-12-03T10:00:00Z``).
        proof_purpose: ``assertionMethod`` for credentials.

    Raises:
        InvalidInputError: ``credential.proof_present`` if the document already has a proof,
            ``credential.context`` without ``@context``, or if it is not JSON.
    """
    if "proof" in document:
        raise InvalidInputError("the document already has a proof", code="credential.proof_present")
    if "@context" not in document:
        raise InvalidInputError("the document has no @context", code="credential.context")
    config = proof_config(
        document["@context"],
        verification_method=verification_method,
        created=created,
        proof_purpose=proof_purpose,
    )
    signature = signer.sign(hash_data(config, document).hash_data)
    return {**config, "proofValue": multibase_b58(signature)}


def sign_credential(
    document: Mapping[str, Any],
    signer: Signer,
    *,
    verification_method: str,
    created: str,
) -> dict[str, Any]:
    """The document with an ``eddsa-jcs-2022`` ``proof`` added (a new dict).

    Raises:
        InvalidInputError: as :func:`create_proof`.
    """
    proof = create_proof(document, signer, verification_method=verification_method, created=created)
    return {**document, "proof": proof}


@functools.lru_cache(maxsize=256)
def _loaded_key(public: bytes) -> Ed25519PublicKey:
    """The parsed key (point decompression once per key, not per credential)."""
    return load_public_key(public)


def _proof_of(document: Mapping[str, Any]) -> Mapping[str, Any]:
    proof = document.get("proof")
    if isinstance(proof, list):
        if len(proof) != 1:
            raise ProofError("expected exactly one proof")
        proof = proof[0]
    if not isinstance(proof, Mapping):
        raise ProofError("the document has no proof")
    for name, want in (("type", PROOF_TYPE), ("cryptosuite", CRYPTOSUITE)):
        if proof.get(name) != want:
            raise ProofError(f"proof {name} must be {want}")
    for name in ("created", "verificationMethod", "proofPurpose", "proofValue"):
        if not isinstance(proof.get(name), str):
            raise ProofError(f"proof has no {name}")
    return proof


def verify_credential_proof(
    document: Mapping[str, Any],
    public_key: bytes,
    *,
    verification_method: str | None = None,
    proof_purpose: str = ASSERTION_METHOD,
) -> None:
    """Check the document's ``eddsa-jcs-2022`` proof against a trusted public key.

    Args:
        document: the secured credential as received (parsed JSON).
        public_key: the raw Ed25519 key the caller trusts for the verification method.
        verification_method: if given, the proof must name exactly this method.
        proof_purpose: the purpose the proof must state.

    Raises:
        ProofError: (``verify.credential_proof``) if the proof is missing, malformed, names
            another method or purpose, its ``@context`` is not a prefix of the document's,
            or the signature does not verify.
    """
    proof = _proof_of(document)
    if verification_method is not None and proof["verificationMethod"] != verification_method:
        raise ProofError("the proof names another verification method")
    if proof["proofPurpose"] != proof_purpose:
        raise ProofError(f"proof purpose must be {proof_purpose}")
    unsecured = {k: v for k, v in document.items() if k != "proof"}
    config = {k: v for k, v in proof.items() if k != "proofValue"}
    if "@context" in config:
        doc_ctx = document.get("@context")
        pctx = config["@context"]
        doc_list = doc_ctx if isinstance(doc_ctx, list) else [doc_ctx]
        p_list = pctx if isinstance(pctx, list) else [pctx]
        if doc_list[: len(p_list)] != p_list:
            raise ProofError("the proof's @context is not a prefix of the document's")
    try:
        signature = multibase_b58_decode(proof["proofValue"])
    except InvalidInputError as e:
        raise ProofError("proofValue is not multibase base58btc") from e
    if len(signature) != SIGNATURE_SIZE:
        raise ProofError("proofValue is not a 64-byte signature")
    try:
        data = hash_data(config, unsecured).hash_data
        verify_signature(_loaded_key(public_key), data, signature)
    except (SignatureError, InvalidInputError) as e:
        raise ProofError(f"the credential proof does not verify: {e}") from e
