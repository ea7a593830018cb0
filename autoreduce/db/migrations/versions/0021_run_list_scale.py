"""run lists at a million versions: newest-first indexes per filter, words on a text index

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-03

The run list orders by id (newest first), so each filter gets an index that ends in the id:
(instrument, id), (status, id), (instrument, status, id). ``ix_runs_instrument_number``
duplicated the front of ``uq_run_version`` and ``ix_runs_status`` is the front of
``ix_runs_status_id``: both go. Plain search words use a text index over title, message,
experiment and instrument: an FTS5 table kept by triggers on SQLite, a FULLTEXT index on
MariaDB. ``run_counts`` holds how many versions each instrument has in each state, kept by
triggers in the same transaction as the change (so ``/instruments`` reads 20 x 8 rows, not a
million); an update takes its two count rows in a fixed order, so two never deadlock.
"""

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
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

SQLITE_COUNT_TRIGGERS = {
    "run_counts_insert": "AFTER INSERT ON reduction_runs BEGIN "
    "INSERT INTO run_counts(instrument, status, runs) VALUES (new.instrument, new.status, 1) "
    "ON CONFLICT(instrument, status) DO UPDATE SET runs = runs + 1; END",
    "run_counts_delete": "AFTER DELETE ON reduction_runs BEGIN "
    "UPDATE run_counts SET runs = runs - 1 "
    "WHERE instrument = old.instrument AND status = old.status; END",
    "run_counts_update": "AFTER UPDATE OF instrument, status ON reduction_runs "
    "WHEN old.status IS NOT new.status OR old.instrument IS NOT new.instrument BEGIN "
    "UPDATE run_counts SET runs = runs - 1 "
    "WHERE instrument = old.instrument AND status = old.status; "
    "INSERT INTO run_counts(instrument, status, runs) VALUES (new.instrument, new.status, 1) "
    "ON CONFLICT(instrument, status) DO UPDATE SET runs = runs + 1; END",
}
_MARIADB_ADD = (
    "INSERT INTO run_counts (instrument, status, runs) VALUES (NEW.instrument, NEW.status, 1) "
    "ON DUPLICATE KEY UPDATE runs = runs + 1"
)
_MARIADB_TAKE = (
    "UPDATE run_counts SET runs = runs - 1 WHERE instrument = OLD.instrument "
    "AND status = OLD.status"
)
MARIADB_COUNT_TRIGGERS = {
    "run_counts_insert": f"AFTER INSERT ON reduction_runs FOR EACH ROW {_MARIADB_ADD}",
    "run_counts_delete": f"AFTER DELETE ON reduction_runs FOR EACH ROW {_MARIADB_TAKE}",
    # the lower (instrument, status) first, whichever way the version moves: no lock cycle
    "run_counts_update": "AFTER UPDATE ON reduction_runs FOR EACH ROW BEGIN "
    "IF NOT (OLD.status <=> NEW.status AND OLD.instrument <=> NEW.instrument) THEN "
    "IF (OLD.instrument, OLD.status) < (NEW.instrument, NEW.status) THEN "
    f"{_MARIADB_TAKE}; {_MARIADB_ADD}; ELSE {_MARIADB_ADD}; {_MARIADB_TAKE}; END IF; "
    "END IF; END",
}


def _run_counts() -> None:
    op.create_table(
        "run_counts",
        sa.Column("instrument", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("runs", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("instrument", "status", name="pk_run_counts"),
    )
    op.execute(
        "INSERT INTO run_counts (instrument, status, runs) "
        "SELECT instrument, status, count(*) FROM reduction_runs GROUP BY instrument, status"
    )
    sqlite = op.get_bind().dialect.name == "sqlite"
    for name, body in (SQLITE_COUNT_TRIGGERS if sqlite else MARIADB_COUNT_TRIGGERS).items():
        op.execute(f"CREATE TRIGGER {name} {body}")


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
    _run_counts()


def downgrade() -> None:
    for name in SQLITE_COUNT_TRIGGERS:
        op.execute(f"DROP TRIGGER {name}")
    op.drop_table("run_counts")
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
