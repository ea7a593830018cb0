"""A pipeline through the API and a serving processor: detail with steps, from_step, cancel,
and a job (an upload reduced) that names a pipeline instead of a plugin.

The API and the processor share one database (SQLite, then MariaDB) and the SQL queue; the
steps are shell commands run in the processor's real forked children.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pluggy
import pytest
from fastapi.testclient import TestClient

from autoreduce import hookspecs
from autoreduce.db import Database
from autoreduce.plugin import PROJECT
from autoreduce.plugin_manager import Plugins
from autoreduce.settings import Settings
from autoreduce.transport.sql import SqlTransport
from plugins import noop
from queue_processor.worker import QueueProcessor
from tests.api_client import RUNS, data_file, run_body
from tests.conftest import instrument_config
from tests.polling import wait_for

Auth = Callable[..., dict[str, str]]
FLOW = """\
name: flow
steps:
  prepare:
    command: "echo prepared > prepared.txt"
  work:
    command: "test -f $AUTOREDUCE_INPUT_PREPARE/prepared.txt && sleep $WORK_S && echo done > w.txt"
    env: {WORK_S: "0"}
    rely: [prepare]
  report:
    command: "cat $AUTOREDUCE_INPUT_WORK/w.txt > report.txt"
    rely: [work]
"""
MEASURE = """\
name: measure
steps:
  count:
    command: 'wc -c < "$AUTOREDUCE_DATA_PATH" | tr -d " " > size.txt'
  label:
    command: 'echo "$LABEL" > label.txt'
    env: {LABEL: "sample"}
  report:
    command: "cat $AUTOREDUCE_INPUT_COUNT/size.txt $AUTOREDUCE_INPUT_LABEL/label.txt > report.txt"
    rely: [count, label]
