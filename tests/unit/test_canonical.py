"""Strict RFC 8785 (JCS) encoding and parsing (creditbank.core.canonical)."""

from __future__ import annotations

from typing import Any

import pytest
import rfc8785

from creditbank.core.canonical import (
    MAX_SAFE_INT,
    canonicalize,
    parse_canonical,
    parse_json_strict,
)
from creditbank.errors import InvalidInputError, NonCanonicalError, TooLargeError

# RFC 8785 §3.2.3: keys sort by UTF-16 code units. U+1F600 (surrogates D83D DE00) sorts
# before U+FB33, although its code point is larger.
RFC8785_SORT_INPUT = {
    "\u20ac": "Euro Sign",
    "\r": "Carriage Return",
    "\ufb33": "Hebrew Letter Dalet With Dagesh",
    "1": "One",
    "\U0001f600": "Emoji: Grinning Face",
    "\u0080": "Control",
    "\u00f6": "Latin Small Letter O With Diaeresis",
}
RFC8785_SORT_OUTPUT = (
    '{"\\r":"Carriage Return","1":"One","\u0080":"Control",'
    '"\u00f6":"Latin Small Letter O With Diaeresis","\u20ac":"Euro Sign",'
    '"\U0001f600":"Emoji: Grinning Face","\ufb33":"Hebrew Letter Dalet With Dagesh"}'
).encode()

VALUES: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    MAX_SAFE_INT,
    -MAX_SAFE_INT,
    "",
    "plain",
    "学分银行 credit bank",
    "\x00\x07\x1f\x7f\u2028\u2029\ufeff",
    'quote " backslash \\ slash / tab \t newline \n',
    "\U0001f600 outside the BMP",
    [],
    {},
    [1, [2, [3, {}]]],
    {"b": 1, "a": {"d": [True, None], "c": "x"}, "": 0},
    {"é": 1, "e": 2, "z": 3, "É": 4, "中": 5, "\ufb33": 6, "\u0080": 7},
    RFC8785_SORT_INPUT,
    {"nested": {"\U0001f600": 1, "\ufb33": 2}},
]


# --- encoding ---------------------------------------------------------------------------------
def test_rfc8785_key_order_including_non_ascii_and_non_bmp() -> None:
    assert canonicalize(RFC8785_SORT_INPUT) == RFC8785_SORT_OUTPUT


def test_rfc8785_string_escaping_example() -> None:
    # RFC 8785 §3.2.2.2: only ", \ and controls are escaped; controls as \u00xx lower case
    # except the short forms \b \t \n \f \r.
    value = '€$\u000f\nA\'B"\\\\"/'
    assert canonicalize(value) == b'"\xe2\x82\xac$\\u000f\\nA\'B\\"\\\\\\\\\\"/"'
    assert canonicalize("\b\t\n\f\r") == b'"\\b\\t\\n\\f\\r"'


def test_simple_object() -> None:
    assert canonicalize({"b": 1, "a": [True, None, "x"]}) == b'{"a":[true,null,"x"],"b":1}'
    assert canonicalize((1, 2)) == b"[1,2]"
    assert canonicalize(True) == b"true"


@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_agrees_with_the_rfc8785_reference(value: Any) -> None:
    assert canonicalize(value) == rfc8785.dumps(value)


@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_round_trip(value: Any) -> None:
    data = canonicalize(value)
    assert parse_canonical(data) == value
    assert parse_json_strict(data) == value
    assert canonicalize(parse_canonical(data)) == data


def test_tuples_come_back_as_lists() -> None:
    assert parse_canonical(canonicalize({"a": (1, 2)})) == {"a": [1, 2]}


