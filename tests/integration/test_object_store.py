"""Outputs, uploads and jobs in a real S3 store (SeaweedFS from ``scripts/services.sh``).

The API and the processor get *different* outputs and data directories (no shared directory
between them, as on two hosts): whatever the API serves can only have come from the store. Both
share the database (SQLite or MariaDB) and its SQL queue, and the archive (for detected runs).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from autoreduce.db import Database
from autoreduce.db.models import ReductionRun, RunStatus, Upload, utcnow
from autoreduce.retention import cleanup as retention_cleanup
from autoreduce.settings import Settings
from autoreduce.storage import ObjectStore, StoreError
from autoreduce.tokens import create_token
from autoreduce.transport.sql import SqlTransport
from queue_processor.worker import QueueProcessor
from rest_api import create_app
from tests.integration.conftest import start_service
from tests.polling import wait_for

SERVICES_DIR = Path(os.environ.get("AUTOREDUCE_SERVICES_DIR", "/var/tmp/autoreduce-services"))
S3_ENDPOINT = "http://127.0.0.1:18333"
# Three steps in a chain; each writes random bytes, so a step that ran again is seen in its files.
CHAIN = """\
name: chain
steps:
  prepare:
    command: "mkdir sub && od -An -tx1 -N32 /dev/urandom > prepared.txt && cp prepared.txt sub/"
  work:
    command: >-
      od -An -tx1 -N32 /dev/urandom > w.txt &&
      cat $AUTOREDUCE_INPUT_PREPARE/prepared.txt >> w.txt
    rely: [prepare]
  report:
    command: "cat $AUTOREDUCE_INPUT_WORK/w.txt > report.txt"
    rely: [work]
"""


@pytest.fixture(scope="session")
def s3_keys() -> dict[str, str]:
    """The access and secret keys services.sh made for its SeaweedFS (never in the repo)."""
    start_service("seaweedfs")
    config = json.loads((SERVICES_DIR / "seaweedfs" / "s3.json").read_text())
    credentials = config["identities"][0]["credentials"][0]
    return {"access": credentials["accessKey"], "secret": credentials["secretKey"]}


def s3_client(keys: dict[str, str]) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=S3_ENDPOINT,
        region_name="us-east-1",
        aws_access_key_id=keys["access"],
        aws_secret_access_key=keys["secret"],
        config=Config(s3={"addressing_style": "path"}),
    )


@pytest.fixture
def bucket(s3_keys: dict[str, str]) -> Iterator[str]:
    """A bucket of this test's own (the store creates it), deleted with its contents after."""
    name = f"ar-test-{uuid.uuid4().hex[:12]}"
    yield name
    client = s3_client(s3_keys)
    with contextlib.suppress(Exception):  # SeaweedFS deletes a non-empty bucket's contents
        client.delete_bucket(Bucket=name)


def keys_in(keys: dict[str, str], bucket: str, prefix: str = "") -> list[str]:
    client = s3_client(keys)
    try:
        answer = client.list_objects_v2(Bucket=bucket, Prefix=prefix)
    except client.exceptions.NoSuchBucket:
        return []
    return sorted(item["Key"] for item in answer.get("Contents", []))


def run_table(run_number: Any = None) -> dict[str, Any]:
    return {
        "plugin": "noop",
        "lastruns": "{root}/{instrument}/lastruns.txt",
        "data": "{root}/{instrument}/{instrument}{run_number:08d}.nxs",
        "timeout_s": 20,
        "memory_mb": 512,
    }


@pytest.fixture
def host_settings(
    tmp_path: Path, archive: Path, database: Database, bucket: str, s3_keys: dict[str, str]
) -> Callable[..., Settings]:
    """Settings of one host (``api`` or ``processor``): its own data and outputs directories."""

    pipelines = tmp_path / "pipelines"  # configuration, the same on every host
    pipelines.mkdir()
    (pipelines / "chain.yaml").write_text(CHAIN)

    def build(host: str, **overrides: Any) -> Settings:
        options: dict[str, Any] = {
            "data_dir": tmp_path / host / "data",
            "outputs": tmp_path / host / "outputs",
            "database_url": database.url,
            "archive": {"root": archive},
            "instruments": {
                "GEM": run_table(),
                "CHAIN": {**run_table(), "plugin": "", "pipeline": "chain"},
            },
            "pipelines_dir": pipelines,
            "storage": f"s3://{bucket}/autoreduce",
            "s3_endpoint": S3_ENDPOINT,
            "s3_access_key": s3_keys["access"],
            "s3_secret_key": s3_keys["secret"],
            "jobs": {"plugins": ["noop"], "timeout_s": 20, "memory_mb": 512},
            "shutdown_grace_s": 0,
            "retry_delay_s": 0,
        }
        options.update(overrides)
        return Settings(**options)

    return build


