"""Verification of an uploaded PDF or credential JSON (nothing written, nothing counted)."""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from creditbank.core.credentials.verify import Check, check_credential
from creditbank.service.share_codes import hash_code
from creditbank.service.verification_checks import (
    code_of_credential,
    credential_digest,
    embedded_checkpoints,
    read_upload,
    storage_error,
)
from creditbank.service.verification_document import DocumentVerifier, Uploaded
from creditbank.service.verification_report import (
    INVALID,
    PhaseTimer,
    VerificationReport,
    make_report,
)
from creditbank.storage import documents_repo as repo
from creditbank.storage.tables import documents_t


class UploadVerifier(DocumentVerifier):
    """Verification of an uploaded file against the documents the bank stores."""

    def by_upload(self, data: bytes, media_type: str | None = None) -> VerificationReport:
        """Verify an uploaded PDF or credential JSON (nothing is written, nothing counted).

        Raises:
            InvalidInputError: ``verify.unsupported`` / ``verify.not_json`` / ``pdf.not_pdf``
                for an upload that is neither a readable PDF nor a JSON object;
                ``verify.too_large`` / ``pdf.too_large`` when too large.
            StorageError: if the database is unavailable.
            ConfigurationError: if the document CA cannot be read.
        """
        timer = PhaseTimer()
        checks: list[Check] = []
        kind, credential = read_upload(data, media_type, self.trust_roots, timer, checks)
        if credential is None:
            return make_report(checks, INVALID, timer.timings)
        with timer("document"):
            digest = credential_digest(credential)
            doc = self._find(credential, digest)
            causes = [] if doc is None else self._read_doc(str(doc.doc_id))[1]
        if doc is None:
            checks.append(
                Check("document.issued", False, "the bank issued no document with this credential")
            )
            with timer("credential"):
                keys = self._registry_keys()[1]
                checks.extend(
                    check_credential(
                        credential, did_document=self.did_document, keys=keys, log_key=self._log_key
                    )
                )
            with timer("consistency"):
                live_size, live_root = self._live()
                for cp in embedded_checkpoints(credential, self._log_key):
                    checks.append(self._consistent(cp, live_size, live_root))
            checks.append(Check("status", False, "unknown: the bank holds no such document"))
            return make_report(checks, INVALID, timer.timings, live_size=live_size)
        upload: Uploaded = Uploaded(credential, digest, data if kind == "pdf" else None)
        return self._document(doc, causes, checks, timer, upload=upload)

    def _find(self, credential: Mapping[str, Any], digest: bytes | None) -> Any:
        """The stored document this credential claims to be: by the code in its
        ``verificationUrl`` (any state), else by its digest."""
        code = code_of_credential(credential)
        try:
            with self.bank.engine.connect() as conn:
                if code is not None:
                    want = hash_code(code)
                    row = repo.share_code_by_hash(conn, want)
                    if row is not None and hmac.compare_digest(bytes(row.code_hash), want):
                        doc = repo.get_document(conn, str(row.doc_id))
                        if doc is not None:
                            return doc
                if digest is None:
                    return None
                return conn.execute(
                    select(documents_t).where(documents_t.c.credential_digest == digest)
                ).first()
        except SQLAlchemyError as e:
            raise storage_error(e) from e
