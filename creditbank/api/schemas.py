"""Request and response models of the HTTP API (pydantic only; no logic).

Writers are strict (``extra="forbid"``). Request bodies that carry signed entries are parsed
by the routes themselves (strict JSON), so their models here serve the OpenAPI document.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

# -- records ----------------------------------------------------------------------------------


class RecordsCreate(BaseModel):
    """``POST /api/v1/records``: signed ledger entries, and optionally the plain name on record
    of each (kept in the personal-data tables, never in the log)."""

    model_config = ConfigDict(extra="forbid")

    entries: list[dict[str, Any]] = Field(
        description="signed entry objects {v, type, issuer, key_id, at, body, sig}; "
        "record.posted, record.corrected or record.revoked",
        min_length=1,
        max_length=1000,
    )
    names: list[str | None] | None = Field(
        default=None,
        description="the name on record for each entry (null where none); must open the "
        "entry's name_commitment with the learner's salt",
    )


class RecordResult(BaseModel):
    """Where one posted entry sits in the log."""

    index: int = Field(description="ledger index (the original one for a re-post)")
    leaf_hash: str = Field(description="base64 RFC 6962 leaf hash of the entry bytes")
    duplicate: bool = Field(description="true if this entry (or record) was already in the log")


class RecordsPosted(BaseModel):
    results: list[RecordResult]


class RecordPublic(BaseModel):
    """One record version (a record.posted or record.corrected entry) as the owner sees it."""

    index: int
    type: Literal["record.posted", "record.corrected"]
    record_id: str
    owner: str = Field(description="the institution the record belongs to")
    posted_by: str = Field(description="the signer (the owner, or its custodian)")
    learner: str
    kind: str
    dedup_key: str
    corrects: str | None
    chain_root: str = Field(description="record_id of the first version of the chain")
    achieved_on: str
    posted_at: str
    chain_revoked: bool


class RecordPage(BaseModel):
    records: list[RecordPublic]
    next_after: int | None = Field(
        description="pass as ?after= for the next page; null on the last page"
    )


class ChainPublic(BaseModel):
    """One correction chain of a learner's record with its current state."""

    owner: str
    record_id: str = Field(description="the chain's first record_id")
    root_index: int
    current_record_id: str
    current_index: int = Field(description="ledger index of the current version")
    versions: list[int] = Field(description="ledger indexes of every version, in log order")
    kind: str
    dedup_key: str
    revoked: bool
    revoked_on: str | None
    revocation_reason: str | None
    duplicate_of: str | None = Field(
        description="<owner>/<record_id> of the canonical chain with the same dedup_key"
    )
    state: Literal["current", "corrected", "revoked", "duplicate", "expired"] = Field(
        description="the chain's state as the worker portal shows it"
    )
    institution: dict[str, Any] = Field(
        description="the owning institution: id, name_zh, name_en, closed_on, custodian"
    )
    content: dict[str, Any] = Field(
        description="the current version's content: kind, title_zh/en, subtitle_zh/en, "
        "achieved_on, posted_at, credits, hours and the kind's payload fields (grade, term, "
        "level, certificate_no, issued_on, expires_on, ...)"
    )


class LearnerRecords(BaseModel):
    learner_id: str
    chains: list[ChainPublic]


# -- learners ---------------------------------------------------------------------------------


class LearnerResolve(BaseModel):
    """``POST /api/v1/learners/resolve``: an identity document and the learner's name."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: str = Field(min_length=1, max_length=200)
    id_type: Literal["resident_id", "foreign_permanent_resident_id", "passport"]
    id_number: str = Field(min_length=1, max_length=64)
    nationality: str | None = Field(
        default=None, max_length=3, description="ISO 3166-1 alpha-3; required for passports"
    )


class LearnerResolved(BaseModel):
    learner_id: str = Field(description="the bank's opaque learner id (goes into records)")
    salt: str = Field(description="base64 of the learner's 16-byte name-commitment salt")
    created: bool = Field(description="true if the learner was created by this call")


class LearnerResolveBatch(BaseModel):
    """``POST /api/v1/learners/resolve-batch``: up to 1,000 identity documents and names."""

    model_config = ConfigDict(extra="forbid", strict=True)

    learners: list[LearnerResolve] = Field(min_length=1, max_length=1000)


class LearnerResolveItemError(BaseModel):
    code: str = Field(description="stable code, e.g. identity.checksum")
    detail: str


class LearnerResolveFailed(BaseModel):
    error: LearnerResolveItemError


class LearnerResolvedBatch(BaseModel):
    """One result per requested learner, in request order: the learner or the item's error."""

    results: list[LearnerResolved | LearnerResolveFailed]


# -- conversions ------------------------------------------------------------------------------


