"""The precedence of a run's values, and the source recorded for each (DESIGN §4)."""

from __future__ import annotations

import pytest

from autoreduce.plugin import Variable
from autoreduce.variable_rules import (
    BaseVersion,
    Rule,
    check_rule_values,
    differences,
    resolve_run_values,
)
from autoreduce.variables import VariableError

DECLARED = [
    Variable("a", "int", 1, "a"),
    Variable("b", "int", 2, "b"),
    Variable("c", "int", 3, "c"),
    Variable("d", "float", 4.0, "d", minimum=0.0),
]
RULES = [
    Rule(4, {"a": 10}, experiment_ref="1920123"),
    Rule(5, {"a": 20, "b": 20}, from_run=100),
    Rule(6, {"a": 30}, from_run=200),
]


def test_experiment_beats_from_run_beats_instrument_beats_plugin() -> None:
    resolution = resolve_run_values(
        DECLARED,
        run_number=250,
        experiment_ref="1920123",
        rules=RULES,
        instrument_defaults={"a": 0, "b": 0, "c": 30},
    )

    assert resolution.values == {"a": 10, "b": 20, "c": 30, "d": 4.0}
    assert resolution.sources == {
        "a": "experiment 1920123 rule #4",
        "b": "from run 100 rule #5",
        "c": "instrument default",
        "d": "plugin default",
    }


def test_the_from_run_rule_with_the_highest_start_not_after_the_run_applies() -> None:
    before, between, after = (
        resolve_run_values(DECLARED, run_number=n, experiment_ref="", rules=RULES)
        for n in (99, 150, 200)
    )

    assert before.sources["a"] == "plugin default"
    assert (between.values["a"], between.sources["a"]) == (20, "from run 100 rule #5")
    assert (after.values["a"], after.sources["a"]) == (30, "from run 200 rule #6")
    assert after.sources["b"] == "from run 100 rule #5"  # rule #6 does not name b


def test_an_experiment_rule_needs_the_run_to_be_of_that_experiment() -> None:
    resolution = resolve_run_values(DECLARED, run_number=1, experiment_ref="", rules=RULES)

    assert resolution.sources["a"] == "plugin default"


def test_rerun_changes_beat_the_base_whose_values_keep_their_sources() -> None:
    base = BaseVersion(1, {"a": 10, "b": 7}, {"a": "experiment 1920123 rule #4"})

    resolution = resolve_run_values(
        DECLARED, run_number=250, experiment_ref="", rules=RULES, base=base, changes={"c": 9}
    )

    assert resolution.values == {"a": 10, "b": 7, "c": 9, "d": 4.0}
    assert resolution.sources == {
        "a": "experiment 1920123 rule #4",
        "b": "version 1",
        "c": "re-run change",
        "d": "plugin default",
    }


def test_a_rule_value_that_breaks_its_declaration_names_the_variable_and_the_rule() -> None:
    with pytest.raises(VariableError, match=r"rule #9.*'d' must be >= 0.0"):
        check_rule_values(DECLARED, {"d": -1}, "rule #9")


def test_a_rule_for_an_undeclared_variable_names_it() -> None:
    with pytest.raises(VariableError, match=r"unknown variable.*nope"):
        check_rule_values(DECLARED, {"nope": 1}, "rule")


def test_a_stored_value_that_no_longer_validates_names_its_source() -> None:
    with pytest.raises(VariableError, match=r"'d'.*from from run 1 rule #3"):
        resolve_run_values(
            DECLARED, run_number=5, experiment_ref="", rules=[Rule(3, {"d": -2.0}, from_run=1)]
        )


def test_differences_name_each_changed_value() -> None:
    assert differences({"a": 1, "b": 2}, {"a": 1, "b": 3, "c": 4}) == {
        "b": {"from": 2, "to": 3},
        "c": {"from": None, "to": 4},
    }
