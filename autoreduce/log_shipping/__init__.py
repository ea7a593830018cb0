"""``autoreduce ship-logs``: the per-host service that sends JSON-lines logs to Elasticsearch.

It follows the files named by ``[shipping] paths`` (:mod:`.tail`), delivers them in batches
(:mod:`.delivery`) and records how far each file is delivered after every batch
(:mod:`.offsets`). It only reads files: no service ever waits on it.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from elasticsearch import Elasticsearch

from autoreduce.log_shipping.delivery import Delivery, Stopped
from autoreduce.log_shipping.offsets import OffsetStore
from autoreduce.log_shipping.tail import Tailer
from autoreduce.settings import Settings

logger = logging.getLogger("autoreduce.ship_logs")
OFFSETS_NAME = "offsets.json"
DEAD_LETTERS_NAME = "dead-letters.jsonl"


def state_dir(settings: Settings) -> Path:
    """Where the offsets and the dead-letter file live."""
    return settings.shipping.state_dir or settings.data_dir / "ship-logs"


def patterns(settings: Settings) -> list[str]:
    """The glob patterns with ``{logs_dir}``, ``{outputs}`` and ``{data_dir}`` filled in."""
    places = {
        "logs_dir": str(settings.logs_dir),
        "outputs": str(settings.outputs_root),
        "data_dir": str(settings.data_dir),
    }
    return [pattern.format(**places) for pattern in settings.shipping.paths]


def elasticsearch_client(url: str, request_timeout_s: float) -> Elasticsearch:
    """The official 8.x client for ``url`` (several nodes comma-separated)."""
    hosts = [part.strip() for part in url.split(",") if part.strip()]
    return Elasticsearch(hosts, request_timeout=request_timeout_s, max_retries=1)


class LogShipper:
    """Reads, delivers, records its place; again every ``poll_s`` until stopped."""

    def __init__(self, settings: Settings, client: Elasticsearch, stop: threading.Event) -> None:
        shipping = settings.shipping
        self.settings = settings
        self.stop = stop
        directory = state_dir(settings)
        self.store = OffsetStore.load(directory / OFFSETS_NAME)
        self.tailer = Tailer(patterns(settings), self.store)
        self.delivery = Delivery(
            client,
            shipping.index,
            directory / DEAD_LETTERS_NAME,
            stop=stop,
            max_backoff_s=shipping.max_backoff_s,
        )

    def run(self) -> None:
        """Ship until :attr:`stop` is set; the place is saved after each delivered batch."""
        shipping = self.settings.shipping
        last_scan = float("-inf")
        try:
            while not self.stop.is_set():
                if time.monotonic() - last_scan >= shipping.scan_s:
                    self.tailer.scan()
                    last_scan = time.monotonic()
                lines = self.tailer.read(shipping.batch_records)
                if not lines:
                    self.stop.wait(shipping.poll_s)
                    continue
                self.delivery.deliver(lines)
                for line in lines:
                    position = self.store.positions.get(line.identity)
                    if position is not None:
                        position.offset = max(position.offset, line.end)
                self.store.save()
        except Stopped:
            pass
        finally:
            self.tailer.close()


def serve(settings: Settings, stop: threading.Event) -> None:
    """Run the shipper of this host until ``stop`` is set."""
    url = settings.shipping.elasticsearch_url.get_secret_value()
    client = elasticsearch_client(url, settings.shipping.request_timeout_s)
    shipper = LogShipper(settings, client, stop)
    logger.info(
        "shipping %s to Elasticsearch data stream %s",
        ", ".join(shipper.tailer.patterns),
        settings.shipping.index,
    )
    shipper.run()
    logger.info("ship-logs stopped")