@pytest.fixture
def api(host_settings: Callable[..., Settings], database: Database) -> Iterator[TestClient]:
    app = create_app(host_settings("api", max_upload_bytes=100_000), database=database, relay=False)
    with TestClient(app) as client:
        yield client


@pytest.fixture
def token(database: Database) -> Callable[[str], dict[str, str]]:
    counter = iter(range(1000))

    def headers(role: str, *instruments: str) -> dict[str, str]:
        secret = create_token(database, f"{role}-{next(counter)}", role, instruments)
        return {"Authorization": f"Bearer {secret}"}

    return headers


def make_processor(settings: Settings, database: Database) -> QueueProcessor:
    transport = SqlTransport(database.url, consumer="p-store", database=database)
    processor = QueueProcessor(settings, database=database, transport=transport, processor_id="p")
    assert processor.store is not None
    processor.store.ensure_bucket()
    return processor


def reduce_until_final(
    api: TestClient, processor: QueueProcessor, database: Database, run_id: int
) -> ReductionRun:
    """Relay the outbox and let the processor take messages until the run is final."""
    api.app.state.api.relay.relay_once()  # type: ignore[attr-defined]

    def final() -> ReductionRun | None:
        processor.process_next(0.2)
        api.app.state.api.relay.relay_once()  # type: ignore[attr-defined]  # retries, if any
        with database.session() as session:
            run = session.get(ReductionRun, run_id)
            assert run is not None
            session.expunge(run)
            return run if RunStatus(run.status).is_final else None

    return wait_for(final, timeout_s=60, what=f"run id {run_id} to finish")


def reduce_gem_run(
    api: TestClient,
    processor_settings: Settings,
    database: Database,
    archive: Path,
    token: Callable[..., dict[str, str]],
    run_number: int,
    instrument: str = "GEM",
) -> ReductionRun:
    """A data file in the archive, submitted through the API and reduced by a processor."""
    data = archive / instrument / f"{instrument}{run_number:08d}.nxs"
    data.parent.mkdir(parents=True, exist_ok=True)
    data.write_bytes(b"not really NeXus")
    processor = make_processor(processor_settings, database)
    submitted = api.post(
        "/api/v1/runs",
        json={"instrument": instrument, "run_number": run_number},
        headers=token("detector"),
    )
    assert submitted.status_code == 201, submitted.text
    return reduce_until_final(api, processor, database, submitted.json()["id"])


def job_in(api: TestClient, job_id: int, headers: dict[str, str], status: str) -> Any:
    """The job's JSON if it is in ``status`` now, else None."""
    answer = api.get(f"/api/v1/jobs/{job_id}", headers=headers).json()
    return answer if answer["status"] == status else None


def upload(
    api: TestClient, headers: dict[str, str], content: bytes, name: str = "sample.dat"
) -> Any:
    return api.post("/api/v1/uploads", files={"file": (name, content)}, headers=headers)


# --- outputs ----------------------------------------------------------------------------------


