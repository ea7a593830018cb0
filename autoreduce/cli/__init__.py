"""The ``autoreduce`` command: one module per group of subcommands.

This package is the only part of ``autoreduce`` that imports the service packages
(``rest_api``, ``run_detection``, ``queue_processor``), and each subcommand imports its service
only when it runs, so ``autoreduce --help`` stays quick. The client commands (``runs``,
``reruns``, ``failures``, ``instruments``, ``rules``, ``experiments``, ``plugins``, ``login``)
import none: they talk to the API over HTTP (:mod:`autoreduce.cli.client`); ``plugins --local``
acts on this host's database instead.
"""

from __future__ import annotations

import click

from autoreduce import __version__
from autoreduce.cli import (
    alerts,
    clients,
    config,
    database,
    dlq,
    experiments,
    instruments,
    login,
    observability,
    plugins,
    queue_ops,
    reduce,
    reruns,
    retention,
    runs,
    services,
    shipping,
    tokens,
    users,
)
from autoreduce.cli.startup import AutoreduceGroup


@click.group(
    cls=AutoreduceGroup,
    epilog="The client commands (runs, reruns, failures, instruments, rules, experiments, "
    "plugins, login) exit 0 done, 1 the API said no (4xx), 2 usage error, 3 the API cannot be "
    "reached, 4 not signed in or not allowed (401/403), 5 the API failed (5xx).",
)
@click.version_option(__version__, prog_name="autoreduce")
def main() -> None:
    """Reduce scientific data the moment an instrument writes it."""


runs.runs.add_command(queue_ops.requeue)  # `runs requeue --stuck`: on the database, not the API

for command in (
    *services.COMMANDS,
    reduce.reduce,
    config.config,
    database.db,
    retention.cleanup,
    tokens.token,
    clients.client,
    users.user,
    dlq.dlq,
    alerts.alerts,
    shipping.ship_logs,
    observability.observability,
    # clients of the API (HTTP only)
    runs.runs,
    reruns.reruns,
    experiments.failures,
    instruments.instruments,
    instruments.rules,
    experiments.experiments,
    login.login,
    plugins.plugins,  # and, with --local, on this host's database
    # operators' tools on the database and the broker
    queue_ops.queue,
    queue_ops.processors,
):
    main.add_command(command)

__all__ = ["main"]
