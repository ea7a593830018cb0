"""Settings: environment over TOML, validated, with reasons an operator can act on."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from autoreduce.paths import UnsafePathError
from autoreduce.settings import Settings

INSTRUMENT = {"plugin": "noop", "lastruns": "{root}/l.txt", "data": "{root}/{run_number}.nxs"}


def test_environment_overrides_the_toml_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "autoreduce.toml"
    config.write_text('max_attempts = 5\nbroker_url = "sql://"\n[archive]\nroot = "/data"\n')
    monkeypatch.setenv("AUTOREDUCE_CONFIG", str(config))
    monkeypatch.setenv("AUTOREDUCE_MAX_ATTEMPTS", "7")

    settings = Settings()

    assert (settings.max_attempts, settings.archive.root) == (7, Path("/data"))


def test_templates_fill_in_the_run(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        archive={"root": "/archive"},
        instruments={"WISH": {**INSTRUMENT, "data": "{root}/cycle_*/WISH{run_number:08d}.nxs"}},
    )

    assert settings.data_pattern("WISH", 44733) == "/archive/cycle_*/WISH00044733.nxs"
    assert settings.output_dir("WISH", 44733, 1, "") == (
        tmp_path / "outputs" / "WISH" / "unknown" / "44733" / "v1"
    )
    assert settings.resolved_database_url == f"sqlite:///{tmp_path / 'autoreduce.db'}"


@pytest.mark.parametrize(
    ("instruments", "reason"),
    [
        ({"wish": INSTRUMENT}, "must be upper case"),
        ({"WISH": {**INSTRUMENT, "executor": "batch"}}, "'local' or 'slurm'"),
        ({"WISH": {**INSTRUMENT, "sbatch_options": ["--mem=1G"]}}, "--mem is set by autoreduce"),
        ({"WISH": {**INSTRUMENT, "sbatch_options": ["--requeue"]}}, "retries a run itself"),
        ({"WISH": {**INSTRUMENT, "sbatch_options": ["--no-requeue"]}}, "retries a run itself"),
        ({"WISH": {**INSTRUMENT, "sbatch_options": ["--qos=a b\n"]}}, "not one `--name"),
        ({"WISH": {**INSTRUMENT, "sbatch_options": ["-p debug"]}}, "not one `--name"),
        ({"WISH": {**INSTRUMENT, "partition": "a;rm"}}, "should match pattern"),
        ({"WISH": {**INSTRUMENT, "timeout_s": 0}}, "greater than 0"),
    ],
)
def test_a_bad_instrument_table_is_refused_with_its_reason(
    instruments: dict[str, object], reason: str
) -> None:
    with pytest.raises(ValidationError, match=reason):
        Settings(instruments=instruments)


def _settings_with_output(tmp_path: Path, output: str) -> Settings:
    return Settings(data_dir=tmp_path, instruments={"WISH": {**INSTRUMENT, "output": output}})


def test_an_output_directory_is_resolved_below_the_outputs_root(tmp_path: Path) -> None:
    settings = _settings_with_output(
        tmp_path, "{outputs}/{instrument}/{experiment_ref}/{run_number}"
    )

    assert settings.output_dir("WISH", 44733, 0, "1920123") == (
        tmp_path.resolve() / "outputs" / "WISH" / "1920123" / "44733"
    )


@pytest.mark.parametrize(
    ("run_number", "run_version", "experiment_ref", "reason"),
    [
        (1, 0, "../../victim", "experiment reference '../../victim' cannot be used in a path"),
        (1, 0, "..", "experiment reference '..' cannot be used in a path"),
        (1, 0, "RB 1/2", "experiment reference 'RB 1/2' cannot be used in a path"),
        (-1, 0, "1920123", "run number '-1' cannot be used in a path"),
        (1, -2, "1920123", "run version '-2' cannot be used in a path"),
    ],
)
def test_a_value_that_is_not_a_safe_path_component_is_refused_naming_it(
    tmp_path: Path, run_number: int, run_version: int, experiment_ref: str, reason: str
) -> None:
    settings = _settings_with_output(
        tmp_path, "{outputs}/{experiment_ref}/{run_number}/v{run_version}"
    )

    with pytest.raises(UnsafePathError, match=f"^{re.escape(reason)}"):
        settings.output_dir("WISH", run_number, run_version, experiment_ref)


@pytest.mark.parametrize(
    ("output", "reason"),
    [
        ("{root}/{instrument}/{run_number}", "lies outside"),
        ("{outputs}/../{instrument}/{run_number}", "lies outside"),
        ("{outputs}", "is the outputs root itself"),
    ],
)
def test_an_output_template_leading_out_of_the_outputs_root_is_refused(
    tmp_path: Path, output: str, reason: str
) -> None:
    settings = _settings_with_output(tmp_path, output)

    with pytest.raises(UnsafePathError, match=reason):
        settings.output_dir("WISH", 1, 0, "1920123")


def test_an_outputs_subdirectory_symlinked_elsewhere_is_refused(tmp_path: Path) -> None:
    settings = _settings_with_output(tmp_path, "{outputs}/{instrument}/{run_number}")
    (tmp_path / "elsewhere").mkdir()
    settings.outputs_root.mkdir()
    (settings.outputs_root / "WISH").symlink_to(tmp_path / "elsewhere")

    with pytest.raises(
        UnsafePathError, match=f"lies outside {re.escape(str(settings.outputs_root))}$"
    ):
        settings.output_dir("WISH", 1, 0, "")
