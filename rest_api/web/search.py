"""The search page ``/search?q=``: the API's search grammar, results as a table of run versions.

A malformed term is shown beside the box (status 400, the page still renders); the grammar is
explained beside the box. Results come from :func:`rest_api.routes.runs.list_runs`, so the page
and ``GET /api/v1/runs?q=`` always agree.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse

from autoreduce.search import SearchSyntaxError, parse_search
from rest_api.dependencies import SessionDep, StateDep
from rest_api.routes.runs import list_runs
from rest_api.schemas import MAX_RUN_NUMBER, RunPage
from rest_api.web.render import render
from rest_api.web.session import PageCaller

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 50
EXAMPLES = (
    ("experiment:2610001", "every version of one experiment"),
    ("instrument:GEM status:error", "one instrument's errors"),
    ("run:44700..44800", "a range of run numbers (either end optional)"),
    ("date:2026-11-01..2026-11-20", "queued on those days (UTC, inclusive)"),
    ('title:"vanadium rod"', "a phrase in the title"),
    ("var.focus_banks:5", "a variable's value (a number, true/false or text)"),
    ("by:ada", "versions one person submitted"),
    ("/^cal.*rod$/", "a regular expression on the title"),
)


@router.get("/search", response_class=HTMLResponse)
def search(
    request: Request,
    state: StateDep,
    session: SessionDep,
    caller: PageCaller,
    q: Annotated[str, Query(max_length=200)] = "",
    offset: Annotated[int, Query(ge=0, le=MAX_RUN_NUMBER)] = 0,
) -> HTMLResponse:
    """The search box, the grammar beside it, and the matching run versions, newest first."""
    q = q.strip()
    error = ""
    results: RunPage | None = None
    if q:
        try:
            parse_search(q)
            results = list_runs(session, state, caller, q=q, limit=PAGE_SIZE, offset=offset)
        except SearchSyntaxError as bad:
            error = f"{bad} — the term at fault: {bad.token}"
        except HTTPException as refused:  # e.g. the database's regex engine refused a pattern
            if refused.status_code >= 500:
                raise
            error = str(refused.detail).removeprefix("q: ")
    return render(
        request,
        "search.html",
        status_code=400 if error else 200,
        title=f"Search{': ' + q if q else ''} — autoreduce",
        nav="search",
        q=q,
        error=error,
        results=results,
        examples=EXAMPLES,
    )
