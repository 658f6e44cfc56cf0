"""``creditbank``: operator commands over the local home and database.

This module assembles the parser from the command modules and runs it: ``main(argv)`` parses
and runs one command and returns the exit code; it has the one ``except CreditBankError`` of
the CLI. What the commands share (the invocation's state, opening the bank, output, exit
codes) is :mod:`creditbank.cli.common`; a command module never imports this one.

Exit codes (docs/architecture.md):

* 0 success;
* 1 a domain refusal (not found, conflict, invalid data, bad proof, audit problems);
* 2 usage or configuration (bad arguments or options, settings, a missing home);
* 70 anything unexpected (a bug), reported in one line unless ``--verbose``;
* 130 interrupted.

Each error code's exit code is its entry in :mod:`creditbank.error_catalogue`
(``docs/errors.md``), the CLI's own answers (``usage``, ``aborted``, ...) included.

Errors are one line on stderr: ``error: <message> [<code>]``. ``--verbose`` re-raises, so
the traceback shows. Settings come from ``CREDITBANK_*``; the global flags override them.

The CLI never imports :mod:`creditbank.api` or :mod:`creditbank.web`: ``serve`` hands
uvicorn the import string of :mod:`creditbank.asgi`'s factory.
"""

from __future__ import annotations

import sys
from pathlib import Path
from types import ModuleType
from typing import Annotated, Final

import typer

# typer 0.29 vendors click; its usage errors live here (typer re-exports only BadParameter)
from typer._click.exceptions import NoArgsIsHelpError, UsageError

from creditbank import __version__
from creditbank.cli import (
    account_cmds,
    client_cmds,
    conversion_cmds,
    document_cmds,
    home_cmds,
    import_cmds,
    institution_cmds,
    integrity_cmds,
    log_cmds,
    monitor_cmds,
    verify_cmds,
)
from creditbank.cli.common import EX_FAILURE, EX_OK, State, state_of
from creditbank.cli.common import write_err as _err
from creditbank.cli.home_cmds import uvicorn_options
from creditbank.cli.log_cmds import entry_file_name
from creditbank.error_catalogue import spec
from creditbank.errors import CreditBankError
from creditbank.service.errors import UNAVAILABLE

app = typer.Typer(
    name="creditbank",
    help="Learning-credit bank: an append-only signed Merkle ledger of learning outcomes.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _global(
    ctx: typer.Context,
    home: Annotated[
        Path | None, typer.Option(help="home directory: keys, SQLite database [CREDITBANK_HOME]")
    ] = None,
    database_url: Annotated[
        str | None, typer.Option(help="PostgreSQL URL; default SQLite [CREDITBANK_DATABASE_URL]")
    ] = None,
    origin: Annotated[
        str | None, typer.Option(help="checkpoint origin / log key name [CREDITBANK_ORIGIN]")
    ] = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="show tracebacks of errors")
    ] = False,
) -> None:
    """Learning-credit bank: an append-only signed Merkle ledger of learning outcomes."""
    state = state_of(ctx)
    state.verbose = verbose
    for name, value in (("home", home), ("database_url", database_url), ("origin", origin)):
        if value is not None:
            state.overrides[name] = value


#: the command modules, in the order their commands and groups are listed by ``--help``
#: (each has a ``commands`` Typer holding its top-level commands and groups)
COMMAND_MODULES: Final[tuple[ModuleType, ...]] = (
    home_cmds,  # init, migrate, serve, demo
    log_cmds,  # audit; log, auditor
    account_cmds,  # account
    client_cmds,  # post; keys
    conversion_cmds,  # apply, what-if; rules, report
    document_cmds,  # transcript, certificate
    import_cmds,  # import
    integrity_cmds,  # rebuild-projections
    monitor_cmds,  # monitor
    verify_cmds,  # verify (and keys export-public)
    institution_cmds,  # institution, learner
)


def _include(root: typer.Typer, part: typer.Typer) -> None:
    """Add ``part``'s commands and groups to ``root`` at the top level, in their order."""
    root.registered_commands.extend(part.registered_commands)
    root.registered_groups.extend(part.registered_groups)


for _module in COMMAND_MODULES:
    _include(app, _module.commands)


# -- entry points ---------------------------------------------------------------------------
def _one_line(exc: BaseException) -> str:
    """An exception's message on one line (drivers put hints on further lines)."""
    return " ".join(str(exc).split()) or type(exc).__name__


def _fail(code: str, message: str) -> int:
    """Report an error the CLI answers itself (one line) and return its catalogue exit code."""
    entry = spec(code)
    _err(f"error: {message} [{entry.code}]")
    return entry.exit_code


def main(argv: list[str] | None = None) -> int:
    """Run one ``creditbank`` command and return its exit code."""
    args = sys.argv[1:] if argv is None else list(argv)
    state = State()
    command = typer.main.get_command(app)
    try:
        rv = command.main(args=args, prog_name="creditbank", standalone_mode=False, obj=state)
    except CreditBankError as e:
        if state.verbose:
            raise
        _err(f"error: {_one_line(e)} [{e.code}]")
        return e.exit_code
    except UNAVAILABLE as e:
        if state.verbose:
            raise
        return _fail("storage.unavailable", f"the database is unavailable: {_one_line(e)}")
    except NoArgsIsHelpError:  # the help text is already printed
        return spec("usage").exit_code
    except UsageError as e:
        hint = f" (see '{e.ctx.command_path} --help')" if e.ctx is not None else ""
        return _fail("usage", f"{e.format_message()}{hint}")
    except typer.TyperException as e:
        _err(f"error: {e.format_message()} [usage]")
        return e.exit_code
    except typer.Abort:
        return _fail("aborted", "aborted")
    except KeyboardInterrupt:
        return _fail("interrupted", "interrupted")
    except BrokenPipeError:
        return EX_FAILURE
    except Exception as e:
        if state.verbose:
            raise
        what = f"{type(e).__name__}: {_one_line(e)}"
        return _fail("internal", f"unexpected {what} (rerun with --verbose)")
    return rv if isinstance(rv, int) else EX_OK


def run() -> None:
    """Console entry point."""
    sys.exit(main())


# entry_file_name and uvicorn_options: re-exported for tests/storage and bench/bench_http.py
__all__ = ["__version__", "app", "entry_file_name", "main", "run", "uvicorn_options"]
