"""The only ``table=True`` classes. Ledger tables are append-only (triggers in migrations)."""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, Index, Integer, LargeBinary, String, Text
from sqlmodel import Field, SQLModel

#: Tables whose rows are never updated or deleted (enforced by triggers on both engines).
LEDGER_TABLES = ("log_entries", "log_nodes", "log_checkpoints")


class LogEntry(SQLModel, table=True):
    """One ledger entry: its exact canonical bytes and a few indexed envelope fields."""

    __tablename__ = "log_entries"
    __table_args__ = (
        Index("ix_log_entries_leaf_hash", "leaf_hash", unique=True),
        Index("ix_log_entries_issuer_type", "issuer", "type"),
        Index("ix_log_entries_type", "type"),
        Index("ix_log_entries_subject", "subject"),
    )

    idx: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    data: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    leaf_hash: bytes = Field(sa_column=Column(LargeBinary(32), nullable=False))
    type: str = Field(sa_column=Column(String(64), nullable=False))
    issuer: str = Field(sa_column=Column(String(64), nullable=False))
    key_id: str = Field(sa_column=Column(String(32), nullable=False))
    at: str = Field(sa_column=Column(String(40), nullable=False))
    #: the learner or other subject an entry is about (who may read it); null if public
    subject: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))
    ingested_at: str = Field(sa_column=Column(String(40), nullable=False))


class LogNode(SQLModel, table=True):
    """The hash of one complete Merkle subtree; ``id = level << 48 | index``."""

    __tablename__ = "log_nodes"

    id: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    hash: bytes = Field(sa_column=Column(LargeBinary(32), nullable=False))


class LogCheckpoint(SQLModel, table=True):
    """A signed checkpoint (C2SP signed note), one per published tree size."""

    __tablename__ = "log_checkpoints"

    size: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    root: bytes = Field(sa_column=Column(LargeBinary(32), nullable=False))
    note: str = Field(sa_column=Column(Text, nullable=False))
    published_at: str = Field(sa_column=Column(String(40), nullable=False))
    #: the size of the checkpoint published before this one (null for the first): a chain, so
    #: a deleted checkpoint between two kept ones is noticed (migration 0007, ADR 0007)
    prev_size: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))


class LogHead(SQLModel, table=True):
    """The single sequencing row: the current tree size and root. Locked for every append."""

    __tablename__ = "log_head"

    id: int = Field(sa_column=Column(Integer, primary_key=True, autoincrement=False))
    size: int = Field(sa_column=Column(BigInteger, nullable=False))
    root: bytes = Field(sa_column=Column(LargeBinary(32), nullable=False))
    registry_count: int = Field(sa_column=Column(BigInteger, nullable=False))
    updated_at: str = Field(sa_column=Column(String(40), nullable=False))
    #: the size of the latest published checkpoint (0: none yet); migration 0007
    published_size: int = Field(
        default=0, sa_column=Column(BigInteger, nullable=False, server_default="0")
    )


entries_t = LogEntry.__table__  # type: ignore[attr-defined]  # SQLModel sets it at runtime
nodes_t = LogNode.__table__  # type: ignore[attr-defined]
checkpoints_t = LogCheckpoint.__table__  # type: ignore[attr-defined]
head_t = LogHead.__table__  # type: ignore[attr-defined]


class ApiToken(SQLModel, table=True):
    """A bearer token (auditor now; institutions later), stored only as its SHA-256 digest.

    Not a ledger table: a token may be revoked (``revoked_at`` set) or deleted.
    """

    __tablename__ = "api_tokens"
    __table_args__ = (Index("ix_api_tokens_role_subject", "role", "subject"),)

    digest: bytes = Field(sa_column=Column(LargeBinary(32), primary_key=True))
    role: str = Field(sa_column=Column(String(32), nullable=False))
    #: whom the token speaks for (an institution id), null for auditors
    subject: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))
    label: str | None = Field(default=None, sa_column=Column(String(200), nullable=True))
    created_at: str = Field(sa_column=Column(String(40), nullable=False))
    revoked_at: str | None = Field(default=None, sa_column=Column(String(40), nullable=True))


