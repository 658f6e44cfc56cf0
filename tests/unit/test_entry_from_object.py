"""A posted entry is parsed once: :func:`creditbank.core.entries.entry_from_object` builds, from
the JSON object of a request and its canonical bytes, exactly the :class:`Entry` that
:func:`parse_entry` makes of those bytes (every field, the body's member order, the signed
bytes), and refuses exactly what it refuses, with the same error."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from creditbank.core.canonical import canonicalize
from creditbank.core.entries import Entry, build_entry, entry_from_object, parse_entry, sign_entry
from creditbank.core.signing import Ed25519Signer, b64encode, entry_key_id
from creditbank.errors import CreditBankError
from creditbank.service.posting import parse_post_request

SIGNER = Ed25519Signer.from_seed(bytes(range(1, 33)))
KEY_ID = entry_key_id(SIGNER.public_bytes)
AT = datetime(2025, 3, 1, 8, 0, 0, tzinfo=UTC)


def _reversed(value: Any) -> Any:
    """``value`` with every object's members in reverse order (a request's own order)."""
    if isinstance(value, dict):
        return {k: _reversed(value[k]) for k in reversed(list(value))}
    if isinstance(value, list):
        return [_reversed(v) for v in value]
    return value


def _signed(body: dict[str, Any], type_: str = "record.posted") -> dict[str, Any]:
    """A signed entry object (as a request would carry it), members in a non-JCS order at
    every level."""
    obj = json.loads(sign_entry(build_entry(type_, "COL-1", KEY_ID, AT, body), SIGNER))
    out: dict[str, Any] = _reversed(obj)
    return out


def _same(a: Entry, b: Entry) -> None:
    assert (a.type, a.issuer, a.key_id, a.at, a.sig, a.raw) == (
        b.type,
        b.issuer,
        b.key_id,
        b.at,
        b.sig,
        b.raw,
    )
    # equal, and in the same member order at every level (json.dumps keeps dict order)
    assert json.dumps(a.body, ensure_ascii=False) == json.dumps(b.body, ensure_ascii=False)
    assert a.signed_bytes == b.signed_bytes


BODIES = [
    {"record_id": "R1", "learner": "LRN-0123456789ABCDEF", "credits_centi": 300},
    {"z": 1, "a": {"y": [1, {"b": 2, "a": None}], "x": True}, "m": "学分"},
    # JCS orders by UTF-16 code units: a key outside the BMP sorts before "\uffff"
    {"\U0001f600": 1, "\uffff": 2, "a": 3, "é": 4},
    {},
]


@pytest.mark.parametrize("body", BODIES, ids=range(len(BODIES)))
def test_the_entry_is_the_one_parse_entry_makes(body: dict[str, Any]) -> None:
    obj = _signed(body)
    raw = canonicalize(obj)
    _same(entry_from_object(obj, raw), parse_entry(raw))
    assert list(entry_from_object(obj, raw).body) == list(parse_entry(raw).body)
    # as a client posts it: the canonical bytes it signed, members already in JCS order
    _same(entry_from_object(json.loads(raw), raw), parse_entry(raw))


def _refusal(obj: Any) -> tuple[str, str, str] | None:
    try:
        raw = canonicalize(obj)
    except CreditBankError:
        return None  # refused before either is asked (parse_post_request does this)
    outcomes = []
    for make in (lambda: entry_from_object(obj, raw), lambda: parse_entry(raw)):
        try:
            make()
        except CreditBankError as e:
            outcomes.append((type(e).__name__, e.code, e.message))
        else:
            outcomes.append(("accepted", "", ""))
    assert outcomes[0] == outcomes[1], obj
    return outcomes[0]


MUTATIONS: list[tuple[str, Any]] = [
    ("v", 2),
    ("v", True),
    ("type", "record.deleted"),
    ("issuer", "-bad"),
    ("issuer", 7),
    ("key_id", "ed25519:XYZ"),
    ("at", "2025-03-01"),
    ("at", "2025-03-01T08:00:00+08:00"),
    ("body", []),
    ("sig", 12),
    ("sig", "not base64!"),
    ("extra", 1),
]


@pytest.mark.parametrize(("field", "value"), MUTATIONS)
def test_a_malformed_entry_is_refused_alike(field: str, value: Any) -> None:
    obj = _signed(BODIES[0]) | {field: value}
    got = _refusal(obj)
    assert got is not None
    assert got[0] != "accepted"


def test_missing_members_non_objects_and_oversize_are_refused_alike() -> None:
    obj = _signed(BODIES[0])
    for field in obj:
        assert _refusal({k: v for k, v in obj.items() if k != field})[0] != "accepted"  # type: ignore[index]
    for value in ([obj], "entry", 1, None):
        assert _refusal(value)[0] != "accepted"  # type: ignore[index]
    big = obj | {"body": {"note": "x" * (64 * 1024)}}  # over MAX_ENTRY_SIZE: refused first
    assert _refusal(big)[1] == "input.too_large"  # type: ignore[index]


_KEYS = st.text(min_size=1, max_size=6)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_KEYS, inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(_KEYS, _JSON, max_size=6))
def test_any_body_gives_the_same_entry(body: dict[str, Any]) -> None:
    try:
        obj = _signed(body)
    except CreditBankError:
        return  # a body canonicalize refuses (a lone surrogate) is never an entry
    raw = canonicalize(obj)
    _same(entry_from_object(obj, raw), parse_entry(raw))
    _same(entry_from_object(json.loads(raw), raw), parse_entry(raw))


def test_a_post_request_hands_parsed_entries_and_the_bytes_of_the_rest() -> None:
    good, bad = _signed(BODIES[0]), _signed(BODIES[1]) | {"v": 2}
    names = ["赵小林", None]
    request = parse_post_request(json.dumps({"entries": [good, bad], "names": names}).encode())
    entries = request.entries()
    assert isinstance(entries[0], Entry)
    _same(entries[0], parse_entry(request.raws[0]))
    assert entries[1] == request.raws[1] == canonicalize(bad)  # the ledger refuses it as before
    assert request.raws[0] == canonicalize(good)
    assert b64encode(entries[0].sig) == good["sig"]
