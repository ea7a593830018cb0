"""indexes for search and experiments: runs by experiment, runs by the time they were queued

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("reduction_runs") as batch:
        batch.create_index("ix_runs_experiment_queued", ["experiment_ref", "queued_at"])
        batch.create_index("ix_runs_queued_at", ["queued_at"])


def downgrade() -> None:
    with op.batch_alter_table("reduction_runs") as batch:
        batch.drop_index("ix_runs_queued_at")
        batch.drop_index("ix_runs_experiment_queued")