"""
JOBS = "/api/v1/jobs"


@pytest.fixture
def settings(make_settings: Callable[..., Settings], database_url: str, tmp_path: Path) -> Settings:
    directory = tmp_path / "pipelines"
    directory.mkdir()
    (directory / "flow.yaml").write_text(FLOW)
    (directory / "measure.yaml").write_text(MEASURE)
    return make_settings(
        GEM=instrument_config("noop", timeout_s=120),
        FLOW=instrument_config("", pipeline="flow", timeout_s=120),
        database_url=database_url,
        pipelines_dir=directory,
        jobs={"plugins": ["noop"], "pipelines": ["measure", "gone"], "timeout_s": 120},
        public_read=True,
        heartbeat_interval_s=0.2,
        shutdown_grace_s=0,
        retry_delay_s=0,
    )


@pytest.fixture
def data_files(settings: Settings) -> None:
    for run_number in range(1, 6):
        data_file(settings, "FLOW", run_number)


@pytest.fixture
def plugins() -> Plugins:
    manager = pluggy.PluginManager(PROJECT)
    manager.add_hookspecs(hookspecs)
    manager.register(noop, name="noop")
    return Plugins(manager)


@pytest.fixture
def serving(settings: Settings, db: Database, plugins: Plugins) -> Iterator[QueueProcessor]:
    transport = SqlTransport(db.url, consumer="p1", database=db)
    processor = QueueProcessor(
        settings, database=db, transport=transport, plugins=plugins, processor_id="p1"
    )
    thread = threading.Thread(target=processor.serve, name="processor")
    thread.start()
    yield processor
    processor.stop()
    thread.join(timeout=60)
    assert not thread.is_alive()


def submit(app_client: TestClient, auth: Auth, run_number: int) -> None:
    response = app_client.post(RUNS, json=run_body(run_number, "FLOW"), headers=auth("detector"))
    assert response.status_code == 201, response.text
    app_client.app.state.api.relay.relay_once()  # type: ignore[attr-defined]


def version_reaches(
    app_client: TestClient, run_number: int, version: int, status: str
) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        versions = app_client.get(f"{RUNS}/FLOW/{run_number}").json()["versions"]
        if len(versions) > version and versions[version]["status"] == status:
            found: dict[str, Any] = versions[version]
            return found
        return None

    found: dict[str, Any] = wait_for(reached, timeout_s=30)
    return found


def states(item: dict[str, Any]) -> dict[str, str]:
    return {step["step"]: step["state"] for step in item["steps"]}


def test_run_detail_shows_steps_and_a_from_step_rerun_reuses_what_completed(
    app_client: TestClient, auth: Auth, serving: QueueProcessor
) -> None:
    submit(app_client, auth, 1)
    first = version_reaches(app_client, 1, 0, "Completed")
    assert states(first) == {"prepare": "Completed", "work": "Completed", "report": "Completed"}
    assert all(step["wall_s"] is not None and step["log"] for step in first["steps"])

    response = app_client.post(
        f"{RUNS}/FLOW/1/reruns", json={"from_step": "work"}, headers=auth("admin")
    )
    assert response.status_code == 201, response.text
    app_client.app.state.api.relay.relay_once()  # type: ignore[attr-defined]
    second = version_reaches(app_client, 1, 1, "Completed")

    reused = {step["step"]: step["reused_from_version"] for step in second["steps"]}
    assert reused == {"prepare": 0, "work": None, "report": None}
    assert any(output["name"] == "report/report.txt" for output in second["outputs"])


def test_cancelling_a_pipeline_stops_its_running_step_and_skips_the_rest(
    app_client: TestClient, auth: Auth, serving: QueueProcessor, settings: Settings
) -> None:
    flow = settings.resolved_pipelines_dir / "flow.yaml"
    flow.write_text(flow.read_text().replace('WORK_S: "0"', 'WORK_S: "60"'))
    submit(app_client, auth, 2)
    wait_for(
        lambda: (
            states(app_client.get(f"{RUNS}/FLOW/2").json()["versions"][0]).get("work")
            == "Processing"
        ),
        timeout_s=30,
    )

    response = app_client.post(
        f"{RUNS}/FLOW/2/versions/0/cancel", json={"reason": "wrong sample"}, headers=auth("admin")
    )
    assert response.status_code == 202, response.text
    cancelled = version_reaches(app_client, 2, 0, "Cancelled")

    assert states(cancelled) == {"prepare": "Completed", "work": "Cancelled", "report": "Skipped"}


def test_the_run_page_shows_each_step(
    app_client: TestClient, auth: Auth, serving: QueueProcessor
) -> None:
    submit(app_client, auth, 3)
    version_reaches(app_client, 3, 0, "Completed")

    page = app_client.get("/runs/FLOW/3")

    assert page.status_code == 200
    assert "Pipeline steps" in page.text
    for step in ("prepare", "work", "report"):
        assert f"<td>{step}</td>" in page.text
    assert page.text.count('class="state state-Completed">Completed') >= 4  # the run and steps


def test_a_job_naming_a_pipeline_reduces_its_upload_through_the_steps(
    app_client: TestClient, auth: Auth, serving: QueueProcessor
) -> None:
    scientist = auth("scientist")
    content = b"x" * 1234
    stored = app_client.post(
        "/api/v1/uploads", files={"file": ("sample.dat", content)}, headers=scientist
    )
    assert stored.status_code == 201, stored.text
    created = app_client.post(
        JOBS, json={"pipeline": "measure", "inputs": [stored.json()["id"]]}, headers=scientist
    )
    assert created.status_code == 201, created.text
    job = created.json()
    assert (job["pipeline"], job["plugin"], job["status"]) == ("measure", "", "Queued")
    app_client.app.state.api.relay.relay_once()  # type: ignore[attr-defined]

    done = wait_for(
        lambda: (
            answer
            if (answer := app_client.get(f"{JOBS}/{job['id']}", headers=scientist).json())["status"]
            in ("Completed", "Error")
            else None
        ),
        timeout_s=60,
        what="the job to finish",
    )

    assert done["status"] == "Completed", done["message"]
    assert done["pipeline"] == "measure"
    detail = app_client.get(f"{RUNS}/JOB/{job['id']}", headers=scientist).json()
    assert states(detail["versions"][0]) == {
        "count": "Completed",
        "label": "Completed",
        "report": "Completed",
    }
    urls = {output["name"]: output["url"] for output in done["outputs"]}
    report = app_client.get(urls["report/report.txt"], headers=scientist)
    assert report.text.split() == [str(len(content)), "sample"]


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"pipeline": "nosuch"}, "'nosuch' may not run jobs"),  # not in [jobs] pipelines
        ({"pipeline": "gone"}, "'gone' is unknown"),  # listed, but no such file
        ({"pipeline": "measure", "plugin": "noop"}, "exactly one of plugin and pipeline"),
        ({}, "exactly one of plugin and pipeline"),
    ],
)
def test_a_job_names_exactly_one_known_pipeline_or_plugin(
    app_client: TestClient, auth: Auth, body: dict[str, str], named: str
) -> None:
    scientist = auth("scientist")
    stored = app_client.post("/api/v1/uploads", files={"file": ("a", b"a")}, headers=scientist)
    response = app_client.post(
        JOBS, json={**body, "inputs": [stored.json()["id"]]}, headers=scientist
    )

    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert named in response.text
