"""Signed notes and checkpoints: byte-stable round trips, and typed errors for bad input.

* ``parse(format(x)) == x`` and ``format(parse(s)) == s`` for notes and checkpoint bodies;
* sign → verify holds, every single-byte change of a signed checkpoint is rejected;
* malformed and oversized notes and checkpoints raise typed ``CreditBankError``s, and arbitrary
  input never raises anything else.

Keys are fixed seeds and Hypothesis is derandomized, so every run is the same.
"""

from __future__ import annotations

import base64

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from creditbank.core.checkpoint import (
    Checkpoint,
    parse_checkpoint_body,
    sign_checkpoint,
    verify_checkpoint,
)
from creditbank.core.note import (
    MAX_NOTE_SIZE,
    MAX_SIGNATURES,
    Note,
    NoteSignature,
    parse_note,
    sign_note,
    verify_note,
)
from creditbank.core.signing import (
    Ed25519Signer,
    VerifierKey,
    note_key_id,
    parse_verifier_key,
)
from creditbank.errors import (
    CheckpointFormatError,
    ConfigurationError,
    CreditBankError,
    InvalidInputError,
    NoteFormatError,
    SignatureError,
    TooLargeError,
    UnknownKeyError,
)

SETTINGS = settings(
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=200,
    suppress_health_check=[HealthCheck.too_slow],
)

SIGNERS = [Ed25519Signer.from_seed(bytes([i]) * 32) for i in range(1, 4)]
LOG_NAME = "creditbank.localhost/log"
LOG = SIGNERS[0]


def vkey(name: str, signer: Ed25519Signer) -> VerifierKey:
    return VerifierKey(name, note_key_id(name, signer.public_bytes), signer.public_bytes)


LOG_KEY = vkey(LOG_NAME, LOG)
ROOT = bytes(range(32))
ROOT_B64 = base64.b64encode(ROOT).decode()
GOOD_CP = Checkpoint(LOG_NAME, 21, ROOT)
GOOD_NOTE = sign_checkpoint(GOOD_CP, LOG_NAME, LOG)

# --- strategies -------------------------------------------------------------------------------
# Text characters: anything but controls below U+0020 and lone surrogates.
text_char = st.characters(min_codepoint=0x20, exclude_categories=["Cs"])
line = st.text(text_char, max_size=40)
note_text = st.lists(line, min_size=1, max_size=6).map(lambda ls: "".join(x + "\n" for x in ls))
# Key names as the signed-note spec allows them: no Unicode space, no '+', no control.
spec_name = st.text(
    st.characters(min_codepoint=0x21, exclude_categories=("Cs", "Zs", "Zl", "Zp", "Cc")).filter(
        lambda c: c != "+" and not c.isspace()
    ),
    min_size=1,
    max_size=20,
)
# Names we sign with must also be printable (what a verifier key string accepts).
sign_name = spec_name.filter(str.isprintable)
note_signature = st.builds(
    NoteSignature,
    name=spec_name,
    key_id=st.binary(min_size=4, max_size=4),
    signature=st.binary(min_size=1, max_size=80),
)
nonempty_line = st.text(text_char, min_size=1, max_size=40)
checkpoint = st.builds(
    Checkpoint,
    origin=nonempty_line,
    size=st.integers(0, 2**63 - 1),
    root=st.binary(min_size=32, max_size=32),
    extensions=st.lists(nonempty_line, max_size=4).map(tuple),
)


# --- round trips ------------------------------------------------------------------------------
@SETTINGS
@given(text=note_text, sigs=st.lists(note_signature, min_size=1, max_size=5))
def test_note_round_trips(text: str, sigs: list[NoteSignature]) -> None:
    note = Note(text, tuple(sigs))
    encoded = note.to_text()
    assert parse_note(encoded) == note
    assert parse_note(note.to_bytes()) == note
    assert parse_note(encoded).to_text() == encoded


