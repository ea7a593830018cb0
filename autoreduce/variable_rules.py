"""The values a run version gets, and where each came from: one precedence for every run.

Highest first (DESIGN §4, "Variables of a run"):

1. a re-run's changes (source ``"re-run change"``);
2. a re-run's base version, when the re-run names one (``latest`` or ``version N``): each value
   carried from it keeps the source recorded on that version (``"version N"`` when that version
   recorded none);
3. an experiment rule for the run's experiment (``"experiment 1920123 rule #4"``);
4. the from-run rule with the highest start ≤ the run number (``"from run 100 rule #5"``);
5. the instrument's TOML defaults (``"instrument default"``);
6. the plugin's declared defaults (``"plugin default"``).

Precedence is per variable: a rule gives values for the variables it names only, so a variable
a newer from-run rule does not name still comes from an older one. Among rules of one kind that
both apply (two rules for one experiment, two from the same run), the newer rule (higher id) wins.
Detected runs, single re-runs and batch re-runs all resolve through :func:`resolve_run_values`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from autoreduce.plugin import Variable
from autoreduce.variables import VariableError, check_value

RERUN_CHANGE = "re-run change"
INSTRUMENT_DEFAULT = "instrument default"
PLUGIN_DEFAULT = "plugin default"


@dataclass(frozen=True)
class Rule:
    """A stored variable rule, as the resolution needs it (exactly one of the two scopes set)."""

    id: int
    values: Mapping[str, Any]
    experiment_ref: str | None = None
    from_run: int | None = None

    @property
    def label(self) -> str:
        """How a run's sources name this rule: ``experiment 1920123 rule #4``."""
        if self.experiment_ref is not None:
            return f"experiment {self.experiment_ref} rule #{self.id}"
        return f"from run {self.from_run} rule #{self.id}"

    def applies_to(self, run_number: int, experiment_ref: str) -> bool:
        if self.experiment_ref is not None:
            return bool(experiment_ref) and self.experiment_ref == experiment_ref
        return self.from_run is not None and self.from_run <= run_number


@dataclass(frozen=True)
class BaseVersion:
    """The stored version a re-run starts from: its values and their recorded sources."""

    run_version: int
    values: Mapping[str, Any]
    sources: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Resolution:
    """Every declared variable's value and, under the same names, where it came from."""

    values: dict[str, Any]
    sources: dict[str, str]


@dataclass(frozen=True)
class _Layer:
    values: Mapping[str, Any]
    sources: Mapping[str, str]


def check_names(declared: Iterable[Variable], values: Mapping[str, Any], where: str) -> None:
    """Raise :class:`VariableError` naming each of ``values`` the plugin does not declare."""
    known = sorted(variable.name for variable in declared)
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise VariableError(
            f"{where}: unknown variable(s) {', '.join(unknown)}; "
            f"the plugin declares: {', '.join(known) or 'none'}"
        )


def check_rule_values(declared: list[Variable], values: Mapping[str, Any], where: str) -> None:
    """Validate a rule's values against the declarations; the error names variable and rule."""
    check_names(declared, values, where)
    by_name = {variable.name: variable for variable in declared}
    for name, value in values.items():
        try:
            check_value(by_name[name], value)
        except VariableError as error:
            raise VariableError(f"{where}: {error}") from None


def _rule_order(rule: Rule) -> tuple[int, int, int]:
    """Experiment rules first, then from-run rules by start descending; newer before older."""
    if rule.experiment_ref is not None:
        return (0, 0, -rule.id)
    return (1, -(rule.from_run or 0), -rule.id)


def _layers(
    run_number: int,
    experiment_ref: str,
    rules: Iterable[Rule],
    instrument_defaults: Mapping[str, Any],
    base: BaseVersion | None,
    changes: Mapping[str, Any],
) -> list[_Layer]:
    layers = [_Layer(changes, dict.fromkeys(changes, RERUN_CHANGE))]
    if base is not None:
        carried = {
            name: base.sources.get(name) or f"version {base.run_version}" for name in base.values
        }
        layers.append(_Layer(base.values, carried))
    applying = sorted(
        (rule for rule in rules if rule.applies_to(run_number, experiment_ref)), key=_rule_order
    )
    layers += [_Layer(rule.values, dict.fromkeys(rule.values, rule.label)) for rule in applying]
    layers.append(
        _Layer(instrument_defaults, dict.fromkeys(instrument_defaults, INSTRUMENT_DEFAULT))
    )
    return layers


def resolve_run_values(
    declared: list[Variable],
    *,
    run_number: int,
    experiment_ref: str,
    rules: Iterable[Rule] = (),
    instrument_defaults: Mapping[str, Any] | None = None,
    base: BaseVersion | None = None,
    changes: Mapping[str, Any] | None = None,
) -> Resolution:
    """The values of a new version of run ``run_number`` and the source of each.

    ``base`` is the version a re-run starts from (None for a detected run, or a re-run on today's
    rules and defaults); ``changes`` are the re-run's own values. A base value of a variable the
    plugin no longer declares is dropped. Raises :class:`VariableError` naming the variable and
    where its bad value came from (an unknown name in ``changes`` or the instrument defaults, a
    value that breaks its declaration).
    """
    changes = changes or {}
    instrument_defaults = instrument_defaults or {}
    check_names(declared, changes, "re-run")
    check_names(declared, instrument_defaults, "instrument defaults")
    layers = _layers(run_number, experiment_ref, rules, instrument_defaults, base, changes)
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for variable in declared:
        layer = next((layer for layer in layers if variable.name in layer.values), None)
        if layer is None:
            values[variable.name] = variable.default
            sources[variable.name] = PLUGIN_DEFAULT
            continue
        source = layer.sources[variable.name]
        try:
            values[variable.name] = check_value(variable, layer.values[variable.name])
        except VariableError as error:
            raise VariableError(f"{error} (from {source})") from None
        sources[variable.name] = source
    return Resolution(values, sources)


def differences(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """``{name: {"from": old, "to": new}}`` for each value that differs (absent is None)."""
    return {
        name: {"from": before.get(name), "to": after.get(name)}
        for name in sorted(set(before) | set(after))
        if before.get(name) != after.get(name) or (name in before) != (name in after)
    }
