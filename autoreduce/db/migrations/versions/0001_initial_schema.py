"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

import autoreduce.db.models

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("instruments", sa.JSON(), nullable=False),
        sa.Column("created_at", autoreduce.db.models.UtcDateTime(), nullable=False),
        sa.Column("revoked_at", autoreduce.db.models.UtcDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
        sa.UniqueConstraint("token_hash"),
    )
    op.create_table(
        "instruments",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("is_paused", sa.Boolean(), nullable=False),
        sa.Column("created_at", autoreduce.db.models.UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("instrument", sa.String(length=32), nullable=False),
        sa.Column("queue", sa.String(length=200), nullable=False),
        sa.Column(
            "body",
            sa.Text()
            .with_variant(mysql.LONGTEXT(), "mariadb")
            .with_variant(mysql.LONGTEXT(), "mysql"),
            nullable=False,
        ),
        sa.Column("created_at", autoreduce.db.models.UtcDateTime(), nullable=False),
        sa.Column("sent_at", autoreduce.db.models.UtcDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index("ix_outbox_unsent", ["sent_at", "id"], unique=False)

    op.create_table(
        "processor_heartbeats",
        sa.Column("id", sa.String(length=200), nullable=False),
        sa.Column("host", sa.String(length=200), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", autoreduce.db.models.UtcDateTime(), nullable=False),
        sa.Column("last_seen_at", autoreduce.db.models.UtcDateTime(), nullable=False),
        sa.Column("current_run_id", sa.Integer(), nullable=True),
        sa.Column("stopped_at", autoreduce.db.models.UtcDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "queue_messages",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("queue", sa.String(length=200), nullable=False),
        sa.Column(
            "body",
            sa.Text()
            .with_variant(mysql.LONGTEXT(), "mariadb")
            .with_variant(mysql.LONGTEXT(), "mysql"),
            nullable=False,
        ),
        sa.Column("headers", sa.JSON(), nullable=False),
        sa.Column("enqueued_at", autoreduce.db.models.UtcDateTime(), nullable=False),
        sa.Column("visible_at", autoreduce.db.models.UtcDateTime(), nullable=False),
        sa.Column("deliveries", sa.Integer(), nullable=False),
        sa.Column("claimed_by", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("queue_messages", schema=None) as batch_op:
        batch_op.create_index("ix_queue_claim", ["queue", "visible_at", "id"], unique=False)

    op.create_table(
        "reduction_runs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("instrument", sa.String(length=32), nullable=False),
        sa.Column("run_number", sa.BigInteger(), nullable=False),
        sa.Column("run_version", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("message", sa.String(length=1000), nullable=False),
        sa.Column("experiment_ref", sa.String(length=64), nullable=False),
        sa.Column("title", sa.String(length=500), nullable=False),
        sa.Column("data_path", sa.String(length=1024), nullable=False),
        sa.Column("variables", sa.JSON(), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("submitted_by", sa.String(length=100), nullable=False),
        sa.Column("summary", sa.String(length=1000), nullable=False),
        sa.Column("output_dir", sa.String(length=1024), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("processor", sa.String(length=200), nullable=False),
        sa.Column("detected_at", autoreduce.db.models.UtcDateTime(), nullable=True),
        sa.Column("queued_at", autoreduce.db.models.UtcDateTime(), nullable=False),
        sa.Column("started_at", autoreduce.db.models.UtcDateTime(), nullable=True),
        sa.Column("finished_at", autoreduce.db.models.UtcDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["instrument"],
            ["instruments.name"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("instrument", "run_number", "run_version", name="uq_run_version"),
    )
    with op.batch_alter_table("reduction_runs", schema=None) as batch_op:
        batch_op.create_index(
            "ix_runs_instrument_number", ["instrument", "run_number"], unique=False
        )
        batch_op.create_index("ix_runs_status", ["status"], unique=False)

    op.create_table(
        "run_outputs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["reduction_runs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("run_outputs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_run_outputs_run_id"), ["run_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("run_outputs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_run_outputs_run_id"))

    op.drop_table("run_outputs")
    with op.batch_alter_table("reduction_runs", schema=None) as batch_op:
        batch_op.drop_index("ix_runs_status")
        batch_op.drop_index("ix_runs_instrument_number")

    op.drop_table("reduction_runs")
    with op.batch_alter_table("queue_messages", schema=None) as batch_op:
        batch_op.drop_index("ix_queue_claim")

    op.drop_table("queue_messages")
    op.drop_table("processor_heartbeats")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_unsent")

    op.drop_table("outbox")
    op.drop_table("instruments")
    op.drop_table("api_tokens")
