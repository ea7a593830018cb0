"""``autoreduce upload`` and ``autoreduce jobs`` against a real API (``autoreduce up``).

One facility for the module: jobs may run the fast ``noop`` plugin, uploads are kept in its data
directory, and one processor reduces them. The commands run in-process through click's CliRunner
(:func:`tests.integration.test_cli_client.cli`), signed with an admin token by default.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.facility import start_facility, stop_facility
from tests.integration.test_cli_client import Site, _token, cli, cli_json
from tests.polling import wait_for

MAX_UPLOAD_BYTES = 2_000_000


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    facility = start_facility(
        tmp_path_factory.mktemp("facility"),
        {"GEM": {"plugin": "noop"}},
        processors=1,
        settings={
            "max_upload_bytes": MAX_UPLOAD_BYTES,
            "jobs": {"plugins": ["noop"], "timeout_s": 60, "memory_mb": 1024},
        },
    )
    try:
        yield Site(
            facility,
            admin_token=_token(facility, "jobs-admin", "admin"),
            scientist_token=_token(facility, "jobs-gem", "scientist", "GEM"),
        )
    finally:
        stop_facility(facility)


def data_file(tmp_path: Path, name: str, size: int) -> Path:
    path = tmp_path / name
    path.write_bytes(os.urandom(size))
    return path


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def no_traceback(output: str) -> None:
    assert "Traceback" not in output


def test_upload_streams_each_file_and_prints_its_id_size_and_sha256(
    site: Site, tmp_path: Path
) -> None:
    files = [data_file(tmp_path, "a.nxs", 1_500_000), data_file(tmp_path, "b c.dat", 10)]

    items = cli_json(site, "upload", *map(str, files))
    people = cli(site, "upload", str(files[1]))

    assert [(i["filename"], i["size_bytes"], i["sha256"]) for i in items] == [
        ("a.nxs", 1_500_000, sha256(files[0])),
        ("b c.dat", 10, sha256(files[1])),
    ]
    stored = requests.get(f"{site.facility.api_url}/api/v1/uploads/{items[0]['id']}", timeout=10)
    assert stored.json()["sha256"] == sha256(files[0])
    assert people.exit_code == 0, people.output
    (line,) = people.stdout.splitlines()
    upload_id, size, _, _, digest, name = line.split(maxsplit=5)
    assert (len(upload_id), size, digest, name) == (32, "10", sha256(files[1]), "b c.dat")


def test_an_upload_over_the_limit_prints_the_apis_detail_and_exits_1(
    site: Site, tmp_path: Path
) -> None:
    big = data_file(tmp_path, "big.nxs", MAX_UPLOAD_BYTES + 200_000)

    result = cli(site, "upload", str(big))

    assert result.exit_code == 1, result.output
    assert "max_upload_bytes" in result.stderr
    no_traceback(result.output)


def test_jobs_submit_uploads_a_file_and_waits_until_the_job_completes(
    site: Site, tmp_path: Path
) -> None:
    sample = data_file(tmp_path, "sample.nxs", 4096)

    result = cli(
        site, "jobs", "submit", "--plugin", "noop", "--input", str(sample),
        "--var", "sleep_s=0", "--description", "first look", "--wait", "--json",
        token=site.scientist_token,
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    job = json.loads(result.stdout)
    assert job["status"] == "Completed" and job["plugin"] == "noop"
    assert job["run"]["instrument"] == "JOB" and job["run"]["description"] == "first look"
    assert "noop.txt" in {output["name"] for output in job["outputs"]}
    assert f"uploaded {sample} as {job['inputs'][0]}" in result.stderr
    assert sha256(sample) in result.stderr and f"job {job['id']}: Completed" in result.stderr
    # its creator reads it although the token is limited to GEM
    shown = cli(site, "jobs", "show", str(job["id"]), token=site.scientist_token)
    assert shown.exit_code == 0, shown.output
    text = " ".join(shown.stdout.split())
    assert "Completed" in text and f"sample.nxs (4096 bytes, sha256 {sha256(sample)})" in text
    assert f"noop.txt {site.facility.api_url}/api/v1/outputs/" in text


def test_jobs_submit_wait_exits_6_when_the_job_ends_in_error(site: Site, tmp_path: Path) -> None:
    (upload,) = cli_json(site, "upload", str(data_file(tmp_path, "x.nxs", 100)))

    result = cli(
        site, "jobs", "submit", "--plugin", "noop", "--input", upload["id"],
        "--var", "fault=raise", "--wait",
    )  # fmt: skip

    assert result.exit_code == 6, result.output
    assert "Error" in result.stdout
    assert result.stderr.strip().splitlines()[-1].startswith("Error: job ")
    assert " ended Error" in result.stderr
    no_traceback(result.output)


def _status(site: Site, job_id: int, *wanted: str) -> dict[str, Any] | None:
    job: dict[str, Any] = cli_json(site, "jobs", "show", str(job_id))
    return job if job["status"] in wanted else None


def test_jobs_cancel_by_its_creator_not_by_another_scientist(site: Site, tmp_path: Path) -> None:
    sample = data_file(tmp_path, "long.nxs", 100)
    job = cli_json(
        site, "jobs", "submit", "--plugin", "noop", "--input", str(sample), "--var", "sleep_s=60",
        token=site.scientist_token,
    )  # fmt: skip
    other = _token(site.facility, "jobs-other", "scientist", "GEM")

    refused = cli(site, "jobs", "cancel", str(job["id"]), token=other)
    cancelled = cli_json(
        site, "jobs", "cancel", str(job["id"]), "--reason", "wrong file", token=site.scientist_token
    )

    assert refused.exit_code == 4, refused.output
    assert "only its creator or an admin may cancel a job" in refused.stderr
    assert cancelled["status"] in ("Cancelled", "Processing")  # Processing: being stopped
    final = wait_for(lambda: _status(site, job["id"], "Cancelled"), timeout_s=60, interval_s=0.2)
    assert final["outputs"] == []
    again = cli(site, "jobs", "cancel", str(job["id"]))
    assert again.exit_code == 1 and again.stderr.startswith("Error: ")


@pytest.mark.parametrize(
    ("args", "exit_code", "said"),
    [
        (("jobs", "submit", "--plugin", "sans", "--input", "0" * 32), 1, "may not run jobs"),
        (("jobs", "submit", "--plugin", "noop", "--input", "0" * 32), 1, "unknown upload"),
        (("jobs", "submit", "--plugin", "noop", "--input", "no/such.nxs"), 2, "neither a file"),
        (("jobs", "show", "999999"), 1, "job 999999 not found"),
        (("jobs", "show", "0"), 2, "0"),
        (("upload", "no-such-file"), 2, "does not exist"),
    ],
)
def test_bad_requests_say_why_in_one_line_and_exit_non_zero(
    site: Site, args: tuple[str, ...], exit_code: int, said: str
) -> None:
    result = cli(site, *args)

    assert result.exit_code == exit_code, result.output
    assert said in result.stderr
    no_traceback(result.output)
