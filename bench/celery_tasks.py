"""The Celery 5 application of table (c): one task per "run", each recording one row.

Configured from the environment so that the worker subprocess and the benchmark agree:
``BENCH_CELERY_BROKER`` (default RabbitMQ on 127.0.0.1:5672), ``BENCH_CELERY_QUEUE``,
``BENCH_CELERY_DB`` (SQLAlchemy URL of the bench database) and ``BENCH_CELERY_OUT`` (where the
"reduction" writes its one small file). ``acks_late`` and a prefetch multiplier of 1 give the
same delivery guarantee as the queue processor: the message is acked after the row is committed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from celery import Celery
from celery.signals import worker_process_init
from sqlalchemy import Column, DateTime, Engine, Integer, MetaData, String, Table, create_engine
from sqlalchemy.dialects import mysql

BROKER_URL = os.environ.get("BENCH_CELERY_BROKER", "amqp://guest:guest@127.0.0.1:5672//")
QUEUE = os.environ.get("BENCH_CELERY_QUEUE", "autoreduce_bench")
RESULTS_TABLE = "celery_results"

# The "reduction": write one small file, like the noop plugin does.
CHILD_CODE = (
    "import pathlib, sys; "
    "pathlib.Path(sys.argv[2], f'run_{sys.argv[1]}.txt').write_text(sys.argv[1] + '\\n')"
)

app = Celery("autoreduce_bench", broker=BROKER_URL)
app.conf.update(
    task_acks_late=True,
    worker_prefetch_multiplier=1,
    task_default_queue=QUEUE,
    task_ignore_result=True,
    worker_enable_remote_control=False,
    worker_send_task_events=False,
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
)

MICROSECONDS = DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
metadata = MetaData()
results = Table(
    RESULTS_TABLE,
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_number", Integer, nullable=False),
    Column("mode", String(16), nullable=False),
    Column("started_at", MICROSECONDS, nullable=False),
    Column("finished_at", MICROSECONDS, nullable=False),
)
_engine: Engine | None = None


def results_engine() -> Engine:
    """This process's engine (made lazily, so each forked pool process has its own)."""
    global _engine
    if _engine is None:
        _engine = create_engine(os.environ["BENCH_CELERY_DB"], pool_size=1)
    return _engine


@worker_process_init.connect
def _connect(**_kwargs: Any) -> None:
    """Connect each pool process at start-up, as a queue processor does (not timed)."""
    with results_engine().connect() as connection:
        connection.exec_driver_sql("SELECT 1")


def _record(run_number: int, mode: str, started_at: datetime) -> None:
    row: dict[str, Any] = {
        "run_number": run_number,
        "mode": mode,
        "started_at": started_at,
        "finished_at": datetime.now(UTC).replace(tzinfo=None),
    }
    with results_engine().begin() as connection:
        connection.execute(results.insert().values(**row))


def _out_dir() -> str:
    return os.environ.get("BENCH_CELERY_OUT", "/tmp")


@app.task(name="bench.reduce_in_process")
def reduce_in_process(run_number: int) -> None:
    """(c1) The work in the worker's own process: no isolation."""
    started_at = datetime.now(UTC).replace(tzinfo=None)
    Path(_out_dir(), f"run_{run_number}.txt").write_text(f"{run_number}\n")
    _record(run_number, "in-process", started_at)


@app.task(name="bench.reduce_in_subprocess")
def reduce_in_subprocess(run_number: int) -> None:
    """(c2) The work in a fresh Python process, as ISIS's processor isolated reductions."""
    started_at = datetime.now(UTC).replace(tzinfo=None)
    subprocess.run([sys.executable, "-c", CHILD_CODE, str(run_number), _out_dir()], check=True)
    _record(run_number, "subprocess", started_at)
