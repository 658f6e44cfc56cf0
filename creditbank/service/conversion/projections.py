"""Conversion projections: complete ``rule_publications``, ``conversion_decisions`` and
``conversion_voids`` from the log.

The append writes each conversion entry's row in its own transaction (ADR 0007), through the
row builder shared with the audit (:func:`creditbank.service.projection_rows.conversion_row`).
:func:`sync` only completes a database written before that; every conversion read calls
:func:`ensure_synced` first.
"""

from __future__ import annotations

import json

from creditbank.service.bank import Bank
from creditbank.service.conversion.lock import conversion_lock
from creditbank.service.projection_rows import conversion_row
from creditbank.storage import conversion_repo as repo
from creditbank.storage.engine import IMMEDIATE


def sync(bank: Bank) -> int:
    """Project every conversion entry the projections lack (call under the conversion lock).

    The append projects each entry in its own transaction (ADR 0007), so this only completes
    a database written before that. It reads first and, only when behind, writes in a
    transaction that takes the write lock when it begins (``BEGIN IMMEDIATE`` on SQLite).
    """
    bank_id = bank.settings.bank_id
    with bank.engine.connect() as conn:
        if repo.last_conversion_entry(conn, bank_id) <= repo.projected_until(conn):
            return 0
    added = 0
    with bank.engine.connect().execution_options(**{IMMEDIATE: True}) as conn, conn.begin():
        after = repo.projected_until(conn)
        for row in repo.entries_after(conn, after):
            entry = json.loads(bytes(row.data))
            if entry["issuer"] != bank_id:
                continue  # only bank-authored conversion entries count
            table, values = conversion_row(int(row.idx), str(row.type), str(row.at), entry["body"])
            conn.execute(table.insert().values(**values))
            added += 1
    return added


def ensure_synced(bank: Bank) -> None:
    """Complete the projections if the log holds conversion entries they lack."""
    with bank.engine.connect() as conn:
        behind = repo.last_conversion_entry(conn, bank.settings.bank_id) > repo.projected_until(
            conn
        )
    if behind:
        with conversion_lock(bank):
            sync(bank)
