"""Service logging: Elastic Common Schema JSON lines in ``<data_dir>/logs`` plus a console.

Each record is one ECS JSON object per line, written by the maintained ``ecs-logging``
formatter (``@timestamp``, ``log.level``, ``message``, ``log.logger``, ``log.origin.*``,
``process.*``, ``error.*``) and extended with ``service.name``, ``host.name``, the fields the
service was configured with (a processor's id as ``autoreduce.processor``) and any ``extra``
fields; dotted keys nest (``extra={"autoreduce.run_id": 812}``). One file per service name,
however often the service restarts, rotated at :data:`LOG_FILE_BYTES`. A
:class:`~autoreduce.redaction.SecretScrubber` on every handler keeps secrets out of every record.

A record about a run carries the run's identity (:func:`run_fields`), so one query finds
everything about a run on every host.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import socket
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import ecs_logging

from autoreduce.redaction import SecretScrubber, scrub_value

LOG_FILE_BYTES = 20 * 1024 * 1024
LOG_FILE_BACKUPS = 5
LOG_SUFFIX = ".jsonl"


class RunIdentity(Protocol):
    """What names a run version: a database row or a message carries these."""

    @property
    def instrument(self) -> str: ...
    @property
    def run_number(self) -> int: ...
    @property
    def run_version(self) -> int: ...


def run_fields(run: RunIdentity, run_id: int | None = None) -> dict[str, object]:
    """The ``extra`` of a record about ``run``: its ECS ``autoreduce.*`` identity fields."""
    fields: dict[str, object] = {
        "autoreduce.instrument": run.instrument,
        "autoreduce.run_number": run.run_number,
        "autoreduce.run_version": run.run_version,
    }
    identity = run_id if run_id is not None else getattr(run, "id", None)
    if identity is None:
        identity = getattr(run, "run_id", None)
    if identity is not None:
        fields["autoreduce.run_id"] = identity
    return fields


def _merge(into: dict[str, Any], extra: Mapping[str, Any]) -> None:
    """Merge nested ``extra`` into ``into``; existing leaves win (the record's own fields)."""
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into.setdefault(key, value)


def _nested(dotted: Mapping[str, object]) -> dict[str, Any]:
    nested: dict[str, Any] = {}
    for key, value in dotted.items():
        *parents, leaf = key.split(".")
        node = nested
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return nested


class EcsFormatter(ecs_logging.StdlibFormatter):
    """``ecs-logging``'s formatter with the service, the host and fixed fields in each record.

    ``fields`` are dotted ECS names (``{"autoreduce.processor": "host:pid:abc"}``). Every
    string written is scrubbed of secrets, the exception's text and stack trace included.
    """

    def __init__(self, service: str, fields: Mapping[str, object] | None = None) -> None:
        super().__init__()
        self.service = service
        self._fixed = _nested(
            {
                "service.name": service,
                "host.name": socket.gethostname(),
                **(fields or {}),
            }
        )

    def format_to_ecs(self, record: logging.LogRecord) -> dict[str, Any]:
        result: dict[str, Any] = super().format_to_ecs(record)
        result.setdefault("process", {})["pid"] = record.process or os.getpid()
        _merge(result, self._fixed)
        scrubbed: dict[str, Any] = scrub_value(result)
        return scrubbed


def json_lines_handler(
    path: Path, service: str, fields: Mapping[str, object] | None = None
) -> logging.Handler:
    """A rotating handler writing ECS JSON lines to ``path``, secrets scrubbed."""
    handler = logging.handlers.RotatingFileHandler(
        path, maxBytes=LOG_FILE_BYTES, backupCount=LOG_FILE_BACKUPS, encoding="utf-8"
    )
    handler.setFormatter(EcsFormatter(service, fields))
    handler.addFilter(SecretScrubber())
    return handler


def configure_logging(
    service: str,
    logs_dir: Path | None,
    level: str = "INFO",
    fields: Mapping[str, object] | None = None,
) -> None:
    """Log ``service`` to ``logs_dir/<service>.jsonl`` (ECS, rotated) and to stderr.

    ``fields`` are added to every JSON record under ``autoreduce.`` unless already dotted
    (``{"processor": "host:pid:abc"}`` is written as ``autoreduce.processor``).
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.setLevel(level)
    console = logging.StreamHandler(sys.stderr)
    console.setFormatter(logging.Formatter(f"%(asctime)s {service} %(levelname)s %(message)s"))
    console.addFilter(SecretScrubber())
    root.addHandler(console)
    if logs_dir is not None:
        logs_dir.mkdir(parents=True, exist_ok=True)
        dotted = {(k if "." in k else f"autoreduce.{k}"): v for k, v in (fields or {}).items()}
        root.addHandler(json_lines_handler(logs_dir / f"{service}{LOG_SUFFIX}", service, dotted))
    for noisy in ("watchdog", "urllib3", "matplotlib", "h5py", "multipart", "elastic_transport"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
