"""A third-party plugin, installed for real, is held until an admin approves its version.

The test writes a tiny package with an ``autoreduce.plugins`` entry point, installs it with pip
into a temporary environment that sees this project's environment, and runs ``autoreduce up``
and ``autoreduce plugins approve --local`` from that environment. Version 1.0 is held until
approved, then reduced; upgrading the package to 1.1 holds the next run again.
"""

from __future__ import annotations

import json
import os
import site
import subprocess
import sys
import venv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.facility import Facility, start_facility, stop_facility
from tests.polling import wait_for

DISTRIBUTION = "autoreduce-tiny-plugin"

PLUGIN_SOURCE = '''\
"""A tiny third-party reduction plugin (written by the test)."""

from autoreduce.plugin import ReductionContext, ReductionResult, Variable, hookimpl

VERSION = "{version}"


@hookimpl
def reduction_variables(instrument: str) -> list[Variable]:
    return []


@hookimpl
def reduce(context: ReductionContext) -> ReductionResult:
    written = context.output_dir / "tiny.txt"
    written.write_text(f"{{VERSION}} {{context.run.run_number}}\\n")
    return ReductionResult(files=[written], summary=f"tiny {{VERSION}}")
'''

PYPROJECT = """\
[build-system]
requires = ["flit_core>=3.9"]
build-backend = "flit_core.buildapi"

[project]
name = "{distribution}"
version = "{version}"
description = "A tiny third-party reduction plugin"

[project.entry-points."autoreduce.plugins"]
tiny = "tiny_plugin"

[tool.flit.module]
name = "tiny_plugin"
"""


@dataclass
class PluginEnvironment:
    """A virtual environment that sees this project's packages, plus the tiny plugin."""

    root: Path

    @property
    def python(self) -> str:
        return str(self.root / "env" / "bin" / "python")

    def install(self, version: str) -> None:
        """Build and install the tiny plugin at ``version`` (offline; an upgrade replaces it)."""
        source = self.root / f"tiny-{version}"
        source.mkdir()
        (source / "pyproject.toml").write_text(
            PYPROJECT.format(distribution=DISTRIBUTION, version=version)
        )
        (source / "tiny_plugin.py").write_text(PLUGIN_SOURCE.format(version=version))
        pip = [sys.executable, "-m", "pip", "--python", self.python, "install", "-q"]
        offline = ["--no-deps", "--no-index", "--no-build-isolation"]
        subprocess.run(
            [*pip, *offline, str(source)],
            check=True,
            capture_output=True,
            timeout=300,
        )


@pytest.fixture(scope="module")
def plugin_environment(tmp_path_factory: pytest.TempPathFactory) -> PluginEnvironment:
    """One environment per session: ``--system-site-packages`` from this project's interpreter,
    and a ``.pth`` that adds this project's environment (where autoreduce is installed)."""
    root = tmp_path_factory.mktemp("plugin-env")
    venv.EnvBuilder(system_site_packages=True, with_pip=False).create(root / "env")
    environment = PluginEnvironment(root)
    purelib = subprocess.run(
        [environment.python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    project_site = site.getsitepackages()[0]
    (Path(purelib) / "autoreduce_project.pth").write_text(
        f"import site; site.addsitedir({project_site!r})\n"
    )
    environment.install("1.0")
    return environment


def _autoreduce(environment: PluginEnvironment, root: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOREDUCE_")}
    env["AUTOREDUCE_CONFIG"] = str(root / "autoreduce.toml")
    result = subprocess.run(
        [environment.python, "-m", "autoreduce", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def _held(facility: Facility, run_number: int) -> dict[str, Any]:
    def seen_held() -> dict[str, Any] | None:
        run = facility.run("TINY", run_number)
        return run if run and run["message"].startswith("held: ") else None

    held: dict[str, Any] = wait_for(seen_held, timeout_s=60, interval_s=0.2)
    return held


def _tiny_output(facility: Facility, run: dict[str, Any]) -> str:
    """The text of the run's ``tiny.txt``, fetched through the API."""
    [output] = [item for item in run["outputs"] if item["name"] == "tiny.txt"]
    response = requests.get(f"{facility.api_url}{output['url']}", timeout=10)
    response.raise_for_status()
    return response.text


@pytest.fixture
def facility_in(plugin_environment: PluginEnvironment) -> Iterator[list[Facility]]:
    started: list[Facility] = []
    yield started
    for facility in started:
        stop_facility(facility)


def test_a_new_plugin_is_held_until_approved_and_its_upgrade_is_held_again(
    plugin_environment: PluginEnvironment, facility_in: list[Facility], tmp_path: Path
) -> None:
    instruments = {"TINY": {"plugin": "tiny"}}
    facility = start_facility(tmp_path, instruments, processors=1, python=plugin_environment.python)
    facility_in.append(facility)
    listed = json.loads(
        _autoreduce(plugin_environment, tmp_path, "plugins", "list", "--local", "--json")
    )
    tiny = {item["name"]: item for item in listed}["tiny"]
    assert (tiny["distribution"], tiny["version"], tiny["state"]) == (
        DISTRIBUTION,
        "1.0",
        "pending",
    )

    facility.play("TINY", 1)
    held = _held(facility, 1)
    assert (held["status"], held["message"]) == (
        "Queued",
        "held: plugin tiny 1.0 is pending approval",
    )

    _autoreduce(plugin_environment, tmp_path, "plugins", "approve", "tiny", "--local")
    done = facility.wait_final("TINY", 1)
    assert done["status"] == "Completed", done
    assert _tiny_output(facility, done) == "1.0 1\n"

    stop_facility(facility)
    plugin_environment.install("1.1")
    upgraded = start_facility(tmp_path, instruments, processors=1, python=plugin_environment.python)
    facility_in.append(upgraded)

    upgraded.play("TINY", 2)
    assert _held(upgraded, 2)["message"] == "held: plugin tiny 1.1 is pending approval"

    _autoreduce(plugin_environment, tmp_path, "plugins", "approve", "tiny", "--local")
    again = upgraded.wait_final("TINY", 2)
    assert again["status"] == "Completed", again
    assert _tiny_output(upgraded, again) == "1.1 2\n"
