"""The body of a Slurm job: ``python -m queue_processor.slurm_job JOB_DIR``.

It runs the same entry point as a local child (:func:`queue_processor.child.reduce_job`): the
job's description is ``JOB_DIR/job.json``, the plugin writes in ``JOB_DIR/out`` (its log in
``out/reduction.log``, where Slurm's own output of the job goes too), and the verdict is written
to ``JOB_DIR/verdict.json`` atomically, so the processor following the job reads all or nothing.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from autoreduce.plugin import RunInfo

JOB_FILE = "job.json"
VERDICT_FILE = "verdict.json"
OUT_DIR = "out"


def job_document(job: Any) -> dict[str, Any]:
    """A :class:`~queue_processor.isolation.ReductionJob` as JSON (its work dir not included)."""
    run: RunInfo = job.run
    return {
        "plugin": job.plugin,
        "run": {
            "instrument": run.instrument,
            "run_number": run.run_number,
            "run_version": run.run_version,
            "experiment_ref": run.experiment_ref,
            "data_path": str(run.data_path),
            "title": run.title,
        },
        "variables": job.variables,
        "timeout_s": job.timeout_s,
        "memory_mb": job.memory_mb,
        "run_id": job.run_id,
    }


def main(job_dir: Path) -> int:
    from autoreduce.plugin_manager import installed_plugins
    from queue_processor.child import reduce_job
    from queue_processor.isolation import ReductionJob

    document = json.loads((job_dir / JOB_FILE).read_text(encoding="utf-8"))
    run = document["run"]
    job = ReductionJob(
        plugin=document["plugin"],
        run=RunInfo(**{**run, "data_path": Path(run["data_path"])}),
        variables=document["variables"],
        work_dir=job_dir / OUT_DIR,
        timeout_s=float(document["timeout_s"]),
        memory_mb=int(document["memory_mb"]),
        run_id=document.get("run_id"),
    )
    plugins = installed_plugins()
    if "step" in document:  # a pipeline step: its environment, inputs or command
        from autoreduce.pipelines import Step
        from queue_processor.pipeline_steps import StepPlugins

        inputs = {name: Path(path) for name, path in document["inputs"].items()}
        plugins = StepPlugins(plugins, Step.model_validate(document["step"]), inputs)
    verdict = reduce_job(job, plugins)
    partial = job_dir / f".{VERDICT_FILE}.partial"
    partial.write_text(json.dumps(verdict), encoding="utf-8")
    os.replace(partial, job_dir / VERDICT_FILE)
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
