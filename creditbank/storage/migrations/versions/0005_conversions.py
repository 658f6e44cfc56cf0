"""Conversion projections: rule publications, decisions and voids (append-only).

Revision ID: 0005_conversions
Revises: 0004_dataset_refs
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_conversions"
down_revision = "0004_dataset_refs"
branch_labels = None
depends_on = None

TABLES = ("rule_publications", "conversion_decisions", "conversion_voids")
#: per table, the rows an INSERT OR REPLACE would silently delete
_CONFLICTS = {
    "rule_publications": "entry_idx = NEW.entry_idx",
    "conversion_decisions": "entry_idx = NEW.entry_idx OR application_id = NEW.application_id",
    "conversion_voids": "entry_idx = NEW.entry_idx OR "
    "(decision_idx = NEW.decision_idx AND grant_no = NEW.grant_no)",
}


def upgrade() -> None:
    op.create_table(
        "rule_publications",
        sa.Column("entry_idx", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("digest", sa.LargeBinary(32), nullable=False),
        sa.Column("rule_count", sa.Integer, nullable=False),
        sa.Column("published_at", sa.String(40), nullable=False),
    )
    op.create_table(
        "conversion_decisions",
        sa.Column("entry_idx", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("application_id", sa.String(64), nullable=False),
        sa.Column("learner_id", sa.String(40), nullable=False),
        sa.Column("app_type", sa.String(32), nullable=False),
        sa.Column("program_id", sa.String(64), nullable=True),
        sa.Column("certificate_type_id", sa.String(64), nullable=True),
        sa.Column("applied_on", sa.String(10), nullable=False),
        sa.Column("rules_idx", sa.BigInteger, nullable=False),
        sa.Column("credits_centi", sa.BigInteger, nullable=False),
        sa.Column("grant_count", sa.Integer, nullable=False),
        sa.Column("decided_at", sa.String(40), nullable=False),
    )
    op.create_index(
        "ux_conversion_decisions_application",
        "conversion_decisions",
        ["application_id"],
        unique=True,
    )
    op.create_index("ix_conversion_decisions_learner", "conversion_decisions", ["learner_id"])
    op.create_table(
        "conversion_voids",
        sa.Column("entry_idx", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("decision_idx", sa.BigInteger, nullable=False),
        sa.Column("grant_no", sa.Integer, nullable=False),
        sa.Column("learner_id", sa.String(40), nullable=False),
        sa.Column("voided_at", sa.String(10), nullable=False),
        sa.Column("revocation_idx", sa.BigInteger, nullable=False),
    )
    op.create_index(
        "ux_conversion_voids_grant", "conversion_voids", ["decision_idx", "grant_no"], unique=True
    )
    op.create_index("ix_conversion_voids_learner", "conversion_voids", ["learner_id"])
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        for t in TABLES:
            for op_name in ("UPDATE", "DELETE"):
                op.execute(
                    f"CREATE TRIGGER {t}_no_{op_name.lower()} BEFORE {op_name} ON {t} "
                    f"BEGIN SELECT RAISE(ABORT, 'creditbank: {t} is append-only'); END"
                )
            # INSERT OR REPLACE would delete a conflicting row without firing DELETE triggers.
            op.execute(
                f"CREATE TRIGGER {t}_no_replace BEFORE INSERT ON {t} "  # noqa: S608 - constants
                f"WHEN EXISTS (SELECT 1 FROM {t} WHERE {_CONFLICTS[t]}) "
                f"BEGIN SELECT RAISE(ABORT, 'creditbank: {t} is append-only'); END"
            )
    else:
        for t in TABLES:
            op.execute(
                f"CREATE TRIGGER {t}_append_only BEFORE UPDATE OR DELETE ON {t} "
                "FOR EACH ROW EXECUTE FUNCTION creditbank_append_only()"
            )
            op.execute(
                f"CREATE TRIGGER {t}_no_truncate BEFORE TRUNCATE ON {t} "
                "FOR EACH STATEMENT EXECUTE FUNCTION creditbank_append_only()"
            )


def downgrade() -> None:
    for t in reversed(TABLES):
        op.drop_table(t)
