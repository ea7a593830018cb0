"""The extra ``sbatch`` options an instrument may set, checked when the settings load."""

from __future__ import annotations

import re

# Set by the executor itself from the run and the instrument's own settings: never overridden.
RESERVED = frozenset(
    {
        "chdir",
        "cpus-per-task",
        "error",
        "export",
        "input",
        "job-name",
        "mem",
        "mem-per-cpu",
        "open-mode",
        "output",
        "parsable",
        "partition",
        "time",
        "wrap",
    }
)
# Slurm putting a job back in its queue (after a node failure, or when asked) would run the
# reduction again beside the retry autoreduce makes: every job is ``--no-requeue``.
REQUEUE = frozenset({"requeue", "no-requeue"})
OPTION = re.compile(r"^--([a-z][a-z0-9-]*)(=[^\0\n]{0,200})?$")


def check_sbatch_options(options: list[str]) -> list[str]:
    """Each option as given, or ValueError naming the first one refused."""
    for option in options:
        match = OPTION.fullmatch(option)
        if match is None:
            raise ValueError(f"sbatch option {option!r} is not one `--name[=value]` argument")
        if match.group(1) in REQUEUE:
            raise ValueError(
                f"sbatch option --{match.group(1)} is refused: autoreduce retries a run itself "
                "(a job Slurm requeued would reduce it twice), so every job is --no-requeue"
            )
        if match.group(1) in RESERVED:
            raise ValueError(
                f"sbatch option --{match.group(1)} is set by autoreduce "
                "(use the instrument's partition, cpus, memory_mb or timeout_s)"
            )
    return options
