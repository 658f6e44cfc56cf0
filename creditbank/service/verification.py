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
"""

from __future__ import annotations

import asyncio
import atexit
import hashlib
import hmac
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from sqlalchemy import select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from creditbank.core.canonical import canonicalize
from creditbank.core.checkpoint import Checkpoint, verify_checkpoint
from creditbank.core.codes import format_code, normalize_code
from creditbank.core.credentials.verify import Check, KeyDirectory, RegistryKeys, check_credential
from creditbank.core.entries import format_time, parse_entry, parse_time, verify_entry_signature
from creditbank.core.merkle import verify_consistency
from creditbank.core.signing import VerifierKey, parse_verifier_key
from creditbank.errors import (
    CreditBankError,
    InvalidInputError,
    NotFoundError,
    StorageError,
    TooLargeError,
)
from creditbank.service.bank import Bank
from creditbank.service.documents import ISSUED, sha256_text
from creditbank.service.issuance import issuer_did_document
from creditbank.service.share_codes import code_state, hash_code
from creditbank.storage import documents_repo as repo
from creditbank.storage import ledger_repo
from creditbank.storage.engine import UNAVAILABLE
from creditbank.storage.tables import documents_t
from creditbank.storage.verify_reads import (
    AsyncVerifyReads,
    VerifyReads,
    add_verification_counts,
)

_log = logging.getLogger(__name__)
#: what a driver-level read raises when the database is unavailable
_FAST_ERRORS: Final[tuple[type[Exception], ...]] = (SQLAlchemyError, *UNAVAILABLE)

Status = Literal["VALID", "REVOKED", "CODE_EXPIRED", "CODE_REVOKED", "NOT_FOUND", "INVALID"]
VALID: Final = "VALID"
REVOKED: Final = "REVOKED"
CODE_EXPIRED: Final = "CODE_EXPIRED"
CODE_REVOKED: Final = "CODE_REVOKED"
NOT_FOUND: Final = "NOT_FOUND"
INVALID: Final = "INVALID"
STATUSES: Final = (VALID, REVOKED, CODE_EXPIRED, CODE_REVOKED, NOT_FOUND, INVALID)

#: largest upload accepted (a PDF; a credential JSON is smaller)
MAX_UPLOAD_BYTES: Final = 20 * 1024 * 1024
#: documents whose immutable checks are remembered per process
MAX_CACHED: Final = 4096
#: seconds the live log's published size and the registry version are reused (the bank
#: publishes a checkpoint every ``checkpoint_interval / 2`` seconds when the log grew)
LIVE_TTL: Final = 1.0
#: seconds a verification count of the serving path waits in memory before it is written
COUNT_FLUSH_S: Final = 1.0
#: a printed verification code, as found in a PDF's text
_CODE_TEXT: Final = re.compile(r"\b[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}\b")
_CODE_IN_URL: Final = re.compile(r"/v/([0-9A-Za-z-]{16,24})$")


# -- the report ----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Revocation:
    """Why a document is revoked: what, when, why (and the entry that says so)."""

    what: str
    at: str
    reason: str
    entry_index: int | None
    detail: str | None

    def to_json(self) -> dict[str, Any]:
        """The API form."""
        return {
            "what": self.what,
            "at": self.at,
            "reason": self.reason,
            "entry_index": self.entry_index,
            "detail": self.detail,
        }


@dataclass(frozen=True, slots=True)
class DocumentFacts:
    """The verified document's public facts (no personal data)."""

    doc_id: str
    kind: str
    issued_at: str
    entry_index: int
    checkpoint_size: int
    status_list: int
    status_index: int

    def to_json(self) -> dict[str, Any]:
        """The API form."""
        return {
            "id": self.doc_id,
            "kind": self.kind,
            "issued_at": self.issued_at,
            "entry_index": self.entry_index,
            "checkpoint_size": self.checkpoint_size,
            "status_list": self.status_list,
            "status_index": self.status_index,
        }


@dataclass(frozen=True, slots=True)
class CodeFacts:
    """The verification code's state (never the code's owner, never the count)."""

    state: str
    expires_at: str
    revoked_at: str | None

    def to_json(self) -> dict[str, Any]:
        """The API form."""
        return {"state": self.state, "expires_at": self.expires_at, "revoked_at": self.revoked_at}


