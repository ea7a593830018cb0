"""Re-runs that say what they change: plan each new version from its base, then record it.

A plan is computed in the same transaction that records it, so a dry run (which plans and
records nothing) answers exactly what the real request then does, unless the runs change in
between. Values resolve through :mod:`autoreduce.variable_rules`, like a detected run's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from fastapi import HTTPException
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from autoreduce.audit import Actor
from autoreduce.db.models import ReductionRun, RunStatus
from autoreduce.pipelines import PipelineError, load_pipeline
from autoreduce.plugin import Variable
from autoreduce.state_machine import one_line
from autoreduce.variable_rules import BaseVersion, Rule, check_rule_values, differences
from autoreduce.variables import VariableError
from rest_api.dependencies import ApiState
from rest_api.rerun_schemas import RerunPlanItem
from rest_api.resolution import (
    PluginUnavailable,
    active_rules,
    as_rule,
    declared_variables,
    resolve_for_run,
)
from rest_api.schemas import RerunRequest
from rest_api.submission import (
    RECORD_ATTEMPTS,
    _new_run,
    add_with_message,
    announce,
    audit_run,
    ensure_instrument,
    find_versions,
    hold_reason,
    lost_race,
)

REFUSED = "Refused"


@dataclass(frozen=True)
class Base:
    """A parsed ``base``: ``latest``, ``current`` or ``version N``."""

    kind: str
    version: int | None = None

    @classmethod
    def parse(cls, text: str) -> Base:
        if text.startswith("version "):
            return cls("version", int(text.removeprefix("version ")))
        return cls(text)


@dataclass
class RerunPlan:
    """The version a re-run makes of one run, or why it cannot."""

    run_number: int
    versions: list[ReductionRun]
    derived_from: ReductionRun | None = None
    values: dict[str, Any] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    refused: str = ""

    @property
    def latest(self) -> ReductionRun:
        return self.versions[-1]

    @property
    def new_version(self) -> int:
        return self.latest.run_version + 1

    def item(self, run: ReductionRun | None = None, superseded: int | None = None) -> RerunPlanItem:
        """The answer for this run: the recorded ``run`` if given, else what would be made."""
        if self.refused or self.derived_from is None:
            return RerunPlanItem(
                run_number=self.run_number,
                run_version=None,
                status=REFUSED,
                message=self.refused,
                derived_from_version=None,
                superseded_version=None,
                variables={},
                variable_sources={},
                differences=None,
            )
        return RerunPlanItem(
            run_number=self.run_number,
            run_version=run.run_version if run else self.new_version,
            status=run.status if run else RunStatus.QUEUED.value,
            message=run.message if run else "",
            derived_from_version=self.derived_from.run_version,
            superseded_version=superseded,
            variables=self.values,
            variable_sources=self.sources,
            differences=differences(self.derived_from.variables or {}, self.values),
        )


def checked_changes(state: ApiState, declared: list[Variable], changes: dict[str, Any]) -> None:
    """422 unless ``changes`` fit ``max_variables_bytes`` and match the declarations."""
    size = len(json.dumps(changes, separators=(",", ":")).encode("utf-8"))
    limit = state.settings.max_variables_bytes
    if size > limit:
        raise HTTPException(
            status_code=422,
            detail=f"variables: {size} bytes of JSON, more than the limit of {limit} "
            "(setting max_variables_bytes)",
        )
    try:
        check_rule_values(declared, changes, "variables")
    except VariableError as error:
        raise HTTPException(status_code=422, detail=one_line(str(error))) from None


def declared_or_409(state: ApiState, instrument: str) -> list[Variable]:
    try:
        return declared_variables(state, instrument)
    except PluginUnavailable as error:
        raise HTTPException(status_code=409, detail=str(error)) from None


def plan_rerun(
    state: ApiState,
    declared: list[Variable],
    rules: list[Rule],
    versions: list[ReductionRun],
    base: Base,
    changes: dict[str, Any],
) -> RerunPlan:
    """The new version of the run whose ``versions`` (ascending) are given, or why not."""
    plan = RerunPlan(run_number=versions[0].run_number, versions=versions)
    if base.kind == "version":
        plan.derived_from = next((v for v in versions if v.run_version == base.version), None)
        if plan.derived_from is None:
            plan.refused = f"the run has no version {base.version} (base)"
            return plan
    else:
        plan.derived_from = plan.latest
    stored = None
    if base.kind != "current":  # the base's values, less those the plugin no longer declares
        source, names = plan.derived_from, {variable.name for variable in declared}
        values = {k: v for k, v in (source.variables or {}).items() if k in names}
        stored = BaseVersion(source.run_version, values, source.variable_sources or {})
    try:
        resolution = resolve_for_run(
            state,
            plan.latest.instrument,
            rules,
            run_number=plan.run_number,
            experiment_ref=versions[0].experiment_ref,
            base=stored,
            changes=changes,
            declared=declared,
        )
    except VariableError as error:
        plan.refused = one_line(str(error), 500)
        return plan
    plan.values, plan.sources = resolution.values, resolution.sources
    return plan


def new_version(
    plan: RerunPlan, description: str, submitted_by: str, held: str, from_step: str = ""
) -> ReductionRun:
    """The row of the planned version (not yet added to a session); ``held`` is why it waits
    (:func:`rest_api.submission.hold_reason`), or ""; ``from_step`` where a pipeline starts."""
    first = plan.versions[0]
    assert plan.derived_from is not None
    return _new_run(
        {
            "instrument": first.instrument,
            "run_number": first.run_number,
            "run_version": plan.new_version,
            "status": RunStatus.QUEUED.value,
            "message": held,
            "experiment_ref": first.experiment_ref,
            "title": first.title,
            "data_path": first.data_path,
            "variables": plan.values,
            "variable_sources": plan.sources,
            "derived_from_version": plan.derived_from.run_version,
            "reason": "rerun",
            "description": description,
            "submitted_by": submitted_by,
            "detected_at": first.detected_at,
            "from_step": from_step,
        }
    )


def _plan_one(
    state: ApiState, session: Session, instrument: str, run_number: int, request: RerunRequest
) -> RerunPlan:
    declared = declared_or_409(state, instrument)
    versions = find_versions(session, instrument, run_number)
    if not versions:
        raise HTTPException(status_code=404, detail=f"run {instrument} {run_number} not found")
    rules = [as_rule(row) for row in active_rules(session, instrument)]
    plan = plan_rerun(state, declared, rules, versions, Base.parse(request.base), request.variables)
    if plan.refused:
        raise HTTPException(status_code=422, detail=plan.refused)
    return plan


def checked_from_step(state: ApiState, instrument: str, from_step: str) -> None:
    """422 unless ``from_step`` is empty or a step of the instrument's pipeline."""
    if not from_step:
        return
    config = state.instrument_config(instrument)
    if not config.pipeline:
        raise HTTPException(
            status_code=422, detail=f"from_step: instrument {instrument} runs no pipeline"
        )
    try:
        pipeline = load_pipeline(state.settings.resolved_pipelines_dir, config.pipeline)
    except PipelineError as error:
        raise HTTPException(status_code=409, detail=one_line(str(error), 500)) from None
    if from_step not in pipeline.steps:
        steps = ", ".join(pipeline.steps)
        raise HTTPException(
            status_code=422,
            detail=f"from_step: {from_step!r} is not a step of pipeline {pipeline.name} "
            f"(steps: {steps})",
        )


