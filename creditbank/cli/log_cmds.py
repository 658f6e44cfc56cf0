"""``creditbank log …``, ``audit`` and ``auditor token``: the operator's view of the local
transparency log. Every proof printed is verified locally first, against the latest checkpoint
signed with the log key.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Final

import typer

from creditbank.cli.common import opened_bank, write_err, write_out
from creditbank.core import merkle
from creditbank.core.checkpoint import verify_checkpoint
from creditbank.core.signing import b64encode, parse_verifier_key
from creditbank.errors import InvalidInputError, RootMismatchError, VerificationError
from creditbank.service.bank import Bank
from creditbank.service.tokens import issue_auditor_token

MAX_INDEX: Final = merkle.MAX_TREE_SIZE
#: leaf hashes read per request while exporting (the ledger's bound)
EXPORT_CHUNK: Final = 10_000

commands = typer.Typer()
log_app = typer.Typer(
    help="The transparency log (operator view of the local database).", no_args_is_help=True
)
auditor_app = typer.Typer(help="Auditor access.", no_args_is_help=True)
commands.add_typer(log_app, name="log")
commands.add_typer(auditor_app, name="auditor")


IndexArg = Annotated[int, typer.Argument(min=0, max=MAX_INDEX, help="leaf index (0-based)")]


@log_app.command("checkpoint")
def log_checkpoint(ctx: typer.Context) -> None:
    """Print the latest signed checkpoint (a C2SP signed note)."""
    with opened_bank(ctx) as bank:
        sys.stdout.write(bank.ledger.latest_checkpoint().note)


@log_app.command("key")
def log_key(ctx: typer.Context) -> None:
    """Print the log's verifier key (name+hex8+base64)."""
    with opened_bank(ctx) as bank:
        write_out(bank.verifier_key)


def _latest_verified(bank: Bank) -> tuple[int, bytes]:
    """The latest published checkpoint, its signature verified with the log key."""
    note = bank.ledger.latest_checkpoint().note
    cp = verify_checkpoint(note, parse_verifier_key(bank.verifier_key))
    return cp.size, cp.root


def _prove_prefix(bank: Bank, size: int, root: bytes, latest: tuple[int, bytes]) -> None:
    """Check that ``(size, root)`` is a prefix of the signed latest checkpoint."""
    latest_size, latest_root = latest
    if size == latest_size:
        if root != latest_root:
            raise RootMismatchError(f"root of size {size} differs from the signed checkpoint")
        return
    proof = bank.ledger.consistency_proof(size, latest_size)
    merkle.verify_consistency(size, latest_size, root, latest_root, proof)


def _root_of(bank: Bank, size: int, latest: tuple[int, bytes]) -> bytes:
    """The root of published ``size``, derived from proofs and chained to the signed latest."""
    leaf, path = bank.ledger.inclusion_proof(size - 1, size)
    root = merkle.root_from_inclusion_proof(size - 1, size, leaf, path)
    _prove_prefix(bank, size, root, latest)
    return root


@log_app.command("proof")
def log_proof(
    ctx: typer.Context,
    index: IndexArg,
    size: Annotated[
        int | None,
        typer.Option(min=1, max=MAX_INDEX, help="a published tree size; default the latest"),
    ] = None,
) -> None:
    """Print the inclusion proof of entry INDEX (JSON), verified locally first."""
    with opened_bank(ctx) as bank:
        latest = _latest_verified(bank)
        n = latest[0] if size is None else size
        leaf, path = bank.ledger.inclusion_proof(index, n)
        if merkle.leaf_hash(bytes(bank.ledger.entry(index).data)) != leaf:
            raise RootMismatchError(f"stored entry {index} does not hash to its leaf")
        root = merkle.root_from_inclusion_proof(index, n, leaf, path)
        _prove_prefix(bank, n, root, latest)
    doc = {
        "index": index,
        "size": n,
        "leaf_hash": b64encode(leaf),
        "path": [b64encode(h) for h in path],
    }
    write_out(json.dumps(doc, indent=2))


@log_app.command("consistency")
def log_consistency(
    ctx: typer.Context,
    first: Annotated[int, typer.Argument(min=1, max=MAX_INDEX, help="a published size")],
    second: Annotated[
        int | None,
        typer.Argument(min=1, max=MAX_INDEX, help="a published size; default the latest"),
    ] = None,
) -> None:
    """Print the consistency proof between published sizes FIRST and SECOND (JSON)."""
    with opened_bank(ctx) as bank:
        latest = _latest_verified(bank)
        n = latest[0] if second is None else second
        path = bank.ledger.consistency_proof(first, n)
        merkle.verify_consistency(
            first, n, _root_of(bank, first, latest), _root_of(bank, n, latest), path
        )
    write_out(
        json.dumps({"first": first, "second": n, "path": [b64encode(h) for h in path]}, indent=2)
    )


@log_app.command("entry")
def log_entry(ctx: typer.Context, index: IndexArg) -> None:
    """Write entry INDEX's exact stored bytes to stdout."""
    with opened_bank(ctx) as bank:
        data = bytes(bank.ledger.entry(index).data)
    sys.stdout.flush()
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


