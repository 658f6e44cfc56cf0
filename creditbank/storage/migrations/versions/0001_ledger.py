"""Ledger tables (entries, nodes, checkpoints, head) and append-only triggers.

Revision ID: 0001_ledger
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001_ledger"
down_revision = None
branch_labels = None
depends_on = None

LEDGER_TABLES = ("log_entries", "log_nodes", "log_checkpoints")


def upgrade() -> None:
    op.create_table(
        "log_entries",
        sa.Column("idx", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
        sa.Column("leaf_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("issuer", sa.String(64), nullable=False),
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("at", sa.String(40), nullable=False),
        sa.Column("subject", sa.String(64), nullable=True),
        sa.Column("ingested_at", sa.String(40), nullable=False),
    )
    op.create_index("ix_log_entries_leaf_hash", "log_entries", ["leaf_hash"], unique=True)
    op.create_index("ix_log_entries_issuer_type", "log_entries", ["issuer", "type"])
    op.create_index("ix_log_entries_type", "log_entries", ["type"])
    op.create_index("ix_log_entries_subject", "log_entries", ["subject"])
    op.create_table(
        "log_nodes",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("hash", sa.LargeBinary(32), nullable=False),
    )
    op.create_table(
        "log_checkpoints",
        sa.Column("size", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("root", sa.LargeBinary(32), nullable=False),
        sa.Column("note", sa.Text, nullable=False),
        sa.Column("published_at", sa.String(40), nullable=False),
    )
    op.create_table(
        "log_head",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("root", sa.LargeBinary(32), nullable=False),
        sa.Column("registry_count", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.String(40), nullable=False),
    )
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        for t in LEDGER_TABLES:
            for op_name in ("UPDATE", "DELETE"):
                op.execute(
                    f"CREATE TRIGGER {t}_no_{op_name.lower()} BEFORE {op_name} ON {t} "
                    f"BEGIN SELECT RAISE(ABORT, 'creditbank: {t} is append-only'); END"
                )
        # INSERT OR REPLACE deletes the conflicting row without firing DELETE triggers
        # (unless recursive_triggers is on): refuse any insert that would meet an existing key.
        for t, cond in (
            ("log_entries", "idx = NEW.idx OR leaf_hash = NEW.leaf_hash"),
            ("log_nodes", "id = NEW.id"),
            ("log_checkpoints", "size = NEW.size"),
        ):
            op.execute(
                f"CREATE TRIGGER {t}_no_replace BEFORE INSERT ON {t} "
                f"WHEN EXISTS (SELECT 1 FROM {t} WHERE {cond}) "
                f"BEGIN SELECT RAISE(ABORT, 'creditbank: {t} is append-only'); END"
            )
    else:
        op.execute(
            """
            CREATE OR REPLACE FUNCTION creditbank_append_only() RETURNS trigger AS $$
            BEGIN
              RAISE EXCEPTION 'creditbank: % is append-only (% refused)', TG_TABLE_NAME, TG_OP
                USING ERRCODE = 'insufficient_privilege';
            END $$ LANGUAGE plpgsql
            """
        )
        for t in LEDGER_TABLES:
            op.execute(
                f"CREATE TRIGGER {t}_append_only BEFORE UPDATE OR DELETE ON {t} "
                "FOR EACH ROW EXECUTE FUNCTION creditbank_append_only()"
            )
            op.execute(
                f"CREATE TRIGGER {t}_no_truncate BEFORE TRUNCATE ON {t} "
                "FOR EACH STATEMENT EXECUTE FUNCTION creditbank_append_only()"
            )
