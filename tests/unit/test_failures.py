"""Failure fingerprints: what differs from run to run is normalised away, the cause is kept."""

from __future__ import annotations

import json

import pytest

from autoreduce.failures import ErrorCategory, classify, normalise_message, raising_frame


@pytest.mark.parametrize(
    ("message", "normalised"),
    [
        ("noop was asked to fail on run 12", "noop was asked to fail on run <n>"),
        (
            "[Errno 2] No such file or directory: '/archive/GEM/GEM00000012.nxs'",
            "[Errno <n>] No such file or directory: <path>",
        ),
        ("data file /archive/a b.nxs", "data file <path> b.nxs"),
        ("object at 0x7f3a2b10 failed", "object at <hex> failed"),
        ("took 3.5e-3 s,  then   1.25", "took <n> s, then <n>"),
    ],
)
def test_numbers_paths_and_addresses_are_normalised_away(message: str, normalised: str) -> None:
    assert normalise_message(message) == normalised


def test_the_same_cause_on_different_runs_has_one_fingerprint() -> None:
    first = classify(ErrorCategory.PLUGIN, "bad bank in /d/WISH00000001.nxs", exception_type="E")
    second = classify(ErrorCategory.PLUGIN, "bad bank in /d/WISH00044733.nxs", exception_type="E")

    assert first == second
    assert len(first.fingerprint) == 12 and int(first.fingerprint, 16) >= 0


@pytest.mark.parametrize(
    "other",
    [
        {"category": ErrorCategory.DATA},
        {"plugin": "sans"},
        {"exception_type": "KeyError"},
        {"frame": "plugins.noop:reduce"},
        {"reason": "another message"},
    ],
)
def test_any_part_of_the_cause_changes_the_fingerprint(other: dict[str, object]) -> None:
    parts: dict[str, object] = {
        "category": ErrorCategory.PLUGIN,
        "reason": "a message",
        "plugin": "noop",
        "exception_type": "RuntimeError",
        "frame": "plugins.noop:_fail",
    }
    base = classify(**parts)  # type: ignore[arg-type]

    assert classify(**{**parts, **other}).fingerprint != base.fingerprint  # type: ignore[arg-type]


def test_the_signature_names_the_exception_where_it_was_raised_and_its_message() -> None:
    failure = classify(
        ErrorCategory.PLUGIN, "no bank 7", exception_type="KeyError", frame="acme.reduce:focus"
    )

    assert failure.signature == "KeyError in acme.reduce:focus: no bank <n>"
    assert failure.columns()["error_category"] == "plugin"


def _plugin_code() -> None:
    json.loads("{")  # raises inside the json package


def test_the_raising_frame_is_the_innermost_one_in_the_plugins_package() -> None:
    with pytest.raises(ValueError) as raised:
        _plugin_code()

    assert raising_frame(raised.value, "tests") == f"{__name__}:_plugin_code"
    assert raising_frame(raised.value, "json") == "json.decoder:raw_decode"


def test_without_a_frame_in_the_plugins_package_the_innermost_frame_is_named() -> None:
    with pytest.raises(ValueError) as raised:
        _plugin_code()

    assert raising_frame(raised.value, "not_a_package") == "json.decoder:raw_decode"
