"""The alert service: alerts kept in the database, each message delivered once, with retries.

One cycle (:meth:`AlertService.run_cycle`): judge the rules; a condition with no firing alert
fires one (one ``firing`` delivery per receiver that wants it); a firing alert whose rule was
judged and whose condition is gone resolves (one ``resolved`` delivery to each receiver its firing
went to); then every pending delivery that is due is sent, retried a few times with exponential
backoff (tenacity), and, if the receiver is still down, tried again in a later cycle after a
backoff that doubles up to ``retry_max_backoff_s``. A delivery is marked sent in the database as
soon as it is sent, so a restart repeats at most the one message it was sending.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import tenacity
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload

from autoreduce.alerts.receivers import AlertMessage, DeliveryError, Receiver, receivers_from
from autoreduce.alerts.rules import Condition, Observed, evaluate
from autoreduce.db import Database
from autoreduce.db.models import Alert, AlertDelivery, utcnow
from autoreduce.settings import Settings
from autoreduce.state_machine import one_line
from autoreduce.transport import Transport

logger = logging.getLogger("autoreduce.alerts")

FIRING = "firing"
RESOLVED = "resolved"
FIRST_RETRY_S = 5.0
"""A delivery that failed a whole cycle is next tried after this, doubling each time."""


@dataclass
class CycleReport:
    """What one cycle did."""

    fired: list[str]
    resolved: list[str]
    sent: int
    failed: int


def message_of(alert: Alert, event: str) -> AlertMessage:
    return AlertMessage(
        event=event,
        rule=alert.rule,
        instrument=alert.instrument,
        summary=alert.summary,
        details=dict(alert.details),
        fired_at=alert.fired_at,
        resolved_at=alert.resolved_at,
        alert_id=alert.id,
    )


class AlertService:
    """Judges the rules and delivers the alerts' messages (``autoreduce alerts run``)."""

    def __init__(
        self,
        settings: Settings,
        database: Database,
        transport: Transport,
        *,
        receivers: list[Receiver] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self.database = database
        self.transport = transport
        self.receivers = receivers_from(settings) if receivers is None else receivers
        self._sleep = sleep

    def run_cycle(self, now: datetime | None = None) -> CycleReport:
        """Judge, fire, resolve, deliver once; ``now`` (UTC) replaces the clock in tests."""
        now = now or utcnow()
        seen = Observed(self.settings, self.database, self.transport, now)
        conditions, judged = evaluate(seen)
        fired, resolved = self.reconcile(conditions, judged, now)
        sent, failed = self.deliver_due(now)
        return CycleReport(fired, resolved, sent, failed)

    def run_forever(self, stop: threading.Event) -> None:
        """Run a cycle every ``alerts.interval_s`` until ``stop`` is set."""
        while not stop.is_set():
            try:
                report = self.run_cycle()
            except Exception as error:  # an unreachable database: try again next cycle
                logger.error("alert cycle failed: %s", one_line(str(error), 300))
            else:
                if report.fired or report.resolved or report.failed:
                    logger.info(
                        "alerts: fired %s, resolved %s, %d sent, %d failed",
                        report.fired,
                        report.resolved,
                        report.sent,
                        report.failed,
                    )
            stop.wait(self.settings.alerts.interval_s)

    def reconcile(
        self, conditions: list[Condition], judged: set[str], now: datetime
    ) -> tuple[list[str], list[str]]:
        """Fire alerts for new conditions and resolve those gone; their keys."""
        holding = {condition.key: condition for condition in conditions}
        fired: list[str] = []
        resolved: list[str] = []
        try:
            with self.database.session() as session:
                active = {
                    alert.key: alert
                    for alert in session.scalars(
                        select(Alert)
                        .where(Alert.active_key.is_not(None))
                        .options(selectinload(Alert.deliveries))
                    )
                }
                for key, condition in holding.items():
                    alert = active.get(key)
                    if alert is not None:  # still firing: keep its text current, say nothing
                        alert.summary = condition.summary[:1000]
                        alert.details = condition.details
                        continue
                    session.add(self._fire(condition, now))
                    fired.append(key)
                for key, alert in active.items():
                    if key in holding or alert.rule not in judged:
                        continue
                    alert.active_key = None
                    alert.resolved_at = now
                    for receiver in sorted({d.receiver for d in alert.deliveries}):
                        alert.deliveries.append(_delivery(RESOLVED, receiver, now))
                    resolved.append(str(key))
        except IntegrityError:  # another evaluator fired the same alert first: it owns it
            logger.warning("alerts: another evaluator changed the alerts; next cycle catches up")
            return [], []
        return fired, resolved

    def _fire(self, condition: Condition, now: datetime) -> Alert:
        alert = Alert(
            key=condition.key,
            active_key=condition.key,
            rule=condition.rule,
            instrument=condition.instrument,
            summary=condition.summary[:1000],
            details=condition.details,
            fired_at=now,
        )
        for receiver in self.receivers:
            if receiver.accepts(condition.instrument):
                alert.deliveries.append(_delivery(FIRING, receiver.name, now))
        return alert

    def deliver_due(self, now: datetime) -> tuple[int, int]:
        """Send every pending delivery due by ``now``: (sent, still failing)."""
        by_name = {receiver.name: receiver for receiver in self.receivers}
        with self.database.read_session() as session:
            due = session.execute(
                select(AlertDelivery.id, AlertDelivery.receiver)
                .where(AlertDelivery.sent_at.is_(None), AlertDelivery.next_attempt_at <= now)
                .order_by(AlertDelivery.id)
            ).all()
        sent = failed = 0
        for delivery_id, receiver_name in due:
            receiver = by_name.get(receiver_name)
            if receiver is None:  # no longer configured: left pending, said once per cycle
                logger.warning(
                    "alert delivery %d: receiver %s is not configured", delivery_id, receiver_name
                )
                continue
            outcome = self._deliver(delivery_id, receiver, now)
            sent += outcome is True
            failed += outcome is False
        return sent, failed

    def _deliver(self, delivery_id: int, receiver: Receiver, now: datetime) -> bool | None:
        """Send one delivery (no database transaction is held while sending); None: not yet."""
        with self.database.read_session() as session:
            delivery = session.get(AlertDelivery, delivery_id)
            if delivery is None or delivery.sent_at is not None:
                return None
            if delivery.event == RESOLVED and _firing_unsent(delivery):
                return None  # its firing message goes first
            message = message_of(delivery.alert, delivery.event)
            key, tried_before = delivery.alert.key, delivery.attempts
        tries = 0
        attempts = self.settings.alerts.delivery_attempts
        error: DeliveryError | None = None
        try:
            for attempt in tenacity.Retrying(
                stop=tenacity.stop_after_attempt(attempts),
                wait=tenacity.wait_exponential(multiplier=0.5, max=10),
                retry=tenacity.retry_if_exception_type(DeliveryError),
                sleep=self._sleep,
                reraise=True,
            ):
                with attempt:
                    tries += 1
                    receiver.send(message)
        except DeliveryError as failure:
            error = failure
        with self.database.session() as session:
            delivery = session.get(AlertDelivery, delivery_id)
            assert delivery is not None
            delivery.attempts = tried_before + tries
            if error is None:
                delivery.sent_at = utcnow()
                delivery.last_error = ""
                return True
            failures = max(1, delivery.attempts // attempts)
            backoff_s = min(
                self.settings.alerts.retry_max_backoff_s, FIRST_RETRY_S * 2 ** (failures - 1)
            )
            delivery.last_error = one_line(str(error), 500)
            delivery.next_attempt_at = now + timedelta(seconds=backoff_s)
        logger.warning(
            "alert %s (%s) not delivered to %s: %s; retrying in %.0f s",
            key,
            message.event,
            receiver.name,
            one_line(str(error), 500),
            backoff_s,
        )
        return False


def _firing_unsent(delivery: AlertDelivery) -> bool:
    return any(
        other.event == FIRING and other.receiver == delivery.receiver and other.sent_at is None
        for other in delivery.alert.deliveries
    )


def _delivery(event: str, receiver: str, now: datetime) -> AlertDelivery:
    return AlertDelivery(
        event=event, receiver=receiver, created_at=now, next_attempt_at=now, attempts=0
    )


def active_alerts(database: Database) -> list[Alert]:
    """The alerts firing now, oldest first."""
    with database.read_session() as session:
        rows = session.scalars(
            select(Alert).where(Alert.active_key.is_not(None)).order_by(Alert.fired_at, Alert.id)
        ).all()
        session.expunge_all()
    return list(rows)
