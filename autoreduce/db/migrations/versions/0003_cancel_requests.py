"""a run version keeps who asked to cancel it, when and why

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

import autoreduce.db.models

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("reduction_runs") as batch:
        batch.add_column(
            sa.Column("cancel_requested_at", autoreduce.db.models.UtcDateTime(), nullable=True)
        )
        batch.add_column(
            sa.Column(
                "cancel_requested_by", sa.String(length=100), nullable=False, server_default=""
            )
        )
        batch.add_column(
            sa.Column("cancel_reason", sa.String(length=500), nullable=False, server_default="")
        )


def downgrade() -> None:
    with op.batch_alter_table("reduction_runs") as batch:
        batch.drop_column("cancel_reason")
        batch.drop_column("cancel_requested_by")
        batch.drop_column("cancel_requested_at")
