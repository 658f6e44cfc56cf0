"""Conversion commands: ``rules publish|show``, ``apply``, ``what-if``, ``report conversions``.

Operator commands over the local home (docs/conversion-service.md). A learner is given as the
bank's id (``LRN-…``) or as the id an imported dataset gave it (``L09``).
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from creditbank.cli.common import opened_bank, write_out
from creditbank.errors import InvalidInputError
from creditbank.service import conversion

rules_app = typer.Typer(help="Conversion rules published by the bank.", no_args_is_help=True)
report_app = typer.Typer(help="Reports.", no_args_is_help=True)
commands = typer.Typer()
commands.add_typer(rules_app, name="rules")
commands.add_typer(report_app, name="report")

LearnerArg = Annotated[
    str, typer.Argument(help="the bank's learner id (LRN-…) or an imported dataset's id")
]
ProgramArg = Annotated[str | None, typer.Argument(help="the degree programme (credit conversion)")]
ExamOpt = Annotated[
    str | None,
    typer.Option("--exam", help="request an exam exemption for this certificate type instead"),
]
OnOpt = Annotated[
    str | None, typer.Option("--on", help="decision date YYYY-MM-DD (default: today)")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="print the full view as JSON")]


def _dump(doc: Any) -> str:
    return json.dumps(doc, ensure_ascii=False, indent=2)


def _target(program: str | None, exam: str | None) -> tuple[str | None, str | None]:
    if (program is None) == (exam is None):
        raise InvalidInputError(
            "give a PROGRAM, or --exam CERTIFICATE_TYPE for an exam exemption",
            code="conversion.bad_application",
        )
    return program, exam


def _summary(view: dict[str, Any]) -> list[str]:
    """A decision in a few lines (English, then the Chinese explanation)."""
    target = view["program_id"] or view["certificate_type_id"]
    head = (
        f"application {view['application_id']} ({view['learner_id']}, {target}, "
        f"decided {view['applied_on']})"
        if view["recorded"]
        else f"what-if ({view['learner_id']}, {target}, on {view['applied_on']}): nothing recorded"
    )
    lines = [head, f"  {view['explanation_en']}", f"  {view['explanation_zh']}"]
    for g in view["grants"]:
        status = g["status"] if g["voided_at"] is None else f"voided {g['voided_at']}"
        lines.append(
            f"  grant {g['grant_no'] + 1}: {g['rule_key']} v{g['rule_version']}, "
            f"{g['credits']} credit(s) [{status}]"
        )
        lines.append(f"    {g['explanation_en']}")
        lines.append(f"    {g['explanation_zh']}")
    for n in view["rule_notes"]:
        if n["reason"] not in ("granted", "exam_exemption_granted"):
            lines.append(f"  {n['explanation_en']}")
    if view["recorded"]:
        lines.append(f"  ledger entry {view['entry_index']} (rules entry {view['rules_entry']})")
    return lines


@rules_app.command("publish")
def rules_publish(
    ctx: typer.Context,
    file: Annotated[
        Path,
        typer.Argument(
            exists=True,
            dir_okay=False,
            help="JSON: an array of rules, or {conversion_rules, programs?, certificate_types?}",
        ),
    ],
) -> None:
    """Validate and publish conversion rules as a signed rules.published entry."""
    try:
        doc = json.loads(file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InvalidInputError(
            f"{file} is not UTF-8 JSON: {e}", code="conversion.rules_file"
        ) from e
    with opened_bank(ctx) as bank:
        current = conversion.current_rules(bank)
        publication = conversion.parse_rules_document(
            doc, base=current.publication if current is not None else None
        )
        result = conversion.publish_rules(bank, publication)
    verb = "published" if result.created else "unchanged; already in force"
    write_out(
        f"rules {verb}: {result.rule_versions} version(s) of {result.rule_keys} rule(s) "
        f"at ledger index {result.entry_index}"
    )


@rules_app.command("show")
def rules_show(ctx: typer.Context) -> None:
    """Print the rule set in force (the body of the latest rules.published entry) as JSON."""
    with opened_bank(ctx) as bank:
        ruleset = conversion.current_rules(bank)
        if ruleset is None:
            raise InvalidInputError("no rules are published yet", code="conversion.no_rules")
        doc = {
            "entry_index": ruleset.entry_index,
            "published_at": ruleset.published_at,
            **ruleset.publication.body(),
        }
    write_out(_dump(doc))


@commands.command("apply")
def apply_(
    ctx: typer.Context,
    learner: LearnerArg,
    program: ProgramArg = None,
    exam: ExamOpt = None,
    on: OnOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Decide a learner's application now (or --on DATE) and record it in the ledger."""
    _decide(ctx, conversion.apply, learner, program, exam, on, as_json)


@commands.command("what-if")
def what_if(
    ctx: typer.Context,
    learner: LearnerArg,
    program: ProgramArg = None,
    exam: ExamOpt = None,
    on: OnOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Preview what an application would grant today (or --on DATE); records nothing."""
    _decide(ctx, conversion.what_if, learner, program, exam, on, as_json)


def _decide(
    ctx: typer.Context,
    decide: Any,
    learner: str,
    program: str | None,
    exam: str | None,
    on: str | None,
    as_json: bool,
) -> None:
    """Shared body of ``apply`` (records the decision) and ``what-if`` (records nothing)."""
    program_id, certificate_type_id = _target(program, exam)
    day = conversion.parse_date(on, "--on") if on is not None else None
    with opened_bank(ctx) as bank:
        learner_id = conversion.resolve_learner_ref(bank, learner)
        view = decide(
            bank,
            learner_id,
            program_id=program_id,
            certificate_type_id=certificate_type_id,
            on=day,
        )
    write_out(_dump(view) if as_json else "\n".join(_summary(view)))


class ReportFormat(StrEnum):
    json = "json"


@report_app.command("conversions")
def report_conversions(
    ctx: typer.Context,
    as_of: Annotated[str, typer.Option("--as-of", help="report date YYYY-MM-DD")],
    format_: Annotated[
        ReportFormat, typer.Option("--format", help="output format")
    ] = ReportFormat.json,
    dataset: Annotated[
        str | None,
        typer.Option(
            help="print this imported dataset's learners with its own ids "
            "(default: the only dataset imported, if exactly one)"
        ),
    ] = None,
    bank_ids: Annotated[
        bool, typer.Option("--bank-ids", help="every learner, with the bank's own ids")
    ] = False,
    explanations: Annotated[
        bool, typer.Option("--explanations", help="add the zh/en explanation of every grant")
    ] = False,
) -> None:
    """Print the conversion report as of a date (the structure of sample/expected.json),
    computed from the decisions and records stored in the bank."""
    day = conversion.parse_date(as_of, "--as-of")
    if bank_ids and dataset is not None:
        raise InvalidInputError("--dataset and --bank-ids exclude each other", code="usage")
    with opened_bank(ctx) as bank:
        report = conversion.conversion_report(
            bank, day, dataset="" if bank_ids else dataset, explanations=explanations
        )
    if format_ is ReportFormat.json:
        write_out(_dump(report))
