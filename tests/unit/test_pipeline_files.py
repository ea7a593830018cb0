"""Pipeline files: what loads, and errors that name the file and the line."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from autoreduce.pipelines import PipelineError, load_pipeline, parse_pipeline, pipeline_names

FILE = Path("/pipelines/p.yaml")
INSTALLED = ["noop", "powder_diffraction"]


def error_of(text: str) -> str:
    with pytest.raises(PipelineError) as caught:
        parse_pipeline(FILE, text, INSTALLED)
    return str(caught.value)


def test_a_valid_file_loads_in_dependency_order_with_its_options_as_variables() -> None:
    text = """\
name: p
description: d
steps:
  merge: {command: "true", rely: [focus, fit]}
  fit: {command: ["true"], rely: [calibrate]}
  focus:
    plugin: noop
    rely: [calibrate]
    options:
      bins: {type: int, default: 10, help: "Bins"}
  calibrate: {plugin: noop, memory_mb: 64, timeout_s: 5, env: {A: "1"}}
"""
    pipeline = parse_pipeline(FILE, text, INSTALLED)

    order = list(pipeline.order)
    assert order.index("calibrate") < order.index("focus") < order.index("merge")
    assert order.index("fit") < order.index("merge")
    assert [v.name for v in pipeline.variables()] == ["bins"]
    assert pipeline.dependants("calibrate") == {"focus", "fit", "merge"}
    assert pipeline.dependants("focus") == {"merge"}


@pytest.mark.parametrize(
    ("text", "line", "what"),
    [
        ("name: p\nsteps:\n  a:\n    command: x\n    colour: red\n", 5, "unknown key 'colour'"),
        ("name: p\nsteps:\n  a: {command: x}\nextra: 1\n", 4, "unknown key 'extra'"),
        (
            "name: p\nsteps:\n  a:\n    plugin: noop\n    options:\n      n: {type: int,"
            " default: 1, colour: 2}\n",
            6,
            "unknown key 'colour'",
        ),
        ("name: p\nsteps:\n  a:\n    plugin: nope\n", 4, "no plugin named 'nope'"),
        ("name: p\nsteps:\n  a:\n    command: x\n    rely: [b]\n", 5, "'b', which is not a step"),
        ("name: p\nsteps:\n  a:\n    command: x\n    plugin: noop\n", 3, "exactly one of"),
        ("name: p\nsteps:\n  a: {command: x}\n  a: {command: y}\n", 4, "appears twice"),
        ("name: p\nsteps:\n  a:\n    command: x\n    cpus: many\n", 5, "cpus"),
        ("name: p\nsteps:\n  a:\n    command: x\n    executor: k8s\n", 5, "executor"),
        ("name: p\nsteps: [\n", 3, "not valid YAML"),
    ],
)
def test_errors_name_the_file_and_the_line(text: str, line: int, what: str) -> None:
    message = error_of(text)

    assert message.startswith(f"{FILE}:{line}:"), message
    assert what in message


def test_a_cycle_is_named_with_its_steps() -> None:
    text = "name: p\nsteps:\n  a: {command: x, rely: [c]}\n  b: {command: x, rely: [a]}\n"
    text += "  c:\n    command: x\n    rely: [b]\n"

    message = error_of(text)

    assert "cycle" in message
    assert message.startswith(f"{FILE}:")
    assert all(step in message for step in ("a", "b", "c"))


@given(st.integers(min_value=2, max_value=12))
def test_any_ring_of_steps_is_refused_as_a_cycle(size: int) -> None:
    lines = ["name: p", "steps:"]
    for index in range(size):
        lines.append(f"  s{index}: {{command: x, rely: [s{(index + 1) % size}]}}")

    with pytest.raises(PipelineError, match="cycle"):
        parse_pipeline(FILE, "\n".join(lines) + "\n", INSTALLED)


def test_the_name_must_match_the_file(tmp_path: Path) -> None:
    (tmp_path / "one.yaml").write_text("name: two\nsteps:\n  a: {command: x}\n")

    with pytest.raises(PipelineError, match="differs from the file's name"):
        load_pipeline(tmp_path, "one")
    assert pipeline_names(tmp_path) == ["one"]


def test_a_pipeline_name_never_leaves_the_directory(tmp_path: Path) -> None:
    with pytest.raises(PipelineError, match="must be letters"):
        load_pipeline(tmp_path, "../etc/passwd")