def entry_file_name(index: int) -> str:
    """File name of entry ``index`` in an export: 20 digits, zero padded, ``.json``."""
    return f"{index:020d}.json"


@log_app.command("export")
def log_export(
    ctx: typer.Context,
    directory: Annotated[Path, typer.Argument(help="target directory (created if missing)")],
    force: Annotated[
        bool, typer.Option("--force", help="write into a non-empty directory, replacing files")
    ] = False,
) -> None:
    """Write every entry up to the latest checkpoint, one file per index, plus checkpoint.txt
    and key.txt; each file's bytes are checked against the log's leaf hashes."""
    if directory.exists() and not directory.is_dir():
        raise InvalidInputError(f"{directory} exists and is not a directory", code="export.target")
    if directory.is_dir() and any(directory.iterdir()) and not force:
        raise InvalidInputError(
            f"{directory} is not empty; choose an empty directory or pass --force",
            code="export.not_empty",
        )
    with opened_bank(ctx) as bank:
        note = bank.ledger.latest_checkpoint().note
        cp = verify_checkpoint(note, parse_verifier_key(bank.verifier_key))
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        hashes: list[bytes] = []
        for start in range(0, cp.size, EXPORT_CHUNK):
            chunk = bank.ledger.leaf_hashes(start, min(start + EXPORT_CHUNK, cp.size))
            for i, want in enumerate(chunk, start):
                data = bytes(bank.ledger.entry(i).data)
                if merkle.leaf_hash(data) != want:
                    raise RootMismatchError(f"stored entry {i} does not hash to its leaf")
                (directory / entry_file_name(i)).write_bytes(data)
            hashes.extend(chunk)
        if merkle.root_from_leaf_hashes(hashes) != cp.root:
            raise RootMismatchError(f"exported entries do not reproduce the root of size {cp.size}")
        (directory / "checkpoint.txt").write_text(note, encoding="utf-8")
        (directory / "key.txt").write_text(bank.verifier_key + "\n", encoding="utf-8")
    write_out(f"exported {cp.size} entries (checkpoint size {cp.size}) to {directory}")


@log_app.command("publish")
def log_publish(ctx: typer.Context) -> None:
    """Sign a checkpoint for the current head now and print it."""
    with opened_bank(ctx) as bank:
        cp = bank.ledger.publish(force=True)
        if cp is None:  # nothing was ever published: an empty log
            raise InvalidInputError("the log is empty; nothing to publish", code="log.empty")
        sys.stdout.write(cp.note)


# -- audit ----------------------------------------------------------------------------------
def audit_progress(min_total: int = 10_000) -> Callable[[int, int], None]:
    """A progress callback that writes to stderr every ~1 s or every 10 % on long logs."""
    import time

    last = {"t": time.monotonic(), "step": 0}

    def progress(done: int, total: int) -> None:
        if total < min_total:
            return
        now = time.monotonic()
        step = done * 10 // total if total else 10
        if now - last["t"] >= 1.0 or step > last["step"]:
            last["t"], last["step"] = now, step
            write_err(f"audit: {done}/{total} entries ({done * 100 // total}%)")

    return progress


@commands.command()
def audit(
    ctx: typer.Context,
    max_problems: Annotated[
        int, typer.Option(min=1, help="problems listed at most (all are counted)")
    ] = 50,
) -> None:
    """Replay the whole log and check every hash, signature and checkpoint.

    Exit 1 and name the first bad index on any problem."""
    from creditbank.service.audit import run_audit

    with opened_bank(ctx) as bank:
        report = run_audit(bank, progress=audit_progress())
    verdict = "OK" if report.ok else f"{len(report.problems)} problem(s)"
    write_out(
        f"audited {report.size} entries and {report.checkpoints} checkpoints: {verdict} "
        f"({report.entries_per_second:,.0f} entries/s)"
    )
    if report.ok:
        return
    first = report.first_bad_index
    if first is not None:
        write_out(f"first bad index: {first}")
    for p in report.problems[:max_problems]:
        write_out(f"  [{'-' if p.index is None else p.index}] {p.code}: {p.detail}")
    if len(report.problems) > max_problems:
        write_out(f"  ... and {len(report.problems) - max_problems} more")
    named = f"first bad index {first}" if first is not None else "no entry index to name"
    raise VerificationError(
        f"audit found {len(report.problems)} problem(s); {named}", code="audit.failed"
    )


# -- auditor --------------------------------------------------------------------------------
@auditor_app.command("token")
def auditor_token(
    ctx: typer.Context,
    label: Annotated[str | None, typer.Option(help="a note on whom it is for")] = None,
) -> None:
    """Create an auditor token (reads every ledger entry over the API); printed only once."""
    with opened_bank(ctx) as bank:
        token, row = issue_auditor_token(bank, label=label)
    write_out(token)
    write_err(f"auditor token {row.token_id} created; it is shown only this once")
