"""Pipelines run by a real processor: steps in real children, as a DAG, recorded per step."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pluggy
import pytest
from sqlalchemy import select

from autoreduce import hookspecs
from autoreduce.db import Database
from autoreduce.db.models import ReductionRun, RunStatus, RunStep
from autoreduce.plugin import (
    PROJECT,
    ReductionContext,
    ReductionResult,
    Variable,
    hookimpl,
)
from autoreduce.plugin_manager import Plugins
from autoreduce.settings import Settings
from autoreduce.transport.sql import SqlTransport
from queue_processor.worker import QueueProcessor
from tests.integration.test_processor import _record_and_send, instrument, reload

THREE_STEPS = """\
name: three
description: calibrate, then focus and fit side by side, then merge
steps:
  calibrate:
    command: "echo calibrated > calibration.txt"
  focus:
    command: >-
      cat $AUTOREDUCE_INPUT_CALIBRATE/calibration.txt > focused.txt;
      echo focus-ok >> focused.txt; {focus}
    rely: [calibrate]
  fit:
    command: >-
      cp $AUTOREDUCE_INPUT_CALIBRATE/calibration.txt fitted.txt;
      echo fit-ok >> fitted.txt; {fit}
    rely: [calibrate]
  merge:
    command: "cat $AUTOREDUCE_INPUT_FOCUS/focused.txt $AUTOREDUCE_INPUT_FIT/fitted.txt > merged.txt"
    rely: [focus, fit]
