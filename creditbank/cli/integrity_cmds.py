"""``creditbank rebuild-projections``: write back what the log implies (ADR 0007)."""

from __future__ import annotations

import typer

from creditbank.cli.main import _open, _out, app
from creditbank.service.projection import rebuild_projections


@app.command("rebuild-projections")
def rebuild_projections_cmd(ctx: typer.Context) -> None:
    """Restore every derived column and projection row from the log, and re-sign lost
    checkpoints.

    The envelope columns of log_entries (type, issuer, key_id, at, leaf hash, subject), the
    head's registry count, records, record revocations, rule publications, conversion
    decisions and voids are rebuilt from the entry bytes; a checkpoint deleted from the
    history is signed again (same note). Personal data (names) is not derivable and is left
    as it is. Run `creditbank audit` afterwards."""
    with _open(ctx) as bank:
        report = rebuild_projections(bank)
    if not report.changed:
        _out("projections match the log: nothing to rebuild")
        return
    for table, (fixed, added, removed) in sorted(report.changed.items()):
        _out(f"{table}: {fixed} corrected, {added} restored, {removed} removed")
    _out(f"rebuilt {report.total} row(s) from the log")
