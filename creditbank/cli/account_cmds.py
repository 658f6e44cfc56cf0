"""``creditbank account …``: accounts for people (docs/portals.md).

Bank admins and institution operators get their accounts here, from the bank's operator, and
never sign themselves up. ``add-worker`` binds a worker account to a learner the bank already
knows (a service desk, a demo home); workers otherwise sign up and claim on the portal. The
password is read from stdin with ``--password-stdin`` (one line), else prompted for twice
without echo; it is never an argument (``ps`` would show it).

Its ``commands`` join the parser in :mod:`creditbank.cli.main`.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from creditbank.cli.common import opened_bank, write_err, write_out
from creditbank.errors import InvalidInputError
from creditbank.service.accounts import Account, Accounts
from creditbank.service.conversion import resolve_learner_ref

account_app = typer.Typer(
    help="Accounts for people: bank admins, institution operators, workers.",
    no_args_is_help=True,
)
commands = typer.Typer()
commands.add_typer(account_app, name="account")

LoginArg = Annotated[str, typer.Argument(help="email address or phone number (the login)")]
NameOpt = Annotated[str | None, typer.Option("--name", help="how pages address the person")]
StdinOpt = Annotated[
    bool, typer.Option("--password-stdin", help="read the password from one line of stdin")
]


def _password(from_stdin: bool) -> str:
    """The new account's password.

    Raises:
        InvalidInputError: ``account.password`` if stdin is empty.
    """
    if from_stdin:
        line = sys.stdin.readline().rstrip("\r\n")
        if not line:
            raise InvalidInputError("no password on stdin", code="account.password")
        return line
    value: str = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    return value


def _show(acc: Account) -> None:
    where = acc.institution_id or acc.learner_id or ""
    write_out(f"{acc.account_id}\t{acc.role}\t{acc.login}" + (f"\t{where}" if where else ""))


@account_app.command("add-admin")
def add_admin(
    ctx: typer.Context, login: LoginArg, name: NameOpt = None, password_stdin: StdinOpt = False
) -> None:
    """Create a bank admin account."""
    password = _password(password_stdin)
    with opened_bank(ctx) as bank:
        acc = Accounts(bank).add_admin(login, password, name)
    _show(acc)
    write_err(f"admin account for {acc.login} created")


@account_app.command("add-operator")
def add_operator(
    ctx: typer.Context,
    login: LoginArg,
    institution: Annotated[str, typer.Option("--institution", help="the institution id")],
    name: NameOpt = None,
    password_stdin: StdinOpt = False,
) -> None:
    """Create an operator account bound to one registered institution."""
    password = _password(password_stdin)
    with opened_bank(ctx) as bank:
        acc = Accounts(bank).add_operator(login, password, institution, name)
    _show(acc)
    write_err(f"operator account for {acc.login} at {institution} created")


@account_app.command("add-worker")
def add_worker(
    ctx: typer.Context,
    login: LoginArg,
    learner: Annotated[
        str, typer.Option("--learner", help="the learner: bank id (LRN-…) or an imported id")
    ],
    name: NameOpt = None,
    password_stdin: StdinOpt = False,
) -> None:
    """Create a worker account already holding a known learner's records."""
    password = _password(password_stdin)
    with opened_bank(ctx) as bank:
        learner_id = resolve_learner_ref(bank, learner)
        acc = Accounts(bank).add_worker_for(login, password, learner_id, name)
    _show(acc)
    write_err(f"worker account for {acc.login} holding {learner_id} created")


@account_app.command("list")
def list_accounts(
    ctx: typer.Context,
    role: Annotated[str, typer.Option(help="worker, operator or admin")] = "operator",
) -> None:
    """List the accounts of one role (tab separated)."""
    if role not in ("worker", "operator", "admin"):
        raise InvalidInputError("role is worker, operator or admin", code="account.role")
    with opened_bank(ctx) as bank:
        rows = Accounts(bank).of_role(role)  # type: ignore[arg-type]  # checked above
    for acc in rows:
        _show(acc)
