"""Status bits handed out by concurrent issuers: every bit once, no error, lists in order.

Several threads, each with its own connection, take bits at one start line from an empty
``status_lists`` table (nobody has created list 1 yet, so ``FOR UPDATE`` locks nothing) and
with lists of four bits (so new lists are created while others wait). This is what
``creditbank demo`` does with its issuing threads; on PostgreSQL the loser of the race to
create a list used to fail with a primary-key ``IntegrityError``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from sqlalchemy import select

from creditbank.config import Settings
from creditbank.service.bank import init_home
from creditbank.storage import documents_repo as repo
from creditbank.storage.engine import IMMEDIATE
from creditbank.storage.tables import status_lists_t

THREADS = 6
PER_THREAD = 5
NOW = "2026-12-03T00:00:00Z"


@pytest.mark.parametrize("size", [repo.STATUS_LIST_SIZE, 4])
def test_concurrent_issuers_get_distinct_bits(
    make_settings: Callable[..., Settings], size: int
) -> None:
    bank = init_home(make_settings())
    try:
        with bank.engine.connect() as conn:
            assert conn.execute(select(status_lists_t)).first() is None  # the race starts empty
        start = threading.Barrier(THREADS)
        got: list[tuple[int, int]] = []
        errors: list[BaseException] = []
        guard = threading.Lock()

        def issuer() -> None:
            try:
                start.wait(timeout=60)
                for _ in range(PER_THREAD):
                    with (
                        bank.engine.connect().execution_options(**{IMMEDIATE: True}) as conn,
                        conn.begin(),
                    ):
                        bit = repo.allocate_status_index(conn, NOW, size=size)
                    with guard:
                        got.append(bit)
            except BaseException as e:  # reported below, with its type
                with guard:
                    errors.append(e)

        threads = [threading.Thread(target=issuer) for _ in range(THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert not errors, [f"{type(e).__name__}: {e}" for e in errors]
        total = THREADS * PER_THREAD
        assert len(got) == total
        # every bit once, and together exactly the first `total` bits in list order
        expected = [(1 + n // size, n % size) for n in range(total)]
        assert sorted(got) == expected
        with bank.engine.connect() as conn:
            lists = conn.execute(
                select(status_lists_t.c.list_id, status_lists_t.c.next_index).order_by(
                    status_lists_t.c.list_id
                )
            ).all()
        assert [int(r.list_id) for r in lists] == sorted({lid for lid, _ in expected})
        assert sum(int(r.next_index) for r in lists) == total
    finally:
        bank.close()
