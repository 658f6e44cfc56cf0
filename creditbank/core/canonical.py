"""RFC 8785 JSON Canonicalization Scheme, strict.

We hash and sign bytes, not objects: an entry is canonicalized once and those exact bytes are
stored, hashed and served. Floats are refused (credits are integer hundredths), so every number
is an integer inside the IEEE-754 exact range, and ``parse_canonical`` refuses any input whose
bytes are not already canonical, has duplicate keys, or is not UTF-8.
"""

from __future__ import annotations

import json
from typing import Any

import rfc8785

from creditbank.errors import InvalidInputError, NonCanonicalError, TooLargeError

MAX_SAFE_INT = 2**53 - 1


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


def _keys_bmp_only(value: Any) -> bool:
    if isinstance(value, dict):
        return all(
            all(ord(c) <= 0xFFFF for c in k) and _keys_bmp_only(v) for k, v in value.items()
        )
    if isinstance(value, list | tuple):
        return all(_keys_bmp_only(v) for v in value)
    return True


def canonicalize(value: Any) -> bytes:
    """Return the RFC 8785 bytes of ``value`` (no floats, integers within 2**53).

    Fast path: for our value domain (strings, integers, booleans, null, objects, arrays)
    the stdlib encoder with sorted keys produces exactly the JCS bytes, as long as no object
    key holds a character outside the BMP (JCS sorts keys by UTF-16 code units, Python by
    code points; they differ only there). Those rare documents go to the ``rfc8785``
    reference implementation. A property test keeps the two in agreement.

    Raises:
        InvalidInputError: if the value holds a float, a huge integer or a foreign type.
    """
    _check_value(value)
    try:
        if _keys_bmp_only(value):
            return json.dumps(
                value, sort_keys=True, ensure_ascii=False, separators=(",", ":")
            ).encode("utf-8")
        return rfc8785.dumps(value)
    except UnicodeEncodeError as e:
        raise InvalidInputError("string is not valid Unicode", code="input.json") from e
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


def parse_canonical(data: bytes, *, max_size: int = 1 << 20) -> Any:
    """Parse JSON that must already be in RFC 8785 form, byte for byte.

    Raises:
        TooLargeError: if ``data`` is too long.
        InvalidInputError: if it is not strict JSON.
        NonCanonicalError: if re-canonicalizing would change a byte.
    """
    value = parse_json_strict(data, max_size=max_size)
    if canonicalize(value) != data:
        raise NonCanonicalError("JSON is not in RFC 8785 canonical form")
    return value