def test_outputs_are_published_to_the_store_and_downloaded_through_the_api(
    api: TestClient,
    host_settings: Callable[..., Settings],
    database: Database,
    archive: Path,
    token: Callable[..., dict[str, str]],
    s3_keys: dict[str, str],
    bucket: str,
) -> None:
    processor_settings = host_settings("processor")

    run = reduce_gem_run(api, processor_settings, database, archive, token, 44733)

    assert run.status == RunStatus.COMPLETED, run.message
    assert run.output_dir.startswith(f"s3://{bucket}/autoreduce/runs/GEM/44733/v0/a1-")
    # no local copy on the processor, and the API host never had one
    assert not [p for p in processor_settings.outputs_root.rglob("*") if p.is_file()]
    assert not (api.app.state.api.settings.outputs_root).exists()  # type: ignore[attr-defined]
    base = run.output_dir.removeprefix(f"s3://{bucket}/")
    stored = keys_in(s3_keys, bucket, base)
    assert stored == sorted(
        f"{base}/{name}"
        for name in ("manifest.json", "noop.txt", "reduction.log", "variables.json")
    )
    item = api.get("/api/v1/runs/GEM/44733", headers=token("admin")).json()
    outputs = {output["name"]: output["url"] for output in item["versions"][0]["outputs"]}
    reader = token("admin")
    assert api.get(outputs["noop.txt"], headers=reader).text == "44733\n"
    manifest = json.loads(
        s3_client(s3_keys).get_object(Bucket=bucket, Key=f"{base}/manifest.json")["Body"].read()
    )
    assert manifest["files"]["noop.txt"]["sha256"] == hashlib.sha256(b"44733\n").hexdigest()
    log = api.get("/api/v1/runs/GEM/44733/versions/0/log", headers=reader)
    assert log.status_code == 200 and "noop: sleeping" in log.text


def test_a_failed_publication_leaves_no_object_behind(
    host_settings: Callable[..., Settings], tmp_path: Path, s3_keys: dict[str, str], bucket: str
) -> None:
    store = ObjectStore(host_settings("processor"))
    store.ensure_bucket()
    source = tmp_path / "outputs"
    source.mkdir()
    (source / "first.txt").write_bytes(b"x" * 10_000)  # uploaded, then the second one fails

    with pytest.raises(StoreError):
        store.publish("autoreduce/runs/GEM/1/v0", 1, source, ["first.txt", "missing.txt"])

    assert keys_in(s3_keys, bucket, "autoreduce/runs/") == []


def test_a_store_that_refuses_the_outputs_leaves_the_run_in_error_with_no_outputs(
    api: TestClient,
    host_settings: Callable[..., Settings],
    database: Database,
    archive: Path,
    token: Callable[..., dict[str, str]],
    s3_keys: dict[str, str],
    bucket: str,
) -> None:
    data = archive / "GEM" / "GEM00000007.nxs"
    data.parent.mkdir(parents=True)
    data.write_bytes(b"x")
    make_processor(host_settings("processor"), database)  # creates the bucket with good keys
    wrong = host_settings("processor", s3_secret_key="not-the-secret-key", max_attempts=2)
    transport = SqlTransport(database.url, consumer="p-wrong", database=database)
    processor = QueueProcessor(wrong, database=database, transport=transport, processor_id="pw")
    submitted = api.post(
        "/api/v1/runs", json={"instrument": "GEM", "run_number": 7}, headers=token("detector")
    )

    run = reduce_until_final(api, processor, database, submitted.json()["id"])

    assert run.status == RunStatus.ERROR
    assert "publishing the outputs to the object store failed" in run.message
    assert "not-the-secret-key" not in run.message
    assert run.attempts == 2  # retried once: a store outage is not the plugin's fault
    item = api.get("/api/v1/runs/GEM/7", headers=token("admin")).json()
    assert item["versions"][0]["outputs"] == []
    assert keys_in(s3_keys, bucket, "autoreduce/runs/") == []


# --- from_step re-runs of a published pipeline run -------------------------------------------

CHAIN_FILES = ("prepare/prepared.txt", "prepare/sub/prepared.txt", "work/w.txt")


def version_of(api: TestClient, headers: dict[str, str], version: int) -> Any:
    return api.get("/api/v1/runs/CHAIN/1", headers=headers).json()["versions"][version]


def downloaded(api: TestClient, headers: dict[str, str], item: Any) -> dict[str, str]:
    """Every output of a run version, downloaded through the API: name → text."""
    return {
        output["name"]: api.get(output["url"], headers=headers).text for output in item["outputs"]
    }


def rerun_from(
    api: TestClient, settings: Settings, database: Database, headers: dict[str, str], step: str
) -> ReductionRun:
    response = api.post("/api/v1/runs/CHAIN/1/reruns", json={"from_step": step}, headers=headers)
    assert response.status_code == 201, response.text
    processor = make_processor(settings, database)  # a fresh one: nothing of v0 on its disk
    return reduce_until_final(api, processor, database, response.json()["id"])


