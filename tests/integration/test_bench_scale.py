"""Bench table (f)'s loader fills a migrated database in issue 14's shape, on both databases."""

from __future__ import annotations

from sqlalchemy import func, select

from autoreduce.db import Database
from autoreduce.db.models import Instrument, ReductionRun, RunCount, RunOutput
from bench import scale


def test_loader_fills_the_migrated_schema_in_the_issue_14_shape(database: Database) -> None:
    stats = scale.load(database.url, 2100)

    with database.read_session() as session:
        versions = int(session.scalar(select(func.count()).select_from(ReductionRun)) or 0)
        reruns = int(session.scalar(select(func.count()).where(ReductionRun.run_version == 1)) or 0)
        errors = int(
            session.scalar(select(func.count()).where(ReductionRun.status == "Error")) or 0
        )
        outputs = int(session.scalar(select(func.count()).select_from(RunOutput)) or 0)
        instruments = int(session.scalar(select(func.count()).select_from(Instrument)) or 0)
    shape = scale.Shape(2100)
    assert instruments == len(scale.INSTRUMENTS)
    assert versions == stats.versions == len(scale.INSTRUMENTS) * shape.runs_per_instrument + reruns
    assert 0.02 * versions < reruns < 0.09 * versions
    assert 0 < errors == stats.errors < 0.07 * versions
    assert outputs == stats.outputs and abs(outputs / versions - 2.5) < 0.01


def test_the_chosen_run_has_two_versions(database: Database) -> None:
    scale.load(database.url, 2100)
    shape = scale.Shape(2100)

    with database.read_session() as session:
        refs = session.scalars(
            select(ReductionRun.experiment_ref).where(
                ReductionRun.instrument == shape.instrument,
                ReductionRun.run_number == shape.run_number,
            )
        ).all()
    assert refs == [shape.experiment, shape.experiment]


def test_the_loader_keeps_the_run_counts_and_the_text_index(database: Database) -> None:
    scale.load(database.url, 2100)

    with database.read_session() as session:
        counted = session.scalar(select(func.sum(RunCount.runs)))
        runs = session.scalar(select(func.count()).select_from(ReductionRun))
    assert runs and counted == runs


def test_the_insert_cost_is_measured_on_both_schemas_side_by_side() -> None:
    result = scale.measure_insert_cost("sqlite", versions=500, posts=3)

    assert result.failure == ""
    assert len(result.before_ms) == len(result.after_ms) == 3
    table = scale.insert_cost_table([result]).render()
    assert "SQLite" in table and "x" in table
