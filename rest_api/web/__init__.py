"""The web UI: server-rendered pages under ``/`` (the JSON API stays under ``/api/v1``).

Pages are Jinja2 templates (``templates/``) with a little JavaScript (``static/app.js``) for the
live parts; every asset is served by the app itself under ``/static/ui`` (no CDN). Each page module
has a ``router``; :data:`PAGE_MODULES` lists them. Pages read through the same query code as the
API and write through the same functions, as the signed-in user (:mod:`rest_api.web.session`),
with a CSRF token on every form.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.middleware.sessions import SessionMiddleware

from autoreduce.settings import Settings
from rest_api.web import (
    admin,
    experiments,
    failed,
    instrument_pages,
    pages,
    run_pages,
    search,
    signin,
)
from rest_api.web.render import render
from rest_api.web.session import (
    SESSION_COOKIE,
    CsrfRejected,
    SecureCookies,
    SignInRequired,
    session_secret,
    signin_url,
)
from rest_api.web.throttle import FailureThrottle

STATIC = Path(__file__).with_name("static")

PAGE_MODULES = (pages, instrument_pages, run_pages, experiments, failed, search, admin, signin)
"""The modules whose ``router`` serves pages."""


def is_page_request(request: Request) -> bool:
    """True for a request a person's browser made to a page (answered in HTML, not JSON)."""
    path = request.url.path
    if path.startswith(("/api/", "/static/", "/docs", "/redoc", "/openapi")) or path == "/health":
        return False
    return "text/html" in request.headers.get("accept", "") or request.method == "POST"


def error_page(request: Request, status: int, detail: str) -> HTMLResponse:
    """The HTML answer to a page request that failed."""
    return render(
        request,
        "error.html",
        status_code=status,
        status=status,
        detail=detail,
        title=f"{status} — autoreduce",
    )


async def _sign_in_first(request: Request, error: Exception) -> Response:
    assert isinstance(error, SignInRequired)
    return RedirectResponse(signin_url(error.next_path), status_code=303)


async def _csrf_rejected(request: Request, _error: Exception) -> Response:
    return error_page(
        request,
        403,
        "this form has expired or did not come from this site; reload the page and try again",
    )


def install_web(app: FastAPI, settings: Settings) -> None:
    """Serve the pages, their assets and the session cookie on ``app``."""
    app.mount("/static/ui", StaticFiles(directory=STATIC), name="ui-static")
    app.state.signin_throttle = FailureThrottle(
        settings.signin_max_failures, settings.signin_failure_window_s
    )
    for module in PAGE_MODULES:
        app.include_router(module.router)
    app.add_exception_handler(SignInRequired, _sign_in_first)
    app.add_exception_handler(CsrfRejected, _csrf_rejected)
    app.add_middleware(
        SessionMiddleware,
        secret_key=session_secret(settings),
        session_cookie=SESSION_COOKIE,
        max_age=int(settings.session_max_age_s),
        same_site="lax",
        https_only=False,  # SecureCookies adds Secure per request, when it came over HTTPS
    )
    app.add_middleware(SecureCookies)
