"""Where the ``autoreduce`` client commands find the API and their credentials.

Each setting comes from the first of: a command-line option, the environment
(``AUTOREDUCE_API_URL``, ``AUTOREDUCE_API_TOKEN``, ``AUTOREDUCE_API_CLIENT_ID``,
``AUTOREDUCE_API_CLIENT_SECRET``), the user's config file written by ``autoreduce login``
(``$XDG_CONFIG_HOME/autoreduce/client.toml``, default ``~/.config/autoreduce/client.toml``), and
the service configuration (``autoreduce.toml``). Credentials are taken whole from one place — the
first that names any — so a token in the environment is never mixed with a client secret from a
file. The user's file is written with mode 0600 in a directory of mode 0700.
"""

from __future__ import annotations

import os
import stat
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import tomli_w

from autoreduce.settings import ConfigError, Settings, config_path

ENV_PREFIX = "AUTOREDUCE_"
KEYS = ("api_url", "api_token", "api_client_id", "api_client_secret")
DEFAULT_API_URL: str = Settings.model_fields["api_url"].default


def user_config_path() -> Path:
    """``$XDG_CONFIG_HOME/autoreduce/client.toml`` (``~/.config`` when XDG_CONFIG_HOME is unset)."""
    base = os.environ.get("XDG_CONFIG_HOME", "")
    root = Path(base) if base and Path(base).is_absolute() else Path.home() / ".config"
    return root / "autoreduce" / "client.toml"


@dataclass(frozen=True)
class ClientCredentials:
    """The API to talk to and how to sign in to it (secrets are kept out of ``repr``)."""

    api_url: str
    token: str = field(default="", repr=False)
    client_id: str = ""
    client_secret: str = field(default="", repr=False)
    source: str = "none"  # where the credentials came from, for messages

    @property
    def signed_in(self) -> bool:
        return bool(self.token or self.client_id)


def safe_url(url: str) -> str:
    """``url`` without a user name, password, query or fragment: fit to print."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 address
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def check_api_url(url: str, source: str) -> str:
    """``url`` without a trailing slash, if it is an http(s) URL with a host; else ConfigError."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            [f"api_url {safe_url(url)!r} ({source}) is not an http:// or https:// URL"]
        )
    if parts.username or parts.password:
        raise ConfigError(
            [f"api_url ({source}) holds credentials; use `autoreduce login` for those instead"]
        )
    return url.rstrip("/")


def _environment() -> dict[str, str]:
    return {
        key: os.environ[ENV_PREFIX + key.upper()]
        for key in KEYS
        if os.environ.get(ENV_PREFIX + key.upper())
    }


def _toml_layer(path: Path, *, only_known: bool) -> dict[str, str]:
    try:
        with path.open("rb") as file:
            document = tomllib.load(file)
    except FileNotFoundError:
        return {}
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise ConfigError([f"cannot read {path}: {error}"]) from None
    unknown = sorted(set(document) - set(KEYS))
    if only_known and unknown:
        raise ConfigError(
            [f"{path}: unknown key(s) {', '.join(unknown)}; known: {', '.join(KEYS)}"]
        )
    layer = {}
    for key in KEYS:
        value = document.get(key, "")
        if not isinstance(value, str):
            raise ConfigError([f"{path}: {key} must be a string"])
        if value:
            layer[key] = value
    return layer


def user_config() -> dict[str, str]:
    """What ``autoreduce login`` stored (empty when the user has not signed in)."""
    return _toml_layer(user_config_path(), only_known=True)


def _layers() -> list[tuple[str, dict[str, str]]]:
    layers = [("the environment", _environment()), (str(user_config_path()), user_config())]
    service_config = config_path()
    if service_config is not None:
        layers.append((str(service_config), _toml_layer(service_config, only_known=False)))
    return layers


def _credentials_of(source: str, layer: dict[str, str]) -> dict[str, Any] | None:
    """The credentials one place names, or None if it names none."""
    if layer.get("api_token"):
        return {"token": layer["api_token"], "source": source}
    client_id, secret = layer.get("api_client_id", ""), layer.get("api_client_secret", "")
    if not client_id and not secret:
        return None
    if not (client_id and secret):
        missing = "api_client_secret" if client_id else "api_client_id"
        raise ConfigError([f"{source} sets an OAuth2 client but not its {missing}"])
    return {"client_id": client_id, "client_secret": secret, "source": source}


def load_credentials(api_url: str | None = None) -> ClientCredentials:
    """The API URL and credentials, by precedence (``api_url`` is the command-line option).

    Raises :class:`ConfigError` for a URL that is not http(s), a half-given client or a user
    config file that cannot be read.
    """
    layers = _layers()
    url_source, url = "the --api-url option", api_url
    if not url:
        url_source, url = next(
            ((source, layer["api_url"]) for source, layer in layers if layer.get("api_url")),
            ("the default", DEFAULT_API_URL),
        )
    credentials: dict[str, Any] = {}
    for source, layer in layers:
        found = _credentials_of(source, layer)
        if found is not None:
            credentials = found
            break
    return ClientCredentials(api_url=check_api_url(url, url_source), **credentials)


def loosely_protected(path: Path) -> bool:
    """True if ``path`` may be read or written by users other than its owner."""
    try:
        return bool(path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO))
    except OSError:
        return False


def save_login(
    api_url: str, *, token: str = "", client_id: str = "", client_secret: str = ""
) -> Path:
    """Store the API URL and one kind of credentials in the user's config file (mode 0600).

    The file is written beside itself and renamed into place, so a reader never sees half of
    it; its directory is created with mode 0700.
    """
    path = user_config_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.parent.chmod(0o700)
    document = {"api_url": api_url}
    if token:
        document["api_token"] = token
    else:
        document["api_client_id"] = client_id
        document["api_client_secret"] = client_secret
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(descriptor, 0o600)
        with os.fdopen(descriptor, "wb") as file:
            tomli_w.dump(document, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return path
