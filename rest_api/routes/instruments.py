"""Instruments: what is configured, how its runs stand, pause and resume."""

from __future__ import annotations

import json
import logging
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from autoreduce.audit import Actor, record_event
from autoreduce.db.models import (
    Instrument,
    OutboxMessage,
    ReductionRun,
    RunCount,
    RunStatus,
    utcnow,
)
from autoreduce.state_machine import HELD_PREFIX, held_message
from rest_api.auth import Caller, ReaderDep, require_role
from rest_api.dashboard import latest_of_each
from rest_api.dependencies import ApiState, SessionDep, StateDep
from rest_api.problems import problems
from rest_api.resolution import PluginUnavailable, declared_variables
from rest_api.schemas import InstrumentItem, InstrumentPatch, VariableDeclaration

router = APIRouter(prefix="/api/v1/instruments", tags=["instruments"])
logger = logging.getLogger("autoreduce.api")


def declarations(state: ApiState, name: str) -> tuple[list[VariableDeclaration], str | None]:
    try:
        declared = declared_variables(state, name)
    except PluginUnavailable as error:
        return [], str(error)
    overrides = state.settings.instruments[name].variables
    return [
        VariableDeclaration(
            name=variable.name,
            type=variable.type,
            default=overrides.get(variable.name, variable.default),
            default_source="instrument" if variable.name in overrides else "plugin",
            plugin_default=variable.default,
            help=variable.help,
            advanced=variable.advanced,
            choices=None if variable.choices is None else list(variable.choices),
            minimum=variable.minimum,
            maximum=variable.maximum,
        )
        for variable in declared
    ], None


def instrument_items(
    state: ApiState, session: Session, names: list[str], latest: dict[str, int] | None = None
) -> list[InstrumentItem]:
    """The views of ``names`` (configured instruments): counts kept by the database
    (``run_counts``), the latest run number from the end of each instrument's index (or
    ``latest``, when the caller has read them already)."""
    counts: dict[str, dict[str, int]] = {name: {s.value: 0 for s in RunStatus} for name in names}
    for instrument, status, count in session.execute(
        select(RunCount.instrument, RunCount.status, RunCount.runs).where(
            RunCount.instrument.in_(names)
        )
    ):
        counts[instrument][status] = count
    if latest is None:
        latest = latest_of_each(session, names, ReductionRun.run_number)
    paused = set(
        session.scalars(
            select(Instrument.name).where(Instrument.name.in_(names), Instrument.is_paused)
        )
    )
    items = []
    for name in names:
        variables, error = declarations(state, name)
        items.append(
            InstrumentItem(
                name=name,
                plugin=state.settings.instruments[name].plugin,
                pipeline=state.settings.instruments[name].pipeline,
                paused=name in paused,
                run_counts=counts[name],
                latest_run_number=latest.get(name),
                variables=variables,
                error=error,
            )
        )
    return items


def _hold_or_release(state: ApiState, session: Session, name: str, paused: bool) -> None:
    """Say in each waiting run's ``message`` that it is held (on pause) or no longer (resume;
    still held, if its plugin is not approved).

    The runs held by a pause are those whose outbox message the relay has not sent yet.
    """
    if not paused:
        session.execute(
            update(ReductionRun)
            .where(
                ReductionRun.instrument == name,
                ReductionRun.status == RunStatus.QUEUED.value,
                ReductionRun.message.startswith(HELD_PREFIX, autoescape=True),
            )
            .values(message=state.plugin_gate.held_message(session, name))
            .execution_options(synchronize_session=False)
        )
        return
    bodies = session.scalars(
        select(OutboxMessage.body).where(
            OutboxMessage.instrument == name, OutboxMessage.sent_at.is_(None)
        )
    )
    run_ids = [json.loads(body).get("run_id") for body in bodies]
    if run_ids:
        session.execute(
            update(ReductionRun)
            .where(
                ReductionRun.id.in_(run_ids),
                ReductionRun.status == RunStatus.QUEUED.value,
                ReductionRun.message == "",
            )
            .values(message=held_message(name))
            .execution_options(synchronize_session=False)
        )


def set_paused(state: ApiState, name: str, paused: bool, actor: Actor) -> None:
    """Pause or resume ``name`` on behalf of ``actor`` (audited); held runs flow on resume."""
    for _ in range(2):  # the row may be created concurrently by a run submission
        try:
            with state.database.session() as session:
                row = session.get(Instrument, name)
                if row is None:
                    session.add(Instrument(name=name, is_paused=paused, created_at=utcnow()))
                else:
                    row.is_paused = paused
                _hold_or_release(state, session, name, paused)
                action = "instrument.pause" if paused else "instrument.resume"
                record_event(session, actor, action, f"instrument {name}", instrument=name)
        except IntegrityError:
            continue
        logger.info("instrument %s %s by %s", name, "paused" if paused else "resumed", actor.name)
        if not paused:
            state.relay.wake()
        return
    raise HTTPException(status_code=409, detail=f"instrument {name!r} changed concurrently; retry")


@router.get("", response_model=list[InstrumentItem], responses=problems(401))
def list_instruments(
    state: StateDep, session: SessionDep, caller: ReaderDep
) -> list[InstrumentItem]:
    """The configured instruments the caller may read: plugin, variables with the default a
    new run gets (and where it comes from), run counts per status, paused or not."""
    names = [name for name in sorted(state.settings.instruments) if caller.may_read(name)]
    return instrument_items(state, session, names)


@router.patch("/{name}", response_model=InstrumentItem, responses=problems(401, 403, 404, 409, 413))
def patch_instrument(
    name: Annotated[str, Path(max_length=64)],
    patch: InstrumentPatch,
    state: StateDep,
    caller: Annotated[Caller, Depends(require_role("admin"))],
) -> InstrumentItem:
    """Pause (runs are recorded and held, and say so) or resume (held runs flow on)."""
    state.instrument_config(name)
    caller.check_instrument(name)
    set_paused(state, name, patch.paused, caller.actor)
    with state.database.read_session() as session:
        return instrument_items(state, session, [name])[0]
