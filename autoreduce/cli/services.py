"""The services: ``api``, ``detect``, ``process``, ``up`` (all at once) and ``demo``.

Each checks its configuration (plugins included) and migrates the database before it serves.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from autoreduce.cli.startup import (
    ConfigProblem,
    cli_settings,
    migrated_database,
    service_settings,
    start_logging,
    stop_on_signals,
)
from autoreduce.settings import config_path

NO_INSTRUMENTS = "no instruments are configured, so there is nothing to detect or reduce"
ADD_AN_INSTRUMENT = """Add one to {path}, for example:

[archive]
root = "/archive"

[instruments.WISH]
plugin = "noop"                # an installed reduction plugin
lastruns = "{{root}}/NDXWISH/Instrument/logs/lastruns.txt"
data = "{{root}}/NDXWISH/Instrument/data/cycle_*/WISH{{run_number:08d}}.nxs"

then run `autoreduce config check`."""


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
def api(host: str, port: int) -> None:
    """Serve the REST API, the web UI and the outbox relay."""
    settings = service_settings()
    start_logging("api", settings)
    migrated_database(settings).dispose()
    import rest_api

    rest_api.serve(settings, host=host, port=port)


@click.command()
@click.option("--poll", "poll_s", type=float, help="Poll every SECONDS (network filesystems).")
@click.option("--from", "from_run", type=int, help="Submit runs from RUN on (first start).")
@click.option("--instrument", "instruments", multiple=True, help="Only these instruments.")
def detect(poll_s: float | None, from_run: int | None, instruments: tuple[str, ...]) -> None:
    """Watch every configured lastruns.txt and submit new runs to the API."""
    settings = cli_settings()  # plugins are the API's and processors' business: not loaded here
    start_logging("detect", settings)
    import run_detection

    run_detection.serve(
        settings,
        poll_interval_s=poll_s,
        from_run=from_run,
        instruments=list(instruments) or None,
        stop=stop_on_signals(),
    )


@click.command()
@click.option("--id", "processor_id", help="Id of this processor (default host:pid:random).")
@click.option(
    "--name",
    default="process",
    show_default=True,
    help="Service name: logs go to <data_dir>/logs/NAME.jsonl (`up` passes process-1, …).",
)
def process(processor_id: str | None, name: str) -> None:
    """Consume the pending queue and reduce each run in an isolated child process."""
    settings = service_settings()
    from queue_processor.worker import new_processor_id

    processor_id = processor_id or new_processor_id()
    start_logging(name, settings, processor=processor_id)
    migrated_database(settings).dispose()
    import queue_processor

    queue_processor.serve(settings, processor_id=processor_id)


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--processors", default=2, show_default=True, type=click.IntRange(1, 64))
@click.option("--poll", "poll_s", type=float, help="Detector polls every SECONDS.")
def up(host: str, port: int, processors: int, poll_s: float | None) -> None:
    """Run every service at once (API, detector, N processors) until Ctrl-C."""
    from autoreduce.local import local_supervisor

    settings = service_settings()
    if not settings.instruments:
        path = config_path() or Path("autoreduce.toml")
        raise ConfigProblem([NO_INSTRUMENTS], ADD_AN_INSTRUMENT.format(path=path.absolute()))
    start_logging("up", settings)
    migrated_database(settings).dispose()
    supervisor = local_supervisor(
        settings, host=host, port=port, processors=processors, poll_s=poll_s
    )
    supervisor.start()
    click.echo(f"autoreduce is up: API and web UI at http://{host}:{port}/ (Ctrl-C stops it)")
    supervisor.run()


@click.command()
@click.option("--dir", "directory", default="demo", show_default=True, type=click.Path())
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--runs", default=10, show_default=True, type=click.IntRange(1))
@click.option("--interval", "interval_s", default=3.0, show_default=True, type=float)
@click.option("--processors", default=2, show_default=True, type=click.IntRange(1, 64))
@click.option("--exit-when-done", is_flag=True, help="Stop once every run is finished.")
def demo(
    directory: str,
    port: int,
    runs: int,
    interval_s: float,
    processors: int,
    exit_when_done: bool,
) -> None:
    """Create a demo archive, start everything and play instruments writing runs."""
    from autoreduce.demo.runner import run_demo

    code = run_demo(
        Path(directory),
        port=port,
        runs=runs,
        interval_s=interval_s,
        processors=processors,
        exit_when_done=exit_when_done,
    )
    sys.exit(code)


COMMANDS = (api, detect, process, up, demo)
