"""Send lines to Elasticsearch until each is created there or dead-lettered; never drop one.

Each line becomes a ``create`` action with ``_id`` = a hash of (host, device, inode, offset):
sending it again — after a lost answer, a retry, a restart — finds it there already (409), which
counts as delivered, so no record is stored twice. ``helpers.streaming_bulk`` retries the items
Elasticsearch answers 429 with backoff; items still failing (429, 5xx) are sent again in the next
round, behind a growing pause. A record Elasticsearch refuses as malformed (400 and other 4xx)
and a line that is not a JSON object go to the dead-letter file with the reason. A whole request
that fails (Elasticsearch down, 5xx, timeout) is retried with exponential backoff (tenacity)
for as long as it takes; the batch keeps its place.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from elasticsearch import Elasticsearch, helpers
from elasticsearch.exceptions import ApiError, TransportError
from tenacity import Retrying, retry_if_exception_type, wait_exponential

from autoreduce.log_shipping.tail import Line
from autoreduce.redaction import scrub, scrub_value

logger = logging.getLogger("autoreduce.ship_logs")
ALREADY_THERE = 409
RETRIED_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


class Stopped(Exception):
    """The shipper was asked to stop while it waited to retry."""


@dataclass(frozen=True)
class Rejection:
    """A line Elasticsearch (or the shipper) will never accept, and why."""

    line: Line
    status: int | None
    reason: str


def document_id(host: str, line: Line) -> str:
    """The ``_id`` of a line: the same line always gets the same id, another line another."""
    key = f"{host}\0{line.identity.device}\0{line.identity.inode}\0{line.offset}"
    return hashlib.sha256(key.encode()).hexdigest()[:40]


def document(line: Line) -> dict[str, Any] | str:
    """The line's ECS document (secrets scrubbed, where it came from added), or why not."""
    try:
        record = json.loads(line.text)
    except ValueError as error:
        return f"not JSON: {error}"
    if not isinstance(record, dict):
        return "not a JSON object"
    doc: dict[str, Any] = scrub_value(record)
    log = doc.get("log")
    if not isinstance(log, dict):
        log = {}
        doc["log"] = log if "log" not in doc else {"original_value": log}
    log["file"] = {"path": line.path}
    log["offset"] = line.offset
    return doc


class Delivery:
    """Delivers batches of lines to one Elasticsearch data stream, and dead-letters rejects."""

    def __init__(
        self,
        client: Elasticsearch,
        index: str,
        dead_letters: Path,
        *,
        stop: threading.Event,
        max_backoff_s: float = 60.0,
        host: str | None = None,
        item_retries: int = 3,
    ) -> None:
        self.client = client
        self.index = index
        self.dead_letters = dead_letters
        self.stop = stop
        self.max_backoff_s = max_backoff_s
        self.host = host or socket.gethostname()
        self.item_retries = item_retries
        self._unreachable = False

    def deliver(self, lines: list[Line]) -> None:
        """Return once every line is in Elasticsearch or in the dead-letter file.

        Raises:
            Stopped: asked to stop first; nothing after the last delivered batch is lost.
        """
        pending: list[tuple[str, Line, dict[str, Any]]] = []
        rejections: list[Rejection] = []
        for line in lines:
            doc = document(line)
            if isinstance(doc, str):
                rejections.append(Rejection(line, None, doc))
            else:
                pending.append((document_id(self.host, line), line, doc))
        round_number = 0
        while pending:
            if round_number:
                self._pause(min(self.max_backoff_s, 0.25 * 2 ** min(round_number, 10)))
            answers = self._bulk_until_answered(pending)
            retry = []
            for item in pending:
                status, error = answers.get(item[0], (None, "no answer for this item"))
                if status is not None and (status < 300 or status == ALREADY_THERE):
                    continue
                if status is None or status in RETRIED_STATUSES:
                    retry.append(item)
                else:
                    rejections.append(Rejection(item[1], status, error))
            if retry and not round_number:
                logger.warning("%d records not accepted yet; sending them again", len(retry))
            pending = retry
            round_number += 1
        if rejections:
            self._dead_letter(rejections)

    def _actions(self, pending: list[tuple[str, Line, dict[str, Any]]]) -> Iterator[dict[str, Any]]:
        for doc_id, _, doc in pending:
            yield {"_op_type": "create", "_index": self.index, "_id": doc_id, "_source": doc}

    def _bulk_until_answered(
        self, pending: list[tuple[str, Line, dict[str, Any]]]
    ) -> dict[str, tuple[int | None, str]]:
        retrying = Retrying(
            retry=retry_if_exception_type((TransportError, ApiError)),
            wait=wait_exponential(multiplier=0.5, max=self.max_backoff_s),
            sleep=self._pause,
            before_sleep=self._report_unreachable,
            reraise=True,
        )
        answers = retrying(self._bulk, pending)
        if self._unreachable:
            logger.warning("Elasticsearch answers again; shipping resumes")
            self._unreachable = False
        return answers

    def _bulk(
        self, pending: list[tuple[str, Line, dict[str, Any]]]
    ) -> dict[str, tuple[int | None, str]]:
        answers: dict[str, tuple[int | None, str]] = {}
        for ok, item in helpers.streaming_bulk(
            self.client,
            self._actions(pending),
            chunk_size=len(pending),
            max_retries=self.item_retries,
            initial_backoff=0.2,
            max_backoff=self.max_backoff_s,
            raise_on_error=False,
            yield_ok=True,
        ):
            info = next(iter(item.values()))
            status = info.get("status")
            reason = "" if ok else _reason(info.get("error"))
            answers[str(info.get("_id"))] = (int(status) if status is not None else None, reason)
        return answers

    def _report_unreachable(self, state: Any) -> None:
        error = state.outcome.exception() if state.outcome else None
        if not self._unreachable or state.attempt_number % 10 == 0:
            logger.warning(
                "Elasticsearch cannot take the batch (attempt %d): %s; keeping the place and "
                "retrying",
                state.attempt_number,
                scrub(_one_line(error)),
            )
        self._unreachable = True

    def _pause(self, seconds: float) -> None:
        if self.stop.wait(seconds):
            raise Stopped()

    def _dead_letter(self, rejections: list[Rejection]) -> None:
        """Append each rejection (reason, where, the line itself) to the dead-letter file."""
        self.dead_letters.parent.mkdir(parents=True, exist_ok=True)
        with open(self.dead_letters, "a", encoding="utf-8") as stream:
            for rejection in rejections:
                line = rejection.line
                entry = {
                    "reason": scrub(rejection.reason),
                    "status": rejection.status,
                    "file": line.path,
                    "offset": line.offset,
                    "id": document_id(self.host, line),
                    "record": scrub(line.text.decode("utf-8", errors="replace")),
                }
                stream.write(json.dumps(entry) + "\n")
            stream.flush()
            os.fsync(stream.fileno())
        logger.warning("%d records dead-lettered to %s", len(rejections), self.dead_letters)


def _reason(error: object) -> str:
    if isinstance(error, dict):
        kind = error.get("type", "error")
        text = error.get("reason", "")
        cause = error.get("caused_by")
        more = f" ({_reason(cause)})" if isinstance(cause, dict) else ""
        return f"{kind}: {text}{more}"
    return str(error)


def _one_line(error: BaseException | None) -> str:
    if error is None:
        return "unknown error"
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"
