"""Alerts: rules judged on the pipeline's state, each alert sent once and resolved once.

:mod:`.rules` says which conditions hold now, :mod:`.receivers` sends messages (webhooks, email)
and :mod:`.service` keeps the alerts in the database and delivers their messages, retrying with
backoff while a receiver is down. ``autoreduce alerts run`` is the service.
"""

from autoreduce.alerts.receivers import AlertMessage, DeliveryError, Receiver, receivers_from
from autoreduce.alerts.rules import Condition, evaluate
from autoreduce.alerts.service import AlertService, CycleReport, active_alerts

__all__ = [
    "AlertMessage",
    "AlertService",
    "Condition",
    "CycleReport",
    "DeliveryError",
    "Receiver",
    "active_alerts",
    "evaluate",
    "receivers_from",
]
