"""``autoreduce cleanup``: the retention clean-up of old run versions' logs and intermediates
(files and objects in the store) and of old uploads."""

from __future__ import annotations

import json
import logging

import click

from autoreduce.cli.startup import cli_settings, migrated_database, start_logging

logger = logging.getLogger("autoreduce.retention")


@click.command("cleanup")
@click.option(
    "--older-than",
    help="Clean run versions finished longer ago than this: 90d, 36h, 2w "
    "(default: setting retention.older_than, 90d).",
)
@click.option("--dry-run", is_flag=True, help="List what would be removed; remove nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def cleanup(older_than: str | None, dry_run: bool, as_json: bool) -> None:
    """Remove the logs and intermediate outputs of run versions finished before the cutoff,
    and uploads past retention (setting uploads.keep_days).

    Reduced data and plots, and every database row of the runs, stay (in the object store too).
    Reports the files, objects, uploads and bytes freed; --dry-run reports the same and removes
    nothing.
    """
    from autoreduce.audit import command_line_actor
    from autoreduce.db.models import utcnow
    from autoreduce.operations import record_outcome
    from autoreduce.retention import cleanup as clean
    from autoreduce.settings import duration_hours

    if older_than is not None:
        try:
            duration_hours(older_than)
        except ValueError as error:
            raise click.BadParameter(str(error), param_hint="--older-than") from None
    settings = cli_settings()
    start_logging("retention", settings)
    database = migrated_database(settings)
    started = utcnow()
    try:
        report = clean(
            settings,
            database,
            older_than=older_than,
            dry_run=dry_run,
            actor=command_line_actor(),
            now=started,
        )
    except Exception as error:
        if not dry_run:
            record_outcome(settings.resolved_database_url, "cleanup", started, False, str(error))
        raise
    finally:
        database.dispose()
    document = report.as_dict()
    if not dry_run:
        record_outcome(
            settings.resolved_database_url,
            "cleanup",
            started,
            True,
            details={
                k: document[k]
                for k in (
                    "run_versions",
                    "file_count",
                    "bytes",
                    "log_lines",
                    "object_count",
                    "object_bytes",
                    "upload_count",
                    "upload_bytes",
                )
            },
        )
    verb = "would remove" if dry_run else "removed"
    if as_json:
        click.echo(json.dumps(document, indent=2))
    else:
        for path, size in report.files:
            click.echo(f"{verb}\t{size}\t{path}")
        for url, size in report.objects:
            click.echo(f"{verb}\t{size}\t{url}")
        for upload in report.uploads:
            click.echo(f"{verb}\t{upload.size}\tupload {upload.upload_id}\t{upload.reason}")
        for where, reason in report.skipped:
            click.echo(f"skipped\t{where}\t{reason}")
    summary = (
        f"{verb} {document['file_count']} file(s), {document['bytes']} bytes, "
        f"{document['object_count']} stored object(s), {document['object_bytes']} bytes, and "
        f"{document['log_lines']} log line(s) of {document['run_versions']} run version(s) "
        f"finished before {report.cutoff:%Y-%m-%d %H:%M} UTC; {document['upload_count']} "
        f"upload(s), {document['upload_bytes']} bytes"
    )
    logger.info(summary)
    if not as_json:
        click.echo(summary, err=True)
