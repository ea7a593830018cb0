"""``python -m bench.slurm_overhead [--jobs N]``: Slurm's submission → start overhead here.

Each job is submitted with ``sbatch`` as the Slurm executor submits (``--parsable --wrap``, one
CPU, ``--mem``) and writes the time it started; the table gives, over N jobs one after another,
``sbatch`` itself, submission → the job's first instruction, and submission → the executor
seeing the job end (``scontrol`` polled every 0.2 s, as with ``slurm_poll_s = 0.2``). Needs
``scripts/services.sh start slurm`` and ``SLURM_CONF`` (set here to that cluster's if unset).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from bench.report import Table, percentile
from queue_processor.slurm import _command, job_state

SLURM_CONF = "/var/tmp/autoreduce-services/slurm/slurm.conf"


def one_job(directory: Path, index: int) -> tuple[float, float, float]:
    marker = directory / f"started-{index}"
    submitted = time.time()
    job_id = _command(
        "sbatch",
        "--parsable",
        f"--chdir={directory}",
        "--output=/dev/null",
        "--mem=64M",
        "--cpus-per-task=1",
        f'--wrap=exec python3 -c \'import time; open("{marker}", "w").write(repr(time.time()))\'',
    ).strip()
    sbatch_s = time.time() - submitted
    while job_state(job_id).active:
        time.sleep(0.2)
    seen_s = time.time() - submitted
    started_s = float(marker.read_text()) - submitted
    return sbatch_s, started_s, seen_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=5)
    args = parser.parse_args()
    os.environ.setdefault("SLURM_CONF", SLURM_CONF)
    with tempfile.TemporaryDirectory() as directory:
        figures = [one_job(Path(directory), index) for index in range(args.jobs)]
    table = Table(
        f"Slurm submission overhead ({args.jobs} jobs, one after another, one-node cluster)",
        ["what", "median s", "p90 s", "max s"],
    )
    for column, what in enumerate(("sbatch returns", "job starts", "executor sees it end")):
        values = [row[column] for row in figures]
        table.add(what, percentile(values, 0.5), percentile(values, 0.9), max(values))
    table.digits = 2
    print(table.render())


if __name__ == "__main__":
    main()
