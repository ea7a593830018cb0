"""jobs may name a pipeline instead of a plugin; uploads removed by retention stay as a record

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-03

``jobs.pipeline`` is the pipeline a job runs ('' when it names a plugin; ``jobs.plugin`` is ''
when it names a pipeline). ``uploads.removed_at`` is when ``autoreduce cleanup`` removed the
upload's file or object: the row stays (its name, size and SHA-256 are the record), a job can no
longer name it.
"""

import sqlalchemy as sa
from alembic import op

import autoreduce.db.models

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "jobs", sa.Column("pipeline", sa.String(length=100), nullable=False, server_default="")
    )
    op.add_column(
        "uploads",
        sa.Column("removed_at", autoreduce.db.models.UtcDateTime(), nullable=True),
    )


def downgrade() -> None:
    op.drop_column("uploads", "removed_at")
    op.drop_column("jobs", "pipeline")
