"""One-time notices after a Post/Redirect/Get: a write's page sets one, the next page shows it."""

from __future__ import annotations

from fastapi import Request

FLASH_KEY = "flash"


def flash(request: Request, text: str, kind: str = "ok") -> None:
    """Show ``text`` once, on the next page this session renders (``kind``: ok or error)."""
    request.session[FLASH_KEY] = {"text": text, "kind": kind}


def pop_flash(request: Request) -> dict[str, str] | None:
    """The pending notice, removed from the session; None if there is none."""
    notice = request.session.pop(FLASH_KEY, None)
    if not isinstance(notice, dict):
        return None
    return {"text": str(notice.get("text", "")), "kind": str(notice.get("kind", "ok"))}
