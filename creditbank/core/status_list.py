"""W3C Bitstring Status List v1.0: the bitstring, its encoding and the status-list credential.

* A status list is a bitstring of at least 131,072 bits (16 KiB, for group privacy); bit 0 is
  the most significant bit of the first byte. A set bit with purpose ``revocation`` means the
  credential holding that ``statusListIndex`` is revoked.
* ``encodedList`` = multibase base64url without padding (prefix ``u``) of the GZIP-compressed
  bitstring. Compression here is deterministic (``mtime`` 0), so the same bits give the same
  bytes and the same signed credential.
* :func:`build_status_list_credential` makes the unsigned ``BitstringStatusListCredential``;
  sign it with :func:`creditbank.core.credentials.proof.sign_credential` like any credential.

Pure: no clock (``valid_from`` is a parameter), no I/O.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from creditbank.errors import InvalidInputError

MIN_BITS: Final = 131_072
#: refuse to inflate an encoded list beyond this (a GZIP bomb guard): 2**26 bits = 8 MiB
MAX_BITS: Final = 1 << 26
STATUS_PURPOSES: Final = frozenset({"revocation", "suspension", "refresh", "message"})
VC_V2_CONTEXT: Final = "https://www.w3.org/ns/credentials/v2"


def _bad(message: str) -> InvalidInputError:
    return InvalidInputError(message, code="status_list.invalid")


class StatusList:
    """A mutable bitstring of a status list (``size`` bits, all clear at first)."""

    __slots__ = ("_bits", "size")

    def __init__(self, size: int = MIN_BITS) -> None:
        """Make an all-clear list.

        Raises:
            InvalidInputError: ``status_list.invalid`` unless ``size`` is a multiple of 8
                between :data:`MIN_BITS` and :data:`MAX_BITS`.
        """
        if size < MIN_BITS or size > MAX_BITS or size % 8:
            raise _bad(f"a status list has {MIN_BITS}..{MAX_BITS} bits, a multiple of 8")
        self.size = size
        self._bits = bytearray(size // 8)

    @classmethod
    def from_bytes(cls, data: bytes) -> StatusList:
        """A list over a copy of raw bitstring bytes.

        Raises:
            InvalidInputError: ``status_list.invalid`` if the length is out of range.
        """
        out = cls(len(data) * 8)
        out._bits[:] = data
        return out

    @classmethod
    def with_set(cls, indices: Iterable[int], size: int = MIN_BITS) -> StatusList:
        """A list whose given indices are set.

        Raises:
            InvalidInputError: ``status_list.invalid`` / ``status_list.index`` as the
                constructor and :meth:`set`.
        """
        out = cls(size)
        for i in indices:
            out.set(i)
        return out

    def _check(self, index: int) -> None:
        if type(index) is not int or not 0 <= index < self.size:
            raise InvalidInputError(
                f"status list index {index!r} outside 0..{self.size - 1}", code="status_list.index"
            )

    def get(self, index: int) -> bool:
        """The bit at ``index``.

        Raises:
            InvalidInputError: ``status_list.index`` if the index is outside the list.
        """
        self._check(index)
        return bool(self._bits[index >> 3] & (0x80 >> (index & 7)))

    def set(self, index: int, value: bool = True) -> None:
        """Set (or clear) the bit at ``index``.

        Raises:
            InvalidInputError: ``status_list.index`` if the index is outside the list.
        """
        self._check(index)
        mask = 0x80 >> (index & 7)
        if value:
            self._bits[index >> 3] |= mask
        else:
            self._bits[index >> 3] &= ~mask & 0xFF

    def set_indices(self) -> list[int]:
        """Every set index, ascending."""
        out: list[int] = []
        for byte_no, byte in enumerate(self._bits):
            if byte:
                out.extend(byte_no * 8 + b for b in range(8) if byte & (0x80 >> b))
        return out

    def to_bytes(self) -> bytes:
        """The raw bitstring."""
        return bytes(self._bits)

    def encode(self) -> str:
        """``encodedList``: ``u`` + base64url (no padding) of GZIP(bitstring), deterministic."""
        return encode_bits(bytes(self._bits))

    @classmethod
    def decode(cls, encoded: str) -> StatusList:
        """Parse an ``encodedList``.

        Raises:
            InvalidInputError: ``status_list.invalid`` if it is not ``u``-multibase base64url
                of GZIP data of 131,072..2**26 bits.
        """
        return cls.from_bytes(decode_bits(encoded))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, StatusList) and other._bits == self._bits

    def __hash__(self) -> int:  # mutable: identity semantics for hashing would mislead
        raise TypeError("StatusList is mutable and unhashable")


def encode_bits(bits: bytes) -> str:
    """``u`` + base64url without padding of the GZIP-compressed bits (mtime 0)."""
    packed = gzip.compress(bits, compresslevel=9, mtime=0)
    return "u" + base64.urlsafe_b64encode(packed).rstrip(b"=").decode("ascii")


def decode_bits(encoded: str) -> bytes:
    """Inverse of :func:`encode_bits`, refusing oversized output.

    Raises:
        InvalidInputError: ``status_list.invalid`` on any malformed input.
    """
    if not encoded.startswith("u"):
        raise _bad("encodedList must be multibase base64url (prefix u)")
    text = encoded[1:]
    if "=" in text or not text.isascii():
        raise _bad("encodedList must be unpadded base64url")
    try:
        packed = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as e:
        raise _bad("encodedList is not base64url") from e
    inflater = zlib.decompressobj(wbits=31)  # GZIP container
    try:
        bits = inflater.decompress(packed, MAX_BITS // 8 + 1)
    except zlib.error as e:
        raise _bad("encodedList is not GZIP data") from e
    if len(bits) > MAX_BITS // 8 or inflater.unconsumed_tail:
        raise _bad("status list too large")
    if not inflater.eof or inflater.unused_data:
        raise _bad("encodedList is not a single complete GZIP stream")
    if len(bits) * 8 < MIN_BITS:
        raise _bad(f"a status list has at least {MIN_BITS} bits")
    return bits


@dataclass(frozen=True, slots=True)
class StatusListEntry:
    """A credential's place in a status list (its ``credentialStatus``)."""

    list_credential_url: str
    index: int
    purpose: str = "revocation"

    def __post_init__(self) -> None:
        if self.purpose not in STATUS_PURPOSES:
            raise InvalidInputError(
                f"unknown status purpose {self.purpose!r}", code="status_list.purpose"
            )
        if type(self.index) is not int or not 0 <= self.index < MAX_BITS:
            raise InvalidInputError("status list index out of range", code="status_list.index")

    def to_json(self) -> dict[str, Any]:
        """The ``BitstringStatusListEntry`` object (``statusListIndex`` is a decimal string)."""
        return {
            "id": f"{self.list_credential_url}#{self.index}",
            "type": "BitstringStatusListEntry",
            "statusPurpose": self.purpose,
            "statusListIndex": str(self.index),
            "statusListCredential": self.list_credential_url,
        }


