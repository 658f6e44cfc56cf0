"""Ledger entries: the signed, canonical bytes that the Merkle log commits to.

An entry is the RFC 8785 (JCS) encoding of::

    {"v":1,"type":T,"issuer":ID,"key_id":K,"at":RFC3339Z,"body":{...},"sig":B64}

``sig`` is the issuer's Ed25519 signature over the JCS bytes of the same object without
``sig``. Because JCS serializes members independently and in sorted order, those signed bytes
are exactly the stored bytes with the member ``,"sig":"…"`` cut out; we use that identity to
avoid re-serializing on the hot path (it is checked against a fresh canonicalization in tests).
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from creditbank.core.canonical import _parse_canonical_fast, canonicalize, parse_canonical
from creditbank.core.signing import (
    Signer,
    b64decode,
    b64encode,
    entry_key_id,
    verify_signature,
)
from creditbank.errors import InvalidInputError, TooLargeError, UnsupportedVersionError

ENTRY_VERSION: Final = 1
MEDIA_TYPE: Final = "application/vnd.creditbank.entry.v1+json"
MAX_ENTRY_SIZE: Final = 64 * 1024

ENTRY_TYPES: Final = frozenset(
    {
        "institution.registered",
        "institution.key_added",
        "institution.key_revoked",
        "institution.closed",
        "record.posted",
        "record.corrected",
        "record.revoked",
        "rules.published",
        "conversion.decided",
        "conversion.voided",
        "transcript.issued",
        "transcript.revoked",
    }
)
REGISTRY_TYPES: Final = frozenset(t for t in ENTRY_TYPES if t.startswith("institution."))
#: Entry types whose contents are about one learner and are not public (docs/trust-model.md).
PRIVATE_TYPES: Final = frozenset(
    t for t in ENTRY_TYPES if t.split(".")[0] in {"record", "conversion", "transcript"}
)

_FIELDS: Final = frozenset({"v", "type", "issuer", "key_id", "at", "body", "sig"})
_ID_RE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,63}$")
_KEY_ID_RE: Final = re.compile(r"^ed25519:[0-9a-f]{16}$")
#: RFC 3339 digits are ASCII (``re.ASCII``: ``\d`` would also match other scripts' digits)
_AT_RE: Final = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d{1,6})?Z$", re.ASCII
)


def format_time(t: datetime) -> str:
    """RFC 3339 UTC with ``Z``; microseconds only when non-zero.

    Raises:
        InvalidInputError: if ``t`` is naive.
    """
    if t.tzinfo is None:
        raise InvalidInputError("timestamps must be timezone-aware", code="entry.naive_time")
    t = t.astimezone(UTC)
    if t.microsecond:
        return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> datetime:
    """Parse the restricted RFC 3339 form used in entries (UTC, ``Z``).

    Raises:
        InvalidInputError: if the text is not of that form or not a real instant.
    """
    m = _AT_RE.fullmatch(text) if type(text) is str else None
    if m is None:
        raise InvalidInputError(f"bad timestamp {text!r}; want RFC 3339 UTC", code="entry.bad_at")
    # Fast path: for text of exactly the matched form (``$`` also matches before a final
    # newline) ``fromisoformat`` computes the same instant;
    # on any doubt the reference construction below decides, and raises as it always did.
    if m.end() == len(text) and text.isascii():
        try:
            t = datetime.fromisoformat(text)
        except ValueError:
            pass
        else:
            if t.tzinfo is UTC:
                return t
    frac = m.group(7)
    micro = int((frac[1:] + "000000")[:6]) if frac else 0
    try:
        y, mo, d, h, mi, s = (int(m.group(i)) for i in range(1, 7))
        return datetime(y, mo, d, h, mi, s, micro, tzinfo=UTC)
    except ValueError as e:
        raise InvalidInputError(f"bad timestamp {text!r}", code="entry.bad_at") from e


@dataclass(frozen=True, slots=True)
class Entry:
    """A parsed, canonical ledger entry. ``raw`` are the exact stored bytes."""

    type: str
    issuer: str
    key_id: str
    at: str
    body: Mapping[str, Any] = field(hash=False, compare=False)
    sig: bytes
    raw: bytes

    @property
    def at_time(self) -> datetime:
        """The signer's claimed time as a datetime."""
        return parse_time(self.at)

    @property
    def signed_bytes(self) -> bytes:
        """The bytes the signature covers: ``raw`` without the ``sig`` member."""
        return signed_part(self.raw, self.sig)


def signed_part(raw: bytes, sig: bytes) -> bytes:
    """Cut ``,"sig":"…"`` out of canonical entry bytes (see the module docstring).

    Raises:
        InvalidInputError: if the member is not where JCS puts it.
    """
    member = b',"sig":"' + binascii.b2a_base64(sig, newline=False) + b'"'  # = b64encode
    pos = raw.find(member)
    if pos < 0 or raw.find(member, pos + 1) >= 0:
        raise InvalidInputError("entry has no unique sig member", code="entry.bad_sig")
    return raw[:pos] + raw[pos + len(member) :]


