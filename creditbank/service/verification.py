"""Verification for employers: by verification code, by uploaded PDF or credential JSON.

One report model serves the API, the pages and the CLI (docs/verification.md)::

    {"verified": bool, "status": VALID|REVOKED|CODE_EXPIRED|CODE_REVOKED|NOT_FOUND|INVALID,
     "checks": [{"name", "ok", "detail"}]}

**By code** (:meth:`Verifier.by_code`): the code is normalised (case, hyphens, Crockford
confusables), hashed and looked up (constant-time compare of the stored hash); a valid lookup
is counted (when and how many, never who). An unknown code is ``NOT_FOUND``; an expired or
revoked code is ``CODE_EXPIRED`` / ``CODE_REVOKED`` and opens no data. A valid code opens its
document, which is checked: the bank's ``transcript.issued`` entry names the stored credential
(``document.issued``), the credential's proof, each institution signature, each name
commitment, each inclusion proof at the embedded checkpoint (the core's named checks,
:func:`creditbank.core.credentials.verify.check_credential`), that checkpoint's consistency
with the live log (``checkpoint[S].consistency``: a consistency proof from S to the latest
published size), and the status list bit (``status``).

**By upload** (:meth:`Verifier.by_upload`): a PDF must carry one PAdES signature that is
intact (``pdf.signature``), covers the whole file (``pdf.whole_file``) and chains to the
bank's document CA (``pdf.trusted``); its attached credential (``pdf.credential``) must be
the one the bank issued (``document.issued``: found by the code in its ``verificationUrl``
or by its digest, equal to the stored bytes and to the digest in the ``transcript.issued``
entry), and the file itself the one issued with it (``document.pdf``, the entry's
``pdf_digest``; ``pdf.verification_code`` names the document a foreign code printed on it
opens). Then every check above. A credential JSON upload skips the PDF checks.

What never changes is computed once: a stored document's proof and evidence checks are
cached per document (and per registry version), a consistency verdict per (checkpoint,
published size). Only the code's state, the status and the live log's size are read per
request. Each phase is timed (:attr:`VerificationReport.timings`).

Where each part lives (:class:`Verifier` is assembled from them; import from here):

* ``verification`` — by code: :meth:`Verifier.by_code` and the serving path
  (:meth:`Verifier.by_code_fast`, :meth:`Verifier.aby_code_fast`); the process's verifier.
* ``verification_upload`` — by upload (:meth:`Verifier.by_upload`).
* ``verification_document`` — the report of a stored document, for both paths.
* ``verification_cache`` — what a verifier remembers, and the shared material.
* ``verification_checks`` — the checks as functions, and reading an upload.
* ``verification_report`` — the report model, the verdict, the check labels.
* ``verification_counts`` — verification counts, batched.
* ``verification_offline`` — the same checks with exported keys, no database.
"""

from __future__ import annotations

import asyncio
import hmac
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any, Final

from sqlalchemy.exc import SQLAlchemyError

from creditbank.core.codes import format_code, normalize_code
from creditbank.core.credentials.verify import Check
from creditbank.core.entries import format_time
from creditbank.errors import StorageError
from creditbank.service.bank import Bank
from creditbank.service.share_codes import CodeState, code_state, hash_code
from creditbank.service.verification_cache import LIVE_TTL
from creditbank.service.verification_checks import (
    MAX_UPLOAD_BYTES,
    check_upload_size,
    storage_error,
)
from creditbank.service.verification_counts import COUNT_FLUSH_S, CountBuffer
from creditbank.service.verification_report import (
    CODE_EXPIRED,
    CODE_REVOKED,
    INVALID,
    NOT_FOUND,
    REVOKED,
    VALID,
    CodeFacts,
    PhaseTimer,
    VerificationReport,
    check_label,
    make_report,
)
from creditbank.service.verification_upload import UploadVerifier
from creditbank.storage import documents_repo as repo
from creditbank.storage.engine import UNAVAILABLE
from creditbank.storage.verify_reads import AsyncVerifyReads, VerifyReads

#: the names importers use from here (the pieces live in the verification_* modules)
__all__ = [
    "CODE_EXPIRED",
    "CODE_REVOKED",
    "COUNT_FLUSH_S",
    "INVALID",
    "LIVE_TTL",
    "MAX_UPLOAD_BYTES",
    "NOT_FOUND",
    "REVOKED",
    "VALID",
    "CountBuffer",
    "VerificationReport",
    "Verifier",
    "app_verifier",
    "check_label",
    "check_upload_size",
    "verifier_for",
]

#: what a driver-level read raises when the database is unavailable
_FAST_ERRORS: Final[tuple[type[Exception], ...]] = (SQLAlchemyError, *UNAVAILABLE)


