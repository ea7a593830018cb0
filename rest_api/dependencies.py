"""What every request can reach: the service's state and a short read-only database session."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, HTTPException, Request
from sqlalchemy.orm import Session

from autoreduce.access_tokens import AccessTokens
from autoreduce.db import Database
from autoreduce.metadata_reader import IsolatedMetadataReader
from autoreduce.outbox import OutboxRelay
from autoreduce.plugin_approvals import PluginGate
from autoreduce.plugin_manager import Plugins, installed_plugins
from autoreduce.settings import InstrumentConfig, Settings
from autoreduce.storage import ObjectStore
from autoreduce.transport import Transport
from rest_api.log_stream import FollowerSlots

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry


@dataclass
class ApiState:
    """The long-lived parts of the service, kept on ``app.state.api``."""

    settings: Settings
    database: Database
    transport: Transport
    relay: OutboxRelay
    access_tokens: AccessTokens  # OAuth2 access tokens: issued and verified with these keys
    plugin_gate: PluginGate = field(default_factory=lambda: PluginGate(None, {}))
    injected_plugins: Plugins | None = None
    owns_database: bool = False
    owns_transport: bool = False
    stop_relay: threading.Event = field(default_factory=threading.Event)
    relay_thread: threading.Thread | None = None
    metadata_reader: IsolatedMetadataReader = field(default_factory=IsolatedMetadataReader)
    log_followers: FollowerSlots = field(default_factory=lambda: FollowerSlots(50))
    store: ObjectStore | None = None  # storage = "s3://…"; None: files on disk
    metrics_registry: CollectorRegistry | None = None  # made at the first scrape (rest_api.metrics)

    def plugins(self) -> Plugins:
        """The plugin manager (installed entry points unless one was injected); may raise."""
        return self.injected_plugins or installed_plugins()

    def instrument_config(self, name: str) -> InstrumentConfig:
        """The configuration of instrument ``name``; 404 naming the configured ones otherwise."""
        config = self.settings.instruments.get(name)
        if config is None:
            configured = ", ".join(sorted(self.settings.instruments)) or "none"
            raise HTTPException(
                status_code=404,
                detail=f"instrument {name!r} is not configured (configured: {configured})",
            )
        return config


def get_state(request: Request) -> ApiState:
    state: ApiState = request.app.state.api
    return state


StateDep = Annotated[ApiState, Depends(get_state)]


def get_session(state: StateDep) -> Iterator[Session]:
    """One read-only transaction per request, ended before the response is sent."""
    with state.database.read_session() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session, scope="function")]
"""A read-only session for the request (:meth:`Database.read_session`), for GET routes.

On SQLite it never takes the write lock, so reads neither wait for writers nor hold them up.
Writing through it raises (:class:`autoreduce.db.engine.ReadOnlySessionError`, or the
database's own refusal for raw SQL): a route that writes opens ``state.database.session()``.
"""