@pytest.fixture
def chain_v0(
    api: TestClient,
    host_settings: Callable[..., Settings],
    database: Database,
    archive: Path,
    token: Callable[..., dict[str, str]],
) -> tuple[Settings, ReductionRun]:
    """The processor's settings and CHAIN run 1's first version, reduced and published."""
    settings = host_settings("processor")
    first = reduce_gem_run(api, settings, database, archive, token, 1, instrument="CHAIN")
    assert first.status == RunStatus.COMPLETED, first.message
    return settings, first


def test_a_from_step_rerun_fetches_the_steps_it_reuses_from_the_store(
    api: TestClient,
    chain_v0: tuple[Settings, ReductionRun],
    database: Database,
    token: Callable[..., dict[str, str]],
    bucket: str,
) -> None:
    settings, first = chain_v0
    assert first.output_dir.startswith(f"s3://{bucket}/")
    assert not [p for p in settings.outputs_root.rglob("*") if p.is_file()]
    admin = token("admin")

    second = rerun_from(api, settings, database, admin, "report")

    assert second.status == RunStatus.COMPLETED, second.message
    assert second.output_dir.startswith(f"s3://{bucket}/") and second.output_dir != first.output_dir
    before, after = version_of(api, admin, 0), version_of(api, admin, 1)
    steps = {step["step"]: step for step in after["steps"]}
    assert {name: step["reused_from_version"] for name, step in steps.items()} == {
        "prepare": 0,
        "work": 0,
        "report": None,
    }
    assert {name: step["state"] for name, step in steps.items()} == dict.fromkeys(
        steps, "Completed"
    )
    for name in ("prepare", "work"):
        assert steps[name]["message"] == "reused from v0 (fetched from the object store)"
    old, new = downloaded(api, admin, before), downloaded(api, admin, after)
    for name in CHAIN_FILES:  # random bytes: the same only if the step did not run again
        assert new[name] == old[name], name
    assert new["report/report.txt"] == old["work/w.txt"]


@pytest.mark.parametrize(
    ("key", "body", "noted", "ran_again"),
    [
        # retention or an operator removed one of work's objects: work runs, so does report
        ("work/w.txt", None, {"work": "not found"}, {"work", "report"}),
        # an object that is not what was published is not reused either
        ("work/w.txt", b"changed", {"work": "differs from its manifest"}, {"work", "report"}),
        # no manifest: nothing of v0 can be trusted, every step runs
        (
            "manifest.json",
            None,
            {"prepare": "manifest cannot be read"},
            {"prepare", "work", "report"},
        ),
    ],
)
def test_a_step_whose_objects_are_gone_or_changed_runs_again_and_says_why(
    api: TestClient,
    chain_v0: tuple[Settings, ReductionRun],
    database: Database,
    token: Callable[..., dict[str, str]],
    s3_keys: dict[str, str],
    bucket: str,
    key: str,
    body: bytes | None,
    noted: dict[str, str],
    ran_again: set[str],
) -> None:
    settings, first = chain_v0
    admin = token("admin")
    old = downloaded(api, admin, version_of(api, admin, 0))
    base = first.output_dir.removeprefix(f"s3://{bucket}/")
    if body is None:
        s3_client(s3_keys).delete_object(Bucket=bucket, Key=f"{base}/{key}")
    else:
        s3_client(s3_keys).put_object(Bucket=bucket, Key=f"{base}/{key}", Body=body)

    second = rerun_from(api, settings, database, admin, "report")

    assert second.status == RunStatus.COMPLETED, second.message
    after = version_of(api, admin, 1)
    steps = {step["step"]: step for step in after["steps"]}
    reused = {name for name, step in steps.items() if step["reused_from_version"] == 0}
    assert reused == {"prepare", "work", "report"} - ran_again
    assert all(step["state"] == "Completed" for step in steps.values())
    for name, words in noted.items():
        assert steps[name]["message"].startswith("not reused from v0: "), steps[name]
        assert words in steps[name]["message"], steps[name]
    if "work" not in noted:
        assert steps["work"]["message"].startswith("not reused: step prepare"), steps["work"]
    new = downloaded(api, admin, after)
    for name in CHAIN_FILES:
        assert (new[name] == old[name]) == (name.split("/")[0] not in ran_again), name


