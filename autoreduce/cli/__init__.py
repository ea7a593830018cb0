"""The ``autoreduce`` command: one module per group of subcommands.

This package is the only part of ``autoreduce`` that imports the service packages
(``rest_api``, ``run_detection``, ``queue_processor``), and each subcommand imports its service
only when it runs, so ``autoreduce --help`` stays quick.
"""

from __future__ import annotations

import click

from autoreduce import __version__
from autoreduce.cli import config, database, dlq, reduce, services, tokens, users
from autoreduce.cli.startup import AutoreduceGroup


@click.group(cls=AutoreduceGroup)
@click.version_option(__version__, prog_name="autoreduce")
def main() -> None:
    """Reduce scientific data the moment an instrument writes it."""


for command in (
    *services.COMMANDS,
    reduce.reduce,
    config.config,
    database.db,
    tokens.token,
    users.user,
    dlq.dlq,
):
    main.add_command(command)

__all__ = ["main"]
