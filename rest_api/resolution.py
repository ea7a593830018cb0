"""The API's side of a run's values: the plugin's declarations and the stored rules, resolved
through the one precedence of :mod:`autoreduce.variable_rules`."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from autoreduce.db.models import VariableRule
from autoreduce.pipelines import PipelineError, load_pipeline
from autoreduce.plugin import Variable
from autoreduce.plugin_manager import UnknownPlugin
from autoreduce.state_machine import one_line
from autoreduce.variable_rules import BaseVersion, Resolution, Rule, resolve_run_values
from rest_api.dependencies import ApiState

logger = logging.getLogger("autoreduce.api")


class PluginUnavailable(RuntimeError):
    """The instrument's plugin cannot declare its variables; the message is one line."""


def declared_variables(state: ApiState, instrument: str) -> list[Variable]:
    """The variables the instrument's plugin declares; :class:`PluginUnavailable` otherwise."""
    config = state.instrument_config(instrument)
    if config.pipeline:  # a pipeline's variables are its steps' options
        try:
            pipeline = load_pipeline(
                state.settings.resolved_pipelines_dir, config.pipeline, state.plugins().names()
            )
        except PipelineError as error:
            raise PluginUnavailable(one_line(str(error))) from None
        return pipeline.variables()
    plugin_name = config.plugin
    try:
        return state.plugins().variables(plugin_name, instrument)
    except UnknownPlugin as error:
        raise PluginUnavailable(one_line(str(error))) from None
    except Exception as error:  # a plugin that fails to load or to answer
        logger.exception("plugin %r failed to declare its variables", plugin_name)
        raise PluginUnavailable(
            one_line(f"plugin {plugin_name!r} failed to declare its variables: {error}")
        ) from None


def active_rules(session: Session, instrument: str) -> list[VariableRule]:
    """The instrument's rules that are not deleted, oldest first."""
    query = (
        select(VariableRule)
        .where(VariableRule.instrument == instrument, VariableRule.deleted_at.is_(None))
        .order_by(VariableRule.id)
    )
    return list(session.scalars(query).all())


def as_rule(row: VariableRule) -> Rule:
    return Rule(row.id, dict(row.values or {}), row.experiment_ref, row.from_run)


def resolve_for_run(
    state: ApiState,
    instrument: str,
    rules: list[Rule],
    *,
    run_number: int,
    experiment_ref: str,
    base: BaseVersion | None = None,
    changes: dict[str, Any] | None = None,
    declared: list[Variable] | None = None,
) -> Resolution:
    """The values and sources of a new version of ``run_number``; raises
    :class:`PluginUnavailable` or :class:`~autoreduce.variables.VariableError`."""
    return resolve_run_values(
        declared if declared is not None else declared_variables(state, instrument),
        run_number=run_number,
        experiment_ref=experiment_ref,
        rules=rules,
        instrument_defaults=state.instrument_config(instrument).variables,
        base=base,
        changes=changes,
    )