def parse_status_entry(value: Mapping[str, Any]) -> StatusListEntry:
    """Read a ``credentialStatus`` of type ``BitstringStatusListEntry``.

    Raises:
        InvalidInputError: ``status_list.entry`` if it is not one (or the index is not a
            canonical decimal string).
    """
    if value.get("type") != "BitstringStatusListEntry":
        raise InvalidInputError("not a BitstringStatusListEntry", code="status_list.entry")
    url, idx, purpose = (
        value.get("statusListCredential"),
        value.get("statusListIndex"),
        value.get("statusPurpose"),
    )
    if not isinstance(url, str) or not isinstance(purpose, str) or not isinstance(idx, str):
        raise InvalidInputError("status entry members missing", code="status_list.entry")
    if not idx.isascii() or not idx.isdigit() or (idx != "0" and idx.startswith("0")):
        raise InvalidInputError(
            "statusListIndex must be a decimal string", code="status_list.entry"
        )
    return StatusListEntry(url, int(idx), purpose)


def build_status_list_credential(
    status_list: StatusList,
    *,
    list_credential_url: str,
    issuer: str,
    valid_from: str,
    valid_until: str | None = None,
    purpose: str = "revocation",
) -> dict[str, Any]:
    """The unsigned ``BitstringStatusListCredential`` publishing ``status_list``.

    Args:
        status_list: the bits.
        list_credential_url: the credential's id (the URL entries point to).
        issuer: the bank's DID (the same issuer as the credentials it covers).
        valid_from: dateTimeStamp of this publication.
        valid_until: optional end of validity (a cache hint for verifiers).
        purpose: the list's ``statusPurpose``.

    Raises:
        InvalidInputError: ``status_list.purpose`` on an unknown purpose.
    """
    if purpose not in STATUS_PURPOSES:
        raise InvalidInputError(f"unknown status purpose {purpose!r}", code="status_list.purpose")
    doc: dict[str, Any] = {
        "@context": [VC_V2_CONTEXT],
        "id": list_credential_url,
        "type": ["VerifiableCredential", "BitstringStatusListCredential"],
        "issuer": issuer,
        "validFrom": valid_from,
    }
    if valid_until is not None:
        doc["validUntil"] = valid_until
    doc["credentialSubject"] = {
        "id": f"{list_credential_url}#list",
        "type": "BitstringStatusList",
        "statusPurpose": purpose,
        "encodedList": status_list.encode(),
    }
    return doc


def status_of(credential_status: Mapping[str, Any], list_credential: Mapping[str, Any]) -> bool:
    """Whether the bit a ``credentialStatus`` points at is set in a (verified) list credential.

    The caller verifies the list credential's proof first; this checks that the entry points
    at this list and that the purposes agree, then reads the bit.

    Raises:
        InvalidInputError: ``status_list.entry`` / ``status_list.invalid`` /
            ``status_list.mismatch`` (entry points at another list or purpose) /
            ``status_list.index``.
    """
    entry = parse_status_entry(credential_status)
    if list_credential.get("id") != entry.list_credential_url:
        raise InvalidInputError("status entry points at another list", code="status_list.mismatch")
    subject = list_credential.get("credentialSubject")
    if not isinstance(subject, Mapping) or subject.get("statusPurpose") != entry.purpose:
        raise InvalidInputError("status purposes differ", code="status_list.mismatch")
    encoded = subject.get("encodedList")
    if not isinstance(encoded, str):
        raise _bad("the list credential has no encodedList")
    return StatusList.decode(encoded).get(entry.index)
