"""Projection of ``transcript.*`` entries into the document tables, inside the append.

The ledger runs its validator under the head lock, in the transaction that writes the
entries. :class:`DocumentProjector` wraps the record validator: for a bank-signed
``transcript.issued`` it stores the document row, its items, its exact credential and PDF
bytes and its first share code (handed over as the entry's side data, checked against the
signed body: same id, learner, status bit and digests); for a ``transcript.revoked`` it sets
the document's revocation state. Either the entry and its rows commit together or neither
does: there is no moment at which the log names a document the bank cannot serve, or the
bank serves a document the log does not name (docs/documents.md, "Atomicity").
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any, Final

from sqlalchemy.engine import Connection

from creditbank.core.entries import Entry
from creditbank.core.registry import Registry
from creditbank.errors import ConflictError, InvalidInputError, NotFoundError
from creditbank.service.ledger import Admission, Validator
from creditbank.storage import documents_repo as repo

ISSUED: Final = "transcript.issued"
REVOKED: Final = "transcript.revoked"
DOCUMENT_TYPES: Final = frozenset({ISSUED, REVOKED})


def sha256_text(data: bytes) -> str:
    """``sha256:`` + lower-case hex (the digest format of ``transcript.issued``)."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


class DocumentProjector:
    """The ledger validator: documents here, everything else to the wrapped validator."""

    def __init__(self, inner: Validator, bank_id: str) -> None:
        self.inner = inner
        self.bank_id = bank_id

    # the ledger looks these up with getattr; forward them to the record validator
    def precheck(self, entry: Entry) -> None:
        """Raises: InvalidInputError: as the wrapped validator's precheck (schemas)."""
        pre = getattr(self.inner, "precheck", None)
        if pre is not None:
            pre(entry)

    def begin(self, conn: Connection, entries: Sequence[Entry]) -> None:
        begin = getattr(self.inner, "begin", None)
        if begin is not None:
            begin(conn, entries)

    def finish(self, conn: Connection) -> None:
        finish = getattr(self.inner, "finish", None)
        if finish is not None:
            finish(conn)

    def abort(self) -> None:
        abort = getattr(self.inner, "abort", None)
        if abort is not None:
            abort()

    def __call__(
        self,
        conn: Connection,
        entry: Entry,
        registry: Registry,
        idx: int,
        extra: Mapping[str, Any] | None,
    ) -> Admission:
        if entry.type not in DOCUMENT_TYPES:
            return self.inner(conn, entry, registry, idx, extra)
        # the schema check (precheck) ran before the lock; the wrapped validator re-runs it
        # when the ledger did not precheck
        if not getattr(self.inner, "prechecked", True):
            self.precheck(entry)
        if entry.issuer != self.bank_id:
            raise InvalidInputError(
                f"{entry.type} entries are signed by the bank", code="transcript.issuer"
            )
        if entry.type == ISSUED:
            _project_issued(conn, entry, idx, extra)
        else:
            _project_revoked(conn, entry, idx)
        return Admission(subject=str(entry.body["learner"]))


def _project_issued(
    conn: Connection, entry: Entry, idx: int, extra: Mapping[str, Any] | None
) -> None:
    body = entry.body
    if extra is None or not isinstance(extra.get("document"), Mapping):
        raise InvalidInputError(
            "a transcript.issued entry is appended with its document", code="transcript.no_document"
        )
    doc = dict(extra["document"])
    credential, pdf = extra.get("credential"), extra.get("pdf")
    if not isinstance(credential, bytes) or not isinstance(pdf, bytes):
        raise InvalidInputError("document bytes missing", code="transcript.no_document")
    expected = {
        "doc_id": body["document_id"],
        "learner_id": body["learner"],
        "kind": body["kind"],
        "status_list": body["status_list"],
        "status_index": body["status_index"],
        "checkpoint_size": body["checkpoint_size"],
        "item_count": body["items"],
    }
    if any(doc.get(k) != v for k, v in expected.items()) or (
        sha256_text(credential) != body["credential_digest"]
        or sha256_text(pdf) != body["pdf_digest"]
    ):
        raise InvalidInputError(
            "the document does not match its transcript.issued entry",
            code="transcript.mismatch",
        )
    if repo.get_document(conn, str(body["document_id"])) is not None:
        raise ConflictError(
            f"document {body['document_id']} already exists", code="transcript.duplicate"
        )
    doc.update(
        entry_idx=idx,
        credential_digest=hashlib.sha256(credential).digest(),
        pdf_digest=hashlib.sha256(pdf).digest(),
        issued_at=entry.at,
    )
    items = [dict(i) for i in extra.get("items", ())]
    repo.insert_document(conn, doc, items, credential, pdf)
    code = extra.get("share_code")
    if isinstance(code, Mapping):
        repo.insert_share_code(conn, dict(code))


def _project_revoked(conn: Connection, entry: Entry, idx: int) -> None:
    body = entry.body
    doc = repo.get_document(conn, str(body["document_id"]))
    if (
        doc is None
        or str(doc.learner_id) != body["learner"]
        or int(doc.entry_idx) != body["issued_entry"]
    ):
        raise NotFoundError(f"no document {body['document_id']}", code="document.not_found")
    if doc.revoked_at is not None:
        raise ConflictError(
            f"document {body['document_id']} is already revoked", code="document.revoked"
        )
    repo.mark_revoked(
        conn,
        str(body["document_id"]),
        at=entry.at,
        reason=str(body["reason"]),
        by=str(body["revoked_by"]),
        idx=idx,
    )
