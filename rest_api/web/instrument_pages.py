"""The instrument page ``/instruments/{name}``: its runs (paged, filtered, live), pause and
resume (admin), and its variable rules ("configure new runs") with a form to add one."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import ValidationError
from sqlalchemy.orm import Session

from autoreduce.db.models import RunStatus
from rest_api.auth import Caller
from rest_api.dependencies import ApiState, SessionDep, StateDep
from rest_api.rerun_schemas import VariableRuleRequest
from rest_api.resolution import active_rules
from rest_api.routes.instruments import declarations, instrument_items, set_paused
from rest_api.routes.variable_rules import record_variable_rule
from rest_api.run_listing import instrument_runs
from rest_api.web.render import render
from rest_api.web.session import PageCaller, verify_csrf
from rest_api.web.variable_form import form_fields, parse_values, with_entered
from rest_api.web.writes import FormDep, form_text, require_page_role

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 25
REFRESH_INTERVAL_MS = 2000
InstrumentName = Annotated[str, Path(max_length=64)]
StatusFilter = Annotated[str, Query(max_length=16, description="Latest version's state.")]
ExperimentFilter = Annotated[str, Query(max_length=64)]
Offset = Annotated[int, Query(ge=0, le=10**9)]
CSRF = [Depends(verify_csrf)]


def readable_instrument(state: ApiState, caller: Caller, name: str) -> None:
    """404 (as if it did not exist) unless ``name`` is configured and ``caller`` may read it."""
    if name not in state.settings.instruments or not caller.may_read(name):
        raise HTTPException(status_code=404, detail=f"instrument {name!r} not found")


def _status_or_422(status: str) -> str | None:
    if not status:
        return None
    if status not in {state.value for state in RunStatus}:
        known = ", ".join(state.value for state in RunStatus)
        raise HTTPException(status_code=422, detail=f"status must be one of {known}")
    return status


def _runs_context(
    session: Session, name: str, status: str, experiment: str, offset: int
) -> dict[str, Any]:
    runs = instrument_runs(
        session,
        name,
        status=_status_or_422(status),
        experiment_ref=experiment.strip() or None,
        limit=PAGE_SIZE,
        offset=offset,
    )
    query = {"status": status, "experiment": experiment}
    return {"name": name, "runs": runs, "filters": query, "refresh_ms": REFRESH_INTERVAL_MS}


def _page(
    request: Request,
    state: ApiState,
    session: Session,
    name: str,
    *,
    status: str = "",
    experiment: str = "",
    offset: int = 0,
    rule_form: dict[str, Any] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    item = instrument_items(state, session, [name])[0]
    declared, error = declarations(state, name)
    rule_form = rule_form or {"fields": form_fields(declared, optional=True), "errors": {}}
    return render(
        request,
        "instrument.html",
        status_code=status_code,
        title=f"{name} — autoreduce",
        nav="instruments",
        instrument=item,
        plugin_error=error,
        rules=active_rules(session, name),
        rule_form=rule_form,
        statuses=[state.value for state in RunStatus],
        **_runs_context(session, name, status, experiment, offset),
    )


@router.get("/instruments/{name}", response_class=HTMLResponse)
def instrument_page(
    request: Request,
    name: InstrumentName,
    state: StateDep,
    session: SessionDep,
    caller: PageCaller,
    status: StatusFilter = "",
    experiment: ExperimentFilter = "",
    offset: Offset = 0,
) -> HTMLResponse:
    """The instrument's runs, newest first, its state and its rules."""
    readable_instrument(state, caller, name)
    return _page(request, state, session, name, status=status, experiment=experiment, offset=offset)


@router.get("/instruments/{name}/runs-fragment", response_class=HTMLResponse)
def runs_fragment(
    request: Request,
    name: InstrumentName,
    state: StateDep,
    session: SessionDep,
    caller: PageCaller,
    status: StatusFilter = "",
    experiment: ExperimentFilter = "",
    offset: Offset = 0,
) -> HTMLResponse:
    """The run list alone, for the page's periodic refresh."""
    readable_instrument(state, caller, name)
    return render(
        request, "instrument_runs.html", **_runs_context(session, name, status, experiment, offset)
    )


def _pause_or_resume(
    request: Request, state: ApiState, caller: Caller, name: str, paused: bool
) -> RedirectResponse:
    readable_instrument(state, caller, name)
    require_page_role(request, caller, "admin")
    caller.check_instrument(name)
    set_paused(state, name, paused, caller.actor)
    return RedirectResponse(f"/instruments/{name}", status_code=303)


@router.post("/instruments/{name}/pause", dependencies=CSRF)
def pause(
    request: Request, name: InstrumentName, state: StateDep, caller: PageCaller
) -> RedirectResponse:
    """Pause the instrument (admin): its runs are recorded and held."""
    return _pause_or_resume(request, state, caller, name, paused=True)


@router.post("/instruments/{name}/resume", dependencies=CSRF)
def resume(
    request: Request, name: InstrumentName, state: StateDep, caller: PageCaller
) -> RedirectResponse:
    """Resume the instrument (admin): held runs flow on."""
    return _pause_or_resume(request, state, caller, name, paused=False)


def _rule_request(form: FormDep, values: dict[str, Any]) -> tuple[Any, dict[str, str]]:
    """The rule the form describes, or an error per field."""
    scope = form_text(form, "scope")
    errors: dict[str, str] = {}
    body: dict[str, Any] = {"variables": values, "reason": form_text(form, "reason")}
    if scope == "experiment":
        body["experiment_ref"] = form_text(form, "experiment_ref").strip()
        if not body["experiment_ref"]:
            errors["experiment_ref"] = "name the experiment (its RB number)"
    else:
        text = form_text(form, "from_run").strip()
        if not text.isdigit():
            errors["from_run"] = "a run number (digits)"
        else:
            body["from_run"] = int(text)
    if not values:
        errors["variables"] = "set at least one variable"
    if errors:
        return None, errors
    try:
        return VariableRuleRequest.model_validate(body), {}
    except ValidationError as error:
        for problem in error.errors():
            field = str(problem["loc"][0]) if problem["loc"] else "variables"
            errors[field] = problem["msg"].removeprefix("Value error, ")
        return None, errors


@router.post("/instruments/{name}/rules", dependencies=CSRF, response_model=None)
def add_rule(
    request: Request,
    name: InstrumentName,
    form: FormDep,
    state: StateDep,
    caller: PageCaller,
) -> HTMLResponse | RedirectResponse:
    """Add a variable rule (scientist of the instrument, admin); errors shown at the fields."""
    readable_instrument(state, caller, name)
    require_page_role(request, caller, "scientist", "admin")
    caller.check_instrument(name, must_list=caller.role == "scientist")
    declared, _error = declarations(state, name)
    values, errors = parse_values(declared, form, optional=True)
    rule, rule_errors = _rule_request(form, values) if not errors else (None, {})
    errors |= rule_errors
    if rule is not None:
        try:
            record_variable_rule(state, name, rule, caller)
        except HTTPException as refused:
            if refused.status_code != 422:
                raise
            errors["variables"] = str(refused.detail)
        else:
            return RedirectResponse(f"/instruments/{name}#rules", status_code=303)
    fields = form_fields(declared, optional=True)
    with_entered(fields, form, errors)
    entered = {
        key: form_text(form, key) for key in ("scope", "experiment_ref", "from_run", "reason")
    }
    with state.database.read_session() as session:
        return _page(
            request,
            state,
            session,
            name,
            rule_form={"fields": fields, "errors": errors, "entered": entered},
            status_code=422,
        )