def test_a_manifest_name_escaping_its_step_is_refused_and_the_step_runs_again(
    api: TestClient,
    chain_v0: tuple[Settings, ReductionRun],
    database: Database,
    token: Callable[..., dict[str, str]],
    s3_keys: dict[str, str],
    bucket: str,
) -> None:
    settings, first = chain_v0
    client = s3_client(s3_keys)
    key = f"{first.output_dir.removeprefix(f's3://{bucket}/')}/manifest.json"
    manifest = json.loads(client.get_object(Bucket=bucket, Key=key)["Body"].read())
    entry = manifest["files"]["prepare/prepared.txt"]
    manifest["files"]["prepare/../../../escaped.txt"] = entry
    client.put_object(Bucket=bucket, Key=key, Body=json.dumps(manifest).encode())
    admin = token("admin")

    second = rerun_from(api, settings, database, admin, "report")

    assert second.status == RunStatus.COMPLETED, second.message
    steps = {step["step"]: step for step in version_of(api, admin, 1)["steps"]}
    assert [steps[name]["reused_from_version"] for name in ("prepare", "work")] == [None, None]
    assert "cannot be used in a key" in steps["prepare"]["message"]
    assert not [p for p in settings.outputs_root.parent.rglob("escaped.txt")]


# --- uploads and jobs -------------------------------------------------------------------------


def test_an_upload_is_stored_with_its_sha256_and_reduced_by_a_job(
    api: TestClient,
    host_settings: Callable[..., Settings],
    database: Database,
    token: Callable[..., dict[str, str]],
    s3_keys: dict[str, str],
    bucket: str,
) -> None:
    content = os.urandom(50_000)
    scientist = token("scientist")
    stored = upload(api, scientist, content, name="../../etc/passwd")
    assert stored.status_code == 201, stored.text
    body = stored.json()
    assert body["sha256"] == hashlib.sha256(content).hexdigest()
    assert body["size_bytes"] == len(content) and body["filename"] == "passwd"
    assert keys_in(s3_keys, bucket, "autoreduce/uploads/") == [f"autoreduce/uploads/{body['id']}"]

    created = api.post(
        "/api/v1/jobs",
        json={"plugin": "noop", "inputs": [body["id"]], "variables": {"sleep_s": 0}},
        headers=scientist,
    )
    assert created.status_code == 201, created.text
    job = created.json()
    assert job["status"] == "Queued" and job["run"]["instrument"] == "JOB"
    sources = job["run"]["variable_sources"]
    assert (sources["sleep_s"], sources["fault"]) == ("job request", "plugin default")
    processor = make_processor(host_settings("processor"), database)

    run = reduce_until_final(api, processor, database, job["run"]["id"])

    assert run.status == RunStatus.COMPLETED, run.message
    assert run.provenance is not None
    assert run.provenance["data_file"]["sha256"] == body["sha256"]  # the plugin got the upload
    answer = api.get(f"/api/v1/jobs/{job['id']}", headers=scientist).json()
    assert answer["status"] == "Completed"
    outputs = {output["name"]: output["url"] for output in answer["outputs"]}
    assert api.get(outputs["noop.txt"], headers=scientist).text == f"{job['id']}\n"
    assert not list((host_settings("processor").data_dir / "job-inputs").glob("*/*"))


def test_an_upload_over_the_limit_is_a_413_problem_and_stores_nothing(
    api: TestClient,
    database: Database,
    token: Callable[..., dict[str, str]],
    s3_keys: dict[str, str],
    bucket: str,
) -> None:
    scientist = token("scientist")
    for size in (150_000, 2_000_000):  # caught while streaming; refused from Content-Length
        response = upload(api, scientist, b"y" * size)
        assert response.status_code == 413, size
        assert response.headers["content-type"] == "application/problem+json"
        assert "max_upload_bytes" in response.json()["detail"]
    with database.session() as session:
        assert session.scalar(select(func.count()).select_from(Upload)) == 0
    assert keys_in(s3_keys, bucket, "autoreduce/uploads/") == []
    data_dir: Path = api.app.state.api.settings.data_dir  # type: ignore[attr-defined]
    assert list((data_dir / "upload-tmp").iterdir()) == []  # no temporary file left


