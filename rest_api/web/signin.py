"""Signing in and out: ``GET /signin`` (the form), ``POST /signin``, ``POST /signout``.

The sign-in form carries the CSRF token of the visitor's pre-session (the anonymous session
cookie ``GET /signin`` sets), so another site cannot sign a browser in as someone else (login
CSRF); a successful sign-in starts a fresh session with a new token (no session fixation).
Wrong password, unknown user and disabled account get the same answer, after the same work (one
argon2 verification); each is an audit event ``user.signin_failed`` (never the password), and
after ``signin_max_failures`` of them within ``signin_failure_window_s`` for one username from
one address, that pair is refused (429) until the window passes (:mod:`rest_api.web.throttle`).
"""

from __future__ import annotations

import math
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from autoreduce.audit import Actor, record_event
from rest_api.dependencies import ApiState, StateDep
from rest_api.web.accounts import SignInUnavailable, authenticate
from rest_api.web.render import render
from rest_api.web.session import local_path, session_user, sign_in, sign_out, verify_csrf
from rest_api.web.throttle import FailureThrottle

router = APIRouter(include_in_schema=False)

WRONG = "wrong username or password"
MAX_USERNAME_CHARS = 200
_NOTICE = "notice"  # a one-time message kept in the session across the redirect after sign-out


def throttle(request: Request) -> FailureThrottle:
    """This app's failed sign-in counter (made by :func:`rest_api.web.install_web`)."""
    counter: FailureThrottle = request.app.state.signin_throttle
    return counter


def _form(
    request: Request, next_path: str, *, status: int = 200, error: str = "", username: str = ""
) -> HTMLResponse:
    notice = request.session.pop(_NOTICE, "")
    return render(
        request,
        "signin.html",
        status_code=status,
        title="Sign in — autoreduce",
        nav="signin",
        next_path=next_path,
        error=error,
        notice=notice if isinstance(notice, str) else "",
        username=username,
    )


def _audit(state: ApiState, actor: Actor, action: str, username: str) -> None:
    with state.database.session() as session:
        record_event(session, actor, action, f"user {username}")


@router.get("/signin", response_class=HTMLResponse)
def signin_form(request: Request, next: str = "/") -> Response:
    """The sign-in form; someone already signed in goes straight on to ``next``."""
    target = local_path(next)
    if session_user(request) is not None:
        return RedirectResponse(target, status_code=303)
    return _form(request, target)


@router.post("/signin", response_class=HTMLResponse, dependencies=[Depends(verify_csrf)])
def signin(
    request: Request,
    state: StateDep,
    username: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/",
) -> Response:
    """Check the password; on success a fresh session and a redirect to ``next``."""
    target = local_path(next)
    username = username.strip()[:MAX_USERNAME_CHARS]
    if not username or not password:
        return _form(
            request, target, status=400, error="enter your username and password", username=username
        )
    address = request.client.host if request.client else ""
    key = (username.lower(), address)
    wait_s = throttle(request).retry_after_s(key)
    if wait_s > 0:
        minutes = max(1, math.ceil(wait_s / 60))
        response = _form(
            request,
            target,
            status=429,
            error=f"too many failed sign-ins for {username}; try again in {minutes} min",
            username=username,
        )
        response.headers["Retry-After"] = str(math.ceil(wait_s))
        return response
    try:
        person = authenticate(state, username, password)
    except SignInUnavailable:
        return _form(
            request,
            target,
            status=503,
            error="the account directory is not answering; try again in a few minutes",
            username=username,
        )
    if person is None:
        throttle(request).failed(key)
        _audit(state, Actor("anonymous", "public", address), "user.signin_failed", username)
        return _form(request, target, status=400, error=WRONG, username=username)
    throttle(request).succeeded(key)
    sign_in(
        request, person.name, person.role, person.instruments, person.source, person.display_name
    )
    _audit(state, Actor(person.name, person.role, address), "user.signin", person.name)
    return RedirectResponse(target, status_code=303)


@router.post("/signout", dependencies=[Depends(verify_csrf)])
def signout(request: Request, state: StateDep) -> Response:
    """End the session; back to the sign-in page, which says so."""
    caller = session_user(request)
    sign_out(request)
    if caller is not None:
        _audit(state, caller.actor, "user.signout", caller.name)
        request.session[_NOTICE] = "You have signed out."
    return RedirectResponse("/signin", status_code=303)
