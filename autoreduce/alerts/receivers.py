"""Where alert messages go: webhooks (generic JSON, Slack/Mattermost, Microsoft Teams) and email.

A receiver raises :class:`DeliveryError` with a reason safe to store and log: never the webhook's
URL (Slack and Teams URLs carry their token) nor the SMTP password.
"""

from __future__ import annotations

import json
import smtplib
import ssl
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from typing import Any, Protocol

import requests

from autoreduce.settings import EmailSettings, Settings, WebhookReceiver

WEBHOOK_TIMEOUT_S = 10.0


class DeliveryError(RuntimeError):
    """A receiver did not take a message; the text names why, without secrets."""


@dataclass(frozen=True)
class AlertMessage:
    """One message about an alert: it fired, it resolved, or a test."""

    event: str  # firing | resolved | test
    rule: str
    instrument: str | None
    summary: str
    details: dict[str, Any] = field(default_factory=dict)
    fired_at: datetime | None = None
    resolved_at: datetime | None = None
    alert_id: int | None = None

    @property
    def title(self) -> str:
        where = f" {self.instrument}" if self.instrument else ""
        return f"[autoreduce] {self.event.upper()} {self.rule}{where}"

    def as_json(self) -> dict[str, Any]:
        """The generic JSON body."""
        return {
            "source": "autoreduce",
            "event": self.event,
            "rule": self.rule,
            "instrument": self.instrument,
            "summary": self.summary,
            "details": self.details,
            "fired_at": self.fired_at.isoformat() if self.fired_at else None,
            "resolved_at": self.resolved_at.isoformat() if self.resolved_at else None,
            "alert_id": self.alert_id,
        }


class Receiver(Protocol):
    """Sends alert messages somewhere; ``name`` is stable across restarts (``webhook:1``)."""

    name: str

    def accepts(self, instrument: str | None) -> bool:
        """True if this receiver wants alerts about ``instrument`` (None: facility-wide)."""
        ...

    def send(self, message: AlertMessage) -> None:
        """Deliver ``message`` or raise :class:`DeliveryError`."""
        ...


def slack_escape(text: str) -> str:
    """``text`` with Slack's control characters ``&``, ``<`` and ``>`` as HTML entities.

    Slack reads ``<...>`` as a link or a mention (``<!channel>`` would notify a whole channel),
    so a summary quoting an error such as ``KeyError: <entry>`` must be escaped; Mattermost's
    markdown shows the entities as the characters.
    """
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def webhook_body(message: AlertMessage, shape: str) -> dict[str, Any]:
    """The JSON a webhook of ``shape`` (json, slack, teams) accepts."""
    if shape == "slack":  # Slack and Mattermost incoming webhooks
        return {"text": slack_escape(f"*{message.title}*\n{message.summary}")}
    if shape == "teams":  # an Office 365 connector MessageCard
        return {
            "@type": "MessageCard",
            "@context": "https://schema.org/extensions",
            "summary": message.title,
            "themeColor": "2DC72D" if message.event == "resolved" else "D70000",
            "title": message.title,
            "text": message.summary,
        }
    return message.as_json()


class Webhook:
    """POSTs each message as JSON to one URL."""

    def __init__(self, name: str, config: WebhookReceiver) -> None:
        self.name = name
        self.config = config

    def accepts(self, instrument: str | None) -> bool:
        return (
            instrument is None
            or not self.config.instruments
            or (instrument in self.config.instruments)
        )

    def send(self, message: AlertMessage) -> None:
        body = webhook_body(message, self.config.shape)
        try:
            response = requests.post(
                self.config.url.get_secret_value(), json=body, timeout=WEBHOOK_TIMEOUT_S
            )
        except requests.RequestException as error:  # the message would show the URL
            raise DeliveryError(f"{self.name}: {type(error).__name__}") from None
        if not 200 <= response.status_code < 300:
            raise DeliveryError(f"{self.name}: HTTP {response.status_code}")


class Email:
    """Sends each message by SMTP to the global and the instrument's recipients."""

    name = "email"

    def __init__(self, config: EmailSettings, instrument_recipients: dict[str, list[str]]) -> None:
        self.config = config
        self.instrument_recipients = instrument_recipients

    def recipients(self, instrument: str | None) -> list[str]:
        extra = self.instrument_recipients.get(instrument, []) if instrument else []
        return list(dict.fromkeys([*self.config.recipients, *extra]))

    def accepts(self, instrument: str | None) -> bool:
        return bool(self.recipients(instrument))

    def send(self, message: AlertMessage) -> None:
        email = EmailMessage()
        email["Subject"] = message.title[:200]
        email["From"] = self.config.sender
        email["To"] = ", ".join(self.recipients(message.instrument))
        email.set_content(
            f"{message.summary}\n\n{json.dumps(message.as_json(), indent=2, default=str)}\n"
        )
        try:
            self._submit(email)
        except (OSError, smtplib.SMTPException) as error:
            reason = str(error).replace(self.config.password.get_secret_value() or "\0", "***")
            raise DeliveryError(f"email: {type(error).__name__}: {reason[:200]}") from None

    def _submit(self, email: EmailMessage) -> None:
        config = self.config
        smtp: smtplib.SMTP
        if config.security == "ssl":
            smtp = smtplib.SMTP_SSL(
                config.smtp_host,
                config.smtp_port,
                timeout=config.timeout_s,
                context=ssl.create_default_context(),
            )
        else:
            smtp = smtplib.SMTP(config.smtp_host, config.smtp_port, timeout=config.timeout_s)
        with smtp:
            if config.security == "starttls":
                smtp.starttls(context=ssl.create_default_context())
            if config.username:
                smtp.login(config.username, config.password.get_secret_value())
            smtp.send_message(email)


def receivers_from(settings: Settings) -> list[Receiver]:
    """The receivers the settings configure: each webhook (``webhook:1``…), then email."""
    alerts = settings.alerts
    receivers: list[Receiver] = [
        Webhook(f"webhook:{number}", config)
        for number, config in enumerate(alerts.webhooks, start=1)
    ]
    if alerts.email.smtp_host:
        per_instrument = {name: own.email_recipients for name, own in alerts.instruments.items()}
        receivers.append(Email(alerts.email, per_instrument))
    return receivers
