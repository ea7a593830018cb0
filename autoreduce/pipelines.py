"""Pipelines: multi-step reductions described in YAML files, run as a DAG of steps.

A pipeline is one file ``<pipelines_dir>/<name>.yaml`` (README "Pipelines" is the contract)::

    name: powder
    description: calibrate, then focus and fit in parallel
    steps:
      calibrate:
        plugin: noop
        memory_mb: 512
        options:
          vanadium_run: {type: int, default: 0, help: "Vanadium run"}
      focus:
        command: ["python", "-m", "focus"]
        rely: [calibrate]

The file is validated when loaded: unknown keys, a ``rely`` naming no step, a cycle in ``rely``,
a plugin that is not installed, all raise :class:`PipelineError` naming the file and the line.
This module is data only: :mod:`queue_processor.pipeline_runner` runs the steps.
"""

from __future__ import annotations

import functools
import graphlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from autoreduce.plugin import Variable, VariableType

if TYPE_CHECKING:  # PyYAML is imported when a pipeline file is read, not by an idle processor
    import yaml

STEP_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,47}$")
PIPELINE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
MAX_FILE_BYTES = 256 * 1024


class PipelineError(ValueError):
    """A pipeline file that cannot be used; the message names the file and the line."""


class _Lined(dict[str, Any]):
    """A YAML mapping that remembers the line (1-based) of itself and of each key."""

    line: int = 0
    key_lines: dict[str, int]


class _LinedList(list[Any]):
    line: int = 0


@functools.cache
def _line_loader() -> type[yaml.SafeLoader]:
    """PyYAML's safe loader keeping lines, refusing duplicate keys (PyYAML imported here)."""
    import yaml

    class _LineLoader(yaml.SafeLoader):
        """PyYAML's safe loader keeping lines, refusing duplicate keys."""

        def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> Any:
            mapping = _Lined()
            mapping.line = node.start_mark.line + 1
            mapping.key_lines = {}
            for key_node, value_node in node.value:
                key = self.construct_object(key_node, deep=True)
                if not isinstance(key, str):
                    raise yaml.MarkedYAMLError(
                        problem=f"key {key!r} is not a string", problem_mark=key_node.start_mark
                    )
                if key in mapping:
                    raise yaml.MarkedYAMLError(
                        problem=f"key {key!r} appears twice", problem_mark=key_node.start_mark
                    )
                mapping[key] = self.construct_object(value_node, deep=True)
                mapping.key_lines[key] = key_node.start_mark.line + 1
            return mapping

        def construct_sequence(self, node: yaml.SequenceNode, deep: bool = False) -> Any:
            items = _LinedList(self.construct_object(child, deep=True) for child in node.value)
            items.line = node.start_mark.line + 1
            return items

    _LineLoader.add_constructor("tag:yaml.org,2002:map", _LineLoader.construct_mapping)
    _LineLoader.add_constructor("tag:yaml.org,2002:seq", _LineLoader.construct_sequence)
    return _LineLoader


class StepOption(BaseModel):
    """A value a scientist may set for one step, declared like a plugin's variable."""

    model_config = ConfigDict(extra="forbid")

    type: VariableType
    default: Any
    help: str = ""
    advanced: bool = False
    choices: list[Any] | None = None
    minimum: float | None = None
    maximum: float | None = None

    def as_variable(self, name: str) -> Variable:
        choices = tuple(self.choices) if self.choices is not None else None
        return Variable(
            name, self.type, self.default, self.help, self.advanced, choices, self.minimum,
            self.maximum,
        )  # fmt: skip


