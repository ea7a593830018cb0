"""OAuth2 clients: machines that obtain access tokens with client credentials

Revision ID: 0009_oauth_clients
Revises: 0008
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import op

import autoreduce.db.models

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "oauth_clients",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("instruments", sa.JSON(), nullable=False),
        sa.Column("created_at", autoreduce.db.models.UtcDateTime(), nullable=False),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.Column("revoked_at", autoreduce.db.models.UtcDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("client_id", name="uq_oauth_clients_client_id"),
        sa.UniqueConstraint("name", name="uq_oauth_clients_name"),
    )


def downgrade() -> None:
    op.drop_table("oauth_clients")