@pytest.mark.parametrize(
    ("value", "code"),
    [
        (1.0, "input.float"),
        ({"a": [0.5]}, "input.float"),
        (float("nan"), "input.float"),
        (float("inf"), "input.float"),
        (MAX_SAFE_INT + 1, "input.big_int"),
        (-MAX_SAFE_INT - 1, "input.big_int"),
        ({"a": 2**64}, "input.big_int"),
        ({1: "x"}, "input.key_type"),
        ({None: "x"}, "input.key_type"),
        (b"bytes", "input.type"),
        ({"a": {1, 2}}, "input.type"),
        ("\ud800", "input.json"),
        ({"\ud800": 1}, "input.json"),
        ({"\U0001f600": "\udfff"}, "input.json"),
    ],
    ids=repr,
)
def test_canonicalize_refuses(value: Any, code: str) -> None:
    with pytest.raises(InvalidInputError) as e:
        canonicalize(value)
    assert e.value.code == code


def test_canonicalize_depth_limit() -> None:
    ok: Any = "leaf"
    for _ in range(32):
        ok = [ok]
    canonicalize(ok)
    with pytest.raises(InvalidInputError) as e:
        canonicalize([ok])
    assert e.value.code == "input.too_deep"


# --- strict parsing ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b'{"a":1,"a":2}', "input.duplicate_key"),
        (b'{"a":1,"a":1}', "input.duplicate_key"),  # even with equal values
        (b'{"x":{"a":1,"b":2,"a":3}}', "input.duplicate_key"),
        (b'[{"k":[],"k":[]}]', "input.duplicate_key"),
        (b"1.0", "input.float"),
        (b"1e3", "input.float"),
        (b"-0.0", "input.float"),
        (b'{"a":[1.5]}', "input.float"),
        (b"NaN", "input.json"),
        (b"Infinity", "input.json"),
        (b"-Infinity", "input.json"),
        (b"[NaN]", "input.json"),
        (b"9007199254740992", "input.big_int"),
        (b"-9007199254740992", "input.big_int"),
        (b"1" * 5000, "input.big_int"),  # int() would refuse with ValueError
        (b'"\xff"', "input.not_utf8"),
        (b"\xc3\x28", "input.not_utf8"),
        (b'"\xc0\xaf"', "input.not_utf8"),  # overlong
        (b'"\xed\xa0\x80"', "input.not_utf8"),  # encoded surrogate
        (b"\xef\xbb\xbf{}", "input.json"),  # BOM
        (b"", "input.json"),
        (b"{", "input.json"),
        (b"[1,]", "input.json"),
        (b"01", "input.json"),
        (b"{'a':1}", "input.json"),
        (b"[" * 40 + b"]" * 40, "input.too_deep"),
        (b"[" * 100_000 + b"]" * 100_000, "input.too_deep"),  # beyond the decoder's recursion
        (b'{"a":' * 50_000 + b"1" + b"}" * 50_000, "input.too_deep"),
    ],
    ids=lambda x: repr(x)[:40] if isinstance(x, bytes) else x,
)
def test_parse_refuses_with_code(data: bytes, code: str) -> None:
    with pytest.raises(InvalidInputError) as e:
        parse_json_strict(data)
    assert e.value.code == code
    with pytest.raises(InvalidInputError) as e:
        parse_canonical(data)
    assert e.value.code == code
    assert not isinstance(e.value, NonCanonicalError)


def test_lone_surrogate_escape_is_refused() -> None:
    # valid JSON text, but not a Unicode string: it cannot be canonical UTF-8
    with pytest.raises(InvalidInputError):
        parse_canonical(b'"\\ud800"')
    with pytest.raises(InvalidInputError):
        parse_canonical(b'{"\\udc00":1}')


