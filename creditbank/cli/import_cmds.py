"""``creditbank import DIR``: load a dataset in the sample layout through the signed path."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from creditbank.cli.common import opened_bank, write_err, write_out
from creditbank.service.importer import ImportReport, Progress, import_dataset


def progress_printer(min_interval: float = 0.5) -> Progress:
    """``progress(step, done, total)`` writing ``import: <step> <done>/<total>`` to stderr,
    at most every ``min_interval`` seconds per step and always when a step completes."""
    last: dict[str, float] = {}

    def progress(step: str, done: int, total: int) -> None:
        now = time.monotonic()
        if done < total and now - last.get(step, float("-inf")) < min_interval:
            return
        last[step] = now
        pct = done * 100 // total if total else 100
        write_err(f"import: {step} {done}/{total} ({pct}%)")

    return progress


def summary_lines(report: ImportReport) -> list[str]:
    """The human summary of an import (stdout of ``creditbank import`` and ``demo``)."""
    lines = [
        f"dataset {report.dataset}: {report.entries_appended} entries added "
        f"in {report.seconds:.1f} s (checkpoint size {report.checkpoint_size})",
        f"  institutions: {report.institutions_registered} registered, "
        f"{report.institutions_closed} closed",
        f"  learners: {report.learners} ({report.learners_created} new, "
        f"{report.learners_existing} known)",
        f"  records: {report.records_posted} posted, {report.corrections_posted} corrections, "
        f"{report.revocations_posted} revocations",
        f"  duplicates re-posted (already in the log): {report.duplicates}",
    ]
    if report.skipped_files:
        lines.append(f"  not imported yet: {', '.join(report.skipped_files)}")
    lines += [f"  note: {n}" for n in report.notes]
    return lines


commands = typer.Typer()


@commands.command("import")
def import_(
    ctx: typer.Context,
    directory: Annotated[
        Path,
        typer.Argument(
            exists=True, file_okay=False, dir_okay=True, help="dataset directory (sample layout)"
        ),
    ],
    name: Annotated[
        str | None,
        typer.Option(help="label of the dataset's references; default the directory name"),
    ] = None,
) -> None:
    """Import a dataset (institutions, learners, records, corrections, revocations) through
    the signed ledger path, then publish a checkpoint. Safe to re-run."""
    with opened_bank(ctx) as bank:
        report = import_dataset(bank, directory, name=name, progress=progress_printer())
    for line in summary_lines(report):
        write_out(line)