@SETTINGS
@given(text=note_text, name=sign_name, which=st.integers(0, len(SIGNERS) - 1))
def test_sign_then_verify(text: str, name: str, which: int) -> None:
    signer = SIGNERS[which]
    signed = sign_note(text, name, signer)
    assert signed == sign_note(text, name, signer)  # deterministic
    assert parse_note(signed).to_text() == signed
    key = vkey(name, signer)
    assert parse_verifier_key(str(key)) == key
    got = verify_note(signed, [key])
    assert got.text == text
    assert got.verified_by == (key,)
    # other keys, and the same key under another name, are not this key
    others = [vkey(name, s) for s in SIGNERS if s is not signer]
    with pytest.raises(UnknownKeyError):
        verify_note(signed, [*others, vkey(name + "x", signer)])


@SETTINGS
@given(text=note_text, names=st.lists(sign_name, min_size=3, max_size=3, unique=True))
def test_cosigned_note_verifies_by_the_known_subset(text: str, names: list[str]) -> None:
    keys = [vkey(n, s) for n, s in zip(names, SIGNERS, strict=True)]
    sigs = tuple(
        parse_note(sign_note(text, k.name, s)).signatures[0]
        for k, s in zip(keys, SIGNERS, strict=True)
    )
    full = Note(text, sigs).to_text()
    assert verify_note(full, keys).verified_by == tuple(keys)
    assert verify_note(full, [keys[2], keys[0]]).verified_by == (keys[0], keys[2])
    # one bad signature by a known key sinks the note, even when another verifies
    broken = sigs[1].signature[:-1] + bytes([sigs[1].signature[-1] ^ 1])
    bad = Note(text, (sigs[0], NoteSignature(sigs[1].name, sigs[1].key_id, broken))).to_text()
    with pytest.raises(SignatureError):
        verify_note(bad, keys)
    assert verify_note(bad, [keys[0]]).verified_by == (keys[0],)  # unknown key: ignored


@SETTINGS
@given(cp=checkpoint)
def test_checkpoint_body_round_trips(cp: Checkpoint) -> None:
    body = cp.to_body()
    assert parse_checkpoint_body(body) == cp
    assert parse_checkpoint_body(body).to_body() == body


@SETTINGS
@given(
    name=sign_name,
    size=st.integers(0, 2**63 - 1),
    root=st.binary(min_size=32, max_size=32),
    extensions=st.lists(nonempty_line, max_size=3).map(tuple),
)
def test_signed_checkpoint_round_trips(
    name: str, size: int, root: bytes, extensions: tuple[str, ...]
) -> None:
    cp = Checkpoint(name, size, root, extensions)
    signed = sign_checkpoint(cp, name, LOG)
    assert verify_checkpoint(signed, vkey(name, LOG)) == cp
    assert verify_checkpoint(signed.encode(), vkey(name, LOG)) == cp
    assert parse_note(signed).to_text() == signed
    assert parse_checkpoint_body(parse_note(signed).text).to_body() == cp.to_body()


# --- arbitrary input only ever raises typed errors --------------------------------------------
@SETTINGS
@given(data=st.binary(max_size=300))
def test_arbitrary_bytes_parse_or_raise_typed(data: bytes) -> None:
    try:
        note = parse_note(data)
    except (NoteFormatError, TooLargeError):
        return
    assert note.to_bytes() == data


@SETTINGS
@given(
    prefix=st.text(st.sampled_from("ab—+= \n\r\t\x00/AZ09é"), max_size=40),
    sig=st.text(st.sampled_from("— ab+=/AZaz09\n "), max_size=120),
)
def test_note_like_text_parses_or_raises_typed(prefix: str, sig: str) -> None:
    data = prefix + "\n\n" + sig
    try:
        note = parse_note(data)
    except NoteFormatError:
        return
    assert note.to_text() == data
    with pytest.raises(UnknownKeyError):
        verify_note(data, [LOG_KEY])


@SETTINGS
@given(text=st.text(st.sampled_from("0123456789+-=/ \nLogAZaz\x00é"), max_size=120))
def test_arbitrary_checkpoint_body_parses_or_raises_typed(text: str) -> None:
    try:
        cp = parse_checkpoint_body(text)
    except CheckpointFormatError:
        return
    assert cp.to_body() == text


