"""``creditbank``: operator commands over the local home and database.

``main(argv)`` parses and runs one command and returns the exit code; it has the one
``except CreditBankError`` of the CLI. Exit codes (docs/architecture.md, Errors):

* 0 success;
* 1 a domain or verification failure (not found, conflict, bad proof, audit problems);
* 2 usage or configuration (bad arguments, ``ConfigurationError``, ``InvalidInputError``);
* 70 anything unexpected (a bug), reported in one line unless ``--verbose``.

Errors are one line on stderr: ``error: <message> [<code>]``. ``--verbose`` re-raises, so
the traceback shows. Settings come from ``CREDITBANK_*``; the global flags override them.

The CLI never imports :mod:`creditbank.api` or :mod:`creditbank.web`: ``serve`` hands
uvicorn the import string of :mod:`creditbank.asgi`'s factory.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Final

import typer
from pydantic import ValidationError

# typer 0.29 vendors click; its usage errors live here (typer re-exports only BadParameter)
from typer._click.exceptions import NoArgsIsHelpError, UsageError

from creditbank import __version__
from creditbank.config import Settings
from creditbank.core import merkle
from creditbank.core.checkpoint import verify_checkpoint
from creditbank.core.entries import format_time
from creditbank.core.signing import b64encode, entry_key_id, parse_verifier_key
from creditbank.errors import (
    ConfigurationError,
    CreditBankError,
    InvalidInputError,
    RootMismatchError,
    VerificationError,
)
from creditbank.service.bank import Bank, init_home, migrate_home, open_bank
from creditbank.service.errors import UNAVAILABLE
from creditbank.service.keys import LOG_KEY
from creditbank.storage.token_repo import issue_token

#: the uvicorn factory: the API with the pages (an import string, so that the CLI imports
#: neither the API nor the web layer)
APP_FACTORY: Final = "creditbank.asgi:create_app_from_env"
#: how long `serve --workers N` waits for a worker's health answer before replacing it
WORKER_HEALTHCHECK_SECONDS: Final = 60
EX_OK: Final = 0
EX_FAILURE: Final = 1
EX_USAGE: Final = 2
EX_SOFTWARE: Final = 70
MAX_INDEX: Final = merkle.MAX_TREE_SIZE
#: leaf hashes read per request while exporting (the ledger's bound)
EXPORT_CHUNK: Final = 10_000


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


app = typer.Typer(
    name="creditbank",
    help="Learning-credit bank: an append-only signed Merkle ledger of learning outcomes.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
log_app = typer.Typer(
    help="The transparency log (operator view of the local database).", no_args_is_help=True
)
auditor_app = typer.Typer(help="Auditor access.", no_args_is_help=True)
app.add_typer(log_app, name="log")
app.add_typer(auditor_app, name="auditor")


def _state(ctx: typer.Context) -> State:
    obj = ctx.find_object(State)
    if obj is None:  # main() always passes one; a bare click invocation may not
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
def _open(ctx: typer.Context) -> Iterator[Bank]:
    settings = _state(ctx).settings()
    require_home(settings)
    bank = open_bank(settings)
    try:
        yield bank
    finally:
        bank.close()


def _out(text: str) -> None:
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    sys.stdout.flush()


def _err(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def _mask_url(url: str) -> str:
    """Hide a password in a database URL."""
    return re.sub(r"(//[^:/@]+:)[^@]*@", r"\1***@", url)


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
    state = _state(ctx)
    state.verbose = verbose
    for name, value in (("home", home), ("database_url", database_url), ("origin", origin)):
        if value is not None:
            state.overrides[name] = value


# -- init / serve / demo ------------------------------------------------------------------
@app.command()
def init(ctx: typer.Context) -> None:
    """Create the home: keys (mode 0600, never overwritten), database, genesis entry."""
    settings = _state(ctx).settings()
    bank = init_home(settings)
    try:
        _out(f"home: {settings.home.resolve()}")
        _out(f"database: {_mask_url(settings.db_url)}")
        _out(f"log key: {bank.verifier_key}")
        _out(f"issuer key: {entry_key_id(bank.issuer.public_bytes)}")
    finally:
        bank.close()


@app.command()
def migrate(ctx: typer.Context) -> None:
    """Bring an initialised database's schema up to this version (back it up first)."""
    settings = _state(ctx).settings()
    require_home(settings)
    before, after = migrate_home(settings)
    if before == after:
        _out(f"schema up to date ({after})")
    else:
        _out(f"schema migrated: {before} -> {after}")


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


