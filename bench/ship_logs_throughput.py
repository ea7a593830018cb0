"""Throughput (records/s) and peak RSS of ``autoreduce ship-logs`` against the local bulk server.

Run: ``.venv/bin/python -m bench.ship_logs_throughput [RECORDS]`` (default 50,000). Elasticsearch
is the local fake of tests/fake_elasticsearch.py, so this measures the shipper, not a cluster.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from tests.fake_elasticsearch import FakeElasticsearch


def main(records: int) -> None:
    fake = FakeElasticsearch()
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        (data_dir / "in").mkdir()
        with open(data_dir / "in" / "api.jsonl", "w") as stream:
            for seq in range(records):
                stream.write(
                    json.dumps(
                        {
                            "@timestamp": "2026-11-24T06:40:00.000Z",
                            "log.level": "info",
                            "message": f"recorded run WISH {seq} v0",
                            "service": {"name": "api"},
                            "autoreduce": {"run_number": seq},
                        }
                    )
                    + "\n"
                )
        env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOREDUCE_")}
        env.update(AUTOREDUCE_DATA_DIR=str(data_dir),
                   AUTOREDUCE_SHIPPING__ELASTICSEARCH_URL=fake.url,
                   AUTOREDUCE_SHIPPING__PATHS=json.dumps([str(data_dir / "in" / "*.jsonl")]),
                   AUTOREDUCE_SHIPPING__POLL_S="0.05")  # fmt: skip
        started = time.monotonic()
        shipper = subprocess.Popen(
            [str(Path(sys.executable).with_name("autoreduce")), "ship-logs"],
            env=env,
            cwd=tmp,
            stderr=subprocess.DEVNULL,
        )
        process, peak_rss = psutil.Process(shipper.pid), 0
        while len(fake.docs) < records:
            peak_rss = max(peak_rss, process.memory_info().rss)
            time.sleep(0.05)
        elapsed = time.monotonic() - started
        shipper.terminate()
        shipper.wait()
    fake.close()
    print(f"records    {records}")
    print(f"seconds    {elapsed:.1f} (including start-up)")
    print(f"records/s  {records / elapsed:.0f}")
    print(f"peak RSS   {peak_rss / 2**20:.0f} MiB")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 50_000)
