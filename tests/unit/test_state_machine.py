"""Run states move only along DESIGN §4's arrows, each move at most once."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from autoreduce.db import Database
from autoreduce.db.models import Instrument, ReductionRun, RunStatus
from autoreduce.state_machine import (
    ALLOWED,
    IllegalTransition,
    cancelled_message,
    one_line,
    transition,
)


@pytest.fixture
def run_id(tmp_path: object) -> tuple[Database, int]:
    database = Database(f"sqlite:///{tmp_path}/states.db")
    database.upgrade()
    with database.session() as session:
        session.add(Instrument(name="GEM"))
        run = ReductionRun(instrument="GEM", run_number=1, data_path="/d.nxs")
        session.add(run)
        session.flush()
        return database, run.id


def test_final_states_have_no_way_out() -> None:
    for status in (RunStatus.COMPLETED, RunStatus.ERROR, RunStatus.SKIPPED):
        assert status.is_final and ALLOWED[status] == frozenset()


def test_a_transition_happens_once(run_id: tuple[Database, int]) -> None:
    database, rid = run_id
    with database.session() as session:
        assert transition(session, rid, RunStatus.QUEUED, RunStatus.PROCESSING, attempts=1)
        assert not transition(session, rid, RunStatus.QUEUED, RunStatus.PROCESSING, attempts=1)


def test_the_attempt_fence_refuses_a_processor_that_lost_the_run(
    run_id: tuple[Database, int],
) -> None:
    database, rid = run_id
    with database.session() as session:
        transition(session, rid, RunStatus.QUEUED, RunStatus.PROCESSING, attempts=2)

        stale = transition(
            session, rid, RunStatus.PROCESSING, RunStatus.COMPLETED, expected_attempts=1
        )
        current = transition(
            session, rid, RunStatus.PROCESSING, RunStatus.COMPLETED, expected_attempts=2
        )

    assert (stale, current) == (False, True)


def test_an_arrow_the_design_does_not_have_is_refused() -> None:
    with pytest.raises(IllegalTransition, match="from Completed to Queued"):
        transition(None, 1, RunStatus.COMPLETED, RunStatus.QUEUED)  # type: ignore[arg-type]


@pytest.mark.parametrize("final", [RunStatus.ERROR, RunStatus.SKIPPED, RunStatus.CANCELLED])
def test_error_skipped_and_cancelled_need_a_reason(final: RunStatus) -> None:
    with pytest.raises(IllegalTransition, match="needs a message"):
        transition(None, 1, RunStatus.QUEUED, final)  # type: ignore[arg-type]


def test_a_reason_is_kept_to_one_line() -> None:
    assert one_line("first line\nTraceback ...") == "first line"
    assert len(one_line("x" * 5000)) == 1000


def test_a_cancelled_message_names_who_when_in_utc_and_why_on_one_line() -> None:
    at = datetime(2026, 12, 3, 10, 15, 30, 123456, tzinfo=timezone(timedelta(hours=1)))

    message = cancelled_message("scientist-gem", at, "wrong sample\nposition")

    assert message == "cancelled by scientist-gem at 2026-12-03T09:15:30Z: wrong sample position"