"""


def pipeline_instrument(name: str) -> dict[str, Any]:
    table = instrument()
    del table["plugin"]
    return {**table, "pipeline": name, "timeout_s": 20}


@pytest.fixture
def pipelines_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "pipelines"
    directory.mkdir()
    return directory


@pytest.fixture
def settings(
    make_settings: Callable[..., Settings], database: Database, pipelines_dir: Path
) -> Settings:
    return make_settings(
        GEM=instrument(),
        PIPE=pipeline_instrument("three"),
        database_url=database.url,
        pipelines_dir=pipelines_dir,
        shutdown_grace_s=0,
        retry_delay_s=0,
    )


@pytest.fixture
def transport(database: Database) -> SqlTransport:
    return SqlTransport(database.url, consumer="test-processor", database=database)


@pytest.fixture
def processor(settings: Settings, database: Database, transport: SqlTransport) -> QueueProcessor:
    return QueueProcessor(settings, database=database, transport=transport, processor_id="p1")


def write_pipeline(directory: Path, focus: str = "exit 0", fit: str = "exit 0") -> None:
    text = THREE_STEPS.replace("{focus}", focus).replace("{fit}", fit)
    (directory / "three.yaml").write_text(text)


def steps_of(database: Database, run_id: int) -> dict[str, RunStep]:
    with database.read_session() as session:
        rows = session.scalars(select(RunStep).where(RunStep.run_id == run_id)).all()
        for row in rows:
            session.expunge(row)
    return {row.step: row for row in rows}


def reduce_one(
    settings: Settings, database: Database, transport: SqlTransport, processor: QueueProcessor,
    run_number: int, **options: Any,
) -> ReductionRun:  # fmt: skip
    run = _record_and_send(settings, database, transport, run_number, instrument="PIPE", **options)
    assert processor.process_next(wait_s=5)
    return reload(database, run)


def test_three_step_pipeline_with_a_parallel_branch_completes(
    settings: Settings, database: Database, transport: SqlTransport,
    processor: QueueProcessor, pipelines_dir: Path,
) -> None:  # fmt: skip
    write_pipeline(pipelines_dir)

    run = reduce_one(settings, database, transport, processor, 1)

    assert run.status == RunStatus.COMPLETED, run.message
    steps = steps_of(database, run.id)
    assert {name: row.state for name, row in steps.items()} == dict.fromkeys(
        ["calibrate", "focus", "fit", "merge"], "Completed"
    )
    merged = Path(run.output_dir) / "merge" / "merged.txt"
    assert merged.read_text().split() == ["calibrated", "focus-ok", "calibrated", "fit-ok"]
    names = {output.name for output in run.outputs}
    assert names >= {"merge/merged.txt", "calibrate/calibration.txt"}
    for row in steps.values():
        assert row.started_at is not None and row.finished_at is not None
        assert (Path(run.output_dir) / row.log_path).is_file()
    # focus and fit both started before either finished: they ran side by side
    assert steps["focus"].started_at < steps["fit"].finished_at  # type: ignore[operator]
    assert steps["fit"].started_at < steps["focus"].finished_at  # type: ignore[operator]


def test_failing_middle_step_fails_the_run_and_skips_its_dependants(
    settings: Settings, database: Database, transport: SqlTransport,
    processor: QueueProcessor, pipelines_dir: Path,
) -> None:  # fmt: skip
    write_pipeline(pipelines_dir, focus="exit 3")

    run = reduce_one(settings, database, transport, processor, 2)

    assert run.status == RunStatus.ERROR
    assert run.message.startswith("step focus failed:"), run.message
    assert "status 3" in run.message
    states = {name: row.state for name, row in steps_of(database, run.id).items()}
    assert states == {
        "calibrate": "Completed",
        "focus": "Error",
        "fit": "Completed",
        "merge": "Skipped",
    }


def rerun_from_focus(
    settings: Settings, database: Database, transport: SqlTransport,
    processor: QueueProcessor, run_number: int,
) -> ReductionRun:  # fmt: skip
    """Version 1 of PIPE ``run_number``, re-run from step ``focus`` over version 0, reduced."""
    rerun = _record_and_send(
        settings, database, transport, run_number, instrument="PIPE", run_version=1
    )
    with database.session() as session:
        row = session.get(ReductionRun, rerun.id)
        assert row is not None
        row.derived_from_version, row.from_step = 0, "focus"
    assert processor.process_next(wait_s=5)
    return reload(database, rerun)


def test_from_step_reruns_only_that_step_and_its_dependants(
    settings: Settings, database: Database, transport: SqlTransport,
    processor: QueueProcessor, pipelines_dir: Path,
) -> None:  # fmt: skip
    write_pipeline(pipelines_dir, focus="exit 3")
    first = reduce_one(settings, database, transport, processor, 3)
    assert first.status == RunStatus.ERROR
    write_pipeline(pipelines_dir)  # the cause fixed

    rerun = rerun_from_focus(settings, database, transport, processor, 3)

    assert rerun.status == RunStatus.COMPLETED, rerun.message
    steps = steps_of(database, rerun.id)
    assert steps["calibrate"].reused_from_version == 0
    assert steps["fit"].reused_from_version == 0
    assert steps["focus"].reused_from_version is None
    assert steps["merge"].reused_from_version is None
    assert all(row.state == "Completed" for row in steps.values())
    merged = (Path(rerun.output_dir) / "merge" / "merged.txt").read_text().split()
    assert merged == ["calibrated", "focus-ok", "calibrated", "fit-ok"]


def test_from_step_runs_a_step_whose_base_directory_is_gone_and_says_why(
    settings: Settings, database: Database, transport: SqlTransport,
    processor: QueueProcessor, pipelines_dir: Path,
) -> None:  # fmt: skip
    write_pipeline(pipelines_dir, focus="exit 3")
    first = reduce_one(settings, database, transport, processor, 4)
    assert first.status == RunStatus.ERROR
    write_pipeline(pipelines_dir)
    shutil.rmtree(Path(first.output_dir) / "calibrate")  # removed by hand since

    rerun = rerun_from_focus(settings, database, transport, processor, 4)

    assert rerun.status == RunStatus.COMPLETED, rerun.message
    steps = steps_of(database, rerun.id)
    assert all(row.reused_from_version is None for row in steps.values())
    assert all(row.state == "Completed" for row in steps.values())
    assert steps["calibrate"].message.startswith("not reused from v0: its step directory is gone")
    assert steps["fit"].message.startswith("not reused: step calibrate, which it relies on,")


@pytest.mark.parametrize(
    ("text", "line", "what"),
    [
        ("name: three\nsteps:\n  a:\n    command: x\n    colour: red\n", 5, "unknown key 'colour'"),
        (
            "name: three\nsteps:\n  a:\n    command: x\n    rely: [b]\n"
            "  b:\n    command: y\n    rely: [a]\n",
            5,
            "cycle",
        ),
        ("name: three\nsteps:\n  a:\n    plugin: no_such_plugin\n", 4, "no_such_plugin"),
    ],
    ids=["unknown-key", "cycle", "unknown-plugin"],
)
def test_broken_pipeline_fails_its_runs_naming_file_and_line_and_others_flow(
    settings: Settings, database: Database, transport: SqlTransport,
    processor: QueueProcessor, pipelines_dir: Path, text: str, line: int, what: str,
) -> None:  # fmt: skip
    (pipelines_dir / "three.yaml").write_text(text)

    broken = reduce_one(settings, database, transport, processor, 4)
    other = _record_and_send(settings, database, transport, 5, instrument="GEM")
    assert processor.process_next(wait_s=5)

    assert broken.status == RunStatus.ERROR
    assert f"{pipelines_dir / 'three.yaml'}:{line}:" in broken.message
    assert what in broken.message
    assert reload(database, other).status == RunStatus.COMPLETED


class Stepper:
    """A test plugin that writes what a pipeline step receives: its inputs and variables."""

    @hookimpl
    def reduction_variables(self, instrument: str) -> list[Variable]:
        return [Variable("label", "str", "x", "A label")]

    @hookimpl
    def reduce(self, context: ReductionContext) -> ReductionResult:
        calibration = (context.inputs["calibrate"] / "calibration.txt").read_text().strip()
        received = {
            "inputs": sorted(context.inputs),
            "calibration": calibration,
            "factor": context.variables["factor"],
            "label": context.variables["label"],
            "env": os.environ.get("STEP_ENV", ""),
        }
        path = context.output_dir / "received.json"
        path.write_text(json.dumps(received))
        return ReductionResult(files=[path], summary="stepped")


PLUGIN_STEP = """\
name: plugged
steps:
  calibrate:
    command: "echo calibrated > calibration.txt"
  focus:
    plugin: stepper
    env: {STEP_ENV: "from the file"}
    options:
      factor: {type: float, default: 2.0, help: "Scale"}
    rely: [calibrate]
  slow:
    command: "sleep 30"
    timeout_s: 1
