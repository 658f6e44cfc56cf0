"""No personal data in the log after importing the sample; erasure keeps the log verifiable.

docs/trust-model.md: entries carry no name, identity number or unsalted hash of either; the name on
record is bound only by a salted commitment whose salt and plain name live in erasable
personal-data tables. Checked on SQLite and PostgreSQL.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sample_data import SAMPLE
from sqlalchemy import MetaData, select

from creditbank.cli.main import entry_file_name, main
from creditbank.config import Settings
from creditbank.core import merkle
from creditbank.core.checkpoint import verify_checkpoint
from creditbank.core.entries import format_time
from creditbank.core.identity import name_commitment
from creditbank.core.signing import parse_verifier_key
from creditbank.service.audit import run_audit
from creditbank.service.bank import Bank, init_home
from creditbank.service.clock import FixedClock
from creditbank.service.importer import ImportReport, import_dataset
from creditbank.service.records import erase_learner, learner_chains
from creditbank.storage.tables import (
    LEDGER_TABLES,
    entries_t,
    learners_t,
    record_names_t,
)

T_IMPORT = datetime(2026, 1, 15, 9, 0, 0, tzinfo=UTC)
LEARNERS: list[dict[str, Any]] = json.loads((SAMPLE / "learners.json").read_text("utf-8"))
OUTCOMES: list[dict[str, Any]] = json.loads((SAMPLE / "outcomes.json").read_text("utf-8"))
#: the learner erased below: a Uyghur name written three ways on its records
ERASED = "L12"


def personal_strings(learner: dict[str, Any]) -> set[str]:
    """Every form of a learner's personal data that must never reach the log."""
    names = {learner["name_zh"], learner["name_latin"]}
    names |= {o["name_on_record"] for o in OUTCOMES if o["learner_id"] == learner["id"]}
    forms: set[str] = set()
    for n in names:
        forms |= {n, n.upper(), n.lower()}
    doc = learner["id_document"]
    digest_hex = doc["hash"].removeprefix("sha256:")
    forms |= {
        doc["masked"],
        doc["hash"],
        digest_hex,
        digest_hex.upper(),
        base64.b64encode(bytes.fromhex(digest_hex)).decode(),
        base64.urlsafe_b64encode(bytes.fromhex(digest_hex)).decode().rstrip("="),
    }
    return forms


def encodings(text: str) -> set[bytes]:
    """The byte forms a string could take inside a JSON entry (raw UTF-8 or \\u escapes)."""
    return {text.encode("utf-8"), json.dumps(text)[1:-1].encode("ascii")}


def find_personal_data(blobs: dict[str, bytes]) -> list[str]:
    hits = []
    for learner in LEARNERS:
        for s in personal_strings(learner):
            for form in encodings(s):
                for where, blob in blobs.items():
                    if form in blob:
                        hits.append(f"{learner['id']}: {s!r} in {where}")
    return hits


@pytest.fixture
def imported(settings_factory: Callable[..., Settings]) -> Iterator[tuple[Bank, ImportReport]]:
    bank = init_home(settings_factory(), clock=FixedClock(T_IMPORT))
    try:
        yield bank, import_dataset(bank, SAMPLE)
    finally:
        bank.close()


