"""How the client commands draw the API's answers for people (rich tables)."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.table import Column, Table

STATUS_STYLES = {
    "Completed": "green",
    "Error": "red",
    "Skipped": "yellow",
    "Cancelled": "magenta",
    "Processing": "cyan",
    "Queued": "blue",
    "Refused": "red",
}


def _when(value: str | None) -> str:
    """An ISO timestamp to the second, without its zone (the API answers UTC)."""
    return (value or "")[:19].replace("T", " ")


def _status(value: str) -> str:
    style = STATUS_STYLES.get(value)
    return f"[{style}]{value}[/]" if style else value


def _values(variables: dict[str, Any]) -> str:
    return ", ".join(f"{name}={json.dumps(value)}" for name, value in variables.items())


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def run_page(out: Console, page: dict[str, Any]) -> None:
    table = Table("run", "version", "status", "experiment", "title", "queued", "message")
    for run in page["items"]:
        table.add_row(
            f"{run['instrument']} {run['run_number']}",
            str(run["run_version"]),
            _status(run["status"]),
            _escape(run["experiment_ref"]),
            _escape(run["title"]),
            _when(run["queued_at"]),
            _escape(run["message"]),
        )
    out.print(table)
    shown = page["offset"] + len(page["items"])
    more = f"; next: --offset {page['next_offset']}" if page.get("next_offset") is not None else ""
    out.print(f"{len(page['items'])} of {page['total']} run version(s) (to {shown}){more}")


def run_versions(out: Console, run: dict[str, Any]) -> None:
    out.print(f"[bold]{run['instrument']} {run['run_number']}[/]")
    for version in run["versions"]:
        out.print(
            f"v{version['run_version']}  {_status(version['status'])}  "
            f"{_escape(version['message'] or version['summary'])}"
        )
        details = [
            (
                "reason",
                version["reason"]
                + (f": {version['description']}" if version["description"] else ""),
            ),
            ("experiment", version["experiment_ref"]),
            ("title", version["title"]),
            ("data", version["data_path"]),
            ("variables", _values(version["variables"])),
            ("submitted by", version["submitted_by"]),
            ("queued", _when(version["queued_at"])),
            ("finished", _when(version["finished_at"])),
            ("error", version.get("error_category", "")),
            ("outputs", ", ".join(output["name"] for output in version["outputs"])),
        ]
        for name, value in details:
            if value:
                out.print(f"    {name:<13}{_escape(str(value))}")


def rerun_plan(out: Console, plan: dict[str, Any]) -> None:
    """A single re-run: the version it made, or (dry run) would make."""
    version, message = plan.get("run_version"), _escape(plan.get("message", ""))
    out.print(f"run {plan['run_number']} v{version}: {_status(plan['status'])} {message}")
    out.print(f"    variables    {_escape(_values(plan['variables']))}")
    for name, change in (plan.get("differences") or {}).items():
        old, new = json.dumps(change.get("from")), json.dumps(change.get("to"))
        out.print(f"    changes      {name}: {_escape(old)} → {_escape(new)}")


def batch(out: Console, item: dict[str, Any]) -> None:
    kind = "dry run of a batch" if item["dry_run"] else f"batch {item['id']}"
    out.print(
        f"[bold]{kind}[/] on {item['instrument']}, base {item['base']}, "
        f"changes {_escape(_values(item['changes'])) or 'none'}"
    )
    table = Table("run", "version", "status", "message")
    for run in item["runs"]:
        version = "" if run["run_version"] is None else str(run["run_version"])
        table.add_row(
            str(run["run_number"]), version, _status(run["status"]), _escape(run["message"])
        )
    out.print(table)


def failures(out: Console, page: dict[str, Any]) -> None:
    table = Table("count", "category", "signature", "instruments", "last seen", "fingerprint")
    for group in page["items"]:
        table.add_row(
            str(group["count"]),
            group["category"],
            _escape(group["signature"]),
            ", ".join(group["instruments"]),
            _when(group["last_seen"]),
            group["fingerprint"],
        )
    out.print(table)
    out.print(f"{page['total']} failure group(s) since {_when(page['since'])}")


def instruments(out: Console, items: list[dict[str, Any]]) -> None:
    table = Table("instrument", "plugin", "paused", "latest run", "runs by status")
    for item in items:
        counts = ", ".join(f"{status} {n}" for status, n in item["run_counts"].items() if n)
        latest = item["latest_run_number"]
        table.add_row(
            item["name"],
            item["plugin"],
            "paused" if item["paused"] else "",
            "" if latest is None else str(latest),
            counts,
        )
    out.print(table)


def instrument(out: Console, item: dict[str, Any]) -> None:
    state = "paused: its new runs are recorded and held" if item["paused"] else "running"
    out.print(f"{item['name']} ({item['plugin']}): {state}")


def rules(out: Console, items: list[dict[str, Any]]) -> None:
    table = Table("id", "applies to", "values", "reason", "by", "at")
    for rule in items:
        scope = (
            f"experiment {rule['experiment_ref']}"
            if rule["experiment_ref"] is not None
            else f"runs from {rule['from_run']}"
        )
        table.add_row(
            str(rule["id"]),
            _escape(scope),
            _escape(_values(rule["variables"])),
            _escape(rule["reason"]),
            rule["created_by"],
            _when(rule["created_at"]),
        )
    out.print(table)


def rule(out: Console, item: dict[str, Any]) -> None:
    rules(out, [item])


def experiment(out: Console, item: dict[str, Any]) -> None:
    counts = ", ".join(f"{status} {n}" for status, n in item["status_counts"].items() if n)
    out.print(
        f"[bold]experiment {_escape(item['ref'])}[/]: {item['run_count']} run(s), "
        f"{item['version_count']} version(s) on {', '.join(item['instruments'])}; {counts}"
    )
    out.print(f"first run {_when(item['first_run_at'])}, last {_when(item['last_run_at'])}")
    run_page(out, item["runs"])


def plugins(out: Console, items: list[dict[str, Any]]) -> None:
    table = Table(
        Column("plugin", no_wrap=True),
        Column("release", no_wrap=True),
        Column("state", no_wrap=True),
        "decided",
        "instruments",
    )
    styles = {"approved": "green", "revoked": "red", "pending": "yellow"}
    for item in items:
        decided = f"{item['decided_by']} {_when(item['decided_at'])}" if item["decided_by"] else ""
        table.add_row(
            item["name"],
            f"{item['distribution']} {item['version']}" if item["distribution"] else "in-process",
            f"[{styles.get(item['state'], '')}]{item['state']}[/]",
            _escape(decided),
            ", ".join(item["instruments"]),
        )
    out.print(table)
    out.print(f"{len(items)} plugin(s)")


def plugin_verdicts(out: Console, items: list[dict[str, Any]]) -> None:
    for item in items:
        out.print(f"{item['state']} {item['name']} {item['version']} ({item['distribution']})")


def uploads(out: Console, items: list[dict[str, Any]]) -> None:
    """One line per upload: its id, size, SHA-256 and file name."""
    for item in items:
        out.print(
            f"{item['id']}  {item['size_bytes']} bytes  sha256 {item['sha256']}  "
            f"{_escape(item['filename'])}"
        )


def job(
    out: Console,
    item: dict[str, Any],
    inputs: list[dict[str, Any]] | None = None,
    api_url: str = "",
) -> None:
    """A job: its state and message, plugin, inputs (with ``inputs``, the uploads' names and
    digests), variables and outputs (their URLs under ``api_url``)."""
    out.print(
        f"[bold]job {item['id']}[/]  {_status(item['status'])}  {_escape(item['message'])}".rstrip()
    )
    run = item["run"]
    details = [
        ("plugin", item["plugin"]),
        ("description", run["description"]),
        ("submitted by", f"{item['created_by']} at {_when(item['created_at'])}"),
        ("variables", _values(run["variables"])),
        ("finished", _when(run["finished_at"])),
        ("error", run.get("error_category", "")),
    ]
    for name, value in details:
        if value:
            out.print(f"    {name:<13}{_escape(str(value))}")
    for upload in inputs or [{"id": upload_id} for upload_id in item["inputs"]]:
        described = (
            f"  {upload['filename']} ({upload['size_bytes']} bytes, sha256 {upload['sha256']})"
            if "sha256" in upload
            else ""
        )
        out.print(f"    {'input':<13}{upload['id']}{_escape(described)}")
    for output in item["outputs"]:
        out.print(f"    {'output':<13}{_escape(output['name'])}  {api_url}{output['url']}")