def preview_rerun(
    state: ApiState, instrument: str, run_number: int, request: RerunRequest
) -> RerunPlanItem:
    """What :func:`record_rerun` would make, recording nothing."""
    state.instrument_config(instrument)
    checked_changes(state, declared_or_409(state, instrument), request.variables)
    with state.database.read_session() as session:
        return _plan_one(state, session, instrument, run_number, request).item()


def record_rerun(
    state: ApiState,
    instrument: str,
    run_number: int,
    request: RerunRequest,
    actor: Actor,
) -> ReductionRun:
    """Record a new version of an existing run: the request's changes over its base.

    The new version is recorded in the audit trail in the same transaction.
    """
    state.instrument_config(instrument)
    checked_changes(state, declared_or_409(state, instrument), request.variables)
    checked_from_step(state, instrument, request.from_step)
    for _ in range(RECORD_ATTEMPTS):
        try:
            with state.database.session() as session:
                paused = ensure_instrument(session, instrument)
                held = hold_reason(state, session, instrument, paused)
                plan = _plan_one(state, session, instrument, run_number, request)
                run = new_version(plan, request.reason, actor.name, held, request.from_step)
                add_with_message(session, run)
                details = {"variables": request.variables, "reason": request.reason}
                audit_run(session, actor, "run.rerun", run, base=request.base, **details)
        except (IntegrityError, OperationalError) as error:
            if not lost_race(error):
                raise
            continue  # another re-run took this version number; take the next
        announce(state, run)
        return run
    raise HTTPException(status_code=409, detail="too many concurrent re-runs of this run; retry")