tokens_t = ApiToken.__table__  # type: ignore[attr-defined]


class Learner(SQLModel, table=True):
    """Personal data of one learner (outside the log; erasable)."""

    __tablename__ = "learners"

    learner_id: str = Field(sa_column=Column(String(40), primary_key=True))
    lookup_key: str | None = Field(default=None, sa_column=Column(String(64), unique=True))
    salt: bytes | None = Field(default=None, sa_column=Column(LargeBinary(16), nullable=True))
    name: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    name_latin: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    external_ref: str | None = Field(default=None, sa_column=Column(String(64), index=True))
    created_at: str = Field(sa_column=Column(String(40), nullable=False))
    erased_at: str | None = Field(default=None, sa_column=Column(String(40), nullable=True))


class RecordName(SQLModel, table=True):
    """The name as the institution wrote it, kept beside its entry (erasable)."""

    __tablename__ = "record_names"

    entry_idx: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    learner_id: str = Field(sa_column=Column(String(40), nullable=False, index=True))
    name_on_record: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


class RecordRow(SQLModel, table=True):
    """Projection of record.posted / record.corrected entries (append-only)."""

    __tablename__ = "records"

    entry_idx: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    owner: str = Field(sa_column=Column(String(64), nullable=False))
    posted_by: str = Field(sa_column=Column(String(64), nullable=False))
    record_id: str = Field(sa_column=Column(String(128), nullable=False))
    entry_type: str = Field(sa_column=Column(String(32), nullable=False))
    learner_id: str = Field(sa_column=Column(String(40), nullable=False))
    kind: str = Field(sa_column=Column(String(32), nullable=False))
    dedup_key: str = Field(sa_column=Column(String(256), nullable=False))
    corrects: str | None = Field(default=None, sa_column=Column(String(128), nullable=True))
    chain_root: str = Field(sa_column=Column(String(128), nullable=False))
    achieved_on: str = Field(sa_column=Column(String(10), nullable=False))
    posted_at: str = Field(sa_column=Column(String(10), nullable=False))
    digest: bytes = Field(sa_column=Column(LargeBinary(32), nullable=False))


class RecordRevocation(SQLModel, table=True):
    """Projection of record.revoked entries (append-only), keyed by chain root."""

    __tablename__ = "record_revocations"

    entry_idx: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    owner: str = Field(sa_column=Column(String(64), nullable=False))
    record_id: str = Field(sa_column=Column(String(128), nullable=False))
    reason: str = Field(sa_column=Column(Text, nullable=False))
    effective_on: str = Field(sa_column=Column(String(10), nullable=False))
    digest: bytes = Field(sa_column=Column(LargeBinary(32), nullable=False))


learners_t = Learner.__table__  # type: ignore[attr-defined]
record_names_t = RecordName.__table__  # type: ignore[attr-defined]
records_t = RecordRow.__table__  # type: ignore[attr-defined]
revocations_t = RecordRevocation.__table__  # type: ignore[attr-defined]


class DatasetRef(SQLModel, table=True):
    """What an imported dataset's own ids became (``creditbank import``), outside the log.

    ``kind`` is ``learner`` (``ref`` = the dataset's learner id → ``learner_id``), ``record``
    (an outcome id → the record entry ``owner``/``record_id`` at ``entry_idx``) or
    ``revocation`` (an outcome id → its ``record.revoked`` entry). No personal data.
    """

    __tablename__ = "dataset_refs"
    __table_args__ = (Index("ix_dataset_refs_learner", "learner_id"),)

    dataset: str = Field(sa_column=Column(String(64), primary_key=True))
    kind: str = Field(sa_column=Column(String(16), primary_key=True))
    ref: str = Field(sa_column=Column(String(128), primary_key=True))
    learner_id: str = Field(sa_column=Column(String(40), nullable=False))
    owner: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))
    record_id: str | None = Field(default=None, sa_column=Column(String(128), nullable=True))
    entry_idx: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    created_at: str = Field(sa_column=Column(String(40), nullable=False))