def test_jobs_refuse_unknown_uploads_unlisted_plugins_and_readers(
    api: TestClient, token: Callable[..., dict[str, str]]
) -> None:
    scientist = token("scientist")
    body = upload(api, scientist, b"data").json()
    cases = [
        ({"plugin": "noop", "inputs": ["0" * 32]}, scientist, 422),
        ({"plugin": "sans", "inputs": [body["id"]]}, scientist, 422),
        ({"plugin": "noop", "inputs": [body["id"]], "variables": {"nope": 1}}, scientist, 422),
        ({"plugin": "noop", "inputs": ["../x"]}, scientist, 422),
        ({"plugin": "noop", "inputs": [body["id"]]}, token("detector"), 403),
    ]
    for request, headers, status in cases:
        response = api.post("/api/v1/jobs", json=request, headers=headers)
        assert response.status_code == status, (request, response.text)
    assert api.post("/api/v1/uploads", content=b"raw", headers=scientist).status_code == 415
    assert api.get("/api/v1/jobs/999", headers=scientist).status_code == 404


def test_a_queued_job_is_cancelled_by_its_creator_not_by_another_scientist(
    api: TestClient, token: Callable[..., dict[str, str]]
) -> None:
    creator, other = token("scientist"), token("scientist")
    body = upload(api, creator, b"data").json()
    job = api.post("/api/v1/jobs", json={"plugin": "noop", "inputs": [body["id"]]}, headers=creator)
    url = f"/api/v1/jobs/{job.json()['id']}/cancel"

    assert api.post(url, json={}, headers=other).status_code == 403
    cancelled = api.post(url, json={"reason": "wrong file"}, headers=creator)

    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "Cancelled"
    assert api.post(url, json={}, headers=creator).status_code == 409


def test_a_processing_job_is_cancelled_and_publishes_nothing(
    api: TestClient,
    host_settings: Callable[..., Settings],
    database: Database,
    token: Callable[..., dict[str, str]],
    s3_keys: dict[str, str],
    bucket: str,
) -> None:
    scientist = token("scientist")
    body = upload(api, scientist, b"data").json()
    job = api.post(
        "/api/v1/jobs",
        json={"plugin": "noop", "inputs": [body["id"]], "variables": {"sleep_s": 60}},
        headers=scientist,
    ).json()
    api.app.state.api.relay.relay_once()  # type: ignore[attr-defined]
    processor = make_processor(host_settings("processor"), database)
    worker = threading.Thread(target=processor.serve, daemon=True)
    worker.start()
    try:
        wait_for(lambda: job_in(api, job["id"], scientist, "Processing"), what="the job to start")
        cancel = api.post(f"/api/v1/jobs/{job['id']}/cancel", json={}, headers=scientist)
        assert cancel.status_code == 202, cancel.text
        final = wait_for(
            lambda: job_in(api, job["id"], scientist, "Cancelled"), what="the job to be cancelled"
        )
    finally:
        processor.stop()
        worker.join(timeout=30)
    assert final["outputs"] == []
    assert keys_in(s3_keys, bucket, "autoreduce/runs/") == []


def test_with_file_storage_an_upload_is_kept_on_disk_and_reduced_by_a_job(
    host_settings: Callable[..., Settings],
    database: Database,
    token: Callable[..., dict[str, str]],
    tmp_path: Path,
) -> None:
    data_dir, outputs = tmp_path / "one" / "data", tmp_path / "one" / "outputs"
    shared: dict[str, Any] = {"storage": "file", "data_dir": data_dir, "outputs": outputs}
    app = create_app(host_settings("api", **shared), database=database, relay=False)
    scientist = token("scientist")
    with TestClient(app) as api:
        body = upload(api, scientist, b"kept on disk").json()
        kept = data_dir / "uploads" / body["id"]
        assert kept.read_bytes() == b"kept on disk"
        job = api.post(
            "/api/v1/jobs", json={"plugin": "noop", "inputs": [body["id"]]}, headers=scientist
        ).json()
        settings = host_settings("processor", **shared)
        transport = SqlTransport(database.url, consumer="p-file", database=database)
        processor = QueueProcessor(
            settings, database=database, transport=transport, processor_id="pf"
        )

        run = reduce_until_final(api, processor, database, job["run"]["id"])

        assert run.status == RunStatus.COMPLETED, run.message
        assert run.output_dir == str(outputs.resolve() / "JOB" / str(job["id"]) / "v0")
        answer = api.get(f"/api/v1/runs/JOB/{job['id']}", headers=scientist)
        assert answer.status_code == 200
        urls = {o["name"]: o["url"] for o in answer.json()["versions"][0]["outputs"]}
        assert api.get(urls["noop.txt"], headers=scientist).text == f"{job['id']}\n"