class ApplicationCreate(BaseModel):
    """``POST /api/v1/me/applications``: a credit conversion into a degree programme, or an
    exam exemption for a certificate type (exactly one of the two)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    program_id: str | None = Field(default=None, min_length=1, max_length=64)
    certificate_type_id: str | None = Field(default=None, min_length=1, max_length=64)


class SourceRecord(BaseModel):
    """A record a grant consumed (or an exemption's basis): its effective version and root."""

    record_id: str = Field(description="the effective version's record id at the decision date")
    owner: str = Field(description="the institution the record belongs to")
    entry_index: int = Field(description="ledger index of the effective version")
    root_record_id: str = Field(description="record id of the chain root")
    root_entry_index: int = Field(description="ledger index of the chain root")


class GrantOut(BaseModel):
    grant_no: int = Field(description="position in the decision (0-based)")
    rule_key: str
    rule_version: int
    mode: str
    target_course_id: str | None
    credits: int | float = Field(description="granted credits")
    nominal_credits: int | float = Field(description="what the rule gives before caps")
    bound_by: str | None = Field(description="the cap that cut the grant, if any")
    hours_used: int | float | None
    raw_credits: int | float | None
    sources: list[SourceRecord]
    status: Literal["active", "voided"]
    voided_at: str | None
    void_entry_index: int | None = Field(description="ledger index of the conversion.voided entry")
    explanation_zh: str
    explanation_en: str


class RuleNoteOut(BaseModel):
    rule_key: str
    rule_version: int
    mode: str
    reason: str = Field(description="granted, or why the rule granted nothing (stable code)")
    bound_by: str | None
    records: list[str]
    explanation_zh: str
    explanation_en: str


class RecordNoteOut(BaseModel):
    record: str
    version: str | None
    issue: str
    related: str | None
    explanation_zh: str
    explanation_en: str


class ExamOut(BaseModel):
    certificate_type_id: str
    granted: bool
    exam_part: str | None
    rule_key: str | None
    rule_version: int | None
    basis: SourceRecord | None


class ApplicationOut(BaseModel):
    """A decided application (or a what-if preview, ``recorded`` false) with explanations."""

    application_id: str
    learner_id: str
    type: Literal["credit_conversion", "exam_exemption"]
    program_id: str | None
    certificate_type_id: str | None
    applied_on: str = Field(description="the decision date")
    recorded: bool = Field(description="false for a what-if preview")
    entry_index: int | None = Field(description="ledger index of the conversion.decided entry")
    decided_at: str | None = Field(description="ledger time of the decision entry")
    rules_entry: int = Field(description="ledger index of the rules.published entry used")
    reason: str
    credits_granted: int | float
    explanation_zh: str
    explanation_en: str
    grants: list[GrantOut]
    rule_notes: list[RuleNoteOut]
    record_notes: list[RecordNoteOut]
    exam: ExamOut | None


class ApplicationList(BaseModel):
    applications: list[ApplicationOut]


# -- documents (transcripts, certificates, share codes) ---------------------------------------
class TranscriptCreate(BaseModel):
    """``POST /api/v1/me/transcripts``: all records (no body, or ``records`` absent) or the
    chosen ones, by ledger index (any version of a record chooses it)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    records: list[int] | None = Field(default=None, min_length=1, max_length=500)


class CertificateCreate(BaseModel):
    """``POST /api/v1/me/certificates``: one record or one decision, by ledger index."""

    model_config = ConfigDict(extra="forbid", strict=True)

    record: int | None = Field(default=None, ge=0)
    decision: int | None = Field(default=None, ge=0)


class DocumentRevoke(BaseModel):
    """Why a document is withdrawn (recorded in the ``transcript.revoked`` entry)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    reason: str = Field(min_length=1, max_length=500)


class ShareCodeCreate(BaseModel):
    """Another share code for one of the learner's documents (``days``: default 180)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    document_id: str = Field(pattern=r"^DOC-[0-9A-HJKMNP-TV-Z]{26}$")
    days: int | None = Field(default=None, ge=1, le=1830)


class ShareCodeExtend(BaseModel):
    """Push a share code's expiry ``days`` further (from now, or from its expiry if later)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    days: int = Field(ge=1, le=1830)


class IssuedOut(BaseModel):
    """An issued document; ``verification_code`` is shown here once and never again."""

    document_id: str
    kind: Literal["transcript", "certificate"]
    learner_id: str
    entry_index: int = Field(description="ledger index of the transcript.issued entry")
    status_list: int
    status_index: int
    verification_code: str = Field(description="XXXX-XXXX-XXXX-XXXX, printed on the PDF")
    verification_url: str
    code_id: str
    code_expires_at: str
    issued_at: str
    pdf_sha256: str
    credential_sha256: str
    pdf_url: str
    json_url: str


class StatusCauseOut(BaseModel):
    what: str = Field(description="learner | bank | record | basis | grant | decision | erased")
    at: str
    reason: str
    entry_index: int | None
    detail: str | None


class DocumentOut(BaseModel):
    document_id: str
    kind: Literal["transcript", "certificate"]
    learner_id: str
    entry_index: int
    issued_at: str
    items: int
    checkpoint_size: int
    status_list: int
    status_index: int
    pdf_sha256: str
    credential_sha256: str
    status: Literal["valid", "revoked"]
    revoked: list[StatusCauseOut]


class DocumentList(BaseModel):
    documents: list[DocumentOut]


class ShareCodeOut(BaseModel):
    """A share code as its learner sees it (never the code itself, except once on creation)."""

    code_id: str
    document_id: str
    on_document: bool
    created_at: str
    expires_at: str
    revoked_at: str | None
    state: Literal["valid", "expired", "revoked"]
    verifications: int
    last_verified_at: str | None
    document_kind: str | None = None
    code: str | None = Field(default=None, description="only in the answer that created it")


class ShareCodeList(BaseModel):
    share_codes: list[ShareCodeOut]
