"""The JCS fast paths (orjson, ADR 0005) agree with the ``rfc8785`` reference and the strict
reference parser on generated documents, including the ones they must refuse."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from creditbank.core import canonical
from creditbank.core.canonical import MAX_SAFE_INT, canonicalize, parse_canonical
from creditbank.errors import InvalidInputError

# strings over the whole of Unicode except lone surrogates, weighted towards the awkward parts
_chars = st.one_of(
    st.characters(codec="utf-8"),
    st.sampled_from(["\x00", "\x1f", "\x7f", '"', "\\", "/", "\u2028", "\ufeff", "\U0001f600"]),
    st.sampled_from(["\ufb33", "\ue000", "\uffff", "\U00010000", "é", "中"]),
)
_text = st.text(_chars, max_size=8)
_ints = st.one_of(
    st.integers(-MAX_SAFE_INT, MAX_SAFE_INT),
    st.sampled_from([MAX_SAFE_INT + 1, -MAX_SAFE_INT - 1, 2**63, 2**64, -(2**63) - 1]),
)
_floats = st.floats(allow_nan=False, allow_infinity=False)
_scalars = st.one_of(st.none(), st.booleans(), _ints, _text)
# JSON values that may hold floats and out-of-range integers (which must be refused)
_values = st.recursive(
    st.one_of(_scalars, _floats),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(_text, inner, max_size=4)),
    max_leaves=20,
)


def _reference_verdict(data: bytes) -> tuple[str, Any]:
    try:
        return "ok", canonical._parse_canonical_reference(data)
    except InvalidInputError as e:
        return "error", e.code


def _fast_verdict(data: bytes) -> tuple[str, Any]:
    try:
        return "ok", canonical._parse_canonical_fast(data)
    except Exception:
        return "miss", None


@settings(max_examples=600, deadline=None)
@given(_values)
def test_canonicalize_agrees_with_rfc8785(value: Any) -> None:
    try:
        canonical._check_value(value)
    except InvalidInputError:
        with pytest.raises(InvalidInputError):
            canonicalize(value)
        return
    assert canonicalize(value) == rfc8785.dumps(value)


def _spellings(value: Any) -> list[bytes]:
    """The ways a producer might write ``value``: canonical and not."""
    writers = [
        lambda: orjson.dumps(value),
        lambda: orjson.dumps(value, option=orjson.OPT_SORT_KEYS),
        lambda: rfc8785.dumps(value),
    ]
    for sort in (True, False):
        writers += [
            lambda sort=sort: json.dumps(value, sort_keys=sort, separators=(",", ":")).encode(),
            lambda sort=sort: json.dumps(value, sort_keys=sort, ensure_ascii=False).encode(),
            lambda sort=sort: json.dumps(
                value, sort_keys=sort, ensure_ascii=False, separators=(",", ":")
            ).encode(),
        ]
    out = []
    for write in writers:
        try:
            out.append(write())
        except Exception:  # noqa: S112 - a writer that cannot write this value: skip it
            continue
    return out


@settings(max_examples=600, deadline=None)
@given(_values)
def test_fast_parse_accepts_only_what_the_reference_accepts(value: Any) -> None:
    for data in _spellings(value):
        fast, ref = _fast_verdict(data), _reference_verdict(data)
        if fast[0] == "ok":
            assert ref == fast, data
        # and parse_canonical gives the reference's verdict either way
        if ref[0] == "ok":
            assert parse_canonical(data) == ref[1]
        else:
            with pytest.raises(InvalidInputError) as e:
                parse_canonical(data)
            assert e.value.code == ref[1]


@settings(max_examples=300, deadline=None)
@given(_values, st.data())
def test_fast_parse_on_mutated_bytes(value: Any, data: st.DataObject) -> None:
    try:
        raw = bytearray(orjson.dumps(value, option=orjson.OPT_SORT_KEYS))
    except TypeError:  # an integer beyond 64 bits
        return
    if not raw:
        return
    for _ in range(data.draw(st.integers(1, 3))):
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] = data.draw(st.sampled_from(b'{}[],:"\\.e+-0159 aZ\xc3\xf0'))
    mutated = bytes(raw)
    fast, ref = _fast_verdict(mutated), _reference_verdict(mutated)
    if fast[0] == "ok":
        assert ref == fast, mutated


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(_text, _scalars, max_size=6))
def test_canonical_documents_take_the_fast_path(value: dict[str, Any]) -> None:
    """Canonical documents of our domain with BMP text are accepted without the reference
    (this is what makes the audit fast); any float token sends them to the walk."""
    try:
        data = canonicalize(value)
    except InvalidInputError:
        return
    if any(ord(c) > 0xFFFF for c in data.decode()):
        return
    assert _fast_verdict(data) == ("ok", value)
