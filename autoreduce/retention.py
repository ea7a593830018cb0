"""The retention clean-up: old run versions lose their logs and intermediate outputs.

For every run version that reached a final state before the cutoff and was not cleaned yet:

- **kept**: the run's database row, its output rows, and the files it recorded as reduced data
  or plots (``run_outputs`` of kind ``data`` and ``plot``): they are the product;
- **removed**: its logs — ``reduction.log`` and ``reduction.jsonl`` in its output directory and
  the copy shipped to the database (``run_log_lines``) — and its *intermediate outputs*: every
  other file in its output directory (what the plugin wrote but did not list in its result,
  which is neither recorded nor served) and the work directories earlier attempts left beside it
  (``.v0.tmp-*``, ``.v0.stale-*``).

Paths come only from the outputs root: a version's output directory must resolve to itself
below it (else the version is skipped with the reason), the walk never follows a symlink and
never removes one, and each file is checked again (a regular file, in a directory that still
resolves to itself) just before it is removed. A cleaned version gets a ``retention_cleanups``
row, so the API and the UI say "log removed by retention" rather than "not found", and the run
leaves one audit event (``retention.cleanup``). ``dry_run`` makes the same plan and removes
nothing, so its report lists exactly what the real run would remove.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from autoreduce.audit import Actor, record_event
from autoreduce.db import Database
from autoreduce.db.models import (
    ReductionRun,
    RetentionCleanup,
    RunLogLine,
    RunOutput,
    RunStatus,
    utcnow,
)
from autoreduce.paths import UnsafePathError, confine
from autoreduce.settings import Settings, duration_hours

logger = logging.getLogger("autoreduce.retention")

KEPT_KINDS = ("data", "plot")
FINAL_STATES = tuple(state.value for state in RunStatus if state.is_final)
BATCH = 500


@dataclass
class VersionPlan:
    """What the clean-up removes of one run version."""

    run_id: int
    label: str
    files: list[tuple[Path, int]] = field(default_factory=list)
    directories: list[Path] = field(default_factory=list)  # removed when empty, deepest first
    log_lines: int = 0


@dataclass
class Report:
    """What a clean-up removed (or, dry, would remove)."""

    older_than: str
    cutoff: datetime
    dry_run: bool
    versions: list[VersionPlan] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)

    @property
    def files(self) -> list[tuple[Path, int]]:
        return [entry for version in self.versions for entry in version.files]

    @property
    def bytes(self) -> int:
        return sum(size for _, size in self.files)

    @property
    def log_lines(self) -> int:
        return sum(version.log_lines for version in self.versions)

    def as_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "older_than": self.older_than,
            "cutoff": self.cutoff.isoformat(),
            "run_versions": len(self.versions),
            "file_count": len(self.files),
            "bytes": self.bytes,
            "log_lines": self.log_lines,
            "files": [{"path": str(path), "bytes": size} for path, size in self.files],
            "skipped": [{"path": path, "reason": reason} for path, reason in self.skipped],
        }


def cutoff_of(older_than: str, now: datetime) -> datetime:
    return now - timedelta(hours=duration_hours(older_than))


def _label(run: ReductionRun) -> str:
    return f"{run.instrument} {run.run_number} v{run.run_version}"


def _real_directory(root: Path, path: Path, what: str) -> Path:
    """``path`` if it is a directory that resolves to itself strictly below ``root``."""
    resolved = confine(root, path, what=what)
    if resolved != path:
        raise UnsafePathError(f"{what} {str(path)!r} resolves to {str(resolved)!r}: not followed")
    if resolved == confine(root, root):
        raise UnsafePathError(f"{what} {str(path)!r} is the outputs root itself")
    return resolved


def _walk(top: Path, keep: set[str], plan: VersionPlan, report: Report) -> None:
    """Add every regular file under ``top`` but the ``keep`` names (relative) to ``plan``."""
    for current, dirnames, filenames in os.walk(top, followlinks=False):
        here = Path(current)
        for name in sorted(dirnames):
            if (here / name).is_symlink():
                report.skipped.append((str(here / name), "a symlink: neither followed nor removed"))
        for name in sorted(filenames):
            path = here / name
            relative = path.relative_to(top).as_posix()
            try:
                info = path.lstat()
            except OSError:
                continue
            if stat.S_ISLNK(info.st_mode):
                report.skipped.append((str(path), "a symlink: neither followed nor removed"))
            elif relative not in keep and stat.S_ISREG(info.st_mode):
                plan.files.append((path, info.st_size))
        if here != top:
            plan.directories.append(here)


def _plan_version(
    root: Path, run: ReductionRun, keep: set[str], log_lines: int, report: Report
) -> VersionPlan:
    plan = VersionPlan(run.id, _label(run), log_lines=log_lines)
    if not run.output_dir:
        return plan
    if run.output_dir.startswith("s3://"):
        report.skipped.append((run.output_dir, f"{plan.label}: in the object store: files kept"))
        return plan
    try:
        output_dir = _real_directory(root, Path(run.output_dir), "output directory")
    except UnsafePathError as error:
        report.skipped.append((run.output_dir, f"{plan.label}: {error}"))
        return plan
    if output_dir.is_dir():
        _walk(output_dir, keep, plan, report)
    if output_dir.parent.is_dir():
        leftovers = [
            *output_dir.parent.glob(f".{output_dir.name}.tmp-*"),
            *output_dir.parent.glob(f".{output_dir.name}.stale-*"),
        ]
        for stale in sorted(leftovers):
            if stale.is_symlink() or not stale.is_dir():
                report.skipped.append((str(stale), "not a real directory: left alone"))
                continue
            _walk(stale, set(), plan, report)
            plan.directories.append(stale)
    plan.directories.sort(key=lambda path: len(path.parts), reverse=True)
    return plan


def _candidates(session: Session, cutoff: datetime, after_id: int) -> list[ReductionRun]:
    cleaned = select(RetentionCleanup.run_id)
    return list(
        session.scalars(
            select(ReductionRun)
            .where(
                ReductionRun.id > after_id,
                ReductionRun.status.in_(FINAL_STATES),
                ReductionRun.finished_at < cutoff,
                ReductionRun.id.not_in(cleaned),
            )
            .order_by(ReductionRun.id)
            .limit(BATCH)
        ).all()
    )


def _batches(database: Database, cutoff: datetime) -> Iterator[tuple[ReductionRun, set[str], int]]:
    """Each version to clean, the names of its kept outputs and its shipped log lines."""
    after_id = 0
    while True:
        with database.read_session() as session:
            runs = _candidates(session, cutoff, after_id)
            if not runs:
                return
            ids = [run.id for run in runs]
            kept: dict[int, set[str]] = {}
            for run_id, name in session.execute(
                select(RunOutput.run_id, RunOutput.name).where(
                    RunOutput.run_id.in_(ids), RunOutput.kind.in_(KEPT_KINDS)
                )
            ).all():
                kept.setdefault(run_id, set()).add(name)
            lines = dict(
                session.execute(
                    select(RunLogLine.run_id, func.count())
                    .where(RunLogLine.run_id.in_(ids))
                    .group_by(RunLogLine.run_id)
                ).all()
            )
        for run in runs:
            yield run, kept.get(run.id, set()), int(lines.get(run.id, 0))
        after_id = ids[-1]


def plan(settings: Settings, database: Database, older_than: str, now: datetime) -> Report:
    """What a clean-up of versions finished more than ``older_than`` before ``now`` removes."""
    report = Report(older_than, cutoff_of(older_than, now), dry_run=True)
    root = settings.outputs_root
    for run, keep, log_lines in _batches(database, report.cutoff):
        report.versions.append(_plan_version(root, run, keep, log_lines, report))
    return report


def _still_safe(root: Path, path: Path) -> bool:
    """``path`` is still a regular file whose directory resolves to itself below ``root``."""
    try:
        if confine(root, path.parent) != path.parent:
            return False
        return stat.S_ISREG(path.lstat().st_mode)
    except (UnsafePathError, OSError):
        return False


def _remove(root: Path, version: VersionPlan, report: Report) -> VersionPlan:
    done = VersionPlan(version.run_id, version.label, log_lines=version.log_lines)
    for path, size in version.files:
        if not _still_safe(root, path):
            report.skipped.append((str(path), "changed since it was listed: left alone"))
            continue
        try:
            path.unlink()
        except FileNotFoundError:
            continue
        except OSError as error:
            report.skipped.append((str(path), f"cannot be removed: {error.strerror}"))
            continue
        done.files.append((path, size))
    for directory in version.directories:
        try:
            if confine(root, directory) == directory and not directory.is_symlink():
                directory.rmdir()  # only when empty: a kept symlink keeps it
        except (UnsafePathError, OSError):
            pass
    return done


def cleanup(
    settings: Settings,
    database: Database,
    *,
    older_than: str | None = None,
    dry_run: bool = False,
    actor: Actor | None = None,
    now: datetime | None = None,
) -> Report:
    """Remove (or, ``dry_run``, list) the logs and intermediate outputs of old run versions."""
    older_than = older_than or settings.retention.older_than
    now = now or utcnow()
    planned = plan(settings, database, older_than, now)
    if dry_run:
        return planned
    report = Report(older_than, planned.cutoff, dry_run=False, skipped=planned.skipped)
    root = settings.outputs_root
    for version in planned.versions:
        done = _remove(root, version, report)
        with database.session() as session:
            session.execute(delete(RunLogLine).where(RunLogLine.run_id == version.run_id))
            session.merge(
                RetentionCleanup(
                    run_id=version.run_id,
                    cleaned_at=now,
                    files=len(done.files),
                    bytes_freed=sum(size for _, size in done.files),
                    log_lines=done.log_lines,
                )
            )
        report.versions.append(done)
    if report.versions:
        with database.session() as session:
            record_event(
                session,
                actor or Actor("retention", "operator"),
                "retention.cleanup",
                f"{len(report.versions)} run version(s) finished before {report.cutoff:%Y-%m-%d}",
                details={
                    "older_than": older_than,
                    "cutoff": report.cutoff.isoformat(),
                    "run_versions": len(report.versions),
                    "files": len(report.files),
                    "bytes": report.bytes,
                    "log_lines": report.log_lines,
                },
            )
    return report


def retention_of(session: Session, run_ids: list[int]) -> dict[int, datetime]:
    """When the clean-up removed files or log lines of each of ``run_ids`` that it cleaned."""
    if not run_ids:
        return {}
    rows = session.execute(
        select(RetentionCleanup.run_id, RetentionCleanup.cleaned_at).where(
            RetentionCleanup.run_id.in_(run_ids),
            (RetentionCleanup.files > 0) | (RetentionCleanup.log_lines > 0),
        )
    ).all()
    return {run_id: cleaned_at for run_id, cleaned_at in rows}
