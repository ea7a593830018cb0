"""The ``autoreduce`` group imports a subcommand's module only when the subcommand is named.

Its table (:data:`autoreduce.cli.COMMANDS`) carries each command's help, so ``autoreduce --help``
must read exactly as if every command were loaded, and must name every command.
"""

from __future__ import annotations

import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from autoreduce.cli import COMMANDS, main

CLIENT_LIBRARIES = ("requests", "rich", "yaml")
"""What the client commands need and a service does not."""


def _first_paragraph(command: click.Command) -> str:
    return " ".join((command.help or "").split("\n\n")[0].split())


@pytest.mark.parametrize("lazy", COMMANDS, ids=[lazy.name for lazy in COMMANDS])
def test_the_table_names_and_describes_each_command_as_the_command_itself(lazy: object) -> None:
    from autoreduce.cli.startup import LazyCommand

    assert isinstance(lazy, LazyCommand)
    command = lazy.load()
    assert command.name == lazy.name
    assert lazy.help == _first_paragraph(command)


def test_top_level_help_reads_as_with_every_command_loaded() -> None:
    eager = click.Group(
        name=main.name,
        commands={lazy.name: lazy.load() for lazy in COMMANDS},
        params=main.params,
        help=main.help,
        epilog=main.epilog,
    )
    runner = CliRunner()
    for width in (80, 120):  # the short help is cut to fit the terminal
        lazy_help = runner.invoke(main, ["--help"], terminal_width=width, prog_name="autoreduce")
        loaded = runner.invoke(eager, ["--help"], terminal_width=width, prog_name="autoreduce")
        assert lazy_help.exit_code == 0, lazy_help.output
        assert lazy_help.output == loaded.output
    assert len(COMMANDS) == len({lazy.name for lazy in COMMANDS})


def test_an_unknown_command_is_a_usage_error() -> None:
    result = CliRunner().invoke(main, ["nosuch"], prog_name="autoreduce")
    assert result.exit_code == 2
    assert "No such command 'nosuch'" in result.output


def test_runs_keeps_requeue_from_the_queue_tools() -> None:
    result = CliRunner().invoke(main, ["runs", "--help"], prog_name="autoreduce")
    assert result.exit_code == 0, result.output
    assert "requeue" in result.output


def _modules_after(*args: str) -> set[str]:
    """Top-level modules imported by ``autoreduce ARGS`` (a fresh interpreter)."""
    code = (
        "import sys\n"
        "from autoreduce.cli import main\n"
        f"main({list(args)!r}, prog_name='autoreduce', standalone_mode=False)\n"
        "print(' '.join(sorted({name.split('.')[0] for name in sys.modules})))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    return set(result.stdout.split())


@pytest.mark.parametrize("args", [("--help",), ("process", "--help"), ("api", "--help")])
def test_help_and_the_services_import_no_client_library(args: tuple[str, ...]) -> None:
    assert sorted(_modules_after(*args) & set(CLIENT_LIBRARIES)) == []


def test_a_client_command_loads_its_libraries_when_named() -> None:
    """The check above can see them: ``runs`` does import them."""
    assert {"requests", "rich"} <= _modules_after("runs", "--help")
