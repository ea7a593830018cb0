"""The audit trail: every write, with who did it, what, when and from where.

A write records its event in its own transaction (:func:`record_event`), so an event exists if
and only if the change it describes was committed. Actions are dotted names
(``run.submit``, ``run.rerun``, ``instrument.pause``, ``token.create``…); ``target`` names what
was changed in words a person reads (``GEM 44733 v1``); ``details`` holds the rest as JSON
(never a secret: a token's value is never recorded, only its name).
"""

from __future__ import annotations

import getpass
import socket
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from autoreduce.db.models import AuditEvent, utcnow

MAX_TARGET_CHARS = 200


@dataclass(frozen=True)
class Actor:
    """Who made a change: a token's (or client's) name and role, and where the request came from."""

    name: str
    role: str
    address: str = ""


def command_line_actor() -> Actor:
    """The actor of a change made with the ``autoreduce`` command on this host."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no user name for this uid (containers)
        user = "unknown"
    return Actor(name=f"cli:{user}", role="operator", address=socket.gethostname())


def record_event(
    session: Session,
    actor: Actor,
    action: str,
    target: str,
    *,
    instrument: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """Add one audit event to ``session``'s transaction."""
    session.add(
        AuditEvent(
            at=utcnow(),
            actor=actor.name[:100],
            role=actor.role[:16],
            address=actor.address[:64],
            action=action[:40],
            instrument=instrument,
            target=target[:MAX_TARGET_CHARS],
            details=details or {},
        )
    )
