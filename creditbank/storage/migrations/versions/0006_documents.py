"""Issued documents (transcripts, certificates), their items and files, share codes, status lists.

History is append-only: ``document_items`` (what each document covers) and ``document_files``
(the exact signed credential and PDF bytes, stored once and never updated; they hold the
learner's name and salt, so erasing the learner deletes them — the one DELETE allowed).
State is mutable: ``documents`` (the revocation state), ``share_codes`` (expiry, revocation,
verification count), ``status_lists`` (the next free status index of each list).

Revision ID: 0006_documents
Revises: 0005_conversions
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_documents"
down_revision = "0005_conversions"
branch_labels = None
depends_on = None

APPEND_ONLY = ("document_files", "document_items")
#: per append-only table, the rows an INSERT OR REPLACE would silently delete
_CONFLICTS = {
    "document_files": "doc_id = NEW.doc_id",
    "document_items": "doc_id = NEW.doc_id AND position = NEW.position",
}


def upgrade() -> None:
    op.create_table(
        "status_lists",
        sa.Column("list_id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("next_index", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.String(40), nullable=False),
    )
    op.create_table(
        "documents",
        sa.Column("doc_id", sa.String(40), primary_key=True),
        sa.Column("learner_id", sa.String(40), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("entry_idx", sa.BigInteger, nullable=False),
        sa.Column("status_list", sa.Integer, nullable=False),
        sa.Column("status_index", sa.BigInteger, nullable=False),
        sa.Column("credential_digest", sa.LargeBinary(32), nullable=False),
        sa.Column("pdf_digest", sa.LargeBinary(32), nullable=False),
        sa.Column("checkpoint_size", sa.BigInteger, nullable=False),
        sa.Column("item_count", sa.Integer, nullable=False),
        sa.Column("issued_at", sa.String(40), nullable=False),
        sa.Column("valid_until", sa.String(40), nullable=True),
        sa.Column("revoked_at", sa.String(40), nullable=True),
        sa.Column("revoked_reason", sa.Text, nullable=True),
        sa.Column("revoked_by", sa.String(64), nullable=True),
        sa.Column("revocation_idx", sa.BigInteger, nullable=True),
    )
    op.create_index("ix_documents_learner", "documents", ["learner_id"])
    op.create_index("ux_documents_entry", "documents", ["entry_idx"], unique=True)
    op.create_index(
        "ux_documents_status", "documents", ["status_list", "status_index"], unique=True
    )
    op.create_table(
        "document_files",
        sa.Column("doc_id", sa.String(40), primary_key=True),
        sa.Column("credential", sa.LargeBinary, nullable=False),
        sa.Column("pdf", sa.LargeBinary, nullable=False),
    )
    op.create_table(
        "document_items",
        sa.Column("doc_id", sa.String(40), primary_key=True),
        sa.Column("position", sa.Integer, primary_key=True, autoincrement=False),
        #: record (a record version shown), grant (a grant of a decision shown), decision
        #: (a whole decision shown), basis (a record chain a shown grant rests on)
        sa.Column("item", sa.String(16), nullable=False),
        sa.Column("entry_idx", sa.BigInteger, nullable=False),
        sa.Column("grant_no", sa.Integer, nullable=True),
        sa.Column("owner", sa.String(64), nullable=True),
        sa.Column("chain_root", sa.String(128), nullable=True),
    )
    op.create_index("ix_document_items_chain", "document_items", ["owner", "chain_root"])
    op.create_index("ix_document_items_entry", "document_items", ["entry_idx", "grant_no"])
    op.create_table(
        "share_codes",
        sa.Column("code_hash", sa.LargeBinary(32), primary_key=True),
        sa.Column("code_id", sa.String(32), nullable=False),
        sa.Column("doc_id", sa.String(40), nullable=False),
        sa.Column("on_document", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.String(40), nullable=False),
        sa.Column("expires_at", sa.String(40), nullable=False),
        sa.Column("revoked_at", sa.String(40), nullable=True),
        sa.Column("verify_count", sa.BigInteger, nullable=False),
        sa.Column("last_verified_at", sa.String(40), nullable=True),
    )
    op.create_index("ux_share_codes_code_id", "share_codes", ["code_id"], unique=True)
    op.create_index("ix_share_codes_doc", "share_codes", ["doc_id"])
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        for t in APPEND_ONLY:
            for op_name in ("UPDATE", "DELETE") if t == "document_items" else ("UPDATE",):
                op.execute(
                    f"CREATE TRIGGER {t}_no_{op_name.lower()} BEFORE {op_name} ON {t} "
                    f"BEGIN SELECT RAISE(ABORT, 'creditbank: {t} is append-only'); END"
                )
            op.execute(
                f"CREATE TRIGGER {t}_no_replace BEFORE INSERT ON {t} "  # noqa: S608 - constants
                f"WHEN EXISTS (SELECT 1 FROM {t} WHERE {_CONFLICTS[t]}) "
                f"BEGIN SELECT RAISE(ABORT, 'creditbank: {t} is append-only'); END"
            )
    else:
        for t in APPEND_ONLY:
            ops = "UPDATE OR DELETE" if t == "document_items" else "UPDATE"
            op.execute(
                f"CREATE TRIGGER {t}_append_only BEFORE {ops} ON {t} "
                "FOR EACH ROW EXECUTE FUNCTION creditbank_append_only()"
            )
            op.execute(
                f"CREATE TRIGGER {t}_no_truncate BEFORE TRUNCATE ON {t} "
                "FOR EACH STATEMENT EXECUTE FUNCTION creditbank_append_only()"
            )


def downgrade() -> None:
    for t in ("share_codes", "document_items", "document_files", "documents", "status_lists"):
        op.drop_table(t)
