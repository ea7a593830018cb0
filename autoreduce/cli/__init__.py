"""The ``autoreduce`` command: one module per group of subcommands.

This package is the only part of ``autoreduce`` that imports the service packages
(``rest_api``, ``run_detection``, ``queue_processor``), and each subcommand imports its service
only when it runs, so ``autoreduce --help`` stays quick. A subcommand's own module is imported
only when the subcommand is named (:data:`COMMANDS`), so ``autoreduce process`` does not load the
client commands' libraries (requests, rich, yaml). The client commands (``runs``, ``reruns``,
``failures``, ``instruments``, ``rules``, ``upload``, ``jobs``, ``experiments``, ``plugins``,
``login``) import none:
they talk to the API over HTTP (:mod:`autoreduce.cli.client`); ``plugins --local`` acts on this
host's database instead.
"""

from __future__ import annotations

import click

from autoreduce import __version__
from autoreduce.cli.startup import AutoreduceGroup, LazyCommand

_L = LazyCommand
COMMANDS = (
    # the services
    _L(
        "api",
        "services:api",
        "Serve the REST API, the web UI and the outbox relay.",
    ),
    _L(
        "detect",
        "services:detect",
        "Watch every configured lastruns.txt and submit new runs to the API.",
    ),
    _L(
        "process",
        "services:process",
        "Consume the pending queue and reduce each run in an isolated child process.",
    ),
    _L(
        "up", "services:up", "Run every service at once (API, detector, N processors) until Ctrl-C."
    ),
    _L(
        "demo",
        "services:demo",
        "Create a demo archive, start everything and play instruments writing runs.",
    ),
    # on this host
    _L(
        "reduce",
        "reduce:reduce",
        "Reduce one data file with one plugin, here and now; print its outputs and summary.",
    ),
    _L(
        "config",
        "config:config",
        "The configuration: autoreduce.toml (or $AUTOREDUCE_CONFIG) and AUTOREDUCE_* variables.",
    ),
    _L(
        "db",
        "database:db",
        "Database schema, backups and restores.",
    ),
    _L(
        "cleanup",
        "retention:cleanup",
        "Remove the logs and intermediate outputs of run versions finished before the cutoff, "
        "and uploads past retention (setting uploads.keep_days).",
    ),
    _L(
        "token",
        "tokens:token",
        "API tokens (stored hashed; shown once).",
    ),
    _L(
        "client",
        "clients:client",
        "OAuth2 clients: machines that obtain access tokens with an id and a secret.",
    ),
    _L(
        "user",
        "users:user",
        "Local accounts that sign in to the web UI.",
    ),
    _L(
        "dlq",
        "dlq:dlq",
        "The dead-letter queue: messages that could not be processed, with their reasons.",
    ),
    _L(
        "alerts",
        "alerts:alerts",
        "Alerts on errors, silent instruments, stalled runs, latency, processors, queues, disk.",
    ),
    _L(
        "ship-logs",
        "shipping:ship_logs",
        "Send this host's JSON-lines logs to Elasticsearch (8.x), losing and repeating none.",
    ),
    _L(
        "observability",
        "observability:observability",
        "Elasticsearch and Kibana assets (index template, ILM policy, dashboards).",
    ),
    # clients of the API (HTTP only)
    _L(
        "runs",
        "runs:runs",
        "Runs and their versions, through the API.",
    ),
    _L(
        "reruns",
        "reruns:reruns",
        "Re-run many runs of one instrument at once, and follow the batch.",
    ),
    _L(
        "failures",
        "experiments:failures",
        "Recent errors grouped by their cause, newest first (`autoreduce failures --instrument "
        "GEM`); re-run a group with `autoreduce reruns create --instrument GEM --failure "
        "FINGERPRINT`.",
    ),
    _L(
        "instruments",
        "instruments:instruments",
        "The configured instruments; pause and resume them.",
    ),
    _L(
        "rules",
        "instruments:rules",
        "Variable rules: the values new runs of an instrument get.",
    ),
    _L(
        "upload",
        "jobs:upload",
        "Upload files for jobs to reduce; print each one's id, size and SHA-256 (`autoreduce "
        "upload sample.nxs`).",
    ),
    _L(
        "jobs",
        "jobs:jobs",
        "Jobs: reduce uploaded files with a plugin, outside any instrument (submit, show, cancel).",
    ),
    _L(
        "experiments",
        "experiments:experiments",
        "Experiments (proposals, RB numbers): their runs across instruments.",
    ),
    _L(
        "login",
        "login:login",
        "Sign in: keep the API URL and credentials in ~/.config/autoreduce/client.toml "
        "(`autoreduce login --api-url https://autoreduce.example.org`, then paste the token).",
    ),
    _L(
        "plugins",
        "plugins:plugins",
        "Plugins and their approval (a plugin runs only at a version an admin approved).",
    ),  # and, with --local, on this host's database
    # operators' tools on the database and the broker
    _L(
        "queue",
        "queue_ops:queue",
        "The queue at a glance, and the sweep for stuck runs.",
    ),
    _L(
        "processors",
        "queue_ops:processors",
        "The queue processors: list them, drain one, resume it.",
    ),
)
"""Every subcommand: its name, where it lives and the help ``autoreduce --help`` shows for it."""


@click.group(
    cls=AutoreduceGroup,
    lazy=COMMANDS,
    epilog="The client commands (runs, reruns, failures, instruments, rules, upload, jobs, "
    "experiments, plugins, login) exit 0 done, 1 the API said no (4xx), 2 usage error, 3 the "
    "API cannot be reached, 4 not signed in or not allowed (401/403), 5 the API failed (5xx); "
    "`jobs submit --wait` exits 6 when the job ends but does not complete.",
)
@click.version_option(__version__, prog_name="autoreduce")
def main() -> None:
    """Reduce scientific data the moment an instrument writes it."""


__all__ = ["COMMANDS", "main"]
