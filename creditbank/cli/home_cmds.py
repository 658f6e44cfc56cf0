"""``creditbank init``, ``migrate``, ``serve`` and ``demo``: the home and its server.

The CLI never imports :mod:`creditbank.api` or :mod:`creditbank.web`: ``serve`` hands uvicorn
the import string of :mod:`creditbank.asgi`'s factory.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Final

import typer

from creditbank.cli.common import mask_url, require_home, state_of, write_out
from creditbank.cli.import_cmds import progress_printer
from creditbank.config import Settings
from creditbank.core.signing import entry_key_id
from creditbank.errors import ConfigurationError
from creditbank.service.bank import init_home, migrate_home, open_bank
from creditbank.service.keys import LOG_KEY

#: the uvicorn factory: the API with the pages (an import string, so that the CLI imports
#: neither the API nor the web layer)
APP_FACTORY: Final = "creditbank.asgi:create_app_from_env"
#: how long `serve --workers N` waits for a worker's health answer before replacing it
WORKER_HEALTHCHECK_SECONDS: Final = 60

commands = typer.Typer()


@commands.command()
def init(ctx: typer.Context) -> None:
    """Create the home: keys (mode 0600, never overwritten), database, genesis entry."""
    settings = state_of(ctx).settings()
    bank = init_home(settings)
    try:
        write_out(f"home: {settings.home.resolve()}")
        write_out(f"database: {mask_url(settings.db_url)}")
        write_out(f"log key: {bank.verifier_key}")
        write_out(f"issuer key: {entry_key_id(bank.issuer.public_bytes)}")
    finally:
        bank.close()


@commands.command()
def migrate(ctx: typer.Context) -> None:
    """Bring an initialised database's schema up to this version (back it up first)."""
    settings = state_of(ctx).settings()
    require_home(settings)
    before, after = migrate_home(settings)
    if before == after:
        write_out(f"schema up to date ({after})")
    else:
        write_out(f"schema migrated: {before} -> {after}")


def uvicorn_options() -> dict[str, Any]:
    """The uvicorn options of ``creditbank serve`` (``bench/bench_http.py`` serves its bare
    baseline app with the same): uvloop and httptools (pinned), no per-request access log
    (a reverse proxy in front logs requests; writing a log line per request costs the one
    event loop of each worker).
    """
    return {"loop": "uvloop", "http": "httptools", "access_log": False, "log_level": "info"}


def _serve(settings: Settings, host: str, port: int, workers: int = 1) -> None:
    """Run uvicorn with ``workers`` processes over the app factory.

    Raises:
        ConfigurationError: if the home is not ready, or ``workers`` > 1 on SQLite.
    """
    import uvicorn

    require_home(settings)
    bank = open_bank(settings, pool=False)  # fail here, in one line, if the home is not ready
    sqlite = bank.engine.dialect.name == "sqlite"
    bank.close()
    if workers > 1 and sqlite:
        raise ConfigurationError(
            "--workers > 1 needs PostgreSQL (set CREDITBANK_DATABASE_URL); the SQLite database"
            " serves from one process",
            code="config.workers_need_postgres",
        )
    # the factory reads Settings from the environment; pass on what the flags changed
    os.environ["CREDITBANK_HOME"] = str(settings.home.resolve())
    os.environ["CREDITBANK_ORIGIN"] = settings.origin
    if settings.database_url:
        os.environ["CREDITBANK_DATABASE_URL"] = settings.database_url
    # a spawned worker answers the supervisor's health pings only once it has imported the
    # app (seconds on a busy machine; uvicorn's default of 5 s kills it in a loop)
    uvicorn.run(
        APP_FACTORY,
        factory=True,
        host=host,
        port=port,
        workers=workers,
        timeout_worker_healthcheck=WORKER_HEALTHCHECK_SECONDS,
        **uvicorn_options(),
    )


@commands.command()
def serve(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option(help="bind address [CREDITBANK_HOST]")] = None,
    port: Annotated[
        int | None, typer.Option(min=1, max=65535, help="TCP port [CREDITBANK_PORT]")
    ] = None,
    workers: Annotated[
        int,
        typer.Option(min=1, max=64, help="API worker processes (more than 1 needs PostgreSQL)"),
    ] = 1,
) -> None:
    """Serve the HTTP API and pages (OpenAPI at /docs); 127.0.0.1:8000 by default."""
    settings = state_of(ctx).settings()
    _serve(settings, host or settings.host, port or settings.port, workers)


def _port_free(host: str, port: int) -> bool:
    """Whether ``host:port`` can be bound now (``demo`` checks before its setup)."""
    import socket

    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


@commands.command()
def demo(
    ctx: typer.Context,
    home: Annotated[
        Path | None, typer.Option(help="the demo home [CREDITBANK_HOME, else ./.creditbank]")
    ] = None,
    port: Annotated[
        int | None, typer.Option(min=1, max=65535, help="TCP port [CREDITBANK_PORT, 8000]")
    ] = None,
    no_serve: Annotated[bool, typer.Option("--no-serve", help="seed only; do not serve")] = False,
) -> None:
    """A demo home (sample data, issued documents, three logins), then serve it (docs/demo.md)."""
    import time

    from creditbank.service.demo import prepare_demo

    state = state_of(ctx)
    if home is not None:
        state.overrides["home"] = home
    if port is not None:
        state.overrides["port"] = port
    settings = state.settings()
    host = settings.host
    if "CREDITBANK_PUBLIC_BASE_URL" not in os.environ:  # documents point at this server
        shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # noqa: S104
        state.overrides["public_base_url"] = f"http://{shown}:{settings.port}"
        settings = state.settings()
    if not no_serve and not _port_free(host, settings.port):
        raise ConfigurationError(
            f"port {settings.port} on {host} is in use: stop what holds it or pass --port",
            code="config.port_in_use",
        )
    started = time.monotonic()
    if (settings.keys_dir / LOG_KEY).exists():
        bank = open_bank(settings, pool=False)
    else:
        bank = init_home(settings)
    opened = time.monotonic() - started
    try:
        made = prepare_demo(bank, progress=progress_printer())
    finally:
        bank.close()
    made.seconds = {"home": opened} | made.seconds
    made.seconds["total"] += opened
    write_out(f"demo home: {settings.home.resolve()} ({made.entries_appended} entries added)")
    for line in made.banner():
        write_out(line)
    if not no_serve:
        os.environ["CREDITBANK_PUBLIC_BASE_URL"] = settings.public_base_url
        _serve(settings, host, settings.port)
