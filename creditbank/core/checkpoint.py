"""C2SP transparency-log checkpoints (https://c2sp.org/tlog-checkpoint) in signed notes.

A checkpoint body is::

    <origin>\\n<tree size>\\n<base64 root hash>\\n[<extension line>\\n ...]

and it travels as the text of a :mod:`creditbank.core.note` signed by the log's key, whose
name equals the origin.

The parser enforces every MUST of the specification and, because our trees are RFC 6962
SHA-256 trees, a root of exactly 32 bytes in canonical base64. The size is ASCII decimal with
no sign, no leading zero (except ``0`` itself) and below 2**63. Extension lines are kept
verbatim and must be non-empty. The origin only has to be non-empty (the specification's
"schema-less URL without spaces or '+'" is a SHOULD); :func:`verify_checkpoint` requires it
to equal the signing key's name, which rules out spaces and '+' for our own logs.

Every accepted body round-trips: ``parse_checkpoint_body(s).to_body() == s``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from creditbank.core.merkle import HASH_SIZE, MAX_TREE_SIZE
from creditbank.core.note import MAX_NOTE_SIZE, sign_note, verify_note
from creditbank.core.signing import Signer, VerifierKey, b64decode, b64encode
from creditbank.errors import (
    CheckpointFormatError,
    ConfigurationError,
    InvalidInputError,
    TooLargeError,
    UnknownKeyError,
)

_CONTROL = re.compile(r"[\x00-\x1f]")  # includes newline: no field may span lines
_SIZE = re.compile(r"0|[1-9][0-9]{0,18}")  # ASCII only; 19 digits covers 2**63 - 1


def _check_line(value: str, what: str) -> None:
    if not value:
        raise CheckpointFormatError(f"checkpoint {what} is empty")
    if _CONTROL.search(value) is not None:
        raise CheckpointFormatError(f"checkpoint {what} contains a control character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as e:
        raise CheckpointFormatError(f"checkpoint {what} is not valid Unicode") from e


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A log's tree head: origin, tree size, RFC 6962 root hash and extension lines.

    Raises:
        CheckpointFormatError: on construction, if a field is out of range or malformed.
    """

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_line(self.origin, "origin")
        if type(self.size) is not int or not 0 <= self.size <= MAX_TREE_SIZE:
            raise CheckpointFormatError(f"checkpoint size out of range: {self.size!r}")
        if type(self.root) is not bytes or len(self.root) != HASH_SIZE:
            raise CheckpointFormatError("checkpoint root must be 32 bytes")
        for line in self.extensions:
            _check_line(line, "extension line")

    def to_body(self) -> str:
        """Return the note text: ``origin\\nsize\\nbase64(root)\\n`` then extension lines."""
        lines = [self.origin, str(self.size), b64encode(self.root), *self.extensions]
        return "".join(line + "\n" for line in lines)


def parse_checkpoint_body(text: str, *, max_size: int = MAX_NOTE_SIZE) -> Checkpoint:
    """Parse a checkpoint body (the text of its signed note), strictly.

    Args:
        text: the body, ending with a newline.
        max_size: largest accepted size in bytes, checked before parsing.

    Returns:
        The checkpoint; ``parse_checkpoint_body(text).to_body() == text``.

    Raises:
        TooLargeError: if ``text`` is longer than ``max_size`` bytes.
        CheckpointFormatError: if it has fewer than three lines, does not end with a newline,
            has an empty origin or extension line, a size that is not canonical ASCII decimal
            below 2**63, or a root that is not canonical base64 of exactly 32 bytes.
    """
    if len(text) > max_size or len(text.encode("utf-8", "surrogatepass")) > max_size:
        raise TooLargeError(f"checkpoint body exceeds {max_size} bytes")
    if not text.endswith("\n"):
        raise CheckpointFormatError("checkpoint body must end with a newline")
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise CheckpointFormatError("checkpoint body needs origin, size and root lines")
    origin, size_line, root_line, *extensions = lines
    if _SIZE.fullmatch(size_line) is None:
        raise CheckpointFormatError(
            f"checkpoint size {size_line[:24]!r} is not canonical ASCII decimal"
        )
    size = int(size_line)
    if size > MAX_TREE_SIZE:
        raise CheckpointFormatError("checkpoint size is not below 2**63")
    try:
        root = b64decode(root_line, what="checkpoint root")
    except InvalidInputError as e:
        raise CheckpointFormatError("checkpoint root is not canonical base64") from e
    if len(root) != HASH_SIZE:
        raise CheckpointFormatError(f"checkpoint root is {len(root)} bytes, not 32")
    return Checkpoint(origin=origin, size=size, root=root, extensions=tuple(extensions))


def sign_checkpoint(cp: Checkpoint, origin_key_name: str, signer: Signer) -> str:
    """Sign a checkpoint as a C2SP signed note with the log key.

    Args:
        cp: the checkpoint to sign.
        origin_key_name: the log key's name; it must equal ``cp.origin``.
        signer: the log's private key.

    Returns:
        The signed note text (deterministic: Ed25519).

    Raises:
        ConfigurationError: if the key name differs from the checkpoint origin.
        InvalidInputError: if the origin is not a valid key name (e.g. holds a space or '+').
    """
    if origin_key_name != cp.origin:
        raise ConfigurationError(
            f"log key name {origin_key_name!r} differs from checkpoint origin {cp.origin!r}",
            code="checkpoint.key_name_mismatch",
        )
    return sign_note(cp.to_body(), origin_key_name, signer)


def verify_checkpoint(
    note_text: str | bytes, verifier: VerifierKey, *, max_size: int = MAX_NOTE_SIZE
) -> Checkpoint:
    """Verify a signed checkpoint against the log key and return its parsed body.

    The signature is verified before the body is interpreted. The checkpoint's origin must
    equal the verifier key's name. Other signatures (witnesses, rotated keys) are ignored.

    Args:
        note_text: the signed note.
        verifier: the log's verifier key.
        max_size: largest accepted note size in bytes.

    Returns:
        The verified checkpoint.

    Raises:
        TooLargeError: if the note is larger than ``max_size``.
        NoteFormatError: if the signed note is malformed.
        UnknownKeyError: if the note has no signature by ``verifier``, or the checkpoint's
            origin is not the verifier's key name.
        SignatureError: if the signature by ``verifier`` does not verify.
        CheckpointFormatError: if the signed body is not a strict checkpoint.
    """
    verified = verify_note(note_text, [verifier], max_size=max_size)
    cp = parse_checkpoint_body(verified.text, max_size=max_size)
    if cp.origin != verifier.name:
        raise UnknownKeyError(
            f"checkpoint origin {cp.origin!r} is not the verifier key name {verifier.name!r}"
        )
    return cp
