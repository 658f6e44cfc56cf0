"""``creditbank institution …`` and ``creditbank learner …``: operator commands.

The institution's private key never reaches the bank: ``institution add`` and ``key-add``
take the PUBLIC key, given as a verifier key ``name+hex8+base64`` (the ``FILE.pub`` that
``creditbank keys generate`` writes), raw base64 of the 32-byte key, or a file holding either.
A private key file is refused (``key.private``): the bank never asks for one, so that no
operator gets used to receiving them. Tokens are printed once, on stdout; notes go to stderr.

Its ``commands`` join the parser in :mod:`creditbank.cli.main`.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated

import typer

from creditbank.cli.common import opened_bank, write_err, write_out
from creditbank.core.signing import (
    PUBLIC_KEY_SIZE,
    b64decode,
    entry_key_id,
    load_public_key,
    parse_verifier_key,
)
from creditbank.errors import CreditBankError, InvalidInputError, NotFoundError
from creditbank.service import institutions as svc
from creditbank.service.bank import Bank
from creditbank.service.conversion import resolve_learner_ref

institution_app = typer.Typer(
    help="The institution registry (bank-signed ledger entries) and institution tokens.",
    no_args_is_help=True,
)
learner_app = typer.Typer(help="Learner tokens and erasure of personal data.", no_args_is_help=True)
commands = typer.Typer()
commands.add_typer(institution_app, name="institution")
commands.add_typer(learner_app, name="learner")

#: longest key file read
_MAX_KEY_FILE = 4096


def read_public_key(value: str) -> bytes:
    """The raw Ed25519 public key given by ``value`` (see the module docstring).

    Raises:
        InvalidInputError: ``key.private`` for a private key; ``key.public`` if no public key
            can be read from it.
    """
    text = value.strip()
    path = Path(text)
    try:
        is_file = len(text) < 4096 and path.is_file()
    except OSError:
        is_file = False
    if is_file:
        try:
            with path.open("rb") as f:
                data = f.read(_MAX_KEY_FILE + 1)
        except OSError as e:
            raise InvalidInputError(
                f"cannot read key file {path}: {e.strerror}", code="key.public"
            ) from e
        if len(data) > _MAX_KEY_FILE:
            raise InvalidInputError(f"{path} is too large for a key file", code="key.public")
        try:
            lines = [ln.strip() for ln in data.decode("ascii").splitlines() if ln.strip()]
        except UnicodeDecodeError as e:
            raise InvalidInputError(f"{path} is not a key file", code="key.public") from e
        if len(lines) != 1:
            raise InvalidInputError(f"{path} must hold exactly one key", code="key.public")
        text = lines[0]
    if text.startswith("PRIVATE+KEY+"):
        raise InvalidInputError(
            "this is a PRIVATE key, which must stay with the institution; give the bank the"
            " public key instead (the .pub file that 'creditbank keys generate' wrote beside it)",
            code="key.private",
        )
    try:
        raw = b64decode(text, what="public key")
    except CreditBankError:
        try:
            return parse_verifier_key(text).public
        except CreditBankError as e:
            raise InvalidInputError(
                "not a key file, a verifier key (name+hex8+base64) or a base64 public key",
                code="key.public",
            ) from e
    if len(raw) != PUBLIC_KEY_SIZE:
        raise InvalidInputError(
            f"a public key is {PUBLIC_KEY_SIZE} bytes, got {len(raw)}", code="key.public"
        )
    try:
        load_public_key(raw)
    except CreditBankError as e:
        raise InvalidInputError(f"not an Ed25519 public key: {e.message}", code="key.public") from e
    return raw


def _parse_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError as e:
        raise InvalidInputError(f"{text!r} is not a date (YYYY-MM-DD)", code="input.date") from e


InstitutionArg = Annotated[str, typer.Argument(help="institution id, e.g. INS-OU")]
#: a learner as the bank's id or an imported dataset's id, as everywhere in the CLI
LearnerArg = Annotated[
    str, typer.Argument(help="the bank's learner id (LRN-…) or an imported dataset's id (L01)")
]
PublicKeyOpt = Annotated[
    list[str],
    typer.Option(
        "--public-key",
        help="the institution's PUBLIC key: a key file from 'creditbank keys generate' "
        "(only its public part is read), a verifier key, or raw base64; repeatable",
    ),
]


def _learner_id(bank: Bank, ref: str) -> str:
    """The bank's id of a learner given by it or by an imported dataset's id (``L01``); an
    unknown ``ref`` goes on unchanged, for the service to say what is wrong with it
    (``learner.id``, ``learner.unknown``).

    Raises:
        NotFoundError: ``learner.unknown`` if a dataset id names several learners.
    """
    try:
        return resolve_learner_ref(bank, ref)
    except NotFoundError as e:
        if "ambiguous" in e.message:
            raise
        return ref


@institution_app.command("add")
def institution_add(
    ctx: typer.Context,
    institution_id: InstitutionArg,
    kind: Annotated[str, typer.Option(help="college, open_university, craftsman_academy, …")],
    name_zh: Annotated[str, typer.Option("--name-zh", help="Chinese name")],
    name_en: Annotated[str, typer.Option("--name-en", help="English name")],
    public_key: PublicKeyOpt,
) -> None:
    """Register an institution with its public key(s) (a bank-signed ledger entry)."""
    keys = [read_public_key(k) for k in public_key]
    with opened_bank(ctx) as bank:
        out = svc.register_institution(
            bank, institution_id, kind=kind, name_zh=name_zh, name_en=name_en, public_keys=keys
        )
    write_out(f"registered {institution_id} at index {out.index}")
    for k in keys:
        write_out(f"  key {entry_key_id(k)}")


@institution_app.command("key-add")
def institution_key_add(
    ctx: typer.Context, institution_id: InstitutionArg, public_key: PublicKeyOpt
) -> None:
    """Add public key(s) to an institution; each signs from now on."""
    keys = [read_public_key(k) for k in public_key]
    with opened_bank(ctx) as bank:
        for k in keys:
            out = svc.add_key(bank, institution_id, k)
            write_out(f"added key {entry_key_id(k)} to {institution_id} at index {out.index}")


@institution_app.command("key-revoke")
def institution_key_revoke(
    ctx: typer.Context,
    institution_id: InstitutionArg,
    key_id: Annotated[str, typer.Argument(help="the key id, ed25519:<16 hex>")],
    effective_at: Annotated[
        str,
        typer.Option(
            "--effective-at",
            help="RFC 3339 date-time (e.g. 2025-03-01T08:00:00Z or …+08:00); entries signed "
            "at or after it are refused, earlier ones stay valid",
        ),
    ],
    reason: Annotated[str, typer.Option(help="why, in words (goes into the log)")],
) -> None:
    """Revoke an institution's key from a point in time."""
    when = svc.parse_instant(effective_at)
    with opened_bank(ctx) as bank:
        out = svc.revoke_key(bank, institution_id, key_id, effective_at=when, reason=reason)
    write_out(
        f"revoked key {key_id} of {institution_id} from {when.isoformat()} at index {out.index}"
    )


