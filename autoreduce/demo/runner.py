"""``autoreduce demo``: a synthetic facility on the embedded defaults.

It lays out an ISIS-style archive and a config under the demo directory, starts every service
(``autoreduce up``'s supervisor), then plays two instruments: every ``interval_s`` it writes a new
synthetic NeXus run and bumps that instrument's ``lastruns.txt``, exactly as instrument control
software does. The terminal shows each run moving Queued → Processing → Completed with its
timings; at the end it prints the latency from the ``lastruns.txt`` write to Completed.
"""

from __future__ import annotations

import json
import os
import statistics
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import click
import requests

from autoreduce.demo.nexus import write_synthetic_run
from autoreduce.local import local_supervisor
from autoreduce.logs import configure_logging
from autoreduce.polling import WaitTimeout, wait_for
from autoreduce.settings import Settings, load_settings

CYCLE = "cycle_26_4"
STARTUP_TIMEOUT_S = 120.0
FINISH_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class DemoInstrument:
    name: str
    kind: str  # which synthetic data the writer makes
    plugin: str
    experiment_ref: str
    title: str


INSTRUMENTS = (
    DemoInstrument("GEM", "powder", "powder_diffraction", "2610001", "Si standard, room temp"),
    DemoInstrument("LOQ", "sans", "sans", "2610002", "Silica spheres in D2O"),
)


def write_config(directory: Path) -> Path:
    """The demo's ``autoreduce.toml``: two instruments on an archive under ``directory``."""
    lines = [
        "# Written by `autoreduce demo`; a real facility writes its own (see README).",
        f'data_dir = "{directory / "data"}"',
        "public_read = true  # anyone may read runs, plots and logs; writes still need a token",
        "",
        "[archive]",
        f'root = "{directory / "archive"}"',
    ]
    for instrument in INSTRUMENTS:
        lines += [
            "",
            f"[instruments.{instrument.name}]",
            f'plugin = "{instrument.plugin}"',
            'lastruns = "{root}/NDX{instrument}/Instrument/logs/lastruns.txt"',
            'data = "{root}/NDX{instrument}/Instrument/data/cycle_*/{instrument}'
            '{run_number:08d}.nxs"',
            "timeout_s = 600",
            "memory_mb = 4096",
        ]
    path = directory / "autoreduce.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _write_lastruns(path: Path, instrument: str, run_number: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:  # rewritten in place, as instrument software does
        handle.write(f"{instrument} {run_number:08d} 0\n")


