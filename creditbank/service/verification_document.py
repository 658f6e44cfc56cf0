"""The report of a stored document, by code or by upload: the issuance entry, the
credential's checks, the uploaded file against the issued one, consistency with the live
log and the status.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from creditbank.core.codes import format_code
from creditbank.core.credentials.verify import Check, check_credential
from creditbank.service.documents import sha256_text
from creditbank.service.share_codes import hash_code
from creditbank.service.verification_cache import VerifierCache
from creditbank.service.verification_checks import (
    StaticChecks,
    document_facts,
    embedded_checkpoints,
    printed_codes,
    revocations_of,
    status_check,
    storage_error,
)
from creditbank.service.verification_report import (
    PhaseTimer,
    VerificationReport,
    make_report,
    verdict,
)
from creditbank.storage import documents_repo as repo


@dataclass(frozen=True, slots=True)
class Uploaded:
    """An uploaded credential, its digest (None: not canonicalisable) and the PDF it came in."""

    credential: dict[str, Any]
    digest: bytes | None
    pdf: bytes | None


class DocumentVerifier(VerifierCache):
    """The report of a stored document, for both the by-code and the by-upload paths."""

    def _document(
        self,
        doc: Any,
        causes: list[repo.StatusCause],
        checks: list[Check],
        timer: PhaseTimer,
        *,
        upload: Uploaded | None,
    ) -> VerificationReport:
        facts = document_facts(doc)
        revoked = bool(causes)
        erased = any(c.what == "erased" for c in causes)
        with timer("credential"):
            static = None if erased else self._static_of(doc)
        if static is None:  # the stored bytes are gone with the learner's personal data
            checks.append(
                Check("document.issued", True, f"issued as {doc.doc_id} (contents erased)")
            )
            checks.append(status_check(causes, doc))
            return make_report(
                checks,
                verdict(checks, True),
                timer.timings,
                document=facts,
                revocations=revocations_of(causes),
            )
        if upload is None:
            checks.append(static.issued)
            checks.extend(static.checks)
            shown = static.credential
        else:
            self._upload_checks(upload, doc, static, checks, timer)
            shown = upload.credential if upload.digest == static.digest else static.credential
        with timer("consistency"):
            live_size, live_root = self._live()
            cps = (
                static.checkpoints
                if upload is None or upload.digest == static.digest
                else tuple(embedded_checkpoints(upload.credential, self._log_key))
            )
            for cp in cps:
                checks.append(self._consistent(cp, live_size, live_root))
        with timer("status"):
            checks.append(status_check(causes, doc))
        status = verdict(checks, revoked)
        return make_report(
            checks,
            status,
            timer.timings,
            document=facts,
            credential=shown,
            revocations=revocations_of(causes),
            live_size=live_size,
        )

    def _upload_checks(
        self,
        upload: Uploaded,
        doc: Any,
        static: StaticChecks,
        checks: list[Check],
        timer: PhaseTimer,
    ) -> None:
        same = upload.digest is not None and hmac.compare_digest(upload.digest, static.digest)
        if same:
            checks.append(static.issued)
        else:
            checks.append(
                Check(
                    "document.issued",
                    False,
                    f"the credential differs from the one issued as {doc.doc_id}",
                )
            )
        if upload.pdf is not None:
            with timer("document"):
                checks.extend(self._pdf_is_issued(upload.pdf, doc))
        with timer("credential"):
            if same:
                checks.extend(static.checks)
            else:
                keys = self._registry_keys()[1]
                checks.extend(
                    check_credential(
                        upload.credential,
                        did_document=self.did_document,
                        keys=keys,
                        log_key=self._log_key,
                    )
                )

    def _pdf_is_issued(self, pdf: bytes, doc: Any) -> list[Check]:
        digest = hashlib.sha256(pdf).digest()
        if hmac.compare_digest(digest, bytes(doc.pdf_digest)):
            return [
                Check("document.pdf", True, f"the file issued as {doc.doc_id}"),
                Check("pdf.verification_code", True, "the file prints this document's own code"),
            ]
        checks = [
            Check(
                "document.pdf",
                False,
                f"this is not the PDF issued as {doc.doc_id} ({sha256_text(pdf)[:19]}…)",
            )
        ]
        codes = printed_codes(pdf)
        owners: list[str] = []
        try:
            with self.bank.engine.connect() as conn:
                for code in codes:
                    row = repo.share_code_by_hash(conn, hash_code(code))
                    owners.append(
                        f"{format_code(code)} opens "
                        + ("no document" if row is None else str(row.doc_id))
                    )
        except SQLAlchemyError as e:
            raise storage_error(e) from e
        foreign = [o for o in owners if not o.endswith(str(doc.doc_id))]
        if foreign:
            checks.append(
                Check(
                    "pdf.verification_code",
                    False,
                    "the code printed on this PDF belongs to another document: "
                    + "; ".join(foreign),
                )
            )
        else:
            checks.append(
                Check(
                    "pdf.verification_code",
                    bool(owners),
                    "; ".join(owners) if owners else "no verification code is printed on it",
                )
            )
        return checks