dataset_refs_t = DatasetRef.__table__  # type: ignore[attr-defined]


# -- conversions (projections of rules.published / conversion.* entries; append-only) ---------
class RulePublication(SQLModel, table=True):
    """Projection of ``rules.published`` entries: one row per publication (append-only)."""

    __tablename__ = "rule_publications"

    entry_idx: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    #: SHA-256 of the canonical body (an identical re-publication is recognised by it)
    digest: bytes = Field(sa_column=Column(LargeBinary(32), nullable=False))
    rule_count: int = Field(sa_column=Column(Integer, nullable=False))
    published_at: str = Field(sa_column=Column(String(40), nullable=False))


class ConversionDecision(SQLModel, table=True):
    """Projection of ``conversion.decided`` entries: one row per application (append-only)."""

    __tablename__ = "conversion_decisions"
    __table_args__ = (
        Index("ux_conversion_decisions_application", "application_id", unique=True),
        Index("ix_conversion_decisions_learner", "learner_id"),
    )

    entry_idx: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    application_id: str = Field(sa_column=Column(String(64), nullable=False))
    learner_id: str = Field(sa_column=Column(String(40), nullable=False))
    app_type: str = Field(sa_column=Column(String(32), nullable=False))
    program_id: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))
    certificate_type_id: str | None = Field(
        default=None, sa_column=Column(String(64), nullable=True)
    )
    #: the decision date D (the application date), not the ledger time
    applied_on: str = Field(sa_column=Column(String(10), nullable=False))
    #: index of the rules.published entry the decision used
    rules_idx: int = Field(sa_column=Column(BigInteger, nullable=False))
    credits_centi: int = Field(sa_column=Column(BigInteger, nullable=False))
    grant_count: int = Field(sa_column=Column(Integer, nullable=False))
    decided_at: str = Field(sa_column=Column(String(40), nullable=False))


class ConversionVoid(SQLModel, table=True):
    """Projection of ``conversion.voided`` entries: one row per voided grant (append-only)."""

    __tablename__ = "conversion_voids"
    __table_args__ = (
        Index("ux_conversion_voids_grant", "decision_idx", "grant_no", unique=True),
        Index("ix_conversion_voids_learner", "learner_id"),
    )

    entry_idx: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    #: the conversion.decided entry holding the grant, and the grant's position in it
    decision_idx: int = Field(sa_column=Column(BigInteger, nullable=False))
    grant_no: int = Field(sa_column=Column(Integer, nullable=False))
    learner_id: str = Field(sa_column=Column(String(40), nullable=False))
    voided_at: str = Field(sa_column=Column(String(10), nullable=False))
    #: the record.revoked entry that caused it
    revocation_idx: int = Field(sa_column=Column(BigInteger, nullable=False))


rule_publications_t = RulePublication.__table__  # type: ignore[attr-defined]
conversion_decisions_t = ConversionDecision.__table__  # type: ignore[attr-defined]
conversion_voids_t = ConversionVoid.__table__  # type: ignore[attr-defined]


# -- issued documents (migration 0006_documents) ---------------------------------------------
class StatusList(SQLModel, table=True):
    """One Bitstring Status List: its size in bits and the next index to allocate (state)."""

    __tablename__ = "status_lists"

    list_id: int = Field(sa_column=Column(Integer, primary_key=True, autoincrement=False))
    size: int = Field(sa_column=Column(BigInteger, nullable=False))
    next_index: int = Field(sa_column=Column(BigInteger, nullable=False))
    created_at: str = Field(sa_column=Column(String(40), nullable=False))


