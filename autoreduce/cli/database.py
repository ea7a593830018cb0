"""``autoreduce db``: the database schema, backups and restores."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import click

from autoreduce.cli.startup import DatabaseUnreachable, cli_settings, start_logging

logger = logging.getLogger("autoreduce.backup")
LATEST = "latest"


@click.group()
def db() -> None:
    """Database schema, backups and restores."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the database schema to the newest revision."""
    from autoreduce.db import Database, is_unreachable, safe_url

    settings = cli_settings()
    url = settings.resolved_database_url
    database = Database(url)
    try:
        before, after = database.upgrade()
    except Exception as error:
        if is_unreachable(error):
            raise DatabaseUnreachable(url, error) from None
        raise
    finally:
        database.dispose()
    if before is None:
        click.echo(f"created the database schema (revision {after}) in {safe_url(url)}")
    elif before == after:
        click.echo(f"database schema already up to date (revision {after})")
    else:
        click.echo(f"upgraded the database schema from revision {before} to {after}")


def _report(document: dict[str, Any], as_json: bool, lines: list[str]) -> None:
    if as_json:
        click.echo(json.dumps(document, indent=2, default=str))
    else:
        for line in lines:
            click.echo(line)


@db.command("backup")
@click.option(
    "--to",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the dump and its manifest go (default: setting backup.dir, data_dir/backups).",
)
@click.option(
    "--keep-days",
    type=click.IntRange(min=1),
    help="Remove dumps older than this many days (default: setting backup.keep_days, 14).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON.")
def db_backup(directory: Path | None, keep_days: int | None, as_json: bool) -> None:
    """Dump the database consistently into one timestamped file with a manifest (rows per
    table, SHA-256, schema revision), then remove dumps older than --keep-days.

    Exit 1 with the reason when the dump fails; the outcome is recorded for the alert rule
    backup_failed and /metrics.
    """
    from autoreduce.backup import BackupError, backup
    from autoreduce.db.models import utcnow
    from autoreduce.operations import record_outcome

    settings = cli_settings()
    start_logging("backup", settings)
    url = settings.resolved_database_url
    target = directory.expanduser().resolve() if directory else settings.backup_dir
    days = keep_days or settings.backup.keep_days
    started = utcnow()
    try:
        result = backup(url, settings.backup, target, days, now=started)
    except BackupError as error:
        logger.error("backup failed: %s", error)
        record_outcome(url, "backup", started, False, str(error), {"dir": str(target)})
        _report({"ok": False, "reason": str(error)}, as_json, [])
        raise click.ClickException(f"backup failed: {error}") from None
    document = result.as_dict()
    logger.info(
        "backup written: %s (%d bytes, %d rows), %d old file(s) removed",
        result.dump,
        result.manifest.bytes,
        document["rows"],
        len(result.pruned),
    )
    record_outcome(
        url,
        "backup",
        started,
        True,
        details={k: document[k] for k in ("dump", "bytes", "rows", "schema_revision")},
    )
    _report(
        document,
        as_json,
        [
            f"dump: {result.dump} ({result.manifest.bytes} bytes, {document['rows']} rows in "
            f"{len(result.manifest.tables)} tables, schema {result.manifest.schema_revision})",
            f"manifest: {result.manifest_path}",
            *(f"removed (older than {days} days): {name}" for name in result.pruned),
        ],
    )


@db.command("restore")
@click.argument("dump", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--verify",
    is_flag=True,
    help="Restore into a scratch database (dropped afterwards) and check it against the manifest.",
)
@click.option("--into", "into_url", help="Restore into this database URL (replaces its tables).")
@click.option("--yes", is_flag=True, help="Confirm a restore --into (it replaces the tables).")
@click.option("--json", "as_json", is_flag=True, help="Print the checks as JSON.")
def db_restore(dump: Path, verify: bool, into_url: str | None, yes: bool, as_json: bool) -> None:
    """Check DUMP against its manifest (checksum, rows per table, schema revision); DUMP
    `latest` is the newest dump in the backup directory (setting backup.dir).

    --verify restores it into a scratch database (MariaDB: a new database on the configured
    server, dropped afterwards; SQLite: a temporary file). --into URL --yes restores it for real.
    Exit 1 naming what failed.
    """
    from autoreduce.backup import BackupError, newest_dump, restore
    from autoreduce.backup import verify as verify_dump
    from autoreduce.db import safe_url
    from autoreduce.db.models import utcnow
    from autoreduce.operations import record_outcome

    if verify == bool(into_url):
        raise click.UsageError("give either --verify or --into URL")
    if into_url and not yes:
        raise click.UsageError(
            f"restoring replaces the tables of {safe_url(into_url)}: add --yes to go on"
        )
    settings = cli_settings()
    start_logging("backup", settings)
    url = settings.resolved_database_url
    if str(dump) == LATEST and not dump.exists():
        try:
            dump = newest_dump(settings.backup_dir)
        except BackupError as error:
            raise click.ClickException(str(error)) from None
    dump = dump.expanduser().absolute()
    started = utcnow()
    if verify:
        result = verify_dump(dump, url, settings.backup)
        record_outcome(url, "verify", started, result.ok, result.reason, {"dump": str(dump)})
    else:
        assert into_url is not None
        result = restore(dump, into_url, settings.backup)
    document = result.as_dict()
    if result.ok:
        logger.info("%s %s: every check passed", "verified" if verify else "restored", dump)
    else:
        action = "verifying" if verify else "restoring"
        logger.error("%s %s failed: %s", action, dump, result.reason)
    _report(
        document,
        as_json,
        [f"{c.name}: {'ok' if c.ok else 'FAILED'}: {c.detail}" for c in result.checks],
    )
    if not result.ok:
        raise click.ClickException(
            f"{'verification' if verify else 'restore'} of {dump} failed: {result.reason}"
        )
