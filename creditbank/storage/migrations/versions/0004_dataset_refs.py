"""Dataset references: what an imported dataset's learner and outcome ids became.

Revision ID: 0004_dataset_refs
Revises: 0003_records
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_dataset_refs"
down_revision = "0003_records"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dataset_refs",
        sa.Column("dataset", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(16), primary_key=True),
        sa.Column("ref", sa.String(128), primary_key=True),
        sa.Column("learner_id", sa.String(40), nullable=False),
        sa.Column("owner", sa.String(64), nullable=True),
        sa.Column("record_id", sa.String(128), nullable=True),
        sa.Column("entry_idx", sa.BigInteger, nullable=True),
        sa.Column("created_at", sa.String(40), nullable=False),
    )
    op.create_index("ix_dataset_refs_learner", "dataset_refs", ["learner_id"])


def downgrade() -> None:
    op.drop_table("dataset_refs")
