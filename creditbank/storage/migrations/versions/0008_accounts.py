"""Accounts for people: workers, institution operators and bank admins; their sessions,
one-time codes and the API tokens they made (docs/portals.md). Not ledger tables: rows are
updated (a session slides, a code is used) and deleted (sign-out, erasure).

Revision ID: 0008_accounts
Revises: 0007_integrity
"""

import sqlalchemy as sa
from alembic import op

revision = "0008_accounts"
down_revision = "0007_integrity"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("account_id", sa.String(40), primary_key=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("login", sa.String(254), nullable=False),
        sa.Column("password_hash", sa.Text, nullable=False),
        sa.Column("display_name", sa.Text, nullable=True),
        sa.Column("institution_id", sa.String(64), nullable=True),
        sa.Column("learner_id", sa.String(40), nullable=True),
        sa.Column("created_at", sa.String(40), nullable=False),
        sa.Column("failed_logins", sa.Integer, nullable=False, server_default="0"),
        sa.Column("locked_until", sa.String(40), nullable=True),
    )
    op.create_index("ux_accounts_login", "accounts", ["login"], unique=True)
    op.create_index("ux_accounts_learner", "accounts", ["learner_id"], unique=True)
    op.create_table(
        "account_sessions",
        sa.Column("digest", sa.LargeBinary(32), primary_key=True),
        sa.Column("account_id", sa.String(40), nullable=False),
        sa.Column("created_at", sa.String(40), nullable=False),
        sa.Column("expires_at", sa.String(40), nullable=False),
        sa.Column("last_seen_at", sa.String(40), nullable=False),
    )
    op.create_index("ix_account_sessions_account", "account_sessions", ["account_id"])
    op.create_table(
        "account_codes",
        sa.Column("code_id", sa.String(40), primary_key=True),
        sa.Column("account_id", sa.String(40), nullable=False),
        sa.Column("purpose", sa.String(16), nullable=False),
        sa.Column("target", sa.String(64), nullable=True),
        sa.Column("code_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("created_at", sa.String(40), nullable=False),
        sa.Column("expires_at", sa.String(40), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("used_at", sa.String(40), nullable=True),
    )
    op.create_index("ix_account_codes_account", "account_codes", ["account_id"])
    op.create_table(
        "account_tokens",
        sa.Column("digest", sa.LargeBinary(32), primary_key=True),
        sa.Column("account_id", sa.String(40), nullable=False),
    )
    op.create_index("ix_account_tokens_account", "account_tokens", ["account_id"])


def downgrade() -> None:
    op.drop_index("ix_account_tokens_account", table_name="account_tokens")
    op.drop_table("account_tokens")
    op.drop_index("ix_account_codes_account", table_name="account_codes")
    op.drop_table("account_codes")
    op.drop_index("ix_account_sessions_account", table_name="account_sessions")
    op.drop_table("account_sessions")
    op.drop_index("ux_accounts_learner", table_name="accounts")
    op.drop_index("ux_accounts_login", table_name="accounts")
    op.drop_table("accounts")