def test_a_job_is_read_by_its_creator_and_readers_of_job_not_by_other_scoped_tokens(
    api: TestClient, token: Callable[..., dict[str, str]]
) -> None:
    creator, other = token("scientist", "GEM"), token("scientist", "GEM")
    body = upload(api, creator, b"data").json()
    job = api.post("/api/v1/jobs", json={"plugin": "noop", "inputs": [body["id"]]}, headers=creator)
    url = f"/api/v1/jobs/{job.json()['id']}"

    assert api.get(url, headers=creator).status_code == 200
    assert api.get(url, headers=other).status_code == 404
    assert api.get(url, headers=token("scientist", "JOB")).status_code == 200
    assert api.get(url, headers=token("admin")).status_code == 200


# --- retention ----------------------------------------------------------------------------------


def clean(settings: Settings, database: Database, **options: Any) -> dict[str, Any]:
    """``autoreduce cleanup`` in this process: the report, as the command prints it."""
    document: dict[str, Any] = retention_cleanup(settings, database, **options).as_dict()
    return document


def backdate(database: Database, row: Any, days: float) -> None:
    """Move a run's ``finished_at`` or an upload's ``created_at`` ``days`` into the past."""
    column = ReductionRun.finished_at if isinstance(row, int) else Upload.created_at
    key = ReductionRun.id if isinstance(row, int) else Upload.id
    with database.session() as session:
        session.execute(
            update(column.class_)
            .where(key == row)
            .values({column: utcnow() - timedelta(days=days)})
        )


def test_retention_deletes_an_old_runs_log_and_stray_objects_and_keeps_its_data(
    api: TestClient,
    host_settings: Callable[..., Settings],
    database: Database,
    archive: Path,
    token: Callable[..., dict[str, str]],
    s3_keys: dict[str, str],
    bucket: str,
) -> None:
    run = reduce_gem_run(api, host_settings("processor"), database, archive, token, 44734)
    assert run.status == RunStatus.COMPLETED, run.message
    base = run.output_dir.removeprefix(f"s3://{bucket}/")
    stray = "autoreduce/runs/GEM/44734/v0/a7-0123456789ab/half.txt"  # a killed publication's
    s3_client(s3_keys).put_object(Bucket=bucket, Key=stray, Body=b"half")
    settings = host_settings("api")
    assert clean(settings, database, older_than="1d")["object_count"] == 0  # not old yet
    backdate(database, run.id, 3)

    dry = clean(settings, database, older_than="1d", dry_run=True)
    assert len(keys_in(s3_keys, bucket, "autoreduce/runs/")) == 5  # nothing removed yet
    real = clean(settings, database, older_than="1d")

    gone = sorted(item["url"] for item in real["objects"])
    assert gone == sorted(item["url"] for item in dry["objects"])
    assert real["object_bytes"] == dry["object_bytes"] > 0
    assert gone == sorted(f"s3://{bucket}/{key}" for key in (f"{base}/reduction.log", stray))
    assert keys_in(s3_keys, bucket, "autoreduce/runs/") == sorted(
        f"{base}/{name}" for name in ("manifest.json", "noop.txt", "variables.json")
    )
    reader = token("admin")
    item = api.get("/api/v1/runs/GEM/44734", headers=reader).json()
    outputs = {output["name"]: output["url"] for output in item["versions"][0]["outputs"]}
    assert api.get(outputs["noop.txt"], headers=reader).text == "44734\n"
    log = api.get("/api/v1/runs/GEM/44734/versions/0/log", headers=reader)
    assert log.status_code == 410 and "removed by retention" in log.text
    assert api.get(outputs["reduction.log"], headers=reader).status_code == 410
    with database.session() as session:  # the run's rows stay
        assert session.get(ReductionRun, run.id) is not None
    assert clean(settings, database, older_than="1d")["object_count"] == 0  # cleaned once


