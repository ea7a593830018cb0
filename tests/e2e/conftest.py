"""End-to-end fixtures: a whole facility in real processes per test (see ``tests/facility``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.facility import Facility, start_facility, stop_facility


@pytest.fixture
def facility_factory(tmp_path: Path) -> Iterator[Any]:
    started: list[Facility] = []

    def start(instruments: dict[str, dict[str, Any]], **kwargs: Any) -> Facility:
        facility = start_facility(tmp_path, instruments, **kwargs)
        started.append(facility)
        return facility

    yield start
    for facility in started:
        stop_facility(facility)
        print(facility.log_path.read_text()[-20_000:])  # shown by pytest when a test failed
