"""The verification report: its model (one for the API, the pages and the CLI), the
verdict, the phase timer, and the zh/en labels of the check names (docs/verification.md).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from creditbank.core.credentials.verify import Check

Status = Literal["VALID", "REVOKED", "CODE_EXPIRED", "CODE_REVOKED", "NOT_FOUND", "INVALID"]
VALID: Final = "VALID"
REVOKED: Final = "REVOKED"
CODE_EXPIRED: Final = "CODE_EXPIRED"
CODE_REVOKED: Final = "CODE_REVOKED"
NOT_FOUND: Final = "NOT_FOUND"
INVALID: Final = "INVALID"
STATUSES: Final = (VALID, REVOKED, CODE_EXPIRED, CODE_REVOKED, NOT_FOUND, INVALID)


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


def make_report(
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
