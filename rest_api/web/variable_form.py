"""Forms generated from a plugin's variable declarations: fields to render, values to parse.

Each declared variable becomes one field whose widget follows its type: a number box for
``int``/``float`` (with the declared bounds), a select for a variable with ``choices``, a
checkbox for ``bool``, a text box for ``str`` and for lists (comma-separated). Parsing turns the
submitted text back into typed JSON values and checks each against its declaration with
:func:`autoreduce.variables.check_value`, so the page refuses exactly what the API refuses; a
value that does not fit gives an error for that field alone, to be shown beside it.

A *re-run* form is filled with the base version's values and sends every field. A *rule* form
starts empty: a field left blank (or a select on "not set") sets nothing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from autoreduce.plugin import Variable
from autoreduce.variables import VariableError, check_value
from rest_api.schemas import VariableDeclaration

FIELD_PREFIX = "var."
"""Form field names are ``var.<variable name>`` (no clash with ``reason`` or ``csrf_token``)."""

NOT_SET = ""


@dataclass
class FormField:
    """One variable as the form shows it."""

    name: str
    type: str
    widget: str  # number | text | checkbox | select
    value: str  # what the input holds (for a checkbox: "true" when ticked)
    default: str  # the default a new run gets, as text
    default_source: str
    help: str
    advanced: bool
    choices: list[str]
    minimum: float | None
    maximum: float | None
    error: str = ""

    @property
    def input_name(self) -> str:
        return FIELD_PREFIX + self.name

    @property
    def input_id(self) -> str:
        return "var-" + "".join(c if c.isalnum() else "-" for c in self.name)

    @property
    def step(self) -> str:
        return "1" if self.type == "int" else "any"


def as_text(value: Any) -> str:
    """A JSON value as a person types it: lists comma-separated, booleans ``true``/``false``."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ", ".join(as_text(item) for item in value)
    return str(value)


def _widget(declaration: VariableDeclaration, optional: bool) -> str:
    if declaration.choices is not None:
        return "select"
    if declaration.type == "bool":
        return "select" if optional else "checkbox"
    if declaration.type in ("int", "float"):
        return "number"
    return "text"


def _choices(declaration: VariableDeclaration) -> list[str]:
    if declaration.choices is not None:
        return [as_text(choice) for choice in declaration.choices]
    if declaration.type == "bool":
        return ["true", "false"]
    return []


def form_fields(
    declarations: list[VariableDeclaration],
    values: Mapping[str, Any] | None = None,
    *,
    optional: bool = False,
) -> list[FormField]:
    """The fields of a form for ``declarations``, holding ``values`` (typed JSON values)."""
    values = values or {}
    return [
        FormField(
            name=declaration.name,
            type=declaration.type,
            widget=_widget(declaration, optional),
            value=as_text(values[declaration.name]) if declaration.name in values else NOT_SET,
            default=as_text(declaration.default),
            default_source=declaration.default_source,
            help=declaration.help,
            advanced=declaration.advanced,
            choices=_choices(declaration),
            minimum=declaration.minimum,
            maximum=declaration.maximum,
        )
        for declaration in declarations
    ]


def with_entered(fields: list[FormField], form: Mapping[str, Any], errors: dict[str, str]) -> None:
    """Put the text a person entered back into ``fields`` with each field's error."""
    for field in fields:
        entered = form.get(field.input_name)
        if field.widget == "checkbox":
            field.value = "true" if entered is not None else "false"
        else:
            field.value = entered if isinstance(entered, str) else NOT_SET
        field.error = errors.get(field.name, "")


def _number(text: str, kind: type[int] | type[float]) -> int | float:
    if kind is int:
        return int(text)
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(text)
    return number


_ITEM_KINDS: dict[str, type[int] | type[float] | type[str]] = {
    "list[int]": int,
    "list[float]": float,
    "list[str]": str,
}


def _typed(declaration: VariableDeclaration, text: str) -> Any:
    """The typed value of ``text`` for ``declaration``; ValueError with a reason otherwise."""
    if declaration.choices is not None:
        for choice in declaration.choices:
            if as_text(choice) == text:
                return choice
        raise ValueError(f"must be one of {', '.join(as_text(c) for c in declaration.choices)}")
    if declaration.type == "bool":
        if text not in ("true", "false"):
            raise ValueError("must be true or false")
        return text == "true"
    if declaration.type in ("int", "float"):
        try:
            return _number(text.strip(), int if declaration.type == "int" else float)
        except ValueError:
            kind = "a whole number" if declaration.type == "int" else "a number"
            raise ValueError(f"must be {kind}, not {text!r}") from None
    if declaration.type in _ITEM_KINDS:
        item_kind = _ITEM_KINDS[declaration.type]
        items = [item.strip() for item in text.split(",") if item.strip()]
        if item_kind is str:
            return items
        try:
            return [_number(item, item_kind) for item in items]  # type: ignore[arg-type]
        except ValueError:
            raise ValueError(f"must be a comma-separated list of {item_kind.__name__}s") from None
    return text


def _variable(declaration: VariableDeclaration) -> Variable:
    return Variable(
        name=declaration.name,
        type=declaration.type,  # type: ignore[arg-type]
        default=declaration.default,
        help=declaration.help,
        advanced=declaration.advanced,
        choices=None if declaration.choices is None else tuple(declaration.choices),
        minimum=declaration.minimum,
        maximum=declaration.maximum,
    )


def _constraint_reason(error: VariableError, name: str) -> str:
    """``variable 'x' must be >= 0, got -1`` → ``must be >= 0, got -1`` (the field names it)."""
    text = str(error)
    prefix = f"variable {name!r} "
    return text.removeprefix(prefix)


def parse_values(
    declarations: list[VariableDeclaration],
    form: Mapping[str, Any],
    *,
    optional: bool = False,
) -> tuple[dict[str, Any], dict[str, str]]:
    """The typed values the form sets, and an error per field that does not fit.

    With ``optional`` (a rule form) a blank field sets nothing; otherwise every field is sent
    (an unticked checkbox is ``false``) and a blank number is an error.
    """
    values: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for declaration in declarations:
        raw = form.get(FIELD_PREFIX + declaration.name)
        if declaration.type == "bool" and declaration.choices is None and not optional:
            text = "true" if raw is not None else "false"
        else:
            text = raw if isinstance(raw, str) else NOT_SET
        if text.strip() == NOT_SET and declaration.type != "str":
            if not optional:
                errors[declaration.name] = "a value is required"
            continue
        if text == NOT_SET and optional:
            continue
        try:
            value = _typed(declaration, text)
            values[declaration.name] = check_value(_variable(declaration), value)
        except VariableError as error:
            errors[declaration.name] = _constraint_reason(error, declaration.name)
        except ValueError as error:
            errors[declaration.name] = str(error)
    return values, errors


def changed(values: dict[str, Any], base: Mapping[str, Any]) -> dict[str, Any]:
    """The values that differ from ``base`` (``1`` and ``1.0`` are equal)."""
    return {
        name: value for name, value in values.items() if name not in base or base[name] != value
    }
