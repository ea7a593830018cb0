"""A newcomer's configuration mistakes are refused with the key, the file and a suggestion.

Every test runs in its own empty working directory (``tests/conftest.py``), with no
``AUTOREDUCE_CONFIG`` unless it sets one.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from autoreduce.cli import main
from autoreduce.settings import ConfigError, check_template, load_settings

GEM = """
[instruments.GEM]
plugin = "noop"
lastruns = "{root}/NDXGEM/logs/lastruns.txt"
data = "{root}/NDXGEM/data/GEM{run_number:08d}.nxs"
"""


def autoreduce(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def write_config(text: str, name: str = "autoreduce.toml") -> Path:
    path = Path.cwd() / name
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "command",
    [["config", "check"], ["token", "list"], ["dlq", "list"], ["db", "upgrade"], ["up"]],
)
def test_a_config_file_named_in_the_environment_that_does_not_exist_is_an_error(
    monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    missing = Path.cwd() / "typo.toml"
    monkeypatch.setenv("AUTOREDUCE_CONFIG", str(missing))

    result = autoreduce(*command)

    assert result.exit_code == 2
    assert f"config file {missing} not found" in result.output
    assert not (Path.cwd() / "autoreduce-data").exists()


def test_without_autoreduce_config_the_working_directorys_autoreduce_toml_is_read() -> None:
    write_config(GEM)

    settings = load_settings()

    assert list(settings.instruments) == ["GEM"]


def test_without_autoreduce_config_or_autoreduce_toml_the_defaults_apply() -> None:
    settings = load_settings()

    assert (settings.instruments, settings.data_dir) == ({}, Path.cwd() / "autoreduce-data")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("max_attempt = 3\n", "unknown key 'max_attempt' (did you mean 'max_attempts'?)"),
        ('[archive]\nroots = "/a"\n', "unknown key 'archive.roots' (did you mean 'root'?)"),
        (
            GEM + "timout_s = 5\n",
            "unknown key 'instruments.GEM.timout_s' (did you mean 'timeout_s'?)",
        ),
    ],
)
def test_an_unknown_key_in_the_file_is_refused_with_the_file_and_a_suggestion(
    text: str, expected: str
) -> None:
    path = write_config(text)

    result = autoreduce("config", "check")

    assert result.exit_code == 2
    assert f"{path}: {expected}" in result.output


def test_every_problem_is_reported_at_once_one_per_line() -> None:
    write_config("max_attempt = 3\n" + GEM.replace("{run_number:08d}", "{run_numbr}"))

    result = autoreduce("config", "check")

    lines = result.output.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 2
    assert "max_attempt" in lines[0] and "{run_numbr}" in lines[1]


@pytest.mark.parametrize(
    ("kind", "template", "reason"),
    [
        ("data", "{root}/{run_numbr}.nxs", "unknown placeholder {run_numbr} (did you mean"),
        ("lastruns", "{root}/{run_number}/lastruns.txt", "unknown placeholder {run_number}"),
        ("output", "{outputs}/{experiment}", "did you mean {experiment_ref}?"),
        ("data", "{root}/{instrument:08d}.nxs", "cannot be filled in"),
        ("data", "{root}/{}.nxs", "unknown placeholder {}"),
        ("data", "{root/x.nxs", "malformed"),
    ],
)
def test_a_template_with_a_placeholder_it_may_not_use_is_refused(
    kind: str, template: str, reason: str
) -> None:
    with pytest.raises(ValueError, match=reason.replace("{", r"\{").replace("(", r"\(")):
        check_template(kind, template)


def test_a_format_spec_on_an_allowed_placeholder_is_accepted() -> None:
    assert check_template("data", "{root}/cycle_*/GEM{run_number:08d}.nxs")


def test_an_unknown_placeholder_in_the_file_is_refused_naming_the_instrument() -> None:
    path = write_config(GEM.replace("{run_number:08d}", "{run_numbr}"))

    with pytest.raises(ConfigError) as raised:
        load_settings()

    [problem] = raised.value.problems
    assert problem.startswith(f"{path}: instruments.GEM.data: data template")
    assert "(did you mean {run_number}?)" in problem


def test_an_instrument_without_lastruns_or_data_is_refused() -> None:
    write_config('[instruments.GEM]\nplugin = "noop"\n')

    result = autoreduce("config", "check")

    assert result.exit_code == 2
    assert "instruments.GEM.lastruns: missing" in result.output
    assert "instruments.GEM.data: missing" in result.output


def test_a_plugin_that_is_not_installed_is_refused_with_a_suggestion() -> None:
    write_config(GEM.replace('"noop"', '"powder_difraction"'))

    result = autoreduce("config", "check")

    assert result.exit_code == 2
    assert "instruments.GEM.plugin: no plugin named 'powder_difraction' is installed" in (
        result.output
    )
    assert "(did you mean 'powder_diffraction'?)" in result.output


def test_instrument_variables_the_plugin_does_not_declare_are_refused() -> None:
    write_config(GEM + "[instruments.GEM.variables]\nsleep = 1\n")

    result = autoreduce("config", "check")

    assert result.exit_code == 2
    assert "instruments.GEM.variables: unknown variable(s) sleep" in result.output


def test_a_service_refuses_to_start_with_a_plugin_that_is_not_installed() -> None:
    write_config(GEM.replace('"noop"', '"nope"'))

    result = autoreduce("process")  # the detector does not load plugins; the reducers do

    assert result.exit_code == 2
    assert "no plugin named 'nope' is installed" in result.output


def test_a_good_configuration_is_reported_ok_with_its_instruments() -> None:
    path = write_config(GEM)

    result = autoreduce("config", "check")

    assert result.exit_code == 0
    assert f"configuration OK: 1 instruments (GEM); read from {path}" in result.output


def test_an_unknown_autoreduce_environment_variable_is_warned_about_not_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    write_config(GEM)
    monkeypatch.setenv("AUTOREDUCE_MAX_ATEMPTS", "4")

    result = autoreduce("config", "check")

    assert result.exit_code == 0
    assert "warning: environment variable AUTOREDUCE_MAX_ATEMPTS is not a setting" in (
        result.output
    )
    assert "(did you mean AUTOREDUCE_MAX_ATTEMPTS?)" in result.output


def test_up_without_instruments_says_how_to_add_one() -> None:
    result = autoreduce("up")

    assert result.exit_code == 2
    assert "no instruments are configured" in result.output
    assert "[instruments.WISH]" in result.output and "autoreduce config check" in result.output


def test_jobs_and_storage_mistakes_are_reported_with_their_keys() -> None:
    write_config('storage = "s3://ak:sk@bucket/x"\n[jobs]\nplugins = ["nop"]\ntimeout = 5\n' + GEM)

    result = autoreduce("config", "check")

    assert result.exit_code == 2
    assert "unknown key 'jobs.timeout' (did you mean 'timeout_s'?)" in result.output
    assert "storage" in result.output and "no credentials in the URL" in result.output
    assert "ak:sk" not in result.output  # a URL that carries credentials is not echoed


def test_a_job_plugin_that_is_not_installed_is_reported() -> None:
    write_config('[jobs]\nplugins = ["nop"]\n' + GEM)

    result = autoreduce("config", "check")

    assert result.exit_code == 2
    assert (
        "jobs.plugins: no plugin named 'nop' is installed (did you mean 'noop'?)" in result.output
    )