def build_entry(
    type_: str, issuer: str, key_id: str, at: datetime | str, body: Mapping[str, Any]
) -> dict[str, Any]:
    """Build an unsigned entry object, validating the envelope.

    Raises:
        InvalidInputError: if any envelope field is malformed.
    """
    obj: dict[str, Any] = {
        "v": ENTRY_VERSION,
        "type": type_,
        "issuer": issuer,
        "key_id": key_id,
        "at": at if isinstance(at, str) else format_time(at),
        "body": dict(body),
    }
    _check_envelope({**obj, "sig": ""}, check_sig=False)
    return obj


def sign_entry(unsigned: Mapping[str, Any], signer: Signer) -> bytes:
    """Sign an unsigned entry object and return the canonical entry bytes.

    Raises:
        InvalidInputError: if the entry is malformed or its key id is not the signer's.
    """
    if "sig" in unsigned:
        raise InvalidInputError("entry is already signed", code="entry.signed_twice")
    obj = dict(unsigned)
    _check_envelope({**obj, "sig": ""}, check_sig=False)
    if obj["key_id"] != entry_key_id(signer.public_bytes):
        raise InvalidInputError("key_id does not name the signing key", code="entry.key_id")
    message = canonicalize(obj)
    obj["sig"] = b64encode(signer.sign(message))
    raw = canonicalize(obj)
    if len(raw) > MAX_ENTRY_SIZE:
        raise TooLargeError(f"entry of {len(raw)} bytes exceeds {MAX_ENTRY_SIZE}")
    return raw


#: issuer and key id strings already found well-formed (most entries repeat a few of them);
#: cleared when it grows past _VALID_MAX so that hostile input cannot grow it without bound
_VALID_IDS: set[str] = set()
_VALID_KEY_IDS: set[str] = set()
_VALID_MAX: Final = 4096


def _check_envelope(obj: Mapping[str, Any], *, check_sig: bool = True) -> datetime:
    """Check the envelope fields; return the instant of ``at``."""
    if type(obj) is not dict and not isinstance(obj, Mapping):
        raise InvalidInputError("entry must be a JSON object", code="entry.not_object")
    v = obj.get("v")
    if v != ENTRY_VERSION or isinstance(v, bool):
        raise UnsupportedVersionError(f"unsupported entry version {v!r}; this is v1")
    if obj.keys() != _FIELDS:
        keys = set(obj)
        missing, extra = sorted(_FIELDS - keys), sorted(keys - _FIELDS)
        raise InvalidInputError(
            f"entry fields wrong (missing {missing}, unknown {extra})", code="entry.fields"
        )
    if obj["type"] not in ENTRY_TYPES:
        raise InvalidInputError(f"unknown entry type {obj['type']!r}", code="entry.unknown_type")
    issuer, key_id = obj["issuer"], obj["key_id"]
    if type(issuer) is not str or issuer not in _VALID_IDS:
        if not isinstance(issuer, str) or not _ID_RE.fullmatch(issuer):
            raise InvalidInputError("issuer must be an institution id", code="entry.issuer")
        _remember(_VALID_IDS, issuer)
    if type(key_id) is not str or key_id not in _VALID_KEY_IDS:
        if not isinstance(key_id, str) or not _KEY_ID_RE.fullmatch(key_id):
            raise InvalidInputError("key_id must be ed25519:<16 hex>", code="entry.key_id")
        _remember(_VALID_KEY_IDS, key_id)
    at = parse_time(obj["at"])
    if not isinstance(obj["body"], dict):
        raise InvalidInputError("body must be a JSON object", code="entry.body")
    if check_sig and not isinstance(obj["sig"], str):
        raise InvalidInputError("sig must be base64 text", code="entry.bad_sig")
    return at


def _remember(seen: set[str], text: str) -> None:
    if type(text) is str:  # not a subclass: equality and hashing are str's own
        if len(seen) >= _VALID_MAX:
            seen.clear()
        seen.add(text)


_MISSING: Final = object()


def parse_entry(raw: bytes) -> Entry:
    """Parse entry bytes strictly: size, UTF-8, no duplicate keys, canonical, v1, envelope.

    Raises:
        TooLargeError: if larger than ``MAX_ENTRY_SIZE``.
        UnsupportedVersionError: if ``v`` is not 1.
        NonCanonicalError: if the bytes are not RFC 8785 canonical.
        InvalidInputError: for any other malformation.
    """
    obj, sig, _ = _parse_entry_object(raw)
    return Entry(obj["type"], obj["issuer"], obj["key_id"], obj["at"], obj["body"], sig, bytes(raw))


