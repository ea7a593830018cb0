"""a processor can be drained: asked to finish its run and take no new ones

Revision ID: 0011
Revises: 0008
Create Date: 2026-12-10
"""

import sqlalchemy as sa
from alembic import op

import autoreduce.db.models

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("processor_heartbeats") as batch:
        batch.add_column(
            sa.Column("drain_requested_at", autoreduce.db.models.UtcDateTime(), nullable=True)
        )
        batch.add_column(
            sa.Column(
                "drain_requested_by", sa.String(length=100), nullable=False, server_default=""
            )
        )
        batch.add_column(sa.Column("drained_at", autoreduce.db.models.UtcDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("processor_heartbeats") as batch:
        batch.drop_column("drained_at")
        batch.drop_column("drain_requested_by")
        batch.drop_column("drain_requested_at")
