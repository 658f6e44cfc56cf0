"""``test_concurrency.py``'s eight-process run on PostgreSQL (see that file):
a file of its own so that the SQLite and PostgreSQL runs, each long, can go to
different workers (``--dist loadfile``)."""

from __future__ import annotations

import pytest

from .test_concurrency import test_eight_processes_append_one_contiguous_sequence  # noqa: F401 - collected here on PostgreSQL

pytestmark = pytest.mark.pg


@pytest.fixture
def engine_kind() -> str:
    return "pg"
