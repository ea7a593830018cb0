"""The public plugin API: everything a reduction plugin imports from autoreduce.

A plugin is a module (or object) registered under the entry-point group ``autoreduce.plugins``
that implements hooks from :mod:`autoreduce.hookspecs` marked with :data:`hookimpl`::

    from autoreduce.plugin import ReductionContext, ReductionResult, Variable, hookimpl

    @hookimpl
    def reduction_variables(instrument: str) -> list[Variable]:
        return [Variable("bins", "int", 1000, "Number of d-spacing bins")]

    @hookimpl
    def reduce(context: ReductionContext) -> ReductionResult:
        ...
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pluggy

PROJECT = "autoreduce"
hookimpl = pluggy.HookimplMarker(PROJECT)

VariableType = Literal["int", "float", "str", "bool", "list[int]", "list[float]", "list[str]"]


@dataclass(frozen=True)
class Variable:
    """A value a scientist may set for a reduction: JSON, validated, never evaluated as code."""

    name: str
    type: VariableType
    default: Any
    help: str
    advanced: bool = False
    choices: tuple[Any, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None


@dataclass(frozen=True)
class RunInfo:
    """The run a hook is about."""

    instrument: str
    run_number: int
    run_version: int
    experiment_ref: str
    data_path: Path
    title: str = ""


@dataclass
class ReductionContext:
    """What ``reduce`` receives inside its isolated child process."""

    run: RunInfo
    variables: dict[str, Any]
    output_dir: Path
    logger: logging.Logger
    progress: Callable[[float], None] = field(default=lambda fraction: None)
    inputs: dict[str, Path] = field(default_factory=dict)
    """A pipeline step's inputs: the output directory of each step it relies on, by name."""


@dataclass
class ReductionResult:
    """What ``reduce`` returns: its files (inside ``output_dir``) and a one-line summary."""

    files: list[Path] = field(default_factory=list)
    plots: list[Path] = field(default_factory=list)
    summary: str = ""