@SETTINGS
@given(body=st.builds(lambda lines: "".join(x + "\n" for x in lines), st.lists(line, max_size=6)))
def test_line_soup_checkpoint_parses_or_raises_typed(body: str) -> None:
    # (with a 32-byte root spliced in now and then, so some of these parse)
    for text in (body, f"o\n1\n{ROOT_B64}\n" + body):
        try:
            cp = parse_checkpoint_body(text)
        except CheckpointFormatError:
            continue
        assert cp.to_body() == text


def test_every_single_byte_change_of_a_signed_checkpoint_is_rejected() -> None:
    raw = GOOD_NOTE.encode()
    assert verify_checkpoint(raw, LOG_KEY) == GOOD_CP
    for pos in range(len(raw)):
        for mask in (0x01, 0x20, 0x80, 0xFF):
            bad = bytearray(raw)
            bad[pos] ^= mask
            with pytest.raises(CreditBankError):
                verify_checkpoint(bytes(bad), LOG_KEY)
        # deleting a byte, or inserting one, is rejected too
        with pytest.raises(CreditBankError):
            verify_checkpoint(raw[:pos] + raw[pos + 1 :], LOG_KEY)
        with pytest.raises(CreditBankError):
            verify_checkpoint(raw[:pos] + b"a" + raw[pos:], LOG_KEY)


# --- oversize ---------------------------------------------------------------------------------
def test_size_is_checked_before_anything_else() -> None:
    with pytest.raises(TooLargeError):
        parse_note(b"\xff" * (MAX_NOTE_SIZE + 1))  # not even UTF-8: size wins
    with pytest.raises(TooLargeError):
        parse_note("\x00" * (MAX_NOTE_SIZE + 1))
    with pytest.raises(TooLargeError):
        verify_note(b"x" * (MAX_NOTE_SIZE + 1), [LOG_KEY])
    with pytest.raises(TooLargeError):
        verify_checkpoint(b"x" * (MAX_NOTE_SIZE + 1), LOG_KEY)
    with pytest.raises(TooLargeError):
        parse_checkpoint_body("x" * (MAX_NOTE_SIZE + 1))


def test_max_size_bounds_are_exact_in_bytes() -> None:
    n = len(GOOD_NOTE.encode())
    assert len(GOOD_NOTE) < n  # the em dash is 3 bytes: limits count bytes, not characters
    assert parse_note(GOOD_NOTE, max_size=n).to_text() == GOOD_NOTE
    with pytest.raises(TooLargeError):
        parse_note(GOOD_NOTE, max_size=n - 1)
    with pytest.raises(TooLargeError):
        parse_note(GOOD_NOTE.encode(), max_size=n - 1)
    with pytest.raises(TooLargeError):
        verify_checkpoint(GOOD_NOTE, LOG_KEY, max_size=n - 1)
    body = GOOD_CP.to_body()
    assert parse_checkpoint_body(body, max_size=len(body)) == GOOD_CP
    with pytest.raises(TooLargeError):
        parse_checkpoint_body(body, max_size=len(body) - 1)
    wide = Checkpoint("é" * 10, 1, ROOT).to_body()
    with pytest.raises(TooLargeError):
        parse_checkpoint_body(wide, max_size=len(wide))  # 10 characters, 20 bytes


def test_signing_refuses_notes_too_large_to_parse() -> None:
    big = "x" * (MAX_NOTE_SIZE - 10) + "\n"
    with pytest.raises(TooLargeError):
        sign_note(big, LOG_NAME, LOG)


