"""The language rule and the catalogue: every key used by a template exists in zh and en."""

from __future__ import annotations

import re
from importlib import resources

import pytest

from creditbank.web.catalogue import MESSAGES
from creditbank.web.i18n import LANGS, choose_language, translator


@pytest.mark.parametrize(
    ("query", "cookie", "header", "lang"),
    [
        (None, None, "", "zh"),
        (None, None, "en-US,en;q=0.9", "en"),
        (None, None, "zh-CN,zh;q=0.9,en;q=0.8", "zh"),
        (None, None, "fr-FR, en;q=0.5, zh;q=0.7", "zh"),  # by preference, not by order
        (None, None, "fr-FR, de", "zh"),
        (None, None, "zh;q=0, en", "en"),
        (None, "en", "zh-CN", "en"),
        ("zh", "en", "en", "zh"),
        ("xx", "yy", "en", "en"),
    ],
)
def test_language_rule(query: str | None, cookie: str | None, header: str, lang: str) -> None:
    assert choose_language(query, cookie, header) == lang


def test_every_message_has_both_languages() -> None:
    for key, texts in MESSAGES.items():
        assert set(texts) == set(LANGS), key
        assert all(texts[lang].strip() for lang in LANGS), key


def test_every_template_key_is_in_the_catalogue() -> None:
    root = resources.files("creditbank") / "templates" / "web"
    used: set[str] = set()
    for entry in root.iterdir():
        if entry.name.endswith(".j2"):
            used |= set(re.findall(r"\bt(?:_other)?\('([a-z0-9_.]+)'\s*[,)]", entry.read_text()))
    assert used, "no t('...') call found: the pattern is stale"
    assert used - set(MESSAGES) == set()
    # error pages build their keys from the status
    for status in ("400", "401", "403", "404", "405", "413", "422", "429", "500", "503", "other"):
        assert f"error.{status}.title" in MESSAGES
        assert f"error.{status}.text" in MESSAGES


def test_translator_formats_and_fails_loudly() -> None:
    assert translator("en")("error.retry_after", seconds=3) == "Please try again in 3 seconds."
    with pytest.raises(KeyError):
        translator("zh")("no.such.key")
