"""API bearer tokens (auditors; later institutions), stored as SHA-256 digests.

Revision ID: 0002_tokens
Revises: 0001_ledger
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_tokens"
down_revision = "0001_ledger"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_tokens",
        sa.Column("digest", sa.LargeBinary(32), primary_key=True),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("subject", sa.String(64), nullable=True),
        sa.Column("label", sa.String(200), nullable=True),
        sa.Column("created_at", sa.String(40), nullable=False),
        sa.Column("revoked_at", sa.String(40), nullable=True),
    )
    op.create_index("ix_api_tokens_role_subject", "api_tokens", ["role", "subject"])


def downgrade() -> None:
    op.drop_index("ix_api_tokens_role_subject", table_name="api_tokens")
    op.drop_table("api_tokens")
