"""The processor's own check of a child's verdict: only files inside the output directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from queue_processor.isolation import Outcome
from queue_processor.record import refused_output


@pytest.fixture
def output_dir(tmp_path: Path) -> Path:
    """An output directory with ``result.txt``, ``plots/i.png``, and symlinks in and out."""
    directory = tmp_path / "outputs" / "v0"
    (directory / "plots").mkdir(parents=True)
    (directory / "result.txt").write_text("reduced")
    (directory / "plots" / "i.png").write_bytes(b"png")
    (tmp_path / "secret.txt").write_text("not an output")
    (directory / "out.txt").symlink_to(tmp_path / "secret.txt")
    (directory / "alias.txt").symlink_to(directory / "result.txt")
    return directory


def test_files_and_plots_inside_the_output_directory_are_accepted(output_dir: Path) -> None:
    outcome = Outcome(ok=True, files=["result.txt"], plots=["plots/i.png"])

    assert refused_output(output_dir, outcome) is None


@pytest.mark.parametrize(
    "name", ["/etc/passwd", "../secret.txt", "out.txt", "alias.txt", "plots", "", "missing.txt"]
)
def test_a_file_that_is_not_a_regular_file_named_as_itself_inside_is_refused(
    output_dir: Path, name: str
) -> None:
    outcome = Outcome(ok=True, files=["result.txt", name])

    assert refused_output(output_dir, outcome) == (
        f"plugin returned file {name!r}, which is not a file inside its output directory"
    )


def test_a_plot_is_refused_as_a_plot(output_dir: Path) -> None:
    outcome = Outcome(ok=True, plots=["../secret.txt"])

    assert refused_output(output_dir, outcome) == (
        "plugin returned plot '../secret.txt', which is not a file inside its output directory"
    )
