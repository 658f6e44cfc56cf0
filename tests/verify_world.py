"""A real bank for the verification tests: the sample dataset imported through the signed
path, transcripts issued (rendered and PAdES-signed) for a few learners, and helpers that
post what an institution or a holder would (a record's revocation, a transcript's).

Built once per test module (issuing renders PDFs: ~1 s each); each test that changes state
uses its own document, so tests do not depend on their order.
"""

from __future__ import annotations

import json
from collections.abc import Generator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sample_data import SAMPLE

from creditbank.config import Settings
from creditbank.core.entries import build_entry, sign_entry
from creditbank.core.signing import entry_key_id
from creditbank.service import issuance
from creditbank.service.bank import Bank, init_home
from creditbank.service.clock import FixedClock
from creditbank.service.demo import institution_key
from creditbank.service.importer import ImportReport, import_dataset
from creditbank.service.issuance import Issued

#: the instant the dataset is imported and the documents issued
T_WORLD = datetime(2026, 1, 15, 9, 0, 0, tzinfo=UTC)
#: the learners who get a transcript (dataset ids)
LEARNERS = ("L01", "L02", "L03", "L04", "L05", "L06")


@dataclass
class World:
    """The bank, its clock, the import report and one issued transcript per learner."""

    bank: Bank
    clock: FixedClock
    report: ImportReport
    issued: dict[str, Issued] = field(default_factory=dict)

    def learner(self, dataset_id: str) -> str:
        """The bank's learner id of a dataset learner (``L01``)."""
        return self.report.learner_ids[dataset_id]

    def credential(self, dataset_id: str) -> dict[str, Any]:
        """The parsed credential of the learner's transcript."""
        parsed: dict[str, Any] = json.loads(self.issued[dataset_id].credential)
        return parsed

    def revoke_record(self, dataset_id: str, reason: str = "issued in error") -> dict[str, Any]:
        """Have the owning institution post ``record.revoked`` for the first current record
        of the learner's transcript whose institution signs for itself; returns that record
        as shown in the credential."""
        records = self.credential(dataset_id)["credentialSubject"]["records"]
        rec = next(
            r
            for r in records
            if r["state"] == "current" and not r.get("custodianId") and r.get("institutionId")
        )
        inst = rec["institutionId"]
        signer = institution_key(self.bank, inst)
        body = {
            "record_id": rec["recordId"],
            "reason": reason,
            "effective_on": self.clock.now().date().isoformat(),
        }
        raw = sign_entry(
            build_entry(
                "record.revoked", inst, entry_key_id(signer.public_bytes), self.clock.now(), body
            ),
            signer,
        )
        self.bank.ledger.append([raw], publish=True)
        return dict(rec)

    def revoke_transcript(self, dataset_id: str, reason: str) -> Mapping[str, Any]:
        """The holder withdraws the learner's transcript."""
        return issuance.revoke_document(
            self.bank,
            self.issued[dataset_id].doc_id,
            reason=reason,
            by="learner",
            learner_id=self.learner(dataset_id),
        )


def build_world(
    home: Path, *, database_url: str | None = None, **settings: Any
) -> Generator[World, None, None]:
    """Yield a :class:`World` in ``home`` (closed afterwards); ``settings`` override any
    other setting (e.g. ``public_base_url``, which the QR codes encode)."""
    clock = FixedClock(T_WORLD)
    config = Settings(
        home=home,
        database_url=database_url,
        checkpoint_interval=3600.0,
        sqlite_synchronous="NORMAL",
        **settings,
    )
    bank = init_home(config, clock=clock)
    try:
        report = import_dataset(bank, SAMPLE)
        bank.ledger.publish()
        world = World(bank, clock, report)
        for lid in LEARNERS:
            world.issued[lid] = issuance.issue_transcript(bank, report.learner_ids[lid])
        bank.ledger.publish()
        yield world
    finally:
        bank.close()
