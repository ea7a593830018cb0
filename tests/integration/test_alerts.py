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


# --- every other rule, each firing once and resolving once ------------------------------------
ServiceFactory = Callable[..., AlertService]


@pytest.fixture
def make_service(
    make_settings: Callable[..., Settings],
    database_url: str,
    database: Database,
    webhook: WebhookReceiver,
    mailbox: tuple[Mailbox, int],
) -> Iterator[ServiceFactory]:
    """``make_service(rules, **alerts)``: a service judging only ``rules``, delivering to the
    local webhook (plus ``webhooks``) and the local SMTP server."""
    transports: list[Any] = []

    def build(rules: tuple[str, ...], webhooks: list[dict[str, Any]] | None = None,
              **alerts: Any) -> AlertService:  # fmt: skip
        settings = make_settings(
            GEM="noop",
            WISH="noop",
            database_url=database_url,
            alerts={
                "disabled_rules": only(*rules),
                "delivery_attempts": 1,
                "webhooks": [{"url": webhook.url}, *(webhooks or [])],
                "email": {
                    "smtp_host": "127.0.0.1",
                    "smtp_port": mailbox[1],
                    "recipients": ["ops@example.org"],
                },
                **alerts,
            },
        )
        transport = open_transport(settings, consumer="alerts-test")
        transports.append(transport)
        return AlertService(settings, database, transport, sleep=lambda _s: None)

    yield build
    for transport in transports:
        transport.close()


def events(webhook: WebhookReceiver) -> list[tuple[str, str, str | None]]:
    return [(b["event"], b["rule"], b["instrument"]) for b in webhook.bodies]


def subjects(mailbox: Mailbox) -> list[str]:
    return [m.content.decode().split("Subject: ")[1].splitlines()[0]  # type: ignore[union-attr]
            for m in mailbox.messages]  # fmt: skip


def finished_run(
    instrument: str, number: int, finished_at: datetime, took_s: float
) -> ReductionRun:
    detected = finished_at - timedelta(seconds=took_s)
    return ReductionRun(instrument=instrument, run_number=number, status=RunStatus.COMPLETED,
                        data_path="/a", detected_at=detected, queued_at=detected,
                        started_at=detected, finished_at=finished_at)  # fmt: skip


def test_latency_over_an_instruments_own_target_fires_once_and_resolves_once(
    make_service: ServiceFactory,
    database: Database,
    webhook: WebhookReceiver,
    mailbox: tuple[Mailbox, int],
) -> None:
    service = make_service(
        ("latency_over_target",),
        latency_min_runs=3,
        latency_window_min=60,
        latency_target_s=7200,  # the global target: WISH's slow runs stay under it
        instruments={"GEM": {"latency_target_s": 600}},
    )
    now = utcnow()
    add_runs(
        database,
        *(finished_run("GEM", n, now - timedelta(minutes=n), took_s=1800) for n in (1, 2, 3)),
        *(finished_run("WISH", n, now - timedelta(minutes=n), took_s=1800) for n in (1, 2, 3)),
    )

    strict = make_service(
        ("latency_over_target",), latency_min_runs=4, instruments={"GEM": {"latency_target_s": 600}}
    )
    too_few = strict.run_cycle(now)
    slow = service.run_cycle(now)
    still = service.run_cycle(now + timedelta(minutes=1))
    # 60 fast runs: the p95 (nearest rank 60 of 63) is a fast one, the slow three still counted
    add_runs(database, *(finished_run("GEM", 100 + n, now, took_s=30) for n in range(60)))
    fast = service.run_cycle(now + timedelta(minutes=2))
    service.run_cycle(now + timedelta(minutes=3))

    assert too_few.fired == []
    assert slow.fired == ["latency_over_target:GEM"] and still.fired == []
    assert fast.resolved == ["latency_over_target:GEM"]
    assert events(webhook) == [
        ("firing", "latency_over_target", "GEM"),
        ("resolved", "latency_over_target", "GEM"),
    ]
    assert webhook.bodies[0]["details"] == {"p95_s": 1800.0, "target_s": 600.0, "runs": 3}
    assert subjects(mailbox[0]) == [
        "[autoreduce] FIRING latency_over_target GEM",
        "[autoreduce] RESOLVED latency_over_target GEM",
    ]


