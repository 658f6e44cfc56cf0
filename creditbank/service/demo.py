"""The demo: a fresh home seeded from the bundled synthetic sample dataset."""

from __future__ import annotations

import json
from collections.abc import Mapping
from importlib import resources
from typing import Any

from creditbank.core.signing import Ed25519Signer, b64encode, entry_key_id
from creditbank.service.bank import Bank
from creditbank.service.keys import generate_key_file, load_key_file

SAMPLE = "creditbank.data.sample"


def sample_json(name: str) -> Any:
    """Load one JSON file of the bundled sample dataset."""
    return json.loads(resources.files(SAMPLE).joinpath(name).read_text("utf-8"))


def institution_key(bank: Bank, institution_id: str) -> Any:
    """The institution's signing key kept in the home (created on first use, mode 0600)."""
    path = bank.settings.keys_dir / "institutions" / f"{institution_id}.key"
    if path.exists():
        return load_key_file(path)[1]
    return generate_key_file(path, institution_id)


def registration_entry(bank: Bank, inst: Mapping[str, Any], signer: Ed25519Signer) -> bytes:
    """The bank-signed ``institution.registered`` entry of a dataset institution row."""
    return bank.bank_entry(
        "institution.registered",
        {
            "institution_id": inst["id"],
            "kind": inst["kind"],
            "name_zh": inst["name_zh"],
            "name_en": inst["name_en"],
            "keys": [
                {
                    "key_id": entry_key_id(signer.public_bytes),
                    "public_key": b64encode(signer.public_bytes),
                }
            ],
        },
    )


def closure_entry(bank: Bank, inst: Mapping[str, Any]) -> bytes:
    """The bank-signed ``institution.closed`` entry of a closed dataset institution row
    (custodian: its ``records_custodian``, else the bank)."""
    custodian = inst.get("records_custodian") or bank.settings.bank_id
    return bank.bank_entry(
        "institution.closed",
        {"institution_id": inst["id"], "closed_on": inst["closed_on"], "custodian": custodian},
    )


def seed_demo(bank: Bank) -> int:
    """Register the sample's institutions (each with its own key) and publish a checkpoint.

    Returns the number of entries appended. Safe to re-run: registered ones are skipped.
    (``creditbank demo`` imports the whole sample instead: see
    :func:`creditbank.service.importer.import_dataset`.)
    """
    registry = bank.ledger.registry()
    raws: list[bytes] = []
    closures: list[bytes] = []
    for inst in sample_json("institutions.json"):
        iid = inst["id"]
        if iid == bank.settings.bank_id or iid in registry.institutions:
            continue
        raws.append(registration_entry(bank, inst, institution_key(bank, iid)))
        if inst.get("closed_on"):
            closures.append(closure_entry(bank, inst))
    if raws or closures:
        bank.ledger.append(raws + closures, publish=True)
    return len(raws) + len(closures)
