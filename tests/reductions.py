"""Calling a plugin's ``reduce`` directly, as the processor's child would, for plugin tests."""

from __future__ import annotations

import logging
from pathlib import Path
from types import ModuleType
from typing import Any

from autoreduce.plugin import ReductionContext, ReductionResult, RunInfo
from autoreduce.variables import resolve_variables


def reduce_directly(
    plugin: ModuleType, run: RunInfo, output_dir: Path, **values: Any
) -> ReductionResult:
    """Reduce ``run`` with ``plugin`` in this process, variables validated as in production."""
    output_dir.mkdir(parents=True, exist_ok=True)
    context = ReductionContext(
        run=run,
        variables=resolve_variables(plugin.reduction_variables(run.instrument), values),
        output_dir=output_dir,
        logger=logging.getLogger(f"test.{plugin.__name__}"),
    )
    result: ReductionResult = plugin.reduce(context)
    return result
