"""Learners (personal data, erasable) and the record projections of the log.

Revision ID: 0003_records
Revises: 0002_tokens
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_records"
down_revision = "0002_tokens"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "learners",
        sa.Column("learner_id", sa.String(40), primary_key=True),
        sa.Column("lookup_key", sa.String(64), nullable=True, unique=True),
        sa.Column("salt", sa.LargeBinary(16), nullable=True),
        sa.Column("name", sa.Text, nullable=True),
        sa.Column("name_latin", sa.Text, nullable=True),
        sa.Column("external_ref", sa.String(64), nullable=True),
        sa.Column("created_at", sa.String(40), nullable=False),
        sa.Column("erased_at", sa.String(40), nullable=True),
    )
    op.create_index("ix_learners_external_ref", "learners", ["external_ref"])
    op.create_table(
        "record_names",
        sa.Column("entry_idx", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("learner_id", sa.String(40), nullable=False),
        sa.Column("name_on_record", sa.Text, nullable=True),
    )
    op.create_index("ix_record_names_learner", "record_names", ["learner_id"])
    op.create_table(
        "records",
        sa.Column("entry_idx", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("posted_by", sa.String(64), nullable=False),
        sa.Column("record_id", sa.String(128), nullable=False),
        sa.Column("entry_type", sa.String(32), nullable=False),
        sa.Column("learner_id", sa.String(40), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("dedup_key", sa.String(256), nullable=False),
        sa.Column("corrects", sa.String(128), nullable=True),
        sa.Column("chain_root", sa.String(128), nullable=False),
        sa.Column("achieved_on", sa.String(10), nullable=False),
        sa.Column("posted_at", sa.String(10), nullable=False),
        sa.Column("digest", sa.LargeBinary(32), nullable=False),
    )
    op.create_index("ux_records_owner_record", "records", ["owner", "record_id"], unique=True)
    op.create_index("ix_records_learner", "records", ["learner_id"])
    op.create_table(
        "record_revocations",
        sa.Column("entry_idx", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("record_id", sa.String(128), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("effective_on", sa.String(10), nullable=False),
        sa.Column("digest", sa.LargeBinary(32), nullable=False),
    )
    op.create_index(
        "ux_record_revocations_owner_record", "record_revocations", ["owner", "record_id"],
        unique=True,
    )
    bind = op.get_bind()
    projections = ("records", "record_revocations")
    if bind.dialect.name == "sqlite":
        for t in projections:
            for op_name in ("UPDATE", "DELETE"):
                op.execute(
                    f"CREATE TRIGGER {t}_no_{op_name.lower()} BEFORE {op_name} ON {t} "
                    f"BEGIN SELECT RAISE(ABORT, 'creditbank: {t} is append-only'); END"
                )
        # INSERT OR REPLACE would delete a conflicting row without firing DELETE triggers.
        for t in projections:
            cond = "entry_idx = NEW.entry_idx OR (owner = NEW.owner AND record_id = NEW.record_id)"
            op.execute(
                f"CREATE TRIGGER {t}_no_replace BEFORE INSERT ON {t} "
                f"WHEN EXISTS (SELECT 1 FROM {t} WHERE {cond}) "
                f"BEGIN SELECT RAISE(ABORT, 'creditbank: {t} is append-only'); END"
            )
    else:
        for t in projections:
            op.execute(
                f"CREATE TRIGGER {t}_append_only BEFORE UPDATE OR DELETE ON {t} "
                "FOR EACH ROW EXECUTE FUNCTION creditbank_append_only()"
            )
            op.execute(
                f"CREATE TRIGGER {t}_no_truncate BEFORE TRUNCATE ON {t} "
                "FOR EACH STATEMENT EXECUTE FUNCTION creditbank_append_only()"
            )


def downgrade() -> None:
    for t in ("record_revocations", "records", "record_names", "learners"):
        op.drop_table(t)
