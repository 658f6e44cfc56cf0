"""Composition root: settings → engine, keys, ledger. Also ``init`` and bank-authored entries."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine

from creditbank.config import Settings
from creditbank.core.entries import build_entry, sign_entry
from creditbank.core.signing import Ed25519Signer, b64encode, entry_key_id, format_verifier_key
from creditbank.errors import ConfigurationError, ConflictError
from creditbank.service.clock import Clock, SystemClock
from creditbank.service.documents import DocumentProjector
from creditbank.service.keys import (
    ISSUER_KEY,
    LOG_KEY,
    PEPPER,
    ensure_document_identity,
    generate_key_file,
    load_key_file,
    load_or_create_secret,
)
from creditbank.service.ledger import Ledger
from creditbank.service.records import RecordValidator
from creditbank.storage import ledger_repo
from creditbank.storage.engine import make_engine
from creditbank.storage.migrate import current_revision, is_initialised, known_revisions, upgrade


@dataclass
class Bank:
    """Everything a running creditbank needs, built from :class:`Settings`."""

    settings: Settings
    engine: Engine
    ledger: Ledger
    issuer: Ed25519Signer
    log_signer: Ed25519Signer
    clock: Clock

    @property
    def verifier_key(self) -> str:
        """The log's C2SP verifier key ``origin+hex8+base64``."""
        return format_verifier_key(self.settings.origin, self.log_signer.public_bytes)

    def bank_entry(self, type_: str, body: Mapping[str, Any]) -> bytes:
        """Build and sign an entry authored by the bank (issuer key)."""
        unsigned = build_entry(
            type_,
            self.settings.bank_id,
            entry_key_id(self.issuer.public_bytes),
            self.clock.now(),
            body,
        )
        return sign_entry(unsigned, self.issuer)

    @property
    def pepper(self) -> bytes:
        """The server secret keying identity lookups (``keys/pepper``, created on first use)."""
        return load_or_create_secret(self.settings.keys_dir / PEPPER)

    def close(self) -> None:
        self.engine.dispose()


def open_bank(
    settings: Settings,
    *,
    clock: Clock | None = None,
    pool: bool = True,
    validate_records: bool = True,
) -> Bank:
    """Open an initialised home.

    ``validate_records=False`` is the ledger-only mode: record semantics (schemas, learners,
    chains) are not checked, only signatures and key validity. It exists to test and measure
    the log in isolation; the product always validates.

    Raises:
        ConfigurationError: if the home or database is not initialised or keys are bad.
    """
    log_name, log_signer = load_key_file(settings.keys_dir / LOG_KEY)
    _, issuer = load_key_file(settings.keys_dir / ISSUER_KEY)
    if log_name != settings.origin:
        raise ConfigurationError(
            f"log key is named {log_name!r} but the origin is {settings.origin!r}"
        )
    engine = make_engine(settings.db_url, synchronous=settings.sqlite_synchronous, pool=pool)
    try:
        if not is_initialised(engine):
            raise ConfigurationError("database is not initialised; run `creditbank init`")
        check_schema(engine)
    except BaseException:
        engine.dispose()
        raise
    clk = clock or SystemClock()
    ledger = Ledger(
        engine,
        bank_id=settings.bank_id,
        origin=settings.origin,
        log_signer=log_signer,
        clock=clk,
        checkpoint_interval=settings.checkpoint_interval,
        validator=(
            DocumentProjector(RecordValidator(clk, settings.bank_id), settings.bank_id)
            if validate_records
            else None
        ),
        max_clock_skew=timedelta(seconds=settings.max_clock_skew_seconds),
        max_signature_age=timedelta(seconds=settings.max_signature_age_seconds),
    )
    return Bank(settings, engine, ledger, issuer, log_signer, clk)


def check_schema(engine: Engine) -> None:
    """Refuse a database whose schema is not the one this code ships (older or newer).

    Raises:
        ConfigurationError: with what to do about it.
        StorageError: if the database cannot be reached.
    """
    current, known = current_revision(engine), known_revisions()
    if current == known[-1]:
        return
    if current in known:
        raise ConfigurationError(
            f"the database schema is at {current}; this creditbank needs {known[-1]}:"
            " run `creditbank migrate` (back the database up first)"
        )
    raise ConfigurationError(
        f"the database schema is at {current!r}, which this creditbank does not know"
        " (was it migrated by a newer version?)"
    )


def migrate_home(settings: Settings) -> tuple[str | None, str]:
    """Upgrade the home's database schema to the newest this code ships: (before, after).

    Raises:
        ConfigurationError: if the database is not initialised, or is newer than this code.
        StorageError: if the database cannot be reached or migrated.
    """
    if not settings.database_url and not (settings.home / "creditbank.db").is_file():
        raise ConfigurationError(f"no database in {settings.home}; run `creditbank init`")
    engine = make_engine(settings.db_url, synchronous=settings.sqlite_synchronous, pool=False)
    try:
        if not is_initialised(engine):
            raise ConfigurationError("database is not initialised; run `creditbank init`")
        before, known = current_revision(engine), known_revisions()
        if before not in known:
            raise ConfigurationError(
                f"the database schema is at {before!r}, which this creditbank does not know"
            )
        upgrade(engine)
    finally:
        engine.dispose()
    # homes made before documents existed get the demo document-signing identity here
    ensure_document_identity(settings, SystemClock().now())
    return before, known[-1]


def init_home(
    settings: Settings, *, clock: Clock | None = None, validate_records: bool = True
) -> Bank:
    """Create the home, keys (0600, never overwritten), the demo document-signing CA and
    certificate (unless a real one is configured), schema and the genesis entry.

    Raises:
        ConflictError: if keys already exist (nothing is written then).
        StorageError: if the database cannot be reached or prepared (no keys are written).
        ConfigurationError: if the database URL is unsupported.
    """
    # Refuse before touching anything, then prepare the database, and only then write keys:
    # a bad database URL must not leave keys behind that make the retry fail.
    for name in (LOG_KEY, ISSUER_KEY):
        if (settings.keys_dir / name).exists():
            raise ConflictError(
                f"refusing to overwrite existing key {settings.keys_dir / name}",
                code="key.exists",
            )
    engine = make_engine(settings.db_url, synchronous=settings.sqlite_synchronous)
    try:
        settings.home.mkdir(parents=True, exist_ok=True)
        upgrade(engine)
        with engine.begin() as conn:
            ledger_repo.ensure_head(conn, "1970-01-01T00:00:00Z")
    finally:
        engine.dispose()
    generate_key_file(settings.keys_dir / LOG_KEY, settings.origin)
    generate_key_file(settings.keys_dir / ISSUER_KEY, settings.bank_id)
    load_or_create_secret(settings.keys_dir / PEPPER)
    clk = clock or SystemClock()
    ensure_document_identity(settings, clk.now())
    bank = open_bank(settings, clock=clk, validate_records=validate_records)
    if bank.ledger.head().size == 0:
        genesis = bank.bank_entry(
            "institution.registered",
            {
                "institution_id": settings.bank_id,
                "kind": "credit_bank",
                "name_zh": settings.bank_name_zh,
                "name_en": settings.bank_name_en,
                "keys": [
                    {
                        "key_id": entry_key_id(bank.issuer.public_bytes),
                        "public_key": b64encode(bank.issuer.public_bytes),
                    }
                ],
            },
        )
        bank.ledger.append([genesis], publish=True)
    return bank
