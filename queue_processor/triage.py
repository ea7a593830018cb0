"""What the processor records beside a run's state: why it failed, and what reduced it.

:func:`outcome_failure` turns a reduction's :class:`Outcome` into a categorised, fingerprinted
:class:`~autoreduce.failures.Failure`; :func:`run_provenance` stamps the processor's provenance
(plugin version, environment, host, the data file's facts from the child) and says when the
plugin's version changed since the version the run was re-run from.
"""

from __future__ import annotations

from typing import Any

from autoreduce.db import Database
from autoreduce.db.models import ReductionRun
from autoreduce.failures import ErrorCategory, Failure, classify
from autoreduce.provenance import ProcessorProvenance, plugin_change
from queue_processor.isolation import Outcome
from queue_processor.record import earlier_provenance


def outcome_failure(outcome: Outcome, plugin: str) -> Failure:
    """The failure of a reduction that did not succeed (category ``plugin`` if it has none).

    For an exception the cause is its type, frame and own message (the run's ``message`` says
    ``plugin raised <type>: <message>``); otherwise the run's one-line reason.
    """
    category = ErrorCategory(outcome.category) if outcome.category else ErrorCategory.PLUGIN
    return classify(
        category,
        outcome.exception_message or outcome.reason,
        plugin=plugin,
        exception_type=outcome.exception_type,
        frame=outcome.frame,
    )


def run_provenance(
    database: Database,
    run: ReductionRun,
    processor: ProcessorProvenance,
    plugin: str,
    data_file: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The provenance of ``run`` as this processor records it, with ``plugin_change`` when the
    plugin or its version differs from the newest earlier version's."""
    provenance = processor.for_plugin(plugin, data_file)
    if run.run_version > 0 and (base := earlier_provenance(database, run)) is not None:
        version, earlier = base
        if change := plugin_change(provenance, earlier, version):
            provenance["plugin_change"] = change
    return provenance
