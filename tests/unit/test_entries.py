"""Entry envelope parsing: ``parse_entry`` and its bulk twin ``parse_entry_fields`` (the audit's
parser) accept and refuse exactly the same bytes, with the same error codes."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from creditbank.core import entries
from creditbank.core.canonical import canonicalize
from creditbank.core.entries import (
    build_entry,
    parse_entry,
    parse_entry_fields,
    sign_entry,
)
from creditbank.core.signing import Ed25519Signer, b64encode, entry_key_id, load_public_key
from creditbank.errors import CreditBankError, InvalidInputError

SIGNER = Ed25519Signer.from_seed(bytes(range(32)))
KEY_ID = entry_key_id(SIGNER.public_bytes)
AT = datetime(2025, 3, 1, 8, 0, 0, 125000, tzinfo=UTC)


def _entry(body: dict[str, Any] | None = None, **over: Any) -> bytes:
    obj = build_entry(
        over.pop("type_", "record.posted"),
        over.pop("issuer", "COL-1"),
        KEY_ID,
        over.pop("at", AT),
        body if body is not None else {"record_id": "R1", "credits": 300, "name": "学分"},
    )
    return sign_entry(obj, SIGNER)


def _resigned(obj: dict[str, Any]) -> bytes:
    """Canonical bytes of ``obj`` with a real signature over the rest (envelope unchecked)."""
    unsigned = {k: v for k, v in obj.items() if k != "sig"}
    return canonicalize({**unsigned, "sig": b64encode(SIGNER.sign(canonicalize(unsigned)))})


def test_fields_agree_with_parse_entry_on_a_valid_entry() -> None:
    raw = _entry()
    e = parse_entry(raw)
    obj, sig, msg, at = parse_entry_fields(raw)
    assert (obj["type"], obj["issuer"], obj["key_id"], obj["at"]) == (
        e.type,
        e.issuer,
        e.key_id,
        e.at,
    )
    assert obj["body"] == e.body
    assert sig == e.sig
    assert msg == e.signed_bytes == canonicalize({k: v for k, v in obj.items() if k != "sig"})
    assert at == e.at_time == AT
    load_public_key(SIGNER.public_bytes).verify(sig, msg)  # raises if msg is not what was signed


def _bad_entries() -> list[tuple[str, bytes]]:
    good = parse_entry(_entry())
    base: dict[str, Any] = {
        "v": 1,
        "type": good.type,
        "issuer": good.issuer,
        "key_id": good.key_id,
        "at": good.at,
        "body": dict(good.body),
    }
    cases = [
        ("v2", {**base, "v": 2}),
        ("v true", {**base, "v": True}),
        ("unknown type", {**base, "type": "record.deleted"}),
        ("issuer with space", {**base, "issuer": "COL 1"}),
        ("issuer not text", {**base, "issuer": 7}),
        ("issuer too long", {**base, "issuer": "C" * 65}),
        ("key id upper hex", {**base, "key_id": KEY_ID.upper()}),
        ("key id short", {**base, "key_id": KEY_ID[:-1]}),
        ("at without Z", {**base, "at": "2025-03-01T08:00:00"}),
        ("at on 30 February", {**base, "at": "2025-02-30T08:00:00Z"}),
        ("at in other digits", {**base, "at": "２025-03-01T08:00:00Z"}),
        ("body a list", {**base, "body": [1]}),
        ("extra field", {**base, "extra": 1}),
    ]
    out = [(name, _resigned(obj)) for name, obj in cases]
    raw = _entry()
    out += [
        ("missing field", canonicalize({k: v for k, v in base.items() if k != "at"} | {"sig": ""})),
        ("not canonical", raw.replace(b'{"at"', b'{ "at"')),
        ("float in body", raw.replace(b'"credits":300', b'"credits":1.5')),
        ("big integer in body", raw.replace(b'"credits":300', b'"credits":9007199254740992')),
        ("sig not base64", raw.replace(b'"sig":"', b'"sig":"*')),
        ("sig not canonical base64", _with_sig(raw, "AB==")),
        ("not an object", b"[1,2]"),
        ("too large", b'{"a":"' + b"x" * entries.MAX_ENTRY_SIZE + b'"}'),
    ]
    return out


def _with_sig(raw: bytes, sig_text: str) -> bytes:
    obj = json.loads(raw)
    obj["sig"] = sig_text
    return canonicalize(obj)


@pytest.mark.parametrize(
    ("name", "raw"), _bad_entries(), ids=lambda x: x if isinstance(x, str) else ""
)
def test_fields_refuse_what_parse_entry_refuses(name: str, raw: bytes) -> None:
    with pytest.raises(CreditBankError) as want:
        parse_entry(raw)
    with pytest.raises(CreditBankError) as got:
        parse_entry_fields(raw)
    assert type(got.value) is type(want.value)
    assert got.value.code == want.value.code


def test_remembered_ids_never_admit_a_bad_one() -> None:
    # fill the memo of well-formed ids past its bound; bad ids are refused every time
    for i in range(entries._VALID_MAX + 10):
        parse_entry_fields(_entry(issuer=f"COL-{i}"))
    assert len(entries._VALID_IDS) <= entries._VALID_MAX
    bad = _resigned({**json.loads(_entry()), "issuer": "COL 1"})
    for _ in range(2):
        with pytest.raises(InvalidInputError) as e:
            parse_entry_fields(bad)
        assert e.value.code == "entry.issuer"


def test_a_repeated_sig_member_gives_no_signed_bytes() -> None:
    raw = _entry()
    sig_text = b64encode(parse_entry(raw).sig)
    # a body member with the same name and value as the top-level sig: the cut is ambiguous
    twin = _resigned_with_body_sig(raw, sig_text)
    _, _, msg, _ = parse_entry_fields(twin)
    assert msg is None
    with pytest.raises(InvalidInputError) as e:
        _ = parse_entry(twin).signed_bytes
    assert e.value.code == "entry.bad_sig"


def _resigned_with_body_sig(raw: bytes, sig_text: str) -> bytes:
    obj = json.loads(raw)
    obj["body"] = {**obj["body"], "z": {"a": 1, "sig": sig_text}}
    return canonicalize(obj)
