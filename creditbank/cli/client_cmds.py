"""Institution-side commands: ``creditbank keys generate`` and ``creditbank post``.

They run on the institution's machine and need no bank home: ``keys generate`` writes a key
file, ``post`` signs a CSV or JSONL file's rows with it and posts them to the bank over HTTP
(:mod:`creditbank.client`). Its ``commands`` join the parser in :mod:`creditbank.cli.main`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import TracebackType
from typing import Annotated, Final

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from creditbank.cli.common import EX_FAILURE, EX_OK, BankUrlOpt, write_err, write_out
from creditbank.client.poster import (
    DEFAULT_BATCH_SIZE,
    MAX_BATCH_SIZE,
    PostReport,
    default_journal_path,
    generate_key_file,
    load_key_file,
    post_file,
    public_key_line,
)
from creditbank.client.urls import require_http_url
from creditbank.core.signing import b64encode, entry_key_id
from creditbank.errors import ConfigurationError, ConflictError

PUBLIC_SUFFIX: Final = ".pub"
_PHASES: Final = {"validate": "validating rows", "resolve": "resolving learners", "post": "posting"}

keys_app = typer.Typer(help="Institution key files (run at the institution).", no_args_is_help=True)
commands = typer.Typer()
commands.add_typer(keys_app, name="keys")


@keys_app.command("generate")
def keys_generate(
    institution: Annotated[
        str, typer.Option("--institution", help="the institution id the key signs for")
    ],
    out: Annotated[
        Path, typer.Option("--out", help="private key file to create (never overwritten)")
    ],
) -> None:
    """Create an Ed25519 signing key: FILE (mode 0600) and FILE.pub for the bank.

    Prints the public key and its key id; give those (or FILE.pub) to the bank, keep FILE."""
    public_path = out.with_name(out.name + PUBLIC_SUFFIX)
    if out.exists():
        raise ConflictError(f"refusing to overwrite existing key {out}", code="key.exists")
    if public_path.exists():
        raise ConflictError(f"refusing to overwrite {public_path}", code="key.exists")
    signer = generate_key_file(out, institution)
    line = public_key_line(institution, signer)
    try:
        fd = os.open(public_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(line + "\n")
    except OSError as e:
        raise ConfigurationError(f"cannot write {public_path}: {e.strerror}") from e
    write_out(f"private key: {out} (mode 0600; it never leaves this machine)")
    write_out(f"public key file: {public_path}")
    write_out(f"public key: {line}")
    write_out(f"key id: {entry_key_id(signer.public_bytes)}")
    write_out(f"raw public key (base64): {b64encode(signer.public_bytes)}")


class RichProgress:
    """Progress bars on stderr, one per phase (validation, then posting)."""

    def __init__(self, enabled: bool) -> None:
        self._progress = Progress(
            TextColumn("{task.description:<16}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            disable=not enabled,
        )
        self._tasks: dict[str, TaskID] = {}

    def __enter__(self) -> RichProgress:
        self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._progress.stop()

    def start(self, phase: str, total: int) -> None:
        self._tasks[phase] = self._progress.add_task(_PHASES.get(phase, phase), total=total)

    def advance(self, phase: str, n: int) -> None:
        task = self._tasks.get(phase)
        if task is not None:
            self._progress.advance(task, n)


def _print_report(report: PostReport, *, dry_run: bool) -> None:
    rate = report.rows / report.seconds if report.seconds else 0.0
    if dry_run:
        write_out(
            f"checked {report.rows:,} rows of {report.path.name}: "
            f"{report.rows - len(report.invalid):,} valid, {len(report.invalid):,} invalid "
            f"({report.seconds:.1f} s); nothing was sent"
        )
    else:
        write_out(
            f"{report.path.name}: {report.rows:,} rows; posted {report.posted:,}, "
            f"already in the log {report.duplicates:,}, skipped (journal) {report.skipped:,}, "
            f"invalid {len(report.invalid):,}, rejected {len(report.rejected):,} "
            f"in {report.seconds:.1f} s ({rate:,.0f} rows/s)"
        )
    failures = report.failures
    if failures:
        write_out("row\trecord_id\tcode\tdetail")
        for e in failures:
            write_out(f"{e.row}\t{e.record_id or '-'}\t{e.code}\t{e.detail}")


@commands.command("post")
def post(
    file: Annotated[Path, typer.Argument(help="records to post: FILE.csv or FILE.jsonl")],
    institution: Annotated[str, typer.Option("--institution", help="the posting institution's id")],
    key: Annotated[Path, typer.Option("--key", help="the institution's PRIVATE+KEY file")],
    token: Annotated[
        str,
        typer.Option("--token", envvar="CREDITBANK_TOKEN", help="the institution's API token"),
    ],
    url: BankUrlOpt,
    batch_size: Annotated[
        int,
        typer.Option("--batch-size", min=1, max=MAX_BATCH_SIZE, help="entries per request"),
    ] = DEFAULT_BATCH_SIZE,
    journal: Annotated[
        Path | None,
        typer.Option(help="resume journal; default FILE.creditbank-journal.jsonl"),
    ] = None,
    workers: Annotated[
        int, typer.Option(min=1, max=64, help="processes validating rows of large files")
    ] = min(os.cpu_count() or 1, 4),
    report: Annotated[
        Path | None, typer.Option("--report", help="also write the report as JSON here")
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="validate only; send nothing")] = False,
    progress: Annotated[
        bool, typer.Option("--progress/--no-progress", help="progress bars on stderr")
    ] = True,
) -> int:
    """Validate, sign and post the rows of FILE in batches; safe to re-run after a break.

    Rows already acknowledged (see the journal) are skipped; invalid rows are never sent.
    Ends with a report of every invalid or rejected row; exit 1 if there was any."""
    url = require_http_url(url)  # a usage error at once, before any file is read
    key_name, signer = load_key_file(key)
    if key_name != institution:
        raise ConfigurationError(
            f"key file {key} is named for {key_name!r}, not {institution!r}", code="key.name"
        )
    with RichProgress(progress) as bar:
        result = post_file(
            file,
            institution=institution,
            signer=signer,
            url=url,
            token=token,
            batch_size=batch_size,
            journal_path=journal,
            workers=workers,
            progress=bar,
            dry_run=dry_run,
        )
    _print_report(result, dry_run=dry_run)
    if not dry_run:
        kept = journal or default_journal_path(file)
        write_err(f"journal: {kept}" if kept.exists() else "journal: none (nothing was posted)")
    if report is not None:
        report.write_text(
            json.dumps(result.as_dict(), ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
        )
    return EX_OK if result.ok else EX_FAILURE
