"""Signed-in page requests through a TestClient: a session cookie signed with the app's key."""

from __future__ import annotations

import secrets

from fastapi.testclient import TestClient

from rest_api.web.session import SESSION_COOKIE, encode_session, session_secret

HTML = {"Accept": "text/html"}


def sign_in(client: TestClient, name: str, role: str, instruments: tuple[str, ...] = ()) -> str:
    """Give ``client`` a session for ``name``; the session's CSRF token."""
    csrf = secrets.token_urlsafe(32)
    payload = {
        "user": {"name": name, "role": role, "instruments": list(instruments), "source": "test"},
        "csrf": csrf,
    }
    key = session_secret(client.app.state.api.settings)  # type: ignore[attr-defined]
    client.cookies.set(SESSION_COOKIE, encode_session(key, payload))
    return csrf