@dataclass(slots=True)
class VerificationReport:
    """The outcome of one verification.

    Attributes:
        verified: True only when the status is ``VALID``.
        status: the verdict.
        checks: every check performed, in order, each with a stable name.
        document: the document's facts, when one was found.
        credential: the credential's contents as the bank holds them, for display (None
            when the code is expired or revoked, or the learner's data was erased).
        revocations: every reason the document is revoked (empty unless ``REVOKED``).
        code: the code's state (verification by code only).
        live_size: the live log's published size the consistency checks used.
        timings: seconds spent per phase (``code``, ``pdf.signature``, ``pdf.credential``,
            ``document``, ``credential``, ``consistency``, ``status``); a phase answered from
            the cache takes (almost) no time.
    """

    verified: bool
    status: str
    checks: list[Check]
    document: DocumentFacts | None = None
    credential: dict[str, Any] | None = None
    revocations: list[Revocation] = field(default_factory=list)
    code: CodeFacts | None = None
    live_size: int | None = None
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def failed(self) -> list[str]:
        """The names of the failed checks."""
        return [c.name for c in self.checks if not c.ok]

    def check(self, name: str) -> Check:
        """The check called ``name``.

        Raises:
            KeyError: if no such check was performed.
        """
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(name)

    def to_json(self) -> dict[str, Any]:
        """The API and CLI form: the contract's three members, then the facts."""
        out: dict[str, Any] = {
            "verified": self.verified,
            "status": self.status,
            "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in self.checks],
        }
        out["document"] = None if self.document is None else self.document.to_json()
        out["revocations"] = [r.to_json() for r in self.revocations]
        out["code"] = None if self.code is None else self.code.to_json()
        out["live_size"] = self.live_size
        out["timings_ms"] = {k: round(v * 1000, 3) for k, v in self.timings.items()}
        return out


def verdict(checks: Sequence[Check], revoked: bool) -> str:
    """``INVALID`` if any check other than ``status`` failed, else ``REVOKED`` or ``VALID``."""
    if any(not c.ok and c.name != "status" for c in checks):
        return INVALID
    return REVOKED if revoked else VALID


def _report(
    checks: list[Check], status: str, timings: dict[str, float], **facts: Any
) -> VerificationReport:
    return VerificationReport(status == VALID, status, checks, timings=timings, **facts)


