"""Queue transports: one interface, thin backends, chosen once from the broker URL.

Nothing outside this package knows which backend runs. ``sql://`` is the embedded queue table in
the service's own database; ``stomp://`` (ActiveMQ, RabbitMQ's STOMP plugin) is production.
"""

from __future__ import annotations

from autoreduce.settings import Settings
from autoreduce.transport.common import Delivery, QueueDepth, Transport, TransportError


def open_transport(settings: Settings, *, consumer: str = "") -> Transport:
    """The transport ``settings.broker_url`` names; ``consumer`` names this process in claims."""
    broker_url = settings.broker_url
    scheme = broker_url.split("://", 1)[0].lower() if "://" in broker_url else broker_url
    if scheme == "sql":
        from autoreduce.transport.sql import SqlTransport

        return SqlTransport(
            settings.resolved_database_url,
            consumer=consumer,
            visibility_timeout_s=settings.visibility_timeout_s,
            poll_interval_s=settings.poll_interval_s,
        )
    if scheme == "stomp":
        from autoreduce.transport.stomp import StompTransport

        return StompTransport(
            broker_url,
            consumer=consumer,
            heartbeat_ms=settings.stomp_heartbeat_ms,
            receipt_timeout_s=settings.stomp_receipt_timeout_s,
            reconnect_timeout_s=settings.stomp_reconnect_timeout_s,
        )
    if scheme == "stomp+ssl":
        raise TransportError(
            "stomp+ssl:// (STOMP over TLS) is not supported yet: use stomp:// on a trusted "
            "network, or reach the broker through a TLS tunnel (stunnel, ssh -L)"
        )
    raise TransportError(f"unknown broker URL scheme {scheme!r}: use sql:// or stomp://")


__all__ = ["Delivery", "QueueDepth", "Transport", "TransportError", "open_transport"]
