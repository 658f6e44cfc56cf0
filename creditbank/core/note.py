"""C2SP signed notes (https://c2sp.org/signed-note), Ed25519 only.

A signed note is a UTF-8 text ending in a newline, a blank line, then one or more signature
lines ``— NAME BASE64\\n`` (em dash U+2014, space, key name, space, base64 of a 4-byte key id
followed by the signature). The text is separated from the signatures by the *last* blank
line, so the text itself may contain blank lines.

Parsing is strict and checks the size first. Where the specification is loose we are
stricter, so that ``parse_note(s).to_text() == s`` for every accepted ``s``:

* signature base64 must be canonical standard base64 (Go's decoder also accepts non-zero
  trailing bits and ignores ``\\r``/``\\n``);
* a note with no signature line is malformed (the specification requires "one or more");
* at most :data:`MAX_SIGNATURES` signature lines and :data:`MAX_NOTE_SIZE` bytes.

Verification follows the specification: signatures by unknown keys (name *and* key id) are
ignored, every signature by a known key must verify, and at least one must.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from creditbank.core.signing import (
    Signer,
    VerifierKey,
    b64decode,
    b64encode,
    format_verifier_key,
    note_key_id,
    verify_signature,
)
from creditbank.errors import (
    InvalidInputError,
    NoteFormatError,
    SignatureError,
    TooLargeError,
    UnknownKeyError,
)

#: Default and recommended upper bound on an encoded note, in bytes. The specification asks
#: verifiers to accept at least 16 signatures of up to ~5 kB (post-quantum), so this leaves room.
MAX_NOTE_SIZE = 256 * 1024
#: Most signature lines a note may carry (the specification requires accepting 16).
MAX_SIGNATURES = 100
KEY_ID_SIZE = 4
SIGNATURE_PREFIX = "— "  # em dash U+2014, space

_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")  # ASCII controls except newline


def _check_key_name(name: str) -> None:
    """Key names are non-empty, with no Unicode space, no '+', and no control characters."""
    if (
        not name
        or "+" in name
        or any(c.isspace() for c in name)
        or _CONTROL.search(name) is not None
    ):
        raise NoteFormatError(f"invalid key name {name!r} in signed note")


def _check_text(text: str) -> None:
    if not text.endswith("\n"):
        raise NoteFormatError("note text must end with a newline")
    if _CONTROL.search(text) is not None:
        raise NoteFormatError("note text contains a control character")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise NoteFormatError("note text is not valid Unicode (lone surrogate)") from e


@dataclass(frozen=True, slots=True)
class NoteSignature:
    """One signature line: key name, 4-byte key id, and the raw signature bytes.

    Raises:
        NoteFormatError: on construction, if the name, key id or signature is malformed.
    """

    name: str
    key_id: bytes
    signature: bytes

    def __post_init__(self) -> None:
        _check_key_name(self.name)
        if len(self.key_id) != KEY_ID_SIZE:
            raise NoteFormatError("note key id must be 4 bytes")
        if not self.signature:
            raise NoteFormatError("note signature is empty")

    def to_line(self) -> str:
        """Return the signature line, including its final newline."""
        return f"{SIGNATURE_PREFIX}{self.name} {b64encode(self.key_id + self.signature)}\n"


@dataclass(frozen=True, slots=True)
class Note:
    """A parsed, *unverified* signed note. Do not act on ``text`` before verifying it.

    Raises:
        NoteFormatError: on construction, if the text or the signature list is malformed.
    """

    text: str
    signatures: tuple[NoteSignature, ...]

    def __post_init__(self) -> None:
        _check_text(self.text)
        if not self.signatures:
            raise NoteFormatError("a signed note needs at least one signature")
        if len(self.signatures) > MAX_SIGNATURES:
            raise NoteFormatError(f"note has more than {MAX_SIGNATURES} signatures")

    def to_text(self) -> str:
        """Return the full note: text, blank line, signature lines."""
        return self.text + "\n" + "".join(s.to_line() for s in self.signatures)

    def to_bytes(self) -> bytes:
        """Return the UTF-8 bytes of :meth:`to_text`."""
        return self.to_text().encode("utf-8")


@dataclass(frozen=True, slots=True)
class VerifiedNote:
    """A note with at least one verified signature, and the keys that verified it.

    ``verified_by`` lists the known keys in the order their signatures appear in the note.
    """

    note: Note
    verified_by: tuple[VerifierKey, ...]

    @property
    def text(self) -> str:
        """The note text, now authenticated by ``verified_by``."""
        return self.note.text


def _decode(data: str | bytes, max_size: int) -> str:
    """Size-check first, then decode strict UTF-8."""
    if isinstance(data, str):
        if len(data) > max_size:  # a character is at least one byte
            raise TooLargeError(f"signed note exceeds {max_size} bytes")
        try:
            raw = data.encode("utf-8")
        except UnicodeEncodeError as e:
            raise NoteFormatError("signed note is not valid Unicode") from e
        if len(raw) > max_size:
            raise TooLargeError(f"signed note of {len(raw)} bytes exceeds {max_size}")
        return data
    if len(data) > max_size:
        raise TooLargeError(f"signed note of {len(data)} bytes exceeds {max_size}")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise NoteFormatError("signed note is not valid UTF-8") from e


def _parse_signature_line(line: str) -> NoteSignature:
    if not line.startswith(SIGNATURE_PREFIX):
        raise NoteFormatError("line after the last blank line is not a signature line")
    name, sep, b64 = line[len(SIGNATURE_PREFIX) :].partition(" ")
    if not sep:
        raise NoteFormatError("signature line has no signature")
    _check_key_name(name)
    try:
        raw = b64decode(b64, what="note signature")
    except InvalidInputError as e:
        raise NoteFormatError(f"signature by {name!r} is not canonical base64") from e
    if len(raw) <= KEY_ID_SIZE:
        raise NoteFormatError(f"signature by {name!r} is too short")
    return NoteSignature(name=name, key_id=raw[:KEY_ID_SIZE], signature=raw[KEY_ID_SIZE:])


def parse_note(data: str | bytes, *, max_size: int = MAX_NOTE_SIZE) -> Note:
    """Parse a signed note without verifying it.

    Args:
        data: the whole note, as text or UTF-8 bytes.
        max_size: largest accepted encoded size in bytes, checked before anything else.

    Returns:
        The note text and its signatures, in order; ``parse_note(s).to_text() == s``.

    Raises:
        TooLargeError: if the note is longer than ``max_size`` bytes.
        NoteFormatError: if it is not UTF-8, has a control character other than newline,
            does not end with a newline, has no blank line, has no signature line, more than
            :data:`MAX_SIGNATURES`, or any line after the last blank line that is not a
            well-formed signature line.
    """
    text = _decode(data, max_size)
    if _CONTROL.search(text) is not None:
        raise NoteFormatError("signed note contains a control character")
    if not text.endswith("\n"):
        raise NoteFormatError("signed note must end with a newline")
    split = text.rfind("\n\n")
    if split < 0:
        raise NoteFormatError("signed note has no blank line before its signatures")
    body, sig_block = text[: split + 1], text[split + 2 :]
    if not sig_block:
        raise NoteFormatError("signed note has no signature lines")
    if sig_block.count("\n") > MAX_SIGNATURES:
        raise NoteFormatError(f"signed note has more than {MAX_SIGNATURES} signatures")
    lines = sig_block[:-1].split("\n")
    return Note(text=body, signatures=tuple(_parse_signature_line(ln) for ln in lines))


def _known_keys(verifiers: Sequence[VerifierKey]) -> dict[tuple[str, bytes], VerifierKey]:
    known: dict[tuple[str, bytes], VerifierKey] = {}
    for v in verifiers:
        ident = (v.name, bytes(v.key_id))
        other = known.get(ident)
        if other is not None and other.public != v.public:
            raise InvalidInputError(
                f"two verifier keys share name {v.name!r} and key id {v.key_id.hex()}",
                code="key.ambiguous",
            )
        known[ident] = v
    return known


def verify_note(
    data: str | bytes, verifiers: Sequence[VerifierKey], *, max_size: int = MAX_NOTE_SIZE
) -> VerifiedNote:
    """Parse a signed note and verify it against trusted keys.

    A signature is by a *known* key when both its key name and key id equal a verifier's.
    Signatures by unknown keys are ignored; every signature by a known key must verify.

    Args:
        data: the whole note, as text or UTF-8 bytes.
        verifiers: the trusted keys. An empty list verifies nothing (fails closed).
        max_size: largest accepted encoded size in bytes.

    Returns:
        The note and the keys whose signatures verified (never empty).

    Raises:
        TooLargeError: if the note is larger than ``max_size``.
        NoteFormatError: if the note is malformed, or a known key signed it twice.
        SignatureError: if a signature by a known key does not verify.
        UnknownKeyError: if no signature is by a known key.
        InvalidInputError: if two verifiers share a name and key id but differ in key, or a
            verifier's public key is malformed.
    """
    note = parse_note(data, max_size=max_size)
    known = _known_keys(verifiers)
    message = note.text.encode("utf-8")
    verified: list[VerifierKey] = []
    seen: set[tuple[str, bytes]] = set()
    for sig in note.signatures:
        ident = (sig.name, sig.key_id)
        key = known.get(ident)
        if key is None:
            continue
        label = f"{sig.name}+{sig.key_id.hex()}"
        if ident in seen:
            raise NoteFormatError(f"signed note carries two signatures by {label}")
        seen.add(ident)
        try:
            verify_signature(key.public, message, sig.signature)
        except SignatureError as e:
            raise SignatureError(f"signature by {label} does not verify") from e
        verified.append(key)
    if not verified:
        raise UnknownKeyError("signed note has no signature by a trusted key")
    return VerifiedNote(note=note, verified_by=tuple(verified))


def sign_note(text: str, name: str, signer: Signer) -> str:
    """Sign ``text`` with an Ed25519 key named ``name`` and return the whole note.

    Ed25519 is deterministic, so the same text, name and key always give the same note.

    Args:
        text: the note text; it must end with a newline.
        name: the key name written in the signature line (a valid C2SP key name).
        signer: the private key.

    Returns:
        ``text + "\\n" + "— name base64(key id || signature)\\n"``.

    Raises:
        InvalidInputError: if ``name`` is not a valid key name.
        NoteFormatError: if ``text`` is not valid note text.
        TooLargeError: if the note would exceed :data:`MAX_NOTE_SIZE`.
    """
    public = signer.public_bytes
    format_verifier_key(name, public)  # validates the name as a verifier key would
    _check_text(text)
    signature = signer.sign(text.encode("utf-8"))
    key_id = note_key_id(name, public)
    note = Note(text=text, signatures=(NoteSignature(name, key_id, signature),))
    out = note.to_text()
    if len(out.encode("utf-8")) > MAX_NOTE_SIZE:
        raise TooLargeError(f"signed note would exceed {MAX_NOTE_SIZE} bytes")
    return out