def test_signature_count_limit() -> None:
    sig = parse_note(GOOD_NOTE).signatures[0]
    text = GOOD_CP.to_body()
    at_limit = text + "\n" + sig.to_line() * MAX_SIGNATURES
    assert len(parse_note(at_limit).signatures) == MAX_SIGNATURES
    with pytest.raises(NoteFormatError):
        parse_note(at_limit + sig.to_line())
    with pytest.raises(NoteFormatError):
        Note(text, (sig,) * (MAX_SIGNATURES + 1))
    # 16 signatures must be accepted (C2SP); a known key signing twice is malformed
    unknown = NoteSignature("witness.example/w", b"\x00\x01\x02\x03", b"s" * 64)
    sixteen = text + "\n" + sig.to_line() + unknown.to_line() * 15
    assert verify_note(sixteen, [LOG_KEY]).verified_by == (LOG_KEY,)
    with pytest.raises(NoteFormatError, match="two signatures"):
        verify_note(text + "\n" + sig.to_line() * 2, [LOG_KEY])


# --- malformed notes --------------------------------------------------------------------------
SIG_LINE = GOOD_NOTE.split("\n\n")[1]
SIG_B64 = SIG_LINE.rsplit(" ", 1)[1].rstrip("\n")
TEXT = GOOD_CP.to_body()
MALFORMED_NOTES = {
    "empty": "",
    "no final newline": GOOD_NOTE[:-1],
    "no blank line": TEXT + SIG_LINE,
    "no signature lines": TEXT + "\n",
    "ends with a blank line": GOOD_NOTE + "\n",
    "trailing junk line": GOOD_NOTE + "junk\n",
    "junk line between signatures": TEXT + "\n" + SIG_LINE + "junk\n" + SIG_LINE,
    "hyphen instead of em dash": TEXT + "\n" + SIG_LINE.replace("—", "-"),
    "en dash instead of em dash": TEXT + "\n" + SIG_LINE.replace("—", "–"),
    "no space after dash": TEXT + "\n" + SIG_LINE.replace("— ", "—"),
    "two spaces after dash (empty name)": TEXT + "\n" + SIG_LINE.replace("— ", "—  "),
    "two spaces before signature": TEXT + "\n" + SIG_LINE.replace(" " + SIG_B64, "  " + SIG_B64),
    "name with plus": TEXT + "\n" + SIG_LINE.replace(LOG_NAME, "a+b"),
    "name with no-break space": TEXT + "\n" + SIG_LINE.replace(LOG_NAME, "a\u00a0b"),
    "name with ideographic space": TEXT + "\n" + SIG_LINE.replace(LOG_NAME, "a\u3000b"),
    "name only": TEXT + "\n— " + LOG_NAME + "\n",
    "empty signature": TEXT + "\n— " + LOG_NAME + " \n",
    "signature of 4 bytes (key id only)": TEXT
    + "\n— a "
    + base64.b64encode(b"abcd").decode()
    + "\n",
    "signature not base64": TEXT + "\n— a !!!!\n",
    "signature missing padding": TEXT + "\n" + SIG_LINE.replace("=\n", "\n"),
    "signature non-canonical base64": TEXT + "\n— a " + "AAAAAAB=" + "\n",
    "signature url-safe base64": TEXT + "\n— a " + "AAAA__--" + "\n",
    "signature with trailing space": TEXT + "\n" + SIG_LINE.replace("\n", " \n"),
    "CRLF signature line": TEXT + "\n" + SIG_LINE.replace("\n", "\r\n"),
    "CR in text": "a\rb\n\n" + SIG_LINE,
    "tab in text": "a\tb\n\n" + SIG_LINE,
    "NUL in text": "a\x00b\n\n" + SIG_LINE,
    "escape in text": "\x1b[0m\n\n" + SIG_LINE,
    "control char in signature line": TEXT + "\n" + SIG_LINE.replace("— ", "— \x01"),
}


@pytest.mark.parametrize("data", MALFORMED_NOTES.values(), ids=MALFORMED_NOTES.keys())
def test_malformed_notes_raise_note_format_error(data: str) -> None:
    with pytest.raises(NoteFormatError):
        parse_note(data)
    with pytest.raises(NoteFormatError):
        verify_note(data.encode("utf-8"), [LOG_KEY])


