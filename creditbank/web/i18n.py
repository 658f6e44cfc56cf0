"""Choosing the page language (Chinese or English) and looking strings up in the catalogue.

The rule, the same on every page: ``?lang=zh|en`` (remembered in the ``cb_lang`` cookie for
a year), else that cookie, else the first of zh/en in ``Accept-Language`` by preference
(q-values honoured), else Chinese.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Final

from creditbank.web.catalogue import MESSAGES

LANGS: Final = ("zh", "en")
DEFAULT_LANG: Final = "zh"
LANG_COOKIE: Final = "cb_lang"
#: how long the language choice is remembered
LANG_COOKIE_MAX_AGE: Final = 365 * 24 * 3600
#: the html ``lang`` attribute of each page language
HTML_LANG: Final[dict[str, str]] = {"zh": "zh-CN", "en": "en"}


def _from_accept_language(header: str) -> str | None:
    ranked: list[tuple[float, int, str]] = []
    for pos, part in enumerate(header.split(",")):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        key, _, value = params.strip().partition("=")
        if key.strip().lower() == "q":
            try:
                q = float(value)
            except ValueError:
                q = 0.0
        primary = tag.strip().lower().split("-")[0]
        if primary in LANGS and q > 0:
            ranked.append((-q, pos, primary))
    return min(ranked)[2] if ranked else None


def choose_language(query: str | None, cookie: str | None, accept_language: str) -> str:
    """The page language from the ``lang`` query parameter, the cookie and the header."""
    if query in LANGS:
        return query
    if cookie in LANGS:
        return cookie
    return _from_accept_language(accept_language) or DEFAULT_LANG


def translator(
    lang: str, messages: Mapping[str, Mapping[str, str]] = MESSAGES
) -> Callable[..., str]:
    """``t(key, **fields)`` for ``lang``.

    Raises:
        KeyError: (when called) for a key or language missing from the catalogue.
    """

    def t(key: str, **fields: object) -> str:
        text = messages[key][lang]
        return text.format(**fields) if fields else text

    return t
