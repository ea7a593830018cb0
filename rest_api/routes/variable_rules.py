"""Variable rules: the values new runs of an instrument get, per experiment or from a run on."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Response
from sqlalchemy.orm import Session

from autoreduce.audit import record_event
from autoreduce.db.models import VariableRule, utcnow
from autoreduce.state_machine import one_line
from autoreduce.variable_rules import check_rule_values
from autoreduce.variables import VariableError
from rest_api.auth import Caller, ReaderDep, require_role
from rest_api.dependencies import ApiState, SessionDep, StateDep
from rest_api.problems import problems
from rest_api.rerun_schemas import VariableRuleItem, VariableRuleRequest
from rest_api.reruns import declared_or_409
from rest_api.resolution import active_rules

router = APIRouter(prefix="/api/v1/instruments/{name}/variable-rules", tags=["variable rules"])
logger = logging.getLogger("autoreduce.api")

InstrumentName = Annotated[str, Path(max_length=64, description="The instrument's name.")]
RuleId = Annotated[int, Path(ge=1, le=2**31 - 1, description="The rule's id.")]
Writer = Annotated[Caller, Depends(require_role("scientist", "admin"))]


def _item(rule: VariableRule) -> VariableRuleItem:
    return VariableRuleItem(
        id=rule.id,
        instrument=rule.instrument,
        experiment_ref=rule.experiment_ref,
        from_run=rule.from_run,
        variables=rule.values,
        reason=rule.description,
        created_by=rule.created_by,
        created_at=rule.created_at,
    )


def _readable(state: ApiState, caller: Caller, name: str) -> None:
    """404 for an instrument that is not configured or that ``caller`` may not read."""
    if not caller.may_read(name):
        raise HTTPException(status_code=404, detail=f"instrument {name!r} not found")
    state.instrument_config(name)


@router.get("", response_model=list[VariableRuleItem], responses=problems(401, 404))
def list_rules(
    name: InstrumentName, state: StateDep, session: SessionDep, caller: ReaderDep
) -> list[VariableRuleItem]:
    """The instrument's rules in force, oldest first, each with who set it and when."""
    _readable(state, caller, name)
    return [_item(rule) for rule in active_rules(session, name)]


@router.post(
    "",
    status_code=201,
    response_model=VariableRuleItem,
    responses=problems(401, 403, 404, 409, 413),
)
def create_rule(
    name: InstrumentName, rule: VariableRuleRequest, state: StateDep, caller: Writer
) -> VariableRuleItem:
    """Set values for the runs of one experiment (`experiment_ref`) or from a run on
    (`from_run`); each value is checked against the plugin's declaration (422 naming it)."""
    return record_variable_rule(state, name, rule, caller)


def record_variable_rule(
    state: ApiState, name: str, rule: VariableRuleRequest, caller: Caller
) -> VariableRuleItem:
    """Record ``rule`` for instrument ``name`` on behalf of ``caller`` (scientist of the
    instrument or admin), audited; 403 for another instrument, 422 for a value that does not fit."""
    state.instrument_config(name)
    caller.check_instrument(name, must_list=caller.role == "scientist")
    scope = (
        f"experiment {rule.experiment_ref} rule"
        if rule.experiment_ref is not None
        else f"from run {rule.from_run} rule"
    )
    try:
        check_rule_values(declared_or_409(state, name), rule.variables, scope)
    except VariableError as error:
        raise HTTPException(status_code=422, detail=one_line(str(error))) from None
    with state.database.session() as session:
        row = VariableRule(
            instrument=name,
            experiment_ref=rule.experiment_ref,
            from_run=rule.from_run,
            values=rule.variables,
            description=rule.reason,
            created_by=caller.name,
            created_at=utcnow(),
        )
        session.add(row)
        session.flush()
        item = _item(row)
        record_event(
            session,
            caller.actor,
            "rule.create",
            f"{name} rule #{row.id} ({scope})",
            instrument=name,
            details={"variables": rule.variables, "reason": rule.reason},
        )
    logger.info("variable rule #%d (%s) set on %s by %s", item.id, scope, name, caller.name)
    return item


def _active(session: Session, name: str, rule_id: int) -> VariableRule:
    row = session.get(VariableRule, rule_id)
    if row is None or row.instrument != name or row.deleted_at is not None:
        raise HTTPException(status_code=404, detail=f"{name} has no rule #{rule_id}")
    return row


@router.delete(
    "/{rule_id}", status_code=204, response_class=Response, responses=problems(401, 403, 404)
)
def delete_rule(name: InstrumentName, rule_id: RuleId, state: StateDep, caller: Writer) -> Response:
    """Stop a rule applying to new runs (runs it gave values keep naming it as their source)."""
    state.instrument_config(name)
    caller.check_instrument(name, must_list=caller.role == "scientist")
    with state.database.session() as session:
        row = _active(session, name, rule_id)
        row.deleted_at, row.deleted_by = utcnow(), caller.name
        record_event(
            session, caller.actor, "rule.delete", f"{name} rule #{rule_id}", instrument=name
        )
    logger.info("variable rule #%d deleted from %s by %s", rule_id, name, caller.name)
    return Response(status_code=204)
