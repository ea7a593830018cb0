"""``autoreduce ship-logs`` against a local server speaking Elasticsearch's bulk protocol.

Elasticsearch cannot run here (see tests/fake_elasticsearch.py): what is tested is the shipper's
side of the wire, with real files, a real subprocess killed with SIGKILL and a real network cut.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fake_elasticsearch import FakeElasticsearch
from tests.polling import wait_for
from tests.tcp_proxy import TcpProxy

AUTOREDUCE = Path(sys.executable).with_name("autoreduce")
SECRET = "hunter2-very-secret"


def write_records(path: Path, label: str, count: int, start: int = 0) -> None:
    with open(path, "a", encoding="utf-8") as stream:
        for seq in range(start, start + count):
            record: dict[str, object] = {
                "@timestamp": "2026-11-24T06:40:00.000Z",
                "message": f"{label} record {seq}",
                "labels": {"file": label, "seq": seq},
            }
            if seq == 500:
                record["message"] = f"connecting to mysql://root:{SECRET}@db/x password={SECRET}"
            if label == "b" and seq == 1000:
                record["labels"] = {"file": label, "seq": seq, "malformed": True}
            stream.write(json.dumps(record) + "\n")


@pytest.fixture
def elasticsearch() -> Iterator[tuple[FakeElasticsearch, TcpProxy]]:
    fake = FakeElasticsearch(reject_429=lambda doc_id: int(doc_id[:8], 16) % 3 == 0)
    proxy = TcpProxy("127.0.0.1", fake.port)
    yield fake, proxy
    proxy.close()
    fake.close()


def start_shipper(data_dir: Path, url: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOREDUCE_")}
    env.update(
        AUTOREDUCE_DATA_DIR=str(data_dir),
        AUTOREDUCE_SHIPPING__ELASTICSEARCH_URL=url,
        AUTOREDUCE_SHIPPING__PATHS=json.dumps([str(data_dir / "in" / "*.jsonl*")]),
        AUTOREDUCE_SHIPPING__BATCH_RECORDS="250",
        AUTOREDUCE_SHIPPING__POLL_S="0.05",
        AUTOREDUCE_SHIPPING__SCAN_S="0.1",
        AUTOREDUCE_SHIPPING__MAX_BACKOFF_S="0.3",
    )
    return subprocess.Popen(
        [str(AUTOREDUCE), "ship-logs"], cwd=data_dir, env=env, stderr=subprocess.DEVNULL
    )


def kill(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)


def unreachable_warnings(data_dir: Path) -> int:
    log = data_dir / "logs" / "ship-logs.jsonl"
    text = log.read_text() if log.is_file() else ""
    return text.count("cannot take the batch")


def test_ten_thousand_records_through_429s_an_outage_and_two_kills_arrive_once_in_order(
    tmp_path: Path, elasticsearch: tuple[FakeElasticsearch, TcpProxy]
) -> None:
    fake, proxy = elasticsearch
    data_dir, inbox = tmp_path / "data", tmp_path / "data" / "in"
    inbox.mkdir(parents=True)
    write_records(inbox / "a.jsonl", "a1", 6000)
    write_records(inbox / "b.jsonl", "b", 2001)  # one malformed: dead-lettered, not indexed
    url = f"http://127.0.0.1:{proxy.port}"

    shipper = start_shipper(data_dir, url)
    wait_for(lambda: len(fake.docs) >= 1500, timeout_s=60)
    kill(shipper)  # first kill, mid-stream
    os.rename(inbox / "a.jsonl", inbox / "a.jsonl.1")  # rotation: a new file under the old name
    write_records(inbox / "a.jsonl", "a2", 2000)
    proxy.cut()  # Elasticsearch goes down
    shipper = start_shipper(data_dir, url)
    wait_for(lambda: unreachable_warnings(data_dir) >= 1, timeout_s=60)
    kill(shipper)  # second kill, while Elasticsearch is down
    warned = unreachable_warnings(data_dir)
    shipper = start_shipper(data_dir, url)
    wait_for(lambda: unreachable_warnings(data_dir) > warned, timeout_s=60)
    proxy.restore()  # and comes back
    try:
        wait_for(lambda: len(fake.docs) >= 10_000, timeout_s=180)
        dead_letters = data_dir / "ship-logs" / "dead-letters.jsonl"
        wait_for(dead_letters.is_file, timeout_s=30)
    finally:
        shipper.terminate()
        shipper.wait(timeout=30)

    records = [(d["labels"]["file"], d["labels"]["seq"]) for d in fake.docs.values()]
    assert len(records) == len(set(records)) == 10_000
    assert sorted(records) == sorted(
        [("a1", s) for s in range(6000)]
        + [("a2", s) for s in range(2000)]
        + [("b", s) for s in range(2001) if s != 1000]
    )
    assert set(fake.creates.values()) == {1}
    assert fake.answered_429 > 2000  # a third of the items were refused once
    first_sent = [fake.docs[i]["labels"] for i in fake.first_sent if i in fake.docs]
    for label in ("a1", "a2", "b"):  # each file's records were first sent in file order
        sequence = [labels["seq"] for labels in first_sent if labels["file"] == label]
        assert sequence == sorted(sequence)
    assert SECRET not in json.dumps(list(fake.docs.values()))
    (letter,) = [json.loads(x) for x in dead_letters.read_text().splitlines()]
    assert letter["status"] == 400
    assert "mapper_parsing_exception" in letter["reason"]
    assert json.loads(letter["record"])["labels"]["seq"] == 1000