def _matched_state(row: Any, wanted: bytes, now: datetime) -> CodeState | None:
    """The state at ``now`` of the code row looked up by hash ``wanted``; None when there is
    no row or its stored hash is not ``wanted`` (compared in constant time)."""
    if row is None or not hmac.compare_digest(bytes(row.code_hash), wanted):
        return None
    return code_state(row, now)


class Verifier(UploadVerifier):
    """Verifies documents against one bank; thread-safe; caches what is immutable.

    Args:
        bank: the open bank.
        live_size: returns the latest published checkpoint size (defaults to the ledger's;
            the API passes its fast reader).
        trust_roots: the document CA certificates (defaults to the bank's configured chain,
            read on first use).
        live_ttl: seconds the live log's published size and the registry version are
            reused before they are read again (0: every call).
        count_flush_s: the most seconds a count of :meth:`by_code_fast` waits in memory.
    """

    # -- by code -------------------------------------------------------------------------------
    def by_code(self, text: str, *, count: bool = True) -> VerificationReport:
        """Verify the document a verification code opens.

        Args:
            text: the code as typed or scanned (any case, hyphens optional, confusables).
            count: count this verification on the code (the pages and API do).

        Returns:
            The report; ``NOT_FOUND`` / ``CODE_EXPIRED`` / ``CODE_REVOKED`` carry no data.

        Raises:
            InvalidInputError: ``code.malformed`` when ``text`` is not a verification code.
            StorageError: if the database is unavailable.
            ConfigurationError: if the bank's public base URL is not usable for its DID.
        """
        timer = PhaseTimer()
        doc: Any = None
        causes: list[repo.StatusCause] = []
        with timer("code"):
            code, wanted, now = self._lookup_of(text)
            try:
                with self.bank.engine.begin() as conn:
                    row = repo.share_code_by_hash(conn, wanted)
                    state = _matched_state(row, wanted, now)
                    if state == "valid":
                        if count:
                            if conn.dialect.name == "postgresql":
                                # a count is not worth a WAL flush per page view: a crash of
                                # the database server may lose the last moment's counts
                                conn.exec_driver_sql("SET LOCAL synchronous_commit TO OFF")
                            repo.count_verification(conn, wanted, format_time(now))
                        with timer("document"):
                            doc = self._doc_row(conn, str(row.doc_id))
                            if doc is not None:
                                causes = repo.status_causes_of(conn, str(doc.doc_id))
            except SQLAlchemyError as e:
                raise storage_error(e) from e
        return self._code_report(code, row, state, doc, causes, timer)

    def _lookup_of(self, text: str) -> tuple[str, bytes, datetime]:
        """A typed code normalised, the hash it is stored under, and the time it is judged at.

        Raises:
            InvalidInputError: ``code.malformed`` when ``text`` is not a verification code.
        """
        code = normalize_code(text)
        return code, hash_code(code), self.bank.clock.now()

    def _code_report(
        self,
        code: str,
        row: Any,
        state: str | None,
        doc: Any,
        causes: list[repo.StatusCause],
        timer: PhaseTimer,
    ) -> VerificationReport:
        """The report of a looked-up code (``state`` None: no such code)."""
        if row is None or state is None:
            return make_report(
                [Check("code", False, "no such verification code")], NOT_FOUND, timer.timings
            )
        facts = CodeFacts(str(state), str(row.expires_at), row.revoked_at)
        if state == "revoked":
            check = Check("code", False, f"the holder revoked this code on {row.revoked_at}")
            return make_report([check], CODE_REVOKED, timer.timings, code=facts)
        if state == "expired":
            check = Check("code", False, f"this code expired on {row.expires_at}")
            return make_report([check], CODE_EXPIRED, timer.timings, code=facts)
        checks = [Check("code", True, f"{format_code(code)} is valid until {row.expires_at}")]
        if doc is None:  # a code names a document that the projection lost: not ours to show
            checks.append(Check("document.issued", False, "the code names no stored document"))
            return make_report(checks, INVALID, timer.timings, code=facts)
        report = self._document(doc, causes, checks, timer, upload=None)
        report.code = facts
        return report

    def by_code_fast(self, text: str, *, cold: bool = False) -> VerificationReport | None:
        """:meth:`by_code` for the serving path: the code's row and the document's status
        causes on driver connections (read per request: a revocation shows on the next one),
        everything immutable from this verifier's caches, and the count added to the
        in-memory :attr:`counts` (written at most :data:`COUNT_FLUSH_S` later, and on close).

        Args:
            text: the code as typed or scanned.
            cold: compute what is not cached yet (the document's row and checks: tens of
                ms of signature checks); False returns None instead, so an event loop can
                hand such a first request to a worker thread.

        Returns:
            The report, or None when ``cold`` is False and the document is not cached yet
            (nothing was counted then).

        Raises:
            InvalidInputError: ``code.malformed`` when ``text`` is not a verification code.
            StorageError: if the database is unavailable.
            ConfigurationError: if the bank's public base URL is not usable for its DID.
        """
        timer = PhaseTimer()
        reads = self._fast_reads()
        doc: Any = None
        causes: list[repo.StatusCause] = []
        with timer("code"):
            code, wanted, now = self._lookup_of(text)
            try:
                row = reads.share_code(wanted)
                state = _matched_state(row, wanted, now)
                if state == "valid" and row is not None:
                    with timer("document"):
                        doc = self._docs.get(row.doc_id)
                        if doc is None or not self._is_warm(doc):
                            if not cold:
                                return None
                            with self.bank.engine.connect() as conn:
                                doc = self._doc_row(conn, row.doc_id)
                        if doc is not None:
                            causes = reads.status_causes(str(doc.doc_id))
            except _FAST_ERRORS as e:
                raise StorageError(f"the bank's database is unavailable: {e}") from e
        if state == "valid":
            self.counts.add(wanted, format_time(now))
        return self._code_report(code, row, state, doc, causes, timer)

    async def aby_code_fast(self, text: str) -> VerificationReport | None:
        """:meth:`by_code_fast` for an event loop: on PostgreSQL the code's row and its
        document's status causes come in one awaited round trip (the loop serves other
        requests meanwhile); on SQLite (a local file, no network wait) the synchronous reads.

        Returns:
            The report, or None when the document is not cached yet (nothing was counted):
            call ``by_code_fast(text, cold=True)`` in a worker thread then.

        Raises:
            InvalidInputError: ``code.malformed`` when ``text`` is not a verification code.
            StorageError: if the database is unavailable.
            ConfigurationError: if the bank's public base URL is not usable for its DID.
        """
        areads = self._async_reads()
        if areads is None:
            return self.by_code_fast(text)
        timer = PhaseTimer()
        doc: Any = None
        with timer("code"):
            code, wanted, now = self._lookup_of(text)
            try:
                row, causes = await areads.code_and_causes(wanted)
            except _FAST_ERRORS as e:
                raise StorageError(f"the bank's database is unavailable: {e}") from e
            state = _matched_state(row, wanted, now)
            if state == "valid" and row is not None:
                doc = self._docs.get(row.doc_id)
                if doc is None or not self._is_warm(doc):
                    return None
                if self._live_stale():  # once a second: the reads block, so not on the loop
                    await asyncio.to_thread(self._refresh_live)
        if state == "valid":
            self.counts.add(wanted, format_time(now))
        return self._code_report(code, row, state, doc, causes if doc is not None else [], timer)

    def _async_reads(self) -> AsyncVerifyReads | None:
        if self.bank.engine.dialect.name != "postgresql":
            return None
        reads = self._areads
        if reads is None:
            with self._lock:
                if self._areads is None:
                    self._areads = AsyncVerifyReads(self.bank.engine)
                reads = self._areads
        return reads

    async def aclose(self) -> None:
        """:meth:`close`, and the asyncio connections of the running loop.

        Raises:
            StorageError: if the counts cannot be written (they are kept for a retry).
        """
        if self._areads is not None:
            await self._areads.close()
        await asyncio.to_thread(self.close)

    def _is_warm(self, doc: Any) -> bool:
        """True when ``doc``'s immutable checks are cached (for the current registry)."""
        keys = self._keys
        return keys is not None and (str(doc.doc_id), keys[0]) in self._static

    def _fast_reads(self) -> VerifyReads:
        reads = self._reads
        if reads is None:
            with self._lock:
                if self._reads is None:
                    self._reads = VerifyReads(self.bank.engine)
                reads = self._reads
        return reads


_VERIFIERS: dict[int, Verifier] = {}
_VERIFIERS_LOCK = threading.Lock()


def verifier_for(bank: Bank, *, live_size: Callable[[], int] | None = None) -> Verifier:
    """The process's :class:`Verifier` of ``bank`` (one per open bank, made on first use)."""
    with _VERIFIERS_LOCK:
        got = _VERIFIERS.get(id(bank))
        if got is None or got.bank is not bank:
            got = _VERIFIERS[id(bank)] = Verifier(bank, live_size=live_size)
        return got


def app_verifier(request: Any) -> Verifier:
    """The verifier of the app serving ``request`` (``request.app.state.verifier``, shared by
    the API and the pages; made on first use, reading the live size through the app's fast
    reader when it has one)."""
    state = request.app.state
    found: Verifier | None = getattr(state, "verifier", None)
    if found is None:
        reads = getattr(state, "log_reads", None)
        found = verifier_for(
            state.bank, live_size=None if reads is None else reads.latest_published_size
        )
        state.verifier = found
    return found
