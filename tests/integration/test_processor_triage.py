"""Failure triage and provenance, recorded by the processor from real reduction children.

Every run put in Error carries a category and a fingerprint of its cause; every version the
processor finishes carries its provenance, with the data file's SHA-256 computed in the child.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import pluggy
import pytest

from autoreduce import __version__, hookspecs
from autoreduce.db import Database
from autoreduce.db.models import ReductionRun, RunStatus
from autoreduce.plugin import PROJECT, ReductionContext, ReductionResult, hookimpl
from autoreduce.plugin_manager import Plugins
from autoreduce.settings import Settings
from autoreduce.transport.sql import SqlTransport
from plugins import noop
from queue_processor.worker import QueueProcessor
from tests.integration.test_processor import (
    _record_and_send,
    instrument,
    reduce_until_final,
)


class RaisesLookupError:
    """A plugin whose reduction fails with another exception than noop's."""

    @hookimpl
    def reduce(self, context: ReductionContext) -> ReductionResult:
        raise LookupError(f"no bank in run {context.run.run_number}")


class ReadsAMissingFile:
    """A plugin that opens its data file, which is gone by then."""

    @hookimpl
    def reduce(self, context: ReductionContext) -> ReductionResult:
        context.run.data_path.unlink()
        with open(context.run.data_path, "rb"):
            raise AssertionError("the data file was removed")


@pytest.fixture
def settings(make_settings: Callable[..., Settings], database: Database) -> Settings:
    return make_settings(
        GEM=instrument("noop"),
        WISH=instrument("noop"),
        LOOKUP=instrument("raises_lookup_error"),
        GONE=instrument("reads_a_missing_file"),
        # hoarding memory must meet its limit before its time limit, even on a loaded machine
        HOARD={**instrument("noop"), "timeout_s": 60},
        database_url=database.url,
        retry_delay_s=0,
    )


@pytest.fixture
def transport(database: Database) -> SqlTransport:
    return SqlTransport(database.url, consumer="test-processor", database=database)


@pytest.fixture
def processor(settings: Settings, database: Database, transport: SqlTransport) -> QueueProcessor:
    manager = pluggy.PluginManager(PROJECT)
    manager.add_hookspecs(hookspecs)
    manager.register(noop, name="noop")
    manager.register(RaisesLookupError(), name="raises_lookup_error")
    manager.register(ReadsAMissingFile(), name="reads_a_missing_file")
    return QueueProcessor(
        settings,
        database=database,
        transport=transport,
        plugins=Plugins(manager),
        processor_id="p1",
    )


@pytest.fixture
def reduce(
    settings: Settings, database: Database, transport: SqlTransport, processor: QueueProcessor
) -> Callable[..., ReductionRun]:
    """Submit one run and let the processor take it to a final state; the run as recorded."""

    def submit_and_reduce(run_number: int, **options: Any) -> ReductionRun:
        run = _record_and_send(settings, database, transport, run_number, **options)
        return reduce_until_final(processor, database, run)

    return submit_and_reduce


def test_two_runs_raising_the_same_exception_share_one_fingerprint(
    reduce: Callable[..., ReductionRun],
) -> None:
    first = reduce(11, fault="raise")
    second = reduce(12345, instrument="WISH", fault="raise")

    assert first.message != second.message  # each names its own run number
    assert first.error_fingerprint == second.error_fingerprint
    assert len(first.error_fingerprint) == 12
    assert first.error_category == "plugin"
    assert first.error_signature == (
        "RuntimeError in plugins.noop:_fail: noop was asked to fail on run <n>"
    )


def test_a_different_exception_has_a_different_fingerprint(
    reduce: Callable[..., ReductionRun],
) -> None:
    raised = reduce(21, fault="raise")
    looked_up = reduce(22, instrument="LOOKUP")

    assert looked_up.status == RunStatus.ERROR and looked_up.error_category == "plugin"
    assert looked_up.error_fingerprint != raised.error_fingerprint
    assert looked_up.error_signature.startswith("LookupError in tests.integration.")


@pytest.mark.parametrize(
    ("options", "category"),
    [
        ({"fault": "raise"}, "plugin"),
        ({"fault": "hang"}, "timeout"),
        ({"fault": "memory", "instrument": "HOARD"}, "memory"),
        ({"fault": "segfault"}, "crash"),
        ({"fault": "exit"}, "crash"),
        ({"with_data": False}, "data"),
        ({"instrument": "GONE"}, "data"),
    ],
)
def test_each_way_of_failing_is_recorded_with_its_category(
    reduce: Callable[..., ReductionRun], options: dict[str, Any], category: str
) -> None:
    failed = reduce(31, **options)

    assert failed.status == RunStatus.ERROR
    assert (failed.error_category, len(failed.error_fingerprint)) == (category, 12)
    assert failed.error_signature


def test_a_crash_given_up_on_keeps_the_fingerprint_of_its_crashes(
    reduce: Callable[..., ReductionRun],
) -> None:
    first = reduce(41, fault="segfault")
    second = reduce(42, fault="segfault")

    assert first.message.startswith("gave up after 3 attempts: ")
    assert first.error_fingerprint == second.error_fingerprint
    assert "SIGSEGV" in first.error_signature


def test_a_completed_run_records_its_provenance_with_the_data_files_sha256(
    reduce: Callable[..., ReductionRun], settings: Settings
) -> None:
    data = bytes(range(256)) * 10_000  # 2.4 MiB: hashed in more than one 1 MiB block
    path = settings.data_pattern("GEM", 51)
    done = reduce(51, data=data)

    assert done.status == RunStatus.COMPLETED
    assert done.error_category == done.error_fingerprint == ""
    provenance = done.provenance
    assert provenance is not None
    assert provenance["data_file"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert provenance["data_file"]["size_bytes"] == len(data)
    assert provenance["data_file"]["path"] == path
    assert (provenance["plugin"], provenance["plugin_distribution"]) == ("noop", "autoreduce")
    assert provenance["plugin_version"] == __version__
    assert provenance["processor"] == "p1" and provenance["host"]
    assert len(provenance["environment_fingerprint"]) == 64
    assert "plugin_change" not in provenance


def test_a_failed_run_records_its_provenance_too(reduce: Callable[..., ReductionRun]) -> None:
    failed = reduce(52, fault="raise")

    assert failed.provenance is not None
    assert len(failed.provenance["data_file"]["sha256"]) == 64


def test_a_rerun_reduced_by_another_plugin_version_says_so(
    reduce: Callable[..., ReductionRun],
    settings: Settings,
    database: Database,
    transport: SqlTransport,
    processor: QueueProcessor,
) -> None:
    base = reduce(61)
    with database.session() as session:  # as if v0 was reduced by an older release
        row = session.get(ReductionRun, base.id)
        assert row is not None
        row.provenance = {**(row.provenance or {}), "plugin_version": "0.0.1"}
    rerun = _record_and_send(settings, database, transport, 61, run_version=1)

    done = reduce_until_final(processor, database, rerun)

    assert done.provenance is not None
    assert done.provenance["plugin_change"] == f"plugin noop 0.0.1 → {__version__} since v0"


def test_a_rerun_with_the_same_plugin_version_notes_no_change(
    reduce: Callable[..., ReductionRun],
    settings: Settings,
    database: Database,
    transport: SqlTransport,
    processor: QueueProcessor,
) -> None:
    reduce(62)
    rerun = _record_and_send(settings, database, transport, 62, run_version=1)

    done = reduce_until_final(processor, database, rerun)

    assert done.provenance is not None and "plugin_change" not in done.provenance
