"""``test_integrity_concurrency.py``'s 60-second run on PostgreSQL (see that file):
a file of its own so that the SQLite and PostgreSQL runs, each long, can go to
different workers (``--dist loadfile``)."""

from __future__ import annotations

import pytest

from .test_integrity_concurrency import (  # noqa: F401 - collected here on PostgreSQL
    run,
    test_under_concurrent_writes_every_answer_agrees_with_the_log,
)

pytestmark = pytest.mark.pg


@pytest.fixture
def engine_kind() -> str:
    return "pg"
