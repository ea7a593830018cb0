"""Broker URLs for the STOMP transport: parsing, failover lists, and never showing a password.

``stomp://user:pass@h1:61613,h2:61614?vhost=/&heartbeat_ms=10000``: hosts are tried in the order
written; ``vhost`` defaults to ``/`` (RabbitMQ needs it; ActiveMQ accepts it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote

from autoreduce.transport.common import TransportError

DEFAULT_PORT = 61613


@dataclass(frozen=True)
class StompUrl:
    """A parsed broker URL; ``str()`` and ``repr()`` never show the password."""

    hosts: tuple[tuple[str, int], ...]
    username: str = ""
    password: str = field(default="", repr=False)
    vhost: str = "/"
    heartbeat_ms: int | None = None

    def __str__(self) -> str:
        user = f"{self.username}:***@" if self.username or self.password else ""
        return "stomp://" + user + ",".join(f"{host}:{port}" for host, port in self.hosts)


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***``."""
    return re.sub(r"(://[^:/@]*):[^@]*@", r"\1:***@", url)


def parse_stomp_url(url: str) -> StompUrl:
    """Parse ``stomp://user:pass@h1:61613,h2:61614?vhost=/&heartbeat_ms=10000``."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() != "stomp":
        raise TransportError(f"not a stomp:// URL: {redact_url(url)}")
    location, _, query = rest.partition("?")
    location = location.rstrip("/")
    userinfo, at, host_list = location.rpartition("@")
    if not at:
        userinfo, host_list = "", location
    username, _, password = userinfo.partition(":")
    hosts = []
    for item in host_list.split(","):
        host, colon, port = item.strip().rpartition(":")
        if not colon:
            host, port = item.strip(), str(DEFAULT_PORT)
        if not host or not port.isdigit():
            raise TransportError(f"bad host:port {item!r} in broker URL {redact_url(url)}")
        hosts.append((host.strip("[]"), int(port)))
    options = {key: values[-1] for key, values in parse_qs(query).items()}
    unknown = set(options) - {"vhost", "heartbeat_ms"}
    if unknown:
        raise TransportError(
            f"unknown broker URL option(s) {sorted(unknown)}: use vhost, heartbeat_ms"
        )
    heartbeat = options.get("heartbeat_ms")
    if heartbeat is not None and not heartbeat.isdigit():
        raise TransportError(
            f"heartbeat_ms must be a whole number of milliseconds, not {heartbeat!r}"
        )
    return StompUrl(
        hosts=tuple(hosts),
        username=unquote(username),
        password=unquote(password),
        vhost=options.get("vhost", "/"),
        heartbeat_ms=int(heartbeat) if heartbeat is not None else None,
    )
