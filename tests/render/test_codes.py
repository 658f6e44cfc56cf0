"""Verification codes: 80 bits, Crockford base32, typed forgivingly."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from creditbank.core.codes import (
    ALPHABET,
    CODE_BYTES,
    code_to_bytes,
    format_code,
    generate_code,
    normalize_code,
)
from creditbank.errors import InvalidInputError


def test_known_bytes_give_known_code() -> None:
    assert generate_code(bytes(10)) == "0" * 16
    assert generate_code(b"\xff" * 10) == "Z" * 16
    # 0x0123456789abcdef0123 -> 5-bit groups, checked by hand against the alphabet
    number = 0x0123456789ABCDEF0123
    want = "".join(ALPHABET[(number >> (5 * (15 - i))) & 31] for i in range(16))
    assert generate_code(number.to_bytes(10, "big")) == want


def test_format_groups_of_four() -> None:
    assert format_code("7K3M9Q2RXW5T8V4N") == "7K3M-9Q2R-XW5T-8V4N"


@pytest.mark.parametrize(
    "typed",
    [
        "7K3M-9Q2R-XW5T-8V4N",
        "7k3m9q2rxw5t8v4n",
        " 7k3m 9q2r-xw5t 8v4n ",
        "7K3M--9Q2R-XW5T-8V4N",
    ],
)
def test_normalize_accepts_what_people_type(typed: str) -> None:
    assert normalize_code(typed) == "7K3M9Q2RXW5T8V4N"


def test_confusables_map_to_digits() -> None:
    assert normalize_code("OOOO-IIII-LLLL-oil0") == "0000111111110110"


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "7K3M-9Q2R-XW5T",
        "7K3M-9Q2R-XW5T-8V4NX",
        "UUUU-0000-0000-0000",
        "7K3M_9Q2R_XW5T_8V4N",
        "７K3M9Q2RXW5T8V4N",
        "x" * 65,
    ],
)
def test_normalize_refuses_non_codes(bad: str) -> None:
    with pytest.raises(InvalidInputError) as e:
        normalize_code(bad)
    assert e.value.code == "code.malformed"


@pytest.mark.parametrize("size", [0, 9, 11])
def test_generate_needs_exactly_ten_bytes(size: int) -> None:
    with pytest.raises(InvalidInputError) as e:
        generate_code(bytes(size))
    assert e.value.code == "code.entropy"


@given(st.binary(min_size=CODE_BYTES, max_size=CODE_BYTES))
def test_round_trip(raw: bytes) -> None:
    code = generate_code(raw)
    assert len(code) == 16
    assert set(code) <= set(ALPHABET)
    assert normalize_code(format_code(code).lower()) == code
    assert code_to_bytes(format_code(code)) == raw


def _normalize_reference(text: str) -> str | None:
    """The rules of normalize_code spelled out character by character (None: refused)."""
    if len(text) > 64 or not text.isascii():
        return None
    out = []
    for ch in text.strip().upper():
        if ch in "- \t":
            continue
        ch = {"O": "0", "I": "1", "L": "1"}.get(ch, ch)
        if ch not in "0123456789ABCDEFGHJKMNPQRSTVWXYZ":
            return None
        out.append(ch)
    return "".join(out) if len(out) == 16 else None


@given(
    st.one_of(
        st.text(alphabet="0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ- \t\n_é",
                max_size=70),
        # mostly codes, as people type them: case, confusables, separators, a length off by a few
        st.lists(st.sampled_from([*ALPHABET, *ALPHABET.lower(), "o", "i", "l", "-", " ", "U"]),
                 min_size=14, max_size=24).map("".join),
    )
)  # fmt: skip
def test_normalize_follows_its_rules_character_by_character(text: str) -> None:
    expected = _normalize_reference(text)
    if expected is None:
        with pytest.raises(InvalidInputError):
            normalize_code(text)
    else:
        assert normalize_code(text) == expected
