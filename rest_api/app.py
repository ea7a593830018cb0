"""The FastAPI application: routers, error handlers, and the outbox relay in the lifespan."""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError

from autoreduce import __version__
from autoreduce.db import Database
from autoreduce.outbox import OutboxRelay
from autoreduce.plugin_manager import Plugins
from autoreduce.settings import Settings
from autoreduce.state_machine import one_line
from autoreduce.transport import Transport, open_transport
from rest_api.dependencies import ApiState
from rest_api.routes import instruments, outputs, runs, system

logger = logging.getLogger("autoreduce.api")

RELAY_JOIN_TIMEOUT_S = 10.0


def _start(state: ApiState, relay: bool) -> None:
    try:
        state.database.upgrade()
    except Exception as error:  # unreachable database: serve anyway, /health says why
        logger.error("cannot upgrade the database schema: %s", one_line(str(error), 300))
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
    if state.owns_transport:
        state.transport.close()
    if state.owns_database:
        state.database.dispose()


def _validation_error(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    problems = [
        {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": str(e.get("type"))}
        for e in error.errors()
    ]
    detail = "; ".join(
        f"{'.'.join(str(part) for part in p['loc']) or 'request'}: {p['msg']}" for p in problems
    )
    return JSONResponse({"detail": detail or "invalid request", "errors": problems}, 422)


def _database_unavailable(request: Request, error: Exception) -> JSONResponse:
    logger.error(
        "database unavailable during %s %s: %s",
        request.method,
        request.url.path,
        one_line(str(error), 300),
    )
    return JSONResponse({"detail": "the database is unavailable; try again later"}, 503)


def _server_fault(request: Request, error: Exception) -> JSONResponse:
    logger.error("unexpected error in %s %s", request.method, request.url.path, exc_info=error)
    return JSONResponse({"detail": "internal server error; the service log has the details"}, 500)


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
    state = ApiState(
        settings=settings,
        database=database,
        transport=transport,
        relay=OutboxRelay(database, transport),
        injected_plugins=plugins,
        owns_database=owns_database,
        owns_transport=owns_transport,
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        _start(state, relay)
        try:
            yield
        finally:
            _stop(state)

    app = FastAPI(
        title="autoreduce",
        version=__version__,
        description="Runs detected, queued, reduced; re-runs with changed variables.",
        lifespan=lifespan,
    )
    app.state.api = state
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(OperationalError, _database_unavailable)
    app.add_exception_handler(Exception, _server_fault)
    for module in (runs, instruments, outputs, system):
        app.include_router(module.router)
    return app


def serve(settings: Settings, host: str, port: int) -> None:
    """Run the API with uvicorn until interrupted (access log: paths only, never headers)."""
    import uvicorn

    log_level = str(getattr(settings, "log_level", "") or "info").lower()
    uvicorn.run(create_app(settings), host=host, port=port, log_level=log_level)