def test_no_personal_data_in_any_exported_entry(
    imported: tuple[Bank, ImportReport], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bank, report = imported
    out = tmp_path / "export"
    argv = ["--home", str(bank.settings.home)]
    if bank.settings.database_url:
        argv += ["--database-url", bank.settings.database_url]
    assert main([*argv, "log", "export", str(out)]) == 0, capsys.readouterr().err
    size = bank.ledger.head().size
    assert report.checkpoint_size == size
    exported = {f"entry {i}": (out / entry_file_name(i)).read_bytes() for i in range(size)}
    assert len(exported) == 1 + report.entries_appended
    assert find_personal_data(exported) == []
    # the stored rows too (every entry the database holds, exported or not)
    with bank.engine.connect() as conn:
        rows = {f"row {r.idx}": bytes(r.data) for r in conn.execute(select(entries_t))}
    assert find_personal_data(rows) == []
    # the scan does find personal data where it is kept
    with bank.engine.connect() as conn:
        names = " ".join(
            str(r.name_on_record) for r in conn.execute(select(record_names_t))
        ).encode()
    assert any(h.startswith(f"{ERASED}:") for h in find_personal_data({"names": names}))


def dump_tables(bank: Bank) -> dict[str, bytes]:
    """Every non-ledger table, row by row, as bytes (text UTF-8 and JSON-escaped, raw bytes)."""
    meta = MetaData()
    meta.reflect(bank.engine)
    out: dict[str, bytes] = {}
    with bank.engine.connect() as conn:
        for name, table in meta.tables.items():
            if name in LEDGER_TABLES:
                continue
            for n, row in enumerate(conn.execute(select(table))):
                parts: list[bytes] = []
                for v in row:
                    if isinstance(v, bytes | bytearray | memoryview):
                        parts.append(bytes(v))
                    elif v is not None:
                        parts += sorted(encodings(str(v)))
                out[f"{name} row {n}"] = b"\x00".join(parts)
    return out


def test_erasure_keeps_audit_and_proofs_and_removes_names_and_salt(
    imported: tuple[Bank, ImportReport],
) -> None:
    bank, report = imported
    learner_id = report.learner_ids[ERASED]
    records = [r.entry_index for r in report.records.values() if r.learner_id == learner_id]
    revocations = [r.entry_index for r in report.revocations.values() if r.learner_id == learner_id]
    # their conversion decisions (the sample voids none of L12's grants)
    apps = json.loads((SAMPLE / "applications.json").read_text(encoding="utf-8"))
    decided = [report.applications[a["id"]] for a in apps if a["learner_id"] == ERASED]
    assert decided
    indexes = sorted(records + revocations + decided)
    theirs = [o for o in OUTCOMES if o["learner_id"] == ERASED]
    assert len(records) == len(theirs)
    assert len(revocations) == sum(1 for o in theirs if o["revoked_at"])
    with bank.engine.connect() as conn:
        person = conn.execute(select(learners_t).where(learners_t.c.learner_id == learner_id)).one()
        salt = bytes(person.salt)
        subjects = {
            int(r.idx)
            for r in conn.execute(select(entries_t.c.idx).where(entries_t.c.subject == learner_id))
        }
        chains_before = [c.as_dict() for c in learner_chains(conn, learner_id)]
    assert subjects == set(indexes)
    # before: the salt opens the institutions' signed commitments
    for i in records:
        body = json.loads(bytes(bank.ledger.entry(i).data))["body"]
        name = next(o["name_on_record"] for o in OUTCOMES if o["id"] == body["record_id"])
        assert body["name_commitment"] == name_commitment(salt, name)

    with bank.engine.begin() as conn:
        erase_learner(conn, learner_id, format_time(T_IMPORT))

    audit = run_audit(bank)
    assert audit.ok, audit.problems
    note = bank.ledger.latest_checkpoint().note
    cp = verify_checkpoint(note, parse_verifier_key(bank.verifier_key))
    assert cp.size == bank.ledger.head().size
    for i in indexes:
        leaf, path = bank.ledger.inclusion_proof(i, cp.size)
        assert leaf == merkle.leaf_hash(bytes(bank.ledger.entry(i).data))
        merkle.verify_inclusion(i, cp.size, leaf, path, cp.root)

    with bank.engine.connect() as conn:
        person = conn.execute(select(learners_t).where(learners_t.c.learner_id == learner_id)).one()
        assert (person.salt, person.name, person.name_latin, person.lookup_key) == (
            None,
            None,
            None,
            None,
        )
        assert person.erased_at is not None
        kept = list(
            conn.execute(select(record_names_t).where(record_names_t.c.learner_id == learner_id))
        )
        assert sorted(int(r.entry_idx) for r in kept) == sorted(records)
        assert all(r.name_on_record is None for r in kept)
        # the records themselves (not personal data) are still there
        assert [c.as_dict() for c in learner_chains(conn, learner_id)] == chains_before

    tables = dump_tables(bank)
    erased = next(le for le in LEARNERS if le["id"] == ERASED)
    leaks = [
        f"{s!r} in {where}"
        for s in personal_strings(erased)
        for form in encodings(s)
        for where, blob in tables.items()
        if form in blob
    ]
    assert leaks == []
    assert not any(salt in blob for blob in tables.values())
    # another learner's data is still held (the scan would have seen it)
    other = next(le for le in LEARNERS if le["id"] == "L13")
    assert any(other["name_zh"].encode() in blob for blob in tables.values())
