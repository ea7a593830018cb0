"""The admin page ``/admin`` (admins only; anyone else gets a 403 page).

It is a list of sections, each a template under ``templates/admin/`` with its data gathered by
one function in :data:`SECTIONS`: API tokens (list, create — the secret shown once, on the page
that answers the creation, never again — and revoke, through :mod:`autoreduce.tokens`) and the
audit trail (paged and filtered, through :func:`rest_api.routes.audit.list_audit_events`),
OAuth2 clients (like tokens, through :mod:`autoreduce.oauth_clients`), plugin approval (through
:func:`rest_api.routes.plugins.decide_plugin`, as the API approves) and the queue: its status
and the dead letters (show, replay, purge, through :mod:`rest_api.routes.queue`). Every write is
a form (POST + CSRF, then a 303) calling the same functions the API and the CLI call, so each
records the same audit event.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Form, HTTPException, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from autoreduce.dead_letters import find_dead_letter, list_dead_letters
from autoreduce.oauth_clients import create_client, list_clients, revoke_client
from autoreduce.plugin_approvals import ApprovalState
from autoreduce.queue_status import queue_status
from autoreduce.tokens import ROLES, create_token, list_tokens, revoke_token
from rest_api.auth import ANONYMOUS, Caller
from rest_api.dependencies import ApiState, SessionDep, StateDep
from rest_api.routes.audit import list_audit_events
from rest_api.routes.plugins import decide_plugin, plugin_items
from rest_api.routes.queue import dead_letter_item, purge_letter, replay_letter
from rest_api.schemas import MAX_RUN_NUMBER
from rest_api.web.flash import flash, pop_flash
from rest_api.web.render import render
from rest_api.web.session import PageCaller, SignInRequired, verify_csrf

router = APIRouter(include_in_schema=False)

AUDIT_PAGE_SIZE = 50
DEAD_LETTERS_SHOWN = 100


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


def clients_section(state: ApiState, session: Session, caller: Caller, audit: AuditFilter) -> Any:
    return {
        "clients": list_clients(state.database),
        "roles": ROLES,
        "instruments": sorted(state.settings.instruments),
    }


def plugins_section(state: ApiState, session: Session, caller: Caller, audit: AuditFilter) -> Any:
    return {"plugins": plugin_items(state, session)}


def queue_section(state: ApiState, session: Session, caller: Caller, audit: AuditFilter) -> Any:
    try:
        letters = list_dead_letters(state.transport, DEAD_LETTERS_SHOWN)
        unreadable = ""
    except Exception as error:  # an unreachable broker is a fact to show, not a failure
        letters, unreadable = [], f"The dead letters cannot be read now: {error}"
    return {
        "status": queue_status(state.database, state.transport, state.settings),
        "letters": [dead_letter_item(letter) for letter in letters],
        "shown": DEAD_LETTERS_SHOWN,
        "unreadable": unreadable,
    }


Section = Callable[[ApiState, Session, Caller, AuditFilter], Any]
SECTIONS: tuple[tuple[str, str, Section], ...] = (
    ("tokens", "API tokens", tokens_section),
    ("clients", "OAuth clients", clients_section),
    ("plugins", "Plugins", plugins_section),
    ("queue", "Queue and dead letters", queue_section),
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
    return _created(
        request,
        state,
        "token",
        lambda: create_token(state.database, name, role, instruments, actor=caller.actor),
        name=name,
        role=role,
        instruments=instruments,
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


def _check_configured(state: ApiState, instruments: list[str]) -> None:
    unknown = [name for name in instruments if name not in state.settings.instruments]
    if unknown:
        raise ValueError(f"instrument {unknown[0]!r} is not configured")


def _created(
    request: Request,
    state: ApiState,
    kind: str,
    create: Callable[[], object],
    *,
    name: str,
    role: str,
    instruments: list[str],
) -> Response:
    """Create a credential of ``kind`` (token or client) and show it once, or say why not.

    The page ``admin/<kind>_created.html`` gets what ``create`` returned as ``created``."""
    try:
        _check_configured(state, instruments)
        created = create()
    except ValueError as error:
        flash(request, f"No {kind} was created: {error}", "error")
        return RedirectResponse(f"/admin#{kind}s", status_code=303)
    return render(
        request,
        f"admin/{kind}_created.html",
        title=f"{kind.capitalize()} {name.strip()} created — autoreduce",
        nav="admin",
        name=name.strip(),
        role=role,
        instruments=instruments,
        created=created,
    )


@router.post("/admin/clients", response_class=HTMLResponse, dependencies=[Depends(verify_csrf)])
def create_oauth_client(
    request: Request,
    state: StateDep,
    caller: AdminCaller,
    name: Annotated[str, Form(max_length=100)],
    role: Annotated[str, Form(max_length=16)],
    instruments: Annotated[list[str], Form(max_length=1000)] = [],  # noqa: B006
) -> Response:
    """Create an OAuth2 client; the answer is the only page that ever shows its secret."""
    return _created(
        request,
        state,
        "client",
        lambda: create_client(state.database, name, role, instruments, actor=caller.actor),
        name=name,
        role=role,
        instruments=instruments,
    )


@router.post("/admin/clients/revoke", dependencies=[Depends(verify_csrf)])
def revoke_oauth_client(
    request: Request,
    state: StateDep,
    caller: AdminCaller,
    client_id: Annotated[str, Form(min_length=1, max_length=200)],
) -> RedirectResponse:
    """Revoke a live client by its id: its next token request and its access tokens are refused."""
    if revoke_client(state.database, client_id, actor=caller.actor):
        flash(request, f"Client {client_id} is revoked.")
    else:
        flash(request, f"There is no live client with id {client_id}.", "error")
    return RedirectResponse("/admin#clients", status_code=303)


PluginName = Annotated[str, Path(min_length=1, max_length=100)]
VERDICTS = {"approve": ApprovalState.APPROVED, "revoke": ApprovalState.REVOKED}


@router.post("/admin/plugins/{name}/{verdict}", dependencies=[Depends(verify_csrf)])
def decide_on_plugin(
    request: Request,
    state: StateDep,
    caller: AdminCaller,
    name: PluginName,
    verdict: Literal["approve", "revoke"],
) -> RedirectResponse:
    """Approve (its held runs then go out) or revoke the plugin at the version installed here.

    An unknown plugin is the 404 page; one that needs no verdict is a notice.
    """
    try:
        item = decide_plugin(state, name, VERDICTS[verdict], caller)
    except HTTPException as error:
        if error.status_code != 409:
            raise
        flash(request, f"Nothing was recorded: {error.detail}", "error")
        return RedirectResponse("/admin#plugins", status_code=303)
    flash(request, f"Plugin {item.name} {item.version} is {item.state}.")
    return RedirectResponse("/admin#plugins", status_code=303)


LetterId = Annotated[str, Path(min_length=1, max_length=200)]


def _letter_page(message_id: str) -> str:
    return f"/admin/dead-letters/{quote(message_id, safe='')}"


def rerun_link(run: str) -> str | None:
    """The run page of a dead letter's run (``GEM 44733 v0``), where its re-run form is."""
    parts = run.split(" ")
    if len(parts) != 3 or not parts[1].isdigit():
        return None
    return f"/runs/{quote(parts[0], safe='')}/{parts[1]}#rerun-heading"