class PhaseTimer:
    """Adds the time spent in each ``with timer("phase")`` block to ``timings``."""

    def __init__(self) -> None:
        self.timings: dict[str, float] = {}

    @contextmanager
    def __call__(self, phase: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings[phase] = self.timings.get(phase, 0.0) + time.perf_counter() - start


# -- labels (zh/en) for the pages ----------------------------------------------------------------
_LABELS: Final[dict[str, tuple[str, str]]] = {
    "code": ("验证码有效", "The verification code is valid"),
    "document.issued": (
        "本行签发过这份凭证（账本中的签发记录）",
        "The bank issued this credential (its issuance entry in the log)",
    ),
    "document.pdf": ("PDF 文件即本行签发的文件", "The PDF is the file the bank issued"),
    "pdf.signature": ("PDF 数字签名完好", "The PDF's digital signature is intact"),
    "pdf.whole_file": ("签名覆盖整个文件", "The signature covers the whole file"),
    "pdf.trusted": ("签名证书可信（本行文件签名证书）", "The signing certificate is the bank's"),
    "pdf.credential": ("PDF 附带可验证凭证", "The PDF carries its verifiable credential"),
    "pdf.verification_code": (
        "PDF 上印的验证码属于本文件",
        "The code printed on the PDF belongs to this document",
    ),
    "credential.issuer": ("签发者为本行", "The issuer is the bank"),
    "credential.proof": ("本行对凭证的签名", "The bank's proof on the credential"),
    "credential.validity": ("凭证在有效期内", "The credential is within its validity period"),
    "status": ("未被撤销（状态列表）", "Not revoked (status list)"),
    "keys.registry": ("机构密钥登记表", "The institution key registry"),
}
_ROLE_LABELS: Final[dict[str, tuple[str, str]]] = {
    "record": ("记录", "Record"),
    "conversion": ("学分转换决定", "Conversion decision"),
    "revocation": ("撤销记录", "Revocation"),
    "void": ("作废记录", "Void"),
    "entry": ("账本记录", "Ledger entry"),
    "evidence": ("证据", "Evidence"),
    "checkpoint": ("检查点", "Checkpoint"),
}
_PART_LABELS: Final[dict[str, tuple[str, str]]] = {
    "institution_signature": ("机构签名", "the institution's signature"),
    "bank_signature": ("本行签名", "the bank's signature"),
    "inclusion": ("包含于公开日志", "included in the public log"),
    "name_commitment": ("姓名承诺", "the name commitment"),
    "facts": ("所示内容与签名一致", "what is shown is what was signed"),
    "signature": ("日志签名", "signed by the log"),
    "consistency": ("与当前日志一致", "consistent with the live log"),
    "format": ("格式", "format"),
}
_INDEXED: Final = re.compile(r"^([a-z]+)\[([^\]]*)\]\.([a-z_]+)$")


def check_label(name: str, lang: str) -> str:
    """A human label of a check name, in ``zh`` or ``en`` (the name itself if unknown)."""
    pick = 0 if lang == "zh" else 1
    if name in _LABELS:
        return _LABELS[name][pick]
    m = _INDEXED.match(name)
    if m is None:
        return name
    role, idx, part = m.groups()
    role_label = _ROLE_LABELS.get(role, (role, role))[pick]
    part_label = _PART_LABELS.get(part, (part, part))[pick]
    if role == "checkpoint":
        return (
            f"检查点（大小 {idx}）：{part_label}"
            if pick == 0
            else (f"Checkpoint of size {idx}: {part_label}")
        )
    return (
        f"{role_label} #{idx}：{part_label}" if pick == 0 else f"{role_label} #{idx}: {part_label}"
    )


# -- immutable checks ----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Static:
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


def _issued_check(
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


def _status_check(causes: Sequence[repo.StatusCause], doc: Any) -> Check:
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


def _revocations(causes: Sequence[repo.StatusCause]) -> list[Revocation]:
    return [Revocation(c.what, c.at, c.reason, c.entry_idx, c.detail) for c in causes]


def _facts(doc: Any) -> DocumentFacts:
    return DocumentFacts(
        str(doc.doc_id),
        str(doc.kind),
        str(doc.issued_at),
        int(doc.entry_idx),
        int(doc.checkpoint_size),
        int(doc.status_list),
        int(doc.status_index),
    )


def _wrap(e: SQLAlchemyError) -> StorageError:
    return StorageError(f"verification cannot read the bank: {type(e).__name__}")


# -- uploads -------------------------------------------------------------------------------------
Upload = Literal["pdf", "json"]


def upload_kind(data: bytes, media_type: str | None) -> Upload:
    """Whether an upload is a PDF or a credential JSON (by its bytes; the media type only
    breaks ties).

    Raises:
        TooLargeError: ``verify.too_large`` beyond :data:`MAX_UPLOAD_BYTES`.
        InvalidInputError: ``verify.unsupported`` for anything else (or an empty upload).
    """
    if len(data) > MAX_UPLOAD_BYTES:
        raise TooLargeError(
            f"an upload may hold at most {MAX_UPLOAD_BYTES} bytes", code="verify.too_large"
        )
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


# -- verification counts, batched ---------------------------------------------------------------
class CountBuffer:
    """Verification counts kept in memory and written together (thread-safe).

    Each :meth:`add` is one verification of a code at a time; a daemon thread (started on
    the first add) writes what accumulated every ``interval`` seconds in one transaction
    (``verify_count + n``, ``last_verified_at`` the latest). :meth:`flush` writes now;
    :meth:`close` (the app's shutdown, and the process's exit) stops the thread and writes the
    rest. A failed write keeps its counts for the next one; a crash of the process loses at
    most ``interval`` seconds of counts (never a verdict: the verdict is read per request).

    Args:
        bank: the bank whose share codes are counted.
        interval: seconds between writes.
    """

    def __init__(self, bank: Bank, *, interval: float = COUNT_FLUSH_S) -> None:
        self.bank = bank
        self.interval = interval
        self._pending: dict[bytes, tuple[int, str]] = {}
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._thread: tuple[threading.Thread, threading.Event] | None = None
        self._at_exit_registered = False

    def add(self, code_hash: bytes, at: str) -> None:
        """Count one verification of the code ``code_hash`` at ``at`` (written later)."""
        with self._lock:
            n, last = self._pending.get(code_hash, (0, at))
            self._pending[code_hash] = (n + 1, max(last, at))
            started = None
            if self._thread is None:  # the first add, or the first since close()
                stop = threading.Event()
                thread = threading.Thread(
                    target=self._run, args=(stop,), name="creditbank-verify-counts", daemon=True
                )
                started = self._thread = (thread, stop)
                register, self._at_exit_registered = not self._at_exit_registered, True
        if started is not None:
            if register:
                atexit.register(self._at_exit)
            started[0].start()

    def pending(self) -> int:
        """Verifications counted in memory and not written yet."""
        with self._lock:
            return sum(n for n, _ in self._pending.values())

    def flush(self) -> int:
        """Write the counts now; returns how many verifications were written.

        Raises:
            StorageError: if the database refused (the counts are kept for the next write).
        """
        with self._write_lock:
            with self._lock:
                batch, self._pending = self._pending, {}
            if not batch:
                return 0
            try:
                with self.bank.engine.begin() as conn:
                    add_verification_counts(conn, batch)
            except SQLAlchemyError as e:
                with self._lock:  # put them back, merged with what came meanwhile
                    for h, (n, at) in batch.items():
                        m, last = self._pending.get(h, (0, at))
                        self._pending[h] = (n + m, max(last, at))
                raise _wrap(e) from e
            return sum(n for n, _ in batch.values())

    def _run(self, stop: threading.Event) -> None:
        while not stop.wait(self.interval):
            try:
                self.flush()
            except StorageError:  # kept for the next round; the database may be back by then
                _log.warning("verification counts not written yet", exc_info=True)

    def close(self) -> None:
        """Stop the writer thread and write what is left (a later :meth:`add` starts a new
        writer: one verifier serves every app over the same bank).

        Raises:
            StorageError: if the last write failed (the counts stay pending).
        """
        with self._lock:
            running, self._thread = self._thread, None
        if running is not None:
            thread, stop = running
            stop.set()
            if thread is not threading.current_thread():
                thread.join(timeout=10)
        self.flush()

    def _at_exit(self) -> None:
        try:
            self.close()
        except Exception:  # the database may be gone at exit; nothing more can be done
            _log.warning("verification counts lost at exit", exc_info=True)


# -- the verifier --------------------------------------------------------------------------------
class Verifier:
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
        self._static: dict[tuple[str, int], _Static] = {}
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
                raise _wrap(e) from e
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

    def _static_of(self, doc: Any, stored: bytes | None = None) -> _Static | None:
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
    ) -> _Static | None:
        start = time.perf_counter()
        try:
            with self.bank.engine.connect() as conn:  # one connection at a time, never nested
                data = stored if stored is not None else repo.get_credential(conn, str(doc.doc_id))
                row = None
                if data is not None:
                    row = ledger_repo.get_entry(conn, int(doc.entry_idx))
        except SQLAlchemyError as e:
            raise _wrap(e) from e
        if data is None:
            return None
        credential = parse_credential(data)
        digest = hashlib.sha256(data).digest()
        issued = _issued_check(
            None if row is None else bytes(row.data), doc, credential, digest, keys
        )
        checks = check_credential(
            credential, did_document=self.did_document, keys=keys, log_key=self._log_key
        )
        static = _Static(
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
            raise _wrap(e) from e
        return doc, causes

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
            code = normalize_code(text)
            wanted = hash_code(code)
            now = self.bank.clock.now()
            try:
                with self.bank.engine.begin() as conn:
                    row = repo.share_code_by_hash(conn, wanted)
                    found = row is not None and hmac.compare_digest(bytes(row.code_hash), wanted)
                    state = code_state(row, now) if found else None
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
                raise _wrap(e) from e
        return self._code_report(code, row if found else None, state, doc, causes, timer)

    def _code_report(
        self,
        code: str,
        row: Any,
        state: str | None,
        doc: Any,
        causes: list[repo.StatusCause],
        timer: PhaseTimer,
    ) -> VerificationReport:
        """The report of a looked-up code (``row`` None: no such code)."""
        if row is None:
            return _report(
                [Check("code", False, "no such verification code")], NOT_FOUND, timer.timings
            )
        facts = CodeFacts(str(state), str(row.expires_at), row.revoked_at)
        if state == "revoked":
            check = Check("code", False, f"the holder revoked this code on {row.revoked_at}")
            return _report([check], CODE_REVOKED, timer.timings, code=facts)
        if state == "expired":
            check = Check("code", False, f"this code expired on {row.expires_at}")
            return _report([check], CODE_EXPIRED, timer.timings, code=facts)
        checks = [Check("code", True, f"{format_code(code)} is valid until {row.expires_at}")]
        if doc is None:  # a code names a document that the projection lost: not ours to show
            checks.append(Check("document.issued", False, "the code names no stored document"))
            return _report(checks, INVALID, timer.timings, code=facts)
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
            code = normalize_code(text)
            wanted = hash_code(code)
            now = self.bank.clock.now()
            try:
                row = reads.share_code(wanted)
                found = row is not None and hmac.compare_digest(row.code_hash, wanted)
                state = code_state(row, now) if found else None
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
        return self._code_report(code, row if found else None, state, doc, causes, timer)

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
            code = normalize_code(text)
            wanted = hash_code(code)
            now = self.bank.clock.now()
            try:
                row, causes = await areads.code_and_causes(wanted)
            except _FAST_ERRORS as e:
                raise StorageError(f"the bank's database is unavailable: {e}") from e
            found = row is not None and hmac.compare_digest(row.code_hash, wanted)
            state = code_state(row, now) if found else None
            if state == "valid" and row is not None:
                doc = self._docs.get(row.doc_id)
                if doc is None or not self._is_warm(doc):
                    return None
        if state == "valid":
            self.counts.add(wanted, format_time(now))
        return self._code_report(
            code, row if found else None, state, doc, causes if doc is not None else [], timer
        )

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

    def close(self) -> None:
        """Write the buffered verification counts and close the driver connections.

        Raises:
            StorageError: if the counts cannot be written (they are kept for a retry).
        """
        self.counts.close()
        if self._reads is not None:
            self._reads.close()

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

    # -- by upload -----------------------------------------------------------------------------
    def by_upload(self, data: bytes, media_type: str | None = None) -> VerificationReport:
        """Verify an uploaded PDF or credential JSON (nothing is written, nothing counted).

        Raises:
            InvalidInputError: ``verify.unsupported`` / ``verify.not_json`` / ``pdf.not_pdf``
                for an upload that is neither a readable PDF nor a JSON object;
                ``verify.too_large`` / ``pdf.too_large`` when too large.
            StorageError: if the database is unavailable.
            ConfigurationError: if the document CA cannot be read.
        """
        from creditbank.errors import VerificationError
        from creditbank.render.pdfsign import extract_credential, inspect_pdf_signature

        timer = PhaseTimer()
        kind = upload_kind(data, media_type)
        checks: list[Check] = []
        if kind == "pdf":
            with timer("pdf.signature"):
                checks.extend(pdf_checks(inspect_pdf_signature(data, self.trust_roots())))
            with timer("pdf.credential"):
                try:
                    raw = extract_credential(data)
                    credential = parse_credential(raw)
                except (VerificationError, InvalidInputError) as e:
                    checks.append(Check("pdf.credential", False, str(e)))
                    return _report(checks, INVALID, timer.timings)
                checks.append(Check("pdf.credential", True, "credential.json is attached"))
        else:
            credential = parse_credential(data)
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
            return _report(checks, INVALID, timer.timings, live_size=live_size)
        upload: _Uploaded = _Uploaded(credential, digest, data if kind == "pdf" else None)
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
            raise _wrap(e) from e

    # -- the document's checks -----------------------------------------------------------------
    def _document(
        self,
        doc: Any,
        causes: list[repo.StatusCause],
        checks: list[Check],
        timer: PhaseTimer,
        *,
        upload: _Uploaded | None,
    ) -> VerificationReport:
        facts = _facts(doc)
        revoked = bool(causes)
        erased = any(c.what == "erased" for c in causes)
        with timer("credential"):
            static = None if erased else self._static_of(doc)
        if static is None:  # the stored bytes are gone with the learner's personal data
            checks.append(
                Check("document.issued", True, f"issued as {doc.doc_id} (contents erased)")
            )
            checks.append(_status_check(causes, doc))
            return _report(
                checks,
                verdict(checks, True),
                timer.timings,
                document=facts,
                revocations=_revocations(causes),
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
            checks.append(_status_check(causes, doc))
        status = verdict(checks, revoked)
        return _report(
            checks,
            status,
            timer.timings,
            document=facts,
            credential=shown,
            revocations=_revocations(causes),
            live_size=live_size,
        )

    def _upload_checks(
        self, upload: _Uploaded, doc: Any, static: _Static, checks: list[Check], timer: PhaseTimer
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
            raise _wrap(e) from e
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


@dataclass(frozen=True, slots=True)
class _Uploaded:
    credential: dict[str, Any]
    digest: bytes | None
    pdf: bytes | None


_VERIFIERS: dict[int, Verifier] = {}
_VERIFIERS_LOCK = threading.Lock()


def verifier_for(bank: Bank, *, live_size: Callable[[], int] | None = None) -> Verifier:
    """The process's :class:`Verifier` of ``bank`` (one per open bank, made on first use)."""
    with _VERIFIERS_LOCK:
        got = _VERIFIERS.get(id(bank))
        if got is None or got.bank is not bank:
            got = _VERIFIERS[id(bank)] = Verifier(bank, live_size=live_size)
        return got