def entry_from_object(obj: object, raw: bytes) -> Entry:
    """The :class:`Entry` :func:`parse_entry` makes of ``raw``, built from the JSON object
    ``obj`` whose canonical bytes ``raw`` are (``raw == canonicalize(obj)``), without parsing
    ``raw`` again: the same checks, and a body in the same (JCS) member order. For a posted
    entry that was parsed as part of its request.

    Raises:
        As :func:`parse_entry`.
    """
    if len(raw) > MAX_ENTRY_SIZE:
        raise TooLargeError(f"entry of {len(raw)} bytes exceeds {MAX_ENTRY_SIZE}")
    if not isinstance(obj, dict):
        raise InvalidInputError("entry must be a JSON object", code="entry.not_object")
    _check_envelope(obj)
    sig = _sig_bytes(obj["sig"])
    body = _jcs_ordered(obj["body"])
    return Entry(obj["type"], obj["issuer"], obj["key_id"], obj["at"], body, sig, bytes(raw))


def _jcs_ordered(value: Any) -> Any:
    """A JSON value with every object's members in JCS order (UTF-16 code units), the order
    parsing its canonical bytes gives: the value itself when it is in that order already (the
    common case: a client posts the canonical bytes it signed), else an ordered copy."""
    return value if _in_jcs_order(value) else _jcs_copy(value)


def _in_jcs_order(value: Any) -> bool:
    """Whether every object in ``value`` has ASCII member names in ascending order (for ASCII,
    code point and UTF-16 order agree); False sends anything else to :func:`_jcs_copy`."""
    if type(value) is dict:
        prev = ""
        first = True
        for k, v in value.items():
            if not k.isascii() or (not first and k <= prev):
                return False
            first, prev = False, k
            if type(v) in (dict, list) and not _in_jcs_order(v):
                return False
        return True
    if type(value) is list:
        return all(_in_jcs_order(v) for v in value if type(v) in (dict, list))
    return True


def _jcs_copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jcs_copy(value[k]) for k in sorted(value, key=lambda k: k.encode("utf-16-be"))}
    if isinstance(value, list):
        return [_jcs_copy(v) for v in value]
    return value


def parse_entry_fields(raw: bytes) -> tuple[dict[str, Any], bytes, bytes | None, datetime]:
    """:func:`parse_entry` without building an :class:`Entry`, for bulk checks (the audit).

    After exactly the checks of :func:`parse_entry`, returns the entry's JSON object, its
    signature, the bytes the signature covers (``Entry.signed_bytes``), or None where
    ``Entry.signed_bytes`` would raise (the ``sig`` member is not unique in the bytes), and
    the instant of ``at`` (``Entry.at_time``).

    Raises:
        As :func:`parse_entry`.
    """
    raw = bytes(raw)
    obj, sig, at = _parse_entry_object(raw)
    # obj["sig"] is the canonical base64 of sig (checked), so this is signed_part(raw, sig)
    member = b',"sig":"' + obj["sig"].encode("ascii") + b'"'
    pos = raw.find(member)
    if pos < 0 or raw.find(member, pos + 1) >= 0:
        return obj, sig, None, at
    return obj, sig, raw[:pos] + raw[pos + len(member) :], at


def _parse_entry_object(raw: bytes) -> tuple[dict[str, Any], bytes, datetime]:
    if len(raw) > MAX_ENTRY_SIZE:
        raise TooLargeError(f"entry of {len(raw)} bytes exceeds {MAX_ENTRY_SIZE}")
    obj: Any = _MISSING
    if type(raw) is bytes:  # parse_canonical's fast path, inlined (audits parse millions)
        try:  # noqa: SIM105 - a context manager costs more than this whole check
            obj = _parse_canonical_fast(raw)
        except Exception:  # noqa: S110 - any doubt: parse_canonical decides (and raises)
            pass
    if obj is _MISSING:
        obj = parse_canonical(bytes(raw), max_size=MAX_ENTRY_SIZE)
    if not isinstance(obj, dict):
        raise InvalidInputError("entry must be a JSON object", code="entry.not_object")
    at = _check_envelope(obj)
    return obj, _sig_bytes(obj["sig"]), at


def _sig_bytes(text: str) -> bytes:
    """``b64decode(text)``, with a fast path for canonical base64 (the decoded bytes encode
    back to exactly ``text``); anything else gets ``b64decode``'s answer or error."""
    try:
        raw = binascii.a2b_base64(text, strict_mode=True)
        if binascii.b2a_base64(raw, newline=False) == text.encode("ascii"):
            return raw
    except (binascii.Error, ValueError, TypeError, UnicodeEncodeError):
        pass
    return b64decode(text, what="entry signature")


def verify_entry_signature(entry: Entry, public: bytes) -> None:
    """Verify the entry's signature with the raw Ed25519 public key of ``key_id``.

    Raises:
        SignatureError: if the signature does not verify.
        InvalidInputError: if the key does not match ``key_id``.
    """
    if entry_key_id(public) != entry.key_id:
        raise InvalidInputError("public key does not match the entry key_id", code="entry.key_id")
    verify_signature(public, entry.signed_bytes, entry.sig)
