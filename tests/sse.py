"""Reading Server-Sent Events in tests, as a browser's EventSource would."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Event:
    """One event: its type (``message`` unless named), data and id (None if it set none)."""

    data: str
    type: str = "message"
    id: str | None = None


def events(lines: Iterable[str]) -> Iterator[Event]:
    """The events in a stream's lines (without their line breaks); comments are skipped."""
    data: list[str] = []
    kind = "message"
    event_id: str | None = None
    for line in lines:
        if line == "":
            if data:
                yield Event("\n".join(data), kind, event_id)
            data, kind, event_id = [], "message", None
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            data.append(value)
        elif name == "event":
            kind = value
        elif name == "id":
            event_id = value


def parse(body: str) -> list[Event]:
    """Every event in a whole stream's body."""
    return list(events(body.split("\n")))
