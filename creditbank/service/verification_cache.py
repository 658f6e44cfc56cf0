"""What a verifier remembers: the bank's shared material (DID document, log key, document
CA, registry keys), the live log's published size, consistency verdicts, a stored
document's row and its immutable checks (per registry version). Only the code's state,
the status and the live log's size are read per request.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Final

from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from creditbank.core.checkpoint import Checkpoint
from creditbank.core.credentials.verify import Check, RegistryKeys, check_credential
from creditbank.core.signing import VerifierKey, parse_verifier_key
from creditbank.service.bank import Bank
from creditbank.service.issuance import issuer_did_document
from creditbank.service.verification_checks import (
    StaticChecks,
    consistency_check,
    embedded_checkpoints,
    issued_check,
    parse_credential,
    storage_error,
)
from creditbank.service.verification_counts import COUNT_FLUSH_S, CountBuffer
from creditbank.storage import documents_repo as repo
from creditbank.storage import ledger_repo
from creditbank.storage.verify_reads import AsyncVerifyReads, VerifyReads

#: documents whose immutable checks are remembered per process
MAX_CACHED: Final = 4096
#: seconds the live log's published size and the registry version are reused (the bank
#: publishes a checkpoint every ``checkpoint_interval / 2`` seconds when the log grew)
LIVE_TTL: Final = 1.0


class VerifierCache:
    """The state of a :class:`creditbank.service.verification.Verifier` (thread-safe): its
    caches, the bank's shared material, and the reads they come from. The arguments are the
    verifier's."""

    def __init__(
        self,
        bank: Bank,
        *,
        live_size: Callable[[], int] | None = None,
        trust_roots: Sequence[bytes] | None = None,
        live_ttl: float = LIVE_TTL,
        count_flush_s: float = COUNT_FLUSH_S,
    ) -> None:
        self.bank = bank
        self._live_size = live_size
        self._trust_roots = list(trust_roots) if trust_roots is not None else None
        self._lock = threading.Lock()
        self._static: dict[tuple[str, int], StaticChecks] = {}
        self._consistency: dict[tuple[int, bytes, int], Check] = {}
        self._roots: dict[int, bytes] = {}
        self._keys: tuple[int, RegistryKeys] | None = None
        self._keys_seen = 0.0
        self._live_state: tuple[int, bytes] | None = None
        self._live_seen = 0.0
        self._docs: dict[str, Any] = {}
        self._flights: dict[tuple[str, int], threading.Lock] = {}
        self.live_ttl = live_ttl
        self._log_key: VerifierKey = parse_verifier_key(bank.verifier_key)
        self._did: dict[str, Any] | None = None
        self._reads: VerifyReads | None = None
        self._areads: AsyncVerifyReads | None = None
        #: verification counts of the serving path, written at most once a second
        self.counts = CountBuffer(bank, interval=count_flush_s)

    # -- shared material -----------------------------------------------------------------------
    @property
    def did_document(self) -> dict[str, Any]:
        """The bank's DID document (the issuer key).

        Raises:
            InvalidInputError: ``credential.base_url`` for a bad public base URL.
        """
        if self._did is None:
            self._did = issuer_did_document(self.bank)
        return self._did

    @property
    def log_key(self) -> VerifierKey:
        """The log's checkpoint verifier key."""
        return self._log_key

    def trust_roots(self) -> list[bytes]:
        """The document CA certificates PDFs must chain to.

        Raises:
            ConfigurationError: if no chain is configured or it cannot be read.
        """
        if self._trust_roots is None:
            from creditbank.service.keys import document_trust_roots

            self._trust_roots = document_trust_roots(self.bank.settings)
        return self._trust_roots

    def _registry_keys(self) -> tuple[int, RegistryKeys]:
        now = time.monotonic()
        with self._lock:
            keys, seen = self._keys, self._keys_seen
        if keys is not None and now - seen < self.live_ttl:
            return keys
        count = self.bank.ledger.head().registry_count
        if keys is None or keys[0] != count:
            keys = (count, RegistryKeys(self.bank.ledger.registry()))
        with self._lock:
            self._keys, self._keys_seen = keys, now
        return keys

    def _live_stale(self) -> bool:
        """Whether the next report would read the live log or the registry (their TTL ran
        out): the event loop then refreshes both in a worker thread first."""
        now = time.monotonic()
        return (
            self._live_state is None
            or now - self._live_seen >= self.live_ttl
            or self._keys is None
            or now - self._keys_seen >= self.live_ttl
        )

    def _refresh_live(self) -> None:
        """Read the live log's published size and root and the registry now (blocking).

        Raises:
            StorageError: if the database is unavailable.
        """
        self._live()
        self._registry_keys()

    def _live(self) -> tuple[int, bytes]:
        now = time.monotonic()
        with self._lock:
            live, seen = self._live_state, self._live_seen
        if live is not None and now - seen < self.live_ttl:
            return live
        size = self._live_size() if self._live_size is not None else None
        root = self._roots.get(size) if size is not None else None
        if size is None or root is None:
            try:
                cp = self.bank.ledger.latest_checkpoint()
            except SQLAlchemyError as e:
                raise storage_error(e) from e
            size, root = cp.size, cp.root
        with self._lock:
            if len(self._roots) >= MAX_CACHED:
                self._roots.clear()
            self._roots[size] = root
            self._live_state, self._live_seen = (size, root), now
        return size, root

    def _consistent(self, cp: Checkpoint, live_size: int, live_root: bytes) -> Check:
        key = (cp.size, cp.root, live_size)
        hit = self._consistency.get(key)
        if hit is not None:
            return hit
        got = consistency_check(cp, live_size, live_root, self.bank.ledger.consistency_proof)
        with self._lock:
            if len(self._consistency) >= MAX_CACHED:
                self._consistency.clear()
            self._consistency[key] = got
        return got

    def _static_of(self, doc: Any, stored: bytes | None = None) -> StaticChecks | None:
        """The immutable checks of a stored document (None when its bytes were erased)."""
        count, keys = self._registry_keys()
        key = (str(doc.doc_id), count)
        hit = self._static.get(key)
        if hit is not None:
            return hit
        with self._lock:
            flight = self._flights.setdefault(key, threading.Lock())
        with flight:  # one thread computes a document's checks; the others wait for them
            hit = self._static.get(key)
            if hit is not None:
                return hit
            try:
                return self._compute_static(doc, key, keys, stored)
            finally:
                with self._lock:
                    self._flights.pop(key, None)

    def _compute_static(
        self, doc: Any, key: tuple[str, int], keys: RegistryKeys, stored: bytes | None
    ) -> StaticChecks | None:
        start = time.perf_counter()
        try:
            with self.bank.engine.connect() as conn:  # one connection at a time, never nested
                data = stored if stored is not None else repo.get_credential(conn, str(doc.doc_id))
                row = None
                if data is not None:
                    row = ledger_repo.get_entry(conn, int(doc.entry_idx))
        except SQLAlchemyError as e:
            raise storage_error(e) from e
        if data is None:
            return None
        credential = parse_credential(data)
        digest = hashlib.sha256(data).digest()
        issued = issued_check(
            None if row is None else bytes(row.data), doc, credential, digest, keys
        )
        checks = check_credential(
            credential, did_document=self.did_document, keys=keys, log_key=self._log_key
        )
        static = StaticChecks(
            credential,
            digest,
            issued,
            tuple(checks),
            tuple(embedded_checkpoints(credential, self._log_key)),
            time.perf_counter() - start,
        )
        with self._lock:
            if len(self._static) >= MAX_CACHED:
                self._static.clear()
            self._static[key] = static
        return static

    def _read_doc(self, doc_id: str) -> tuple[Any, list[repo.StatusCause]]:
        try:
            with self.bank.engine.connect() as conn:
                doc = repo.get_document(conn, doc_id)
                causes = [] if doc is None else repo.status_causes_of(conn, doc_id)
        except SQLAlchemyError as e:
            raise storage_error(e) from e
        return doc, causes

    def _doc_row(self, conn: Connection, doc_id: str) -> Any:
        """A document's row; what the checks read of it never changes (its revocation
        state is read with the status causes), so it is remembered."""
        hit = self._docs.get(doc_id)
        if hit is not None:
            return hit
        doc = repo.get_document(conn, doc_id)
        if doc is not None:
            with self._lock:
                if len(self._docs) >= MAX_CACHED:
                    self._docs.clear()
                self._docs[doc_id] = doc
        return doc

    def close(self) -> None:
        """Write the buffered verification counts and close the driver connections.

        Raises:
            StorageError: if the counts cannot be written (they are kept for a retry).
        """
        self.counts.close()
        if self._reads is not None:
            self._reads.close()
