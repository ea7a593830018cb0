"""Run a pipeline's steps as a DAG, each step in the same isolated launcher a reduction uses.

A step starts once every step it relies on has Completed; steps that do not depend on each
other run at the same time (one thread per running step, each waiting on its own child
process, so each step gets a fresh process, its limits and its own ``reduction.log``). A step's
outputs are in ``<work dir>/<step>/``; the steps it relies on are its inputs
(``context.inputs`` for a plugin, ``AUTOREDUCE_INPUT_<STEP>`` for a command). A failed step
fails the run, naming the step; the steps that rely on it, directly or not, are Skipped; steps
that do not are left to finish. Every step's state, timings, resources and log are rows of
``run_steps``.

A re-run with ``from_step`` copies, from the version it derives from, the outputs of every step
that is neither ``from_step`` nor relies on it, when that step Completed there; the others run.
The base's outputs are its output directory (``storage = "file"``) or, when it was published to
the object store, the ``<step>/…`` objects its manifest lists, fetched into this run's work
directory and checked against the manifest. A step whose outputs cannot be had (a directory or
object gone, the store failing) runs again, its step message saying why, and so does every
step relying on it.
"""

from __future__ import annotations

import logging
import re
import shutil
import threading
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select, update

from autoreduce.db import Database
from autoreduce.db.models import ReductionRun, RunStatus, RunStep, utcnow
from autoreduce.failures import ErrorCategory
from autoreduce.jobs import run_config
from autoreduce.paths import UnsafePathError, confine
from autoreduce.pipelines import Pipeline, PipelineError, Step, load_pipeline
from autoreduce.plugin import RunInfo
from autoreduce.plugin_approvals import PluginGate
from autoreduce.plugin_manager import Plugins
from autoreduce.settings import InstrumentConfig, Settings
from autoreduce.storage import ObjectStore, object_name, open_store
from queue_processor.isolation import LOG_NAME, Outcome, ReductionJob, run_isolated
from queue_processor.pipeline_steps import COMMAND, StepPlugins, files_below, is_plot
from queue_processor.slurm import RUNNING_MESSAGE, SlurmExecutor, cancel
from queue_processor.slurm_job import job_document

logger = logging.getLogger("autoreduce.process")
_FAILED = (RunStatus.ERROR, RunStatus.SKIPPED, RunStatus.CANCELLED)  # a step's end but Completed
SLURM_JOB = re.compile(r"in Slurm as job (\d+)")


@dataclass(frozen=True)
class BaseVersion:
    """The version a ``from_step`` re-run derives from, and where its outputs are."""

    run_id: int
    version: int
    directory: Path | None = None  # storage = "file": its output directory
    url: str = ""  # published to the object store: its base URL there


@dataclass(frozen=True)
class PipelineRun:
    """The run version a pipeline reduces, and its limits' defaults."""

    run_id: int
    info: RunInfo
    variables: dict[str, Any]
    work_dir: Path
    timeout_s: float  # the instrument's, for steps that name none
    memory_mb: int
    from_step: str = ""
    base: BaseVersion | None = None  # from_step re-runs: the version derived from
    max_parallel_steps: int = 4  # steps of this run running at once, at most


