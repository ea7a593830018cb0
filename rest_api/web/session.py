"""Who is looking at a page: signed sessions, the page caller, and CSRF tokens.

Sessions are Starlette's ``SessionMiddleware``: a JSON dict in a cookie signed with
``itsdangerous`` (HttpOnly, ``SameSite=Lax``, lifetime ``session_max_age_s``).
:class:`SecureCookies` adds ``Secure`` whenever the request came over HTTPS (directly, or through
a proxy that uvicorn trusts with ``--proxy-headers``). The signing key is the ``session_secret``
setting, or a random key kept in ``data_dir/session.key`` (mode 0600) when that is empty.

A signed-in user is stored as ``session["user"]`` (name, role, instruments, source, display
name, when they signed in); every page reads it through :func:`page_caller`. A local account's
session ends as soon as the account is disabled or its password changes (one indexed lookup per
request that reads the session). Forms carry the session's CSRF token (a synchronizer token,
``session["csrf"]``), checked by :func:`verify_csrf` on every unsafe request to a page route.
"""

from __future__ import annotations

import hmac
import json
import os
import secrets
import time
from base64 import b64encode
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, Request
from itsdangerous import TimestampSigner
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from autoreduce.settings import Settings
from rest_api.auth import ANONYMOUS, Caller

SESSION_COOKIE = "autoreduce_session"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"


class SignInRequired(Exception):
    """A page needs a signed-in user; answered with a redirect to the sign-in page."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


class CsrfRejected(Exception):
    """A form came without this session's CSRF token; answered 403."""


def session_secret(settings: Settings) -> str:
    """The key that signs session cookies: the setting, else a random one kept in data_dir."""
    configured = settings.session_secret.get_secret_value()
    if configured:
        return configured
    path = Path(settings.data_dir) / "session.key"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(key)
    return key


class SecureCookies:
    """Mark the session cookie ``Secure`` on responses to HTTPS requests."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("scheme") != "https":
            await self.app(scope, receive, send)
            return

        async def secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [
                    (name, _secure(value) if name == b"set-cookie" else value)
                    for name, value in message.get("headers", [])
                ]
            await send(message)

        await self.app(scope, receive, secured)


def _secure(cookie: bytes) -> bytes:
    if cookie.startswith(SESSION_COOKIE.encode()) and b"; secure" not in cookie.lower():
        return cookie + b"; Secure"
    return cookie


def session_user(request: Request) -> Caller | None:
    """The signed-in user of this request's session, as a caller; None when nobody is."""
    user: Any = request.scope.get("session", {}).get("user") if "session" in request.scope else None
    if not isinstance(user, dict):
        return None
    if user.get("source") == "local" and not _local_account_still_allows(request, user):
        return None
    address = request.client.host if request.client else ""
    return Caller(
        str(user.get("name", "")),
        str(user.get("role", "")),
        tuple(str(name) for name in user.get("instruments", ())),
        address,
    )


def _local_account_still_allows(request: Request, user: dict[str, Any]) -> bool:
    """False once the local account was disabled or given a new password after this sign-in."""
    from autoreduce.accounts import session_still_valid

    since = user.get("since")
    if not isinstance(since, int | float):
        return False
    signed_in_at = datetime.fromtimestamp(since, UTC)
    database = request.app.state.api.database
    return session_still_valid(database, str(user.get("name", "")), signed_in_at)


def sign_in(
    request: Request,
    name: str,
    role: str,
    instruments: tuple[str, ...],
    source: str,
    display_name: str = "",
) -> None:
    """Start a session for this user (a fresh session: a new CSRF token too)."""
    request.session.clear()
    request.session["user"] = {
        "name": name,
        "role": role,
        "instruments": list(instruments),
        "source": source,
        "display_name": display_name,
        "since": time.time(),  # when the sign-in happened (Unix seconds)
    }
    request.session["csrf"] = secrets.token_urlsafe(32)


def session_display_name(request: Request) -> str:
    """The signed-in user's display name ("" when nobody is signed in or none is known)."""
    user: Any = request.scope.get("session", {}).get("user") if "session" in request.scope else None
    return str(user.get("display_name") or "") if isinstance(user, dict) else ""


def sign_out(request: Request) -> None:
    """End the session."""
    request.session.clear()


def page_caller(request: Request) -> Caller:
    """A dependency for pages: the signed-in user; anonymous on a public instance; else the
    sign-in page (:class:`SignInRequired`)."""
    caller = session_user(request)
    if caller is not None:
        return caller
    if request.app.state.api.settings.public_read:
        return ANONYMOUS
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    raise SignInRequired(target)


PageCaller = Annotated[Caller, Depends(page_caller)]


def signin_url(next_path: str) -> str:
    """The sign-in page, returning to ``next_path`` (a local path) afterwards."""
    return f"/signin?next={quote(local_path(next_path), safe='/')}"


def local_path(target: str) -> str:
    """``target`` if it is a path on this site, else ``/`` (no open redirect).

    Refused: anything not starting with one ``/`` (``//host``, ``https://host``), backslashes
    (browsers read ``/\\host`` as ``//host``) and control characters or spaces (browsers drop
    tabs and newlines, so ``/\\t/host`` would become ``//host``).
    """
    if (
        not target.startswith("/")
        or target.startswith("//")
        or "\\" in target
        or any(ord(char) <= 0x20 or ord(char) == 0x7F for char in target)
        or len(target) > 2000
    ):
        return "/"
    return target


def csrf_token(request: Request) -> str:
    """This session's CSRF token, made on first use."""
    token = request.session.get("csrf")
    if not isinstance(token, str) or not token:
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return token


async def verify_csrf(request: Request) -> None:
    """Refuse an unsafe request whose form field or header does not carry the session's token."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    expected = request.session.get("csrf")
    sent = request.headers.get(CSRF_HEADER, "")
    if not sent and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        form = await request.form()
        value = form.get(CSRF_FIELD, "")
        sent = value if isinstance(value, str) else ""
    if not isinstance(expected, str) or not expected or not hmac.compare_digest(sent, expected):
        raise CsrfRejected()


def encode_session(secret: str, session: dict[str, Any]) -> str:
    """A session cookie's value as ``SessionMiddleware`` signs it (for tools and tests that sign
    a user in without the form, e.g. ``make screenshots``)."""
    data = b64encode(json.dumps(session).encode())
    return TimestampSigner(secret).sign(data).decode()
