"""Validate a run's variables against the plugin's declarations."""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter, ValidationError

from autoreduce.plugin import Variable

_ADAPTERS: dict[str, TypeAdapter[Any]] = {
    "int": TypeAdapter(int),
    "float": TypeAdapter(float),
    "str": TypeAdapter(str),
    "bool": TypeAdapter(bool),
    "list[int]": TypeAdapter(list[int]),
    "list[float]": TypeAdapter(list[float]),
    "list[str]": TypeAdapter(list[str]),
}


class VariableError(ValueError):
    """A variable that does not match its declaration; the message names it and says why."""


def check_value(variable: Variable, value: Any) -> Any:
    """``value`` checked against ``variable``'s declaration (an int becomes a float where one is
    declared); :class:`VariableError` naming the variable and the constraint it breaks."""
    try:
        checked = _ADAPTERS[variable.type].validate_python(value, strict=True)
    except ValidationError:
        if variable.type == "float" and isinstance(value, int) and not isinstance(value, bool):
            checked = float(value)
        else:
            raise VariableError(
                f"variable {variable.name!r} must be {variable.type}, got {value!r}"
            ) from None
    if variable.choices is not None and checked not in variable.choices:
        raise VariableError(
            f"variable {variable.name!r} must be one of {list(variable.choices)}, got {checked!r}"
        )
    for bound, ok in ((variable.minimum, "ge"), (variable.maximum, "le")):
        if bound is None:
            continue
        numbers = checked if isinstance(checked, list) else [checked]
        for number in numbers:
            if ok == "ge" and number < bound:
                raise VariableError(f"variable {variable.name!r} must be >= {bound}, got {number}")
            if ok == "le" and number > bound:
                raise VariableError(f"variable {variable.name!r} must be <= {bound}, got {number}")
    return checked


def resolve_variables(
    declared: list[Variable],
    values: dict[str, Any] | None = None,
    instrument_defaults: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Every declared variable's value: given value, else instrument default, else plugin default.

    Unknown names and values of the wrong type raise :class:`VariableError`.
    """
    by_name = {variable.name: variable for variable in declared}
    for source in (instrument_defaults or {}, values or {}):
        unknown = sorted(set(source) - set(by_name))
        if unknown:
            raise VariableError(
                f"unknown variable(s) {', '.join(unknown)}; known: {', '.join(sorted(by_name))}"
            )
    resolved: dict[str, Any] = {}
    for name, variable in by_name.items():
        if values and name in values:
            resolved[name] = check_value(variable, values[name])
        elif instrument_defaults and name in instrument_defaults:
            resolved[name] = check_value(variable, instrument_defaults[name])
        else:
            resolved[name] = variable.default
    return resolved