@pytest.mark.parametrize(
    "data",
    [
        b"\xff\n\n" + SIG_LINE.encode(),  # invalid UTF-8
        b"\xc0\xaf\n\n" + SIG_LINE.encode(),  # overlong
        b"\xed\xa0\x80\n\n" + SIG_LINE.encode(),  # UTF-8-encoded surrogate
        GOOD_NOTE.encode()[:-3] + b"\xe2\x80\n",  # truncated em dash elsewhere
    ],
)
def test_non_utf8_notes_raise_note_format_error(data: bytes) -> None:
    with pytest.raises(NoteFormatError):
        parse_note(data)


def test_lone_surrogate_in_str_note() -> None:
    with pytest.raises(NoteFormatError):
        parse_note("\ud800\n\n" + SIG_LINE)


def test_text_may_contain_blank_lines_and_signature_look_alikes() -> None:
    text = "a\n\n— " + LOG_NAME + " " + SIG_B64 + "\n\nb\n"
    signed = sign_note(text, LOG_NAME, LOG)
    note = parse_note(signed)
    assert note.text == text
    assert len(note.signatures) == 1
    assert verify_note(signed, [LOG_KEY]).text == text
    for edge in ("\n", "\n\n", "x\n\n\n"):
        assert verify_note(sign_note(edge, LOG_NAME, LOG), [LOG_KEY]).text == edge


def test_verify_rules() -> None:
    # no trusted keys: fails closed
    with pytest.raises(UnknownKeyError):
        verify_note(GOOD_NOTE, [])
    # same name, other key id / same key id, other name: unknown, ignored
    other = SIGNERS[1]
    with pytest.raises(UnknownKeyError):
        verify_note(GOOD_NOTE, [vkey(LOG_NAME, other), vkey("other.example/log", LOG)])
    forged_id = VerifierKey(LOG_NAME, LOG_KEY.key_id, other.public_bytes)
    with pytest.raises(SignatureError):  # name and id match: must verify, and fails
        verify_note(GOOD_NOTE, [forged_id])
    with pytest.raises(InvalidInputError, match="share name"):
        verify_note(GOOD_NOTE, [LOG_KEY, forged_id])
    assert verify_note(GOOD_NOTE, [LOG_KEY, LOG_KEY]).verified_by == (LOG_KEY,)
    # a known key's signature of the wrong length is a bad signature
    short = TEXT + "\n" + NoteSignature(LOG_NAME, LOG_KEY.key_id, b"x" * 63).to_line()
    with pytest.raises(SignatureError):
        verify_note(short, [LOG_KEY])


def test_sign_note_rejects_bad_input() -> None:
    for bad_text in ("", "no newline", "a\rb\n", "a\x00\n", "\ud800\n"):
        with pytest.raises(NoteFormatError):
            sign_note(bad_text, LOG_NAME, LOG)
    for bad_name in ("", "a b", "a+b", "a\u00a0b", "a\nb"):
        with pytest.raises(InvalidInputError):
            sign_note("ok\n", bad_name, LOG)


def test_value_constructors_validate() -> None:
    with pytest.raises(NoteFormatError):
        NoteSignature("a", b"123", b"sig")
    with pytest.raises(NoteFormatError):
        NoteSignature("a", b"1234", b"")
    with pytest.raises(NoteFormatError):
        NoteSignature("a b", b"1234", b"s")
    with pytest.raises(NoteFormatError):
        Note("ok\n", ())


# --- malformed checkpoints --------------------------------------------------------------------
def body(origin: str = LOG_NAME, size: str = "21", root: str = ROOT_B64, *ext: str) -> str:
    return "".join(x + "\n" for x in (origin, size, root, *ext))


