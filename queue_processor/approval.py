"""Refuse to reduce with a plugin whose installed version here is not approved.

The outbox relay holds the runs of plugins the API's host does not have approved, but a
processor host may have another version installed. Before it claims a run, the processor asks
the database for the verdict on *its own* release of the instrument's plugin. Not approved, the
run stays Queued with a ``held: plugin …`` message, and the message goes back to the outbox in
the same transaction, marked with the release it waits for (``held_plugin``, …): the relay
sends it again once that release is approved. The delivery is then acked: nothing is lost and
nothing is redelivered in a loop. A copy of a message already handed back is acked alone.
"""

from __future__ import annotations

import logging

from sqlalchemy import select, update

from autoreduce.db import Database
from autoreduce.db.models import OutboxMessage, ReductionRun, RunStatus
from autoreduce.messages import PENDING_QUEUE, RunMessage
from autoreduce.plugin_approvals import PluginGate
from autoreduce.state_machine import transition

logger = logging.getLogger("autoreduce.process")


def hold_unapproved(database: Database, gate: PluginGate, message: RunMessage) -> str:
    """Hold ``message``'s run if its plugin is not approved here; why it is held, or "".

    "" also when the run is not Queued or Processing: the claim then decides (a finished run's
    redelivery is dropped as usual).
    """
    release = gate.release_for(message.instrument)
    if release is None or not release.from_entry_point:
        return ""
    with database.session() as session:
        reason = gate.held_message(session, message.instrument)
        if not reason:
            return ""
        run = session.scalar(select(ReductionRun).where(ReductionRun.id == message.run_id))
        if run is None or RunStatus(run.status).is_final:
            return ""
        if run.status == RunStatus.QUEUED.value and run.message == reason:
            return reason  # a copy of a message already handed back
        status = RunStatus(run.status)
        if status is RunStatus.QUEUED:  # not a transition: only its message changes
            moved = bool(
                session.execute(
                    update(ReductionRun)
                    .where(ReductionRun.id == run.id, ReductionRun.status == status.value)
                    .values(message=reason)
                    .execution_options(synchronize_session=False)
                ).rowcount  # type: ignore[attr-defined]
            )
        else:  # redelivered after its processor died: back to Queued, fenced on its attempts
            moved = transition(
                session,
                run.id,
                status,
                RunStatus.QUEUED,
                expected_attempts=run.attempts,
                message=reason,
                processor="",
            )
        if not moved:
            return ""
        session.add(
            OutboxMessage(
                instrument=message.instrument,
                queue=PENDING_QUEUE,
                body=message.to_json(),
                held_plugin=release.name,
                held_distribution=release.distribution,
                held_version=release.version,
            )
        )
    return reason
