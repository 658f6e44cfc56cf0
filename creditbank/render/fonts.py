"""The fonts documents are set in, checked through fontconfig before anything is rendered.

WeasyPrint finds fonts through fontconfig and Pango. When a family is missing, fontconfig
silently substitutes another one, and a character no installed font covers is drawn as an
empty box, with at most a warning. For a credential that a worker shows an employer, both are
errors, so this module:

* resolves each required family with fontconfig (:func:`require_fonts`) and refuses to go on
  when fontconfig answers with a different family (``render.font_missing``);
* checks that every character of a document's text is covered by one of those families
  (:func:`check_coverage`), so a name in a script the fonts lack is refused
  (``render.glyph_missing``) instead of being printed as boxes.

fontconfig is read through :mod:`ctypes` (the same ``libfontconfig`` Pango uses), once per
process; the character sets are kept for the life of the process.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
import unicodedata
from dataclasses import dataclass
from typing import Final

from creditbank.errors import ConfigurationError, InvalidInputError

#: the families the templates name in base.css, in order (sans for text, serif for titles)
REQUIRED_FAMILIES: Final = ("Noto Sans CJK SC", "Noto Serif CJK SC")

_FC_MATCH: Final = 0  # FcResultMatch
_FC_MATCH_PATTERN: Final = 0  # FcMatchPattern


@dataclass(frozen=True, slots=True)
class ResolvedFont:
    """A family as fontconfig resolved it.

    Attributes:
        requested: the family asked for.
        family: the family fontconfig matched.
        file: the font file fontconfig chose.
    """

    requested: str
    family: str
    file: str


class _FontConfig:
    """Thin ctypes binding to the few fontconfig calls needed here."""

    def __init__(self) -> None:
        name = ctypes.util.find_library("fontconfig")
        if name is None:
            raise ConfigurationError(
                "fontconfig is not installed (apt install fontconfig fonts-noto-cjk)",
                code="render.font_missing",
            )
        lib = ctypes.CDLL(name)
        vp = ctypes.c_void_p
        lib.FcInit.restype = ctypes.c_int
        lib.FcNameParse.argtypes = [ctypes.c_char_p]
        lib.FcNameParse.restype = vp
        lib.FcConfigSubstitute.argtypes = [vp, vp, ctypes.c_int]
        lib.FcConfigSubstitute.restype = ctypes.c_int
        lib.FcDefaultSubstitute.argtypes = [vp]
        lib.FcDefaultSubstitute.restype = None
        lib.FcFontMatch.argtypes = [vp, vp, ctypes.POINTER(ctypes.c_int)]
        lib.FcFontMatch.restype = vp
        lib.FcPatternGetString.argtypes = [vp, ctypes.c_char_p, ctypes.c_int, ctypes.POINTER(vp)]
        lib.FcPatternGetString.restype = ctypes.c_int
        lib.FcPatternGetCharSet.argtypes = [vp, ctypes.c_char_p, ctypes.c_int, ctypes.POINTER(vp)]
        lib.FcPatternGetCharSet.restype = ctypes.c_int
        lib.FcCharSetHasChar.argtypes = [vp, ctypes.c_uint32]
        lib.FcCharSetHasChar.restype = ctypes.c_int
        lib.FcPatternDestroy.argtypes = [vp]
        lib.FcPatternDestroy.restype = None
        if not lib.FcInit():
            raise ConfigurationError("fontconfig failed to initialise", code="render.font_missing")
        self._lib = lib

    def _string(self, pattern: int, key: bytes) -> str:
        out = ctypes.c_void_p()
        if self._lib.FcPatternGetString(pattern, key, 0, ctypes.byref(out)) != _FC_MATCH:
            return ""
        return ctypes.string_at(out.value).decode("utf-8", "replace") if out.value else ""

    def match(self, family: str) -> tuple[ResolvedFont, int]:
        """Resolve ``family``; return what matched and the matched pattern's charset pointer."""
        lib = self._lib
        pattern = lib.FcNameParse(family.replace("-", "\\-").encode())
        if not pattern:
            raise ConfigurationError(
                f"fontconfig cannot parse {family!r}", code="render.font_missing"
            )
        try:
            lib.FcConfigSubstitute(None, pattern, _FC_MATCH_PATTERN)
            lib.FcDefaultSubstitute(pattern)
            result = ctypes.c_int()
            matched = lib.FcFontMatch(None, pattern, ctypes.byref(result))
        finally:
            lib.FcPatternDestroy(pattern)
        if not matched:
            raise ConfigurationError(f"no font matches {family!r}", code="render.font_missing")
        # the matched pattern is kept for the process lifetime: it owns the charset
        charset = ctypes.c_void_p()
        if lib.FcPatternGetCharSet(matched, b"charset", 0, ctypes.byref(charset)) != _FC_MATCH:
            raise ConfigurationError(f"font {family!r} has no charset", code="render.font_missing")
        resolved = ResolvedFont(
            family, self._string(matched, b"family"), self._string(matched, b"file")
        )
        return resolved, int(charset.value or 0)

    def has_char(self, charset: int, codepoint: int) -> bool:
        return bool(self._lib.FcCharSetHasChar(charset, codepoint))