MALFORMED_BODIES = {
    "empty": "",
    "no final newline": body()[:-1],
    "two lines": f"{LOG_NAME}\n21\n",
    "empty origin": body(origin=""),
    "origin with CR": body(origin="a\rb"),
    "origin with tab": body(origin="a\tb"),
    "empty size": body(size=""),
    "leading zero": body(size="021"),
    "double zero": body(size="00"),
    "plus sign": body(size="+21"),
    "minus sign": body(size="-21"),
    "minus zero": body(size="-0"),
    "space before size": body(size=" 21"),
    "space after size": body(size="21 "),
    "underscore": body(size="2_1"),
    "hex": body(size="0x15"),
    "arabic-indic digits": body(size="٢١"),
    "fullwidth digits": body(size="２１"),
    "size 2**63": body(size=str(2**63)),
    "size with 20 digits": body(size="1" + "0" * 19),
    "size with 5000 digits": body(size="9" * 5000),
    "root 31 bytes": body(root=base64.b64encode(ROOT[:31]).decode()),
    "root 33 bytes": body(root=base64.b64encode(ROOT + b"x").decode()),
    "root empty": body(root=""),
    "root missing padding": body(root=ROOT_B64.rstrip("=")),
    "root non-canonical": body(root=ROOT_B64[:-2] + "9="),
    "root url-safe alphabet": body(root=base64.urlsafe_b64encode(b"\xfb" * 32).decode()),
    "root with space": body(root=" " + ROOT_B64),
    "empty extension line": body(LOG_NAME, "21", ROOT_B64, ""),
    "empty extension after one": body(LOG_NAME, "21", ROOT_B64, "x", ""),
    "extension with control": body(LOG_NAME, "21", ROOT_B64, "x\x07"),
    "CRLF lines": body().replace("\n", "\r\n"),
}


@pytest.mark.parametrize("text", MALFORMED_BODIES.values(), ids=MALFORMED_BODIES.keys())
def test_malformed_checkpoint_bodies(text: str) -> None:
    with pytest.raises(CheckpointFormatError):
        parse_checkpoint_body(text)


def test_good_bodies_and_size_bounds() -> None:
    assert parse_checkpoint_body(body(size="0")).size == 0
    assert parse_checkpoint_body(body(size=str(2**63 - 1))).size == 2**63 - 1
    spaced = parse_checkpoint_body(body("go.sum database tree"))  # SHOULD, not MUST
    assert spaced.origin == "go.sum database tree"
    cp = parse_checkpoint_body(body(LOG_NAME, "7", ROOT_B64, "a", "b c"))
    assert cp.extensions == ("a", "b c")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"origin": ""},
        {"origin": "a\nb"},
        {"size": -1},
        {"size": 2**63},
        {"size": True},
        {"root": ROOT[:31]},
        {"root": bytearray(ROOT)},
        {"extensions": ("",)},
        {"extensions": ("a\nb",)},
        {"extensions": ("\ud800",)},
    ],
    ids=repr,
)
def test_checkpoint_constructor_validates(kwargs: dict[str, object]) -> None:
    fields: dict[str, object] = {"origin": LOG_NAME, "size": 1, "root": ROOT, "extensions": ()}
    fields.update(kwargs)
    with pytest.raises(CheckpointFormatError):
        Checkpoint(**fields)  # type: ignore[arg-type]


def test_sign_and_verify_checkpoint_key_name_rules() -> None:
    with pytest.raises(ConfigurationError):
        sign_checkpoint(GOOD_CP, "other.example/log", LOG)
    with pytest.raises(InvalidInputError):  # origin with a space cannot be a key name
        sign_checkpoint(Checkpoint("a b", 1, ROOT), "a b", LOG)
    # signed by the right key, but claiming another origin
    other_origin = sign_note(Checkpoint("evil.example/log", 21, ROOT).to_body(), LOG_NAME, LOG)
    with pytest.raises(UnknownKeyError, match="origin"):
        verify_checkpoint(other_origin, LOG_KEY)
    # wrong key; right key but a body that is not a checkpoint
    with pytest.raises(UnknownKeyError):
        verify_checkpoint(GOOD_NOTE, vkey(LOG_NAME, SIGNERS[1]))
    with pytest.raises(CheckpointFormatError):
        verify_checkpoint(sign_note("hello\n", LOG_NAME, LOG), LOG_KEY)
    # witnesses' signatures next to the log's are ignored
    witness = parse_note(sign_note(GOOD_CP.to_body(), "w.example/w", SIGNERS[2])).signatures[0]
    cosigned = GOOD_NOTE + witness.to_line()
    assert verify_checkpoint(cosigned, LOG_KEY) == GOOD_CP
