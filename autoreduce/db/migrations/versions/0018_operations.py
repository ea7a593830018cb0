"""operations: backup, verification and clean-up outcomes; run versions cleaned by retention

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

import autoreduce.db.models

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "maintenance_runs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("job", sa.String(length=16), nullable=False),
        sa.Column("outcome", sa.String(length=8), nullable=False),
        sa.Column("started_at", autoreduce.db.models.UtcDateTime(), nullable=False),
        sa.Column("finished_at", autoreduce.db.models.UtcDateTime(), nullable=False),
        sa.Column("reason", sa.String(length=1000), nullable=False),
        sa.Column("host", sa.String(length=200), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_maintenance_job_finished", "maintenance_runs", ["job", "finished_at"])
    op.create_table(
        "retention_cleanups",
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("cleaned_at", autoreduce.db.models.UtcDateTime(), nullable=False),
        sa.Column("files", sa.Integer(), nullable=False),
        sa.Column("bytes_freed", sa.BigInteger(), nullable=False),
        sa.Column("log_lines", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["reduction_runs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("run_id"),
    )


def downgrade() -> None:
    op.drop_table("retention_cleanups")
    op.drop_index("ix_maintenance_job_finished", table_name="maintenance_runs")
    op.drop_table("maintenance_runs")