@app.command()
def serve(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option(help="bind address [CREDITBANK_HOST]")] = None,
    port: Annotated[
        int | None, typer.Option(min=1, max=65535, help="TCP port [CREDITBANK_PORT]")
    ] = None,
    workers: Annotated[
        int,
        typer.Option(
            min=1, max=64, help="API worker processes (more than 1 needs PostgreSQL)"
        ),
    ] = 1,
) -> None:
    """Serve the HTTP API and pages (OpenAPI at /docs); 127.0.0.1:8000 by default."""
    settings = _state(ctx).settings()
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


@app.command()
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

    from creditbank.cli.import_cmds import progress_printer
    from creditbank.service.demo import prepare_demo

    state = _state(ctx)
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
    _out(f"demo home: {settings.home.resolve()} ({made.entries_appended} entries added)")
    for line in made.banner():
        _out(line)
    if not no_serve:
        os.environ["CREDITBANK_PUBLIC_BASE_URL"] = settings.public_base_url
        _serve(settings, host, settings.port)


# -- log ------------------------------------------------------------------------------------
IndexArg = Annotated[int, typer.Argument(min=0, max=MAX_INDEX, help="leaf index (0-based)")]


@log_app.command("checkpoint")
def log_checkpoint(ctx: typer.Context) -> None:
    """Print the latest signed checkpoint (a C2SP signed note)."""
    with _open(ctx) as bank:
        sys.stdout.write(bank.ledger.latest_checkpoint().note)


@log_app.command("key")
def log_key(ctx: typer.Context) -> None:
    """Print the log's verifier key (name+hex8+base64)."""
    with _open(ctx) as bank:
        _out(bank.verifier_key)


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
    with _open(ctx) as bank:
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
    _out(json.dumps(doc, indent=2))


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
    with _open(ctx) as bank:
        latest = _latest_verified(bank)
        n = latest[0] if second is None else second
        path = bank.ledger.consistency_proof(first, n)
        merkle.verify_consistency(
            first, n, _root_of(bank, first, latest), _root_of(bank, n, latest), path
        )
    _out(json.dumps({"first": first, "second": n, "path": [b64encode(h) for h in path]}, indent=2))


@log_app.command("entry")
def log_entry(ctx: typer.Context, index: IndexArg) -> None:
    """Write entry INDEX's exact stored bytes to stdout."""
    with _open(ctx) as bank:
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
    with _open(ctx) as bank:
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
    _out(f"exported {cp.size} entries (checkpoint size {cp.size}) to {directory}")


@log_app.command("publish")
def log_publish(ctx: typer.Context) -> None:
    """Sign a checkpoint for the current head now and print it."""
    with _open(ctx) as bank:
        cp = bank.ledger.publish(force=True)
        if cp is None:  # nothing was ever published: an empty log
            raise InvalidInputError("the log is empty; nothing to publish", code="log.empty")
        sys.stdout.write(cp.note)


# -- audit ----------------------------------------------------------------------------------
def _progress_printer(min_total: int = 10_000) -> Callable[[int, int], None]:
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
            _err(f"audit: {done}/{total} entries ({done * 100 // total}%)")

    return progress


