"""The stuck-run sweep on real ActiveMQ and RabbitMQ: what the broker has is left alone."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from autoreduce.audit import Actor
from autoreduce.db import Database
from autoreduce.db.models import Instrument, ReductionRun, RunStatus, utcnow
from autoreduce.messages import PENDING_QUEUE, RunMessage
from autoreduce.requeue import Action, requeue_stuck
from autoreduce.transport.stomp import StompTransport

OPERATOR = Actor("cli:test", "operator")


def stuck_run(database: Database, run_number: int) -> ReductionRun:
    """A run Queued an hour ago (no outbox row: as if the relay had sent it long since)."""
    with database.session() as session:
        if session.get(Instrument, "GEM") is None:
            session.add(Instrument(name="GEM"))
        run = ReductionRun(
            instrument="GEM",
            run_number=run_number,
            run_version=0,
            status=RunStatus.QUEUED,
            data_path=f"/archive/GEM{run_number:08d}.nxs",
            queued_at=utcnow() - timedelta(hours=1),
        )
        session.add(run)
        session.flush()
        session.expunge(run)
    return run


def message_of(run: ReductionRun) -> str:
    return RunMessage(
        run_id=run.id,
        instrument=run.instrument,
        run_number=run.run_number,
        run_version=run.run_version,
        data_path=run.data_path,
        submitted_at=run.queued_at,
    ).to_json()


def test_the_sweep_republishes_only_the_run_whose_message_the_broker_lost(
    database: Database, stomp_transport: Callable[..., StompTransport]
) -> None:
    transport = stomp_transport(consumer="sweep")
    kept, also_kept, lost = (stuck_run(database, n) for n in (1, 2, 3))
    for run in (kept, also_kept):
        transport.send(PENDING_QUEUE, message_of(run))

    first = requeue_stuck(database, transport, older_than_s=60, actor=OPERATOR)
    second = requeue_stuck(database, transport, older_than_s=60, actor=OPERATOR)

    assert {run.run_id: run.action for run in first.runs} == {
        kept.id: Action.ON_BROKER,
        also_kept.id: Action.ON_BROKER,
        lost.id: Action.REPUBLISHED,
    }
    assert [run.action for run in second.runs] == [Action.ON_BROKER] * 3
    assert transport.purge(PENDING_QUEUE) == 3  # one message a run, never a second
