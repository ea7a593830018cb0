"""The queue processor service: ``autoreduce process``.

It reads as a list of small parts: :mod:`.claim` (take a run), :mod:`.isolation` (reduce it in a
forked child within its limits), :mod:`.record` (outputs in place, final state committed),
:mod:`.log_shipper` (the log's lines to the database while it grows), :mod:`.heartbeat` (alive,
claim kept) and :mod:`.worker` (the loop that acks after recording).
"""

from __future__ import annotations

import signal
from types import FrameType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from autoreduce.settings import Settings
    from queue_processor.worker import QueueProcessor


def __getattr__(name: str) -> Any:
    # Imported on use, so a fork server (``python -m queue_processor.fork_server``) that
    # imports this package does not import the processor's stack (SQLAlchemy, the broker).
    if name == "QueueProcessor":
        from queue_processor.worker import QueueProcessor

        return QueueProcessor
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def serve(settings: Settings, *, processor_id: str | None = None) -> None:
    """Run one processor until SIGTERM or SIGINT; the run in hand finishes or is released."""
    from queue_processor.worker import QueueProcessor

    processor = QueueProcessor(settings, processor_id=processor_id)

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        processor.stop()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    processor.serve()


__all__ = ["QueueProcessor", "serve"]