_lock = threading.Lock()
_fc: _FontConfig | None = None
_resolved: dict[str, tuple[ResolvedFont, int]] = {}


def _fontconfig() -> _FontConfig:
    global _fc  # one binding per process
    if _fc is None:
        _fc = _FontConfig()
    return _fc


def require_fonts(families: tuple[str, ...] = REQUIRED_FAMILIES) -> tuple[ResolvedFont, ...]:
    """Resolve every family with fontconfig and refuse a substitute.

    Args:
        families: family names as the stylesheet names them.

    Returns:
        What each family resolved to (family name and file), in order.

    Raises:
        ConfigurationError: ``render.font_missing`` when fontconfig is absent or answers a
            family with a different one (the font is not installed).
    """
    with _lock:
        fc = _fontconfig()
        out = []
        for family in families:
            if family not in _resolved:
                resolved, charset = fc.match(family)
                matched = {name.strip().casefold() for name in resolved.family.split(",")}
                if family.casefold() not in matched:
                    raise ConfigurationError(
                        f"font {family!r} is not installed (fontconfig offers "
                        f"{resolved.family!r} instead); install fonts-noto-cjk",
                        code="render.font_missing",
                    )
                _resolved[family] = (resolved, charset)
            out.append(_resolved[family][0])
        return tuple(out)


def _ignorable(ch: str) -> bool:
    return ch.isspace() or unicodedata.category(ch) in ("Cc", "Cf", "Zs", "Zl", "Zp")


def missing_characters(text: str, families: tuple[str, ...] = REQUIRED_FAMILIES) -> str:
    """Return the distinct characters of ``text`` that none of ``families`` can draw.

    Args:
        text: the text a document shows.
        families: the families the stylesheet uses.

    Returns:
        The uncovered characters in order of first appearance ("" when all are covered).

    Raises:
        ConfigurationError: ``render.font_missing`` when a family is not installed.
    """
    require_fonts(families)
    fc = _fontconfig()
    charsets = [_resolved[f][1] for f in families]
    missing: dict[str, None] = {}
    for ch in set(text):
        if ch in missing or _ignorable(ch):
            continue
        if not any(fc.has_char(cs, ord(ch)) for cs in charsets):
            missing[ch] = None
    return "".join(sorted(missing, key=text.index))


def check_coverage(text: str, families: tuple[str, ...] = REQUIRED_FAMILIES) -> None:
    """Refuse text that would print as empty boxes.

    Args:
        text: the text a document shows.
        families: the families the stylesheet uses.

    Raises:
        InvalidInputError: ``render.glyph_missing`` naming the characters no font covers.
        ConfigurationError: ``render.font_missing`` when a family is not installed.
    """
    missing = missing_characters(text, families)
    if missing:
        listed = ", ".join(f"U+{ord(c):04X} {c!r}" for c in missing[:10])
        raise InvalidInputError(
            f"no installed document font can draw {listed}", code="render.glyph_missing"
        )