class Document(SQLModel, table=True):
    """An issued transcript or certificate and its revocation state (mutable state)."""

    __tablename__ = "documents"
    __table_args__ = (
        Index("ix_documents_learner", "learner_id"),
        Index("ux_documents_entry", "entry_idx", unique=True),
        Index("ux_documents_status", "status_list", "status_index", unique=True),
    )

    doc_id: str = Field(sa_column=Column(String(40), primary_key=True))
    learner_id: str = Field(sa_column=Column(String(40), nullable=False))
    kind: str = Field(sa_column=Column(String(16), nullable=False))
    #: the transcript.issued entry
    entry_idx: int = Field(sa_column=Column(BigInteger, nullable=False))
    status_list: int = Field(sa_column=Column(Integer, nullable=False))
    status_index: int = Field(sa_column=Column(BigInteger, nullable=False))
    credential_digest: bytes = Field(sa_column=Column(LargeBinary(32), nullable=False))
    pdf_digest: bytes = Field(sa_column=Column(LargeBinary(32), nullable=False))
    #: the published checkpoint size the evidence is proved against
    checkpoint_size: int = Field(sa_column=Column(BigInteger, nullable=False))
    item_count: int = Field(sa_column=Column(Integer, nullable=False))
    issued_at: str = Field(sa_column=Column(String(40), nullable=False))
    valid_until: str | None = Field(default=None, sa_column=Column(String(40), nullable=True))
    revoked_at: str | None = Field(default=None, sa_column=Column(String(40), nullable=True))
    revoked_reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    revoked_by: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))
    #: the transcript.revoked entry
    revocation_idx: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))


class DocumentFile(SQLModel, table=True):
    """The exact signed credential and PDF bytes of a document (never updated; erasable)."""

    __tablename__ = "document_files"

    doc_id: str = Field(sa_column=Column(String(40), primary_key=True))
    credential: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    pdf: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class DocumentItem(SQLModel, table=True):
    """What a document covers, so a revocation or void finds the documents it affects.

    ``item`` is ``record`` (a record version: its entry, owner and chain root), ``grant`` (a
    grant of a decision: decision entry and grant number), ``decision`` (a whole decision) or
    ``basis`` (a record chain a shown grant rests on). Append-only.
    """

    __tablename__ = "document_items"
    __table_args__ = (
        Index("ix_document_items_chain", "owner", "chain_root"),
        Index("ix_document_items_entry", "entry_idx", "grant_no"),
    )

    doc_id: str = Field(sa_column=Column(String(40), primary_key=True))
    position: int = Field(sa_column=Column(Integer, primary_key=True, autoincrement=False))
    item: str = Field(sa_column=Column(String(16), nullable=False))
    entry_idx: int = Field(sa_column=Column(BigInteger, nullable=False))
    grant_no: int | None = Field(default=None, sa_column=Column(Integer, nullable=True))
    owner: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))
    chain_root: str | None = Field(default=None, sa_column=Column(String(128), nullable=True))


class ShareCode(SQLModel, table=True):
    """A share code of a document, keyed by the SHA-256 of the normalised code (state).

    Counts verifications (how many, when last) and never who.
    """

    __tablename__ = "share_codes"
    __table_args__ = (
        Index("ux_share_codes_code_id", "code_id", unique=True),
        Index("ix_share_codes_doc", "doc_id"),
    )

    code_hash: bytes = Field(sa_column=Column(LargeBinary(32), primary_key=True))
    #: a public handle for listing, extending and revoking (not the code)
    code_id: str = Field(sa_column=Column(String(32), nullable=False))
    doc_id: str = Field(sa_column=Column(String(40), nullable=False))
    #: the code printed on the PDF (its QR) rather than one made later
    on_document: bool = Field(sa_column=Column(Boolean, nullable=False))
    created_at: str = Field(sa_column=Column(String(40), nullable=False))
    expires_at: str = Field(sa_column=Column(String(40), nullable=False))
    revoked_at: str | None = Field(default=None, sa_column=Column(String(40), nullable=True))
    verify_count: int = Field(sa_column=Column(BigInteger, nullable=False))
    last_verified_at: str | None = Field(default=None, sa_column=Column(String(40), nullable=True))


