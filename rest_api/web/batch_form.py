"""The batch re-run form of the experiment page, read into one batch request per instrument.

A batch (:mod:`rest_api.batches`) re-runs runs of one instrument; an experiment may span
several, so the form's selection — every run of the experiment, a range of run numbers within
it, or the runs ticked — becomes one :class:`BatchRerunRequest` per instrument it touches.
Variable changes are typed one a line, ``name = value``, each value read as JSON (a number,
``true``/``false``, a quoted string) or else taken as text.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from rest_api.rerun_schemas import BatchRerunRequest

SELECTIONS = ("all", "range", "selected")
MAX_CHANGES_CHARS = 5000


class BatchFormError(ValueError):
    """What is wrong with the form, in words for the person who filled it in."""


@dataclass
class BatchForm:
    """The form as typed, kept to fill it in again beside a preview or an error."""

    selection: str = "all"
    run_min: str = ""
    run_max: str = ""
    selected: list[str] = field(default_factory=list)  # "INSTRUMENT:RUN_NUMBER"
    changes: str = ""
    reason: str = ""
    supersede: bool = False


def parse_changes(text: str) -> dict[str, Any]:
    """``name = value`` lines as a dict; :class:`BatchFormError` naming a bad line."""
    if len(text) > MAX_CHANGES_CHARS:
        raise BatchFormError(f"variable changes: more than {MAX_CHANGES_CHARS} characters")
    changes: dict[str, Any] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        name, equals, raw = line.partition("=")
        name, raw = name.strip(), raw.strip()
        if not equals or not name or not name.isidentifier():
            raise BatchFormError(
                f"variable changes, line {number}: {line.strip()!r} is not 'name = value'"
            )
        try:
            changes[name] = json.loads(raw)
        except ValueError:
            changes[name] = raw
    return changes


def _run_number(text: str, what: str) -> int:
    if not text.strip().isascii() or not text.strip().isdigit():
        raise BatchFormError(f"{what}: {text!r} is not a run number")
    return int(text)


def _quoted(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def _selected_by_instrument(selected: list[str], instruments: list[str]) -> dict[str, list[int]]:
    chosen: dict[str, list[int]] = {}
    for value in selected:
        instrument, colon, number = value.partition(":")
        if not colon or instrument not in instruments:
            raise BatchFormError(f"selected run {value!r} is not a run of this experiment")
        chosen.setdefault(instrument, []).append(_run_number(number, "selected run"))
    if not chosen:
        raise BatchFormError(
            "no run is ticked: tick the runs to re-run, or choose another selection"
        )
    return chosen


def batch_requests(
    form: BatchForm, experiment_ref: str, instruments: list[str], *, dry_run: bool
) -> list[BatchRerunRequest]:
    """One request per instrument the form selects; :class:`BatchFormError` if it cannot."""
    if form.selection not in SELECTIONS:
        raise BatchFormError(f"selection {form.selection!r}: choose one of {', '.join(SELECTIONS)}")
    common: dict[str, Any] = {
        "variables": parse_changes(form.changes),
        "reason": form.reason,
        "supersede": form.supersede,
        "dry_run": dry_run,
    }
    per_instrument: dict[str, dict[str, Any]]
    if form.selection == "all":
        per_instrument = {name: {"experiment_ref": experiment_ref} for name in instruments}
    elif form.selection == "range":
        low = _run_number(form.run_min, "first run")
        high = _run_number(form.run_max, "last run")
        if low > high:
            raise BatchFormError(f"the first run {low} is after the last run {high}")
        q = f"experiment:{_quoted(experiment_ref)} run:{low}..{high}"
        per_instrument = {name: {"q": q} for name in instruments}
    else:
        chosen = _selected_by_instrument(form.selected, instruments)
        per_instrument = {name: {"runs": numbers} for name, numbers in chosen.items()}
    try:
        return [
            BatchRerunRequest(instrument=name, **selection, **common)
            for name, selection in per_instrument.items()
        ]
    except ValidationError as error:
        problem = error.errors()[0]
        where = ".".join(str(part) for part in problem["loc"])
        raise BatchFormError(f"{where}: {problem['msg']}" if where else problem["msg"]) from None
