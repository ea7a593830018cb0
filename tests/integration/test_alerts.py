"""Alerts: each fires once and resolves once, by webhook and by email, retried while a receiver
is down (a local HTTP receiver and a local SMTP server, aiosmtpd)."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope, Session

from autoreduce.alerts import AlertService
from autoreduce.db import Database
from autoreduce.db.models import Instrument, ReductionRun, RunStatus, utcnow
from autoreduce.settings import ALERT_RULES, Settings
from autoreduce.transport import open_transport


class WebhookReceiver:
    """A threaded HTTP server keeping each JSON body it accepted; ``up`` False answers 503."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.refused = 0
        self.up = True
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if receiver.up:
                    receiver.bodies.append(json.loads(body))
                    self.send_response(200)
                else:
                    receiver.refused += 1
                    self.send_response(503)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Mailbox:
    """aiosmtpd handler keeping each message's envelope."""

    def __init__(self) -> None:
        self.messages: list[Envelope] = []

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        self.messages.append(envelope)
        return "250 OK"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    yield receiver
    receiver.close()


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    box = Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield box, controller.port
    controller.stop()


def only(*rules: str) -> list[str]:
    return [rule for rule in ALERT_RULES if rule not in rules]


@pytest.fixture
def alert_settings(
    make_settings: Callable[..., Settings],
    database_url: str,
    webhook: WebhookReceiver,
    mailbox: tuple[Mailbox, int],
) -> Settings:
    return make_settings(
        GEM="noop",
        WISH="noop",
        database_url=database_url,
        alerts={
            "disabled_rules": only("run_error", "runs_stalled", "instrument_silent"),
            "error_window_min": 15,
            "stalled_min": 30,
            "quiet_period_min": 60,
            "delivery_attempts": 2,
            "webhooks": [{"url": webhook.url}],
            "email": {
                "smtp_host": "127.0.0.1",
                "smtp_port": mailbox[1],
                "recipients": ["ops@example.org"],
            },
        },
    )


@pytest.fixture
def service(alert_settings: Settings, database: Database) -> Iterator[AlertService]:
    sleeps: list[float] = []
    with open_transport(alert_settings, consumer="alerts-test") as transport:
        service = AlertService(alert_settings, database, transport, sleep=sleeps.append)
        service.sleeps = sleeps  # type: ignore[attr-defined]
        yield service


def add_runs(database: Database, *runs: ReductionRun) -> None:
    with database.session() as session:
        for name in ("GEM", "WISH"):
            if session.get(Instrument, name) is None:
                session.add(Instrument(name=name))
        session.flush()
        session.add_all(runs)


def error_run(number: int, finished_at: datetime) -> ReductionRun:
    return ReductionRun(
        instrument="GEM",
        run_number=number,
        status=RunStatus.ERROR,
        data_path="/a",
        detected_at=finished_at - timedelta(minutes=1),
        queued_at=finished_at - timedelta(minutes=1),
        started_at=finished_at - timedelta(seconds=30),
        finished_at=finished_at,
        message="plugin raised ValueError",
        error_fingerprint="abc123",
        error_signature="ValueError: bad vanadium",
    )


def test_a_run_in_error_fires_once_and_resolves_once_by_webhook_and_email(
    service: AlertService,
    database: Database,
    webhook: WebhookReceiver,
    mailbox: tuple[Mailbox, int],
) -> None:
    now = utcnow()
    add_runs(database, error_run(1, now), error_run(2, now))

    first = service.run_cycle(now)
    service.run_cycle(now + timedelta(minutes=1))
    add_runs(database, error_run(3, now + timedelta(minutes=2)))  # same window: no new message
    service.run_cycle(now + timedelta(minutes=3))
    resolving = service.run_cycle(now + timedelta(minutes=30))
    service.run_cycle(now + timedelta(minutes=31))

    assert first.fired == ["run_error:GEM"]
    assert resolving.resolved == ["run_error:GEM"]
    assert [(b["event"], b["rule"], b["instrument"]) for b in webhook.bodies] == [
        ("firing", "run_error", "GEM"),
        ("resolved", "run_error", "GEM"),
    ]
    assert webhook.bodies[0]["details"]["causes"][0]["fingerprint"] == "abc123"
    assert "ValueError: bad vanadium" in webhook.bodies[0]["summary"]
    subjects = [m.content.decode().split("Subject: ")[1].splitlines()[0]  # type: ignore[union-attr]
                for m in mailbox[0].messages]  # fmt: skip
    assert subjects == [
        "[autoreduce] FIRING run_error GEM",
        "[autoreduce] RESOLVED run_error GEM",
    ]
    assert mailbox[0].messages[0].rcpt_tos == ["ops@example.org"]


