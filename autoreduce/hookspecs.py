"""The hooks of autoreduce: the page a plugin author reads first.

Reduction hooks are called on the one plugin an instrument names (``plugin = "..."`` in its
configuration). Observer hooks are called on every registered plugin.
"""

from __future__ import annotations

import pluggy

from autoreduce.plugin import PROJECT, ReductionContext, ReductionResult, RunInfo, Variable

hookspec = pluggy.HookspecMarker(PROJECT)


@hookspec(firstresult=True)
def reduction_variables(instrument: str) -> list[Variable] | None:
    """Receive an instrument's name; return the variables a scientist may set for its runs."""


@hookspec(firstresult=True)
def reduce(context: ReductionContext) -> ReductionResult | None:
    """Receive a run's context in an isolated child process; reduce it into ``output_dir``.

    Return the output files and plots and a one-line summary. Raising marks the run Error with
    the exception's message; the traceback goes to the run's log.
    """


@hookspec
def warm_up() -> None:
    """Receive nothing; import heavy libraries once, in each processor before it forks.

    Every reduction runs in a child forked from its processor, so what is imported here is
    imported once per processor instead of once per run. Return None.
    """


@hookspec(firstresult=True)
def skip_run(run: RunInfo) -> str | None:
    """Receive a run before it is reduced; return a reason to skip it, or None to go on."""


@hookspec
def run_finished(run: RunInfo, status: str, result: ReductionResult | None) -> None:
    """Receive a run that reached a final state (its status and result, if any); return None."""
