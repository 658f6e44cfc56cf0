"""No module of the service or API layer is longer than one sitting's read (issue 11): 600
lines. A module that grows past it is split by use case (docs/architecture.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "creditbank"
LIMIT = 600
MODULES = sorted(
    p for layer in ("service", "api") for p in (PACKAGE / layer).rglob("*.py")
)  # fmt: skip


def test_the_layers_have_modules() -> None:
    assert len(MODULES) > 40  # the walk found the package


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_module_fits_in_one_sitting(path: Path) -> None:
    lines = len(path.read_text("utf-8").splitlines())
    assert lines <= LIMIT, f"{path.relative_to(PACKAGE)} has {lines} lines (at most {LIMIT})"
