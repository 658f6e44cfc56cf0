"""``creditbank rebuild-projections``: write back what the log implies (ADR 0007)."""

from __future__ import annotations

import typer

from creditbank.cli.common import opened_bank, write_out
from creditbank.service.projection import rebuild_projections

commands = typer.Typer()


@commands.command("rebuild-projections")
def rebuild_projections_cmd(ctx: typer.Context) -> None:
    """Restore every derived column and projection row from the log, and re-sign lost
    checkpoints.

    The envelope columns of log_entries (type, issuer, key_id, at, leaf hash, subject), the
    head's registry count, records, record revocations, rule publications, conversion
    decisions and voids are rebuilt from the entry bytes; a checkpoint deleted from the
    history is signed again (same note). Personal data (names) is not derivable and is left
    as it is. Run `creditbank audit` afterwards."""
    with opened_bank(ctx) as bank:
        report = rebuild_projections(bank)
    if not report.changed:
        write_out("projections match the log: nothing to rebuild")
        return
    for table, (fixed, added, removed) in sorted(report.changed.items()):
        write_out(f"{table}: {fixed} corrected, {added} restored, {removed} removed")
    write_out(f"rebuilt {report.total} row(s) from the log")
