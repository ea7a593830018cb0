"""each run version keeps its provenance; each Error run its failure's category and fingerprint

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-10

``provenance`` is one JSON object (see ``autoreduce.provenance``); ``error_category``,
``error_fingerprint`` and ``error_signature`` are empty unless the run is in Error (runs that
failed before this revision stay empty: they are listed as unclassified). The index on
(status, finished_at, error_fingerprint) lets the failures view read only recent errors.
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("reduction_runs") as batch:
        batch.add_column(sa.Column("provenance", sa.JSON(), nullable=True))
        batch.add_column(
            sa.Column("error_category", sa.String(length=16), nullable=False, server_default="")
        )
        batch.add_column(
            sa.Column("error_fingerprint", sa.String(length=12), nullable=False, server_default="")
        )
        batch.add_column(
            sa.Column("error_signature", sa.String(length=300), nullable=False, server_default="")
        )
        batch.create_index(
            "ix_runs_status_finished", ["status", "finished_at", "error_fingerprint"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("reduction_runs") as batch:
        batch.drop_index("ix_runs_status_finished")
        batch.drop_column("error_signature")
        batch.drop_column("error_fingerprint")
        batch.drop_column("error_category")
        batch.drop_column("provenance")
