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
