"""RFC 8785 JSON Canonicalization Scheme, strict.

We hash and sign bytes, not objects: an entry is canonicalized once and those exact bytes are
stored, hashed and served. Floats are refused (credits are integer hundredths), so every number
is an integer inside the IEEE-754 exact range, and ``parse_canonical`` refuses any input whose
bytes are not already canonical, has duplicate keys, or is not UTF-8.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson
import rfc8785

from creditbank.errors import InvalidInputError, NonCanonicalError, TooLargeError

MAX_SAFE_INT = 2**53 - 1

#: ``orjson`` options for the fast path: keys sorted by code point (JCS order for BMP keys),
#: integers beyond 2**53 - 1 refused.
_ORJSON_JCS = orjson.OPT_SORT_KEYS | orjson.OPT_STRICT_INTEGER
#: every byte except the lead bytes of 4-byte UTF-8 sequences (characters outside the BMP)
_BELOW_F0 = bytes(range(0xF0))
#: where ``orjson`` writes a float token: ``1.5``/``1.5e-7`` and ``1e+16``, each followed by
#: ``,``, ``}`` or ``]`` (no integer matches). Each pattern starts with a literal, which the
#: regex engine finds with a fast scan (a pattern starting with a character class costs ~4x).
#: Text inside strings can match too: then the value is walked (slower, same verdict).
_FLOAT_FRACTION = re.compile(rb"\.[0-9]+(?:e[-+][0-9]+)?[,}\]]")
_FLOAT_EXPONENT = re.compile(rb"e[-+][0-9]+[,}\]]")
_NUMBER_START = frozenset(b"-0123456789")
#: every byte except "{", "[" and the lead bytes of 4-byte UTF-8 sequences
_NOT_MARKS = bytes(b for b in range(0xF0) if b not in b"{[")


def _check_value(value: Any, depth: int = 0) -> None:
    if depth > 32:
        raise InvalidInputError("JSON nested too deeply", code="input.too_deep")
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return
    if isinstance(value, int):
        if abs(value) > MAX_SAFE_INT:
            raise InvalidInputError("integer outside the exact JSON range", code="input.big_int")
        return
    if isinstance(value, float):
        raise InvalidInputError("floats are not allowed; use integers", code="input.float")
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise InvalidInputError("object keys must be strings", code="input.key_type")
            _check_value(v, depth + 1)
        return
    if isinstance(value, list | tuple):
        for v in value:
            _check_value(v, depth + 1)
        return
    raise InvalidInputError(f"cannot encode {type(value).__name__}", code="input.type")


def canonicalize(value: Any) -> bytes:
    """Return the RFC 8785 bytes of ``value`` (no floats, integers within 2**53).

    Fast path (ADR 0005): for our value domain (strings, integers, booleans, null, objects,
    arrays) ``orjson`` with sorted keys writes exactly the JCS bytes, as long as no character
    lies outside the BMP (JCS sorts keys by UTF-16 code units, ``orjson`` by code points; they
    differ only there). Those rare documents go to the ``rfc8785`` reference implementation.
    Unit and property tests keep the two in agreement.

    Raises:
        InvalidInputError: if the value holds a float, a huge integer or a foreign type.
    """
    _check_value(value)
    try:
        out = orjson.dumps(value, option=_ORJSON_JCS)
        if not out.translate(None, _BELOW_F0):  # no character outside the BMP
            return out
    except TypeError:  # orjson refuses str-subclass keys and lone surrogates: the reference
        pass  # path below encodes the former and refuses the latter
    try:
        return rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, ValueError, TypeError) as e:
        raise InvalidInputError(f"cannot canonicalize: {e}", code="input.json") from e


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise InvalidInputError(f"duplicate key {k!r} in JSON", code="input.duplicate_key")
        out[k] = v
    return out


def _no_float(text: str) -> Any:
    raise InvalidInputError(f"float {text} is not allowed; use integers", code="input.float")


def _parse_int(text: str) -> int:
    # JSON has no leading zeros, so more than 17 characters ("-" and 16 digits) is out of range;
    # refusing here also keeps int() away from huge digit strings (it raises ValueError).
    if len(text) > 17:
        raise InvalidInputError("integer outside the exact JSON range", code="input.big_int")
    return int(text)


def _no_constants(name: str) -> Any:
    raise InvalidInputError(f"{name} is not JSON", code="input.json")


def parse_json_strict(data: bytes, *, max_size: int = 1 << 20) -> Any:
    """Parse UTF-8 JSON, refusing duplicate keys, NaN/Infinity, floats and oversize input.

    Raises:
        TooLargeError: if ``data`` is longer than ``max_size``.
        InvalidInputError: if it is not UTF-8 JSON of the allowed shape.
    """
    if len(data) > max_size:
        raise TooLargeError(f"JSON document of {len(data)} bytes exceeds {max_size}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InvalidInputError("JSON is not valid UTF-8", code="input.not_utf8") from e
    try:
        value = json.loads(
            text,
            object_pairs_hook=_no_duplicates,
            parse_constant=_no_constants,
            parse_float=_no_float,
            parse_int=_parse_int,
        )
    except json.JSONDecodeError as e:
        raise InvalidInputError(f"malformed JSON: {e.msg} at {e.pos}", code="input.json") from e
    except RecursionError as e:  # deep nesting overflows the decoder before _check_value
        raise InvalidInputError("JSON nested too deeply", code="input.too_deep") from e
    _check_value(value)
    return value


class _Miss(Exception):  # noqa: N818 - control flow only
    """The fast path cannot decide; take the reference path."""


def _parse_canonical_fast(data: bytes) -> Any:
    """Accept ``data`` only if the reference path would accept it with the same value.

    ``orjson`` decodes and re-encodes (ADR 0005); ``data`` is accepted only if the re-encoding
    is ``data`` byte for byte. Why that is as strict as :func:`parse_json_strict` +
    :func:`canonicalize`:

    * duplicate keys: the encoder writes each key of a dict once, and distinct ``str`` keys
      encode to distinct JSON strings, so ``encode(decode(data)) == data`` implies that no
      object in ``data`` repeats a key (the decoder keeps the last duplicate, and the
      re-encoding would lack the earlier member);
    * whitespace, escapes JCS does not use (``\\u00e9``, ``\\/``, upper-case hex),
      ``-0``, exponent or other spellings of numbers, key order: the re-encoding differs;
    * integers beyond 2**53 - 1: ``OPT_STRICT_INTEGER`` refuses to encode them (and the
      decoder reads those beyond 64 bits as floats, whose re-encoding differs);
    * floats: a float that survives the round trip is written as ``orjson`` writes floats,
      which :data:`_FLOAT_FRACTION` and :data:`_FLOAT_EXPONENT` find; then
      :func:`_check_value` walks the value and raises;
    * nesting deeper than 32 needs more than 32 ``{``/``[`` bytes; only then is the value
      walked by :func:`_check_value`;
    * ``orjson`` writes exactly the JCS escapes for every BMP character (a unit test checks
      all of them) and sorts keys by code point, which is JCS order unless a key holds a
      character outside the BMP: inputs with a 4-byte UTF-8 lead byte take the reference path;
    * invalid UTF-8, lone surrogates, NaN/Infinity and malformed JSON raise in the decoder
      and take the reference path, which raises what it always raised.

    Raises:
        _Miss (or any other exception): the caller takes the reference path.
    """
    value = orjson.loads(data)
    if orjson.dumps(value, option=_ORJSON_JCS) != data:
        raise _Miss
    marks = data.translate(None, _NOT_MARKS)  # every "{", "[" and 4-byte UTF-8 lead byte
    if marks.strip(b"{[") or len(marks) > 32:
        if marks.strip(b"{["):  # a character outside the BMP
            raise _Miss
        _check_value(value)  # deep enough to need the depth check
    elif (
        _FLOAT_FRACTION.search(data) is not None
        or _FLOAT_EXPONENT.search(data) is not None
        or data[0] in _NUMBER_START
    ):
        _check_value(value)
    return value


def parse_canonical(data: bytes, *, max_size: int = 1 << 20) -> Any:
    """Parse JSON that must already be in RFC 8785 form, byte for byte.

    Canonical input (the common case) is accepted by a fast path that is proven, and
    property-tested, to accept exactly what the reference path accepts; anything else is
    decided by the reference path, so every error is the one it always was.

    Raises:
        TooLargeError: if ``data`` is too long.
        InvalidInputError: if it is not strict JSON.
        NonCanonicalError: if re-canonicalizing would change a byte.
    """
    if type(data) is bytes and len(data) <= max_size:
        try:
            return _parse_canonical_fast(data)
        except Exception:  # noqa: S110 - any doubt: the reference path decides (and raises)
            pass
    return _parse_canonical_reference(data, max_size=max_size)


def _parse_canonical_reference(data: bytes, *, max_size: int = 1 << 20) -> Any:
    """The reference strict path: hooked parse, then compare with a fresh canonicalization."""
    value = parse_json_strict(data, max_size=max_size)
    if canonicalize(value) != data:
        raise NonCanonicalError("JSON is not in RFC 8785 canonical form")
    return value
