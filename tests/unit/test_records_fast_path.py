"""The compiled fast validator agrees with the authoritative jsonschema path.

The fast path only short-cuts bodies it accepts, so the property that matters is: it never
accepts a body the jsonschema validator refuses. We also check it accepts every valid sample
body (or it would buy nothing) and agrees on a broad set of mutations of each.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sample_data import SAMPLE

from creditbank.core.records import (
    ENTRY_SCHEMAS,
    _validator,
    fast_accepts,
    record_body_from_sample,
    revocation_body_from_sample,
)

DATA = SAMPLE
LEARNER = "LRN-0123456789ABCDEFGHJK"
COMMITMENT = "q1WcFFI8JwBsv0bbmjOqdpIqpZ2XIPeDdxlr0ZRfW4A="


def _sample_bodies() -> list[tuple[str, dict[str, Any]]]:
    outcomes = json.loads((DATA / "outcomes.json").read_text("utf-8"))
    types = {c["id"]: c for c in json.loads((DATA / "certificate_types.json").read_text("utf-8"))}
    out: list[tuple[str, dict[str, Any]]] = []
    for o in outcomes:
        body = record_body_from_sample(
            o, learner=LEARNER, name_commitment=COMMITMENT, certificate_types=types
        )
        out.append(("record.corrected" if "corrects" in body else "record.posted", body))
        rev = revocation_body_from_sample(o)
        if rev is not None:
            out.append(("record.revoked", rev))
    return out


SAMPLES = _sample_bodies()


def slow_accepts(entry_type: str, body: Any) -> bool:
    return not any(True for _ in _validator(ENTRY_SCHEMAS[entry_type]).iter_errors(body))


def _mutations(body: dict[str, Any]) -> list[dict[str, Any]]:
    """Deletions, type changes, extra members and boundary values, top level and payload."""
    out: list[dict[str, Any]] = []
    replacements: list[Any] = [
        None,
        "",
        "x",
        -1,
        0,
        6,
        2.0,
        True,
        [],
        {},
        "2025-02-30",
        "2025-1-1",
        "2025-01-01\n",
        LEARNER + "\n",
        10**7,
    ]
    for where in ("top", "payload"):
        target_keys = list(body) if where == "top" else list(body.get("payload", {}))
        for k in target_keys:
            b = copy.deepcopy(body)
            (b if where == "top" else b["payload"]).pop(k)
            out.append(b)
            for r in replacements:
                b = copy.deepcopy(body)
                (b if where == "top" else b["payload"])[k] = r
                out.append(b)
        b = copy.deepcopy(body)
        (b if where == "top" else b.setdefault("payload", {}))["unexpected"] = 1
        out.append(b)
    return out


@pytest.mark.parametrize(("entry_type", "body"), SAMPLES, ids=lambda v: str(v)[:20])
def test_fast_path_accepts_every_valid_sample_body(entry_type: str, body: dict[str, Any]) -> None:
    assert slow_accepts(entry_type, body)
    assert fast_accepts(entry_type, body)


def test_fast_path_agrees_on_mutations_of_every_kind() -> None:
    seen_kinds = set()
    checked = 0
    for entry_type, body in SAMPLES:
        key = (entry_type, body.get("kind"))
        if key in seen_kinds:
            continue
        seen_kinds.add(key)
        for m in _mutations(body):
            assert fast_accepts(entry_type, m) == slow_accepts(entry_type, m), (entry_type, m)
            checked += 1
    assert checked > 500


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 10**6) | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(SAMPLES), st.data())
def test_fast_path_never_accepts_what_jsonschema_refuses(sample: Any, data: st.DataObject) -> None:
    entry_type, body = sample
    b = copy.deepcopy(body)
    container = b
    if "payload" in b and data.draw(st.booleans()):
        container = b["payload"]
    keys = [*sorted(container), "extra_member"]
    key = data.draw(st.sampled_from(keys))
    container[key] = data.draw(json_values)
    if fast_accepts(entry_type, b):
        assert slow_accepts(entry_type, b), b
