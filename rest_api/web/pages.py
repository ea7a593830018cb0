"""The overview page ``/``: a card per instrument, the processors, the queue, the last errors.

The page's body is also served alone at ``/overview-fragment``, which the page re-fetches every
few seconds (``data-refresh``) so it stays current without a reload.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from sqlalchemy.orm import Session

from rest_api.dashboard import instrument_glances, last_errors, queue_depth, runs_by_id
from rest_api.dependencies import ApiState, SessionDep, StateDep
from rest_api.routes.instruments import instrument_items
from rest_api.routes.system import processor_items
from rest_api.web.render import render
from rest_api.web.session import PageCaller

router = APIRouter(include_in_schema=False)

REFRESH_INTERVAL_MS = 3000


def _overview(state: ApiState, session: Session, names: list[str]) -> dict[str, Any]:
    glances = instrument_glances(session, names)
    latest = {g.name: g.latest_run_number for g in glances if g.latest_run_number is not None}
    items = {item.name: item for item in instrument_items(state, session, names, latest)}
    processors = processor_items(state, session)
    reducing = runs_by_id(
        session, [p.current_run_id for p in processors if p.current_run_id is not None]
    )
    return {
        "cards": [(glance, items[glance.name]) for glance in glances],
        "processors": processors,
        "reducing": {run_id: run for run_id, run in reducing.items() if run.instrument in names},
        "queue": queue_depth(session, names),
        "errors": last_errors(session, names),
        "refresh_ms": REFRESH_INTERVAL_MS,
    }


def _readable(state: ApiState, caller: Any) -> list[str]:
    return [name for name in sorted(state.settings.instruments) if caller.may_read(name)]


@router.get("/", response_class=HTMLResponse)
def overview(
    request: Request, state: StateDep, session: SessionDep, caller: PageCaller
) -> HTMLResponse:
    """Each instrument the caller may read at a glance, and the service's processors and queue."""
    return render(
        request,
        "overview.html",
        title="Overview — autoreduce",
        nav="overview",
        **_overview(state, session, _readable(state, caller)),
    )


@router.get("/overview-fragment", response_class=HTMLResponse)
def overview_fragment(
    request: Request, state: StateDep, session: SessionDep, caller: PageCaller
) -> HTMLResponse:
    """The overview's body alone, for the page's periodic refresh."""
    return render(
        request, "overview_body.html", **_overview(state, session, _readable(state, caller))
    )
