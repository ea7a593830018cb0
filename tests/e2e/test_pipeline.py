"""From lastruns.txt to a reduced, recorded, visible result — every service a real process."""

from __future__ import annotations

import os
import signal
from typing import Any

import requests

from tests.polling import wait_for

NOOP = {"plugin": "noop"}


def test_a_written_run_is_completed_with_its_plot_visible_through_the_api(
    facility_factory: Any,
) -> None:
    facility = facility_factory({"GEM": {"plugin": "powder_diffraction", "kind": "powder"}})

    facility.play("GEM", 1)

    run = facility.wait_final("GEM", 1)
    assert run["status"] == "Completed", run["message"]
    assert run["experiment_ref"] == "2610001" and run["title"] == "e2e run 1"
    [plot] = [o for o in run["outputs"] if o["kind"] == "plot"]
    image = requests.get(facility.api_url + plot["url"], timeout=10)
    assert image.headers["content-type"] == "image/png"
    assert image.content.startswith(b"\x89PNG")
    assert any(o["kind"] == "data" for o in run["outputs"])
    assert any(o["kind"] == "log" for o in run["outputs"])


def test_a_jump_of_three_runs_submits_each_in_order(facility_factory: Any) -> None:
    facility = facility_factory({"MARI": NOOP})
    for run_number in (1, 2, 3):
        facility.write_data("MARI", run_number)

    facility.bump("MARI", 3)

    finished = [facility.wait_final("MARI", n) for n in (1, 2, 3)]
    assert [r["status"] for r in finished] == ["Completed"] * 3
    queued = [r["queued_at"] for r in finished]
    assert queued == sorted(queued)


def test_a_run_waits_for_its_data_file_and_goes_on_when_it_appears(
    facility_factory: Any,
) -> None:
    facility = facility_factory({"MARI": NOOP})
    facility.bump("MARI", 1)  # the instrument says run 1 ended, but its file is not there yet

    facility.write_data("MARI", 1)

    assert facility.wait_final("MARI", 1)["status"] == "Completed"


def test_a_malformed_lastruns_line_is_ignored_and_the_next_good_one_processed(
    facility_factory: Any,
) -> None:
    facility = facility_factory({"MARI": NOOP})
    facility.write_data("MARI", 1)
    facility.lastruns("MARI").write_text("MARI 0000")  # half-written

    facility.bump("MARI", 1)

    assert facility.wait_final("MARI", 1)["status"] == "Completed"


FAULTS = {
    "RAISE": ("raise", "plugin raised RuntimeError: noop was asked to fail on run 1"),
    "HANG": ("hang", "plugin exceeded its 3 s time limit"),
    "MEMORY": ("memory", "plugin exceeded its memory limit of 300 MB"),
    "SEGV": (
        "segfault",
        "gave up after 3 attempts: reduction process died from signal SIGSEGV (segmentation fault)",
    ),
    "EXIT": (
        "exit",
        "gave up after 3 attempts: reduction process exited with status 3 before writing its "
        "result",
    ),
}


def test_each_plugin_fault_costs_only_its_run_and_the_next_run_completes(
    facility_factory: Any,
) -> None:
    faulty = {
        name: {"plugin": "noop", "variables": {"fault": fault}, "timeout_s": 3, "memory_mb": 300}
        for name, (fault, _) in FAULTS.items()
    }
    facility = facility_factory({**faulty, "MARI": NOOP}, settings={"retry_delay_s": 0.2})

    for name in FAULTS:
        facility.play(name, 1)
    facility.play("MARI", 1)

    for name, (_, reason) in FAULTS.items():
        failed = facility.wait_final(name, 1)
        assert (failed["status"], failed["message"]) == ("Error", reason)
        assert [o["kind"] for o in failed["outputs"]] == ["log"]
    assert facility.wait_final("MARI", 1)["status"] == "Completed"


def test_a_processor_killed_mid_run_leaves_the_run_completed_exactly_once(
    facility_factory: Any,
) -> None:
    facility = facility_factory(
        {"SLOW": {"plugin": "noop", "variables": {"sleep_s": 4.0}}},
        processors=1,
        settings={"visibility_timeout_s": 3, "heartbeat_interval_s": 0.5},
    )
    facility.play("SLOW", 1)

    def busy_processor() -> dict[str, Any] | None:
        processing = facility.run("SLOW", 1)
        if not processing or processing["status"] != "Processing":
            return None
        response = requests.get(f"{facility.api_url}/api/v1/processors", timeout=5)
        holders = [p for p in response.json() if p["current_run_id"] == processing["id"]]
        return holders[0] if holders else None

    victim = wait_for(busy_processor, timeout_s=60)
    os.kill(victim["pid"], signal.SIGKILL)

    run = facility.wait_final("SLOW", 1, timeout_s=120)
    assert run["status"] == "Completed"
    assert run["attempts"] == 2
    assert run["processor"] != victim["id"]
    versions = requests.get(f"{facility.api_url}/api/v1/runs/SLOW/1", timeout=5).json()
    assert [v["run_version"] for v in versions["versions"]] == [0]