"""


@pytest.fixture
def stepper_processor(
    settings: Settings, database: Database, transport: SqlTransport, pipelines_dir: Path
) -> QueueProcessor:
    manager = pluggy.PluginManager(PROJECT)
    manager.add_hookspecs(hookspecs)
    manager.register(Stepper(), name="stepper")
    (pipelines_dir / "plugged.yaml").write_text(PLUGIN_STEP)
    plugged = settings.model_copy(
        update={
            "instruments": {
                **settings.instruments,
                "PIPE": settings.instruments["PIPE"].model_copy(update={"pipeline": "plugged"}),
            }
        }
    )
    return QueueProcessor(
        plugged, database=database, transport=transport, plugins=Plugins(manager), processor_id="p2"
    )


def test_plugin_step_gets_its_inputs_options_and_env_and_a_step_keeps_its_own_time_limit(
    settings: Settings, database: Database, transport: SqlTransport,
    stepper_processor: QueueProcessor,
) -> None:  # fmt: skip
    run = reduce_one(settings, database, transport, stepper_processor, 6, factor=3.0)

    steps = steps_of(database, run.id)
    assert steps["focus"].state == "Completed", steps["focus"].message
    received = json.loads((Path(run.output_dir) / "focus" / "received.json").read_text())
    assert received == {
        "inputs": ["calibrate"],
        "calibration": "calibrated",
        "factor": 3.0,
        "label": "x",
        "env": "from the file",
    }
    assert steps["slow"].state == "Error"
    assert steps["slow"].timeout_s == 1
    assert run.status == RunStatus.ERROR
    assert run.message.startswith("step slow failed:")
    assert "1 s time limit" in run.message


def test_pipeline_parallel_steps_of_one_runs_the_branches_one_after_the_other(
    settings: Settings, database: Database, transport: SqlTransport, pipelines_dir: Path
) -> None:
    write_pipeline(pipelines_dir)
    one_at_a_time = settings.model_copy(update={"pipeline_parallel_steps": 1})
    processor = QueueProcessor(
        one_at_a_time, database=database, transport=transport, processor_id="p3"
    )

    run = reduce_one(settings, database, transport, processor, 7)

    assert run.status == RunStatus.COMPLETED, run.message
    steps = steps_of(database, run.id)
    focus, fit = steps["focus"], steps["fit"]
    assert focus.started_at and focus.finished_at and fit.started_at and fit.finished_at
    assert focus.finished_at <= fit.started_at or fit.finished_at <= focus.started_at
