"""RFC 8785 JSON Canonicalization Scheme, strict.

We hash and sign bytes, not objects: an entry is canonicalized once and those exact bytes are
stored, hashed and served. Floats are refused (credits are integer hundredths), so every number
is an integer inside the IEEE-754 exact range, and ``parse_canonical`` refuses any input whose
bytes are not already canonical, has duplicate keys, or is not UTF-8.
"""

from __future__ import annotations

import json
import json.encoder
from collections.abc import Callable
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
        return all(all(ord(c) <= 0xFFFF for c in k) and _keys_bmp_only(v) for k, v in value.items())
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


class _Miss(Exception):  # noqa: N818 - control flow only
    """The fast path cannot decide; take the reference path."""


def _miss(_: str) -> Any:
    raise _Miss


def _safe_int(text: str) -> int:
    value = int(text)
    if -MAX_SAFE_INT <= value <= MAX_SAFE_INT:
        return value
    raise _Miss


#: No ``object_pairs_hook`` (the per-object Python call is most of the cost of a strict
#: parse); floats, NaN/Infinity and out-of-range integers abort the fast path.
_FAST_DECODER = json.JSONDecoder(parse_float=_miss, parse_int=_safe_int, parse_constant=_miss)
#: the decoder's scanner (C): ``(value, end)`` for the JSON value at an offset, no whitespace
_SCAN: Callable[[str, int], tuple[Any, int]] = _FAST_DECODER.scan_once  # type: ignore[attr-defined]
#: ``json.dumps(sort_keys=True, ensure_ascii=False, separators=(",", ":"))`` as used by
#: :func:`canonicalize`, without the cycle check (a decoded value has no cycles)
_JCS_ENCODER = json.JSONEncoder(
    sort_keys=True, ensure_ascii=False, separators=(",", ":"), check_circular=False
)


def _jcs_encode_default(value: Any) -> str:
    return str(_JCS_ENCODER.encode(value))


def _make_jcs_encode() -> Callable[[Any], str]:
    """``_JCS_ENCODER.encode``: the C encoder that ``JSONEncoder.encode`` builds on every
    call, built once (same arguments as ``JSONEncoder.iterencode`` passes it)."""
    make = getattr(json.encoder, "c_make_encoder", None)
    esc = getattr(json.encoder, "c_encode_basestring", None)
    if make is None or esc is None:  # no C accelerator: the plain encoder
        return _jcs_encode_default
    enc = make(None, _JCS_ENCODER.default, esc, None, ":", ",", True, False, True)
    join = "".join
    return lambda value: join(enc(value, 0))


_jcs_encode = _make_jcs_encode()
#: every byte except the lead bytes of 4-byte UTF-8 sequences (characters outside the BMP)
_BELOW_F0 = bytes(range(0xF0))


def _parse_canonical_fast(data: bytes) -> Any:
    """Accept ``data`` only if the reference path would accept it with the same value.

    Why this is as strict as :func:`parse_json_strict` + :func:`canonicalize`:

    * duplicate keys: the encoder writes each key of a dict once, and distinct ``str`` keys
      encode to distinct JSON strings, so ``encode(decode(data)) == data`` implies that no
      object in ``data`` repeats a key (``json`` keeps the last duplicate, and the
      re-encoding would lack the earlier member);
    * floats, NaN/Infinity and integers beyond 2**53 - 1 abort in the decoder hooks;
    * nesting deeper than 32 needs more than 32 ``{``/``[`` bytes; only then is the value
      walked by :func:`_check_value`;
    * the stdlib encoder equals JCS unless a key holds a non-BMP character, which would be
      written as a 4-byte UTF-8 sequence in canonical bytes: inputs with such a lead byte
      take the reference path;
    * invalid UTF-8, leading or trailing whitespace, lone surrogates and malformed JSON
      raise or differ, and so take the reference path, which raises what it always raised.

    Comparing the re-encoded text with the decoded text equals comparing bytes: the text was
    decoded from strict UTF-8, so it has no lone surrogate and encodes back to ``data``.

    Raises:
        _Miss (or any other exception): the caller takes the reference path.
    """
    text = data.decode("utf-8")
    value, end = _SCAN(text, 0)
    if end != len(text):
        raise _Miss
    if data.count(b"{") + data.count(b"[") > 32:
        _check_value(value)
    if data.translate(None, _BELOW_F0):
        raise _Miss
    if _jcs_encode(value) != text:
        raise _Miss
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
