"""The run message schema (DESIGN §4): what validates, and the reasons for what does not."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from autoreduce.messages import InvalidMessage, RunMessage, parse_run_message

VALID = {
    "schema": 1,
    "run_id": 812,
    "instrument": "WISH",
    "run_number": 44733,
    "run_version": 0,
    "experiment_ref": "1920123",
    "data_path": "/archive/NDXWISH/WISH00044733.nxs",
    "variables": {"vanadium_run": 44700, "focus_banks": 5},
    "reason": "detected",
    "submitted_at": "2026-11-24T06:40:00.123Z",
    "submitted_by": "run-detection",
}


def test_the_design_example_round_trips() -> None:
    message = parse_run_message(json.dumps(VALID))

    assert message.run_number == 44733
    assert json.loads(message.to_json())["schema"] == 1
    assert parse_run_message(message.to_json()) == message


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"schema": 2}, "schema"),
        ({"run_id": "twelve"}, "run_id"),
        ({"run_number": -1}, "run_number"),
        ({"reason": "because"}, "reason"),
        ({"surprise": True}, "surprise"),
        ({"data_path": ""}, "data_path"),
    ],
)
def test_an_invalid_field_is_named_in_the_reason(change: dict[str, object], reason: str) -> None:
    with pytest.raises(InvalidMessage) as caught:
        parse_run_message(json.dumps({**VALID, **change}))

    assert caught.value.reason.startswith("invalid run message: ")
    assert reason in caught.value.reason


def test_a_body_that_is_not_json_is_invalid_not_a_crash() -> None:
    with pytest.raises(InvalidMessage, match="invalid run message"):
        parse_run_message(b"\xff\xfe not json")


@given(st.binary(max_size=200) | st.text(max_size=200))
def test_any_body_either_parses_or_raises_invalid_message(body: bytes | str) -> None:
    try:
        assert isinstance(parse_run_message(body), RunMessage)
    except InvalidMessage as error:
        assert "\n" not in error.reason and len(error.reason) <= 900
