"""Document commands: ``transcript issue|revoke|list``, ``certificate issue``.

Operator commands over the local home (docs/documents.md). ``--learner`` takes the bank's id
(``LRN-…``) or the id an imported dataset gave it (``L01``). An issuance prints the document
id, the verification code (shown once, printed on the PDF) and the verification URL.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer

from creditbank.cli.common import opened_bank, write_out
from creditbank.errors import ConfigurationError, InvalidInputError
from creditbank.service import conversion, issuance

transcript_app = typer.Typer(help="Transcripts (and certificates) issued.", no_args_is_help=True)
certificate_app = typer.Typer(help="Certificates of one record or decision.", no_args_is_help=True)
commands = typer.Typer()
commands.add_typer(transcript_app, name="transcript")
commands.add_typer(certificate_app, name="certificate")

LearnerOpt = Annotated[
    str,
    typer.Option("--learner", help="the bank's learner id (LRN-…) or an imported dataset's id"),
]
OutOpt = Annotated[
    Path, typer.Option("--out", help="where to write the signed PDF", dir_okay=False)
]
JsonFileOpt = Annotated[
    Path | None,
    typer.Option("--json", help="also write the signed credential JSON here", dir_okay=False),
]


def _indices(text: str, what: str) -> list[int]:
    try:
        values = [int(p) for p in text.split(",") if p.strip()]
    except ValueError as e:
        raise InvalidInputError(
            f"{what} takes ledger indices separated by commas, e.g. 12,15",
            code="document.record_index",
        ) from e
    if not values or any(v < 0 for v in values):
        raise InvalidInputError(f"{what} needs at least one index >= 0",
                                code="document.record_index")  # fmt: skip
    return values


def _check_out(*paths: Path | None) -> None:
    """Refuse before issuing when an output cannot be written (nothing is issued then)."""
    for p in paths:
        if p is None:
            continue
        parent = p.parent if str(p.parent) else Path()
        if not parent.is_dir() or not os.access(parent, os.W_OK):
            raise ConfigurationError(f"cannot write {p}: no such writable folder",
                                     code="cli.output")  # fmt: skip
        if p.is_dir():
            raise ConfigurationError(f"{p} is a folder", code="cli.output")


def _write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".part")
    tmp.write_bytes(data)
    tmp.replace(path)


def _report(got: issuance.Issued, out: Path, json_file: Path | None) -> None:
    _write(out, got.pdf)
    if json_file is not None:
        _write(json_file, got.credential)
    write_out(
        f"{got.kind} {got.doc_id} issued for {got.learner_id} "
        f"(ledger entry {got.entry_index}, status bit {got.status_list}/{got.status_index})"
    )
    write_out(f"verification code: {got.display_code} (valid until {got.code_expires_at[:10]})")
    write_out(f"verification url: {got.verify_url}")
    write_out(f"pdf: {out}" + (f"  credential: {json_file}" if json_file is not None else ""))


@transcript_app.command("issue")
def transcript_issue(
    ctx: typer.Context,
    learner: LearnerOpt,
    out: OutOpt,
    records: Annotated[
        str | None,
        typer.Option("--records", help="only these records: ledger indices, e.g. 12,15"),
    ] = None,
    json_file: JsonFileOpt = None,
) -> None:
    """Issue a signed transcript (PDF with the credential attached) and print its code."""
    chosen = None if records is None else _indices(records, "--records")
    _check_out(out, json_file)
    with opened_bank(ctx) as bank:
        learner_id = conversion.resolve_learner_ref(bank, learner)
        got = issuance.issue_transcript(bank, learner_id, chosen)
    _report(got, out, json_file)


@certificate_app.command("issue")
def certificate_issue(
    ctx: typer.Context,
    learner: LearnerOpt,
    out: OutOpt,
    record: Annotated[int | None, typer.Option("--record", help="a record's ledger index")] = None,
    decision: Annotated[
        int | None, typer.Option("--decision", help="a conversion decision's ledger index")
    ] = None,
    json_file: JsonFileOpt = None,
) -> None:
    """Issue a signed certificate of one record (--record) or one decision (--decision)."""
    if (record is None) == (decision is None):
        raise InvalidInputError("give --record I or --decision I",
                                code="document.certificate_subject")  # fmt: skip
    _check_out(out, json_file)
    with opened_bank(ctx) as bank:
        learner_id = conversion.resolve_learner_ref(bank, learner)
        got = issuance.issue_certificate(bank, learner_id, record=record, decision=decision)
    _report(got, out, json_file)


@transcript_app.command("revoke")
def transcript_revoke(
    ctx: typer.Context,
    document_id: Annotated[str, typer.Argument(help="the document id (DOC-…)")],
    reason: Annotated[str, typer.Option("--reason", help="why, in words (recorded in the log)")],
) -> None:
    """Withdraw a transcript or certificate (a bank-signed transcript.revoked entry)."""
    with opened_bank(ctx) as bank:
        info = issuance.revoke_document(bank, document_id, reason=reason, by="bank")
    write_out(f"{info['kind']} {info['document_id']} revoked: {reason.strip()}")


@transcript_app.command("list")
def transcript_list(
    ctx: typer.Context,
    learner: LearnerOpt,
    as_json: Annotated[bool, typer.Option("--json", help="print the list as JSON")] = False,
) -> None:
    """List a learner's transcripts and certificates with their status."""
    with opened_bank(ctx) as bank:
        learner_id = conversion.resolve_learner_ref(bank, learner)
        docs = issuance.list_documents(bank, learner_id)
    if as_json:
        write_out(json.dumps(docs, ensure_ascii=False, indent=2))
        return
    if not docs:
        write_out(f"no documents for {learner_id}")
    for d in docs:
        line = f"{d['document_id']}  {d['kind']:<11} {d['issued_at']}  items {d['items']:>3}  "
        line += d["status"]
        for c in d["revoked"]:
            line += f"\n    {c['what']} {c['at']}: {c['reason']}"
        write_out(line)