def test_no_processor_alive_fires_once_and_resolves_when_a_real_heartbeat_starts(
    make_service: ServiceFactory, database: Database, webhook: WebhookReceiver
) -> None:
    from queue_processor.heartbeat import Heartbeat

    service = make_service(("no_processor",))
    gone = Heartbeat(database, service.transport, "process-1", interval_s=60)
    gone.start()
    alive_before = service.run_cycle(utcnow())
    gone.stop()  # records stopped_at, as a processor shutting down does

    none = service.run_cycle(utcnow())
    again = service.run_cycle(utcnow())
    beating = Heartbeat(database, service.transport, "process-2", interval_s=60)
    beating.start()
    try:
        back = service.run_cycle(utcnow())
        service.run_cycle(utcnow())
    finally:
        beating.stop()

    assert alive_before.fired == []
    assert none.fired == ["no_processor"] and again.fired == []
    assert back.resolved == ["no_processor"]
    assert events(webhook) == [("firing", "no_processor", None), ("resolved", "no_processor", None)]


def test_a_dead_letter_fires_once_and_resolves_once_purged(
    make_service: ServiceFactory,
    database: Database,
    webhook: WebhookReceiver,
    mailbox: tuple[Mailbox, int],
) -> None:
    from autoreduce.dead_letters import purge_one
    from autoreduce.messages import DEAD_LETTER_QUEUE, PENDING_QUEUE

    service = make_service(("dead_letters",))
    transport = service.transport
    empty = service.run_cycle(utcnow())
    transport.send(PENDING_QUEUE, '{"run_id": 1}', {"x-outbox-id": "1"})
    delivery = transport.receive(PENDING_QUEUE, timeout_s=1)
    assert delivery is not None
    transport.dead_letter(delivery, "gave up after 3 attempts")

    one = service.run_cycle(utcnow())
    service.run_cycle(utcnow())
    [letter] = transport.browse(DEAD_LETTER_QUEUE)
    assert purge_one(transport, letter.message_id) is not None
    purged = service.run_cycle(utcnow())

    assert empty.fired == []
    assert one.fired == ["dead_letters"] and purged.resolved == ["dead_letters"]
    assert events(webhook) == [("firing", "dead_letters", None), ("resolved", "dead_letters", None)]
    assert webhook.bodies[0]["details"] == {"depth": 1}
    assert subjects(mailbox[0]) == [
        "[autoreduce] FIRING dead_letters",
        "[autoreduce] RESOLVED dead_letters",
    ]


def test_an_outbox_unsent_too_long_fires_once_and_resolves_once_relayed(
    make_service: ServiceFactory, database: Database, webhook: WebhookReceiver
) -> None:
    from autoreduce.db.models import OutboxMessage
    from autoreduce.outbox import OutboxRelay

    service = make_service(("outbox_growing",), outbox_growing_min=10)
    add_runs(database)
    with database.session() as session:
        session.add(OutboxMessage(instrument="GEM", queue="runs.pending", body="{}"))
    now = utcnow()

    young = service.run_cycle(now + timedelta(minutes=9))
    growing = service.run_cycle(now + timedelta(minutes=11))
    service.run_cycle(now + timedelta(minutes=12))
    assert OutboxRelay(database, service.transport).relay_once() == 1  # the broker takes it
    relayed = service.run_cycle(now + timedelta(minutes=13))

    assert young.fired == []
    assert growing.fired == ["outbox_growing"] and relayed.resolved == ["outbox_growing"]
    assert events(webhook) == [
        ("firing", "outbox_growing", None),
        ("resolved", "outbox_growing", None),
    ]
    assert webhook.bodies[0]["details"]["backlog"] == 1


def test_the_outputs_disk_past_its_threshold_fires_once_and_resolves_once(
    make_service: ServiceFactory, database: Database, webhook: WebhookReceiver
) -> None:
    import shutil

    probe = make_service(("disk_filling",))
    where = probe.settings.outputs_root
    where.mkdir(parents=True, exist_ok=True)
    usage = shutil.disk_usage(where)
    used_pct = 100.0 * (usage.total - usage.free) / usage.total
    # margins wide enough for what other processes write meanwhile
    below = max(0.001, used_pct - max(1.0, used_pct / 10))
    above = min(100.0, used_pct + max(1.0, (100.0 - used_pct) / 2))

    over = make_service(("disk_filling",), disk_threshold_pct=below).run_cycle(utcnow())
    make_service(("disk_filling",), disk_threshold_pct=below).run_cycle(utcnow())
    under = make_service(("disk_filling",), disk_threshold_pct=above).run_cycle(utcnow())
    make_service(("disk_filling",), disk_threshold_pct=above).run_cycle(utcnow())

    assert over.fired == ["disk_filling"] and under.resolved == ["disk_filling"]
    assert events(webhook) == [("firing", "disk_filling", None), ("resolved", "disk_filling", None)]
    assert webhook.bodies[0]["details"]["path"] == str(where)
    assert webhook.bodies[0]["details"]["used_pct"] == pytest.approx(used_pct, abs=1.0)


