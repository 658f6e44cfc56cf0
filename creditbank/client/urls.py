"""The bank's base URL, checked before any request (issue #10: a URL without ``http://`` is a
usage error at once, not twenty seconds of retries)."""

from __future__ import annotations

from urllib.parse import urlsplit

from creditbank.errors import InvalidInputError


def require_http_url(url: str, option: str = "--url") -> str:
    """Return ``url`` without a trailing slash if it is an ``http://`` or ``https://`` URL
    with a host; ``option`` names it in the error.

    Raises:
        InvalidInputError: ``usage.url`` otherwise (the CLI exits 2 with one line).
    """
    text = url.strip()
    try:
        parts = urlsplit(text)
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        parts, port_ok = None, False
    if (
        parts is None
        or parts.scheme not in ("http", "https")
        or not parts.hostname
        or not port_ok
        or parts.query
        or parts.fragment
        or any(c.isspace() for c in text)
    ):
        raise InvalidInputError(
            f"{option} {url!r} is not an http:// or https:// URL of the bank "
            "(e.g. http://127.0.0.1:8000)",
            code="usage.url",
        )
    return text.rstrip("/")


__all__ = ["require_http_url"]
