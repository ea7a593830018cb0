"""variable rules for new runs, the sources of each run's values, batch re-runs

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

import autoreduce.db.models

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("reduction_runs") as batch:
        batch.add_column(sa.Column("variable_sources", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("derived_from_version", sa.Integer(), nullable=True))
    op.create_table(
        "variable_rules",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("instrument", sa.String(length=32), nullable=False),
        sa.Column("experiment_ref", sa.String(length=64), nullable=True),
        sa.Column("from_run", sa.BigInteger(), nullable=True),
        sa.Column("values", sa.JSON(), nullable=False),
        sa.Column("description", sa.String(length=500), nullable=False),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.Column("created_at", autoreduce.db.models.UtcDateTime(), nullable=False),
        sa.Column("deleted_by", sa.String(length=100), nullable=True),
        sa.Column("deleted_at", autoreduce.db.models.UtcDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_variable_rules_instrument", "variable_rules", ["instrument", "deleted_at"])
    op.create_table(
        "rerun_batches",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("instrument", sa.String(length=32), nullable=False),
        sa.Column("submitted_by", sa.String(length=100), nullable=False),
        sa.Column("created_at", autoreduce.db.models.UtcDateTime(), nullable=False),
        sa.Column("description", sa.String(length=500), nullable=False),
        sa.Column("base", sa.String(length=32), nullable=False),
        sa.Column("changes", sa.JSON(), nullable=False),
        sa.Column("selection", sa.JSON(), nullable=False),
        sa.Column("supersede", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "rerun_batch_runs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("batch_id", sa.Integer(), nullable=False),
        sa.Column("run_number", sa.BigInteger(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("refused", sa.String(length=500), nullable=False),
        sa.ForeignKeyConstraint(["batch_id"], ["rerun_batches.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["run_id"], ["reduction_runs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_rerun_batch_runs_batch_id", "rerun_batch_runs", ["batch_id"])


def downgrade() -> None:
    op.drop_index("ix_rerun_batch_runs_batch_id", table_name="rerun_batch_runs")
    op.drop_table("rerun_batch_runs")
    op.drop_table("rerun_batches")
    op.drop_index("ix_variable_rules_instrument", table_name="variable_rules")
    op.drop_table("variable_rules")
    with op.batch_alter_table("reduction_runs") as batch:
        batch.drop_column("derived_from_version")
        batch.drop_column("variable_sources")
