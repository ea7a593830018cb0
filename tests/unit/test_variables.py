"""Variables are JSON checked against the plugin's declarations, never evaluated."""

from __future__ import annotations

import pytest

from autoreduce.plugin import Variable
from autoreduce.variables import VariableError, resolve_variables

DECLARED = [
    Variable("bins", "int", 1000, "bins", minimum=10),
    Variable("d_max", "float", 3.5, "upper d"),
    Variable("mode", "str", "fast", "mode", choices=("fast", "slow")),
    Variable("banks", "list[int]", [1, 2], "banks"),
    Variable("normalise", "bool", True, "normalise"),
]


def test_defaults_fill_what_is_not_given() -> None:
    assert resolve_variables(DECLARED, {"bins": 50}) == {
        "bins": 50,
        "d_max": 3.5,
        "mode": "fast",
        "banks": [1, 2],
        "normalise": True,
    }


def test_given_values_beat_instrument_defaults_which_beat_plugin_defaults() -> None:
    resolved = resolve_variables(DECLARED, {"bins": 20}, {"bins": 30, "d_max": 4.0})

    assert (resolved["bins"], resolved["d_max"]) == (20, 4.0)


def test_an_int_is_accepted_for_a_float() -> None:
    assert resolve_variables(DECLARED, {"d_max": 4})["d_max"] == 4.0


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"bins": "1000"}, "'bins' must be int"),
        ({"bins": 1.5}, "'bins' must be int"),
        ({"bins": True}, "'bins' must be int"),
        ({"bins": 5}, "'bins' must be >= 10"),
        ({"mode": "medium"}, "'mode' must be one of"),
        ({"banks": [1, "two"]}, "'banks' must be list[int]"),
        ({"normalise": "yes"}, "'normalise' must be bool"),
        ({"__import__('os')": 1}, "unknown variable"),
    ],
)
def test_a_wrong_value_is_refused_with_its_reason(values: dict[str, object], message: str) -> None:
    with pytest.raises(VariableError, match=message.replace("(", r"\(").replace("[", r"\[")):
        resolve_variables(DECLARED, values)