class Step(BaseModel):
    """One step: a plugin (or a command), its resources, its options and what it relies on."""

    model_config = ConfigDict(extra="forbid")

    plugin: str | None = Field(None, description="Entry-point name of the reduction plugin.")
    command: list[str] | str | None = Field(
        None, description="argv list, or one string run by /bin/sh -c (the operator's own)."
    )
    cpus: int = Field(1, ge=1, le=1024, description="CPUs the step needs (recorded; Slurm).")
    memory_mb: int | None = Field(None, gt=0, description="Memory it may add, MiB.")
    timeout_s: float | None = Field(None, gt=0, description="Wall-clock limit, seconds.")
    executor: Literal["local", "slurm"] = "local"
    env: dict[str, str] = Field(default_factory=dict, description="Extra environment variables.")
    options: dict[str, StepOption] = Field(default_factory=dict)
    rely: list[str] = Field(default_factory=list, description="Steps that must Complete first.")

    @field_validator("env")
    @classmethod
    def _env_names(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", name):
                raise ValueError(f"environment variable name {name!r} is not valid")
        return value


class PipelineFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    steps: dict[str, Step] = Field(min_length=1)


@dataclass(frozen=True)
class Pipeline:
    """A loaded, validated pipeline: steps in file order and a topological order."""

    name: str
    description: str
    path: Path
    steps: dict[str, Step]
    order: tuple[str, ...]  # every step after all it relies on

    def variables(self) -> list[Variable]:
        """Every step's options as variables (a name shared by two steps is declared once)."""
        found: dict[str, Variable] = {}
        for step in self.steps.values():
            for name, option in step.options.items():
                found.setdefault(name, option.as_variable(name))
        return list(found.values())

    def dependants(self, name: str) -> set[str]:
        """Every step that relies on ``name``, directly or through others."""
        found: set[str] = set()
        for step_name in self.order:
            rely = self.steps[step_name].rely
            if name in rely or found.intersection(rely):
                found.add(step_name)
        return found

    def plugins(self) -> set[str]:
        return {step.plugin for step in self.steps.values() if step.plugin}


def _line_of(document: Any, loc: tuple[int | str, ...]) -> int:
    """The line of the deepest node of ``document`` along ``loc`` that has one (a key's own
    line for a mapping's entry, the list's first line for a list item)."""
    line = getattr(document, "line", 1)
    node = document
    for part in loc:
        if isinstance(node, _Lined) and part in node:
            line = node.key_lines.get(str(part), line)
            node = node[str(part)]
        elif isinstance(node, _LinedList) and isinstance(part, int) and part < len(node):
            line = node.line
            node = node[part]
        else:
            break
    return line


def _where(path: Path, line: int) -> str:
    return f"{path}:{line}"


def parse_pipeline(path: Path, text: str, installed: list[str] | None = None) -> Pipeline:
    """Parse and check one pipeline file's text; ``installed`` plugin names (None: unchecked).

    Raises:
        PipelineError: the first problem, as ``<file>:<line>: <what is wrong>``.
    """
    import yaml

    try:
        document = yaml.load(text, Loader=_line_loader())
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark
        line = mark.line + 1 if mark is not None else 1
        raise PipelineError(f"{_where(path, line)}: not valid YAML: {error.problem}") from None
    except yaml.YAMLError as error:
        raise PipelineError(f"{path}: not valid YAML: {error}") from None
    if not isinstance(document, _Lined):
        raise PipelineError(f"{_where(path, 1)}: a pipeline file is a mapping (name, steps, ...)")
    try:
        model = PipelineFile.model_validate(document)
    except ValidationError as error:
        first = error.errors()[0]
        loc = tuple(first["loc"])
        line = _line_of(document, loc)
        where = ".".join(str(part) for part in loc) or "file"
        message = first["msg"]
        if first["type"] == "extra_forbidden":
            message = f"unknown key {loc[-1]!r}"
        raise PipelineError(f"{_where(path, line)}: {where}: {message}") from None
    return _checked(path, document, model, installed)


def _checked(
    path: Path, document: _Lined, model: PipelineFile, installed: list[str] | None
) -> Pipeline:
    def fail(step: str, key: str | None, what: str, index: int | None = None) -> PipelineError:
        loc: tuple[int | str, ...] = ("steps", step) + ((key,) if key else ())
        loc += (index,) if index is not None else ()
        return PipelineError(f"{_where(path, _line_of(document, loc))}: steps.{step}: {what}")

    if not PIPELINE_NAME.match(model.name):
        line = document.key_lines.get("name", 1)
        raise PipelineError(
            f"{_where(path, line)}: name {model.name!r} must be letters, digits, _ or -"
        )
    declared: dict[str, str] = {}
    for name, step in model.steps.items():
        if not STEP_NAME.match(name):
            raise fail(name, None, "a step name is lower-case letters, digits, _ or - (≤ 48)")
        if (step.plugin is None) == (step.command is None):
            raise fail(name, None, "give exactly one of plugin and command")
        if step.command is not None and not step.command:
            raise fail(name, "command", "the command is empty")
        if step.plugin is not None and installed is not None and step.plugin not in installed:
            raise fail(
                name,
                "plugin",
                f"no plugin named {step.plugin!r} is installed "
                f"(installed: {', '.join(installed) or 'none'})",
            )
        for index, other in enumerate(step.rely):
            if other not in model.steps:
                raise fail(name, "rely", f"relies on {other!r}, which is not a step", index)
            if other == name:
                raise fail(name, "rely", "a step cannot rely on itself", index)
        for option, spec in step.options.items():
            if declared.setdefault(option, spec.type) != spec.type:
                raise fail(name, "options", f"option {option!r} is declared with another type")
    sorter = graphlib.TopologicalSorter({name: step.rely for name, step in model.steps.items()})
    try:
        order = tuple(sorter.static_order())
    except graphlib.CycleError as error:
        cycle = list(error.args[1])
        raise fail(cycle[0], "rely", f"rely has a cycle: {' -> '.join(cycle)}") from None
    return Pipeline(model.name, model.description, path, dict(model.steps), order)


def pipeline_path(pipelines_dir: Path, name: str) -> Path:
    """``<pipelines_dir>/<name>.yaml`` (or ``.yml``), ``name`` checked to be one safe name."""
    if not PIPELINE_NAME.match(name):
        raise PipelineError(f"pipeline name {name!r} must be letters, digits, _ or -")
    for suffix in (".yaml", ".yml"):
        candidate = pipelines_dir / f"{name}{suffix}"
        if candidate.is_file():
            return candidate
    return pipelines_dir / f"{name}.yaml"


def load_pipeline(pipelines_dir: Path, name: str, installed: list[str] | None = None) -> Pipeline:
    """Load and check the pipeline ``name``; :class:`PipelineError` naming file and line."""
    path = pipeline_path(pipelines_dir, name)
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_FILE_BYTES + 1)
    except OSError as error:
        raise PipelineError(f"{path}: cannot be read: {error.strerror or error}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise PipelineError(f"{path}: larger than {MAX_FILE_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise PipelineError(f"{path}: not UTF-8") from None
    pipeline = parse_pipeline(path, text, installed)
    if pipeline.name != name:
        raise PipelineError(f"{path}:1: name {pipeline.name!r} differs from the file's name")
    return pipeline


def pipeline_names(pipelines_dir: Path) -> list[str]:
    """The names of the pipeline files in ``pipelines_dir`` (sorted; none if it is missing)."""
    if not pipelines_dir.is_dir():
        return []
    names = {
        path.stem
        for path in pipelines_dir.iterdir()
        if path.suffix in (".yaml", ".yml") and PIPELINE_NAME.match(path.stem)
    }
    return sorted(names)
