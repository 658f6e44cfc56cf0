"""The checks of one verification, as functions of what was read: a stored document's
issuance entry, its status causes, an embedded checkpoint's consistency with the live
log; and the reading of an upload (PDF or credential JSON, the PDF's signature report,
the codes printed on it). Nothing here keeps state; only :func:`printed_codes` parses a PDF.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from sqlalchemy.exc import SQLAlchemyError

from creditbank.core.canonical import canonicalize
from creditbank.core.checkpoint import Checkpoint, verify_checkpoint
from creditbank.core.codes import normalize_code
from creditbank.core.credentials.verify import Check, KeyDirectory
from creditbank.core.entries import parse_entry, parse_time, verify_entry_signature
from creditbank.core.merkle import verify_consistency
from creditbank.core.signing import VerifierKey
from creditbank.errors import (
    CreditBankError,
    InvalidInputError,
    NotFoundError,
    StorageError,
    TooLargeError,
    VerificationError,
)
from creditbank.service.documents import ISSUED
from creditbank.service.verification_report import DocumentFacts, PhaseTimer, Revocation
from creditbank.storage import documents_repo as repo

#: largest upload accepted (a PDF; a credential JSON is smaller)
MAX_UPLOAD_BYTES: Final = 20 * 1024 * 1024
#: a printed verification code, as found in a PDF's text
_CODE_TEXT: Final = re.compile(r"\b[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}\b")
_CODE_IN_URL: Final = re.compile(r"/v/([0-9A-Za-z-]{16,24})$")


@dataclass(frozen=True, slots=True)
class StaticChecks:
    """What never changes for one stored document (under one registry version)."""

    credential: dict[str, Any]
    digest: bytes
    issued: Check
    checks: tuple[Check, ...]
    checkpoints: tuple[Checkpoint, ...]
    seconds: float


def embedded_checkpoints(credential: Mapping[str, Any], log_key: VerifierKey) -> list[Checkpoint]:
    """The distinct checkpoints embedded in a credential's evidence that verify with
    ``log_key`` (those that do not are reported by the credential checks)."""
    seen: dict[str, Checkpoint] = {}
    evidence = credential.get("evidence")
    for item in evidence if isinstance(evidence, list) else []:
        text = item.get("checkpoint") if isinstance(item, Mapping) else None
        if not isinstance(text, str) or text in seen:
            continue
        try:
            seen[text] = verify_checkpoint(text, log_key)
        except CreditBankError:
            continue
    return sorted(seen.values(), key=lambda cp: cp.size)


def consistency_check(
    embedded: Checkpoint,
    live_size: int,
    live_root: bytes,
    proof: Callable[[int, int], Sequence[bytes]],
) -> Check:
    """``checkpoint[S].consistency``: the live log (``live_size``, ``live_root``) extends the
    embedded checkpoint; ``proof(first, second)`` fetches the consistency proof."""
    name = f"checkpoint[{embedded.size}].consistency"
    if embedded.size > live_size:
        return Check(name, False, f"the live log's published size {live_size} is older")
    try:
        path = [] if embedded.size == live_size else list(proof(embedded.size, live_size))
        verify_consistency(embedded.size, live_size, embedded.root, live_root, path)
    except (InvalidInputError, NotFoundError) as e:
        return Check(name, False, f"no consistency proof from {embedded.size}: {e}")
    except CreditBankError as e:
        if isinstance(e, StorageError):
            raise
        return Check(
            name, False, f"the log forked: size {live_size} does not extend this checkpoint ({e})"
        )
    return Check(name, True, f"the live log at size {live_size} extends this checkpoint")


def issued_check(
    entry_raw: bytes | None,
    doc: Any,
    credential: Mapping[str, Any],
    digest: bytes,
    keys: KeyDirectory,
) -> Check:
    name = "document.issued"
    if entry_raw is None:
        return Check(name, False, f"no ledger entry at index {doc.entry_idx}")
    try:
        entry = parse_entry(entry_raw)
        verify_entry_signature(
            entry, keys.key_for(entry.issuer, entry.key_id, parse_time(entry.at))
        )
    except CreditBankError as e:
        return Check(name, False, f"the issuance entry does not verify: {e}")
    body = entry.body
    if entry.type != ISSUED or entry.issuer != keys.bank_id:
        return Check(name, False, f"entry {doc.entry_idx} is not the bank's {ISSUED}")
    if body.get("document_id") != doc.doc_id:
        return Check(name, False, f"entry {doc.entry_idx} names another document")
    if body.get("credential_digest") != "sha256:" + digest.hex():
        return Check(
            name, False, f"the credential is not the one issued as {doc.doc_id} (digest differs)"
        )
    if body.get("credential_id") != credential.get("id"):
        return Check(name, False, "the credential id differs from the issued one")
    return Check(name, True, f"issued as {doc.doc_id} on {entry.at} (ledger entry {doc.entry_idx})")


def status_check(causes: Sequence[repo.StatusCause], doc: Any) -> Check:
    where = f"status list {doc.status_list}, bit {doc.status_index}"
    if not causes:
        return Check("status", True, f"{where}: not set")
    why = "; ".join(_cause_text(c) for c in causes)
    return Check("status", False, f"{where}: set — {why}")


def _cause_text(c: repo.StatusCause) -> str:
    what = {
        "learner": "the document was revoked by its holder",
        "bank": "the document was revoked by the bank",
        "record": f"record {c.detail} was revoked",
        "basis": f"record {c.detail}, the basis of a grant, was revoked",
        "grant": f"a grant of decision {c.detail} was voided",
        "decision": f"decision {c.detail} was voided",
        "erased": "the learner's personal data was erased",
    }.get(c.what, c.what)
    return f"{what} on {c.at[:10]}: {c.reason}"


def revocations_of(causes: Sequence[repo.StatusCause]) -> list[Revocation]:
    return [Revocation(c.what, c.at, c.reason, c.entry_idx, c.detail) for c in causes]


def document_facts(doc: Any) -> DocumentFacts:
    return DocumentFacts(
        str(doc.doc_id),
        str(doc.kind),
        str(doc.issued_at),
        int(doc.entry_idx),
        int(doc.checkpoint_size),
        int(doc.status_list),
        int(doc.status_index),
    )


def storage_error(e: SQLAlchemyError) -> StorageError:
    return StorageError(f"verification cannot read the bank: {type(e).__name__}")


# -- uploads -------------------------------------------------------------------------------------
Upload = Literal["pdf", "json"]


def check_upload_size(size: int, *, slack: int = 0) -> None:
    """Refuse an upload of ``size`` bytes beyond :data:`MAX_UPLOAD_BYTES` (``slack``: what a
    request may add around the file, such as a multipart form's framing).

    Raises:
        TooLargeError: ``verify.too_large``.
    """
    if size > MAX_UPLOAD_BYTES + slack:
        raise TooLargeError(
            f"an upload may hold at most {MAX_UPLOAD_BYTES} bytes", code="verify.too_large"
        )


def upload_kind(data: bytes, media_type: str | None) -> Upload:
    """Whether an upload is a PDF or a credential JSON (by its bytes; the media type only
    breaks ties).

    Raises:
        TooLargeError: ``verify.too_large`` beyond :data:`MAX_UPLOAD_BYTES`.
        InvalidInputError: ``verify.unsupported`` for anything else (or an empty upload).
    """
    check_upload_size(len(data))
    if data.startswith(b"%PDF-"):
        return "pdf"
    head = data.lstrip()[:1]
    if head == b"{" or ((media_type or "").startswith("application/json") and head):
        return "json"
    raise InvalidInputError(
        "upload a signed PDF or a credential JSON (application/pdf or application/json)",
        code="verify.unsupported",
    )


def parse_credential(data: bytes) -> dict[str, Any]:
    """Parse a credential JSON object.

    Raises:
        InvalidInputError: ``verify.not_json`` if the bytes are not one UTF-8 JSON object.
    """
    try:
        value = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise InvalidInputError("the credential is not UTF-8 JSON", code="verify.not_json") from e
    if not isinstance(value, dict):
        raise InvalidInputError("the credential is not a JSON object", code="verify.not_json")
    return value


def credential_digest(credential: Mapping[str, Any]) -> bytes | None:
    """SHA-256 of the credential's RFC 8785 bytes (the form the bank stores), or None when it
    cannot be canonicalised (floats, huge integers: never one of ours)."""
    try:
        return hashlib.sha256(canonicalize(credential)).digest()
    except CreditBankError:
        return None


def code_of_credential(credential: Mapping[str, Any]) -> str | None:
    """The canonical code in a credential's ``verificationUrl`` (None if absent or bad)."""
    url = credential.get("verificationUrl")
    m = _CODE_IN_URL.search(url) if isinstance(url, str) else None
    if m is None:
        return None
    try:
        return normalize_code(m.group(1))
    except InvalidInputError:
        return None


def pdf_checks(report: Any) -> list[Check]:
    """``pdf.signature``, ``pdf.whole_file``, ``pdf.trusted`` from a
    :class:`creditbank.render.pdfsign.PdfSignatureReport`."""
    if report.signatures == 0:
        return [
            Check("pdf.signature", False, "the PDF is not signed"),
            Check("pdf.whole_file", False, "no signature covers the file"),
            Check("pdf.trusted", False, "no signing certificate"),
        ]
    sig_ok = bool(report.intact and report.valid)
    sig_detail = (
        f"signed by {report.signer_subject}"
        if sig_ok
        else "; ".join(p for p in report.problems if "digest" in p or "value" in p or "read" in p)
        or "the signature does not verify"
    )
    whole_ok = bool(report.whole_file and report.signatures == 1)
    whole_detail = (
        "nothing was added after signing"
        if whole_ok
        else (
            f"the PDF holds {report.signatures} signatures"
            if report.signatures != 1
            else "bytes were appended after signing (an incremental update)"
        )
    )
    trusted_detail = (
        "the certificate chains to the bank's document CA"
        if report.trusted
        else "the signing certificate does not chain to the bank's document CA"
    )
    return [
        Check("pdf.signature", sig_ok, sig_detail),
        Check("pdf.whole_file", whole_ok, whole_detail),
        Check("pdf.trusted", bool(report.trusted), trusted_detail),
    ]


def printed_codes(pdf: bytes) -> list[str]:
    """The verification codes printed on a PDF's pages (text extraction; slow, used only to
    explain a file that is not the one issued). Codes that do not parse are skipped."""
    import io

    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    found: list[str] = []
    try:
        reader = PdfReader(io.BytesIO(pdf), strict=False)
        for page in reader.pages[:2]:
            for text in _CODE_TEXT.findall(page.extract_text() or ""):
                try:
                    code = normalize_code(text)
                except InvalidInputError:
                    continue
                if code not in found:
                    found.append(code)
    except (PyPdfError, ValueError, KeyError, TypeError):
        return found
    return found


def read_upload(
    data: bytes,
    media_type: str | None,
    trust_roots: Callable[[], Sequence[bytes]],
    timer: PhaseTimer,
    checks: list[Check],
) -> tuple[Upload, dict[str, Any] | None]:
    """What an upload is and the credential it holds: a credential JSON as it is; for a PDF,
    its signature checks against ``trust_roots()`` and its attached credential are appended to
    ``checks`` (timed as ``pdf.signature`` and ``pdf.credential``), and the credential is
    None when the PDF carries none that reads (the ``pdf.credential`` check says why).

    Raises:
        InvalidInputError: ``verify.unsupported`` / ``verify.not_json`` / ``pdf.not_pdf``
            for an upload that is neither a readable PDF nor a JSON object.
        TooLargeError: ``verify.too_large`` / ``pdf.too_large`` when too large.
        ConfigurationError: as ``trust_roots`` raises.
    """
    kind = upload_kind(data, media_type)
    if kind != "pdf":
        return kind, parse_credential(data)
    from creditbank.render.pdfsign import extract_credential, inspect_pdf_signature

    with timer("pdf.signature"):
        checks.extend(pdf_checks(inspect_pdf_signature(data, list(trust_roots()))))
    with timer("pdf.credential"):
        try:
            credential = parse_credential(extract_credential(data))
        except (VerificationError, InvalidInputError) as e:
            checks.append(Check("pdf.credential", False, str(e)))
            return kind, None
        checks.append(Check("pdf.credential", True, "credential.json is attached"))
    return kind, credential
