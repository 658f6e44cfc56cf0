"""Issuing transcripts and certificates from the imported sample (SQLite and PostgreSQL).

One bank per engine and module (the sample import and the PDF renders are the slow part):
each document is rendered once and the tests read what was stored. Every refusal is checked
to write nothing: the log size and the document tables' row counts are unchanged.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import fresh_pg_database
from sample_data import SAMPLE
from sqlalchemy import func, select

from creditbank.config import Settings
from creditbank.core.credentials.did import key_from_did_document
from creditbank.core.credentials.proof import verify_credential_proof
from creditbank.core.credentials.verify import RegistryKeys, verify_credential
from creditbank.core.entries import build_entry, format_time, parse_entry, sign_entry
from creditbank.core.signing import entry_key_id, parse_verifier_key
from creditbank.core.status_list import status_of
from creditbank.errors import (
    ConfigurationError,
    ConflictError,
    CreditBankError,
    InvalidInputError,
    NotFoundError,
)
from creditbank.render.pdfsign import extract_credential, verify_pdf_signature
from creditbank.service import conversion, institutions, issuance, share_codes, status
from creditbank.service.bank import Bank, init_home, migrate_home, open_bank
from creditbank.service.clock import FixedClock
from creditbank.service.documents import sha256_text
from creditbank.service.importer import import_dataset
from creditbank.service.keys import (
    DOCUMENT_CA,
    DOCUMENT_CERT,
    DOCUMENT_KEY,
    document_trust_roots,
    ensure_document_identity,
    load_key_file,
)
from creditbank.storage import documents_repo
from creditbank.storage.tables import documents_t, entries_t, learners_t

T_IMPORT = datetime(2026, 1, 15, 9, 0, 0, tzinfo=UTC)


@dataclass
class World:
    bank: Bank
    settings: Settings
    clock: FixedClock
    transcript: issuance.Issued
    subset: issuance.Issued
    record_cert: issuance.Issued
    decision_cert: issuance.Issued
    learner: str


def _learner(bank: Bank, ref: str) -> str:
    return conversion.resolve_learner_ref(bank, ref)


@pytest.fixture(scope="module", params=["sqlite", pytest.param("pg", marks=pytest.mark.pg)])
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    home = tmp_path_factory.mktemp("issue") / "home"

    def build(url: str | None) -> Iterator[World]:
        settings = Settings(
            home=home, database_url=url, checkpoint_interval=3600, sqlite_synchronous="NORMAL"
        )
        clock = FixedClock(T_IMPORT)
        bank = init_home(settings, clock=clock)
        try:
            import_dataset(bank, SAMPLE)
            learner = _learner(bank, "L01")
            chains = institutions.learner_records(bank, learner)
            transcript = issuance.issue_transcript(bank, learner)
            subset = issuance.issue_transcript(
                bank, learner, [chains[0].root_index, chains[1].current_index]
            )
            record_cert = issuance.issue_certificate(bank, learner, record=chains[2].root_index)
            decision = next(
                a["entry_index"] for a in conversion.list_applications(bank, learner) if a["grants"]
            )
            decision_cert = issuance.issue_certificate(bank, learner, decision=decision)
            yield World(
                bank, settings, clock, transcript, subset, record_cert, decision_cert, learner
            )
        finally:
            bank.close()

    if request.param == "sqlite":
        yield from build(None)
        return
    admin = os.environ.get("CREDITBANK_TEST_PG_URL", "")
    if not admin:
        pytest.skip("PostgreSQL tests need CREDITBANK_TEST_PG_URL")
    with fresh_pg_database(admin) as url:
        yield from build(url)


def _state(bank: Bank) -> tuple[int, dict[str, int]]:
    with bank.engine.connect() as conn:
        return bank.ledger.head().size, documents_repo.count_rows(conn)


def _verify(bank: Bank, credential: bytes) -> list[Any]:
    doc = json.loads(credential)
    return verify_credential(
        doc,
        did_document=issuance.issuer_did_document(bank),
        keys=RegistryKeys(bank.ledger.registry()),
        log_key=parse_verifier_key(bank.verifier_key),
    )


# -- what an issuance stores and says ------------------------------------------------------------
def test_every_document_verifies_offline_and_its_pdf_carries_it(world: World) -> None:
    bank = world.bank
    roots = document_trust_roots(world.settings)
    for got in (world.transcript, world.subset, world.record_cert, world.decision_cert):
        checks = _verify(bank, got.credential)
        names = {c.name for c in checks}
        assert "credential.proof" in names
        assert any(n.endswith(".inclusion") for n in names)
        verify_pdf_signature(got.pdf, roots)
        assert extract_credential(got.pdf) == got.credential  # byte for byte
        # stored once, served as stored
        assert issuance.document_bytes(bank, got.doc_id, "pdf") == got.pdf
        assert issuance.document_bytes(bank, got.doc_id, "json", got.learner_id) == got.credential


def test_transcript_shows_every_record_and_decision(world: World) -> None:
    doc = json.loads(world.transcript.credential)
    subject = doc["credentialSubject"]
    chains = institutions.learner_records(world.bank, world.learner)
    canonical = [c for c in chains if c.duplicate_of is None]
    assert len(subject["records"]) == len(canonical)
    assert subject["complete"] is True
    assert subject["name"] == "王建国"
    assert len(subject["conversions"]) == len(
        conversion.list_applications(world.bank, world.learner)
    )
    assert doc["credentialStatus"]["statusListCredential"].endswith("/api/v1/status/1")
    # the chosen subset: exactly the two chains chosen, by any of their indices
    sub = json.loads(world.subset.credential)["credentialSubject"]
    assert sub["complete"] is False
    assert len(sub["records"]) == 2


def test_issued_entry_holds_digests_and_no_personal_data(world: World) -> None:
    got = world.transcript
    row = world.bank.ledger.entry(got.entry_index)
    entry = parse_entry(bytes(row.data))
    assert entry.type == "transcript.issued"
    assert entry.issuer == world.settings.bank_id
    body = entry.body
    assert body["document_id"] == got.doc_id
    assert body["credential_digest"] == sha256_text(got.credential)
    assert body["pdf_digest"] == sha256_text(got.pdf)
    assert (body["status_list"], body["status_index"]) == (got.status_list, got.status_index)
    assert row.subject == world.learner  # the learner may read it
    raw = bytes(row.data).decode("utf-8")
    assert "王建国" not in raw
    assert got.code not in raw


def test_status_bits_are_sequential_and_unique(world: World) -> None:
    bits = [
        (d.status_list, d.status_index)
        for d in (world.transcript, world.subset, world.record_cert, world.decision_cert)
    ]
    assert bits == [(1, 0), (1, 1), (1, 2), (1, 3)]


def test_the_printed_code_opens_the_document_and_counts(world: World) -> None:
    got = world.transcript
    assert got.verify_url.endswith("/v/" + got.display_code)
    found = share_codes.lookup_code(world.bank, got.display_code.lower().replace("-", ""))
    assert (found.state, found.doc_id) == ("valid", got.doc_id)
    codes = share_codes.list_share_codes(world.bank, world.learner)
    mine = next(c for c in codes if c["code_id"] == got.code_id)
    assert mine["on_document"] is True
    assert mine["verifications"] >= 1
    assert mine["last_verified_at"] == format_time(world.clock.now())
    with world.bank.engine.connect() as conn:  # only the hash is stored
        row = documents_repo.share_code_by_id(conn, got.code_id)
    assert bytes(row.code_hash) == share_codes.hash_code(got.code)


# -- refusals write nothing ----------------------------------------------------------------------
def _refused(world: World, call: Any, exc: type[CreditBankError], code: str) -> None:
    before = _state(world.bank)
    with pytest.raises(exc) as e:
        call()
    assert e.value.code == code
    assert _state(world.bank) == before


def test_an_index_that_is_not_the_learners_is_not_found(world: World) -> None:
    bank = world.bank
    other = _learner(bank, "L02")
    theirs = institutions.learner_records(bank, other)[0].root_index
    for bad in (theirs, 10**9, 0):  # another learner's, none, the genesis entry
        _refused(
            world,
            lambda b=bad: issuance.issue_transcript(bank, world.learner, [b]),
            NotFoundError,
            "document.record_not_found",
        )
        _refused(
            world,
            lambda b=bad: issuance.issue_certificate(bank, world.learner, record=b),
            NotFoundError,
            "document.record_not_found",
        )
    _refused(
        world,
        lambda: issuance.issue_certificate(bank, world.learner, decision=theirs),
        NotFoundError,
        "document.decision_not_found",
    )


@pytest.mark.parametrize(
    ("kwargs", "exc", "code"),
    [
        ({"record_indices": []}, InvalidInputError, "document.no_records"),
        ({"record_indices": list(range(501))}, InvalidInputError, "document.too_many_records"),
    ],
)
def test_bad_subsets_are_refused(
    world: World, kwargs: dict[str, Any], exc: type[CreditBankError], code: str
) -> None:
    _refused(
        world, lambda: issuance.issue_transcript(world.bank, world.learner, **kwargs), exc, code
    )


def test_bad_certificate_requests_are_refused(world: World) -> None:
    bank, learner = world.bank, world.learner
    for kwargs in ({}, {"record": 1, "decision": 2}):
        _refused(
            world,
            lambda k=kwargs: issuance.issue_certificate(bank, learner, **k),
            InvalidInputError,
            "document.certificate_subject",
        )
    _refused(
        world,
        lambda: issuance.issue_transcript(bank, "LRN-0000000000000000ZZZZ"),
        NotFoundError,
        "learner.unknown",
    )


def test_an_erased_learner_gets_nothing(world: World) -> None:
    bank = world.bank
    learner = _learner(bank, "L05")
    first = institutions.learner_records(bank, learner)[0].root_index
    before = issuance.issue_certificate(bank, learner, record=first)
    institutions.erase(bank, learner)
    # its bytes (they disclose name and salt) are gone, its entry stays, its bit is set
    with pytest.raises(ConflictError) as e:
        issuance.document_bytes(bank, before.doc_id, "pdf")
    assert e.value.code == "document.erased"
    st = status.document_status(bank, before.doc_id)
    assert [c.what for c in st.causes] == ["erased"]
    assert parse_entry(bytes(bank.ledger.entry(before.entry_index).data)).body["learner"] == learner
    _refused(
        world, lambda: issuance.issue_transcript(bank, learner), ConflictError, "learner.erased"
    )
    _refused(
        world,
        lambda: issuance.issue_certificate(bank, learner, record=1),
        ConflictError,
        "learner.erased",
    )


def test_another_learners_document_is_not_found(world: World) -> None:
    bank = world.bank
    other = _learner(bank, "L02")
    got = world.subset
    for call in (
        lambda: issuance.document_bytes(bank, got.doc_id, "pdf", other),
        lambda: issuance.document_info(bank, got.doc_id, other),
        lambda: issuance.revoke_document(
            bank, got.doc_id, reason="x", by="learner", learner_id=other
        ),
        lambda: share_codes.create_share_code(bank, other, got.doc_id),
    ):
        _refused(world, call, NotFoundError, "document.not_found")


# -- status ---------------------------------------------------------------------------------------
def _bit(world: World, got: issuance.Issued) -> bool:
    credential = json.loads(got.credential)
    listed = json.loads(status.status_list_credential(world.bank, got.status_list))
    did_doc = issuance.issuer_did_document(world.bank)  # the list is signed by the same DID
    key = key_from_did_document(did_doc, listed["proof"]["verificationMethod"])
    verify_credential_proof(listed, key)
    return status_of(credential["credentialStatus"], listed)


def test_revoking_a_document_sets_its_bit(world: World) -> None:
    bank, got = world.bank, world.subset
    assert _bit(world, got) is False
    # the tests run in random order: the record test may have set the full transcript's bit
    other = _bit(world, world.transcript)
    _refused(
        world,
        lambda: issuance.revoke_document(bank, got.doc_id, reason=" ", by="learner",
                                         learner_id=world.learner),
        InvalidInputError,
        "document.reason",
    )  # fmt: skip
    info = issuance.revoke_document(
        bank, got.doc_id, reason="superseded", by="learner", learner_id=world.learner
    )
    assert info["status"] == "revoked"
    (cause,) = info["revoked"]
    assert (cause["what"], cause["reason"]) == ("learner", "superseded")
    entry = parse_entry(bytes(bank.ledger.entry(cause["entry_index"]).data))
    assert entry.type == "transcript.revoked"
    assert entry.body["issued_entry"] == got.entry_index
    assert _bit(world, got) is True
    assert _bit(world, world.transcript) is other  # no other document's bit moved
    _refused(
        world,
        lambda: issuance.revoke_document(bank, got.doc_id, reason="again", by="bank"),
        ConflictError,
        "document.revoked",
    )
    # a revoked document gets no new share codes; its bytes stay downloadable
    _refused(
        world,
        lambda: share_codes.create_share_code(bank, world.learner, got.doc_id),
        ConflictError,
        "document.revoked",
    )
    assert issuance.document_bytes(bank, got.doc_id, "pdf") == got.pdf


def test_revoking_a_record_sets_the_bit_of_every_document_showing_it(world: World) -> None:
    bank = world.bank
    got = world.record_cert
    assert _bit(world, got) is False
    assert _bit(world, world.transcript) is False
    with bank.engine.connect() as conn:
        (item,) = [i for i in documents_repo.document_items(conn, got.doc_id) if i.item == "record"]
    _, signer = load_key_file(bank.settings.keys_dir / "institutions" / f"{item.owner}.key")
    raw = sign_entry(
        build_entry(
            "record.revoked",
            item.owner,
            entry_key_id(signer.public_bytes),
            world.clock.now(),
            {
                "record_id": item.chain_root,
                "reason": "issued in error",
                "effective_on": "2026-01-14",
            },
        ),
        signer,
    )
    (out,) = bank.ledger.append([raw])
    # the same transaction that projected the revocation set the bits: no later step
    assert _bit(world, got) is True
    assert _bit(world, world.transcript) is True
    st = status.document_status(bank, got.doc_id)
    assert st.revoked
    (cause,) = [c for c in st.causes if c.what == "record"]
    assert (cause.reason, cause.entry_idx) == ("issued in error", out.index)
    assert cause.detail == f"{item.owner}/{item.chain_root}"
    # and now it is revoked, that record gets no certificate
    _refused(
        world,
        lambda: issuance.issue_certificate(bank, world.learner, record=item.entry_idx),
        ConflictError,
        "document.revoked_subject",
    )


# -- share codes ----------------------------------------------------------------------------------
def test_share_codes_make_extend_revoke(world: World) -> None:
    bank, learner, doc = world.bank, world.learner, world.decision_cert.doc_id
    made = share_codes.create_share_code(bank, learner, doc, days=7)
    assert share_codes.lookup_code(bank, made.display).doc_id == doc
    view = share_codes.extend_share_code(bank, learner, made.code_id, 30)
    assert view["expires_at"] == format_time(world.clock.now() + timedelta(days=37))
    for bad in (0, 10_000):
        _refused(
            world,
            lambda d=bad: share_codes.extend_share_code(bank, learner, made.code_id, d),
            InvalidInputError,
            "share_code.days",
        )
    assert share_codes.revoke_share_code(bank, learner, made.code_id)["state"] == "revoked"
    found = share_codes.lookup_code(bank, made.code)
    assert (found.state, found.doc_id) == ("revoked", None)  # the state, never the data
    _refused(
        world,
        lambda: share_codes.extend_share_code(bank, learner, made.code_id, 5),
        ConflictError,
        "share_code.revoked",
    )
    other = _learner(bank, "L02")
    _refused(
        world,
        lambda: share_codes.revoke_share_code(bank, other, made.code_id),
        NotFoundError,
        "share_code.not_found",
    )
    with pytest.raises(NotFoundError):
        share_codes.lookup_code(bank, "0000-0000-0000-0000")


def test_an_expired_code_shows_its_state_only(world: World) -> None:
    bank = world.bank
    made = share_codes.create_share_code(bank, world.learner, world.transcript.doc_id, days=1)
    world.clock.advance(2 * 86400)
    try:
        found = share_codes.lookup_code(bank, made.code)
        assert (found.state, found.doc_id) == ("expired", None)
    finally:
        world.clock.advance(-2 * 86400)


# -- keys -----------------------------------------------------------------------------------------
def test_init_makes_the_document_identity_with_safe_modes(world: World) -> None:
    keys = world.settings.keys_dir
    assert (keys / DOCUMENT_KEY).stat().st_mode & 0o777 == 0o600
    assert (keys / DOCUMENT_CERT).is_file()
    assert (keys / DOCUMENT_CA).is_file()


def test_an_older_home_without_the_identity_gets_one(tmp_path: Path) -> None:
    settings = Settings(
        home=tmp_path / "home", checkpoint_interval=3600, sqlite_synchronous="NORMAL"
    )
    init_home(settings, clock=FixedClock(T_IMPORT)).close()
    keys = settings.keys_dir
    before = (keys / DOCUMENT_CERT).read_bytes()
    for name in (DOCUMENT_CA, DOCUMENT_CERT, DOCUMENT_KEY):
        (keys / name).unlink()  # as a home made before documents existed
    assert migrate_home(settings)[1]  # `creditbank migrate` makes them
    assert (keys / DOCUMENT_KEY).stat().st_mode & 0o777 == 0o600
    assert (keys / DOCUMENT_CERT).read_bytes() != before
    again = (keys / DOCUMENT_CERT).read_bytes()
    migrate_home(settings)  # never overwritten
    assert (keys / DOCUMENT_CERT).read_bytes() == again
    for name in (DOCUMENT_CA, DOCUMENT_CERT, DOCUMENT_KEY):
        (keys / name).unlink()
    bank = open_bank(settings, clock=FixedClock(T_IMPORT))  # or on first use
    try:
        issuance.render_in_process(bank)
        assert (keys / DOCUMENT_KEY).is_file()
    finally:
        bank.close()
    (keys / DOCUMENT_CA).unlink()  # damaged: refused, not silently replaced
    with pytest.raises(ConfigurationError):
        ensure_document_identity(settings, T_IMPORT)


def test_documents_live_in_their_tables(world: World) -> None:
    with world.bank.engine.connect() as conn:
        n = conn.execute(
            select(entries_t.c.idx).where(entries_t.c.type == "transcript.issued")
        ).all()
        rows = documents_repo.count_rows(conn)
        erased = conn.execute(
            select(func.count())
            .select_from(
                documents_t.join(learners_t, learners_t.c.learner_id == documents_t.c.learner_id)
            )
            .where(learners_t.c.erased_at.is_not(None))
        ).scalar_one()
    assert rows["documents"] == len(n)  # one row per transcript.issued entry
    assert rows["document_files"] == len(n) - erased  # erasure deletes the bytes only
