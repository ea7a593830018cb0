"""A processor refuses a plugin whose version installed on its host is not approved.

The API's host may have approved version A while a processor host has version B installed:
that processor hands the message back to the outbox, held for B, and the run waits in Queued
saying so; once B is approved the relay sends it again and it is reduced.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import select

from autoreduce.audit import Actor
from autoreduce.db import Database
from autoreduce.db.models import OutboxMessage, RunStatus
from autoreduce.messages import PENDING_QUEUE
from autoreduce.outbox import OutboxRelay
from autoreduce.plugin_approvals import ApprovalState, decide
from autoreduce.plugin_manager import PluginRelease
from autoreduce.settings import Settings
from autoreduce.transport.sql import SqlTransport
from queue_processor import QueueProcessor
from tests.integration.test_processor import _record_and_send, instrument, queue_rows, reload

OTHER_VERSION = PluginRelease("noop", "autoreduce", "99.1")


@pytest.fixture
def settings(make_settings: Callable[..., Settings], database: Database) -> Settings:
    return make_settings(GEM=instrument(), database_url=database.url, shutdown_grace_s=0)


@pytest.fixture
def transport(database: Database) -> SqlTransport:
    return SqlTransport(database.url, consumer="test-processor", database=database)


@pytest.fixture
def processor(settings: Settings, database: Database, transport: SqlTransport) -> QueueProcessor:
    """A processor whose host has another version of ``noop`` than the one approved."""
    processor = QueueProcessor(settings, database=database, transport=transport)
    processor.plugin_gate.releases["noop"] = OTHER_VERSION
    return processor


def _outbox(database: Database) -> list[OutboxMessage]:
    with database.read_session() as session:
        return list(session.scalars(select(OutboxMessage)))


def test_a_run_whose_plugin_version_here_is_not_approved_is_held_not_reduced(
    processor: QueueProcessor, settings: Settings, database: Database, transport: SqlTransport
) -> None:
    run = _record_and_send(settings, database, transport, 501)

    assert processor.process_next(wait_s=5)

    held = reload(database, run)
    assert (held.status, held.attempts) == (RunStatus.QUEUED, 0)
    assert held.message == "held: plugin noop 99.1 is pending approval"
    assert queue_rows(database, PENDING_QUEUE) == []  # acked: no redelivery loop
    [row] = _outbox(database)
    assert (row.held_plugin, row.held_version, row.sent_at) == ("noop", "99.1", None)
    assert OutboxRelay(database, transport).relay_once() == 0  # waits for 99.1


def test_approving_the_processors_version_sends_the_held_run_and_it_is_reduced(
    processor: QueueProcessor, settings: Settings, database: Database, transport: SqlTransport
) -> None:
    run = _record_and_send(settings, database, transport, 502)
    processor.process_next(wait_s=5)

    decide(database, OTHER_VERSION, ApprovalState.APPROVED, Actor("ops", "operator"))

    assert reload(database, run).message == ""
    assert OutboxRelay(database, transport).relay_once() == 1
    assert processor.process_next(wait_s=5)
    assert reload(database, run).status == RunStatus.COMPLETED


def test_a_second_copy_of_a_held_message_is_acked_without_a_second_outbox_row(
    processor: QueueProcessor, settings: Settings, database: Database, transport: SqlTransport
) -> None:
    run = _record_and_send(settings, database, transport, 503)
    processor.process_next(wait_s=5)
    [row] = _outbox(database)
    transport.send(PENDING_QUEUE, row.body)  # a duplicate publication of the same message

    assert processor.process_next(wait_s=5)

    assert len(_outbox(database)) == 1
    assert queue_rows(database, PENDING_QUEUE) == []
    assert reload(database, run).status == RunStatus.QUEUED
