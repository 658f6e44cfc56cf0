"""What every ``creditbank`` command module shares: the exit codes of a verdict, the
per-invocation state, opening the bank of the home, writing output and one-line messages, and
shared options.

The command modules (``*_cmds.py``) import this module and never :mod:`creditbank.cli.main`,
which assembles their commands into one parser and runs it.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any, Final

import typer
from pydantic import ValidationError

from creditbank.config import Settings
from creditbank.errors import ConfigurationError
from creditbank.service.bank import Bank, open_bank
from creditbank.service.keys import LOG_KEY

#: the exit codes of a command's own verdict (post, verify); an error's exit code is its
#: entry's in :mod:`creditbank.error_catalogue`
EX_OK: Final = 0
EX_FAILURE: Final = 1

#: ``--url``: the bank's base URL, for the commands that talk to a bank over HTTP
BankUrlOpt = Annotated[
    str, typer.Option("--url", envvar="CREDITBANK_URL", help="the bank, e.g. https://…")
]


@dataclass
class State:
    """Per-invocation state shared by the global callback and the commands."""

    overrides: dict[str, Any] = field(default_factory=dict)
    verbose: bool = False

    def settings(self) -> Settings:
        """Settings from the environment, overridden by the global flags.

        Raises:
            ConfigurationError: if a setting is invalid.
        """
        try:
            return Settings(**self.overrides)
        except ValidationError as e:
            first = e.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "settings"
            raise ConfigurationError(f"invalid setting {where}: {first['msg']}") from e


def state_of(ctx: typer.Context) -> State:
    """The invocation's :class:`State` (``main`` passes one; a bare click call may not)."""
    obj = ctx.find_object(State)
    if obj is None:
        obj = ctx.ensure_object(State)
    return obj


def require_home(settings: Settings) -> None:
    """Refuse, in one line that says what to do, to run where there is no initialised home.

    Raises:
        ConfigurationError: ``config.invalid`` if the home or its log key is missing.
    """
    if (settings.keys_dir / LOG_KEY).exists():
        return
    home = settings.home.resolve()
    what = (
        f"{home} is not an initialised creditbank home ({LOG_KEY} is missing)"
        if home.exists()
        else f"there is no creditbank home at {home}"
    )
    raise ConfigurationError(
        f"{what}: run `creditbank init` to create one, or set CREDITBANK_HOME (or --home) "
        "to the bank's home"
    )


@contextmanager
def opened_bank(ctx: typer.Context) -> Iterator[Bank]:
    """The bank of the invocation's home, open for the ``with`` block, closed after it.

    Raises:
        ConfigurationError: if the settings are invalid or the home is not initialised.
    """
    settings = state_of(ctx).settings()
    require_home(settings)
    bank = open_bank(settings)
    try:
        yield bank
    finally:
        bank.close()


def write_out(text: str) -> None:
    """Write one line (or a block ending in its own newline) to stdout, flushed."""
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    sys.stdout.flush()


def write_err(text: str) -> None:
    """Write one line to stderr, flushed (progress, notes, the error line)."""
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def mask_url(url: str) -> str:
    """Hide a password in a database URL."""
    return re.sub(r"(//[^:/@]+:)[^@]*@", r"\1***@", url)


__all__ = [
    "EX_FAILURE",
    "EX_OK",
    "BankUrlOpt",
    "State",
    "mask_url",
    "opened_bank",
    "require_home",
    "state_of",
    "write_err",
    "write_out",
]
