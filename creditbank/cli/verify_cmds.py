"""Verification from the command line: ``creditbank verify`` and ``keys export-public``.

* ``creditbank keys export-public DIR`` writes the bank's public keys (issuer DID document,
  log verifier key, the institution key registry as verifiable log entries, the document CA)
  from the local home (docs/verification.md, "Offline").
* ``creditbank verify FILE.pdf|FILE.json --keys DIR`` checks a document with those keys
  only: no database, no network. ``--online URL`` adds the status list and the consistency
  of the embedded checkpoint with the bank's live log, fetched from its public API.
* ``creditbank verify CODE|URL`` asks the bank's API (``GET /api/v1/verify/{code}``); a bare
  code goes to ``--url`` (default: the configured public base URL).

Every check is printed by name (``--json`` prints the report). Exit 0 only when verified,
1 when the verification failed, 2 for bad input (one line ``error: … [code]``).
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Final
from urllib.parse import urlsplit

import httpx
import typer

from creditbank.cli.client_cmds import keys_app
from creditbank.cli.common import EX_FAILURE, EX_OK, opened_bank, state_of, write_out
from creditbank.client.urls import require_http_url
from creditbank.core.codes import normalize_code
from creditbank.errors import ConfigurationError, InvalidInputError, VerificationError
from creditbank.service.verification import check_label

#: seconds to wait for the bank
TIMEOUT: Final = 20.0
_URL_CODE: Final = re.compile(r"^(https?://[^?#]+?)/v/([0-9A-Za-z -]{16,24})/?$")


@keys_app.command("export-public")
def export_public(
    ctx: typer.Context,
    folder: Annotated[Path, typer.Argument(help="folder to write the public keys into")],
) -> None:
    """Write the bank's public keys for offline verification (DID document, log key,
    institution key registry with its log proofs, document CA)."""
    from creditbank.service.verification_offline import export_public_keys

    with opened_bank(ctx) as bank:
        written = export_public_keys(bank, folder)
    for path in written:
        write_out(f"wrote {path}")


class HttpLiveLog:
    """The bank's public log and status lists over HTTP (``--online URL``)."""

    def __init__(self, base: str, client: httpx.Client) -> None:
        self.base = base.rstrip("/")
        self.client = client

    def _get(self, path: str, **params: int) -> httpx.Response:
        url = self.base + path
        try:
            resp = self.client.get(url, params=params or None)
        except httpx.HTTPError as e:
            raise VerificationError(
                f"cannot reach {url}: {type(e).__name__}", code="verify.unreachable"
            ) from e
        if resp.status_code != 200:
            raise VerificationError(f"{url} answered {resp.status_code}", code="verify.unreachable")
        return resp

    def checkpoint(self) -> str:
        """Raises: VerificationError: ``verify.unreachable``."""
        return self._get("/api/v1/log/checkpoint").text

    def consistency(self, first: int, second: int) -> Sequence[bytes]:
        """Raises: VerificationError: ``verify.unreachable`` (also for a malformed answer)."""
        body = self._get("/api/v1/log/proofs/consistency", first=first, second=second).json()
        try:
            return [base64.b64decode(h, validate=True) for h in body["path"]]
        except (KeyError, TypeError, ValueError) as e:
            raise VerificationError(
                "the consistency proof answer is malformed", code="verify.unreachable"
            ) from e

    def status_list(self, url: str) -> bytes:
        """The status list at ``url``'s path on the bank given with ``--online`` (the
        document's own host is not contacted).

        Raises:
            VerificationError: ``verify.unreachable``.
        """
        return self._get(urlsplit(url).path or "/").content


def _print(report: dict[str, Any], as_json: bool, note: str | None) -> int:
    if as_json:
        write_out(json.dumps(report, ensure_ascii=False, indent=2))
    else:
        write_out(f"{report['status']}: {'verified' if report['verified'] else 'NOT verified'}")
        for c in report["checks"]:
            mark = "ok  " if c["ok"] else "FAIL"
            detail = f" — {c['detail']}" if c["detail"] else ""
            write_out(f"  {mark} {c['name']}: {check_label(c['name'], 'en')}{detail}")
        if note:
            write_out(note)
    return EX_OK if report["verified"] else EX_FAILURE


def _ask_bank(ctx: typer.Context, target: str, url: str | None) -> dict[str, Any]:
    m = _URL_CODE.match(target.strip())
    if m is not None:
        base, code = m.group(1), m.group(2)
    else:
        code = target
        base = url or state_of(ctx).settings().public_base_url
    normalize_code(code)  # a bad code is bad input, not a failed verification
    endpoint = f"{base.rstrip('/')}/api/v1/verify/{normalize_code(code)}"
    try:
        with httpx.Client(timeout=TIMEOUT) as client:
            resp = client.get(endpoint, headers={"Accept": "application/json"})
    except httpx.HTTPError as e:
        raise VerificationError(
            f"cannot reach {endpoint}: {type(e).__name__}", code="verify.unreachable"
        ) from e
    if resp.status_code != 200:
        try:
            problem = resp.json()
            why, code_name = problem.get("detail", ""), problem.get("code", "http")
        except ValueError:
            why, code_name = resp.text[:200], "http"
        raise VerificationError(
            f"the bank answered {resp.status_code}: {why} [{code_name}]", code="verify.refused"
        )
    body: dict[str, Any] = resp.json()
    return body


commands = typer.Typer()


@commands.command("verify")
def verify(
    ctx: typer.Context,
    target: Annotated[
        str, typer.Argument(help="FILE.pdf or FILE.json, a verification code, or its URL")
    ],
    keys: Annotated[
        Path | None,
        typer.Option("--keys", help="folder from `keys export-public` (files: required)"),
    ] = None,
    online: Annotated[
        str | None,
        typer.Option("--online", help="the bank's URL: also check status and the live log"),
    ] = None,
    url: Annotated[str | None, typer.Option("--url", help="the bank's URL for a bare code")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
) -> int:
    """Verify a transcript or certificate: a file (offline with --keys), or a code or URL
    (asks the bank). Exit 0 only when verified."""
    # a bank URL without http:// is a usage error at once (issue #10 item 6)
    url = require_http_url(url) if url is not None else None
    online = require_http_url(online, "--online") if online is not None else None
    path = Path(target)
    if path.is_file():
        if keys is None:
            raise ConfigurationError(
                "verifying a file needs --keys DIR (written by `creditbank keys export-public`)",
                code="verify.keys",
            )
        from creditbank.service.verification_offline import load_public_keys, verify_file

        try:
            data = path.read_bytes()
        except OSError as e:
            raise InvalidInputError(f"cannot read {path}: {e.strerror}") from e
        public = load_public_keys(keys)
        if online is None:
            report = verify_file(data, public)
            note = "offline: the status list and the live log were not consulted (--online URL)"
        else:
            with httpx.Client(timeout=TIMEOUT) as client:
                report = verify_file(data, public, live=HttpLiveLog(online, client))
            note = None
        return _print(report.to_json(), as_json, note)
    if keys is not None or online is not None:
        raise InvalidInputError(f"no such file: {target}", code="verify.no_file")
    if target.startswith(("http://", "https://")) and _URL_CODE.match(target.strip()) is None:
        raise InvalidInputError(
            "a verification URL ends in /v/XXXX-XXXX-XXXX-XXXX", code="code.malformed"
        )
    return _print(_ask_bank(ctx, target, url), as_json, None)
