"""Identity documents (GB 11643, both permanent-resident formats, passports), private lookup
keys and name commitments."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import unicodedata
from datetime import date

import pytest
from sample_data import SAMPLE

from creditbank.core.identity import (
    FOREIGN_PERMANENT_RESIDENT_ID,
    ISO_ALPHA3,
    ISO_NUMERIC_TO_ALPHA3,
    PASSPORT,
    RESIDENT_ID,
    IdentityDoc,
    NameCommitmentError,
    gb11643_check_char,
    icao_check_digit,
    identity_lookup_key,
    identity_lookup_key_from_prehashed,
    name_commitment,
    normalize_identity,
    verify_name_commitment,
)
from creditbank.errors import ConfigurationError, InvalidInputError, VerificationError

PEPPER = b"p" * 32
SALT = bytes(range(16))

# The two example numbers printed in GB 11643-1999 itself.
GB_EXAMPLES = ["11010519491231002X", "440524188001010014"]


def _resident(prefix6: str = "320102", born: str = "19860101", seq: str = "001") -> str:
    first17 = prefix6 + born + seq
    return first17 + gb11643_check_char(first17)


def _fpr2023(
    province: str = "11", nat: str = "410", born: str = "19900101", seq: str = "001"
) -> str:
    first17 = "9" + province + nat + born + seq
    return first17 + gb11643_check_char(first17)


def _fpr2017(nat: str = "KOR", region: str = "3201", born: str = "900101", seq: str = "1") -> str:
    first14 = nat + region + born + seq
    return first14 + icao_check_digit(first14)


def _wrong_check(number: str) -> str:
    return number[:-1] + ("1" if number[-1] == "0" else "0")


def _code(exc: pytest.ExceptionInfo[InvalidInputError]) -> str:
    return exc.value.code


# --- GB 11643-1999 ----------------------------------------------------------------------------
@pytest.mark.parametrize("number", GB_EXAMPLES)
def test_standard_examples(number: str) -> None:
    doc = normalize_identity(RESIDENT_ID, number)
    assert doc == IdentityDoc(RESIDENT_ID, number, "CHN")


def test_check_char_known_answers() -> None:
    assert gb11643_check_char("11010519491231002") == "X"
    assert gb11643_check_char("44052418800101001") == "4"


def test_lowercase_x_and_whitespace_normalized() -> None:
    doc = normalize_identity(RESIDENT_ID, " 11010519491231002x\n")
    assert doc.number == "11010519491231002X"
    assert normalize_identity(RESIDENT_ID, "11010519491231002X", "chn").nationality == "CHN"


def test_every_check_value_including_x() -> None:
    seen = set()
    for seq in range(200):
        number = _resident(seq=f"{seq:03d}")
        seen.add(number[-1])
        assert normalize_identity(RESIDENT_ID, number).number == number
    assert seen == set("0123456789X")


@pytest.mark.parametrize(
    ("number", "code"),
    [
        ("11010519491231002", "identity.format"),  # 17 chars
        ("11010519491231002X1", "identity.format"),  # 19 chars
        ("1101051949123100XX", "identity.format"),  # X not last
        ("110105 19491231002X", "identity.format"),  # inner space
        ("110105-19491231002X", "identity.format"),
        ("１１0105194912310020", "identity.format"),  # full-width digits
        ("110105194912310021", "identity.checksum"),
        ("11010519491231002Y", "identity.format"),
        ("110105194912310029", "identity.checksum"),
        ("", "identity.format"),
    ],
)
def test_bad_resident_ids(number: str, code: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        normalize_identity(RESIDENT_ID, number)
    assert _code(info) == code


@pytest.mark.parametrize(
    "born", ["19860230", "19861301", "19860001", "18491231", "00000101", "20230229"]
)
def test_bad_birth_date(born: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        normalize_identity(RESIDENT_ID, _resident(born=born))
    assert _code(info) == "identity.format"


def test_leap_day_birth_date() -> None:
    normalize_identity(RESIDENT_ID, _resident(born="20000229"))


def test_birth_date_after_today() -> None:
    number = _resident(born="20250601")
    normalize_identity(RESIDENT_ID, number, today=date(2025, 6, 1))
    with pytest.raises(InvalidInputError) as info:
        normalize_identity(RESIDENT_ID, number, today=date(2025, 5, 31))
    assert _code(info) == "identity.format"


@pytest.mark.parametrize("prefix", ["000000", "100000", "160000", "900000", "990000", "720000"])
def test_bad_province(prefix: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        normalize_identity(RESIDENT_ID, _resident(prefix6=prefix))
    assert _code(info) == "identity.format"


@pytest.mark.parametrize("prefix", ["810000", "820000", "830000", "650102", "110105"])
def test_residence_permit_and_mainland_prefixes(prefix: str) -> None:
    normalize_identity(RESIDENT_ID, _resident(prefix6=prefix))


def test_resident_id_nationality_must_be_chn() -> None:
    with pytest.raises(InvalidInputError) as info:
        normalize_identity(RESIDENT_ID, GB_EXAMPLES[0], "KOR")
    assert _code(info) == "identity.nationality"


def test_resident_id_is_not_a_permanent_resident_id() -> None:
    with pytest.raises(InvalidInputError) as info:
        normalize_identity(RESIDENT_ID, _fpr2023())
    assert _code(info) == "identity.format"  # 9x is not a province


# --- foreign permanent resident ID, 2023 edition ----------------------------------------------
def test_fpr_2023_valid() -> None:
    number = _fpr2023(nat="410")
    doc = normalize_identity(FOREIGN_PERMANENT_RESIDENT_ID, number)
    assert doc == IdentityDoc(FOREIGN_PERMANENT_RESIDENT_ID, number, "KOR")
    assert normalize_identity(FOREIGN_PERMANENT_RESIDENT_ID, number, "kor") == doc


def test_fpr_2023_lowercase_x() -> None:
    for seq in range(200):
        number = _fpr2023(seq=f"{seq:03d}")
        if number.endswith("X"):
            doc = normalize_identity(FOREIGN_PERMANENT_RESIDENT_ID, number.lower())
            assert doc.number == number
            return
    raise AssertionError("no X check character in 200 sequences")


@pytest.mark.parametrize(
    ("number", "code"),
    [
        (_wrong_check(_fpr2023()), "identity.checksum"),
        (_fpr2023(province="99"), "identity.format"),
        (_fpr2023(province="81"), "identity.format"),  # accepting authority is on the mainland
        (_fpr2023(nat="000"), "identity.nationality"),
        (_fpr2023(nat="156"), "identity.nationality"),  # CHN
        (_fpr2023(born="19900230"), "identity.format"),
        ("9" + "1" * 16, "identity.format"),
        ("8" + _fpr2023()[1:], "identity.format"),  # not 9: a resident ID shape
    ],
    ids=["checksum", "province", "hk-province", "nationality", "chn", "birth", "short", "not-9"],
)
def test_fpr_2023_invalid(number: str, code: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        normalize_identity(FOREIGN_PERMANENT_RESIDENT_ID, number)
    assert _code(info) == code


def test_fpr_nationality_must_agree() -> None:
    with pytest.raises(InvalidInputError) as info:
        normalize_identity(FOREIGN_PERMANENT_RESIDENT_ID, _fpr2023(nat="410"), "USA")
    assert _code(info) == "identity.nationality"
    with pytest.raises(InvalidInputError) as info:
        normalize_identity(FOREIGN_PERMANENT_RESIDENT_ID, _fpr2017(nat="KOR"), "JPN")
    assert _code(info) == "identity.nationality"


# --- foreign permanent resident ID, 2017 edition ----------------------------------------------
def test_fpr_2017_known_vector() -> None:
    # The test vector of the credentialkit validator cited in identity.py.
    assert icao_check_digit("KAZ11009012310") == "5"
    doc = normalize_identity(FOREIGN_PERMANENT_RESIDENT_ID, "kaz110090123105")
    assert doc == IdentityDoc(FOREIGN_PERMANENT_RESIDENT_ID, "KAZ110090123105", "KAZ")


def test_icao_check_digit_mrz_example() -> None:
    # ICAO 9303 Part 3 worked example: document number L898902C3 has check digit 6.
    assert icao_check_digit("L898902C3") == "6"
    with pytest.raises(InvalidInputError):
        icao_check_digit("L898902C<")


@pytest.mark.parametrize(
    ("number", "code"),
    [
        ("KAZ110090123104", "identity.checksum"),
        (_fpr2017(nat="XYZ"), "identity.nationality"),
        (_fpr2017(nat="CHN"), "identity.nationality"),
        (_fpr2017(region="9901"), "identity.format"),
        (_fpr2017(born="010229"), "identity.format"),  # not a leap year in 1901 or 2001
        (_fpr2017(born="901301"), "identity.format"),
        ("KA1110090123105", "identity.format"),
        ("KAZ11009012310", "identity.format"),
    ],
    ids=["checksum", "nationality", "chn", "region", "feb-29", "month-13", "shape", "short"],
)
def test_fpr_2017_invalid(number: str, code: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        normalize_identity(FOREIGN_PERMANENT_RESIDENT_ID, number)
    assert _code(info) == code


def test_fpr_2017_century_ambiguity() -> None:
    normalize_identity(FOREIGN_PERMANENT_RESIDENT_ID, _fpr2017(born="000229"))  # 2000-02-29
    normalize_identity(FOREIGN_PERMANENT_RESIDENT_ID, _fpr2017(born="991231"))
    with pytest.raises(InvalidInputError):  # 1925-06-01 and 2025-06-01 are both after "today"
        normalize_identity(
            FOREIGN_PERMANENT_RESIDENT_ID, _fpr2017(born="250601"), today=date(1920, 1, 1)
        )


# --- passports and nationality --------------------------------------------------------------
def test_passport() -> None:
    doc = normalize_identity(PASSPORT, " c01234567 ", "vnm")
    assert doc == IdentityDoc(PASSPORT, "C01234567", "VNM")
    normalize_identity(PASSPORT, "A1234", "USA")
    normalize_identity(PASSPORT, "A" * 20, "DEU")
    normalize_identity(PASSPORT, "E12345678", "CHN")


@pytest.mark.parametrize(
    ("number", "nationality", "code"),
    [
        ("A123", "USA", "identity.format"),
        ("A" * 21, "USA", "identity.format"),
        ("A123-4567", "USA", "identity.format"),
        ("Ä1234567", "DEU", "identity.format"),
        ("A1234567", None, "identity.nationality"),
        ("A1234567", "US", "identity.nationality"),
        ("A1234567", "XXA", "identity.nationality"),  # ICAO "stateless" is not ISO 3166-1
        ("A1234567", "D", "identity.nationality"),  # ICAO code for Germany, not ISO
        ("A1234567", "UK", "identity.nationality"),
    ],
)
def test_bad_passport(number: str, nationality: str | None, code: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        normalize_identity(PASSPORT, number, nationality)
    assert _code(info) == code


def test_iso_table() -> None:
    assert len(ISO_ALPHA3) == 249
    assert ISO_NUMERIC_TO_ALPHA3["156"] == "CHN"
    assert ISO_NUMERIC_TO_ALPHA3["410"] == "KOR"
    assert ISO_NUMERIC_TO_ALPHA3["704"] == "VNM"
    assert ISO_NUMERIC_TO_ALPHA3["860"] == "UZB"
    assert ISO_NUMERIC_TO_ALPHA3["398"] == "KAZ"
    assert {"USA", "DEU", "GBR", "JPN", "KOR", "VNM", "RUS"} <= ISO_ALPHA3


def test_unknown_doc_type_and_non_text() -> None:
    with pytest.raises(InvalidInputError) as info:
        normalize_identity("driving_licence", "123456")
    assert _code(info) == "identity.format"
    with pytest.raises(InvalidInputError) as info:
        normalize_identity(RESIDENT_ID, 110105194912310020)  # type: ignore[arg-type]
    assert _code(info) == "identity.format"
    with pytest.raises(InvalidInputError) as info:
        normalize_identity(PASSPORT, "A1234567", 840)  # type: ignore[arg-type]
    assert _code(info) == "identity.nationality"


def test_errors_and_repr_do_not_leak_the_number() -> None:
    number = "110105194912310021"
    with pytest.raises(InvalidInputError) as info:
        normalize_identity(RESIDENT_ID, number)
    assert number not in str(info.value)
    doc = normalize_identity(RESIDENT_ID, GB_EXAMPLES[0])
    assert GB_EXAMPLES[0] not in repr(doc)
    assert doc.masked == "11**************2X"
    assert normalize_identity(PASSPORT, "P1234567", "VNM").masked == "P*****67"


# --- lookup keys ------------------------------------------------------------------------------
def test_lookup_key_known_answer() -> None:
    doc = normalize_identity(RESIDENT_ID, GB_EXAMPLES[0])
    expected = hmac.new(PEPPER, b"resident_id|CHN|11010519491231002X", hashlib.sha256).hexdigest()
    assert identity_lookup_key(doc, PEPPER) == expected
    assert (
        identity_lookup_key(normalize_identity(RESIDENT_ID, "11010519491231002x"), PEPPER)
        == expected
    )


def test_lookup_key_separates_documents_and_peppers() -> None:
    a = normalize_identity(PASSPORT, "A1234567", "USA")
    b = normalize_identity(PASSPORT, "A1234567", "CAN")
    assert identity_lookup_key(a, PEPPER) != identity_lookup_key(b, PEPPER)
    assert identity_lookup_key(a, PEPPER) != identity_lookup_key(a, b"q" * 32)


def test_lookup_key_refuses_weak_pepper_and_raw_docs() -> None:
    doc = normalize_identity(RESIDENT_ID, GB_EXAMPLES[0])
    with pytest.raises(ConfigurationError) as info:
        identity_lookup_key(doc, b"short")
    assert info.value.code == "identity.pepper"
    with pytest.raises(ConfigurationError):
        identity_lookup_key(doc, "p" * 32)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        identity_lookup_key(IdentityDoc(RESIDENT_ID, "11010519491231002x", "CHN"), PEPPER)
    with pytest.raises(InvalidInputError):
        identity_lookup_key(IdentityDoc(RESIDENT_ID, "110105194912310021", "CHN"), PEPPER)


SAMPLE_LEARNERS = json.loads((SAMPLE / "learners.json").read_text("utf-8"))


def test_prehashed_lookup_key_for_every_sample_learner() -> None:
    keys = set()
    for learner in SAMPLE_LEARNERS:
        prehash = learner["id_document"]["hash"]
        key = identity_lookup_key_from_prehashed(prehash, PEPPER)
        assert key == identity_lookup_key_from_prehashed(
            prehash.upper().replace("SHA256:", "sha256:"), PEPPER
        )
        assert key == identity_lookup_key_from_prehashed(prehash.removeprefix("sha256:"), PEPPER)
        assert prehash.removeprefix("sha256:") not in key
        keys.add(key)
    assert len(keys) == len(SAMPLE_LEARNERS) == 30


def test_prehashed_key_known_answer_and_namespace() -> None:
    digest = "ab" * 32
    expected = hmac.new(PEPPER, f"prehashed|sha256:{digest}".encode(), hashlib.sha256).hexdigest()
    assert identity_lookup_key_from_prehashed("sha256:" + digest, PEPPER) == expected


@pytest.mark.parametrize(
    "bad", ["", "sha256:", "sha256:" + "a" * 63, "md5:" + "a" * 64, "g" * 64, 5]
)
def test_prehashed_key_refuses_malformed(bad: object) -> None:
    with pytest.raises(InvalidInputError) as info:
        identity_lookup_key_from_prehashed(bad, PEPPER)  # type: ignore[arg-type]
    assert info.value.code == "identity.prehash"


def test_prehashed_key_refuses_weak_pepper() -> None:
    with pytest.raises(ConfigurationError):
        identity_lookup_key_from_prehashed("sha256:" + "a" * 64, b"")


# --- name commitments -------------------------------------------------------------------------
def test_name_commitment_known_answer() -> None:
    # Independently: (printf '\x00…\x0f'; printf '王建国') | openssl dgst -sha256 -binary | base64
    assert name_commitment(SALT, "王建国") == "0tdyktCYSzujtrw7cgP9cevTlgDYcz4mLEiVOLQz4UA="
    raw = hashlib.sha256(SALT + "王建国".encode()).digest()
    assert name_commitment(SALT, "王建国") == base64.b64encode(raw).decode()


@pytest.mark.parametrize("name", ["Nguyễn Văn An", "박지훈", "José", "艾合买提·吐尔逊", "Zoë"])
def test_nfc_and_nfd_give_the_same_commitment(name: str) -> None:
    nfc, nfd = unicodedata.normalize("NFC", name), unicodedata.normalize("NFD", name)
    assert nfc != nfd or name == "艾合买提·吐尔逊"
    assert name_commitment(SALT, nfc) == name_commitment(SALT, nfd)
    verify_name_commitment(SALT, nfd, name_commitment(SALT, nfc))


def test_commitment_binds_exact_name_and_salt() -> None:
    c = name_commitment(SALT, "王建国")
    assert name_commitment(SALT, "王建国 ") != c  # no trimming
    assert name_commitment(bytes(16), "王建国") != c
    assert name_commitment(SALT, "DILNOZA KARIMOVA") != name_commitment(SALT, "Dilnoza Karimova")
    # NFC only, not NFKC: compatibility variants (full-width, ligatures) stay distinct
    assert name_commitment(SALT, "Ǆemal") != name_commitment(SALT, "DŽemal")
    assert name_commitment(SALT, "ＡＢ") != name_commitment(SALT, "AB")


@pytest.mark.parametrize("size", [0, 8, 15, 17, 32])
def test_salt_size(size: int) -> None:
    with pytest.raises(InvalidInputError) as info:
        name_commitment(bytes(size), "王建国")
    assert info.value.code == "identity.salt"


def test_salt_and_name_types() -> None:
    with pytest.raises(InvalidInputError) as info:
        name_commitment("0" * 16, "王建国")  # type: ignore[arg-type]
    assert info.value.code == "identity.salt"
    for bad in ["", None, b"abc", "\ud800"]:
        with pytest.raises(InvalidInputError) as info:
            name_commitment(SALT, bad)  # type: ignore[arg-type]
        assert info.value.code == "identity.name"


def test_verify_name_commitment() -> None:
    c = name_commitment(SALT, "阮文安")
    verify_name_commitment(SALT, "阮文安", c)
    for salt, name, commitment in [
        (SALT, "阮文", c),
        (bytes(16), "阮文安", c),
        (SALT, "阮文安", c[:-2] + "A="),
        (SALT, "阮文安", ""),
        (SALT, "阮文安", "é" * 44),
        (SALT, "阮文安", None),
    ]:
        with pytest.raises(NameCommitmentError) as info:
            verify_name_commitment(salt, name, commitment)  # type: ignore[arg-type]
        assert isinstance(info.value, VerificationError)
        assert info.value.code == "verify.name_commitment"
    with pytest.raises(InvalidInputError):
        verify_name_commitment(bytes(8), "阮文安", c)


@pytest.mark.parametrize(
    "bad", ["1101051949123100", "110105194912310021", "1101051949123100a", "１1010519491231002"]
)
def test_gb11643_check_char_needs_17_ascii_digits(bad: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        gb11643_check_char(bad)
    assert info.value.code == "identity.format"
