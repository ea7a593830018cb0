"""(g) The object store: upload and download MiB/s through autoreduce's store (boto3).

Against the SeaweedFS that ``scripts/services.sh start seaweedfs`` runs (its keys are read from
the services directory), in a bucket of its own that is deleted afterwards. Files are random
bytes written to a temporary directory first; each size is moved ``repeats`` times and the
median is shown. ``publish`` is a run's worth of small files (outputs plus manifest) at once.
Run alone with ``python -m bench --only g --quick``.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from autoreduce.settings import Settings
from autoreduce.storage import ObjectStore
from bench.report import Table

REPO = Path(__file__).resolve().parents[1]
SERVICES_DIR = Path(os.environ.get("AUTOREDUCE_SERVICES_DIR", "/var/tmp/autoreduce-services"))
ENDPOINT = "http://127.0.0.1:18333"
MIB = 1024 * 1024


@dataclass
class StoreResult:
    label: str
    size_mib: float
    upload_mib_s: float
    download_mib_s: float


def _store(bucket: str) -> ObjectStore:
    subprocess.run([str(REPO / "scripts" / "services.sh"), "start", "seaweedfs"], check=True)
    config = json.loads((SERVICES_DIR / "seaweedfs" / "s3.json").read_text())
    keys = config["identities"][0]["credentials"][0]
    settings = Settings(
        storage=f"s3://{bucket}/bench",
        s3_endpoint=ENDPOINT,
        s3_access_key=keys["accessKey"],
        s3_secret_key=keys["secretKey"],
    )
    store = ObjectStore(settings)
    store.ensure_bucket()
    return store


def measure(quick: bool = False) -> list[StoreResult]:
    sizes = (1, 16, 64) if quick else (1, 16, 128, 512)
    repeats = 3
    bucket = f"ar-bench-{uuid.uuid4().hex[:10]}"
    store = _store(bucket)
    results: list[StoreResult] = []
    try:
        with tempfile.TemporaryDirectory() as scratch:
            root = Path(scratch)
            for size in sizes:
                source = root / f"file-{size}"
                with source.open("wb") as handle:
                    for _ in range(size):
                        handle.write(os.urandom(MIB))
                ups, downs = [], []
                for attempt in range(repeats):
                    key = store.key("bench", f"{size}-{attempt}")
                    began = time.perf_counter()
                    with source.open("rb") as handle:
                        store.put_file(key, handle)
                    ups.append(size / (time.perf_counter() - began))
                    began = time.perf_counter()
                    store.fetch(key, root / "copy")
                    downs.append(size / (time.perf_counter() - began))
                results.append(
                    StoreResult(
                        f"one file of {size} MiB",
                        size,
                        statistics.median(ups),
                        statistics.median(downs),
                    )
                )
                source.unlink()
            outputs = root / "outputs"
            outputs.mkdir()
            names = [f"bank{n}.dat" for n in range(20)]
            for name in names:
                (outputs / name).write_bytes(os.urandom(256 * 1024))
            began = time.perf_counter()
            store.publish(store.run_prefix("BENCH", 1, 0), 1, outputs, names)
            elapsed = time.perf_counter() - began
            results.append(StoreResult("publish 20 x 256 KiB", 5.0, 5.0 / elapsed, 0.0))
    finally:
        store.delete_under(store.key())
        store.client.delete_bucket(Bucket=bucket)
    return results


def object_store_table(results: list[StoreResult]) -> Table:
    table = Table(
        "(g) object store (SeaweedFS on loopback, boto3): median MiB/s of 3",
        ["transfer", "MiB", "upload MiB/s", "download MiB/s"],
    )
    for result in results:
        table.add(result.label, result.size_mib, result.upload_mib_s, result.download_mib_s or None)
    table.notes.append("publish: 20 files one after another, then manifest.json (SHA-256 each)")
    return table