@router.get("/admin/dead-letters/{message_id}", response_class=HTMLResponse)
def dead_letter_page(
    request: Request, state: StateDep, caller: AdminCaller, message_id: LetterId
) -> HTMLResponse:
    """One dead letter: why, its headers and body, and its replay and purge buttons."""
    letter = find_dead_letter(state.transport, message_id)
    if letter is None:
        raise HTTPException(status_code=404, detail=f"no dead letter with id {message_id!r}")
    return render(
        request,
        "admin/dead_letter.html",
        title=f"Dead letter {letter.run} — autoreduce",
        nav="admin",
        letter=letter,
        item=dead_letter_item(letter),
        rerun=rerun_link(letter.run),
        flash=pop_flash(request),
    )


@router.post("/admin/dead-letters/{message_id}/replay", dependencies=[Depends(verify_csrf)])
def replay_dead_letter_page(
    request: Request, state: StateDep, caller: AdminCaller, message_id: LetterId
) -> RedirectResponse:
    """Put the letter back on its queue; if its run is already final, say which re-run to make."""
    try:
        letter = replay_letter(state, caller, message_id)
    except HTTPException as error:
        if error.status_code != 409:
            raise
        flash(request, f"Not replayed: {error.detail}", "error")
        return RedirectResponse(_letter_page(message_id), status_code=303)
    flash(request, f"Dead letter {letter.run} is back on {letter.original_queue}.")
    return RedirectResponse("/admin#queue", status_code=303)


@router.post("/admin/dead-letters/{message_id}/purge", dependencies=[Depends(verify_csrf)])
def purge_dead_letter_page(
    request: Request, state: StateDep, caller: AdminCaller, message_id: LetterId
) -> RedirectResponse:
    """Delete the letter for good."""
    letter = purge_letter(state, caller, message_id)
    flash(request, f"Dead letter {letter.run} is purged.")
    return RedirectResponse("/admin#queue", status_code=303)
