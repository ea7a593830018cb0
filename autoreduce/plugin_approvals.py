"""Plugin approval: a plugin runs only at a distribution version an admin approved.

A plugin found through the ``autoreduce.plugins`` entry points is identified by its name, the
distribution that installs it and that distribution's version (:class:`PluginRelease`). An
approval row says ``approved`` or ``revoked`` for one such release; a release without a row is
``pending``, so upgrading a plugin's package makes it pending again. Plugins registered
in-process (a pluggy manager built by the caller, as tests do) have no distribution and count
as approved: only code already running in the process can register them.

Runs of an instrument whose plugin is not approved are recorded and held (Queued, with a
``held: plugin …`` message): the outbox relay keeps their messages back (:class:`PluginGate`),
and a processor whose own installed version is not approved hands a delivered message back to
the outbox, marked with that release, instead of reducing it. Approving a release clears the
message of the runs held for it; the relay then sends them.
"""

from __future__ import annotations

import enum
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, exists, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from autoreduce.audit import Actor, record_event
from autoreduce.db import Database
from autoreduce.db.models import OutboxMessage, PluginApproval, ReductionRun, RunStatus, utcnow
from autoreduce.plugin_manager import PluginRelease, Plugins
from autoreduce.state_machine import PLUGIN_HELD_PREFIX, plugin_held_message

logger = logging.getLogger("autoreduce.plugins")

BUILTIN_DISTRIBUTION = "autoreduce"
"""The distribution of the built-in plugins (``autoreduce plugins approve --builtin``)."""


class ApprovalState(enum.StrEnum):
    APPROVED = "approved"
    REVOKED = "revoked"
    PENDING = "pending"


@dataclass(frozen=True)
class PluginStatus:
    """One installed plugin and the verdict on its installed version."""

    release: PluginRelease
    state: ApprovalState
    decided_by: str | None = None
    decided_at: datetime | None = None


def _release_is(release: PluginRelease) -> ColumnElement[bool]:
    return and_(
        PluginApproval.plugin == release.name,
        PluginApproval.distribution == release.distribution,
        PluginApproval.version == release.version,
    )


def status_of(session: Session, release: PluginRelease) -> PluginStatus:
    """The verdict on ``release``: approved, revoked, or pending (no row)."""
    if not release.from_entry_point:
        return PluginStatus(release, ApprovalState.APPROVED)
    row = session.scalar(select(PluginApproval).where(_release_is(release)))
    if row is None:
        return PluginStatus(release, ApprovalState.PENDING)
    return PluginStatus(release, ApprovalState(row.state), row.decided_by, row.decided_at)


def statuses(session: Session, releases: list[PluginRelease]) -> list[PluginStatus]:
    """The verdicts on ``releases`` (one query)."""
    rows = {
        (row.plugin, row.distribution, row.version): row
        for row in session.scalars(
            select(PluginApproval).where(
                PluginApproval.plugin.in_([release.name for release in releases])
            )
        )
    }
    found = []
    for release in releases:
        row = rows.get((release.name, release.distribution, release.version))
        if not release.from_entry_point:
            found.append(PluginStatus(release, ApprovalState.APPROVED))
        elif row is None:
            found.append(PluginStatus(release, ApprovalState.PENDING))
        else:
            found.append(
                PluginStatus(release, ApprovalState(row.state), row.decided_by, row.decided_at)
            )
    return found


def held_prefix(release: PluginRelease) -> str:
    """How the message of a run held for exactly ``release`` begins."""
    return f"{PLUGIN_HELD_PREFIX}{release.name} {release.version} "


def decide(
    database: Database, release: PluginRelease, state: ApprovalState, actor: Actor
) -> PluginStatus:
    """Record ``state`` (approved or revoked) for ``release``, with its audit event.

    Approving clears the message of the Queued runs held for this release; the outbox relay
    sends their messages on its next pass.

    Raises:
        ValueError: ``release`` has no distribution (registered in-process), or ``state`` is
            pending (a verdict is approved or revoked).
    """
    if not release.from_entry_point:
        raise ValueError(f"plugin {release.name} is registered in-process and needs no approval")
    if state is ApprovalState.PENDING:
        raise ValueError("a verdict is approved or revoked")
    for _ in range(2):  # two verdicts on a new release may race to insert its row
        try:
            with database.session() as session:
                now = utcnow()
                row = session.scalar(select(PluginApproval).where(_release_is(release)))
                if row is None:
                    row = PluginApproval(
                        plugin=release.name,
                        distribution=release.distribution,
                        version=release.version,
                    )
                    session.add(row)
                row.state, row.decided_by, row.decided_at = state.value, actor.name[:100], now
                if state is ApprovalState.APPROVED:
                    _release_held_runs(session, release)
                action = "plugin.approve" if state is ApprovalState.APPROVED else "plugin.revoke"
                record_event(
                    session,
                    actor,
                    action,
                    f"plugin {release}",
                    details={"distribution": release.distribution, "version": release.version},
                )
            logger.info("plugin %s %s by %s", release, state.value, actor.name)
            return PluginStatus(release, state, actor.name[:100], now)
        except IntegrityError:
            continue
    raise ValueError(f"plugin {release} was decided concurrently; retry")


