"""``GET /metrics``: the pipeline in Prometheus text format, computed at scrape time.

Everything comes from the database (and the dead-letter queue through the transport), read by
:class:`PipelineCollector` when Prometheus scrapes: no counter lives in a process, so it makes no
difference which processor finished a run, how many API workers serve the scrape, or whether a
processor restarted. The processors and the detector expose no port of their own; the API's
process metrics (``process_*``) describe the API process only.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from autoreduce import pipeline_health as health
from autoreduce.db.models import utcnow
from autoreduce.messages import DEAD_LETTER_QUEUE
from autoreduce.operations import JobStatus, job_statuses
from autoreduce.state_machine import one_line
from rest_api.auth import ReaderDep
from rest_api.dependencies import ApiState, StateDep
from rest_api.problems import problems

logger = logging.getLogger("autoreduce.api.metrics")

DEAD_LETTER_COUNT_CAP = 10_000
"""The dead-letter gauge counts at most this many messages (browsing costs per message)."""

_HISTOGRAM_HELP = {
    "queue_wait": "Seconds from queued to started, per run version.",
    "reduction": "Seconds from started to finished, per finished run version.",
    "detection_to_final": "Seconds from detection to a final state, per finished run version.",
}


class PipelineCollector(Collector):
    """The pipeline's figures, read from the database at each scrape."""

    def __init__(self, state: ApiState) -> None:
        self.state = state

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "autoreduce_database_up", "1 when the scrape could read the database, else 0."
        )
        try:
            families = list(self._from_database())
        except Exception as error:  # an unreachable database: say so, keep process metrics
            logger.warning("metrics: cannot read the database: %s", one_line(str(error), 300))
            up.add_metric([], 0)
            yield up
        else:
            up.add_metric([], 1)
            yield up
            yield from families
        yield self._dead_letters()

    def _from_database(self) -> Iterator[Metric]:
        settings = self.state.settings
        now = utcnow()
        with self.state.database.read_session() as session:
            runs = GaugeMetricFamily(
                "autoreduce_runs",
                "Run versions by instrument and state.",
                labels=["instrument", "state"],
            )
            for instrument, status, count in health.runs_by_state(session):
                runs.add_metric([instrument, status], count)
            yield runs
            for kind, help_text in _HISTOGRAM_HELP.items():
                family = HistogramMetricFamily(
                    f"autoreduce_{kind}_seconds", help_text, labels=["instrument"]
                )
                for histogram in health.duration_histograms(session, kind):
                    buckets = [(_bound(b), float(n)) for b, n in histogram.buckets]
                    buckets.append(("+Inf", float(histogram.count)))
                    family.add_metric(
                        [histogram.instrument], buckets=buckets, sum_value=histogram.sum_s
                    )
                yield family
            yield _gauge(
                "autoreduce_queue_depth",
                "Run versions Queued (waiting for a processor, or held).",
                health.queued_runs(session),
            )
            backlog, oldest_s = health.outbox_backlog(session, now)
            yield _gauge("autoreduce_outbox_backlog", "Outbox messages not yet sent.", backlog)
            yield _gauge(
                "autoreduce_outbox_oldest_age_seconds",
                "Age of the oldest unsent outbox message (0 when none).",
                oldest_s,
            )
            yield _gauge(
                "autoreduce_processors_alive",
                "Queue processors with a recent heartbeat.",
                health.processors_alive(session, now, settings.heartbeat_interval_s),
            )
            detected = health.last_detections(session)
            jobs = job_statuses(session)
        yield from _operations(jobs)
        lag = GaugeMetricFamily(
            "autoreduce_detector_lag_seconds",
            "Seconds since the newest run of each configured instrument was detected.",
            labels=["instrument"],
        )
        target = GaugeMetricFamily(
            "autoreduce_latency_target_seconds",
            "Each instrument's detection→final p95 target (its service level).",
            labels=["instrument"],
        )
        for instrument in sorted(settings.instruments):
            if instrument in detected:
                lag.add_metric([instrument], (now - detected[instrument]).total_seconds())
            target.add_metric([instrument], settings.alerts.latency_target_s_of(instrument))
        yield lag
        yield target

    def _dead_letters(self) -> Metric:
        family = GaugeMetricFamily(
            "autoreduce_dead_letters",
            f"Messages in the dead-letter queue (counted up to {DEAD_LETTER_COUNT_CAP}).",
        )
        try:
            depth = len(self.state.transport.browse(DEAD_LETTER_QUEUE, DEAD_LETTER_COUNT_CAP))
        except Exception as error:  # an unreachable broker: no sample rather than a wrong one
            logger.warning("metrics: cannot browse the dead letters: %s", one_line(str(error), 300))
            return family
        family.add_metric([], depth)
        return family


def _operations(jobs: dict[str, JobStatus]) -> Iterator[Metric]:
    """When each operations job (backup, verify, cleanup) last succeeded and failed."""
    success = GaugeMetricFamily(
        "autoreduce_operation_last_success_timestamp_seconds",
        "Unix time of the newest successful backup, verify or cleanup.",
        labels=["job"],
    )
    failure = GaugeMetricFamily(
        "autoreduce_operation_last_failure_timestamp_seconds",
        "Unix time of the newest failed backup, verify or cleanup.",
        labels=["job"],
    )
    failing = GaugeMetricFamily(
        "autoreduce_operation_failing",
        "1 when the newest run of the job failed, else 0.",
        labels=["job"],
    )
    for job, status in sorted(jobs.items()):
        if status.last_success_at is not None:
            success.add_metric([job], status.last_success_at.timestamp())
        if status.last_failure_at is not None:
            failure.add_metric([job], status.last_failure_at.timestamp())
        failing.add_metric([job], 1 if status.failing else 0)
    yield from (success, failure, failing)


def _gauge(name: str, help_text: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, help_text, value=value)


def _bound(bound: float) -> str:
    return floatToGoString(bound)  # "5.0", as prometheus-client's own histograms write it


def metrics_registry(state: ApiState) -> CollectorRegistry:
    """A registry of the pipeline's figures and this process's own (``process_*``)."""
    registry = CollectorRegistry(auto_describe=False)
    ProcessCollector(registry=registry)
    registry.register(PipelineCollector(state))
    return registry


router = APIRouter(tags=["system"])


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {"content": {CONTENT_TYPE_LATEST.split(";")[0]: {}}, "description": "Metrics."},
        **problems(401),
    },
)
def metrics(state: StateDep, _caller: ReaderDep) -> Response:
    """The pipeline's metrics in Prometheus text format (a token of any role, or
    ``public_read``)."""
    if state.metrics_registry is None:
        state.metrics_registry = metrics_registry(state)
    return Response(generate_latest(state.metrics_registry), media_type=CONTENT_TYPE_LATEST)
