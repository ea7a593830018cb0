"""Filters the roles use: the rendered TOML, and which services a setting change restarts."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def to_toml(settings: dict[str, Any]) -> str:
    """``settings`` as TOML (tomli_w, a dependency of autoreduce, on the controller)."""
    import tomli_w

    def plain(value: Any) -> Any:  # Ansible's lazy and tagged values as plain Python
        if isinstance(value, dict):
            return {str(k): plain(v) for k, v in value.items() if v is not None}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, bool):
            return bool(value)
        if isinstance(value, int):
            return int(value)
        if isinstance(value, float):
            return float(value)
        return str(value)

    return tomli_w.dumps(plain(settings))


def settings_digest(
    settings: dict[str, Any], service: str, readers: dict[str, list[str]], *extra: Any
) -> str:
    """A digest of the settings ``service`` reads (with ``extra``, e.g. the package version).

    ``readers`` maps a setting to the services that read it; a setting not in it is read by every
    service. The digest goes into the service's unit, so a unit changes (and its service restarts)
    only when a setting it reads does.
    """
    mine = {
        key: value
        for key, value in settings.items()
        if key not in readers or service in readers[key]
    }
    text = json.dumps([mine, list(extra)], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"autoreduce_toml": to_toml, "autoreduce_settings_digest": settings_digest}
