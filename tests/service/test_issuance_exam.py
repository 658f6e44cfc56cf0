"""Issue #8 §4: when the basis record of a granted exam exemption is revoked, the exemption is
voided like a credit grant (its own ``conversion.voided`` entry, reason and date), shown
voided on transcripts, and a document showing it gets its status bit set; the conversion
report is decided as of each exemption's day and does not change (reading 9)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from sample_data import SAMPLE
from sqlalchemy import select

from creditbank.config import Settings
from creditbank.core.entries import build_entry, parse_entry, sign_entry
from creditbank.core.records import validate_bank_body
from creditbank.core.signing import entry_key_id
from creditbank.service import conversion, issuance, status
from creditbank.service.bank import Bank, init_home
from creditbank.service.clock import FixedClock
from creditbank.service.importer import import_dataset
from creditbank.service.keys import load_key_file
from creditbank.storage.tables import entries_t

T_IMPORT = datetime(2026, 1, 15, 9, 0, 0, tzinfo=UTC)


@pytest.fixture
def bank(tmp_path: Path) -> Any:
    settings = Settings(home=tmp_path / "home", checkpoint_interval=3600,
                        sqlite_synchronous="NORMAL")  # fmt: skip
    b = init_home(settings, clock=FixedClock(T_IMPORT))
    import_dataset(b, SAMPLE)
    yield b
    b.close()


def _granted_exemption(bank: Bank) -> tuple[str, dict[str, Any]]:
    for n in range(1, 31):
        learner = conversion.resolve_learner_ref(bank, f"L{n:02d}")
        for app in conversion.list_applications(bank, learner):
            exam = app["exam"]
            if app["type"] == "exam_exemption" and exam["granted"] and exam["basis"]:
                return learner, app
    raise AssertionError("the sample has no granted exam exemption")


def _voids(bank: Bank) -> list[dict[str, Any]]:
    with bank.engine.connect() as conn:
        rows = conn.execute(
            select(entries_t.c.data).where(entries_t.c.type == "conversion.voided")
        ).all()
    return [parse_entry(bytes(r.data)).body for r in rows]


def test_revoking_the_basis_voids_the_exemption(bank: Bank) -> None:
    learner, app = _granted_exemption(bank)
    report_before = conversion.conversion_report(bank, as_of=date(2025, 12, 31))
    doc = issuance.issue_certificate(bank, learner, decision=app["entry_index"])
    assert status.document_status(bank, doc.doc_id).revoked is False
    basis = app["exam"]["basis"]
    owner, root = basis["owner"], basis["root_record_id"]
    _, signer = load_key_file(bank.settings.keys_dir / "institutions" / f"{owner}.key")
    raw = sign_entry(
        build_entry(
            "record.revoked",
            owner,
            entry_key_id(signer.public_bytes),
            T_IMPORT,
            {"record_id": root, "reason": "certificate withdrawn", "effective_on": "2026-01-10"},
        ),
        signer,
    )
    before = len(_voids(bank))
    (rev,) = bank.ledger.append([raw])
    # the status bit is set by the revocation itself, before any void is posted
    assert status.document_status(bank, doc.doc_id).revoked is True
    assert conversion.reconcile_voids(bank, [learner]) == 1
    assert conversion.reconcile_voids(bank, [learner]) == 0  # idempotent
    voids = _voids(bank)
    assert len(voids) == before + 1
    void = voids[-1]
    validate_bank_body("conversion.voided", void)
    assert void["exam_exemption"] is True
    assert (void["decision_entry"], void["grant_no"]) == (app["entry_index"], 0)
    assert void["revocation_entry"] == rev.index
    assert void["voided_at"] == "2026-01-10"
    assert "certificate withdrawn" in void["reason"]
    # a transcript issued now shows the exemption voided, with date and reason
    transcript = issuance.issue_transcript(bank, learner)
    shown = json.loads(transcript.credential)["credentialSubject"]["conversions"]
    (conv,) = [c for c in shown if c["entryIndex"] == app["entry_index"]]
    text = json.dumps(conv, ensure_ascii=False)
    assert "2026-01-10" in text
    assert "certificate withdrawn" in text
    # ... and that document does not cover the voided exemption: its bit stays clear
    assert status.document_status(bank, transcript.doc_id).revoked is False
    # the report (as of the sample's date) is unchanged
    assert conversion.conversion_report(bank, as_of=date(2025, 12, 31)) == report_before
