"""Forms generated from variable declarations: widgets by type, typed values, errors per field."""

from __future__ import annotations

from typing import Any

from rest_api.schemas import VariableDeclaration
from rest_api.web.variable_form import changed, form_fields, parse_values


def declaration(name: str, kind: str, default: Any, **extra: Any) -> VariableDeclaration:
    values: dict[str, Any] = {"help": "", "advanced": False, "choices": None}
    values |= {"minimum": None, "maximum": None} | extra
    return VariableDeclaration(
        name=name, type=kind, default=default, default_source="plugin", plugin_default=default,
        **values,
    )  # fmt: skip


DECLARED = [
    declaration("sleep_s", "float", 0.0, minimum=0.0),
    declaration("banks", "list[int]", [1, 2]),
    declaration("fault", "str", "none", choices=["none", "raise"], advanced=True),
    declaration("smooth", "bool", False),
    declaration("label", "str", ""),
]


def test_each_type_gets_its_widget() -> None:
    widgets = {field.name: field.widget for field in form_fields(DECLARED)}
    assert widgets == {
        "sleep_s": "number",
        "banks": "text",
        "fault": "select",
        "smooth": "checkbox",
        "label": "text",
    }


def test_a_rule_form_offers_not_set_for_a_boolean() -> None:
    smooth = next(f for f in form_fields(DECLARED, optional=True) if f.name == "smooth")
    assert smooth.widget == "select" and smooth.choices == ["true", "false"]


def test_the_submitted_text_becomes_typed_values() -> None:
    form = {"var.sleep_s": "2", "var.banks": "3, 4", "var.fault": "raise", "var.label": "x"}
    values, errors = parse_values(DECLARED, form)
    assert errors == {}
    assert values == {"sleep_s": 2.0, "banks": [3, 4], "fault": "raise", "smooth": False,
                      "label": "x"}  # fmt: skip


def test_each_bad_value_gives_an_error_for_its_field_alone() -> None:
    form = {"var.sleep_s": "-1", "var.banks": "3, x", "var.fault": "explode", "var.smooth": "true"}
    values, errors = parse_values(DECLARED, form)
    assert errors == {
        "sleep_s": "must be >= 0.0, got -1.0",
        "banks": "must be a comma-separated list of ints",
        "fault": "must be one of none, raise",
    }
    assert values == {"smooth": True, "label": ""}


def test_text_in_a_number_and_a_blank_number_are_refused() -> None:
    assert parse_values(DECLARED[:1], {"var.sleep_s": "soon"})[1] == {
        "sleep_s": "must be a number, not 'soon'"
    }
    assert parse_values(DECLARED[:1], {"var.sleep_s": ""})[1] == {"sleep_s": "a value is required"}
    assert parse_values(DECLARED[:1], {"var.sleep_s": "nan"})[1] != {}


def test_a_rule_form_sets_only_what_is_filled_in() -> None:
    values, errors = parse_values(
        DECLARED, {"var.sleep_s": "", "var.smooth": "true"}, optional=True
    )
    assert (values, errors) == ({"smooth": True}, {})


def test_only_changed_values_are_sent() -> None:
    assert changed({"sleep_s": 1, "fault": "none"}, {"sleep_s": 1.0, "fault": "raise"}) == {
        "fault": "none"
    }
