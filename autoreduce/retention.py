"""The retention clean-up: old run versions lose their logs and intermediate outputs; old
uploads are removed.

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

A version published to the object store (``output_dir`` an ``s3://`` base URL, see
:mod:`autoreduce.storage`) is cleaned there by the same rule: of the keys under its run
version's prefix, the objects of its recorded data and plots and the attempt's
``manifest.json`` (the record of what was published) stay; its log and every key of other
attempts (a publication a killed processor left behind) are deleted.

**Uploads** (``uploads`` rows whose file or object is still kept) are removed when no job names
them and they are older than ``[uploads] keep_days``, or when every job that names them has
run versions that are all final and finished before the cutoff. The file (``storage = "file"``)
or object goes; the row stays with ``removed_at`` set (its name, size and SHA-256 remain the
record) and no new job may name it. The row is marked *before* the file goes and the rule is
checked again after marking, so a job created meanwhile keeps its upload.
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

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from autoreduce.audit import Actor, record_event
from autoreduce.db import Database
from autoreduce.db.models import (
    Job,
    ReductionRun,
    RetentionCleanup,
    RunLogLine,
    RunOutput,
    RunStatus,
    Upload,
    utcnow,
)
from autoreduce.jobs import JOB_INSTRUMENT
from autoreduce.paths import UnsafePathError, confine
from autoreduce.settings import Settings, duration_hours
from autoreduce.storage import MANIFEST, ObjectStore, StoreError, open_store, remove_upload

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
    objects: list[tuple[str, int]] = field(default_factory=list)  # (s3:// URL, size)


@dataclass
class UploadPlan:
    """One upload the clean-up removes: its file or object goes, its row is marked."""

    upload_id: str
    location: str
    size: int
    reason: str


@dataclass
class Report:
    """What a clean-up removed (or, dry, would remove)."""

    older_than: str
    cutoff: datetime
    dry_run: bool
    versions: list[VersionPlan] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    uploads: list[UploadPlan] = field(default_factory=list)

    @property
    def files(self) -> list[tuple[Path, int]]:
        return [entry for version in self.versions for entry in version.files]

    @property
    def objects(self) -> list[tuple[str, int]]:
        return [entry for version in self.versions for entry in version.objects]

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
            "object_count": len(self.objects),
            "object_bytes": sum(size for _, size in self.objects),
            "objects": [{"url": url, "bytes": size} for url, size in self.objects],
            "upload_count": len(self.uploads),
            "upload_bytes": sum(upload.size for upload in self.uploads),
            "uploads": [
                {
                    "id": upload.upload_id,
                    "location": upload.location,
                    "bytes": upload.size,
                    "reason": upload.reason,
                }
                for upload in self.uploads
            ],
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


def _plan_objects(
    store: ObjectStore | None, run: ReductionRun, keep: set[str], plan: VersionPlan, report: Report
) -> None:
    """Add the version's objects but its kept outputs and manifest to ``plan``."""
    if store is None:
        report.skipped.append(
            (run.output_dir, f"{plan.label}: in an object store, but storage is 'file' here")
        )
        return
    try:
        base = store.key_of(run.output_dir)
        prefix = store.run_prefix(run.instrument, run.run_number, run.run_version)
        if not base.startswith(f"{prefix}/"):
            raise UnsafePathError(f"{run.output_dir[:200]!r} is not under {prefix}")
        found = store.objects_under(prefix)
    except (StoreError, UnsafePathError, ValueError) as error:
        report.skipped.append((run.output_dir, f"{plan.label}: {error}"))
        return
    kept = {f"{base}/{name}" for name in (*keep, MANIFEST)}
    plan.objects.extend((store.url(key), size) for key, size in found if key not in kept)


def _plan_version(
    root: Path,
    store: ObjectStore | None,
    run: ReductionRun,
    keep: set[str],
    log_lines: int,
    report: Report,
) -> VersionPlan:
    plan = VersionPlan(run.id, _label(run), log_lines=log_lines)
    if not run.output_dir:
        return plan
    if run.output_dir.startswith("s3://"):
        _plan_objects(store, run, keep, plan, report)
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


def _removable_uploads(
    session: Session, upload_cutoff: datetime, run_cutoff: datetime, ids: list[str] | None = None
) -> list[tuple[Upload, str]]:
    """The uploads the clean-up removes (``ids``: only those, removed or not), with why."""
    query = select(Upload).order_by(Upload.id)
    if ids is None:
        query = query.where(Upload.removed_at.is_(None))
    else:
        query = query.where(Upload.id.in_(ids))
    uploads = list(session.scalars(query))
    if not uploads:
        return []
    runs_of: dict[int, list[tuple[str, datetime | None]]] = {}
    for run_number, status, finished_at in session.execute(
        select(ReductionRun.run_number, ReductionRun.status, ReductionRun.finished_at).where(
            ReductionRun.instrument == JOB_INSTRUMENT
        )
    ).all():
        runs_of.setdefault(run_number, []).append((status, finished_at))
    namers: dict[str, list[int]] = {}
    for job_id, inputs in session.execute(select(Job.id, Job.inputs)).all():
        for upload_id in inputs or []:
            namers.setdefault(upload_id, []).append(job_id)

    def past(job_id: int) -> bool:
        runs = runs_of.get(job_id, [])
        return bool(runs) and all(
            status in FINAL_STATES and finished_at is not None and finished_at < run_cutoff
            for status, finished_at in runs
        )

    removable = []
    for upload in uploads:
        jobs = namers.get(upload.id, [])
        if not jobs and upload.created_at < upload_cutoff:
            removable.append((upload, f"no job names it; created before {upload_cutoff:%Y-%m-%d}"))
        elif jobs and all(past(job_id) for job_id in jobs):
            named = ", ".join(str(job_id) for job_id in jobs[:5])
            removable.append((upload, f"job(s) {named} finished before {run_cutoff:%Y-%m-%d}"))
    return removable


