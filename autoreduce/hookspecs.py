"""The hooks of autoreduce: the page a plugin author reads first.

A plugin is a module (or an object) registered under the entry-point group
``autoreduce.plugins``; each hook it implements is a function of the same name marked with
``autoreduce.plugin.hookimpl``. An instrument names its plugin in its configuration
(``plugin = "..."``).

* Reduction hooks (``reduction_variables``, ``reduce``) are called on that one plugin only.
* Observer hooks (``skip_run``, ``run_finished``) are called on that plugin for the runs of the
  instruments configured with it, never for other instruments' runs: installing a package cannot
  change how another plugin's instruments are handled. A plugin that should see every
  instrument's runs (an archive-wide calibration filter, a notifier) declares itself a *global
  observer* by implementing ``observes_all_instruments`` to return True::

      @hookimpl
      def observes_all_instruments() -> bool:
          return True

* ``warm_up`` is called on every plugin, in each processor, before it forks reductions.
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

    Return the output files and plots and a one-line summary. Each file and plot must be a
    regular file inside ``output_dir`` (absolute, or relative to it); any other (``/etc/passwd``,
    ``../x``, a symlink out of it, a missing file) marks the run Error naming it. Raising marks
    the run Error with the exception's message; the traceback goes to the run's log. Writing
    outside ``output_dir`` is forbidden but not prevented (there is no sandbox): never do it.
    """


@hookspec
def warm_up() -> None:
    """Receive nothing; import heavy libraries once, in each processor before it forks.

    Every reduction runs in a child forked from its processor, so what is imported here is
    imported once per processor instead of once per run. Return None.
    """


@hookspec
def observes_all_instruments() -> bool | None:
    """Receive nothing; return True to get ``skip_run`` and ``run_finished`` for every run.

    Without it (or answering False) a plugin's observer hooks see only the runs of instruments
    configured with it. Asked each time a run is observed, in the processor: answer at once and
    do not raise (an exception here is logged and the observers are not called for that run).
    """


@hookspec(firstresult=True)
def skip_run(run: RunInfo) -> str | None:
    """Receive a run before it is reduced; return a reason to skip it, or None to go on.

    Called on the instrument's own plugin and the global observers, in the processor; the first
    reason given marks the run Skipped with it. An exception is logged and the run goes on.
    """


@hookspec
def run_finished(run: RunInfo, status: str, result: ReductionResult | None) -> None:
    """Receive a run that reached a final state (its status and result, if any); return None.

    Called on the instrument's own plugin and the global observers, in the processor, after the
    state is recorded. An exception is logged and ignored.
    """
