"""One validation of personal names (issue #12), shared by the bank and the signing client."""

from __future__ import annotations

import unicodedata
from datetime import date
from pathlib import Path

import pytest

from creditbank.client.csvformat import parse_file
from creditbank.core.identity import MAX_NAME_LENGTH, check_person_name
from creditbank.errors import InvalidInputError

GOOD = [
    "王建国",
    "José María",
    "Zoë O'Brien-Smith",
    "محمد\u200cرضا",  # ZWNJ: Persian needs it
    "क्\u200dष",  # ZWJ
    "Ｎａｍｅ",  # full-width letters are letters
    "x" * MAX_NAME_LENGTH,
]
BAD = {
    "U+202E RIGHT-TO-LEFT OVERRIDE": "Ali\u202eecnirP",
    "U+0000": "王\u0000建国",
    "U+2066 LEFT-TO-RIGHT ISOLATE": "a\u2066b",
    "U+200F RIGHT-TO-LEFT MARK": "\u200fA",
    "U+061C ARABIC LETTER MARK": "a\u061cb",
    "U+0378 unassigned": "\u0378x",
    "U+E000 private use": "\ue000",
    "U+2028 LINE SEPARATOR": "a\u2028b",
    "U+0085 NEXT LINE": "a\u0085b",
    "U+FEFF BOM": "\ufeffAnn",
    "only spaces": " \t ",
    "empty": "",
    "too long": "x" * (MAX_NAME_LENGTH + 1),
    "lone surrogate": "a\ud800",
}


@pytest.mark.parametrize("name", GOOD)
def test_good_names_come_back_in_nfc(name: str) -> None:
    assert check_person_name(name) == unicodedata.normalize("NFC", name)


def test_decomposed_names_are_normalized_and_measured_after_nfc() -> None:
    assert check_person_name("Jose\u0301") == "José"
    assert check_person_name("e\u0301" * MAX_NAME_LENGTH) == "é" * MAX_NAME_LENGTH


@pytest.mark.parametrize("name", list(BAD.values()), ids=list(BAD))
def test_bad_names_are_refused_without_echoing_the_name(name: str) -> None:
    with pytest.raises(InvalidInputError) as e:
        check_person_name(name)
    assert e.value.code == "identity.name"
    if len(name) > 3:
        assert name not in e.value.message


def test_non_text_is_refused() -> None:
    with pytest.raises(InvalidInputError):
        check_person_name(42)


def test_the_client_refuses_what_the_bank_refuses(tmp_path: Path) -> None:
    from client.rows import record, write_csv

    good = record(1)
    bad = record(2) | {"learner_name": "Ali\u202eecnirP"}
    path = write_csv(tmp_path / "in.csv", [good, bad])
    parsed = parse_file(path, issuer="INS-T", today=date(2025, 6, 1))
    codes = {e.record_id: e.code for e in parsed.errors}
    assert codes == {bad["record_id"]: "identity.name"}