def _current_run(path: Path) -> int:
    try:
        return int(path.read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return 0


class Player:
    """Plays the instruments: data file first, then the bump of ``lastruns.txt``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.next_run = {i.name: _current_run(settings.lastruns_path(i.name)) for i in INSTRUMENTS}
        self.written_at: dict[tuple[str, int], float] = {}

    def baseline(self) -> None:
        for instrument in INSTRUMENTS:
            path = self.settings.lastruns_path(instrument.name)
            if not path.exists():
                _write_lastruns(path, instrument.name, self.next_run[instrument.name])

    def play(self, index: int) -> tuple[str, int]:
        instrument = INSTRUMENTS[index % len(INSTRUMENTS)]
        run_number = self.next_run[instrument.name] + 1
        pattern = self.settings.data_pattern(instrument.name, run_number)
        data_path = Path(pattern.replace("cycle_*", CYCLE))
        data_path.parent.mkdir(parents=True, exist_ok=True)
        write_synthetic_run(
            instrument.kind,  # type: ignore[arg-type]
            data_path,
            instrument=instrument.name,
            run_number=run_number,
            experiment_ref=instrument.experiment_ref,
            title=f"{instrument.title} #{run_number}",
            seed=run_number,
        )
        self.written_at[(instrument.name, run_number)] = time.time()
        _write_lastruns(self.settings.lastruns_path(instrument.name), instrument.name, run_number)
        self.next_run[instrument.name] = run_number
        return instrument.name, run_number


def _parse_time(value: str | None) -> float | None:
    return datetime.fromisoformat(value).timestamp() if value else None


class Monitor:
    """Polls the API and prints each run's transitions with their recorded times."""

    def __init__(self, api_url: str, player: Player) -> None:
        self.api_url = api_url
        self.player = player
        self.shown: dict[tuple[str, int], set[str]] = {}
        self.latencies_s: list[float] = []
        self.final_status: dict[tuple[str, int], str] = {}

    def poll(self) -> None:
        response = requests.get(f"{self.api_url}/api/v1/runs", params={"limit": 100}, timeout=5)
        response.raise_for_status()
        for item in reversed(response.json()["items"]):
            key = (item["instrument"], item["run_number"])
            if key in self.player.written_at and item["run_version"] == 0:
                self._show(key, item)

    def _show(self, key: tuple[str, int], item: dict[str, Any]) -> None:
        """Print the states this run passed through that were not printed yet, in order."""
        shown = self.shown.setdefault(key, set())
        written = self.player.written_at[key]
        label = f"{key[0]} {key[1]:>5} v{item['run_version']}"
        status = item["status"]
        steps = [("Queued", item["queued_at"]), ("Processing", item["started_at"])]
        if status in ("Completed", "Error", "Skipped"):
            steps.append((status, item["finished_at"]))
        for state, at in steps:
            if state in shown or (at is None and state != status):
                continue
            shown.add(state)
            offset_s = (_parse_time(at) or time.time()) - written
            if state == "Queued":
                click.echo(f"  {label}  Queued      +{offset_s:6.3f} s after lastruns.txt")
            elif state == "Processing":
                click.echo(f"  {label}  Processing  +{offset_s:6.3f} s  on {item['processor']}")
            else:
                self._show_final(label, key, item, offset_s)

    def _show_final(
        self, label: str, key: tuple[str, int], item: dict[str, Any], offset_s: float
    ) -> None:
        status = item["status"]
        self.latencies_s.append(offset_s)
        self.final_status[key] = status
        colour = {"Completed": "green", "Skipped": "yellow"}.get(status, "red")
        detail = item["summary"] if status == "Completed" else item["message"]
        click.echo(
            f"  {label}  "
            + click.style(f"{status:<10}", fg=colour)
            + f"  +{offset_s:6.3f} s  (reduction {item.get('reduction_s') or 0:.2f} s) {detail}"
        )
        for output in item["outputs"]:
            if output["kind"] == "plot":
                click.echo(f"{'':24}plot: {self.api_url}{output['url']}")


def _wait_for(condition: Any, timeout_s: float, what: str) -> None:
    try:
        wait_for(condition, timeout_s=timeout_s, interval_s=0.1, what=what)
    except WaitTimeout as error:
        raise click.ClickException(f"timed out waiting for {what}: {error}") from None


def _api_healthy(api_url: str) -> bool:
    try:
        return requests.get(f"{api_url}/health", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def _detector_has_baseline(settings: Settings) -> bool:
    try:
        cursors = json.loads((settings.data_dir / "run_detection" / "cursors.json").read_text())
    except (OSError, ValueError):
        return False
    return all(i.name in cursors for i in INSTRUMENTS)


def _approve_builtin_plugins(settings: Settings) -> None:
    """The demo runs the built-in plugins: approve them (as ``plugins approve --builtin``)."""
    from autoreduce.audit import command_line_actor
    from autoreduce.db import Database
    from autoreduce.plugin_approvals import approve_builtin
    from autoreduce.plugin_manager import installed_plugins

    database = Database(settings.resolved_database_url)
    try:
        database.upgrade()
        approve_builtin(database, installed_plugins(), command_line_actor())
    finally:
        database.dispose()


def run_demo(
    directory: Path,
    *,
    port: int,
    runs: int,
    interval_s: float,
    processors: int,
    exit_when_done: bool,
) -> int:
    """Run the demo; 0 when every run completed, 1 otherwise."""
    directory = directory.resolve()
    directory.mkdir(parents=True, exist_ok=True)
    config_path = write_config(directory)
    os.environ["AUTOREDUCE_CONFIG"] = str(config_path)
    settings = load_settings()
    configure_logging("demo", settings.logs_dir, level="WARNING")
    api_url = f"http://127.0.0.1:{port}"
    _approve_builtin_plugins(settings)
    player = Player(settings)
    player.baseline()
    supervisor = local_supervisor(
        settings,
        host="127.0.0.1",
        port=port,
        processors=processors,
        config_path=config_path,
        quiet=True,
    )
    stop = threading.Event()
    watcher = threading.Thread(target=supervisor.run, kwargs={"until": stop}, daemon=True)
    click.echo(f"web UI: {api_url}/  (open it: the demo's runs appear there live)")
    click.echo(f"autoreduce demo in {directory} (config {config_path})")
    supervisor.start()
    watcher.start()
    try:
        _wait_for(lambda: _api_healthy(api_url), STARTUP_TIMEOUT_S, "the API")
        _wait_for(lambda: _detector_has_baseline(settings), STARTUP_TIMEOUT_S, "the detector")
        click.echo(
            f"ready. API: {api_url}/api/v1/runs   docs: {api_url}/docs   logs: {settings.logs_dir}"
        )
        click.echo(f"playing {runs} runs, one every {interval_s:g} s (Ctrl-C stops everything)")
        return _play(player, Monitor(api_url, player), runs, interval_s, exit_when_done, stop)
    except KeyboardInterrupt:
        return 130
    finally:
        click.echo("stopping services…")
        stop.set()
        supervisor.stop()
        watcher.join(timeout=1)


def _play(
    player: Player,
    monitor: Monitor,
    runs: int,
    interval_s: float,
    exit_when_done: bool,
    stop: threading.Event,
) -> int:
    next_at = time.monotonic()
    played = 0
    deadline: float | None = None
    while True:
        if played < runs and time.monotonic() >= next_at:
            player.play(played)
            played += 1
            next_at += interval_s
            if played == runs:
                deadline = time.monotonic() + FINISH_TIMEOUT_S
        try:
            monitor.poll()
        except requests.RequestException as error:
            click.echo(f"  (API not answering: {error})")
        if played == runs and len(monitor.final_status) >= runs:
            break
        if deadline is not None and time.monotonic() > deadline:
            click.echo(f"only {len(monitor.final_status)} of {runs} runs finished in time")
            break
        time.sleep(0.1)
    _summarise(monitor)
    completed = sum(1 for status in monitor.final_status.values() if status == "Completed")
    if not exit_when_done:
        click.echo("services still running; Ctrl-C to stop")
        while not stop.wait(1):
            pass
    return 0 if completed == runs else 1


def _summarise(monitor: Monitor) -> None:
    latencies = sorted(monitor.latencies_s)
    if not latencies:
        return
    click.echo(
        f"{len(latencies)} runs finished; lastruns.txt write → final state: "
        f"median {statistics.median(latencies):.2f} s, "
        f"min {latencies[0]:.2f} s, max {latencies[-1]:.2f} s"
    )