# --- message shapes, per-instrument settings, `alerts list` ----------------------------------
def slack_accepts(body: dict[str, Any]) -> list[str]:
    """What Slack's and Mattermost's incoming webhooks require of a plain message: a non-empty
    ``text`` (Slack cuts at 40,000 characters, Mattermost at 16,383), with ``&``, ``<`` and ``>``
    escaped as HTML entities unless they mark a link or a mention (Slack "Formatting text for app
    surfaces", escaping)."""
    import re

    text = body.get("text")
    if not isinstance(text, str) or not text.strip():
        return ["no text"]
    problems = []
    if len(text) > 16383:
        problems.append("text too long")
    if "<" in text or ">" in text:
        problems.append("an unescaped < or > (Slack reads <...> as a link or mention)")
    if re.search(r"&(?!amp;|lt;|gt;)", text):
        problems.append("an unescaped &")
    return problems


def teams_accepts(body: dict[str, Any]) -> list[str]:
    """What a Teams incoming webhook requires of a MessageCard (legacy actionable message card
    reference): ``@type`` MessageCard, the schema.org ``@context``, a ``summary`` or a ``text``,
    ``themeColor`` as six hex digits, and the whole card under 28 KB."""
    import re

    problems = []
    if body.get("@type") != "MessageCard":
        problems.append("@type is not MessageCard")
    if body.get("@context") not in (
        "https://schema.org/extensions",
        "http://schema.org/extensions",
    ):
        problems.append("wrong @context")
    if not (body.get("summary") or body.get("text")):
        problems.append("neither summary nor text")
    if not re.fullmatch(r"[0-9A-Fa-f]{6}", str(body.get("themeColor", "0" * 6))):
        problems.append("themeColor is not six hex digits")
    if len(json.dumps(body).encode()) > 28 * 1024:
        problems.append("over 28 KB")
    return problems


def test_slack_mattermost_and_teams_get_bodies_they_accept(
    make_service: ServiceFactory, database: Database
) -> None:
    slack, teams = WebhookReceiver(), WebhookReceiver()
    try:
        service = make_service(
            ("run_error",),
            webhooks=[{"url": slack.url, "shape": "slack"}, {"url": teams.url, "shape": "teams"}],
        )
        now = utcnow()
        run = error_run(1, now)
        run.error_signature = "KeyError: <entry/instrument> & 'x' > 0"
        add_runs(database, run)
        service.run_cycle(now)
        service.run_cycle(now + timedelta(minutes=30))
    finally:
        slack.close()
        teams.close()

    assert len(slack.bodies) == 2 and len(teams.bodies) == 2
    for body in slack.bodies:
        assert slack_accepts(body) == [], body
    for body in teams.bodies:
        assert teams_accepts(body) == [], body
    assert "&lt;entry/instrument&gt; &amp; 'x' &gt; 0" in slack.bodies[0]["text"]
    assert "FIRING run_error GEM" in slack.bodies[0]["text"]
    assert "RESOLVED run_error GEM" in slack.bodies[1]["text"]
    assert teams.bodies[0]["title"] == "[autoreduce] FIRING run_error GEM"
    assert "<entry/instrument>" in teams.bodies[0]["text"]
    assert teams.bodies[0]["themeColor"] != teams.bodies[1]["themeColor"]


def test_the_checks_of_the_shapes_can_fail() -> None:
    assert slack_accepts({"text": "a <b> & c"}) != []
    assert slack_accepts({"blocks": []}) == ["no text"]
    assert teams_accepts({"@type": "AdaptiveCard", "themeColor": "#fff"}) != []


