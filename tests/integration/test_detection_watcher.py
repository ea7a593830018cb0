"""The run detector against a real (tiny) HTTP API on 127.0.0.1 and real files.

Most tests drive :meth:`RunDetector.check_instrument` synchronously; the last ones run the real
watchdog-driven :func:`serve` in a thread and wait, by polling with a deadline, for the POST.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import tenacity

from autoreduce.settings import Settings
from run_detection import CursorStore, RunDetector, RunsClient, cursor_path, serve
from tests.polling import wait_for

DEADLINE_S = 10.0
CYCLE = "cycle_26_1"


@dataclass
class ReceivedRun:
    body: dict[str, Any]
    authorization: str
    received_at_s: float  # time.perf_counter() when the request arrived


class RecordingApi:
    """``POST /api/v1/runs`` on 127.0.0.1 that records each request and answers ``status``."""

    def __init__(self, port: int = 0) -> None:
        self.received: list[ReceivedRun] = []
        self.status = 201
        self.detail = "ok"
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                received_at_s = time.perf_counter()
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length))
                api.received.append(
                    ReceivedRun(body, self.headers.get("Authorization", ""), received_at_s)
                )
                status = api.status if self.path == "/api/v1/runs" else 404
                answer = json.dumps({"detail": api.detail}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def runs(self) -> list[tuple[str, int]]:
        return [(run.body["instrument"], run.body["run_number"]) for run in self.received]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


def wait_until(condition: Callable[[], bool]) -> None:
    """Poll ``condition`` often (events take milliseconds) until it holds or the deadline."""
    wait_for(condition, timeout_s=DEADLINE_S, interval_s=0.005)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def api() -> Iterator[RecordingApi]:
    server = RecordingApi()
    yield server
    server.close()


def detector_settings(
    tmp_path: Path, api_url: str, instruments: tuple[str, ...] = ("GEM",)
) -> Settings:
    options: dict[str, Any] = {
        "data_dir": tmp_path / "data",
        "archive": {"root": str(tmp_path / "archive")},
        "instruments": {
            name: {
                "plugin": "noop",
                "lastruns": "{root}/" + name + "/logs/lastruns.txt",
                "data": "{root}/" + name + "/data/cycle_*/" + name + "{run_number:08d}.nxs",
            }
            for name in instruments
        },
        "api_url": api_url,
        "api_token": "t0ken",
    }
    return Settings(**options)


@pytest.fixture
def settings(tmp_path: Path, api: RecordingApi) -> Settings:
    return detector_settings(tmp_path, api.url)


def make_detector(settings: Settings, attempts: int = 1) -> RunDetector:
    policy = tenacity.Retrying(
        stop=tenacity.stop_after_attempt(attempts), wait=tenacity.wait_fixed(0.01)
    )
    client = RunsClient(settings.api_url, settings.api_token, retry_policy=policy)
    return RunDetector(settings, client=client, cursors=CursorStore(cursor_path(settings)))


def write_lastruns(settings: Settings, instrument: str, line: str) -> None:
    path = settings.lastruns_path(instrument)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(line)


def write_run(settings: Settings, instrument: str, run_number: int) -> None:
    write_lastruns(settings, instrument, f"{instrument} {run_number:08d} 0\n")


def make_data_file(
    settings: Settings, instrument: str, run_number: int, cycle: str = CYCLE
) -> Path:
    path = Path(settings.data_pattern(instrument, run_number).replace("cycle_*", cycle))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"nexus")
    return path


@pytest.fixture
def gem_at_run_10(settings: Settings) -> RunDetector:
    """A detector that has seen GEM at run 10 (its cursor)."""
    detector = make_detector(settings)
    write_run(settings, "GEM", 10)
    assert detector.check_instrument("GEM") == []
    return detector


def test_first_sight_sets_cursor_and_submits_nothing(settings: Settings, api: RecordingApi) -> None:
    write_run(settings, "GEM", 10)
    make_data_file(settings, "GEM", 10)
    detector = make_detector(settings)

    assert detector.check_instrument("GEM") == []

    assert detector.cursors.get("GEM") == 10
    assert api.received == []


def test_jump_of_three_runs_submits_each_in_order(
    settings: Settings, api: RecordingApi, gem_at_run_10: RunDetector
) -> None:
    for run in (11, 12, 13):
        make_data_file(settings, "GEM", run)
    write_run(settings, "GEM", 13)

    assert gem_at_run_10.check_instrument("GEM") == [11, 12, 13]

    assert api.runs() == [("GEM", 11), ("GEM", 12), ("GEM", 13)]
    assert all("data_path" not in run.body for run in api.received)  # the API finds the file
    assert all(run.authorization == "Bearer t0ken" for run in api.received)
    assert all(run.body["detected_at"].endswith("Z") for run in api.received)
    assert CursorStore(cursor_path(settings)).get("GEM") == 13


def test_same_run_checked_again_is_not_resubmitted(
    settings: Settings, api: RecordingApi, gem_at_run_10: RunDetector
) -> None:
    make_data_file(settings, "GEM", 11)
    write_run(settings, "GEM", 11)
    assert gem_at_run_10.check_instrument("GEM") == [11]

    assert gem_at_run_10.check_instrument("GEM") == []

    assert api.runs() == [("GEM", 11)]


def test_malformed_file_is_logged_ignored_and_next_good_line_processed(
    settings: Settings,
    api: RecordingApi,
    gem_at_run_10: RunDetector,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="autoreduce.detect")
    make_data_file(settings, "GEM", 11)
    write_lastruns(settings, "GEM", "GEM 000000")

    assert gem_at_run_10.check_instrument("GEM") == []
    assert gem_at_run_10.check_instrument("GEM") == []
    assert "half-written line" in caplog.text
    assert api.received == []

    write_run(settings, "GEM", 11)
    assert gem_at_run_10.check_instrument("GEM") == [11]


def test_malformed_file_is_reported_once_while_it_lasts(
    settings: Settings, gem_at_run_10: RunDetector, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="autoreduce.detect")
    write_lastruns(settings, "GEM", "GEM 0000001x 0")

    for _ in range(4):
        gem_at_run_10.check_instrument("GEM")

    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    assert "'0000001x' is not a number" in warnings[0].getMessage()


def test_another_instruments_name_is_ignored(
    settings: Settings,
    api: RecordingApi,
    gem_at_run_10: RunDetector,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="autoreduce.detect")
    make_data_file(settings, "GEM", 11)
    write_lastruns(settings, "GEM", "WISH 00000011 0\n")

    assert gem_at_run_10.check_instrument("GEM") == []
    assert gem_at_run_10.check_instrument("GEM") == []

    assert "instrument name 'WISH' is not 'GEM'" in caplog.text
    assert api.received == []
    assert gem_at_run_10.cursors.get("GEM") == 10


def test_backwards_run_is_logged_and_ignored(
    settings: Settings,
    api: RecordingApi,
    gem_at_run_10: RunDetector,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="autoreduce.detect")
    make_data_file(settings, "GEM", 11)
    write_run(settings, "GEM", 8)

    assert gem_at_run_10.check_instrument("GEM") == []
    assert "went backwards" in caplog.text
    assert gem_at_run_10.cursors.get("GEM") == 10

    write_run(settings, "GEM", 11)
    assert gem_at_run_10.check_instrument("GEM") == [11]
    assert api.runs() == [("GEM", 11)]


def test_missing_data_file_waits_then_is_submitted_once_it_appears(
    settings: Settings,
    api: RecordingApi,
    gem_at_run_10: RunDetector,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="autoreduce.detect")
    make_data_file(settings, "GEM", 12)
    write_run(settings, "GEM", 12)

    assert gem_at_run_10.check_instrument("GEM") == []
    assert gem_at_run_10.check_instrument("GEM") == []
    waiting = [r for r in caplog.records if "waiting for its data file" in r.getMessage()]
    assert len(waiting) == 1
    assert waiting[0].levelno == logging.INFO
    assert api.received == []
    assert gem_at_run_10.cursors.get("GEM") == 10

    make_data_file(settings, "GEM", 11)
    assert gem_at_run_10.check_instrument("GEM") == [11, 12]
    assert api.runs() == [("GEM", 11), ("GEM", 12)]


def test_several_matching_data_files_hold_the_run_and_name_the_paths(
    settings: Settings,
    api: RecordingApi,
    gem_at_run_10: RunDetector,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="autoreduce.detect")
    first = make_data_file(settings, "GEM", 11, cycle="cycle_26_1")
    second = make_data_file(settings, "GEM", 11, cycle="cycle_26_2")
    write_run(settings, "GEM", 11)

    assert gem_at_run_10.check_instrument("GEM") == []
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert str(first) in errors[0].getMessage()
    assert str(second) in errors[0].getMessage()
    assert api.received == []

    second.unlink()
    assert gem_at_run_10.check_instrument("GEM") == [11]
    assert api.runs() == [("GEM", 11)]


def test_a_data_file_that_is_a_symlink_out_of_the_archive_holds_the_run(
    settings: Settings,
    api: RecordingApi,
    gem_at_run_10: RunDetector,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    caplog.set_level(logging.INFO, logger="autoreduce.detect")
    outside = tmp_path / "outside.nxs"
    outside.write_bytes(b"secret")
    link = make_data_file(settings, "GEM", 11)
    link.unlink()
    link.symlink_to(outside)
    write_run(settings, "GEM", 11)

    assert gem_at_run_10.check_instrument("GEM") == []

    assert api.received == []
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any("lies outside" in message for message in errors)


def test_restart_neither_resubmits_nor_loses_a_run(settings: Settings, api: RecordingApi) -> None:
    first_detector = make_detector(settings)
    write_run(settings, "GEM", 10)
    first_detector.check_instrument("GEM")
    make_data_file(settings, "GEM", 11)
    write_run(settings, "GEM", 12)
    assert first_detector.check_instrument("GEM") == [11]
    first_detector.close()

    restarted = make_detector(settings)
    assert restarted.check_instrument("GEM") == []
    make_data_file(settings, "GEM", 12)
    assert restarted.check_instrument("GEM") == [12]

    assert api.runs() == [("GEM", 11), ("GEM", 12)]


def test_api_down_then_up_submits_the_run_once(tmp_path: Path) -> None:
    port = free_port()
    settings = detector_settings(tmp_path, f"http://127.0.0.1:{port}")
    detector = make_detector(settings, attempts=2)
    write_run(settings, "GEM", 10)
    detector.check_instrument("GEM")
    make_data_file(settings, "GEM", 11)
    write_run(settings, "GEM", 11)

    assert detector.check_instrument("GEM") == []
    assert detector.cursors.get("GEM") == 10

    api = RecordingApi(port)
    try:
        assert detector.check_instrument("GEM") == [11]
        assert detector.check_instrument("GEM") == []
        assert api.runs() == [("GEM", 11)]
    finally:
        api.close()


def test_server_error_is_retried_within_one_check(settings: Settings, api: RecordingApi) -> None:
    detector = make_detector(settings, attempts=3)
    write_run(settings, "GEM", 10)
    detector.check_instrument("GEM")
    make_data_file(settings, "GEM", 11)
    write_run(settings, "GEM", 11)
    api.status = 503

    assert detector.check_instrument("GEM") == []
    assert len(api.received) == 3

    api.status = 201
    assert detector.check_instrument("GEM") == [11]


def test_unauthorized_does_not_advance_and_logs_status_and_reason(
    settings: Settings,
    api: RecordingApi,
    gem_at_run_10: RunDetector,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="autoreduce.detect")
    make_data_file(settings, "GEM", 11)
    write_run(settings, "GEM", 11)
    api.status, api.detail = 401, "invalid or expired token"

    assert gem_at_run_10.check_instrument("GEM") == []
    assert gem_at_run_10.cursors.get("GEM") == 10
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "HTTP 401: invalid or expired token" in errors[0].getMessage()
    assert len(api.received) == 1

    api.status = 201
    assert gem_at_run_10.check_instrument("GEM") == [11]
    assert "t0ken" not in caplog.text


def test_missing_directory_of_one_instrument_does_not_block_another(
    tmp_path: Path, api: RecordingApi, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="autoreduce.detect")
    settings = detector_settings(tmp_path, api.url, instruments=("GEM", "WISH"))
    detector = make_detector(settings)
    write_run(settings, "GEM", 10)
    detector.check_all()
    make_data_file(settings, "GEM", 11)
    write_run(settings, "GEM", 11)

    assert detector.check_all() == {"GEM": [11], "WISH": []}
    assert "WISH lastruns file" in caplog.text


def test_unexpected_error_in_one_instrument_does_not_stop_the_others(
    tmp_path: Path, api: RecordingApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = detector_settings(tmp_path, api.url, instruments=("GEM", "WISH"))
    detector = make_detector(settings)
    for name in ("GEM", "WISH"):
        write_run(settings, name, 10)
    detector.check_all()
    for name in ("GEM", "WISH"):
        make_data_file(settings, name, 11)
        write_run(settings, name, 11)
    original = Settings.data_pattern

    def broken_for_gem(self: Settings, instrument: str, run_number: int) -> str:
        if instrument == "GEM":
            raise KeyError("experiment")
        return original(self, instrument, run_number)

    monkeypatch.setattr(Settings, "data_pattern", broken_for_gem)

    assert detector.check_all() == {"GEM": [], "WISH": [11]}


def test_from_run_resubmits_from_that_run(
    settings: Settings, api: RecordingApi, gem_at_run_10: RunDetector
) -> None:
    for run in (9, 10):
        make_data_file(settings, "GEM", run)

    gem_at_run_10.start_from(9)

    assert gem_at_run_10.check_instrument("GEM") == [9, 10]
    assert api.runs() == [("GEM", 9), ("GEM", 10)]


# --- the real service: watchdog events and rescans, in a thread ---------------------------------


@pytest.fixture
def run_service() -> Iterator[Callable[..., threading.Event]]:
    running: list[tuple[threading.Event, threading.Thread]] = []

    def start(settings: Settings, **options: Any) -> threading.Event:
        stop = threading.Event()
        thread = threading.Thread(
            target=serve, args=(settings,), kwargs={"stop": stop, **options}, daemon=True
        )
        thread.start()
        running.append((stop, thread))
        return stop

    yield start
    for stop, thread in running:
        stop.set()
        thread.join(timeout=DEADLINE_S)
        assert not thread.is_alive(), "serve() did not stop"


def cursor_becomes(settings: Settings, run_number: int) -> Callable[[], bool]:
    def reached() -> bool:
        try:
            return json.loads(cursor_path(settings).read_text()).get("GEM") == run_number
        except (OSError, ValueError):
            return False

    return reached


@pytest.mark.parametrize("poll_interval_s", [None, 0.2], ids=["inotify", "polling"])
@pytest.mark.parametrize("write", ["in_place", "rename"])
def test_serve_picks_up_a_write(
    settings: Settings,
    api: RecordingApi,
    run_service: Callable[..., threading.Event],
    poll_interval_s: float | None,
    write: str,
) -> None:
    write_run(settings, "GEM", 10)
    make_data_file(settings, "GEM", 11)
    run_service(settings, poll_interval_s=poll_interval_s, rescan_interval_s=600)
    wait_until(cursor_becomes(settings, 10))

    if write == "rename":
        temporary = settings.lastruns_path("GEM").with_name("lastruns.txt.tmp")
        temporary.write_text("GEM 00000011 0\n")
        os.replace(temporary, settings.lastruns_path("GEM"))
    else:
        write_run(settings, "GEM", 11)

    wait_until(lambda: len(api.received) >= 1)
    assert api.runs() == [("GEM", 11)]


def test_serve_rescan_submits_a_run_once_its_data_file_appears(
    settings: Settings, api: RecordingApi, run_service: Callable[..., threading.Event]
) -> None:
    write_run(settings, "GEM", 10)
    run_service(settings, rescan_interval_s=0.1)
    wait_until(cursor_becomes(settings, 10))
    write_run(settings, "GEM", 11)

    make_data_file(settings, "GEM", 11)

    wait_until(lambda: len(api.received) >= 1)
    wait_until(cursor_becomes(settings, 11))
    assert api.runs() == [("GEM", 11)]


def test_serve_watches_a_directory_created_after_start(
    settings: Settings, api: RecordingApi, run_service: Callable[..., threading.Event]
) -> None:
    run_service(settings, rescan_interval_s=0.1)
    make_data_file(settings, "GEM", 11)

    write_run(settings, "GEM", 10)
    wait_until(cursor_becomes(settings, 10))
    write_run(settings, "GEM", 11)

    wait_until(lambda: len(api.received) >= 1)
    assert api.runs() == [("GEM", 11)]


def test_serve_from_run_submits_from_that_run(
    settings: Settings, api: RecordingApi, run_service: Callable[..., threading.Event]
) -> None:
    for run in (8, 9):
        make_data_file(settings, "GEM", run)
    write_run(settings, "GEM", 9)

    run_service(settings, from_run=8, rescan_interval_s=600)

    wait_until(lambda: len(api.received) >= 2)
    assert api.runs() == [("GEM", 8), ("GEM", 9)]


def test_serve_stops_promptly_while_the_api_is_down(
    tmp_path: Path, run_service: Callable[..., threading.Event]
) -> None:
    settings = detector_settings(tmp_path, f"http://127.0.0.1:{free_port()}")
    write_run(settings, "GEM", 10)
    make_data_file(settings, "GEM", 11)
    stop = run_service(settings, rescan_interval_s=0.1)
    wait_until(cursor_becomes(settings, 10))
    write_run(settings, "GEM", 11)

    stop.set()  # the fixture asserts serve() returns within the deadline

    assert CursorStore(cursor_path(settings)).get("GEM") == 10
