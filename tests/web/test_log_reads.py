"""The serving path's driver-level reads give the same answers as the ledger's SQLAlchemy ones,
on SQLite and PostgreSQL, including refusals."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from conftest import Institution

from creditbank.core import merkle
from creditbank.errors import CreditBankError
from creditbank.service import log_reads
from creditbank.service.bank import Bank
from creditbank.service.log_reads import LogReads


@pytest.mark.parametrize("cache_size", [65_536, 8])  # 8: the node cache empties often
def test_inclusion_proofs_and_head_match_the_ledger(
    bank: Bank,
    institution: Institution,
    register_institution: Callable[..., Institution],
    monkeypatch: pytest.MonkeyPatch,
    cache_size: int,
) -> None:
    monkeypatch.setattr(log_reads, "MAX_CACHED_NODES", cache_size)
    reads = LogReads.for_engine(bank.engine)
    try:
        published = [1, 2]
        for n in range(0, 37, 6):  # grow in steps, publishing each size
            bank.ledger.append(institution.records(6, start=n), publish=True)
            published.append(bank.ledger.head().size)
        assert reads.head() == bank.ledger.head()
        assert reads.latest_published_size() == bank.ledger.latest_checkpoint().size
        for size in [*published, *reversed(published)]:  # again, now from the cache
            for index in range(size):
                assert reads.inclusion_proof(index, size) == bank.ledger.inclusion_proof(
                    index, size
                )
            leaf, path = reads.inclusion_proof(size - 1, size)
            root = bank.ledger.latest_checkpoint().root if size == published[-1] else None
            if root is not None:
                merkle.verify_inclusion(size - 1, size, leaf, path, root)
        # the same refusals, with the same codes
        head = bank.ledger.head().size
        for index, size in [(0, 3), (0, head + 1), (head, head), (5, 4)]:
            with pytest.raises(CreditBankError) as mine:
                reads.inclusion_proof(index, size)
            with pytest.raises(CreditBankError) as theirs:
                bank.ledger.inclusion_proof(index, size)
            assert mine.value.code == theirs.value.code
        # a write after the reader's first use is seen at once (no stale head)
        bank.ledger.append(institution.records(1, start=100), publish=False)
        assert reads.head() == bank.ledger.head()
    finally:
        reads.close()
