"""``creditbank monitor``: an institution follows the public log and is told of anything in its
name it did not sign (:mod:`creditbank.client.monitor`, docs/monitor.md).

Like ``post`` it needs no bank home: it talks to the bank over HTTP and keeps its own state
file. Its ``commands`` join the parser in :mod:`creditbank.cli.main`.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from creditbank.cli.common import BankUrlOpt, write_out
from creditbank.client.monitor import (
    MonitorReport,
    default_state_path,
    iter_alert_lines,
    run_monitor,
)
from creditbank.client.urls import require_http_url
from creditbank.errors import VerificationError


def _progress_printer(min_total: int = 20_000) -> Callable[[str, int, int], None]:
    """Progress on stderr about once a second, for long first runs only."""
    last = {"t": time.monotonic()}

    def progress(phase: str, done: int, total: int) -> None:
        now = time.monotonic()
        if total >= min_total and (now - last["t"] >= 1.0 or done == total):
            last["t"] = now
            sys.stderr.write(f"monitor: {phase} {done}/{total}\n")
            sys.stderr.flush()

    return progress


def _summary(report: MonitorReport, url: str) -> list[str]:
    new = report.size_after - report.size_before
    checked = f", {report.verified} signature-checked with the token" if report.claimed else ""
    verdict = f"{len(report.alerts)} alert(s)" if report.alerts else "no alerts"
    lines = [
        f"monitored {report.institution} at {url}: log size {report.size_before} -> "
        f"{report.size_after} ({new} new entries, {report.claimed} in its name{checked}, "
        f"{report.registry_entries} registry); {verdict}"
    ]
    lines.extend(f"  {k}" for k in report.keys)
    if not report.state_saved:
        lines.append("  state not advanced: the next run checks the same checkpoint again")
    return lines


commands = typer.Typer()


@commands.command("monitor")
def monitor(
    institution: Annotated[
        str, typer.Option("--institution", help="the institution id to watch over")
    ],
    url: BankUrlOpt,
    state: Annotated[
        Path | None,
        typer.Option(
            "--state",
            help="the monitor's own state (JSON; created on the first run); default "
            "creditbank-monitor.<ID>.json here",
            dir_okay=False,
        ),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            envvar="CREDITBANK_TOKEN",
            help="the institution's API token: read and verify the signature of every entry "
            "in its name (without it only key validity is checked)",
        ),
    ] = None,
    log_key: Annotated[
        str | None,
        typer.Option(
            "--log-key",
            help="the log's verifier key name+hex8+base64 (first run; default: pin the key "
            "the bank serves)",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
) -> None:
    """Follow the public log from the saved state; alert on entries in the institution's
    name not signed by its registered keys, on registry changes for it, and on inconsistent
    or badly signed checkpoints. Exit 1 on any alert, 0 when clean."""
    base = require_http_url(url)
    path = state or default_state_path(institution)
    report = run_monitor(
        institution,
        path,
        url=base,
        token=token or None,
        log_key=log_key,
        progress=_progress_printer(),
    )
    if as_json:
        write_out(json.dumps(report.as_dict(), ensure_ascii=False, indent=2))
    else:
        for note in report.notes:
            write_out(note)
        for line in iter_alert_lines(report):
            write_out(line)
        for line in _summary(report, base):
            write_out(line)
    if report.alerts:
        first = report.alerts[0]
        raise VerificationError(
            f"{len(report.alerts)} alert(s) for {institution}; first at {first.where} "
            f"[{first.code}]",
            code="monitor.alert",
        )
