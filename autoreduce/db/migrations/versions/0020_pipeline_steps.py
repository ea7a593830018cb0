"""pipeline steps: one row per step of a pipeline run version, and a re-run's from_step

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

import autoreduce.db.models

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "run_steps",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("step", sa.String(length=48), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("message", sa.String(length=1000), nullable=False),
        sa.Column("plugin", sa.String(length=100), nullable=False),
        sa.Column("rely", sa.JSON(), nullable=False),
        sa.Column("cpus", sa.Integer(), nullable=False),
        sa.Column("memory_mb", sa.Integer(), nullable=False),
        sa.Column("timeout_s", sa.Float(), nullable=False),
        sa.Column("executor", sa.String(length=16), nullable=False),
        sa.Column("peak_rss_mb", sa.Float(), nullable=True),
        sa.Column("wall_s", sa.Float(), nullable=True),
        sa.Column("log_path", sa.String(length=300), nullable=False),
        sa.Column("reused_from_version", sa.Integer(), nullable=True),
        sa.Column("started_at", autoreduce.db.models.UtcDateTime(), nullable=True),
        sa.Column("finished_at", autoreduce.db.models.UtcDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["run_id"], ["reduction_runs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("run_id", "step", name="uq_run_step"),
    )
    op.create_index("ix_run_steps_run_id", "run_steps", ["run_id"])
    with op.batch_alter_table("reduction_runs") as batch:
        batch.add_column(
            sa.Column("from_step", sa.String(length=48), nullable=False, server_default="")
        )


def downgrade() -> None:
    with op.batch_alter_table("reduction_runs") as batch:
        batch.drop_column("from_step")
    op.drop_index("ix_run_steps_run_id", table_name="run_steps")
    op.drop_table("run_steps")
