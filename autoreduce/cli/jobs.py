"""``autoreduce upload`` and ``autoreduce jobs``: reduce files of one's own through the API.

``upload`` streams each file to ``POST /api/v1/uploads`` (never read whole into memory) and
prints its id, size and SHA-256 (checked against the bytes sent). ``jobs submit`` names a
plugin and its inputs, upload ids or files (which are uploaded first), and with ``--wait``
follows the job until it ends, exiting 6 unless it Completed. ``jobs show`` and ``jobs cancel``
read and cancel one job. There is no ``jobs list``: the API has no list of jobs (a reader of the
instrument ``JOB`` lists them with ``autoreduce runs list --instrument JOB``).
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import click

from autoreduce.api_client import ApiClient, path_part
from autoreduce.cli import tables
from autoreduce.cli.client import (
    EXIT_CODES_HELP,
    FINAL_STATUSES,
    POLL_INTERVAL_S,
    ClientCommand,
    ClientFailure,
    ClientGroup,
    api,
    client_options,
    console,
    emit,
    parse_assignments,
    wants_json,
)

UPLOADS = "/api/v1/uploads"
JOBS = "/api/v1/jobs"
UPLOAD_ID = re.compile(r"[0-9a-f]{32}")
EXIT_JOB_FAILED = 6
JOBS_EXIT_HELP = f"{EXIT_CODES_HELP} With --wait: 6 the job ended but did not complete."


class JobFailed(ClientFailure):
    """``--wait`` saw the job end in Error, Cancelled, Skipped or Refused."""

    exit_code = EXIT_JOB_FAILED


def _upload(client: ApiClient, file: Path) -> dict[str, Any]:
    item: dict[str, Any] = client.upload(UPLOADS, file)
    return item


@click.command("upload", cls=ClientCommand, epilog=EXIT_CODES_HELP)
@client_options
@click.argument(
    "files",
    nargs=-1,
    required=True,
    type=click.Path(exists=True, dir_okay=False, readable=True, path_type=Path),
)
def upload(files: tuple[Path, ...]) -> None:
    """Upload files for jobs to reduce; print each one's id, size and SHA-256
    (`autoreduce upload sample.nxs`).

    Each file is streamed from disk, and the SHA-256 the API stored is checked against the bytes
    sent. With --json: the list of the API's uploads."""
    items: list[dict[str, Any]] = []
    with api() as client:
        for file in files:
            items.append(_upload(client, file))
            if not wants_json():
                tables.uploads(console(), items[-1:])  # each as soon as it is stored
    if wants_json():
        emit(items, tables.uploads)


@click.group(cls=ClientGroup, epilog=JOBS_EXIT_HELP)
def jobs() -> None:
    """Jobs: reduce uploaded files with a plugin, outside any instrument (submit, show, cancel)."""


def _inputs(values: tuple[str, ...]) -> list[Path | str]:
    """Each ``--input``: a file to upload, or the id of an upload; a usage error otherwise."""
    chosen: list[Path | str] = []
    for value in values:
        path = Path(value)
        if path.is_file():
            chosen.append(path)
        elif UPLOAD_ID.fullmatch(value):
            chosen.append(value)
        else:
            what = "a directory" if path.is_dir() else "neither a file nor an upload id"
            raise click.BadParameter(
                f"{value!r} is {what} (an upload id is 32 hex digits)", param_hint="--input"
            )
    return chosen


def _upload_ids(client: ApiClient, chosen: list[Path | str]) -> list[str]:
    """The upload ids of ``chosen``, uploading each file (said on standard error)."""
    ids: list[str] = []
    for item in chosen:
        if isinstance(item, Path):
            stored = _upload(client, item)
            click.echo(
                f"uploaded {item} as {stored['id']} ({stored['size_bytes']} bytes, "
                f"sha256 {stored['sha256']})",
                err=True,
            )
            ids.append(str(stored["id"]))
        else:
            ids.append(item)
    return ids


def _follow(client: ApiClient, job: dict[str, Any]) -> dict[str, Any]:
    """Poll the job until it ends, saying each new state on standard error."""
    seen = ""
    while True:
        if job["status"] != seen:
            seen = job["status"]
            click.echo(f"job {job['id']}: {seen}", err=True)
        if job["status"] in FINAL_STATUSES:
            return job
        time.sleep(POLL_INTERVAL_S)
        job = client.get(f"{JOBS}/{job['id']}")


def _show(client: ApiClient, job: dict[str, Any]) -> None:
    """``job`` as JSON, or for people with its inputs' names and digests."""
    if wants_json():
        emit(job, tables.job)
        return
    uploads = [client.get(f"{UPLOADS}/{path_part(upload_id)}") for upload_id in job["inputs"]]
    tables.job(console(), job, uploads, api_url=client.base_url)


@jobs.command("submit", epilog=JOBS_EXIT_HELP)
@client_options
@click.option("--plugin", required=True, help="A plugin the instance lets jobs run.")
@click.option(
    "--input",
    "inputs",
    multiple=True,
    required=True,
    metavar="UPLOAD_ID|FILE",
    help="An upload's id, or a file (uploaded first); repeat for more. The first is the data.",
)
@click.option("--var", "assignments", multiple=True, help="NAME=VALUE (JSON, else a string).")
@click.option("--description", default="", help="What the job is for (kept with it).")
@click.option("--wait", is_flag=True, help="Follow the job until it ends; exit 6 unless Completed.")
def jobs_submit(
    plugin: str, inputs: tuple[str, ...], assignments: tuple[str, ...], description: str, wait: bool
) -> None:
    """Reduce uploads or files with a plugin
    (`autoreduce jobs submit --plugin powder_diffraction --input sample.nxs --wait`)."""
    chosen = _inputs(inputs)
    variables = parse_assignments(assignments)
    with api() as client:
        body = {
            "plugin": plugin,
            "inputs": _upload_ids(client, chosen),
            "variables": variables,
            "description": description,
        }
        job = client.post(JOBS, body)
        if wait:
            job = _follow(client, job)
        _show(client, job)
    if wait and job["status"] != "Completed":
        message = f": {job['message']}" if job["message"] else ""
        raise JobFailed(f"job {job['id']} ended {job['status']}{message}")


@jobs.command("show", epilog=EXIT_CODES_HELP)
@client_options
@click.argument("job_id", type=click.IntRange(1))
def jobs_show(job_id: int) -> None:
    """A job: its state, plugin, inputs and outputs (`autoreduce jobs show 12`)."""
    with api() as client:
        _show(client, client.get(f"{JOBS}/{job_id}"))


@jobs.command("cancel", epilog=EXIT_CODES_HELP)
@client_options
@click.argument("job_id", type=click.IntRange(1))
@click.option("--reason", default="", help="Why it is cancelled (recorded).")
def jobs_cancel(job_id: int, reason: str) -> None:
    """Cancel a Queued or Processing job, its creator or an admin
    (`autoreduce jobs cancel 12 --reason "wrong file"`)."""
    with api() as client:
        answer = client.post(f"{JOBS}/{job_id}/cancel", {"reason": reason})

    def render(out: Any, job: dict[str, Any]) -> None:
        pending = " (its processor is stopping it)" if job["status"] == "Processing" else ""
        out.print(f"job {job['id']}: {job['status']}{pending}")

    emit(answer, render)
