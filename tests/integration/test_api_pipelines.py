"""Pipelines through the API: the files listed with their errors, a run's steps, from_step."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from autoreduce.plugin_manager import Plugins
from autoreduce.settings import Settings
from rest_api import create_app
from tests.api_client import RUNS, data_file, run_body
from tests.conftest import instrument_config

GOOD = """\
name: good
description: two steps
steps:
  calibrate:
    plugin: noop
    options:
      factor: {type: float, default: 1.5, help: "scale"}
  focus:
    command: ["true"]
    rely: [calibrate]
"""


@pytest.fixture
def pipeline_settings(
    make_settings: Callable[..., Settings], database_url: str, tmp_path: Path
) -> Settings:
    directory = tmp_path / "pipelines"
    directory.mkdir()
    (directory / "good.yaml").write_text(GOOD)
    broken = "name: broken\nsteps:\n  a:\n    plugin: noop\n    x: 1\n"
    (directory / "broken.yaml").write_text(broken)
    good = instrument_config("") | {"pipeline": "good"}
    return make_settings(
        GEM="noop", PIPE=good, database_url=database_url, public_read=True,
        pipelines_dir=directory,
    )  # fmt: skip


@pytest.fixture
def client(pipeline_settings: Settings, plugins: Plugins) -> Iterator[TestClient]:
    data_file(pipeline_settings, "PIPE", 10)
    with TestClient(create_app(pipeline_settings, relay=False, plugins=plugins)) as app_client:
        yield app_client


def test_pipelines_are_listed_with_steps_and_a_broken_file_with_file_and_line(
    client: TestClient, pipeline_settings: Settings
) -> None:
    listed = {item["name"]: item for item in client.get("/api/v1/pipelines").json()}

    assert [step["name"] for step in listed["good"]["steps"]] == ["calibrate", "focus"]
    assert listed["good"]["instruments"] == ["PIPE"]
    assert listed["good"]["steps"][1]["rely"] == ["calibrate"]
    broken = pipeline_settings.resolved_pipelines_dir / "broken.yaml"
    assert listed["broken"]["error"].startswith(f"{broken}:5:")
    assert "unknown key 'x'" in listed["broken"]["error"]


def test_pipeline_run_takes_its_steps_options_and_from_step_is_checked(
    client: TestClient, auth: Callable[..., dict[str, str]]
) -> None:
    created = client.post(RUNS, json=run_body(10, "PIPE"), headers=auth("detector"))
    assert created.status_code == 201, created.text
    assert created.json()["variables"] == {"factor": 1.5}

    unknown = client.post(
        f"{RUNS}/PIPE/10/reruns", json={"from_step": "fit"}, headers=auth("admin")
    )
    rerun = client.post(
        f"{RUNS}/PIPE/10/reruns", json={"from_step": "focus"}, headers=auth("admin")
    )

    assert unknown.status_code == 422
    assert "calibrate, focus" in unknown.json()["detail"]
    assert rerun.status_code == 201, rerun.text
    assert rerun.json()["from_step"] == "focus"
    detail = client.get(f"{RUNS}/PIPE/10").json()
    assert [version["from_step"] for version in detail["versions"]] == ["", "focus"]
