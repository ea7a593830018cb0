"""plugin approvals: a plugin runs only at a version an admin approved

Revision ID: 0010_plugin_approvals
Revises: 0008
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import op

import autoreduce.db.models

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "plugin_approvals",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("plugin", sa.String(length=100), nullable=False),
        sa.Column("distribution", sa.String(length=200), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("decided_by", sa.String(length=100), nullable=False),
        sa.Column("decided_at", autoreduce.db.models.UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint(
            "plugin", "distribution", "version", name="uq_plugin_approvals_release"
        ),
    )
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("held_plugin", sa.String(length=100), nullable=True))
        batch.add_column(sa.Column("held_distribution", sa.String(length=200), nullable=True))
        batch.add_column(sa.Column("held_version", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("held_version")
        batch.drop_column("held_distribution")
        batch.drop_column("held_plugin")
    op.drop_table("plugin_approvals")
