"""failed runs an admin marked as dealt with (hidden from the failed-runs page)

Revision ID: 0013_hidden_failures
Revises: 0008
Create Date: 2026-12-10
"""

import sqlalchemy as sa
from alembic import op

import autoreduce.db.models

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "hidden_failures",
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("hidden_by", sa.String(length=100), nullable=False),
        sa.Column("hidden_at", autoreduce.db.models.UtcDateTime(), nullable=False),
        sa.Column("note", sa.String(length=500), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["reduction_runs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("run_id"),
    )


def downgrade() -> None:
    op.drop_table("hidden_failures")