@institution_app.command("close")
def institution_close(
    ctx: typer.Context,
    institution_id: InstitutionArg,
    closed_on: Annotated[str, typer.Option("--closed-on", help="YYYY-MM-DD")],
    custodian: Annotated[
        str, typer.Option(help="the institution that posts corrections and revocations for it")
    ],
) -> None:
    """Close an institution, naming the custodian of its records."""
    day = _parse_date(closed_on)
    with opened_bank(ctx) as bank:
        out = svc.close_institution(bank, institution_id, closed_on=day, custodian=custodian)
    write_out(
        f"closed {institution_id} on {day.isoformat()}; custodian {custodian}; index {out.index}"
    )


@institution_app.command("token")
def institution_token(
    ctx: typer.Context,
    institution_id: InstitutionArg,
    label: Annotated[str | None, typer.Option(help="a note on whom it is for")] = None,
) -> None:
    """Create an API token for an institution; printed only once."""
    with opened_bank(ctx) as bank:
        token, row = svc.issue_institution_token(bank, institution_id, label=label)
    write_out(token)
    write_err(
        f"institution token {row.token_id} for {institution_id} created; shown only this once"
    )


@institution_app.command("token-revoke")
def institution_token_revoke(
    ctx: typer.Context,
    token_id: Annotated[str, typer.Argument(help="the token id printed when it was created")],
) -> None:
    """Revoke an API token by its id (any role); repeating it is harmless."""
    with opened_bank(ctx) as bank:
        row = svc.revoke_token(bank, token_id)
    whose = f" of {row.subject}" if row.subject else ""
    write_out(f"{row.role} token {row.token_id}{whose} revoked at {row.revoked_at}")


@learner_app.command("token")
def learner_token(
    ctx: typer.Context,
    learner: LearnerArg,
    label: Annotated[str | None, typer.Option(help="a note on whom it is for")] = None,
) -> None:
    """Create an API token for a learner (reads that learner's records); printed only once."""
    with opened_bank(ctx) as bank:
        learner_id = _learner_id(bank, learner)
        token, row = svc.issue_learner_token(bank, learner_id, label=label)
    write_out(token)
    write_err(f"learner token {row.token_id} for {learner_id} created; shown only this once")


@learner_app.command("erase")
def learner_erase(
    ctx: typer.Context,
    learner: LearnerArg,
) -> None:
    """Erase a learner's personal data (names, salt, identity key) and revoke the learner's
    tokens. The log and every proof stay valid; the log no longer links to the person."""
    with opened_bank(ctx) as bank:
        learner_id = _learner_id(bank, learner)
        revoked = svc.erase(bank, learner_id)
    write_out(f"erased the personal data of {learner_id}; {revoked} token(s) revoked")
