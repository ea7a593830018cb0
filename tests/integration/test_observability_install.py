"""``autoreduce observability install`` against local servers speaking the ES and Kibana APIs."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from autoreduce import observability
from tests.fake_elasticsearch import FakeElasticsearch

AUTOREDUCE = Path(sys.executable).with_name("autoreduce")


@pytest.fixture
def servers() -> Iterator[tuple[FakeElasticsearch, FakeElasticsearch]]:
    elasticsearch, kibana = FakeElasticsearch(), FakeElasticsearch()
    yield elasticsearch, kibana
    elasticsearch.close()
    kibana.close()


def test_install_loads_policy_template_and_saved_objects_and_is_idempotent(
    servers: tuple[FakeElasticsearch, FakeElasticsearch],
) -> None:
    elasticsearch, kibana = servers
    command = [str(AUTOREDUCE), "observability", "install", "--elasticsearch", elasticsearch.url,
               "--kibana", kibana.url, "--hot-days", "3", "--delete-days", "30"]  # fmt: skip
    first = subprocess.run(command, capture_output=True, text=True, timeout=60)
    second = subprocess.run(command, capture_output=True, text=True, timeout=60)

    assert first.returncode == second.returncode == 0, first.stderr
    assert first.stdout == second.stdout
    policy = elasticsearch.policies["autoreduce-logs"]["policy"]
    assert policy["phases"]["delete"]["min_age"] == "30d"
    assert policy["phases"]["warm"]["min_age"] == "3d"
    template = elasticsearch.templates["autoreduce-logs"]
    assert template["index_patterns"] == ["autoreduce-logs*"]
    assert template["template"]["settings"]["index.lifecycle.name"] == "autoreduce-logs"
    assert len(kibana.saved_objects) == len(observability.saved_objects())


def test_install_with_elasticsearch_unreachable_says_so_in_one_line() -> None:
    result = subprocess.run(
        [str(AUTOREDUCE), "observability", "install", "--elasticsearch",
         "http://user:topsecret@127.0.0.1:1"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip

    assert result.returncode == 1
    assert result.stderr.startswith("Error: cannot install the assets")
    assert "Traceback" not in result.stderr and "topsecret" not in result.stderr


def test_saved_objects_are_valid_import_ndjson_whose_references_resolve() -> None:
    objects = observability.saved_objects()
    ids = {(o["type"], o["id"]) for o in objects}

    assert len(ids) == len(objects)
    for item in objects:
        assert set(item) >= {"type", "id", "attributes", "references"}
        for reference in item["references"]:
            assert (reference["type"], reference["id"]) in ids
        source = item["attributes"].get("kibanaSavedObjectMeta", {}).get("searchSourceJSON")
        if source:
            json.loads(source)
    searches = {o["id"] for o in objects if o["type"] == "search"}
    assert {"autoreduce-service-api", "autoreduce-service-process"} <= searches
    (dashboard,) = [o for o in objects if o["type"] == "dashboard"]
    panels = json.loads(dashboard["attributes"]["panelsJSON"])
    names = {r["name"] for r in dashboard["references"]}
    assert {p["panelRefName"] for p in panels} == names and len(panels) == 5


def test_index_template_maps_the_run_identity_and_event_fields() -> None:
    template = observability.index_template()
    properties = template["template"]["mappings"]["properties"]

    assert "data_stream" in template
    assert properties["@timestamp"]["type"] == "date"
    assert properties["event"]["properties"]["duration"]["type"] == "long"
    run = properties["autoreduce"]["properties"]
    assert {run[f]["type"] for f in ("instrument", "processor")} == {"keyword"}
    assert run["run_number"]["type"] == "long"


def test_retention_days_must_leave_a_hot_phase() -> None:
    with pytest.raises(ValueError, match="hot_days"):
        observability.ilm_policy(hot_days=30, delete_days=7)