def test_per_instrument_quiet_period_recipients_and_webhook_filter(
    make_service: ServiceFactory,
    database: Database,
    webhook: WebhookReceiver,
    mailbox: tuple[Mailbox, int],
) -> None:
    wish_only = WebhookReceiver()
    try:
        service = make_service(
            ("instrument_silent", "run_error", "no_processor"),
            webhooks=[{"url": wish_only.url, "instruments": ["WISH"]}],
            quiet_period_min=60,
            instruments={
                "GEM": {"quiet_period_min": 0},  # never silent
                "WISH": {"quiet_period_min": 120, "email_recipients": ["wish@example.org"]},
            },
        )
        now = utcnow()
        add_runs(database, finished_run("GEM", 1, now, 1), finished_run("WISH", 1, now, 1))

        early = service.run_cycle(now + timedelta(minutes=61))
        add_runs(database, error_run(2, now + timedelta(minutes=121)))
        late = service.run_cycle(now + timedelta(minutes=121))
    finally:
        wish_only.close()

    assert early.fired == ["no_processor"]  # WISH's own 120 min, not the global 60; GEM never
    assert sorted(late.fired) == ["instrument_silent:WISH", "run_error:GEM"]
    assert events(webhook) == [
        ("firing", "no_processor", None),
        ("firing", "run_error", "GEM"),
        ("firing", "instrument_silent", "WISH"),
    ]
    assert events(wish_only) == [  # WISH's and the facility-wide alerts, never GEM's
        ("firing", "no_processor", None),
        ("firing", "instrument_silent", "WISH"),
    ]
    recipients = {subject: message.rcpt_tos
                  for subject, message in zip(subjects(mailbox[0]), mailbox[0].messages,
                                              strict=True)}  # fmt: skip
    assert recipients == {
        "[autoreduce] FIRING no_processor": ["ops@example.org"],
        "[autoreduce] FIRING run_error GEM": ["ops@example.org"],
        "[autoreduce] FIRING instrument_silent WISH": ["ops@example.org", "wish@example.org"],
    }


def test_alerts_list_prints_the_firing_alerts_and_json_for_scripts(
    make_service: ServiceFactory,
    database: Database,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Any,
) -> None:
    from click.testing import CliRunner

    from autoreduce.cli import main

    service = make_service(("run_error", "no_processor"))
    now = utcnow()
    add_runs(database, error_run(1, now))
    service.run_cycle(now)
    monkeypatch.setenv("AUTOREDUCE_DATA_DIR", str(tmp_path / "cli-data"))
    monkeypatch.setenv("AUTOREDUCE_DATABASE_URL", database.url)

    table = CliRunner().invoke(main, ["alerts", "list"], catch_exceptions=False)
    as_json = CliRunner().invoke(main, ["alerts", "list", "--json"], catch_exceptions=False)
    service.run_cycle(now + timedelta(minutes=30))  # run_error resolves
    after = CliRunner().invoke(main, ["alerts", "list", "--json"], catch_exceptions=False)

    assert table.exit_code == 0 and "2 alert(s) firing" in table.stderr
    assert "\trun_error\tGEM\t" in table.stdout and "\tno_processor\t-\t" in table.stdout
    firing = json.loads(as_json.stdout)
    assert [(a["rule"], a["instrument"]) for a in firing] == [
        ("run_error", "GEM"),
        ("no_processor", None),
    ]
    by_rule = {a["rule"]: a for a in firing}
    assert by_rule["run_error"]["details"]["runs"] == 1
    fired_at = datetime.fromisoformat(by_rule["run_error"]["fired_at"])
    assert abs((fired_at - now).total_seconds()) < 1
    assert isinstance(by_rule["run_error"]["id"], int)
    assert [a["rule"] for a in json.loads(after.stdout)] == ["no_processor"]


def test_up_supervises_a_real_alert_evaluator_that_delivers(
    webhook: WebhookReceiver, tmp_path: Any
) -> None:
    """The service ``autoreduce up`` adds is a real ``autoreduce alerts run`` process: with no
    processor alive it sends ``no_processor`` to the webhook, then stops on SIGTERM."""
    from autoreduce.local import local_supervisor
    from autoreduce.supervisor import Supervisor
    from tests.polling import wait_for

    config = tmp_path / "autoreduce.toml"
    config.write_text(
        f'data_dir = "{tmp_path / "data"}"\n'
        "[alerts]\ninterval_s = 0.2\n"
        f"disabled_rules = {json.dumps(only('no_processor'))}\n"
        f'[[alerts.webhooks]]\nurl = "{webhook.url}"\n'
    )
    settings = Settings(data_dir=tmp_path / "data", alerts={"webhooks": [{"url": webhook.url}]})
    whole = local_supervisor(settings, host="127.0.0.1", port=1, processors=1, config_path=config)
    [alerts] = [service for service in whole.services if service.name == "alerts"]
    alerts.console_log = tmp_path / "alerts.console.log"
    supervisor = Supervisor([alerts], stop_timeout_s=20)
    supervisor.start()
    try:
        wait_for(lambda: webhook.bodies, timeout_s=60, what="the evaluator's first message")
    finally:
        supervisor.stop()

    assert events(webhook) == [("firing", "no_processor", None)]
    assert alerts.process is not None and alerts.process.returncode == 0
