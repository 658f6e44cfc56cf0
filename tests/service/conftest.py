"""Ledger service tests run on the shared ledger-only ``bank`` fixture (tests/conftest.py)."""

from __future__ import annotations

import pytest

from creditbank.service.bank import Bank


@pytest.fixture
def svc_bank(bank: Bank) -> Bank:
    """A fresh home per test on SQLite and (with CREDITBANK_TEST_PG_URL) PostgreSQL."""
    return bank
