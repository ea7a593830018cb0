"""run lists at a million versions: newest-first indexes per filter, words on a text index

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03

The run list orders by id (newest first), so each filter gets an index that ends in the id:
(instrument, id), (status, id), (instrument, status, id). ``ix_runs_instrument_number``
duplicated the front of ``uq_run_version`` and ``ix_runs_status`` is the front of
``ix_runs_status_id``: both go. Plain search words use a text index over title, message,
experiment and instrument: an FTS5 table kept by triggers on SQLite, a FULLTEXT index on
MariaDB.
"""

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

FTS_TRIGGERS = {
    "runs_fts_insert": "AFTER INSERT ON reduction_runs BEGIN "
    "INSERT INTO runs_fts(rowid, title, message, experiment_ref, instrument) "
    "VALUES (new.id, new.title, new.message, new.experiment_ref, new.instrument); END",
    "runs_fts_delete": "AFTER DELETE ON reduction_runs BEGIN "
    "INSERT INTO runs_fts(runs_fts, rowid, title, message, experiment_ref, instrument) "
    "VALUES ('delete', old.id, old.title, old.message, old.experiment_ref, old.instrument); END",
    "runs_fts_update": "AFTER UPDATE OF title, message, experiment_ref, instrument "
    "ON reduction_runs BEGIN "
    "INSERT INTO runs_fts(runs_fts, rowid, title, message, experiment_ref, instrument) "
    "VALUES ('delete', old.id, old.title, old.message, old.experiment_ref, old.instrument); "
    "INSERT INTO runs_fts(rowid, title, message, experiment_ref, instrument) "
    "VALUES (new.id, new.title, new.message, new.experiment_ref, new.instrument); END",
}


def upgrade() -> None:
    with op.batch_alter_table("reduction_runs") as batch:
        batch.create_index("ix_runs_instrument_id", ["instrument", "id"])
        batch.create_index("ix_runs_status_id", ["status", "id"])
        batch.create_index("ix_runs_instrument_status_id", ["instrument", "status", "id"])
        batch.drop_index("ix_runs_instrument_number")
        batch.drop_index("ix_runs_status")
    if op.get_bind().dialect.name == "sqlite":
        op.execute(
            "CREATE VIRTUAL TABLE runs_fts USING fts5(title, message, experiment_ref, "
            "instrument, content='reduction_runs', content_rowid='id')"
        )
        for name, body in FTS_TRIGGERS.items():
            op.execute(f"CREATE TRIGGER {name} {body}")
        op.execute("INSERT INTO runs_fts(runs_fts) VALUES ('rebuild')")
    else:
        op.execute(
            "CREATE FULLTEXT INDEX ft_runs_text ON reduction_runs "
            "(title, message, experiment_ref, instrument)"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for name in FTS_TRIGGERS:
            op.execute(f"DROP TRIGGER {name}")
        op.execute("DROP TABLE runs_fts")
    else:
        op.execute("DROP INDEX ft_runs_text ON reduction_runs")
    with op.batch_alter_table("reduction_runs") as batch:
        batch.create_index("ix_runs_status", ["status"])
        batch.create_index("ix_runs_instrument_number", ["instrument", "run_number"])
        batch.drop_index("ix_runs_instrument_status_id")
        batch.drop_index("ix_runs_status_id")
        batch.drop_index("ix_runs_instrument_id")