def _release_held_runs(session: Session, release: PluginRelease) -> None:
    session.execute(
        update(ReductionRun)
        .where(
            ReductionRun.status == RunStatus.QUEUED.value,
            ReductionRun.message.startswith(held_prefix(release), autoescape=True),
        )
        .values(message="")
        .execution_options(synchronize_session=False)
    )


def approved_held_rows() -> ColumnElement[bool]:
    """Outbox rows that a processor did not hand back, or whose release is now approved."""
    approved = exists().where(
        PluginApproval.plugin == OutboxMessage.held_plugin,
        PluginApproval.distribution == OutboxMessage.held_distribution,
        PluginApproval.version == OutboxMessage.held_version,
        PluginApproval.state == ApprovalState.APPROVED.value,
    )
    return or_(OutboxMessage.held_plugin.is_(None), approved)


class PluginGate:
    """Which instruments' runs are held because their plugin, as installed here, is not approved.

    The installed releases are read once (a process loads its plugins once); the verdicts are
    read from the database at every question, so a verdict takes effect at once.
    """

    def __init__(self, plugins: Plugins | None, instrument_plugins: Mapping[str, str]) -> None:
        releases = plugins.releases() if plugins is not None else []
        self.releases = {release.name: release for release in releases}
        self.instrument_plugins = dict(instrument_plugins)

    def release_for(self, instrument: str) -> PluginRelease | None:
        """The installed release of ``instrument``'s plugin; None if unknown or not installed."""
        return self.releases.get(self.instrument_plugins.get(instrument, ""))

    def held_message(self, session: Session, instrument: str) -> str:
        """The message a Queued run of ``instrument`` carries while held here, or ""."""
        release = self.release_for(instrument)
        if release is None or not release.from_entry_point:
            return ""
        status = status_of(session, release)
        if status.state is ApprovalState.APPROVED:
            return ""
        return plugin_held_message(release.name, release.version, status.state.value)

    def blocked(self, session: Session) -> dict[str, str]:
        """Every instrument whose runs are held here, with the message they carry (one query)."""
        used = {
            name: release
            for name in set(self.instrument_plugins.values())
            if (release := self.releases.get(name)) is not None and release.from_entry_point
        }
        if not used:
            return {}
        verdicts = {status.release.name: status for status in statuses(session, [*used.values()])}
        return {
            instrument: plugin_held_message(
                plugin, used[plugin].version, verdicts[plugin].state.value
            )
            for instrument, plugin in self.instrument_plugins.items()
            if plugin in verdicts and verdicts[plugin].state is not ApprovalState.APPROVED
        }


def mark_held_runs(session: Session, blocked: Mapping[str, str]) -> None:
    """Say in each waiting run's message that it is held for its plugin (``blocked``: instrument
    → message), for the runs whose outbox message is unsent; a pause's message is kept."""
    for instrument, message in blocked.items():
        bodies = session.scalars(
            select(OutboxMessage.body).where(
                OutboxMessage.instrument == instrument,
                OutboxMessage.sent_at.is_(None),
                OutboxMessage.held_plugin.is_(None),
            )
        )
        run_ids = [json.loads(body).get("run_id") for body in bodies]
        if not run_ids:
            continue
        session.execute(
            update(ReductionRun)
            .where(
                ReductionRun.id.in_(run_ids),
                ReductionRun.status == RunStatus.QUEUED.value,
                or_(
                    ReductionRun.message == "",
                    ReductionRun.message.startswith(PLUGIN_HELD_PREFIX, autoescape=True),
                ),
            )
            .values(message=message)
            .execution_options(synchronize_session=False)
        )


def approve_builtin(database: Database, plugins: Plugins, actor: Actor) -> list[PluginStatus]:
    """Approve every plugin the ``autoreduce`` distribution itself installs, at its version."""
    return [
        decide(database, release, ApprovalState.APPROVED, actor)
        for release in plugins.releases()
        if release.distribution == BUILTIN_DISTRIBUTION
    ]
