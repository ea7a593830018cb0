"""``autoreduce config check``: is this configuration one the services will start with?"""

from __future__ import annotations

import os

import click

from autoreduce.cli.startup import ConfigProblem


@click.group()
def config() -> None:
    """The configuration: autoreduce.toml (or $AUTOREDUCE_CONFIG) and AUTOREDUCE_* variables."""


@config.command("check")
def config_check() -> None:
    """Check every key, template and plugin; print each problem on one line (exit 2)."""
    from autoreduce.config_check import (
        environment_warnings,
        pipeline_problems,
        plugin_problems,
        settings_problems,
    )
    from autoreduce.plugin_manager import installed_plugins
    from autoreduce.settings import ConfigError, config_path

    try:
        path = config_path()
    except ConfigError as error:
        raise ConfigProblem(error.problems) from None
    problems, settings = settings_problems(path)
    if settings is not None:
        problems += plugin_problems(settings, installed_plugins())
        problems += pipeline_problems(settings, installed_plugins())
    for warning in environment_warnings(os.environ):
        click.echo(f"warning: {warning}", err=True)
    if problems or settings is None:
        raise ConfigProblem(problems)
    names = f" ({', '.join(sorted(settings.instruments))})" if settings.instruments else ""
    source = f"read from {path}" if path else "no config file: environment and defaults only"
    click.echo(f"configuration OK: {len(settings.instruments)} instruments{names}; {source}")
