"""The overview page ``/``: one card per instrument."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from rest_api.dependencies import SessionDep, StateDep
from rest_api.routes.instruments import instrument_items
from rest_api.web.render import render
from rest_api.web.session import PageCaller

router = APIRouter(include_in_schema=False)


@router.get("/", response_class=HTMLResponse)
def overview(
    request: Request, state: StateDep, session: SessionDep, caller: PageCaller
) -> HTMLResponse:
    """Each instrument the caller may read: latest run, runs by state, paused or not."""
    names = [name for name in sorted(state.settings.instruments) if caller.may_read(name)]
    return render(
        request,
        "overview.html",
        title="Overview — autoreduce",
        nav="overview",
        instruments=instrument_items(state, session, names),
    )