status_lists_t = StatusList.__table__  # type: ignore[attr-defined]
documents_t = Document.__table__  # type: ignore[attr-defined]
document_files_t = DocumentFile.__table__  # type: ignore[attr-defined]
document_items_t = DocumentItem.__table__  # type: ignore[attr-defined]
share_codes_t = ShareCode.__table__  # type: ignore[attr-defined]


# -- accounts for people (migration 0008_accounts; docs/portals.md) --------------------------
class Account(SQLModel, table=True):
    """A person who signs in: a worker, an institution operator or a bank admin (state).

    ``login`` is the normalised email or phone number; ``password_hash`` an Argon2id string.
    A worker's ``learner_id`` is set once they claimed their learner identity; an operator's
    ``institution_id`` is the one institution they act for.
    """

    __tablename__ = "accounts"
    __table_args__ = (
        Index("ux_accounts_login", "login", unique=True),
        Index("ux_accounts_learner", "learner_id", unique=True),
    )

    account_id: str = Field(sa_column=Column(String(40), primary_key=True))
    role: str = Field(sa_column=Column(String(16), nullable=False))
    login: str = Field(sa_column=Column(String(254), nullable=False))
    password_hash: str = Field(sa_column=Column(Text, nullable=False))
    display_name: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    institution_id: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))
    learner_id: str | None = Field(default=None, sa_column=Column(String(40), nullable=True))
    created_at: str = Field(sa_column=Column(String(40), nullable=False))
    #: consecutive failed sign-ins, and until when sign-in is refused after too many
    failed_logins: int = Field(
        default=0, sa_column=Column(Integer, nullable=False, server_default="0")
    )
    locked_until: str | None = Field(default=None, sa_column=Column(String(40), nullable=True))


class AccountSession(SQLModel, table=True):
    """A signed-in browser session, kept as the SHA-256 of its cookie value (state)."""

    __tablename__ = "account_sessions"
    __table_args__ = (Index("ix_account_sessions_account", "account_id"),)

    digest: bytes = Field(sa_column=Column(LargeBinary(32), primary_key=True))
    account_id: str = Field(sa_column=Column(String(40), nullable=False))
    created_at: str = Field(sa_column=Column(String(40), nullable=False))
    #: absolute end of the session
    expires_at: str = Field(sa_column=Column(String(40), nullable=False))
    #: last request (the idle timeout counts from here)
    last_seen_at: str = Field(sa_column=Column(String(40), nullable=False))


class AccountCode(SQLModel, table=True):
    """A one-time code sent to an account's email or phone (hashed; state).

    ``target`` is what the code unlocks when right (for ``claim``: the learner id the
    identity details matched, or null when they matched nobody).
    """

    __tablename__ = "account_codes"
    __table_args__ = (Index("ix_account_codes_account", "account_id"),)

    code_id: str = Field(sa_column=Column(String(40), primary_key=True))
    account_id: str = Field(sa_column=Column(String(40), nullable=False))
    purpose: str = Field(sa_column=Column(String(16), nullable=False))
    target: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))
    code_hash: bytes = Field(sa_column=Column(LargeBinary(32), nullable=False))
    created_at: str = Field(sa_column=Column(String(40), nullable=False))
    expires_at: str = Field(sa_column=Column(String(40), nullable=False))
    attempts: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default="0"))
    used_at: str | None = Field(default=None, sa_column=Column(String(40), nullable=True))


class AccountToken(SQLModel, table=True):
    """Which account made an API token (``api_tokens.digest``), so it can list and revoke it."""

    __tablename__ = "account_tokens"
    __table_args__ = (Index("ix_account_tokens_account", "account_id"),)

    digest: bytes = Field(sa_column=Column(LargeBinary(32), primary_key=True))
    account_id: str = Field(sa_column=Column(String(40), nullable=False))


accounts_t = Account.__table__  # type: ignore[attr-defined]
account_sessions_t = AccountSession.__table__  # type: ignore[attr-defined]
account_codes_t = AccountCode.__table__  # type: ignore[attr-defined]
account_tokens_t = AccountToken.__table__  # type: ignore[attr-defined]