@app.command()
def audit(
    ctx: typer.Context,
    max_problems: Annotated[
        int, typer.Option(min=1, help="problems listed at most (all are counted)")
    ] = 50,
) -> None:
    """Replay the whole log and check every hash, signature and checkpoint.

    Exit 1 and name the first bad index on any problem."""
    from creditbank.service.audit import run_audit

    with _open(ctx) as bank:
        report = run_audit(bank, progress=_progress_printer())
    verdict = "OK" if report.ok else f"{len(report.problems)} problem(s)"
    _out(
        f"audited {report.size} entries and {report.checkpoints} checkpoints: {verdict} "
        f"({report.entries_per_second:,.0f} entries/s)"
    )
    if report.ok:
        return
    first = report.first_bad_index
    if first is not None:
        _out(f"first bad index: {first}")
    for p in report.problems[:max_problems]:
        _out(f"  [{'-' if p.index is None else p.index}] {p.code}: {p.detail}")
    if len(report.problems) > max_problems:
        _out(f"  ... and {len(report.problems) - max_problems} more")
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
    with _open(ctx) as bank:
        token, row = issue_token(
            bank.engine, role="auditor", now=format_time(bank.clock.now()), label=label
        )
    _out(token)
    _err(f"auditor token {row.token_id} created; it is shown only this once")


# -- entry points ---------------------------------------------------------------------------
# Command groups kept in their own modules register themselves on ``app`` when imported.
# Each line imports one module (add yours on its own line; keep them sorted).
# --- command modules ---
# isort: off
import creditbank.cli.account_cmds  # noqa: E402 - registers account
import creditbank.cli.client_cmds  # noqa: E402 - registers keys, post
import creditbank.cli.conversion_cmds  # noqa: E402 - registers rules, apply, what-if, report
import creditbank.cli.document_cmds  # noqa: E402 - registers transcript, certificate
import creditbank.cli.import_cmds  # noqa: E402 - registers import
import creditbank.cli.integrity_cmds  # noqa: E402 - registers rebuild-projections
import creditbank.cli.monitor_cmds  # noqa: E402 - registers monitor
import creditbank.cli.verify_cmds  # noqa: E402 - registers verify, keys export-public
import creditbank.cli.institution_cmds  # noqa: E402, F401 - registers institution, learner

# isort: on
# --- end command modules ---


def _one_line(exc: BaseException) -> str:
    """An exception's message on one line (drivers put hints on further lines)."""
    return " ".join(str(exc).split()) or type(exc).__name__


def _exit_code(exc: CreditBankError) -> int:
    return EX_USAGE if isinstance(exc, ConfigurationError | InvalidInputError) else EX_FAILURE


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
        return _exit_code(e)
    except UNAVAILABLE as e:
        if state.verbose:
            raise
        _err(f"error: the database is unavailable: {_one_line(e)} [storage.unavailable]")
        return EX_FAILURE
    except NoArgsIsHelpError:  # the help text is already printed
        return EX_USAGE
    except UsageError as e:
        hint = f" (see '{e.ctx.command_path} --help')" if e.ctx is not None else ""
        _err(f"error: {e.format_message()}{hint} [usage]")
        return EX_USAGE
    except typer.TyperException as e:
        _err(f"error: {e.format_message()} [usage]")
        return e.exit_code
    except typer.Abort:
        _err("error: aborted [aborted]")
        return EX_FAILURE
    except KeyboardInterrupt:
        _err("error: interrupted [interrupted]")
        return 130
    except BrokenPipeError:
        return EX_FAILURE
    except Exception as e:
        if state.verbose:
            raise
        what = f"{type(e).__name__}: {_one_line(e)}"
        _err(f"error: unexpected {what} (rerun with --verbose) [internal]")
        return EX_SOFTWARE
    return rv if isinstance(rv, int) else EX_OK


def run() -> None:
    """Console entry point."""
    sys.exit(main())


__all__ = ["__version__", "app", "main", "run"]
