"""Say what is wrong with a configuration, one line per problem, with the key and the file.

Refused: a key of the TOML file that is not a setting (top level, ``[archive]``, ``[ldap]``,
``[instruments.NAME]``), a bad value, a template placeholder an instrument template may not use,
an instrument without ``lastruns`` or ``data``, and (where plugins are loaded: ``autoreduce config
check`` and each service's start) a plugin that is not installed or instrument variables it does
not declare. Only warned about: ``AUTOREDUCE_*`` environment variables that are not settings —
other tools (the test suite's ``AUTOREDUCE_TEST_MYSQL``) share the prefix.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from autoreduce.plugin_manager import Plugins
from autoreduce.settings import (
    CONFIG_ENV,
    ArchiveSettings,
    InstrumentConfig,
    JobSettings,
    LdapSettings,
    Settings,
    did_you_mean,
)
from autoreduce.variables import VariableError, resolve_variables

ENV_PREFIX = "AUTOREDUCE_"
NOT_SETTINGS_ENV_PREFIXES = ("AUTOREDUCE_TEST_",)  # the test suite's own variables
_TABLES: dict[str, type[Any]] = {
    "archive": ArchiveSettings,
    "ldap": LdapSettings,
    "jobs": JobSettings,
}


def _unknown(key: str, known: list[str], where: str) -> str:
    hint = did_you_mean(key.split(".")[-1], known, "'{}'")
    listing = "" if hint else f"; known: {', '.join(known)}"
    return f"{where}: unknown key '{key}'{hint}{listing}"


def unknown_keys(raw: Mapping[str, Any], path: Path) -> list[str]:
    """The keys of the TOML document ``raw`` (read from ``path``) that are not settings."""
    problems = []
    top = sorted(Settings.model_fields)
    for key, value in raw.items():
        if key not in Settings.model_fields:
            problems.append(_unknown(key, top, str(path)))
        elif key in _TABLES and isinstance(value, dict):
            known = sorted(_TABLES[key].model_fields)
            problems += [_unknown(f"{key}.{k}", known, str(path)) for k in value if k not in known]
        elif key == "instruments" and isinstance(value, dict):
            known = sorted(InstrumentConfig.model_fields)
            for name, table in value.items():
                if isinstance(table, dict):
                    problems += [
                        _unknown(f"instruments.{name}.{k}", known, str(path))
                        for k in table
                        if k not in known
                    ]
    return problems


def _describe(error: Mapping[str, Any], path: Path | None) -> str:
    loc = ".".join(str(part) for part in error["loc"])
    where = f"{path}: " if path is not None else ""
    if error["type"] == "missing":
        hint = ""
        if len(error["loc"]) == 3 and error["loc"][0] == "instruments":
            hint = " (every instrument needs a plugin, a lastruns and a data template)"
        return f"{where}{loc}: missing{hint}"
    if error["type"] == "extra_forbidden":
        return f"unknown setting {loc} (in the environment or the file)"
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{where}{loc}: {message}"


def settings_problems(
    path: Path | None, overrides: Mapping[str, Any] | None = None
) -> tuple[list[str], Settings | None]:
    """Build the settings from the file at ``path`` and the environment: (problems, settings)."""
    if path is not None:
        try:
            raw = tomllib.loads(path.read_text())
        except (OSError, UnicodeDecodeError) as error:
            return [f"config file {path} cannot be read: {error}"], None
        except tomllib.TOMLDecodeError as error:
            return [f"config file {path} is not valid TOML: {error}"], None
        problems = unknown_keys(raw, path)
    else:
        problems = []
    try:
        settings = Settings(**(overrides or {}))
    except ValidationError as error:
        errors = error.errors()
        if problems:  # the file's unknown keys are said above, with a suggestion each
            errors = [e for e in errors if e["type"] != "extra_forbidden"]
        return problems + [_describe(e, path) for e in errors], None
    return problems, (None if problems else settings)


def environment_warnings(environ: Mapping[str, str]) -> list[str]:
    """``AUTOREDUCE_*`` variables that are not settings (they are ignored)."""
    known = [CONFIG_ENV] + [ENV_PREFIX + name.upper() for name in Settings.model_fields]
    nested = {
        ENV_PREFIX + name.upper() + "__"
        for name in ("archive", "ldap", "instruments", "backup", "retention")
    }
    warnings = []
    for name in sorted(environ):
        if not name.startswith(ENV_PREFIX) or name.startswith(NOT_SETTINGS_ENV_PREFIXES):
            continue
        if name in known or any(name.startswith(prefix) for prefix in nested):
            continue
        hint = did_you_mean(name, known)
        warnings.append(f"environment variable {name} is not a setting and is ignored{hint}")
    return warnings


def plugin_problems(settings: Settings, plugins: Plugins) -> list[str]:
    """Instruments whose plugin is not installed, or whose variables it does not declare."""
    installed = plugins.names()
    problems = []
    for name, instrument in sorted(settings.instruments.items()):
        if instrument.plugin not in installed:
            hint = did_you_mean(instrument.plugin, installed, "'{}'")
            problems.append(
                f"instruments.{name}.plugin: no plugin named '{instrument.plugin}' is installed"
                f"{hint}; installed: {', '.join(installed) or 'none'}"
            )
            continue
        try:
            declared = plugins.variables(instrument.plugin, name)
            resolve_variables(declared, instrument_defaults=instrument.variables)
        except VariableError as error:
            problems.append(f"instruments.{name}.variables: {error}")
        except Exception as error:  # a broken plugin: say so rather than crash the check
            problems.append(
                f"instruments.{name}.plugin: plugin '{instrument.plugin}' failed to declare its "
                f"variables: {type(error).__name__}: {error}"
            )
    for plugin in settings.jobs.plugins:
        if plugin not in installed:
            hint = did_you_mean(plugin, installed, "'{}'")
            problems.append(f"jobs.plugins: no plugin named '{plugin}' is installed{hint}")
    return problems
