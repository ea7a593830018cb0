"""What ships for Elasticsearch and Kibana (8.x), and loading it: ``autoreduce observability``.

- ``index_template.json``: the ``autoreduce-logs*`` data stream's template (ECS fields and
  ``autoreduce.*`` mapped), using the ILM policy of the same name;
- ``ilm_policy.json``: hot for ``hot_days`` (rolled over daily), read-only after, deleted after
  ``delete_days`` (7 and 90 by default);
- ``kibana_saved_objects.ndjson``: a data view, a saved search per service, and the dashboard
  "autoreduce: runs and services" (runs per instrument over time, errors by reason, detection →
  Completed latency, reduction durations, processors alive).

:func:`install` loads them through the Elasticsearch and Kibana HTTP APIs; every step is a PUT
or an import with ``overwrite=true`` of fixed ids, so running it again changes nothing.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

import requests
from elasticsearch import Elasticsearch

NAME = "autoreduce-logs"
TEMPLATE_FILE = "index_template.json"
POLICY_FILE = "ilm_policy.json"
SAVED_OBJECTS_FILE = "kibana_saved_objects.ndjson"


def asset_text(name: str) -> str:
    """The text of one shipped asset."""
    return resources.files(__name__).joinpath(name).read_text(encoding="utf-8")


def index_template() -> dict[str, Any]:
    template: dict[str, Any] = json.loads(asset_text(TEMPLATE_FILE))
    return template


def ilm_policy(hot_days: int = 7, delete_days: int = 90) -> dict[str, Any]:
    """The ILM policy with its phases set; ``delete_days`` must exceed ``hot_days``."""
    if not 0 < hot_days < delete_days:
        raise ValueError(f"hot_days ({hot_days}) must be above 0 and below delete_days")
    policy: dict[str, Any] = copy.deepcopy(json.loads(asset_text(POLICY_FILE)))
    phases = policy["policy"]["phases"]
    phases["warm"]["min_age"] = f"{hot_days}d"
    phases["delete"]["min_age"] = f"{delete_days}d"
    policy["policy"]["_meta"]["description"] = (
        f"autoreduce logs: hot for {hot_days} days, deleted after {delete_days}"
    )
    return policy


def saved_objects() -> list[dict[str, Any]]:
    return [json.loads(line) for line in asset_text(SAVED_OBJECTS_FILE).splitlines() if line]


@dataclass(frozen=True)
class Installed:
    """What :func:`install` loaded."""

    template: str
    policy: str
    saved_objects: int


def install(
    elasticsearch_url: str,
    kibana_url: str | None,
    *,
    hot_days: int = 7,
    delete_days: int = 90,
    timeout_s: float = 30.0,
) -> Installed:
    """Put the ILM policy and the index template, then import the Kibana saved objects.

    Raises:
        ValueError: bad retention days.
        elasticsearch.ApiError, elastic_transport.TransportError: Elasticsearch refused or
            cannot be reached.
        requests.RequestException: Kibana cannot be reached or refused the import.
    """
    policy = ilm_policy(hot_days, delete_days)
    client = Elasticsearch(elasticsearch_url, request_timeout=timeout_s)
    try:
        client.ilm.put_lifecycle(name=NAME, policy=policy["policy"])
        template = index_template()
        meta = template.pop("_meta", None)
        client.indices.put_index_template(name=NAME, meta=meta, **template)
    finally:
        client.close()
    count = 0
    if kibana_url:
        answer = requests.post(
            f"{kibana_url.rstrip('/')}/api/saved_objects/_import",
            params={"overwrite": "true"},
            headers={"kbn-xsrf": "autoreduce"},
            files={
                "file": ("autoreduce.ndjson", asset_text(SAVED_OBJECTS_FILE), "application/ndjson")
            },
            timeout=timeout_s,
        )
        answer.raise_for_status()
        result = answer.json()
        if not result.get("success", False):
            raise requests.HTTPError(f"Kibana refused the import: {result.get('errors')}")
        count = int(result.get("successCount", 0))
    return Installed(template=NAME, policy=NAME, saved_objects=count)
