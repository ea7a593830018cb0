"""run attempts handed off: a Slurm job followed by a processor's follower, its message acked

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-03

``handed_off_at`` is set, with the message's ack, once the job's id is committed: from then on the
processor whose id is in ``processor`` follows the job on its follower thread, and a live
processor adopts it when that one stops or falls silent. Followers find their jobs from the runs
in Processing (``ix_runs_status_id``) and each run's current attempt (``uq_run_attempt``), so no
index of its own is needed.
"""

import sqlalchemy as sa
from alembic import op

import autoreduce.db.models

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "run_attempts",
        sa.Column("handed_off_at", autoreduce.db.models.UtcDateTime(), nullable=True),
    )


def downgrade() -> None:
    op.drop_column("run_attempts", "handed_off_at")
