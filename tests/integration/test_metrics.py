"""``GET /metrics``: the pipeline's figures after a known set of runs, parsed as Prometheus text."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from autoreduce.db import Database
from autoreduce.db.models import (
    Instrument,
    OutboxMessage,
    ProcessorHeartbeat,
    ReductionRun,
    RunStatus,
    utcnow,
)
from autoreduce.messages import DEAD_LETTER_QUEUE
from autoreduce.settings import Settings


@pytest.fixture
def settings(make_settings: Callable[..., Settings], database_url: str) -> Settings:
    """A private instance: /metrics needs a token."""
    return make_settings(GEM="noop", WISH="noop", database_url=database_url)


@pytest.fixture
def data_files() -> None:
    """These tests record their runs directly: no data files needed."""


def scrape(client: TestClient, headers: dict[str, str]) -> dict[str, list[Sample]]:
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    samples: dict[str, list[Sample]] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append(sample)
    return samples


def value(samples: dict[str, list[Sample]], name: str, **labels: str) -> float:
    matching = [s.value for s in samples.get(name, []) if s.labels == labels]
    assert len(matching) == 1, f"{name}{labels}: {samples.get(name)}"
    return matching[0]


def record_known_runs(db: Database) -> None:
    """GEM: one Completed (waited 2 s, reduced 40 s), one Error (waited 10 s, reduced 700 s);
    WISH: one Queued, one Processing (waited 20 s). Two outbox messages unsent, one sent; one
    processor alive, one stopped."""
    t0 = utcnow() - timedelta(hours=2)

    def at(seconds: float) -> object:
        return t0 + timedelta(seconds=seconds)

    with db.session() as session:
        session.add_all([Instrument(name="GEM"), Instrument(name="WISH")])
        session.flush()
        session.add_all(
            [
                ReductionRun(instrument="GEM", run_number=1, status=RunStatus.COMPLETED,
                             data_path="/a", detected_at=at(0), queued_at=at(1),
                             started_at=at(3), finished_at=at(43)),
                ReductionRun(instrument="GEM", run_number=2, status=RunStatus.ERROR,
                             data_path="/a", detected_at=at(0), queued_at=at(1),
                             started_at=at(11), finished_at=at(711)),
                ReductionRun(instrument="WISH", run_number=1, status=RunStatus.QUEUED,
                             data_path="/a", detected_at=at(3000), queued_at=at(3001)),
                ReductionRun(instrument="WISH", run_number=2, status=RunStatus.PROCESSING,
                             data_path="/a", detected_at=at(3000), queued_at=at(3001),
                             started_at=at(3021)),
                OutboxMessage(instrument="GEM", queue="q", body="{}", created_at=at(5)),
                OutboxMessage(instrument="GEM", queue="q", body="{}", created_at=at(6)),
                OutboxMessage(instrument="GEM", queue="q", body="{}", sent_at=at(7)),
                ProcessorHeartbeat(id="p1", host="h", pid=1, started_at=at(0),
                                   last_seen_at=utcnow()),
                ProcessorHeartbeat(id="p2", host="h", pid=2, started_at=at(0),
                                   last_seen_at=utcnow(), stopped_at=utcnow()),
            ]
        )  # fmt: skip


def test_metrics_need_a_token_on_a_private_instance(app_client: TestClient) -> None:
    response = app_client.get("/metrics")

    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"


def test_runs_by_instrument_and_state_after_known_runs(
    app_client: TestClient, db: Database, auth: Callable[..., dict[str, str]]
) -> None:
    record_known_runs(db)

    samples = scrape(app_client, auth("detector"))

    assert value(samples, "autoreduce_database_up") == 1
    assert value(samples, "autoreduce_runs", instrument="GEM", state="Completed") == 1
    assert value(samples, "autoreduce_runs", instrument="GEM", state="Error") == 1
    assert value(samples, "autoreduce_runs", instrument="WISH", state="Queued") == 1
    assert value(samples, "autoreduce_runs", instrument="WISH", state="Processing") == 1
    assert value(samples, "autoreduce_queue_depth") == 1
    assert value(samples, "autoreduce_outbox_backlog") == 2
    assert value(samples, "autoreduce_outbox_oldest_age_seconds") > 7000
    assert value(samples, "autoreduce_processors_alive") == 1
    assert value(samples, "autoreduce_dead_letters") == 0
    assert value(samples, "autoreduce_detector_lag_seconds", instrument="GEM") >= 7200
    assert 4000 <= value(samples, "autoreduce_detector_lag_seconds", instrument="WISH") < 7200
    assert value(samples, "autoreduce_latency_target_seconds", instrument="GEM") == 1800
    assert "process_cpu_seconds_total" in samples


def test_duration_histograms_after_known_runs(
    app_client: TestClient, db: Database, auth: Callable[..., dict[str, str]]
) -> None:
    record_known_runs(db)

    samples = scrape(app_client, auth("scientist", "GEM"))

    wait = "autoreduce_queue_wait_seconds"
    assert value(samples, f"{wait}_count", instrument="GEM") == 2
    assert value(samples, f"{wait}_sum", instrument="GEM") == pytest.approx(12, abs=0.01)
    assert value(samples, f"{wait}_bucket", instrument="GEM", le="1.0") == 0
    assert value(samples, f"{wait}_bucket", instrument="GEM", le="5.0") == 1
    assert value(samples, f"{wait}_bucket", instrument="GEM", le="15.0") == 2
    assert value(samples, f"{wait}_count", instrument="WISH") == 1  # the Processing run
    reduction = "autoreduce_reduction_seconds"
    assert value(samples, f"{reduction}_count", instrument="GEM") == 2
    assert value(samples, f"{reduction}_sum", instrument="GEM") == pytest.approx(740, abs=0.01)
    assert value(samples, f"{reduction}_bucket", instrument="GEM", le="60.0") == 1
    assert value(samples, f"{reduction}_bucket", instrument="GEM", le="600.0") == 1
    assert value(samples, f"{reduction}_bucket", instrument="GEM", le="1800.0") == 2
    assert value(samples, f"{reduction}_bucket", instrument="GEM", le="+Inf") == 2
    assert "WISH" not in {s.labels["instrument"] for s in samples[f"{reduction}_count"]}
    final = "autoreduce_detection_to_final_seconds"
    assert value(samples, f"{final}_sum", instrument="GEM") == pytest.approx(754, abs=0.01)
    assert value(samples, f"{final}_bucket", instrument="GEM", le="60.0") == 1


def test_dead_letters_are_counted(
    app_client: TestClient, auth: Callable[..., dict[str, str]]
) -> None:
    transport = app_client.app.state.api.transport  # type: ignore[attr-defined]
    transport.send(DEAD_LETTER_QUEUE, "{}", {"x-dead-letter-reason": "test"})
    transport.send(DEAD_LETTER_QUEUE, "{}", {"x-dead-letter-reason": "test"})

    samples = scrape(app_client, auth("admin"))

    assert value(samples, "autoreduce_dead_letters") == 2
