"""Regenerate the web UI's screenshots from a demo instance: ``make screenshots``.

Starts ``autoreduce demo`` in a temporary directory, waits until its runs are reduced, then opens
each page in Debian's chromium (Playwright, ``/usr/bin/chromium``) and saves a PNG per page in the
directory given (default ``docs/screenshots``). The admin page is taken signed in as a demo admin.
"""

from __future__ import annotations

import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests
from playwright.sync_api import sync_playwright

from rest_api.web.session import SESSION_COOKIE, encode_session

CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--no-first-run"]
RUNS = 4


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_for_runs(api: str, count: int, deadline_s: float) -> list[dict[str, object]]:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        try:
            items = requests.get(f"{api}/api/v1/runs", timeout=5).json()["items"]
        except (requests.RequestException, ValueError, KeyError):
            items = []
        final = [i for i in items if i["status"] in ("Completed", "Error", "Skipped")]
        if len(final) >= count:
            return list(items)
        time.sleep(0.5)
    raise SystemExit(f"the demo did not finish {count} runs within {deadline_s:.0f} s")


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    api = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="autoreduce-screenshots-") as directory:
        demo = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "autoreduce",
                "demo",
                "--dir",
                directory,
                "--port",
                str(port),
                "--runs",
                str(RUNS),
                "--interval",
                "1",
            ],
            stdout=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            runs = _wait_for_runs(api, RUNS, 300)
            first = runs[-1]
            key = (Path(directory) / "data" / "session.key").read_text().strip()
            admin = encode_session(
                key,
                {
                    "user": {
                        "name": "demo-admin",
                        "role": "admin",
                        "instruments": [],
                        "source": "screenshots",
                    },
                    "csrf": secrets.token_urlsafe(16),
                },
            )
            pages = {
                "overview": "/",
                "instrument": f"/instruments/{first['instrument']}",
                "run": f"/runs/{first['instrument']}/{first['run_number']}",
                "experiment": f"/experiments/{first['experiment_ref']}",
                "failed": "/failed",
                "search": "/search?q=title:Si",
                "admin": "/admin",
            }
            with sync_playwright() as driver:
                browser = driver.chromium.launch(
                    executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS
                )
                context = browser.new_context(base_url=api, viewport={"width": 1280, "height": 800})
                context.add_cookies(
                    [{"name": SESSION_COOKIE, "value": admin, "url": api, "httpOnly": True}]
                )
                page = context.new_page()
                for name, path in pages.items():
                    page.goto(path)
                    page.wait_for_load_state("networkidle")
                    page.screenshot(path=str(out / f"{name}.png"), full_page=True)
                    print(f"{out / f'{name}.png'}  ({path})")
                browser.close()
        finally:
            demo.send_signal(signal.SIGINT)
            try:
                demo.wait(timeout=60)
            except subprocess.TimeoutExpired:
                demo.kill()


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/screenshots"))
