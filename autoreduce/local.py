"""Everything on one machine: the services ``autoreduce up`` and ``autoreduce demo`` start."""

from __future__ import annotations

import os
from pathlib import Path

from autoreduce.db import Database
from autoreduce.settings import Settings
from autoreduce.supervisor import Service, Supervisor

TOKEN_FILE = "secrets/detector.token"


def local_detector_token(settings: Settings, database: Database) -> str:
    """The local detector's token, created once and kept in a 0600 file in the data dir."""
    from autoreduce.tokens import create_token, verify_token

    path = settings.data_dir / TOKEN_FILE
    if path.is_file():
        secret = path.read_text().strip()
        if verify_token(database, secret) is not None:
            return secret
    secret = create_token(database, f"local-detector-{os.urandom(4).hex()}", "detector")
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.touch(mode=0o600)
    path.write_text(secret + "\n")
    return secret


def alerts_configured(settings: Settings) -> bool:
    """True when alerts have somewhere to go (a webhook or an SMTP server)."""
    return bool(settings.alerts.webhooks or settings.alerts.email.smtp_host)


def local_supervisor(
    settings: Settings,
    *,
    host: str,
    port: int,
    processors: int,
    poll_s: float | None = None,
    config_path: Path | None = None,
    quiet: bool = False,
) -> Supervisor:
    """A supervisor of the API, the detector, ``processors`` queue processors and, when alerts are
    configured (:func:`alerts_configured`), the alert evaluator (``autoreduce alerts run``).

    ``quiet`` sends each service's console to ``<logs_dir>/<service>.console.log``.
    """
    database = Database(settings.resolved_database_url)
    database.upgrade()
    token = local_detector_token(settings, database)
    database.dispose()
    common = {"AUTOREDUCE_DATA_DIR": str(settings.data_dir)}
    if config_path is not None:
        common["AUTOREDUCE_CONFIG"] = str(config_path)
    detect_args = ["detect"] + (["--poll", str(poll_s)] if poll_s else [])
    detector_env = {
        **common,
        "AUTOREDUCE_API_URL": f"http://{host}:{port}",
        "AUTOREDUCE_API_TOKEN": token,
    }
    services = [
        Service("api", ["api", "--host", host, "--port", str(port)], common),
        Service("detect", detect_args, detector_env),
        *(
            Service(f"process-{n}", ["process", "--name", f"process-{n}"], common)
            for n in range(1, processors + 1)
        ),
    ]
    if alerts_configured(settings):
        services.append(Service("alerts", ["alerts", "run"], common))
    if quiet:
        for service in services:
            service.console_log = settings.logs_dir / f"{service.name}.console.log"
    return Supervisor(services, stop_timeout_s=settings.shutdown_grace_s + 10)
