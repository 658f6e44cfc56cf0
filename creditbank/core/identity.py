"""Identity documents, private lookup keys and name commitments.

Nothing here ever enters the ledger (docs/trust-model.md): identity numbers, their lookup keys and
names live only in the bank's personal-data tables. The log carries the bank's opaque learner
id and ``name_commitment`` = base64(SHA-256(salt ‖ UTF-8(NFC(name_on_record)))), where the salt
is a random 16 bytes per learner kept (and erasable) beside the name.

Document rules implemented by :func:`normalize_identity`:

* ``resident_id`` — the citizen identity number of GB 11643-1999: six-digit address code
  (province prefix per GB/T 2260, plus 81/82/83 for the residence permits of Hong Kong, Macao
  and Taiwan residents, which use the same numbering), eight-digit birth date YYYYMMDD,
  three-digit sequence, and a check character computed with ISO 7064 MOD 11-2 (weights
  2^(17-i) mod 11, value ``(12 - sum mod 11) mod 11``, 10 written ``X``).
* ``foreign_permanent_resident_id`` (外国人永久居留身份证), two formats in use side by side:

  - 2023 edition (issued from 2023-12-01): 18 characters, ``9`` + two-digit province code of
    the accepting authority + three-digit numeric nationality code (ISO 3166-1 numeric,
    = GB/T 2659) + birth date YYYYMMDD + three-digit sequence + a GB 11643 MOD 11-2 check
    character. Source: National Immigration Administration, 《新版外国人永久居留身份证机读信息
    规则(2023版)》 §二.2–3 ("由15位(3位拉丁字母+12位数字)调整为18位(17位数字+1位校验位)…
    首位设置为'9'…最后一位采用MOD11-2算法设置为校验码,与公民身份号码校验方式相同"), as
    reproduced at http://www.eastcoms.com/service/pro/840.html.
  - 2017 edition: 15 characters, ISO 3166-1 alpha-3 nationality + four-digit code of the
    accepting authority (province + city) + birth date YYMMDD + one sequence digit + one check
    digit: the ICAO 9303 check digit (weights 7, 3, 1 repeating; ``0-9`` = 0–9, ``A-Z`` =
    10–35; sum mod 10) over the first 14 characters. The layout follows the same NIA notice
    ("3位拉丁字母+12位数字"); the field split and check-digit algorithm are those of the
    open-source validator xiahaimoyu credentialkit,
    ``ForeignerPermanentResidenceIdNumberProcessor`` (positions 4–7 region, 8–13 birth date,
    15 = MRZ check digit of 1–14), checked against its test vector ``KAZ110090123105``.

* ``passport`` — 5 to 20 letters or digits, with a required ISO 3166-1 alpha-3 nationality.

Numbers are normalized to upper case (``x`` → ``X``); surrounding whitespace is dropped, any
other separator is refused. Error messages never repeat the number.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date
from types import MappingProxyType
from typing import Final

from creditbank.errors import ConfigurationError, InvalidInputError, VerificationError

RESIDENT_ID: Final = "resident_id"
FOREIGN_PERMANENT_RESIDENT_ID: Final = "foreign_permanent_resident_id"
PASSPORT: Final = "passport"
DOC_TYPES: Final = frozenset({RESIDENT_ID, FOREIGN_PERMANENT_RESIDENT_ID, PASSPORT})

NAME_SALT_SIZE: Final = 16
MIN_PEPPER_SIZE: Final = 16
MIN_BIRTH_YEAR: Final = 1850

# ISO 3166-1 numeric → alpha-3, all 249 current entries (Debian iso-codes 4.15.0).
_ISO_3166_1: Final = """
004AFG 008ALB 010ATA 012DZA 016ASM 020AND 024AGO 028ATG 031AZE 032ARG 036AUS 040AUT
044BHS 048BHR 050BGD 051ARM 052BRB 056BEL 060BMU 064BTN 068BOL 070BIH 072BWA 074BVT
076BRA 084BLZ 086IOT 090SLB 092VGB 096BRN 100BGR 104MMR 108BDI 112BLR 116KHM 120CMR
124CAN 132CPV 136CYM 140CAF 144LKA 148TCD 152CHL 156CHN 158TWN 162CXR 166CCK 170COL
174COM 175MYT 178COG 180COD 184COK 188CRI 191HRV 192CUB 196CYP 203CZE 204BEN 208DNK
212DMA 214DOM 218ECU 222SLV 226GNQ 231ETH 232ERI 233EST 234FRO 238FLK 239SGS 242FJI
246FIN 248ALA 250FRA 254GUF 258PYF 260ATF 262DJI 266GAB 268GEO 270GMB 275PSE 276DEU
288GHA 292GIB 296KIR 300GRC 304GRL 308GRD 312GLP 316GUM 320GTM 324GIN 328GUY 332HTI
334HMD 336VAT 340HND 344HKG 348HUN 352ISL 356IND 360IDN 364IRN 368IRQ 372IRL 376ISR
380ITA 384CIV 388JAM 392JPN 398KAZ 400JOR 404KEN 408PRK 410KOR 414KWT 417KGZ 418LAO
422LBN 426LSO 428LVA 430LBR 434LBY 438LIE 440LTU 442LUX 446MAC 450MDG 454MWI 458MYS
462MDV 466MLI 470MLT 474MTQ 478MRT 480MUS 484MEX 492MCO 496MNG 498MDA 499MNE 500MSR
504MAR 508MOZ 512OMN 516NAM 520NRU 524NPL 528NLD 531CUW 533ABW 534SXM 535BES 540NCL
548VUT 554NZL 558NIC 562NER 566NGA 570NIU 574NFK 578NOR 580MNP 581UMI 583FSM 584MHL
585PLW 586PAK 591PAN 598PNG 600PRY 604PER 608PHL 612PCN 616POL 620PRT 624GNB 626TLS
630PRI 634QAT 638REU 642ROU 643RUS 646RWA 652BLM 654SHN 659KNA 660AIA 662LCA 663MAF
666SPM 670VCT 674SMR 678STP 682SAU 686SEN 688SRB 690SYC 694SLE 702SGP 703SVK 704VNM
705SVN 706SOM 710ZAF 716ZWE 724ESP 728SSD 729SDN 732ESH 740SUR 744SJM 748SWZ 752SWE
756CHE 760SYR 762TJK 764THA 768TGO 772TKL 776TON 780TTO 784ARE 788TUN 792TUR 795TKM
796TCA 798TUV 800UGA 804UKR 807MKD 818EGY 826GBR 831GGY 832JEY 833IMN 834TZA 840USA
850VIR 854BFA 858URY 860UZB 862VEN 876WLF 882WSM 887YEM 894ZMB
"""
ISO_NUMERIC_TO_ALPHA3: Final = MappingProxyType({t[:3]: t[3:] for t in _ISO_3166_1.split()})
ISO_ALPHA3: Final = frozenset(ISO_NUMERIC_TO_ALPHA3.values())

# Province-level address codes of GB/T 2260 (first two digits of a GB 11643 number).
MAINLAND_PROVINCES: Final = frozenset(
    {"11", "12", "13", "14", "15", "21", "22", "23", "31", "32", "33", "34", "35", "36", "37"}
    | {"41", "42", "43", "44", "45", "46", "50", "51", "52", "53", "54"}
    | {"61", "62", "63", "64", "65"}
)
#: 71 Taiwan (GB/T 2260); 81/82/83: residence permits of Hong Kong, Macao, Taiwan residents.
RESIDENT_ID_PROVINCES: Final = MAINLAND_PROVINCES | {"71", "81", "82", "83"}

_GB11643_WEIGHTS: Final = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_GB11643_CHECK: Final = "10X98765432"
_ICAO_WEIGHTS: Final = (7, 3, 1)

_RESIDENT_RE: Final = re.compile(r"[0-9]{17}[0-9X]")
_FPR_2023_RE: Final = re.compile(r"9[0-9]{16}[0-9X]")
_FPR_2017_RE: Final = re.compile(r"[A-Z]{3}[0-9]{12}")
_PASSPORT_RE: Final = re.compile(r"[A-Z0-9]{5,20}")
_PREHASH_RE: Final = re.compile(r"(?:sha256:)?([0-9a-f]{64})")


class NameCommitmentError(VerificationError):
    """The disclosed name and salt do not open the signed ``name_commitment``."""

    code = "verify.name_commitment"


@dataclass(frozen=True, slots=True)
class IdentityDoc:
    """A validated, normalized identity document. Personal data: keep it out of the log.

    ``repr`` leaves the number out so that it cannot leak into logs or tracebacks.
    """

    doc_type: str
    number: str = field(repr=False)
    nationality: str

    @property
    def masked(self) -> str:
        """The number with all but its first and last two characters hidden."""
        keep = 2 if self.doc_type == RESIDENT_ID else 1
        return self.number[:keep] + "*" * (len(self.number) - keep - 2) + self.number[-2:]


# --- check characters ----------------------------------------------------------------------
def gb11643_check_char(first17: str) -> str:
    """The ISO 7064 MOD 11-2 check character of GB 11643-1999 for 17 digits.

    Raises:
        InvalidInputError: ``identity.format`` unless ``first17`` is exactly 17 ASCII digits.
    """
    if len(first17) != 17 or not first17.isascii() or not first17.isdigit():
        raise InvalidInputError("need 17 digits", code="identity.format")
    total = sum(int(c) * w for c, w in zip(first17, _GB11643_WEIGHTS, strict=True))
    return _GB11643_CHECK[total % 11]


def icao_check_digit(text: str) -> str:
    """The ICAO 9303 check digit (weights 7, 3, 1; A–Z = 10–35) of upper-case letters/digits.

    Raises:
        InvalidInputError: ``identity.format`` on any other character.
    """
    total = 0
    for i, c in enumerate(text):
        if "0" <= c <= "9":
            value = ord(c) - ord("0")
        elif "A" <= c <= "Z":
            value = ord(c) - ord("A") + 10
        else:
            raise InvalidInputError("only A-Z and 0-9 allowed", code="identity.format")
        total += value * _ICAO_WEIGHTS[i % 3]
    return str(total % 10)


# --- normalization -------------------------------------------------------------------------
def _birth_date(yyyymmdd: str, today: date | None, what: str) -> date:
    try:
        born = date(int(yyyymmdd[:4]), int(yyyymmdd[4:6]), int(yyyymmdd[6:8]))
    except ValueError as e:
        raise InvalidInputError(f"{what}: birth date is not a date", code="identity.format") from e
    if born.year < MIN_BIRTH_YEAR or (today is not None and born > today):
        raise InvalidInputError(f"{what}: birth date out of range", code="identity.format")
    return born


def _normalize_nationality(nationality: str | None) -> str | None:
    if nationality is None:
        return None
    if not isinstance(nationality, str):
        raise InvalidInputError("nationality must be text", code="identity.nationality")
    code = nationality.strip().upper()
    if code not in ISO_ALPHA3:
        raise InvalidInputError(
            f"nationality {code!r} is not an ISO 3166-1 alpha-3 code", code="identity.nationality"
        )
    return code


def _resident_id(number: str, nationality: str | None, today: date | None) -> IdentityDoc:
    what = "resident ID number"
    if not _RESIDENT_RE.fullmatch(number):
        raise InvalidInputError(
            f"{what} must be 17 digits and a check digit or X", code="identity.format"
        )
    if gb11643_check_char(number[:17]) != number[17]:
        raise InvalidInputError(f"{what} fails its check character", code="identity.checksum")
    if number[:2] not in RESIDENT_ID_PROVINCES:
        raise InvalidInputError(f"{what} has no valid province code", code="identity.format")
    _birth_date(number[6:14], today, what)
    if nationality not in (None, "CHN"):
        raise InvalidInputError(f"a {what} implies nationality CHN", code="identity.nationality")
    return IdentityDoc(RESIDENT_ID, number, "CHN")


def _foreign_permanent_resident_id(
    number: str, nationality: str | None, today: date | None
) -> IdentityDoc:
    what = "foreign permanent resident ID number"
    if _FPR_2023_RE.fullmatch(number):
        if gb11643_check_char(number[:17]) != number[17]:
            raise InvalidInputError(f"{what} fails its check character", code="identity.checksum")
        if number[1:3] not in MAINLAND_PROVINCES:
            raise InvalidInputError(f"{what} has no valid province code", code="identity.format")
        derived = ISO_NUMERIC_TO_ALPHA3.get(number[3:6])
        if derived is None:
            raise InvalidInputError(
                f"{what} has no valid nationality code", code="identity.nationality"
            )
        _birth_date(number[6:14], today, what)
    elif _FPR_2017_RE.fullmatch(number):
        if icao_check_digit(number[:14]) != number[14]:
            raise InvalidInputError(f"{what} fails its check digit", code="identity.checksum")
        derived = number[:3]
        if derived not in ISO_ALPHA3:
            raise InvalidInputError(
                f"{what} has no valid nationality code", code="identity.nationality"
            )
        if number[3:5] not in MAINLAND_PROVINCES:
            raise InvalidInputError(f"{what} has no valid province code", code="identity.format")
        yymmdd = number[7:13]
        dates = []
        for century in ("19", "20"):
            try:
                dates.append(_birth_date(century + yymmdd, today, what))
            except InvalidInputError:
                continue
        if not dates:
            raise InvalidInputError(f"{what}: birth date is not a date", code="identity.format")
    else:
        raise InvalidInputError(
            f"{what} must be 9 + 16 digits + check digit or X (2023), "
            "or 3 letters + 12 digits (2017)",
            code="identity.format",
        )
    if derived == "CHN":
        raise InvalidInputError(f"{what} cannot name nationality CHN", code="identity.nationality")
    if nationality is not None and nationality != derived:
        raise InvalidInputError(
            f"nationality {nationality} differs from the document's", code="identity.nationality"
        )
    return IdentityDoc(FOREIGN_PERMANENT_RESIDENT_ID, number, derived)


def _passport(number: str, nationality: str | None) -> IdentityDoc:
    if not _PASSPORT_RE.fullmatch(number):
        raise InvalidInputError(
            "passport number must be 5-20 letters or digits", code="identity.format"
        )
    if nationality is None:
        raise InvalidInputError(
            "a passport needs its nationality (ISO 3166-1 alpha-3)", code="identity.nationality"
        )
    return IdentityDoc(PASSPORT, number, nationality)


def normalize_identity(
    doc_type: str, number: str, nationality: str | None = None, *, today: date | None = None
) -> IdentityDoc:
    """Validate an identity document and return its normalized form.

    Args:
        doc_type: ``resident_id``, ``foreign_permanent_resident_id`` or ``passport``.
        number: the document number; surrounding whitespace is ignored, letters are upper-cased.
        nationality: ISO 3166-1 alpha-3 (case-insensitive). Required for passports; for the
            other documents it is derived (``CHN`` for a resident ID, the coded nationality
            of a permanent-resident ID) and, if given, must agree.
        today: if given, a birth date after it is refused (the core has no clock).

    Returns:
        The normalized document; its ``nationality`` is always set.

    Raises:
        InvalidInputError: ``identity.format`` (unknown document type, wrong shape, province
            code or birth date), ``identity.checksum`` (check character wrong) or
            ``identity.nationality`` (missing, unknown or contradicting nationality).
    """
    if doc_type not in DOC_TYPES:
        raise InvalidInputError(
            f"unknown identity document type {doc_type!r}", code="identity.format"
        )
    if not isinstance(number, str):
        raise InvalidInputError("document number must be text", code="identity.format")
    normalized = number.strip().upper()
    if not normalized.isascii():
        raise InvalidInputError("document number must be ASCII", code="identity.format")
    code = _normalize_nationality(nationality)
    if doc_type == RESIDENT_ID:
        return _resident_id(normalized, code, today)
    if doc_type == FOREIGN_PERMANENT_RESIDENT_ID:
        return _foreign_permanent_resident_id(normalized, code, today)
    return _passport(normalized, code)


# --- private lookup keys -------------------------------------------------------------------
def _check_pepper(pepper: bytes) -> None:
    if not isinstance(pepper, bytes):
        raise ConfigurationError("the identity pepper must be bytes", code="identity.pepper")
    if len(pepper) < MIN_PEPPER_SIZE:
        raise ConfigurationError(
            f"the identity pepper must be at least {MIN_PEPPER_SIZE} bytes",
            code="identity.pepper",
        )


def identity_lookup_key(doc: IdentityDoc, pepper: bytes) -> str:
    """The bank's private lookup key of a document: hex HMAC-SHA256(pepper, type|nat|number).

    For the bank's personal-data tables only, never the log. The pepper is a server secret;
    without it the key cannot be brute-forced from the small space of ID numbers.

    Raises:
        ConfigurationError: ``identity.pepper`` if the pepper is shorter than 16 bytes.
        InvalidInputError: if ``doc`` is not in normalized form (build it with
            :func:`normalize_identity`).
    """
    _check_pepper(pepper)
    if normalize_identity(doc.doc_type, doc.number, doc.nationality) != doc:
        raise InvalidInputError("identity document is not normalized", code="identity.format")
    message = f"{doc.doc_type}|{doc.nationality}|{doc.number}".encode("ascii")
    return hmac.new(pepper, message, hashlib.sha256).hexdigest()


def identity_lookup_key_from_prehashed(prehash: str, pepper: bytes) -> str:
    """The private lookup key for a dataset that supplies only a SHA-256 of each identity.

    The sample's ``learners.json`` carries ``id_document.hash`` = ``sha256:<hex>``, an
    unsalted hash that is itself brute-forceable, so it is re-keyed with the pepper and, like
    the plain number, stays out of the log. The key lives in its own namespace
    (``prehashed|sha256:<hex>``): it cannot collide with :func:`identity_lookup_key`, nor
    match it for the same person, because the dataset's hash input is not known.

    Args:
        prehash: ``sha256:`` + 64 hex digits, or the 64 hex digits alone (any case).
        pepper: the server secret, at least 16 bytes.

    Raises:
        ConfigurationError: ``identity.pepper`` if the pepper is shorter than 16 bytes.
        InvalidInputError: ``identity.prehash`` if ``prehash`` is not of that form.
    """
    _check_pepper(pepper)
    if not isinstance(prehash, str):
        raise InvalidInputError("pre-hashed identity must be text", code="identity.prehash")
    m = _PREHASH_RE.fullmatch(prehash.strip().lower())
    if m is None:
        raise InvalidInputError(
            "pre-hashed identity must be sha256:<64 hex digits>", code="identity.prehash"
        )
    message = f"prehashed|sha256:{m.group(1)}".encode("ascii")
    return hmac.new(pepper, message, hashlib.sha256).hexdigest()


# --- personal names ------------------------------------------------------------------------
#: the longest personal name the bank keeps (characters, after NFC)
MAX_NAME_LENGTH: Final = 200
#: general categories never allowed in a name: controls, surrogates, private use, unassigned,
#: line and paragraph separators
_NAME_BAD_CATEGORIES: Final = frozenset({"Cc", "Cs", "Co", "Cn", "Zl", "Zp"})
#: the only format characters (Cf) a name may hold: ZERO WIDTH NON-JOINER and JOINER, which
#: some scripts need to spell a name; every bidi embedding, override, isolate and mark is Cf
_NAME_ALLOWED_FORMAT: Final = frozenset({"\u200c", "\u200d"})


def check_person_name(name: object, what: str = "name") -> str:
    """The one validation of a personal name, in the bank (API, import) and the client.

    A name is text of 1 to :data:`MAX_NAME_LENGTH` characters after NFC normalization, not
    only white space, with no control character (U+0000-U+001F, U+007F-U+009F), no bidi
    embedding, override, isolate or mark (U+202A-U+202E, U+2066-U+2069, U+200E, U+200F,
    U+061C: format characters, of which only ZWNJ and ZWJ are allowed), no unassigned,
    private-use or surrogate code point and no line or paragraph separator. "Unassigned" is
    judged by the Unicode version of Python's ``unicodedata`` (the same in bank and client).

    Returns:
        The name in NFC (what the bank stores; the commitment is over NFC anyway).

    Raises:
        InvalidInputError: ``identity.name`` naming the first offending character's code
            point (never the name).
    """
    if not isinstance(name, str):
        raise InvalidInputError(f"{what} must be text", code="identity.name")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError as e:
        raise InvalidInputError(f"{what} is not valid Unicode", code="identity.name") from e
    nfc = unicodedata.normalize("NFC", name)
    if not nfc.strip():
        raise InvalidInputError(f"{what} must not be empty", code="identity.name")
    if len(nfc) > MAX_NAME_LENGTH:
        raise InvalidInputError(
            f"{what} is longer than {MAX_NAME_LENGTH} characters", code="identity.name"
        )
    for ch in nfc:
        cat = unicodedata.category(ch)
        if cat in _NAME_BAD_CATEGORIES or (cat == "Cf" and ch not in _NAME_ALLOWED_FORMAT):
            raise InvalidInputError(
                f"{what} holds U+{ord(ch):04X} ({cat}): control, bidi, unassigned and"
                " private-use characters are not allowed in a name",
                code="identity.name",
            )
    return nfc


# --- name commitments ----------------------------------------------------------------------
def name_commitment(salt: bytes, name: str) -> str:
    """base64(SHA-256(salt ‖ UTF-8(NFC(name)))) as in docs/formats/entries.md.

    The name is committed exactly as the source wrote it (after NFC only: no trimming, no case
    folding), so a transcript can show it and a verifier can recompute the commitment.

    Raises:
        InvalidInputError: ``identity.salt`` unless ``salt`` is 16 bytes; ``identity.name`` if
            ``name`` is not non-empty text encodable as UTF-8.
    """
    if not isinstance(salt, bytes):
        raise InvalidInputError("name salt must be bytes", code="identity.salt")
    if len(salt) != NAME_SALT_SIZE:
        raise InvalidInputError(f"name salt must be {NAME_SALT_SIZE} bytes", code="identity.salt")
    if not isinstance(name, str):
        raise InvalidInputError("name must be text", code="identity.name")
    if not name:
        raise InvalidInputError("name must be non-empty text", code="identity.name")
    try:
        encoded = unicodedata.normalize("NFC", name).encode("utf-8")
    except UnicodeEncodeError as e:
        raise InvalidInputError("name is not valid Unicode", code="identity.name") from e
    return base64.b64encode(hashlib.sha256(salt + encoded).digest()).decode("ascii")


def verify_name_commitment(salt: bytes, name: str, commitment: str) -> None:
    """Check that ``name`` and ``salt`` open ``commitment``.

    Raises:
        NameCommitmentError: (a :class:`VerificationError`) if they do not.
        InvalidInputError: ``identity.salt`` / ``identity.name`` as in :func:`name_commitment`.
    """
    expected = name_commitment(salt, name)
    if not isinstance(commitment, str):
        raise NameCommitmentError("the commitment must be base64 text")
    given = commitment.encode("utf-8", "replace")
    if not hmac.compare_digest(expected.encode("ascii"), given):
        raise NameCommitmentError("the name on record does not match the signed commitment")
