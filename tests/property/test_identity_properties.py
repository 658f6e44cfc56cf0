"""Identity numbers, by property:

* every generated valid number (GB 11643 resident ID, 2023 and 2017 permanent-resident IDs)
  passes and normalizes to itself, whatever the case of its letters;
* any single-digit change of a valid number fails the checksum (``identity.checksum``):
  MOD 11-2 and the 7-3-1 check digit both detect every single substitution of a digit;
* arbitrary text never raises anything but ``InvalidInputError``;
* name commitments ignore the Unicode normalization form of the name.

Hypothesis is derandomized, so every run is the same.
"""

from __future__ import annotations

import unicodedata
from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from creditbank.core.identity import (
    FOREIGN_PERMANENT_RESIDENT_ID,
    ISO_ALPHA3,
    ISO_NUMERIC_TO_ALPHA3,
    MAINLAND_PROVINCES,
    PASSPORT,
    RESIDENT_ID,
    RESIDENT_ID_PROVINCES,
    gb11643_check_char,
    icao_check_digit,
    name_commitment,
    normalize_identity,
)
from creditbank.errors import InvalidInputError

SETTINGS = settings(derandomize=True, max_examples=300, deadline=None)

births = st.dates(min_value=date(1900, 1, 1), max_value=date(2025, 12, 31))
digits = st.text("0123456789", min_size=1, max_size=1)


@st.composite
def resident_ids(draw: st.DrawFn) -> str:
    province = draw(st.sampled_from(sorted(RESIDENT_ID_PROVINCES)))
    area = draw(st.text("0123456789", min_size=4, max_size=4))
    born = draw(births).strftime("%Y%m%d")
    seq = draw(st.text("0123456789", min_size=3, max_size=3))
    first17 = province + area + born + seq
    return first17 + gb11643_check_char(first17)


@st.composite
def fpr_2023_ids(draw: st.DrawFn) -> str:
    province = draw(st.sampled_from(sorted(MAINLAND_PROVINCES)))
    nat = draw(st.sampled_from(sorted(n for n, a in ISO_NUMERIC_TO_ALPHA3.items() if a != "CHN")))
    born = draw(births).strftime("%Y%m%d")
    seq = draw(st.text("0123456789", min_size=3, max_size=3))
    first17 = "9" + province + nat + born + seq
    return first17 + gb11643_check_char(first17)


@st.composite
def fpr_2017_ids(draw: st.DrawFn) -> str:
    nat = draw(st.sampled_from(sorted(ISO_ALPHA3 - {"CHN"})))
    region = draw(st.sampled_from(sorted(MAINLAND_PROVINCES))) + draw(
        st.text("0123456789", min_size=2, max_size=2)
    )
    born = draw(births).strftime("%y%m%d")
    seq = draw(digits)
    first14 = nat + region + born + seq
    return first14 + icao_check_digit(first14)


def _change_one_digit(number: str, data: st.DataObject) -> str:
    positions = [i for i, c in enumerate(number) if c.isdigit()]
    i = data.draw(st.sampled_from(positions), label="position")
    new = data.draw(st.sampled_from([d for d in "0123456789" if d != number[i]]), label="digit")
    return number[:i] + new + number[i + 1 :]


@SETTINGS
@given(resident_ids())
def test_valid_resident_ids_pass(number: str) -> None:
    doc = normalize_identity(RESIDENT_ID, number.lower())
    assert doc.number == number
    assert doc.nationality == "CHN"


@SETTINGS
@given(fpr_2023_ids())
def test_valid_2023_permanent_resident_ids_pass(number: str) -> None:
    doc = normalize_identity(FOREIGN_PERMANENT_RESIDENT_ID, number.lower())
    assert doc.number == number
    assert doc.nationality == ISO_NUMERIC_TO_ALPHA3[number[3:6]]


@SETTINGS
@given(fpr_2017_ids())
def test_valid_2017_permanent_resident_ids_pass(number: str) -> None:
    doc = normalize_identity(FOREIGN_PERMANENT_RESIDENT_ID, number.lower())
    assert doc.number == number
    assert doc.nationality == number[:3]


def _fails_checksum(doc_type: str, number: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        normalize_identity(doc_type, number)
    assert info.value.code == "identity.checksum", (number, info.value.code)


@SETTINGS
@given(resident_ids(), st.data())
def test_one_digit_change_fails_resident_checksum(number: str, data: st.DataObject) -> None:
    _fails_checksum(RESIDENT_ID, _change_one_digit(number, data))


@SETTINGS
@given(fpr_2023_ids(), st.data())
def test_one_digit_change_fails_2023_checksum(number: str, data: st.DataObject) -> None:
    changed = _change_one_digit(number, data)
    if changed[0] == "9":  # changing the leading 9 makes it another document's shape
        _fails_checksum(FOREIGN_PERMANENT_RESIDENT_ID, changed)


@SETTINGS
@given(fpr_2017_ids(), st.data())
def test_one_digit_change_fails_2017_checksum(number: str, data: st.DataObject) -> None:
    _fails_checksum(FOREIGN_PERMANENT_RESIDENT_ID, _change_one_digit(number, data))


@SETTINGS
@given(resident_ids(), st.data())
def test_check_char_x_and_digit_swaps(number: str, data: st.DataObject) -> None:
    # Replacing the check character with any other valid one also fails the checksum.
    other = data.draw(st.sampled_from([c for c in "0123456789X" if c != number[-1]]))
    _fails_checksum(RESIDENT_ID, number[:-1] + other)


@SETTINGS
@given(
    st.sampled_from([RESIDENT_ID, FOREIGN_PERMANENT_RESIDENT_ID, PASSPORT, "other"]),
    st.text(max_size=24),
    st.one_of(st.none(), st.text(max_size=4)),
)
def test_arbitrary_input_raises_only_invalid_input(
    doc_type: str, number: str, nationality: str | None
) -> None:
    code = None
    try:
        doc = normalize_identity(doc_type, number, nationality)
    except InvalidInputError as e:
        code = e.code
    else:
        assert normalize_identity(doc.doc_type, doc.number, doc.nationality) == doc
    assert code in {None, "identity.format", "identity.checksum", "identity.nationality"}


@SETTINGS
@given(st.binary(min_size=16, max_size=16), st.text(min_size=1, max_size=40))
def test_commitment_ignores_normalization_form(salt: bytes, name: str) -> None:
    try:
        expected = name_commitment(salt, name)
    except InvalidInputError:  # lone surrogates
        return
    for form in ("NFC", "NFD"):
        assert name_commitment(salt, unicodedata.normalize(form, name)) == expected
