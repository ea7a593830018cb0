"""run attempts: each attempt's executor, resources and Slurm job; a version's raised memory

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

import autoreduce.db.models

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("reduction_runs", sa.Column("memory_mb", sa.Integer(), nullable=True))
    op.create_table(
        "run_attempts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("processor", sa.String(length=200), nullable=False),
        sa.Column("executor", sa.String(length=8), nullable=False),
        sa.Column("memory_mb", sa.Integer(), nullable=False),
        sa.Column("cpus", sa.Integer(), nullable=False),
        sa.Column("timeout_s", sa.Float(), nullable=False),
        sa.Column("slurm_job_name", sa.String(length=100), nullable=False),
        sa.Column("slurm_job_id", sa.String(length=32), nullable=False),
        sa.Column("slurm_state", sa.String(length=32), nullable=False),
        sa.Column("job_dir", sa.String(length=1024), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=1000), nullable=False),
        sa.Column("started_at", autoreduce.db.models.UtcDateTime(), nullable=False),
        sa.Column("finished_at", autoreduce.db.models.UtcDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["run_id"], ["reduction_runs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("run_id", "attempt", name="uq_run_attempt"),
    )


def downgrade() -> None:
    op.drop_table("run_attempts")
    op.drop_column("reduction_runs", "memory_mb")
