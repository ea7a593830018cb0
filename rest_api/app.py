"""The FastAPI application: routers, error handlers, and the outbox relay in the lifespan."""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from fastapi_offline import FastAPIOffline

from autoreduce import __version__
from autoreduce.access_tokens import AccessTokens
from autoreduce.db import Database
from autoreduce.outbox import OutboxRelay
from autoreduce.plugin_approvals import PluginGate
from autoreduce.plugin_manager import Plugins, installed_plugins
from autoreduce.settings import Settings
from autoreduce.state_machine import one_line
from autoreduce.storage import open_store
from autoreduce.transport import Transport, open_transport
from rest_api.dependencies import ApiState
from rest_api.limits import BodySizeLimit
from rest_api.log_stream import FollowerSlots
from rest_api.metrics import router as metrics_router
from rest_api.problems import install_problem_handlers, problem_openapi
from rest_api.routes import (
    audit,
    experiments,
    failures,
    instruments,
    jobs,
    logs,
    oauth,
    outputs,
    pipelines,
    queue,
    reruns,
    runs,
    system,
    uploads,
    variable_rules,
)
from rest_api.routes import plugins as plugin_routes
from rest_api.web import error_page, install_web, is_page_request

logger = logging.getLogger("autoreduce.api")

RELAY_JOIN_TIMEOUT_S = 10.0


def _plugin_gate(settings: Settings, injected: Plugins | None) -> PluginGate:
    """The gate of the plugins this API serves; an empty one if they cannot be loaded (their
    runs are then recorded in Error by resolution, never held)."""
    try:
        loaded = injected or installed_plugins()
    except Exception as error:
        logger.error("cannot load the plugins: %s", one_line(str(error), 300))
        loaded = None
    return PluginGate(loaded, {name: c.plugin for name, c in settings.instruments.items()})


def _start(state: ApiState, relay: bool) -> None:
    try:
        state.database.upgrade()
    except Exception as error:  # unreachable database: serve anyway, /health says why
        logger.error("cannot upgrade the database schema: %s", one_line(str(error), 300))
    # the metadata reader's worker (h5py, ~45 MiB) starts on the first run's read, not here:
    # an idle API holds no HDF5 (docs/memory.md); that first read waits a few hundred ms more
    if relay:
        state.stop_relay = threading.Event()
        state.relay_thread = state.relay.start(state.stop_relay)


def _stop(state: ApiState) -> None:
    state.stop_relay.set()
    state.relay.wake()
    if state.relay_thread is not None:
        state.relay_thread.join(RELAY_JOIN_TIMEOUT_S)
        if state.relay_thread.is_alive():
            logger.warning("outbox relay did not stop within %.0f s", RELAY_JOIN_TIMEOUT_S)
        state.relay_thread = None
    state.metadata_reader.close()
    if state.owns_transport:
        state.transport.close()
    if state.owns_database:
        state.database.dispose()


async def refuse_unknown_query(request: Request) -> None:
    """422 naming every query parameter the route does not declare (a typo is never ignored)."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    allowed = _declared_query(route)
    unknown = [name for name in dict.fromkeys(request.query_params) if name not in allowed]
    if unknown:
        raise RequestValidationError(
            [
                {
                    "loc": ("query", name),
                    "msg": "unknown query parameter "
                    f"(allowed: {', '.join(sorted(allowed)) or 'none'})",
                    "type": "extra_forbidden",
                }
                for name in unknown
            ]
        )


def _declared_query(route: APIRoute) -> frozenset[str]:
    names: set[str] = set()
    pending = [route.dependant]
    while pending:
        dependant = pending.pop()
        names.update(param.alias for param in dependant.query_params)
        pending.extend(dependant.dependencies)
    return frozenset(names)


API_DESCRIPTION = """Runs detected, queued, reduced; re-runs with changed variables.

Reads need a bearer token of any role unless the instance sets `public_read`; writes need a token
of the role each route names. A bearer token is an API token (`autoreduce token create`) or an
OAuth2 access token that a client of `autoreduce client create` obtains from
`POST /api/v1/oauth/token`. A token limited to some instruments sees only their runs. Every error
is an RFC 9457 problem (`application/problem+json`) with a one-line `detail`, except the token
endpoint's, which take OAuth's shape; a 422 adds `errors`, one per field.
Unknown query parameters and body fields are refused. Bodies over `max_request_bytes` are 413."""


def create_app(
    settings: Settings,
    *,
    database: Database | None = None,
    transport: Transport | None = None,
    relay: bool = True,
    plugins: Plugins | None = None,
) -> FastAPI:
    """The API for ``settings``; database and transport are made from the settings if not given.

    The schema is upgraded at start (idempotent); with ``relay`` the outbox relay runs in a
    thread for the application's lifetime. ``plugins`` replaces the installed plugins (tests).
    """
    owns_database = database is None
    database = database or Database(settings.resolved_database_url)
    owns_transport = transport is None
    if transport is None:
        consumer = f"rest-api@{socket.gethostname()}:{os.getpid()}"
        transport = open_transport(settings, consumer=consumer)
    gate = _plugin_gate(settings, plugins)
    state = ApiState(
        settings=settings,
        database=database,
        transport=transport,
        relay=OutboxRelay(database, transport, gate=gate),
        access_tokens=AccessTokens.from_settings(settings),
        plugin_gate=gate,
        injected_plugins=plugins,
        owns_database=owns_database,
        owns_transport=owns_transport,
        log_followers=FollowerSlots(settings.max_log_followers),
        store=open_store(settings),
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        _start(state, relay)
        try:
            yield
        finally:
            _stop(state)

    app = FastAPIOffline(  # /docs and /redoc serve their assets themselves: no CDN
        title="autoreduce",
        version=__version__,
        description=API_DESCRIPTION,
        lifespan=lifespan,
        static_url="/static/docs",
        dependencies=[Depends(refuse_unknown_query)],
    )
    app.state.api = state
    install_problem_handlers(app, pages=(is_page_request, error_page))
    for module in (
        runs,
        reruns,
        logs,
        experiments,
        failures,
        instruments,
        variable_rules,
        outputs,
        system,
        queue,
        audit,
        oauth,
        plugin_routes,
        pipelines,
        uploads,
        jobs,
    ):
        app.include_router(module.router)
    app.include_router(metrics_router)
    install_web(app, settings)
    app.openapi = problem_openapi(app, every_route=(422, 503))  # type: ignore[method-assign]
    app.add_middleware(
        BodySizeLimit,
        max_bytes=settings.max_request_bytes,
        own_limit_paths=(uploads.UPLOAD_PATH,),  # streamed to disk, limited by max_upload_bytes
    )
    return app


def serve(settings: Settings, host: str, port: int) -> None:
    """Run the API with uvicorn until interrupted (access log: paths only, never headers)."""
    import uvicorn

    log_level = str(getattr(settings, "log_level", "") or "info").lower()
    uvicorn.run(create_app(settings), host=host, port=port, log_level=log_level)
