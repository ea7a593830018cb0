"""alerts and their deliveries: each alert fired once and resolved once

Revision ID: 0014
Revises: 0008
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import op

import autoreduce.db.models

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alerts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("active_key", sa.String(length=200), nullable=True),
        sa.Column("rule", sa.String(length=32), nullable=False),
        sa.Column("instrument", sa.String(length=32), nullable=True),
        sa.Column("summary", sa.String(length=1000), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("fired_at", autoreduce.db.models.UtcDateTime(), nullable=False),
        sa.Column("resolved_at", autoreduce.db.models.UtcDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("active_key"),
    )
    op.create_index("ix_alerts_key_fired", "alerts", ["key", "fired_at"])
    op.create_table(
        "alert_deliveries",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("alert_id", sa.Integer(), nullable=False),
        sa.Column("event", sa.String(length=16), nullable=False),
        sa.Column("receiver", sa.String(length=64), nullable=False),
        sa.Column("created_at", autoreduce.db.models.UtcDateTime(), nullable=False),
        sa.Column("next_attempt_at", autoreduce.db.models.UtcDateTime(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.String(length=500), nullable=False),
        sa.Column("sent_at", autoreduce.db.models.UtcDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["alert_id"], ["alerts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("alert_id", "event", "receiver", name="uq_alert_delivery"),
    )
    op.create_index(
        "ix_alert_deliveries_pending", "alert_deliveries", ["sent_at", "next_attempt_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_alert_deliveries_pending", table_name="alert_deliveries")
    op.drop_table("alert_deliveries")
    op.drop_index("ix_alerts_key_fired", table_name="alerts")
    op.drop_table("alerts")
