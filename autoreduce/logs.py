"""Service logging: JSON lines files in ``<data_dir>/logs`` plus a readable console.

Each record is one JSON object per line (time, level, logger, service, message, the fields the
service was configured with — a processor's id — and any ``extra`` fields), the shape
Elasticsearch ingests as it is. One file per service name, however often the service restarts.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

_STANDARD_FIELDS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
LOG_FILE_BYTES = 20 * 1024 * 1024
LOG_FILE_BACKUPS = 5


class JsonLinesFormatter(logging.Formatter):
    def __init__(self, service: str, fields: Mapping[str, object] | None = None) -> None:
        super().__init__()
        self.service = service
        self.fields = dict(fields or {})

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "@timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "service": self.service,
            "message": record.getMessage(),
            **self.fields,
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_FIELDS and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["traceback"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(
    service: str,
    logs_dir: Path | None,
    level: str = "INFO",
    fields: Mapping[str, object] | None = None,
) -> None:
    """Log ``service`` to ``logs_dir/<service>.jsonl`` (rotated) and to stderr.

    ``fields`` are added to every JSON record (e.g. ``{"processor": "host:pid:abc"}``).
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.setLevel(level)
    console = logging.StreamHandler(sys.stderr)
    console.setFormatter(logging.Formatter(f"%(asctime)s {service} %(levelname)s %(message)s"))
    root.addHandler(console)
    if logs_dir is not None:
        logs_dir.mkdir(parents=True, exist_ok=True)
        file_handler = logging.handlers.RotatingFileHandler(
            logs_dir / f"{service}.jsonl", maxBytes=LOG_FILE_BYTES, backupCount=LOG_FILE_BACKUPS
        )
        file_handler.setFormatter(JsonLinesFormatter(service, fields))
        root.addHandler(file_handler)
    for noisy in ("watchdog", "urllib3", "matplotlib", "h5py", "multipart"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