@pytest.mark.parametrize(
    "data",
    [
        b'{"a": 1}',  # whitespace
        b' {"a":1}',
        b'{"a":1}\n',
        b'{"b":1,"a":2}',  # key order
        b'{"\xc3\xa9":1,"z":2}',  # é sorts after z
        b'{"\xef\xac\xb3":1,"\xf0\x9f\x98\x80":2}',  # U+FB33 before U+1F600: code-point order
        b'"\\u00e9"',  # JCS writes é raw
        b'"\\u0041"',
        b'"\\/"',
        b'"\\u000F"',  # upper-case hex
        b'"\\u0008"',  # JCS uses \b
        b"-0",
        b"[1, 2]",
        b"true ",
    ],
    ids=repr,
)
def test_non_canonical_is_refused(data: bytes) -> None:
    parse_json_strict(data)  # valid strict JSON ...
    with pytest.raises(NonCanonicalError) as e:
        parse_canonical(data)  # ... but not in canonical form
    assert e.value.code == "input.non_canonical"
    assert isinstance(e.value, InvalidInputError)


def test_canonical_bytes_are_accepted() -> None:
    assert parse_canonical(b'{"\xf0\x9f\x98\x80":2,"\xef\xac\xb3":1}') == {
        "\U0001f600": 2,
        "\ufb33": 1,
    }
    assert parse_canonical(b'"\\u000f"') == "\x0f"
    assert parse_canonical(RFC8785_SORT_OUTPUT) == RFC8785_SORT_INPUT


def test_oversize_is_refused_before_decoding() -> None:
    assert parse_json_strict(b"[" + b"1," * 9 + b"1]", max_size=21) == [1] * 10
    with pytest.raises(TooLargeError):
        parse_json_strict(b"[" + b"1," * 9 + b"1]", max_size=20)
    with pytest.raises(TooLargeError):
        parse_json_strict(b"\xff" * 101, max_size=100)  # not UTF-8 either: size wins
    with pytest.raises(TooLargeError):
        parse_canonical(b'"' + b"a" * (1 << 20) + b'"')
    with pytest.raises(TooLargeError) as e:
        parse_canonical(b"{}", max_size=1)
    assert e.value.code == "input.too_large"


# --- the orjson fast path (ADR 0005) ----------------------------------------------------------
def test_every_bmp_character_is_escaped_as_jcs_escapes_it() -> None:
    """orjson and the rfc8785 reference write every BMP character, in a key and in a value,
    the same way; so canonicalize (orjson) and the fast parse agree with JCS on all of them."""
    for start in range(0, 0x10000, 0x1000):
        chars = [chr(c) for c in range(start, start + 0x1000) if not 0xD800 <= c <= 0xDFFF]
        value = {c: c for c in chars}
        data = rfc8785.dumps(value)
        assert canonicalize(value) == data
        assert parse_canonical(data) == value


@pytest.mark.parametrize(
    "data",
    [
        b"1.5",
        b"-0.0",
        b"[1.0]",
        b'{"a":1.5}',
        b'{"a":[0.5,1]}',
        b"[1e+16]",
        b"[1e-7]",
        b'{"a":{"b":[2,-1.25e+30]}}',
        b'{"a":"x","b":1.5,"c":"y"}',
    ],
    ids=repr,
)
def test_floats_in_the_encoders_own_form_are_refused(data: bytes) -> None:
    # these bytes survive an orjson round trip unchanged: the float check must catch them
    import orjson

    assert orjson.dumps(orjson.loads(data), option=orjson.OPT_SORT_KEYS) == data
    with pytest.raises(InvalidInputError) as e:
        parse_canonical(data)
    assert e.value.code == "input.float"


def test_float_lookalikes_inside_strings_are_accepted() -> None:
    data = b'{"a":"x:1.5,","at":"2025-03-01T08:00:00.125Z","b":[1,"2e+5]"]}'
    assert parse_canonical(data) == {
        "a": "x:1.5,",
        "at": "2025-03-01T08:00:00.125Z",
        "b": [1, "2e+5]"],
    }


def test_str_and_int_subclasses_encode_as_their_values() -> None:
    import enum

    class Kind(enum.StrEnum):
        A = "a"

    class Level(enum.IntEnum):
        FIVE = 5

    value = {Kind.A: Level.FIVE, "b": [Kind.A]}
    assert canonicalize(value) == b'{"a":5,"b":["a"]}' == rfc8785.dumps({"a": 5, "b": ["a"]})
