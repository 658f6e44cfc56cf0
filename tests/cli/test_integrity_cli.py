"""Tampering with what access control and the reads trust (issue #12), on SQLite and
PostgreSQL: ``creditbank audit`` exits 1 naming the first bad row, and
``creditbank rebuild-projections`` restores a state equal to an untouched copy.

Each test imports the bundled sample (records, corrections, revocations, rules, decisions,
voids), takes a snapshot of every derived table, tampers as an attacker with write access to
the database would (the append-only triggers suspended first), and runs the two commands.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sample_data import SAMPLE
from sqlalchemy import Engine, select, text

from creditbank.cli.main import main
from creditbank.config import Settings
from creditbank.core.signing import Ed25519Signer
from creditbank.service.bank import init_home
from creditbank.service.clock import FixedClock
from creditbank.service.importer import import_dataset
from creditbank.service.institutions import register_institution
from creditbank.service.projection import triggers_suspended
from creditbank.storage.engine import make_engine
from creditbank.storage.tables import (
    checkpoints_t,
    conversion_decisions_t,
    conversion_voids_t,
    documents_t,
    entries_t,
    head_t,
    nodes_t,
    record_names_t,
    records_t,
    revocations_t,
    rule_publications_t,
)

T_IMPORT = datetime(2026, 1, 15, 9, 0, 0, tzinfo=UTC)

#: what must come back equal; times the bank's clock wrote (ingested_at, published_at,
#: updated_at) are not derivable from the log and are left out
SNAPSHOT = {
    "log_entries": [c for c in entries_t.c if c.name != "ingested_at"],
    "log_nodes": list(nodes_t.c),
    "log_checkpoints": [c for c in checkpoints_t.c if c.name != "published_at"],
    "log_head": [c for c in head_t.c if c.name != "updated_at"],
    "records": list(records_t.c),
    "record_revocations": list(revocations_t.c),
    "record_names": list(record_names_t.c),
    "rule_publications": list(rule_publications_t.c),
    "conversion_decisions": list(conversion_decisions_t.c),
    "conversion_voids": list(conversion_voids_t.c),
    "documents": list(documents_t.c),
}


def snapshot(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    out: dict[str, list[tuple[Any, ...]]] = {}
    with engine.connect() as conn:
        for name, cols in SNAPSHOT.items():
            rows = conn.execute(select(*cols).order_by(cols[0])).all()
            out[name] = [
                tuple(bytes(v) if isinstance(v, memoryview) else v for v in r) for r in rows
            ]
    return out


class Home:
    def __init__(self, settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
        self.settings = settings
        self.capsys = capsys
        self.engine = make_engine(settings.db_url, pool=False)

    def cli(self, *args: str) -> tuple[int, str]:
        flags = ["--home", str(self.settings.home)]
        if self.settings.database_url:
            flags += ["--database-url", self.settings.database_url]
        self.capsys.readouterr()
        code = main([*flags, *args])
        return code, self.capsys.readouterr().out

    def tamper(self, table: str, sql: str, **params: Any) -> None:
        with self.engine.begin() as conn, triggers_suspended(conn, [table]):
            conn.execute(text(sql), params)

    def one(self, sql: str, **params: Any) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(text(sql), params).first()


@pytest.fixture
def home(
    settings_factory: Callable[..., Settings], capsys: pytest.CaptureFixture[str]
) -> Iterator[Home]:
    settings = settings_factory()
    bank = init_home(settings, clock=FixedClock(T_IMPORT))
    try:
        import_dataset(bank, SAMPLE)
        bank.ledger.publish()
        for n in range(2):  # two more checkpoints (registry entries publish at once)
            signer = Ed25519Signer.from_seed(bytes([n + 1]) * 32)
            register_institution(
                bank,
                f"INS-EXTRA-{n}",
                kind="college",
                name_zh="测试学院",
                name_en="Extra",
                public_keys=[signer.public_bytes],
            )
    finally:
        bank.close()
    h = Home(settings, capsys)
    try:
        yield h
    finally:
        h.engine.dispose()


def audit_fails_at(home: Home, index: int, *needles: str) -> str:
    code, out = home.cli("audit")
    assert code == 1, out
    assert f"first bad index: {index}" in out, out
    for needle in needles:
        assert needle in out, out
    return out


def rebuild_restores(home: Home, before: dict[str, list[tuple[Any, ...]]]) -> None:
    code, out = home.cli("rebuild-projections")
    assert code == 0, out
    assert "rebuilt" in out, out
    assert snapshot(home.engine) == before
    code, out = home.cli("audit")
    assert code == 0, out
    code, out = home.cli("rebuild-projections")
    assert "nothing to rebuild" in out


def test_untouched_home_audits_clean_and_rebuild_changes_nothing(home: Home) -> None:
    before = snapshot(home.engine)
    code, out = home.cli("audit")
    assert code == 0, out
    code, out = home.cli("rebuild-projections")
    assert code == 0, out
    assert "nothing to rebuild" in out, out
    assert snapshot(home.engine) == before


def test_entry_type_made_public(home: Home) -> None:
    """A record entry re-typed ``rules.published`` would be served anonymously."""
    before = snapshot(home.engine)
    idx = home.one("SELECT MIN(idx) FROM log_entries WHERE type = 'record.posted'")[0]
    home.tamper(
        "log_entries", "UPDATE log_entries SET type = 'rules.published' WHERE idx = :i", i=idx
    )
    audit_fails_at(home, idx, f"log_entries row {idx}: type is 'rules.published'")
    rebuild_restores(home, before)


def test_entry_subject_moved_to_another_learner(home: Home) -> None:
    before = snapshot(home.engine)
    row = home.one(
        "SELECT idx, subject FROM log_entries WHERE type = 'record.corrected' ORDER BY idx LIMIT 1"
    )
    other = home.one("SELECT subject FROM log_entries WHERE subject <> :s LIMIT 1", s=row[1])[0]
    home.tamper(
        "log_entries", "UPDATE log_entries SET subject = :o WHERE idx = :i", o=other, i=row[0]
    )
    audit_fails_at(home, row[0], f"log_entries row {row[0]}: subject is {other!r}")
    rebuild_restores(home, before)


def test_revocation_rows_deleted(home: Home) -> None:
    """Deleting revocation rows would show revoked records as current."""
    before = snapshot(home.engine)
    first = home.one("SELECT MIN(entry_idx) FROM record_revocations")[0]
    home.tamper("record_revocations", "DELETE FROM record_revocations")
    audit_fails_at(home, first, f"record_revocations row {first} is missing")
    rebuild_restores(home, before)


def test_checkpoint_row_deleted_between_two_kept(home: Home) -> None:
    before = snapshot(home.engine)
    sizes = [
        r[0]
        for r in home.engine.connect().execute(
            text("SELECT size FROM log_checkpoints ORDER BY size")
        )
    ]
    assert len(sizes) >= 3
    gone = sizes[len(sizes) // 2]
    home.tamper("log_checkpoints", "DELETE FROM log_checkpoints WHERE size = :s", s=gone)
    audit_fails_at(home, gone - 1, "checkpoint.hole", f"size {gone}, which is not stored")
    rebuild_restores(home, before)


def test_latest_checkpoint_row_deleted(home: Home) -> None:
    before = snapshot(home.engine)
    latest = home.one("SELECT MAX(size) FROM log_checkpoints")[0]
    home.tamper("log_checkpoints", "DELETE FROM log_checkpoints WHERE size = :s", s=latest)
    audit_fails_at(home, latest - 1, "checkpoint.hole", f"size {latest} was published")
    rebuild_restores(home, before)


@pytest.mark.parametrize(
    ("table", "sql", "needle"),
    [
        (
            "records",
            "UPDATE records SET learner_id = 'LRN-00000000000000000000' WHERE entry_idx = :i",
            "learner_id is 'LRN-00000000000000000000'",
        ),
        ("records", "DELETE FROM records WHERE entry_idx = :i", "is missing"),
        (
            "conversion_decisions",
            "DELETE FROM conversion_decisions WHERE entry_idx = :i",
            "is missing",
        ),
        (
            "conversion_voids",
            "UPDATE conversion_voids SET voided_at = '2099-01-01' WHERE entry_idx = :i",
            "voided_at is '2099-01-01'",
        ),
        (
            "rule_publications",
            "UPDATE rule_publications SET rule_count = 0 WHERE entry_idx = :i",
            "rule_count is 0",
        ),
    ],
)
def test_projection_row_edited_or_deleted(home: Home, table: str, sql: str, needle: str) -> None:
    before = snapshot(home.engine)
    idx = home.one(f"SELECT MIN(entry_idx) FROM {table}")[0]  # noqa: S608 - a test constant
    home.tamper(table, sql, i=idx)
    audit_fails_at(home, idx, f"{table} row {idx}", needle)
    rebuild_restores(home, before)


def test_projection_row_invented(home: Home) -> None:
    """A row the log does not imply (a revocation that was never posted) is named and removed."""
    before = snapshot(home.engine)
    rec = home.one("SELECT entry_idx, owner, record_id FROM records ORDER BY entry_idx LIMIT 1")
    home.tamper(
        "record_revocations",
        "INSERT INTO record_revocations (entry_idx, owner, record_id, reason, effective_on, digest)"
        " VALUES (:i, :o, :r, 'forged', '2025-01-01', :d)",
        i=rec[0],
        o=rec[1],
        r=rec[2] + "-X",
        d=bytes(32),
    )
    audit_fails_at(home, rec[0], f"record_revocations row {rec[0]} is not implied by the log")
    rebuild_restores(home, before)


def test_document_revocation_erased_from_its_row(home: Home) -> None:
    """Clearing a document's revocation columns would verify a withdrawn transcript as
    current: the audit names the row, the rebuild restores the log's revocation."""
    from creditbank.service import issuance
    from creditbank.service.bank import open_bank

    bank = open_bank(home.settings, clock=FixedClock(T_IMPORT))
    try:
        learner = str(
            home.one(
                "SELECT learner_id FROM records GROUP BY learner_id ORDER BY COUNT(*) DESC LIMIT 1"
            )[0]
        )
        issued = issuance.issue_transcript(bank, learner)
        issuance.revoke_document(bank, issued.doc_id, reason="issued in error", by="bank")
        bank.ledger.publish()
    finally:
        bank.close()
    before = snapshot(home.engine)
    idx = home.one("SELECT entry_idx FROM documents WHERE revoked_at IS NOT NULL")[0]
    home.tamper(
        "documents",
        "UPDATE documents SET revoked_at = NULL, revoked_reason = NULL, revoked_by = NULL,"
        " revocation_idx = NULL WHERE entry_idx = :i",
        i=idx,
    )
    audit_fails_at(home, idx, f"documents row {idx}: revoked_at is None")
    rebuild_restores(home, before)
