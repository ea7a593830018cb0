"""Jobs: reductions of uploaded files, as runs of the reserved pseudo-instrument ``JOB``.

A job is not a second system. ``POST /api/v1/jobs`` records a :class:`~autoreduce.db.models.Job`
row (its plugin or pipeline, and its input uploads) and, in the same transaction, version 0 of
run number ``job.id`` of the instrument ``JOB`` with the job's variables, and its outbox
message. From there it is a run like any other: the same queue, processors, claim and states,
the same ``timeout_s``/``memory_mb`` limits (from ``[jobs]`` in the settings), the same log
shipping and the same cancellation. The only differences, all looked up here by the processor:

- its plugin (or pipeline) and limits come from the job row and ``[jobs]``, not
  ``[instruments.X]``; a job naming a pipeline runs through the processor's pipeline seam
  exactly as an instrument's pipeline does;
- its inputs are the uploads, copied into a local scratch directory before the reduction
  (``context.run.data_path`` is the first; the others lie beside it, under their ids);
- its outputs go to ``<outputs>/JOB/<job id>/v<version>`` (then to the store, if any).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from autoreduce.db import Database
from autoreduce.db.models import Job, ReductionRun, Upload
from autoreduce.paths import UnsafePathError, confine, safe_component
from autoreduce.settings import Execution, InstrumentConfig, Settings
from autoreduce.storage import ObjectStore, StoreError, fetch_upload

JOB_INSTRUMENT = "JOB"


class JobInputError(RuntimeError):
    """A job's inputs cannot be staged (an upload is gone, the store failed)."""


def is_job(run: ReductionRun) -> bool:
    return run.instrument == JOB_INSTRUMENT


def submitted_job(caller_name: str, run: ReductionRun) -> bool:
    """True if ``run`` is a job ``caller_name`` submitted: its creator reads it and its outputs
    even with a token limited to other instruments."""
    return is_job(run) and bool(caller_name) and run.submitted_by == caller_name


def job_uploads(session: Session, upload_ids: list[str]) -> dict[str, Upload]:
    """The uploads of ``upload_ids`` that exist, by id (a missing one is simply absent)."""
    return {row.id: row for row in session.scalars(select(Upload).where(Upload.id.in_(upload_ids)))}


def job_config(
    settings: Settings, database: Database, run: ReductionRun
) -> InstrumentConfig | None:
    """The job's plugin or pipeline and limits, shaped as an instrument's configuration; None
    if no job."""
    with database.read_session() as session:
        job = session.get(Job, run.run_number)
        if job is None or not (job.plugin or job.pipeline):
            return None
        plugin, pipeline = job.plugin, job.pipeline
    return InstrumentConfig.model_construct(
        plugin=plugin,
        pipeline=pipeline,
        lastruns="",
        data="",
        output="{outputs}/{instrument}/{run_number}/v{run_version}",
        timeout_s=settings.jobs.timeout_s,
        memory_mb=settings.jobs.memory_mb,
        variables={},
        **settings.jobs.model_dump(include=set(Execution.model_fields)),
    )


def run_config(
    settings: Settings, database: Database, run: ReductionRun
) -> InstrumentConfig | None:
    """How ``run`` is reduced: its instrument's configuration, or its job's (:func:`job_config`)."""
    if is_job(run):
        return job_config(settings, database, run)
    return settings.instruments.get(run.instrument)


def job_output_dir(settings: Settings, run: ReductionRun) -> Path:
    """``<outputs>/JOB/<job id>/v<version>``, checked to lie strictly below the outputs root."""
    root = settings.outputs_root
    path = root / JOB_INSTRUMENT / safe_component(run.run_number, what="job id")
    path = path / f"v{safe_component(run.run_version, what='run version')}"
    resolved = confine(root, path, what="output directory")
    if resolved == root:
        raise UnsafePathError("a job's output directory is the outputs root itself")
    return resolved


def inputs_dir(settings: Settings, run: ReductionRun) -> Path:
    """The scratch directory for a job run's inputs: the processor's own, or, for jobs on
    Slurm, beside the job's outputs (the filesystem the nodes share)."""
    if settings.jobs.executor == "slurm":
        return job_output_dir(settings, run).parent / f".inputs-{run.id}"
    return settings.data_dir / "job-inputs" / str(run.id)


def stage_inputs(
    settings: Settings, store: ObjectStore | None, database: Database, run: ReductionRun
) -> Path:
    """Copy the job's uploads into :func:`inputs_dir`; the first one's local path.

    Each is named ``<upload id>-<its file name made safe>``, so a plugin sees the extension.
    """
    with database.read_session() as session:
        job = session.get(Job, run.run_number)
        if job is None:
            raise JobInputError(f"job {run.run_number} is not recorded")
        uploads = {
            row.id: (row.location, row.filename, row.removed_at)
            for row in job_uploads(session, job.inputs).values()
        }
        wanted = list(job.inputs)
    directory = inputs_dir(settings, run)
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    staged: list[Path] = []
    for upload_id in wanted:
        if upload_id not in uploads:
            raise JobInputError(f"upload {upload_id} no longer exists")
        location, filename, removed_at = uploads[upload_id]
        if removed_at is not None:
            raise JobInputError(
                f"upload {upload_id} was removed by retention on {removed_at:%Y-%m-%d}"
            )
        target = directory / f"{upload_id}-{_safe_name(filename)}"
        try:
            fetch_upload(settings, store, location, target)
        except (StoreError, UnsafePathError, OSError) as error:
            raise JobInputError(f"cannot fetch upload {upload_id}: {error}") from None
        staged.append(target)
    if not staged:
        raise JobInputError("the job names no inputs")
    return staged[0]


def drop_inputs(settings: Settings, run: ReductionRun) -> None:
    shutil.rmtree(inputs_dir(settings, run), ignore_errors=True)


def _safe_name(filename: str) -> str:
    name = "".join(c if c.isalnum() or c in "._+-" else "_" for c in filename)[-100:]
    return name.lstrip(".") or "input"
