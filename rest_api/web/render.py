"""Rendering pages: one Jinja2 environment, autoescaped, with what every page needs."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from rest_api.web.session import csrf_token, session_display_name, session_user

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).with_name("templates")))
"""The page templates (``rest_api/web/templates``); Jinja2 autoescapes every ``.html``."""


def _ago(moment: datetime | None) -> str:
    """'3 min ago' for a timestamp (naive ones are UTC)."""
    if moment is None:
        return ""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    seconds = (datetime.now(UTC) - moment).total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{int(seconds // size)} {unit} ago"
    return "just now"


def _duration(seconds: float | None) -> str:
    """'1 min 5 s' for a duration in seconds."""
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {rest} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def _iso(moment: datetime | None) -> str:
    if moment is None:
        return ""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.isoformat(timespec="seconds")


TEMPLATES.env.trim_blocks = True
TEMPLATES.env.lstrip_blocks = True
TEMPLATES.env.filters["ago"] = _ago
TEMPLATES.env.filters["duration"] = _duration
TEMPLATES.env.filters["iso"] = _iso


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """``template`` rendered with ``context`` plus the caller, the CSRF token and the settings."""
    state = request.app.state.api
    context.setdefault("title", "autoreduce")
    return TEMPLATES.TemplateResponse(
        request,
        template,
        {
            "user": session_user(request),
            "display_name": session_display_name(request),
            "csrf_token": csrf_token(request),
            "public_read": state.settings.public_read,
            **context,
        },
        status_code=status_code,
        headers={"Cache-Control": "no-store"},
    )
