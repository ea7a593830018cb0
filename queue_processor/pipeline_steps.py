"""One pipeline step inside its child process: its environment, inputs and command.

:class:`StepPlugins` is the processor's plugin manager as a step's child sees it (the launcher
forks the child with it): before the plugin is called it sets the step's environment and
``context.inputs``; a command step runs its command in place of a plugin, and its outputs are
the files it leaves in its directory.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from autoreduce.pipelines import Step
from autoreduce.plugin import ReductionContext, ReductionResult
from autoreduce.plugin_manager import Plugins
from queue_processor.child import JSON_LOG_NAME, LOG_NAME

COMMAND = "command"  # the ``plugin`` column of a command step
PLOT_SUFFIXES = (".png", ".svg", ".jpg", ".jpeg", ".pdf")


class StepCommandFailed(RuntimeError):
    """A command step exited with a non-zero status."""


class StepPlugins(Plugins):
    """The processor's plugins, as one step's child sees them: its environment, its inputs and,
    for a command step, the command in place of a plugin."""

    def __init__(self, plugins: Plugins, step: Step, inputs: dict[str, Path]) -> None:
        super().__init__(plugins.manager)
        self.step = step
        self.inputs = inputs

    def reduce(self, plugin_name: str, context: ReductionContext) -> ReductionResult:
        """Runs in the step's child process: set its environment, then reduce or run."""
        env = _step_environment(self.step, context, self.inputs)
        os.environ.update(env)
        context.inputs = dict(self.inputs)
        if self.step.command is None:
            return super().reduce(plugin_name, context)
        argv = (
            ["/bin/sh", "-c", self.step.command]
            if isinstance(self.step.command, str)
            else list(self.step.command)
        )
        context.logger.info("running %s", json.dumps(argv))
        code = subprocess.run(argv, cwd=context.output_dir, env=dict(os.environ)).returncode
        if code != 0:
            raise StepCommandFailed(f"command exited with status {code}")
        files = files_below(context.output_dir)
        return ReductionResult(
            files=[context.output_dir / name for name in files if not is_plot(name)],
            plots=[context.output_dir / name for name in files if is_plot(name)],
            summary=f"command {argv[0]} finished",
        )


def _step_environment(
    step: Step, context: ReductionContext, inputs: dict[str, Path]
) -> dict[str, str]:
    run = context.run
    env = {
        "AUTOREDUCE_INSTRUMENT": run.instrument,
        "AUTOREDUCE_RUN_NUMBER": str(run.run_number),
        "AUTOREDUCE_RUN_VERSION": str(run.run_version),
        "AUTOREDUCE_DATA_PATH": str(run.data_path),
        "AUTOREDUCE_OUTPUT_DIR": str(context.output_dir),
        "AUTOREDUCE_VARIABLES": json.dumps(context.variables),
        "AUTOREDUCE_INPUT_DIRS": os.pathsep.join(str(path) for path in inputs.values()),
    }
    for name, path in inputs.items():
        env[f"AUTOREDUCE_INPUT_{name.upper().replace('-', '_')}"] = str(path)
    return {**env, **step.env}


def is_plot(name: str) -> bool:
    return name.lower().endswith(PLOT_SUFFIXES)


def files_below(directory: Path) -> list[str]:
    """Regular files below ``directory`` (relative, sorted; symlinks neither followed nor
    listed), its logs left out."""
    found = []
    for parent, _, names in os.walk(directory):  # followlinks=False
        for name in names:
            path = Path(parent) / name
            if path.is_symlink() or not path.is_file() or name in (LOG_NAME, JSON_LOG_NAME):
                continue
            found.append(path.relative_to(directory).as_posix())
    return sorted(found)