class PipelineRunner:
    """Runs one pipeline run version: its steps' children, its ``run_steps`` rows."""

    def __init__(
        self,
        database: Database,
        plugins: Plugins,
        pipeline: Pipeline,
        target: PipelineRun,
        stop_reason: Callable[[], str] = lambda: "",
        slurm: SlurmSteps | None = None,
        store: ObjectStore | None = None,
    ) -> None:
        self.slurm = slurm
        self.store = store  # where a published base version's outputs are fetched from
        self.database = database
        self.plugins = plugins
        self.pipeline = pipeline
        self.target = target
        self.stop_reason = stop_reason
        self.outcomes: dict[str, Outcome] = {}
        self.state: dict[str, RunStatus] = {}
        self._log_lock = threading.Lock()
        self.notes: dict[str, str] = {}  # why a step that could have been reused runs again
        self._published: dict[str, dict[str, Any]] = {}  # the base's manifest: name → entry

    def run(self) -> Outcome:
        """Run the steps; the run's outcome (its files named ``<step>/<file>``)."""
        self.target.work_dir.mkdir(parents=True, exist_ok=True)
        self._record_plan()
        for name in self._reusable():
            again = [other for other in self.pipeline.steps[name].rely if other not in self.state]
            if again:  # a step it relies on could not be reused after all: it runs too
                self.notes[name] = _relies_on_rerun(again[0])
                continue
            self._reuse(name)
        pending = [name for name in self.pipeline.order if name not in self.state]
        running: dict[Future[Outcome], str] = {}
        workers = min(len(self.pipeline.steps), self.target.max_parallel_steps)
        with ThreadPoolExecutor(max_workers=workers) as pool:
            while pending or running:
                for name in self._ready(pending)[: workers - len(running)]:
                    pending.remove(name)
                    self._mark(name, RunStatus.PROCESSING, started_at=utcnow())
                    running[pool.submit(self._run_step, name)] = name
                for name in self._blocked(pending):
                    pending.remove(name)
                    self._skip(name)
                if not running:  # in a DAG some pending step is now ready or blocked
                    stuck = not (self._ready(pending) or self._blocked(pending))
                    if pending and stuck:
                        raise RuntimeError(f"pipeline steps {pending} can never start")
                    continue
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    self._finished(running.pop(future), future.result())
        return self._run_outcome()

    def _ready(self, pending: list[str]) -> list[str]:
        completed = RunStatus.COMPLETED
        return [
            name
            for name in pending
            if all(self.state.get(other) is completed for other in self.pipeline.steps[name].rely)
        ]

    def _blocked(self, pending: list[str]) -> list[str]:
        """Pending steps that can never start: something they rely on did not complete."""
        return [
            name
            for name in pending
            if any(self.state.get(other) in _FAILED for other in self.pipeline.steps[name].rely)
        ]

    def _step_dir(self, name: str) -> Path:
        return self.target.work_dir / name

    def _job(self, name: str) -> ReductionJob:
        step = self.pipeline.steps[name]
        variables: dict[str, Any] = {}
        if step.plugin:
            instrument = self.target.info.instrument
            declared = self.plugins.variables(step.plugin, instrument)
            variables = {variable.name: variable.default for variable in declared}
        for option_name, option in step.options.items():
            variables[option_name] = self.target.variables.get(option_name, option.default)
        return ReductionJob(
            plugin=step.plugin or COMMAND,
            run=self.target.info,
            variables=variables,
            work_dir=self._step_dir(name),
            timeout_s=step.timeout_s or self.target.timeout_s,
            memory_mb=step.memory_mb or self.target.memory_mb,
            run_id=self.target.run_id,
        )

    def _run_step(self, name: str) -> Outcome:
        """In a worker thread: the step in a fresh child of its own, within its limits."""
        step = self.pipeline.steps[name]
        inputs = {other: self._step_dir(other) for other in step.rely}
        if step.plugin and (held := self._held(name, step.plugin)):
            return Outcome(ok=False, reason=held, category=ErrorCategory.PLUGIN.value)
        try:
            job = self._job(name)
        except Exception as error:  # its plugin cannot declare its variables
            reason = f"plugin {step.plugin!r} cannot declare its variables: {error}"
            return Outcome(ok=False, reason=reason, category=ErrorCategory.PLUGIN.value)
        self._log(f"step {name}: started ({_resources(job, step)})")
        if step.executor == "slurm":
            if self.slurm is None:
                reason = f"step {name}: executor 'slurm' needs the processor's settings"
                return Outcome(ok=False, reason=reason, category=ErrorCategory.PLUGIN.value)
            return self.slurm.run(
                job,
                step,
                inputs,
                self.stop_reason,
                lambda job_id: self._mark(
                    name, RunStatus.PROCESSING, message=RUNNING_MESSAGE.format(job_id)
                ),
            )
        return run_isolated(
            job, StepPlugins(self.plugins, step, inputs), stop_reason=self.stop_reason
        )

    def _held(self, name: str, plugin: str) -> str:
        """Why the step's plugin may not run here (its release is not approved), or ""."""
        gate = PluginGate(self.plugins, {name: plugin})
        with self.database.read_session() as session:
            held = gate.held_message(session, name)
        return f"plugin {plugin} may not run: {held}" if held else ""

    def _finished(self, name: str, outcome: Outcome) -> None:
        self.outcomes[name] = outcome
        state = RunStatus.COMPLETED if outcome.ok else RunStatus.ERROR
        if not outcome.ok and not outcome.category:  # stopped: cancelled or shutting down
            state = RunStatus.CANCELLED
        message = outcome.summary if outcome.ok else outcome.reason
        if note := self.notes.get(name):
            message = f"{note}; {message}"
        self._log(f"step {name}: {state.value} after {outcome.wall_s:.2f} s — {message}")
        self._append_step_log(name)
        self._mark(
            name,
            state,
            message=message[:1000],
            finished_at=utcnow(),
            wall_s=outcome.wall_s,
            peak_rss_mb=outcome.peak_rss_mb,
        )

    def _skip(self, name: str) -> None:
        rely = self.pipeline.steps[name].rely
        failed = [other for other in rely if self.state.get(other) in _FAILED]
        message = f"skipped: step {failed[0]} did not complete"
        self._log(f"step {name}: {message}")
        self._mark(name, RunStatus.SKIPPED, message=message, finished_at=utcnow())

    def _run_outcome(self) -> Outcome:
        outcomes = [self.outcomes[name] for name in self.pipeline.order if name in self.outcomes]
        first_data_file = next((o.data_file for o in outcomes if o.data_file), None)
        wall_s = sum(o.wall_s for o in outcomes)
        peak = max((o.peak_rss_mb for o in outcomes), default=0.0)
        for name in self.pipeline.order:
            outcome = self.outcomes.get(name)
            if outcome is None or outcome.ok:
                continue
            if not outcome.category:  # stopped: the worker reads the launcher's own reason
                return replace(outcome, wall_s=wall_s, peak_rss_mb=peak)
            skipped = sorted(self.pipeline.dependants(name))
            tail = f"; skipped {', '.join(skipped)}" if skipped else ""
            return replace(
                outcome,
                reason=f"step {name} failed: {outcome.reason}{tail}",
                wall_s=wall_s,
                peak_rss_mb=peak,
                data_file=outcome.data_file or first_data_file,
            )
        files: list[str] = []
        plots: list[str] = []
        for name in self.pipeline.order:
            outcome = self.outcomes.get(name)
            if outcome is not None:
                files += [f"{name}/{file}" for file in outcome.files]
                plots += [f"{name}/{plot}" for plot in outcome.plots]
            else:  # reused: what its directory holds
                for file in files_below(self._step_dir(name)):
                    (plots if is_plot(file) else files).append(f"{name}/{file}")
        steps = len(self.pipeline.steps)
        return Outcome(
            ok=True,
            summary=f"pipeline {self.pipeline.name}: {steps} steps completed",
            files=files,
            plots=plots,
            data_file=first_data_file,
            wall_s=wall_s,
            peak_rss_mb=peak,
        )

    # -- from_step: reusing the base version's completed steps --------------------------------

    def _reusable(self) -> list[str]:
        """Steps whose outputs are copied from the base version instead of running again."""
        target, base = self.target, self.target.base
        if not target.from_step or base is None:
            return []
        with self.database.read_session() as session:
            completed = set(
                session.scalars(
                    select(RunStep.step).where(
                        RunStep.run_id == base.run_id,
                        RunStep.state == RunStatus.COMPLETED.value,
                    )
                )
            )
        rerun = {target.from_step} | self.pipeline.dependants(target.from_step)
        again = set(rerun)
        unavailable = self._unavailable(base)
        for name in self.pipeline.order:  # a step that cannot be reused runs, and so do its own
            if name in rerun:
                continue
            if relied := [other for other in self.pipeline.steps[name].rely if other in again]:
                self.notes[name] = _relies_on_rerun(relied[0])
                again.add(name)
            elif name not in completed:
                again.add(name)
            elif why := unavailable or self._missing(base, name):
                self.notes[name] = f"not reused from v{base.version}: {why}"
                again.add(name)
        return [name for name in self.pipeline.order if name not in again]

    def _unavailable(self, base: BaseVersion) -> str:
        """Why none of the base's outputs can be had (reading its manifest if published)."""
        if not base.url:
            return ""
        if self.store is None:
            return "its outputs are in an object store but storage is 'file' here"
        try:
            files = self.store.manifest(base.url).get("files")
        except Exception as error:  # any failure (absent, not JSON, the store down): steps run
            return f"its manifest cannot be read: {error}"
        if not isinstance(files, dict) or not all(isinstance(e, dict) for e in files.values()):
            return "its manifest lists no files"
        self._published = files
        return ""

    def _missing(self, base: BaseVersion, name: str) -> str:
        """Why the base's outputs of step ``name`` are not there to copy, or ""."""
        if base.directory is not None and not (base.directory / name).is_dir():
            return "its step directory is gone"
        return ""

    def _reuse(self, name: str) -> None:
        base = self.target.base
        assert base is not None
        try:
            if base.url:
                assert self.store is not None
                self._fetch_step(base.url, name)
            else:
                assert base.directory is not None
                source = confine(base.directory, base.directory / name, what="step directory")
                shutil.copytree(source, self._step_dir(name), symlinks=True)
        except Exception as error:  # gone, unsafe, different or the store failing: it runs
            shutil.rmtree(self._step_dir(name), ignore_errors=True)  # it runs in a clean one
            self.notes[name] = f"not reused from v{base.version}: {error}"
            self._log(f"step {name}: cannot reuse v{base.version}: {error}")
            return  # then it runs
        message = f"reused from v{base.version}"
        if base.url:
            message += " (fetched from the object store)"
        self._log(f"step {name}: {message}")
        self.state[name] = RunStatus.COMPLETED
        now = utcnow()
        self._mark(
            name,
            RunStatus.COMPLETED,
            message=message,
            started_at=now,
            finished_at=now,
            reused_from_version=base.version,
        )

    def _fetch_step(self, base_url: str, name: str) -> None:
        """Fetch the base's published ``<name>/…`` objects into the step's directory; each name
        must stay inside it (no ``..``, no absolute name) and match its manifest entry."""
        assert self.store is not None
        step_dir = self._step_dir(name)
        step_dir.mkdir(parents=True)
        for published, entry in self._published.items():
            if not published.startswith(f"{name}/"):
                continue
            relative = object_name(published).removeprefix(f"{name}/")
            destination = confine(step_dir, relative, what="reused output")
            destination.parent.mkdir(parents=True, exist_ok=True)
            self.store.fetch_output(base_url, published, entry, destination)

    # -- records --------------------------------------------------------------------------------

    def _record_plan(self) -> None:
        """One Queued row per step (an earlier attempt's rows replaced; the Slurm jobs of its
        steps that were still running when its processor died are cancelled)."""
        with self.database.session() as session:
            orphans = session.scalars(
                select(RunStep.message).where(
                    RunStep.run_id == self.target.run_id,
                    RunStep.executor == "slurm",
                    RunStep.state == RunStatus.PROCESSING.value,
                )
            ).all()
            for message in orphans:
                if found := SLURM_JOB.search(message):
                    cancel(found.group(1))
            session.execute(delete(RunStep).where(RunStep.run_id == self.target.run_id))
            for position, (name, step) in enumerate(self.pipeline.steps.items()):
                session.add(
                    RunStep(
                        run_id=self.target.run_id,
                        step=name,
                        position=position,
                        state=RunStatus.QUEUED.value,
                        message="",
                        plugin=step.plugin or COMMAND,
                        rely=list(step.rely),
                        cpus=step.cpus,
                        memory_mb=step.memory_mb or self.target.memory_mb,
                        timeout_s=step.timeout_s or self.target.timeout_s,
                        executor=step.executor,
                        log_path=f"{name}/{LOG_NAME}",
                    )
                )

    def _mark(self, name: str, state: RunStatus, **values: Any) -> None:
        self.state[name] = state
        with self.database.session() as session:
            session.execute(
                update(RunStep)
                .where(RunStep.run_id == self.target.run_id, RunStep.step == name)
                .values(state=state.value, **values)
                .execution_options(synchronize_session=False)
            )

    def _log(self, line: str) -> None:
        """A line of the run's own ``reduction.log`` (the one shipped and shown)."""
        with self._log_lock, (self.target.work_dir / LOG_NAME).open("a", encoding="utf-8") as log:
            log.write(f"{utcnow().isoformat(timespec='seconds')} pipeline: {line}\n")

    def _append_step_log(self, name: str) -> None:
        """Copy a finished step's log into the run's, framed by its name."""
        step_log = self._step_dir(name) / LOG_NAME
        if not step_log.is_file() or step_log.is_symlink():
            return
        with self._log_lock, (self.target.work_dir / LOG_NAME).open("a", encoding="utf-8") as log:
            log.write(f"----- step {name}: {name}/{LOG_NAME} -----\n")
            with step_log.open(encoding="utf-8", errors="replace") as source:
                shutil.copyfileobj(source, log)
            log.write(f"----- end of step {name} -----\n")