def test_retention_removes_old_uploads_no_live_job_names_and_keeps_the_rest(
    api: TestClient,
    host_settings: Callable[..., Settings],
    database: Database,
    token: Callable[..., dict[str, str]],
    s3_keys: dict[str, str],
    bucket: str,
) -> None:
    scientist = token("scientist")
    ids = {
        name: upload(api, scientist, name.encode() * 100).json()["id"]
        for name in ("unnamed_old", "unnamed_new", "done_job", "queued_job")
    }
    jobs = {
        name: api.post(
            "/api/v1/jobs", json={"plugin": "noop", "inputs": [ids[name]]}, headers=scientist
        ).json()
        for name in ("done_job", "queued_job")
    }
    processor = make_processor(host_settings("processor"), database)
    done = reduce_until_final(api, processor, database, jobs["done_job"]["run"]["id"])
    assert done.status == RunStatus.COMPLETED, done.message
    with database.session() as session:  # the second job stays Queued: its run is not final
        queued = session.get(ReductionRun, jobs["queued_job"]["run"]["id"])
        assert queued is not None and queued.status == RunStatus.QUEUED
    for name in ids:
        backdate(database, ids[name], 40 if name != "unnamed_new" else 1)
    backdate(database, done.id, 100)
    settings = host_settings("api", uploads={"keep_days": 30})

    dry = clean(settings, database, older_than="90d", dry_run=True)
    assert len(keys_in(s3_keys, bucket, "autoreduce/uploads/")) == 4
    real = clean(settings, database, older_than="90d")

    removed = {ids["unnamed_old"], ids["done_job"]}
    assert {item["id"] for item in real["uploads"]} == removed
    listed = [(item["id"], item["location"], item["bytes"]) for item in dry["uploads"]]
    assert [(item["id"], item["location"], item["bytes"]) for item in real["uploads"]] == listed
    assert real["upload_bytes"] == len(b"unnamed_old" * 100) + len(b"done_job" * 100)
    assert keys_in(s3_keys, bucket, "autoreduce/uploads/") == sorted(
        f"autoreduce/uploads/{ids[name]}" for name in ("unnamed_new", "queued_job")
    )
    for name, upload_id in ids.items():
        item = api.get(f"/api/v1/uploads/{upload_id}", headers=scientist).json()
        assert (item["removed_at"] is not None) == (upload_id in removed), name
    again = api.post(
        "/api/v1/jobs", json={"plugin": "noop", "inputs": [ids["done_job"]]}, headers=scientist
    )
    assert again.status_code == 422 and "removed by retention" in again.text
    assert clean(settings, database, older_than="90d")["upload_count"] == 0


def test_with_file_storage_retention_removes_an_old_unnamed_upload_file(
    host_settings: Callable[..., Settings],
    database: Database,
    token: Callable[..., dict[str, str]],
    tmp_path: Path,
) -> None:
    shared: dict[str, Any] = {"storage": "file", "data_dir": tmp_path / "one" / "data"}
    settings = host_settings("api", **shared)
    scientist = token("scientist")
    with TestClient(create_app(settings, database=database, relay=False)) as api:
        old, new = (upload(api, scientist, b"kept on disk").json()["id"] for _ in range(2))
    backdate(database, old, 31)

    dry = clean(settings, database, dry_run=True)
    assert (settings.data_dir / "uploads" / old).is_file()
    real = clean(settings, database)

    assert [item["id"] for item in dry["uploads"]] == [item["id"] for item in real["uploads"]]
    assert [item["id"] for item in real["uploads"]] == [old]
    assert not (settings.data_dir / "uploads" / old).exists()
    assert (settings.data_dir / "uploads" / new).read_bytes() == b"kept on disk"
    with database.session() as session:
        row = session.get(Upload, old)
        assert row is not None and row.removed_at is not None