def test_runs_waiting_with_none_finished_fire_runs_stalled_once(
    service: AlertService, database: Database, webhook: WebhookReceiver
) -> None:
    now = utcnow()
    queued = now - timedelta(minutes=40)
    add_runs(
        database,
        ReductionRun(instrument="WISH", run_number=7, data_path="/a", detected_at=queued,
                     queued_at=queued),
    )  # fmt: skip

    service.run_cycle(now)
    service.run_cycle(now + timedelta(minutes=1))
    with database.session() as session:
        run = session.query(ReductionRun).filter_by(run_number=7).one()
        run.status, run.started_at, run.finished_at = RunStatus.COMPLETED, now, now
    service.run_cycle(now + timedelta(minutes=2))

    assert [(b["event"], b["rule"], b["instrument"]) for b in webhook.bodies] == [
        ("firing", "runs_stalled", "WISH"),
        ("resolved", "runs_stalled", "WISH"),
    ]


def test_an_instrument_silent_past_its_quiet_period_fires_once(
    service: AlertService, database: Database, webhook: WebhookReceiver
) -> None:
    now = utcnow()
    add_runs(
        database,
        ReductionRun(instrument="GEM", run_number=9, status=RunStatus.COMPLETED, data_path="/a",
                     detected_at=now, queued_at=now, started_at=now, finished_at=now),
    )  # fmt: skip

    quiet = service.run_cycle(now + timedelta(minutes=30))
    silent = service.run_cycle(now + timedelta(minutes=61))
    again = service.run_cycle(now + timedelta(minutes=90))

    assert quiet.fired == [] and again.fired == []
    assert "instrument_silent:GEM" in silent.fired
    gem = [b["event"] for b in webhook.bodies if b["instrument"] == "GEM"]
    assert gem == ["firing"]


def test_a_receiver_down_is_retried_with_backoff_and_gets_the_alert_once_up(
    service: AlertService, database: Database, webhook: WebhookReceiver
) -> None:
    now = utcnow()
    add_runs(database, error_run(1, now))
    webhook.up = False

    down = service.run_cycle(now)
    not_due = service.run_cycle(now + timedelta(seconds=1))
    webhook.up = True
    delivered = service.run_cycle(now + timedelta(seconds=10))
    service.run_cycle(now + timedelta(seconds=20))

    assert down.failed == 1 and webhook.refused == 2  # two attempts, one backoff between them
    assert service.sleeps == [pytest.approx(0.5, abs=0.5)]  # type: ignore[attr-defined]
    assert not_due.sent == 0 and webhook.refused == 2
    assert delivered.sent == 1
    assert [b["event"] for b in webhook.bodies] == ["firing"]


def test_alerts_test_sends_to_every_receiver_and_never_shows_the_url(
    webhook: WebhookReceiver, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    from click.testing import CliRunner

    from autoreduce.cli import main

    dead = f"http://127.0.0.1:{free_port()}/secret-token-in-url"
    monkeypatch.setenv("AUTOREDUCE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv(
        "AUTOREDUCE_ALERTS__WEBHOOKS", json.dumps([{"url": webhook.url}, {"url": dead}])
    )

    result = CliRunner().invoke(main, ["alerts", "test"])

    assert result.exit_code == 1
    assert [b["event"] for b in webhook.bodies] == ["test"]
    assert "webhook:1\tsent" in result.output
    assert "webhook:2\tfailed: webhook:2: ConnectionError" in result.output
    assert "secret-token" not in result.output
