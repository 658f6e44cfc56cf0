"""``test_crash.py``'s SIGKILL run on PostgreSQL (see that file):
a file of its own so that the SQLite and PostgreSQL runs, each long, can go to
different workers (``--dist loadfile``)."""

from __future__ import annotations

import pytest

from .test_crash import test_sigkill_loses_no_acknowledged_entry  # noqa: F401 - collected here on PostgreSQL

pytestmark = pytest.mark.pg


@pytest.fixture
def engine_kind() -> str:
    return "pg"
