"""A certificate and a transcript for EACH of the 30 sample learners, issued through the real
path (sample imported with the importer, rendered and signed in a 2-process RenderPool), and
every credential verified:

* always, by the credential core's offline verifier (proof, every institution signature,
  inclusion proof, checkpoint signature, name commitment, shown facts), with only the bank's
  DID document, the log key and the institution key registry;
* with ../shared/tools/vc-verify (JSON-LD check on, our DID document and context), in one
  batch, whenever ../shared and node are present;
* and each PDF carries its credential byte for byte under a signature covering the file.

PDFs are rendered once, in the module fixture.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from interop.conftest import VcVerifyBatch, vc_verify_batch, vc_verify_tool  # noqa: F401
from sample_data import SAMPLE

from creditbank.config import Settings
from creditbank.core.credentials.context import context_bytes, context_url
from creditbank.core.credentials.verify import RegistryKeys, check_credential, failed_checks
from creditbank.core.signing import parse_verifier_key
from creditbank.render.pdfsign import extract_credential, verify_pdf_signature
from creditbank.service import conversion, institutions, issuance
from creditbank.service.bank import Bank, init_home
from creditbank.service.clock import FixedClock
from creditbank.service.importer import import_dataset
from creditbank.service.keys import document_trust_roots

T_IMPORT = datetime(2026, 1, 15, 9, 0, 0, tzinfo=UTC)
LEARNERS = [f"L{n:02d}" for n in range(1, 31)]


@dataclass
class Issued:
    bank: Bank
    settings: Settings
    docs: dict[str, list[issuance.Issued]]


def _certificate_subject(bank: Bank, learner: str) -> dict[str, int]:
    """A record still in force, else a decision granting something."""
    for ch in institutions.learner_records(bank, learner):
        if not ch.revoked and ch.duplicate_of is None:
            return {"record": ch.current_index}
    for app in conversion.list_applications(bank, learner):
        if any(g["status"] == "active" for g in app["grants"]):
            return {"decision": app["entry_index"]}
    raise AssertionError(f"{learner} has nothing to certify")


#: the module issues and renders 60 documents of the sample once (half a minute)
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def issued(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Issued]:
    home = tmp_path_factory.mktemp("e2e-docs") / "home"
    settings = Settings(home=home, checkpoint_interval=3600, sqlite_synchronous="NORMAL")
    bank = init_home(settings, clock=FixedClock(T_IMPORT))
    try:
        import_dataset(bank, SAMPLE)
        ids = {ref: conversion.resolve_learner_ref(bank, ref) for ref in LEARNERS}
        pool = issuance.open_render_pool(bank, 2)
        try:
            render = issuance.pool_renderer(pool)

            def both(ref: str) -> list[issuance.Issued]:
                lid = ids[ref]
                cert = issuance.issue_certificate(
                    bank, lid, render=render, **_certificate_subject(bank, lid)
                )
                return [cert, issuance.issue_transcript(bank, lid, render=render)]

            with ThreadPoolExecutor(2) as threads:  # keeps both render processes busy
                docs = dict(zip(LEARNERS, threads.map(both, LEARNERS), strict=True))
        finally:
            pool.close()
        yield Issued(bank, settings, docs)
    finally:
        bank.close()


def test_sixty_documents_were_issued_with_distinct_bits(issued: Issued) -> None:
    all_docs = [d for pair in issued.docs.values() for d in pair]
    assert len(all_docs) == 60
    assert len({(d.status_list, d.status_index) for d in all_docs}) == 60
    assert len({d.code for d in all_docs}) == 60
    assert [d.kind for d in issued.docs["L01"]] == ["certificate", "transcript"]


def test_every_credential_verifies_offline(issued: Issued) -> None:
    bank = issued.bank
    did_doc = issuance.issuer_did_document(bank)
    keys = RegistryKeys(bank.ledger.registry())
    log_key = parse_verifier_key(bank.verifier_key)
    for ref, pair in issued.docs.items():
        for got in pair:
            doc = json.loads(got.credential)
            checks = check_credential(doc, did_document=did_doc, keys=keys, log_key=log_key)
            assert not failed_checks(checks), (ref, got.kind, failed_checks(checks))
            names = {c.name for c in checks}
            assert "credential.proof" in names
            if got.kind == "transcript":
                records = doc["credentialSubject"]["records"]
                assert all(f"record[{r['entryIndex']}].name_commitment" in names for r in records)


def test_every_pdf_carries_its_credential_under_the_bank_signature(issued: Issued) -> None:
    roots = document_trust_roots(issued.settings)
    for pair in issued.docs.values():
        for got in pair:
            assert extract_credential(got.pdf) == got.credential
            verify_pdf_signature(got.pdf, roots)


def test_every_credential_verifies_with_vc_verify(
    issued: Issued,
    vc_verify_batch: VcVerifyBatch,  # noqa: F811 - the imported fixture
    tmp_path: Path,
) -> None:
    base = issued.settings.public_base_url
    context_file = tmp_path / "creditbank-v1.jsonld"
    context_file.write_bytes(context_bytes())
    creds = [got.credential for pair in issued.docs.values() for got in pair]
    verdicts = vc_verify_batch(
        creds,
        issuance.issuer_did_document(issued.bank),
        context_file,
        context_url=context_url(base),
        now="2026-01-16T00:00:00Z",
    )
    bad = [(n, v["errors"]) for n, v in enumerate(verdicts) if v["verified"] is not True]
    assert not bad, bad[:3]
    assert all(v["checks"]["jsonld"] == {"ok": True} for v in verdicts)
