"""Helpers for browser tests that need a signed-in user without going through a sign-in form."""

from __future__ import annotations

import secrets
from urllib.parse import urlparse

from playwright.sync_api import BrowserContext

from rest_api.web.session import SESSION_COOKIE, encode_session
from tests.facility import Facility


def session_cookie(facility: Facility, name: str, role: str, instruments: tuple[str, ...]) -> str:
    """A session cookie value the facility's API accepts, signed as SessionMiddleware signs."""
    key = (facility.root / "data" / "session.key").read_text().strip()
    payload = {
        "user": {"name": name, "role": role, "instruments": list(instruments), "source": "test"},
        "csrf": secrets.token_urlsafe(32),
    }
    return encode_session(key, payload)


def sign_in_as(
    context: BrowserContext,
    facility: Facility,
    name: str = "tester",
    role: str = "admin",
    instruments: tuple[str, ...] = (),
) -> None:
    """Put a signed-in session for ``name`` into ``context``'s cookies."""
    host = urlparse(facility.api_url).hostname or "127.0.0.1"
    context.add_cookies(
        [
            {
                "name": SESSION_COOKIE,
                "value": session_cookie(facility, name, role, instruments),
                "domain": host,
                "path": "/",
                "httpOnly": True,
                "sameSite": "Lax",
            }
        ]
    )
