"""Properties of credentials: one changed byte anywhere in the evidence, or one changed
character anywhere in the signed document, is caught by the named check that guards it."""

from __future__ import annotations

import base64
import copy
from functools import cache
from typing import Any

import rfc8785
from credential_fixtures import T_ISSUE, World, make_world
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from creditbank.core.credentials.proof import b58decode, b58encode, jcs
from creditbank.core.credentials.verify import Check, check_credential, failed_checks
from creditbank.core.status_list import StatusList

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@cache
def _world() -> World:
    return make_world()


@cache
def _genuine() -> dict[str, Any]:
    doc: dict[str, Any] = _world().transcript_credential()
    return doc


def _checks(doc: dict[str, Any]) -> list[Check]:
    w = _world()
    return check_credential(
        doc, did_document=w.did_document, keys=w.keys, log_key=w.log_key, now=T_ISSUE
    )


def _resigned(doc: dict[str, Any]) -> dict[str, Any]:
    signed: dict[str, Any] = _world().sign({k: v for k, v in doc.items() if k != "proof"})
    return signed


def _flip_b64(text: str, pos: int, bit: int) -> str:
    raw = bytearray(base64.b64decode(text))
    raw[pos % len(raw)] ^= 1 << bit
    return base64.b64encode(bytes(raw)).decode()


def test_genuine_passes() -> None:
    assert failed_checks(_checks(_genuine())) == []


@SETTINGS
@given(item=st.integers(0, 100), pos=st.integers(0, 1 << 16), bit=st.integers(0, 7))
def test_one_entry_byte_changed(item: int, pos: int, bit: int) -> None:
    doc = copy.deepcopy(_genuine())
    ev = doc["evidence"][item % len(doc["evidence"])]
    ev["entry"] = _flip_b64(ev["entry"], pos, bit)
    failed = failed_checks(_checks(_resigned(doc)))
    idx = ev["entryIndex"]
    assert any(f"[{idx}]." in name or name.startswith("evidence[") for name in failed), failed


@SETTINGS
@given(
    item=st.integers(0, 100),
    hash_no=st.integers(0, 10),
    pos=st.integers(0, 31),
    bit=st.integers(0, 7),
)
def test_one_path_byte_changed(item: int, hash_no: int, pos: int, bit: int) -> None:
    doc = copy.deepcopy(_genuine())
    ev = doc["evidence"][item % len(doc["evidence"])]
    path = ev["inclusionPath"]
    path[hash_no % len(path)] = _flip_b64(path[hash_no % len(path)], pos, bit)
    failed = failed_checks(_checks(_resigned(doc)))
    inclusion = [n for n in _names() if n.endswith(f"[{ev['entryIndex']}].inclusion")]
    assert failed == inclusion


@cache
def _names() -> list[str]:
    return [c.name for c in _checks(_genuine())]


@SETTINGS
@given(pos=st.integers(0, 1 << 12), delta=st.integers(1, 25))
def test_one_checkpoint_character_changed(pos: int, delta: int) -> None:
    doc = copy.deepcopy(_genuine())
    text = doc["evidence"][0]["checkpoint"]
    i = pos % len(text)
    changed = text[:i] + chr((ord(text[i]) + delta) % 0x7F or 0x41) + text[i + 1 :]
    for ev in doc["evidence"]:
        ev["checkpoint"] = changed
    failed = failed_checks(_checks(_resigned(doc)))
    assert failed, "a changed checkpoint went unnoticed"
    assert all(".inclusion" in n or "checkpoint[" in n or n.startswith("evidence[") for n in failed)


@SETTINGS
@given(item=st.integers(0, 100), pos=st.integers(0, 15), bit=st.integers(0, 7))
def test_one_salt_bit_changed(item: int, pos: int, bit: int) -> None:
    doc = copy.deepcopy(_genuine())
    with_salt = [e for e in doc["evidence"] if "salt" in e]
    ev = with_salt[item % len(with_salt)]
    ev["salt"] = _flip_b64(ev["salt"], pos, bit)
    failed = failed_checks(_checks(_resigned(doc)))
    assert failed == [f"record[{ev['entryIndex']}].name_commitment"]


def _leaves(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _leaves(v, (*path, k))]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _leaves(v, (*path, i))]
    if isinstance(value, str) and value:
        return [path]
    return []


@cache
def _string_leaves() -> list[tuple[Any, ...]]:
    return _leaves(_genuine())


@SETTINGS
@given(leaf=st.integers(0, 1 << 20), pos=st.integers(0, 1 << 16), delta=st.integers(1, 1000))
def test_one_character_anywhere_breaks_the_proof(leaf: int, pos: int, delta: int) -> None:
    doc = copy.deepcopy(_genuine())
    path = _string_leaves()[leaf % len(_string_leaves())]
    node: Any = doc
    for p in path[:-1]:
        node = node[p]
    text: str = node[path[-1]]
    i = pos % len(text)
    node[path[-1]] = text[:i] + chr(0x20 + (ord(text[i]) - 0x20 + delta) % 0x2FFF) + text[i + 1 :]
    if node[path[-1]] == text:
        return
    assert "credential.proof" in failed_checks(
        _checks(doc)
    ) or "credential.issuer" in failed_checks(_checks(doc))


@settings(derandomize=True, database=None, max_examples=40, deadline=None)
@given(st.sets(st.integers(0, 131_071), max_size=50))
def test_status_list_round_trip(indices: set[int]) -> None:
    sl = StatusList.with_set(indices)
    again = StatusList.decode(sl.encode())
    assert again.set_indices() == sorted(indices)
    assert all(again.get(i) for i in indices)


@settings(derandomize=True, database=None, max_examples=200, deadline=None)
@given(st.binary(max_size=80))
def test_base58_round_trip(data: bytes) -> None:
    assert b58decode(b58encode(data)) == data


_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53) + 1, 2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=30,
)


@settings(derandomize=True, database=None, max_examples=400, deadline=None)
@given(_JSON)
def test_jcs_fast_path_equals_the_reference(value: Any) -> None:
    try:
        expected = rfc8785.dumps(value)
    except rfc8785.CanonicalizationError:
        return  # e.g. lone surrogates
    assert jcs(value) == expected
