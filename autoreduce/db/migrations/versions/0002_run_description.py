"""a run version keeps why it was made, in its submitter's words

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("reduction_runs") as batch:
        batch.add_column(
            sa.Column("description", sa.String(length=500), nullable=False, server_default="")
        )


def downgrade() -> None:
    with op.batch_alter_table("reduction_runs") as batch:
        batch.drop_column("description")