def _relies_on_rerun(step: str) -> str:
    return f"not reused: step {step}, which it relies on, runs again"


def _resources(job: ReductionJob, step: Step) -> str:
    what = f"plugin {step.plugin}" if step.plugin else "command"
    return f"{what}, {step.cpus} cpu, {job.memory_mb} MB, {job.timeout_s:g} s, {step.executor}"


def base_of(database: Database, run: ReductionRun, outputs_root: Path) -> BaseVersion | None:
    """For a ``from_step`` re-run: the version it derives from and where its outputs are (its
    output directory under ``outputs_root``, or its base URL in the object store)."""
    if not run.from_step or run.derived_from_version is None:
        return None
    with database.read_session() as session:
        base = session.scalar(
            select(ReductionRun).where(
                ReductionRun.instrument == run.instrument,
                ReductionRun.run_number == run.run_number,
                ReductionRun.run_version == run.derived_from_version,
            )
        )
        if base is None or not base.output_dir:
            return None
        if base.output_dir.startswith("s3://"):
            return BaseVersion(base.id, base.run_version, url=base.output_dir)
        try:
            directory = confine(outputs_root, base.output_dir, what="base output directory")
        except UnsafePathError:
            return None
        return BaseVersion(base.id, base.run_version, directory=directory)


def run_pipeline(
    database: Database,
    plugins: Plugins,
    settings: Settings,
    run: ReductionRun,
    job: ReductionJob,
    stop_reason: Callable[[], str],
    name: str,
) -> Outcome:
    """Reduce ``run`` with the pipeline ``name`` (its instrument's or its job's) in
    ``job.work_dir``: the worker's seam.

    A pipeline file that does not load fails the run (category ``plugin``) with the file and
    line in its reason; nothing else is affected.
    """
    try:
        pipeline = load_pipeline(settings.resolved_pipelines_dir, name, plugins.names())
    except PipelineError as error:
        job.work_dir.mkdir(parents=True, exist_ok=True)
        (job.work_dir / LOG_NAME).write_text(f"pipeline {name}: {error}\n")
        return Outcome(ok=False, reason=str(error), category=ErrorCategory.PLUGIN.value)
    if run.from_step and run.from_step not in pipeline.steps:
        reason = f"from_step {run.from_step!r} is not a step of pipeline {pipeline.name}"
        return Outcome(ok=False, reason=reason, category=ErrorCategory.PLUGIN.value)
    base = base_of(database, run, settings.outputs_root)
    target = PipelineRun(
        run_id=run.id,
        info=job.run,
        variables=dict(job.variables),
        work_dir=job.work_dir,
        timeout_s=job.timeout_s,
        memory_mb=job.memory_mb,
        from_step=run.from_step,
        base=base,
        max_parallel_steps=settings.pipeline_parallel_steps,
    )
    slurm = SlurmSteps(settings, database, run)
    store = open_store(settings) if base is not None and base.url else None
    return PipelineRunner(database, plugins, pipeline, target, stop_reason, slurm, store).run()


class SlurmSteps:
    """Runs a pipeline's ``executor: slurm`` steps as Slurm jobs, with the step's CPUs and the
    partition and ``sbatch`` options of the run's instrument (:meth:`SlurmExecutor.run_here`)."""

    def __init__(self, settings: Settings, database: Database, run: ReductionRun) -> None:
        self.executor = SlurmExecutor(settings, database, "")
        self.config = run_config(settings, database, run)

    def run(
        self,
        job: ReductionJob,
        step: Step,
        inputs: dict[str, Path],
        stop_reason: Callable[[], str],
        submitted: Callable[[str], None],
    ) -> Outcome:
        base = self.config or InstrumentConfig.model_construct(partition="", sbatch_options=[])
        config = base.model_copy(update={"cpus": step.cpus})
        document = {
            **job_document(job),
            "step": step.model_dump(mode="json"),
            "inputs": {name: str(path) for name, path in inputs.items()},
        }
        return self.executor.run_here(job, config, document, stop_reason, submitted)
