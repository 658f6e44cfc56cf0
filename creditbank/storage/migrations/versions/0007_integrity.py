"""Checkpoint history without holes: each checkpoint names the size published before it, and
the head row keeps the latest published size (ADR 0007).

Existing checkpoints get the size before them in size order (the append-only trigger of
``log_checkpoints`` is suspended for that one update, inside the migration's transaction).

Revision ID: 0007_integrity
Revises: 0006_documents
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_integrity"
down_revision = "0006_documents"
branch_labels = None
depends_on = None

_BACKFILL = """
UPDATE log_checkpoints SET prev_size = (
    SELECT MAX(p.size) FROM log_checkpoints p WHERE p.size < log_checkpoints.size
)
"""


def upgrade() -> None:
    op.add_column("log_checkpoints", sa.Column("prev_size", sa.BigInteger, nullable=True))
    op.add_column(
        "log_head",
        sa.Column("published_size", sa.BigInteger, nullable=False, server_default="0"),
    )
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        sql = bind.exec_driver_sql(
            "SELECT sql FROM sqlite_master WHERE type = 'trigger'"
            " AND name = 'log_checkpoints_no_update'"
        ).scalar()
        op.execute("DROP TRIGGER IF EXISTS log_checkpoints_no_update")
        op.execute(_BACKFILL)
        if sql:
            op.execute(sql)
    else:
        op.execute("ALTER TABLE log_checkpoints DISABLE TRIGGER log_checkpoints_append_only")
        op.execute(_BACKFILL)
        op.execute("ALTER TABLE log_checkpoints ENABLE TRIGGER log_checkpoints_append_only")
    op.execute(
        "UPDATE log_head SET published_size = COALESCE((SELECT MAX(size) FROM log_checkpoints), 0)"
    )


def downgrade() -> None:
    op.drop_column("log_head", "published_size")
    op.drop_column("log_checkpoints", "prev_size")
