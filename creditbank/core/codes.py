"""Verification codes: 16 Crockford base32 characters (80 bits), shown ``XXXX-XXXX-XXXX-XXXX``.

A verification code is a bearer secret printed on a transcript or certificate next to its QR
code. It is generated from 10 random bytes that the caller supplies (the core takes no
randomness of its own), written in Crockford's base32 alphabet
(``0123456789ABCDEFGHJKMNPQRSTVWXYZ``: no I, L, O or U), and shown in four groups of four.

People type codes from paper, so :func:`normalize_code` accepts lower case, missing or extra
hyphens and spaces, and Crockford's confusables: ``O``/``o`` read as ``0`` and ``I``/``i``/
``L``/``l`` as ``1``. ``U`` is not in the alphabet and is refused.
"""

from __future__ import annotations

import re
from typing import Final

from creditbank.errors import InvalidInputError

#: Crockford's base32 alphabet (32 symbols; excludes I, L, O, U)
ALPHABET: Final = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
#: characters in a code (16 x 5 bits = 80 bits)
CODE_LENGTH: Final = 16
#: random bytes a code is made from
CODE_BYTES: Final = 10
#: longest text :func:`normalize_code` looks at (a code with separators and some slack)
MAX_INPUT_LENGTH: Final = 64

_CONFUSABLES: Final = {"O": "0", "I": "1", "L": "1"}
_SEPARATORS: Final = frozenset("- \t")
_VALUE: Final = {c: i for i, c in enumerate(ALPHABET)}
#: one pass over the typed text: separators dropped, confusables mapped (after upper-casing)
_TYPED: Final = str.maketrans({**dict.fromkeys(_SEPARATORS), **_CONFUSABLES})
#: a character that is not in the alphabet once the text is upper-cased and translated
_OUTSIDE: Final = re.compile(f"[^{ALPHABET}]")


def generate_code(random_bytes: bytes) -> str:
    """Turn 10 random bytes into a 16-character canonical code (no hyphens).

    Args:
        random_bytes: exactly :data:`CODE_BYTES` bytes from a CSPRNG (``secrets.token_bytes``).

    Returns:
        The canonical code, 16 characters of :data:`ALPHABET`.

    Raises:
        InvalidInputError: ``code.entropy`` when ``random_bytes`` is not 10 bytes long.
    """
    if len(random_bytes) != CODE_BYTES:
        raise InvalidInputError(
            f"a verification code takes exactly {CODE_BYTES} random bytes", code="code.entropy"
        )
    number = int.from_bytes(random_bytes, "big")
    chars = [ALPHABET[(number >> (5 * (CODE_LENGTH - 1 - i))) & 0x1F] for i in range(CODE_LENGTH)]
    return "".join(chars)


def format_code(code: str) -> str:
    """Show a code in four hyphen-separated groups: ``XXXX-XXXX-XXXX-XXXX``.

    Args:
        code: a code in any form :func:`normalize_code` accepts.

    Returns:
        The display form.

    Raises:
        InvalidInputError: ``code.malformed`` when ``code`` is not a verification code.
    """
    canonical = normalize_code(code)
    return "-".join(canonical[i : i + 4] for i in range(0, CODE_LENGTH, 4))


def normalize_code(text: str) -> str:
    """Read a code as a person typed it and return its canonical 16-character form.

    Accepts lower case, hyphens and spaces anywhere, and the confusables O→0, I→1, L→1.

    Args:
        text: what was typed or scanned.

    Returns:
        The canonical code (16 upper-case characters of :data:`ALPHABET`, no hyphens).

    Raises:
        InvalidInputError: ``code.malformed`` when the text is too long, holds a character
            outside the alphabet (after mapping confusables), or does not have 16 characters.
    """
    if len(text) > MAX_INPUT_LENGTH or not text.isascii():
        raise InvalidInputError("not a verification code", code="code.malformed")
    canonical = text.strip().upper().translate(_TYPED)
    if _OUTSIDE.search(canonical) is not None:
        raise InvalidInputError(
            "a verification code holds only digits and the letters A-Z without U",
            code="code.malformed",
        )
    if len(canonical) != CODE_LENGTH:
        raise InvalidInputError(
            f"a verification code has {CODE_LENGTH} characters (XXXX-XXXX-XXXX-XXXX)",
            code="code.malformed",
        )
    return canonical


def code_to_bytes(code: str) -> bytes:
    """Decode a code back into its 10 bytes (for hashing or comparison).

    Args:
        code: a code in any form :func:`normalize_code` accepts.

    Returns:
        The 10 bytes the code was generated from.

    Raises:
        InvalidInputError: ``code.malformed`` when ``code`` is not a verification code.
    """
    number = 0
    for ch in normalize_code(code):
        number = (number << 5) | _VALUE[ch]
    return number.to_bytes(CODE_BYTES, "big")
