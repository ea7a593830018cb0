"""Settings: environment over TOML, validated, with reasons an operator can act on."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

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
        ({"WISH": {**INSTRUMENT, "executor": "slurm"}}, "executor 'slurm' is not built yet"),
        ({"WISH": {**INSTRUMENT, "timeout_s": 0}}, "greater than 0"),
    ],
)
def test_a_bad_instrument_table_is_refused_with_its_reason(
    instruments: dict[str, object], reason: str
) -> None:
    with pytest.raises(ValidationError, match=reason):
        Settings(instruments=instruments)
