"""Plugins and their approval: a plugin runs only at a version an admin approved."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Path
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from autoreduce.plugin_approvals import ApprovalState, PluginStatus, decide, statuses
from autoreduce.plugin_manager import PluginRelease
from rest_api.auth import Caller, ReaderDep, require_role
from rest_api.dependencies import ApiState, SessionDep, StateDep
from rest_api.problems import problems

router = APIRouter(prefix="/api/v1/plugins", tags=["plugins"])
logger = logging.getLogger("autoreduce.api")


class PluginItem(BaseModel):
    """One installed plugin, the version this API's host has installed and its verdict."""

    name: str = Field(description="The entry-point name instruments use (`plugin = …`).")
    distribution: str = Field(
        description="The package that installs it; empty for a plugin registered in-process."
    )
    version: str = Field(description="The distribution's installed version.")
    state: Literal["approved", "revoked", "pending"] = Field(
        description="`pending` until an admin approves this version; upgrading makes it pending."
    )
    approved_by: str | None = Field(description="Who approved this version (null unless approved).")
    approved_at: datetime | None
    decided_by: str | None = Field(description="Who approved or revoked this version last.")
    decided_at: datetime | None
    instruments: list[str] = Field(description="The configured instruments that use it.")


def plugin_item(state: ApiState, status: PluginStatus) -> PluginItem:
    """What the API (and the admin page) shows of one plugin's verdict."""
    approved = status.state is ApprovalState.APPROVED and status.decided_by is not None
    release = status.release
    return PluginItem(
        name=release.name,
        distribution=release.distribution,
        version=release.version,
        state=status.state.value,
        approved_by=status.decided_by if approved else None,
        approved_at=status.decided_at if approved else None,
        decided_by=status.decided_by,
        decided_at=status.decided_at,
        instruments=sorted(
            name
            for name, config in state.settings.instruments.items()
            if config.plugin == release.name
        ),
    )


def _release(state: ApiState, name: str) -> PluginRelease:
    release = state.plugin_gate.releases.get(name)
    if release is None:
        installed = ", ".join(sorted(state.plugin_gate.releases)) or "none"
        raise HTTPException(
            status_code=404,
            detail=f"no plugin named {name!r} is installed (installed: {installed})",
        )
    if not release.from_entry_point:
        raise HTTPException(
            status_code=409,
            detail=f"plugin {name!r} is registered in-process and needs no approval",
        )
    return release


@router.get("", response_model=list[PluginItem], responses=problems(401))
def list_plugins(state: StateDep, session: SessionDep, _caller: ReaderDep) -> list[PluginItem]:
    """Each installed plugin: distribution, version, approval state, who approved it and when,
    the instruments that use it."""
    return plugin_items(state, session)


def plugin_items(state: ApiState, session: Session) -> list[PluginItem]:
    """Every plugin installed here with its verdict, by name (the API list and the admin page)."""
    releases = sorted(state.plugin_gate.releases.values(), key=lambda release: release.name)
    return [plugin_item(state, status) for status in statuses(session, releases)]


PluginName = Annotated[str, Path(max_length=100, description="The plugin's entry-point name.")]
AdminDep = Annotated[Caller, Depends(require_role("admin"))]


def decide_plugin(state: ApiState, name: str, verdict: ApprovalState, caller: Caller) -> PluginItem:
    """Record ``caller``'s verdict on the installed plugin ``name`` (audited); approving wakes the
    relay so the runs held for it go out now. 404 if not installed, 409 if it needs no verdict."""
    release = _release(state, name)
    try:
        status = decide(state.database, release, verdict, caller.actor)
    except ValueError as error:
        raise HTTPException(status_code=409, detail=str(error)) from None
    if verdict is ApprovalState.APPROVED:
        state.relay.wake()  # its held runs go out now
    return plugin_item(state, status)


@router.post("/{name}/approve", response_model=PluginItem, responses=problems(401, 403, 404, 409))
def approve_plugin(name: PluginName, state: StateDep, caller: AdminDep) -> PluginItem:
    """Approve the plugin at the version installed here; its held runs are then reduced."""
    return decide_plugin(state, name, ApprovalState.APPROVED, caller)


@router.post("/{name}/revoke", response_model=PluginItem, responses=problems(401, 403, 404, 409))
def revoke_plugin(name: PluginName, state: StateDep, caller: AdminDep) -> PluginItem:
    """Revoke the plugin at the version installed here; its new runs are held until approved."""
    return decide_plugin(state, name, ApprovalState.REVOKED, caller)
