"""The CLI package's module structure, read from its source with ``ast``: command modules use
:mod:`creditbank.cli.common` and never :mod:`creditbank.cli.main`; no import cycle within the
package; every command module's commands reach the parser."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import typer

import creditbank.cli
from creditbank.cli import main as cli_main

PACKAGE = "creditbank.cli"
CLI_DIR = Path(creditbank.cli.__file__).parent
#: the modules allowed to import main: it assembles the parser, __main__ runs it
ENTRY_MODULES = frozenset({f"{PACKAGE}.main", f"{PACKAGE}.__main__"})


def _module_name(path: Path) -> str:
    return f"{PACKAGE}.{path.stem}" if path.stem != "__init__" else PACKAGE


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(CLI_DIR.glob("*.py"))}


def imported_modules(source: str, module: str) -> set[str]:
    """Every module ``module``'s source imports, anywhere in it (top level or in a function),
    resolved to absolute names; ``from X import name`` counts as ``X`` and as ``X.name``
    (``name`` may be a submodule)."""
    package = module if module == PACKAGE else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return found


def cli_import_graph() -> dict[str, set[str]]:
    """module -> the modules of the CLI package it imports."""
    modules = _modules()
    return {
        name: {
            m
            for m in imported_modules(path.read_text(encoding="utf-8"), name)
            if m in modules and m != name and m != PACKAGE
        }
        for name, path in modules.items()
    }


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` (its modules in order, the first repeated), or None."""
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> list[str] | None:
        if node in path:
            return [*path[path.index(node) :], node]
        if node in done:
            return None
        for nxt in sorted(graph.get(node, ())):
            cycle = visit(nxt, [*path, node])
            if cycle is not None:
                return cycle
        done.add(node)
        return None

    for start in sorted(graph):
        cycle = visit(start, [])
        if cycle is not None:
            return cycle
    return None


def test_the_scanner_sees_every_import_form() -> None:
    """The checks below rely on this reading of imports (each form a command module could use
    to reach main)."""
    source = """
import creditbank.cli.main
from creditbank.cli.main import app
from creditbank.cli import main
from . import main as m
from .main import State

def later():
    from creditbank.cli.common import write_out
"""
    got = imported_modules(source, f"{PACKAGE}.x_cmds")
    assert f"{PACKAGE}.main" in got
    assert f"{PACKAGE}.common" in got
    assert imported_modules("from . import main", f"{PACKAGE}.x_cmds") >= {f"{PACKAGE}.main"}
    assert imported_modules("from .main import app", f"{PACKAGE}.x") == {
        f"{PACKAGE}.main",
        f"{PACKAGE}.main.app",
    }


def test_the_cycle_finder_finds_cycles() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"a"}}) == ["a", "a"]


def test_no_module_but_the_entry_points_imports_main() -> None:
    graph = cli_import_graph()
    assert f"{PACKAGE}.common" in graph
    offenders = sorted(
        name
        for name, deps in graph.items()
        if f"{PACKAGE}.main" in deps and name not in ENTRY_MODULES
    )
    assert offenders == [], f"these modules import creditbank.cli.main: {offenders}"


def test_common_imports_no_other_cli_module() -> None:
    assert cli_import_graph()[f"{PACKAGE}.common"] == set()


def test_the_cli_package_has_no_import_cycle() -> None:
    cycle = find_cycle(cli_import_graph())
    assert cycle is None, " -> ".join(cycle or [])


def _command_modules() -> list[str]:
    return sorted(name for name in _modules() if name.endswith("_cmds"))


def test_every_command_module_joins_the_parser() -> None:
    """A new ``*_cmds.py`` must be listed in main's COMMAND_MODULES, or its commands are lost."""
    listed = sorted(m.__name__ for m in cli_main.COMMAND_MODULES)
    assert listed == _command_modules()


@pytest.mark.parametrize("module", _command_modules())
def test_each_command_module_registers_on_its_own_typer(module: str) -> None:
    (mod,) = [m for m in cli_main.COMMAND_MODULES if m.__name__ == module]
    commands = mod.commands
    assert isinstance(commands, typer.Typer)
    assert commands is not cli_main.app
    assert commands.registered_commands or commands.registered_groups
    root = {id(c) for c in cli_main.app.registered_commands} | {
        id(g) for g in cli_main.app.registered_groups
    }
    mine = [*commands.registered_commands, *commands.registered_groups]
    assert all(id(c) in root for c in mine)
