"""The admin page ``/admin`` (admins only; anyone else gets a 403 page).

It is a list of sections, each a template under ``templates/admin/`` with its data gathered by
one function in :data:`SECTIONS`: API tokens (list, create — the secret shown once, on the page
that answers the creation, never again — and revoke, through :mod:`autoreduce.tokens`) and the
audit trail (paged and filtered, through :func:`rest_api.routes.audit.list_audit_events`).
Further sections (OAuth clients, plugin approval, the dead-letter queue) add a function and a
template to :data:`SECTIONS`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from autoreduce.tokens import ROLES, create_token, list_tokens, revoke_token
from rest_api.auth import ANONYMOUS, Caller
from rest_api.dependencies import ApiState, SessionDep, StateDep
from rest_api.routes.audit import list_audit_events
from rest_api.schemas import MAX_RUN_NUMBER
from rest_api.web.flash import flash, pop_flash
from rest_api.web.render import render
from rest_api.web.session import PageCaller, SignInRequired, verify_csrf

router = APIRouter(include_in_schema=False)

AUDIT_PAGE_SIZE = 50


def admin_caller(request: Request, caller: PageCaller) -> Caller:
    """The signed-in admin; the sign-in page for nobody; 403 for anyone else."""
    if caller == ANONYMOUS:
        raise SignInRequired(request.url.path)
    if caller.role != "admin":
        raise HTTPException(
            status_code=403,
            detail=f"{caller.name} is a {caller.role}: the admin pages need an admin",
        )
    return caller


AdminCaller = Annotated[Caller, Depends(admin_caller)]


@dataclass(frozen=True)
class AuditFilter:
    """The audit section's filters, as typed in its form ("" is no filter)."""

    actor: str = ""
    action: str = ""
    instrument: str = ""
    before_id: int | None = None

    def query(self, before_id: int | None) -> str:
        """The query string of this filter at another page."""
        fields: dict[str, str | int] = dict(self._filled())
        if before_id is not None:
            fields["before_id"] = before_id
        return urlencode(fields)

    def _filled(self) -> dict[str, str]:
        fields = {"actor": self.actor, "action": self.action, "instrument": self.instrument}
        return {name: value for name, value in fields.items() if value}


def tokens_section(state: ApiState, session: Session, caller: Caller, audit: AuditFilter) -> Any:
    return {
        "tokens": list_tokens(state.database),
        "roles": ROLES,
        "instruments": sorted(state.settings.instruments),
    }


def audit_section(state: ApiState, session: Session, caller: Caller, audit: AuditFilter) -> Any:
    page = list_audit_events(
        session,
        caller,
        actor=audit.actor or None,
        action=audit.action or None,
        instrument=audit.instrument or None,
        limit=AUDIT_PAGE_SIZE,
        before_id=audit.before_id,
    )
    return {"page": page, "filter": audit}


Section = Callable[[ApiState, Session, Caller, AuditFilter], Any]
SECTIONS: tuple[tuple[str, str, Section], ...] = (
    ("tokens", "API tokens", tokens_section),
    ("audit", "Audit trail", audit_section),
)
"""Each section of ``/admin``: its id (and template ``admin/<id>.html``), heading, data."""


@router.get("/admin", response_class=HTMLResponse)
def admin(
    request: Request,
    state: StateDep,
    session: SessionDep,
    caller: AdminCaller,
    actor: Annotated[str, Query(max_length=100)] = "",
    action: Annotated[str, Query(max_length=40)] = "",
    instrument: Annotated[str, Query(max_length=32)] = "",
    before_id: Annotated[int | None, Query(ge=1, le=MAX_RUN_NUMBER)] = None,
) -> HTMLResponse:
    """Every admin section, in order."""
    audit = AuditFilter(actor.strip(), action.strip(), instrument.strip(), before_id)
    sections = [
        {"id": key, "heading": heading, **gather(state, session, caller, audit)}
        for key, heading, gather in SECTIONS
    ]
    return render(
        request,
        "admin/page.html",
        title="Admin — autoreduce",
        nav="admin",
        sections=sections,
        flash=pop_flash(request),
    )


@router.post("/admin/tokens", response_class=HTMLResponse, dependencies=[Depends(verify_csrf)])
def create_api_token(
    request: Request,
    state: StateDep,
    caller: AdminCaller,
    name: Annotated[str, Form(max_length=100)],
    role: Annotated[str, Form(max_length=16)],
    instruments: Annotated[list[str], Form(max_length=1000)] = [],  # noqa: B006
) -> Response:
    """Create a token; the answer is the only page that ever shows its secret."""
    unknown = [name for name in instruments if name not in state.settings.instruments]
    try:
        if unknown:
            raise ValueError(f"instrument {unknown[0]!r} is not configured")
        secret = create_token(state.database, name, role, instruments, actor=caller.actor)
    except ValueError as error:
        flash(request, f"No token was created: {error}", "error")
        return RedirectResponse("/admin#tokens", status_code=303)
    return render(
        request,
        "admin/token_created.html",
        title=f"Token {name.strip()} created — autoreduce",
        nav="admin",
        name=name.strip(),
        role=role,
        instruments=instruments,
        secret=secret,
    )


@router.post("/admin/tokens/revoke", dependencies=[Depends(verify_csrf)])
def revoke_api_token(
    request: Request,
    state: StateDep,
    caller: AdminCaller,
    name: Annotated[str, Form(min_length=1, max_length=100)],
) -> RedirectResponse:
    """Revoke a live token by its name."""
    if revoke_token(state.database, name, actor=caller.actor):
        flash(request, f"Token {name} is revoked.")
    else:
        flash(request, f"There is no live token named {name}.", "error")
    return RedirectResponse("/admin#tokens", status_code=303)