def upload_cutoff_of(settings: Settings, now: datetime) -> datetime:
    return now - timedelta(days=settings.uploads.keep_days)


def plan(
    settings: Settings,
    database: Database,
    older_than: str,
    now: datetime,
    store: ObjectStore | None = None,
) -> Report:
    """What a clean-up of versions finished more than ``older_than`` before ``now`` removes,
    and which uploads it removes."""
    report = Report(older_than, cutoff_of(older_than, now), dry_run=True)
    root = settings.outputs_root
    for run, keep, log_lines in _batches(database, report.cutoff):
        report.versions.append(_plan_version(root, store, run, keep, log_lines, report))
    with database.read_session() as session:
        report.uploads = [
            UploadPlan(upload.id, upload.location, upload.size_bytes, reason)
            for upload, reason in _removable_uploads(
                session, upload_cutoff_of(settings, now), report.cutoff
            )
        ]
    return report


def _still_safe(root: Path, path: Path) -> bool:
    """``path`` is still a regular file whose directory resolves to itself below ``root``."""
    try:
        if confine(root, path.parent) != path.parent:
            return False
        return stat.S_ISREG(path.lstat().st_mode)
    except (UnsafePathError, OSError):
        return False


def _remove_objects(
    store: ObjectStore | None, version: VersionPlan, done: VersionPlan, report: Report
) -> None:
    if not version.objects:
        return
    assert store is not None  # objects are planned only with a store
    keys = {store.key_of(url): (url, size) for url, size in version.objects}
    try:
        refused = set(store.delete_keys(list(keys)))
    except StoreError as error:
        report.skipped.append((version.label, f"objects kept: {error}"))
        return
    for key, (url, size) in keys.items():
        if key in refused:
            report.skipped.append((url, "the store refused to delete it"))
        else:
            done.objects.append((url, size))


def _remove_uploads(
    settings: Settings,
    store: ObjectStore | None,
    database: Database,
    planned: list[UploadPlan],
    report: Report,
    now: datetime,
) -> None:
    """Mark the planned uploads removed, keep those a job named meanwhile, remove the rest."""
    if not planned:
        return
    ids = [upload.upload_id for upload in planned]
    with database.session() as session:
        marked = set(
            session.scalars(
                select(Upload.id).where(Upload.id.in_(ids), Upload.removed_at.is_(None))
            )
        )
        session.execute(
            update(Upload)
            .where(Upload.id.in_(marked))
            .values(removed_at=now)  # no new job may name them from here on
        )
    with database.read_session() as session:  # checked again, now that they are marked
        still = {
            upload.id
            for upload, _ in _removable_uploads(
                session, upload_cutoff_of(settings, now), report.cutoff, sorted(marked)
            )
        }
    unmark: list[str] = []
    for upload in planned:
        if upload.upload_id not in marked or upload.upload_id not in still:
            report.skipped.append((upload.location, f"upload {upload.upload_id}: kept, in use"))
            unmark.append(upload.upload_id)
            continue
        try:
            remove_upload(settings, store, upload.location)
        except (StoreError, UnsafePathError, OSError) as error:
            report.skipped.append((upload.location, f"upload {upload.upload_id}: {error}"))
            unmark.append(upload.upload_id)
            continue
        report.uploads.append(upload)
    unmark = [upload_id for upload_id in unmark if upload_id in marked]
    if unmark:
        with database.session() as session:
            session.execute(update(Upload).where(Upload.id.in_(unmark)).values(removed_at=None))


def _remove(
    root: Path, store: ObjectStore | None, version: VersionPlan, report: Report
) -> VersionPlan:
    done = VersionPlan(version.run_id, version.label, log_lines=version.log_lines)
    _remove_objects(store, version, done, report)
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
    """Remove (or, ``dry_run``, list) the logs and intermediate outputs of old run versions
    (files and objects) and the uploads past retention."""
    older_than = older_than or settings.retention.older_than
    now = now or utcnow()
    store = open_store(settings)
    planned = plan(settings, database, older_than, now, store)
    if dry_run:
        return planned
    report = Report(older_than, planned.cutoff, dry_run=False, skipped=planned.skipped)
    root = settings.outputs_root
    for version in planned.versions:
        done = _remove(root, store, version, report)
        with database.session() as session:
            session.execute(delete(RunLogLine).where(RunLogLine.run_id == version.run_id))
            session.merge(
                RetentionCleanup(
                    run_id=version.run_id,
                    cleaned_at=now,
                    files=len(done.files) + len(done.objects),
                    bytes_freed=sum(size for _, size in [*done.files, *done.objects]),
                    log_lines=done.log_lines,
                )
            )
        report.versions.append(done)
    _remove_uploads(settings, store, database, planned.uploads, report, now)
    if report.versions or report.uploads:
        with database.session() as session:
            record_event(
                session,
                actor or Actor("retention", "operator"),
                "retention.cleanup",
                f"{len(report.versions)} run version(s) finished before {report.cutoff:%Y-%m-%d}"
                f", {len(report.uploads)} upload(s)",
                details={
                    "older_than": older_than,
                    "cutoff": report.cutoff.isoformat(),
                    "run_versions": len(report.versions),
                    "files": len(report.files),
                    "bytes": report.bytes,
                    "log_lines": report.log_lines,
                    "objects": len(report.objects),
                    "uploads": [upload.upload_id for upload in report.uploads],
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
