"""Observer hooks see the runs of their own instruments, and every run only if they ask to."""

from __future__ import annotations

from pathlib import Path

import pluggy
import pytest

from autoreduce import hookspecs
from autoreduce.plugin import PROJECT, ReductionResult, RunInfo, hookimpl
from autoreduce.plugin_manager import Plugins


class Observer:
    """A plugin that skips every run it is asked about (with its name) and notes what it saw."""

    def __init__(self, name: str, *, skips: bool = True) -> None:
        self.name = name
        self.skips = skips
        self.asked: list[str] = []
        self.finished: list[tuple[str, str]] = []

    @hookimpl
    def skip_run(self, run: RunInfo) -> str | None:
        self.asked.append(run.instrument)
        return f"{self.name} skips it" if self.skips else None

    @hookimpl
    def run_finished(self, run: RunInfo, status: str, result: ReductionResult | None) -> None:
        self.finished.append((run.instrument, status))


class GlobalObserver(Observer):
    """An observer that declares it observes every instrument's runs."""

    def __init__(self, name: str, *, skips: bool = False, declares: bool = True) -> None:
        super().__init__(name, skips=skips)
        self.declares = declares

    @hookimpl
    def observes_all_instruments(self) -> bool:
        return self.declares


def run_of(instrument: str) -> RunInfo:
    return RunInfo(instrument, 1, 0, "1920123", Path(f"/archive/{instrument}00000001.nxs"))


def plugins_of(*observers: Observer) -> Plugins:
    manager = pluggy.PluginManager(PROJECT)
    manager.add_hookspecs(hookspecs)
    for observer in observers:
        manager.register(observer, name=observer.name)
    return Plugins(manager)


@pytest.fixture
def alpha() -> Observer:
    """The plugin of instrument ALF; it skips nothing."""
    return Observer("alpha", skips=False)


@pytest.fixture
def beta() -> Observer:
    """The plugin of instrument BET; it skips every run it is asked about."""
    return Observer("beta")


def test_a_plugins_skip_run_does_not_skip_another_instruments_run(
    alpha: Observer, beta: Observer
) -> None:
    plugins = plugins_of(alpha, beta)

    assert plugins.skip_reason(run_of("ALF"), plugin="alpha") is None
    assert (alpha.asked, beta.asked) == (["ALF"], [])


def test_a_plugins_skip_run_skips_its_own_instruments_run(alpha: Observer, beta: Observer) -> None:
    plugins = plugins_of(alpha, beta)

    assert plugins.skip_reason(run_of("BET"), plugin="beta") == "beta skips it"
    assert alpha.asked == []


def test_a_global_observer_is_asked_about_every_instruments_runs(
    alpha: Observer, beta: Observer
) -> None:
    watcher = GlobalObserver("watcher")
    plugins = plugins_of(alpha, beta, watcher)

    plugins.skip_reason(run_of("ALF"), plugin="alpha")
    plugins.skip_reason(run_of("BET"), plugin="beta")

    assert watcher.asked == ["ALF", "BET"]
    assert (alpha.asked, beta.asked) == (["ALF"], ["BET"])


def test_a_global_observers_skip_run_skips_any_instruments_run(alpha: Observer) -> None:
    plugins = plugins_of(alpha, GlobalObserver("calibration", skips=True))

    assert plugins.skip_reason(run_of("ALF"), plugin="alpha") == "calibration skips it"


def test_a_plugin_answering_false_is_not_a_global_observer(alpha: Observer) -> None:
    undeclared = GlobalObserver("undeclared", skips=True, declares=False)
    plugins = plugins_of(alpha, undeclared)

    assert plugins.skip_reason(run_of("ALF"), plugin="alpha") is None
    assert undeclared.asked == []


def test_run_finished_reaches_only_the_instruments_plugin_and_global_observers(
    alpha: Observer, beta: Observer
) -> None:
    watcher = GlobalObserver("watcher")
    plugins = plugins_of(alpha, beta, watcher)

    plugins.run_finished(run_of("ALF"), "Completed", None, plugin="alpha")
    plugins.run_finished(run_of("BET"), "Error", None, plugin="beta")

    assert alpha.finished == [("ALF", "Completed")]
    assert beta.finished == [("BET", "Error")]
    assert watcher.finished == [("ALF", "Completed"), ("BET", "Error")]


def test_a_run_of_an_instrument_without_an_installed_plugin_reaches_only_global_observers(
    alpha: Observer,
) -> None:
    watcher = GlobalObserver("watcher")
    plugins = plugins_of(alpha, watcher)

    plugins.run_finished(run_of("NEW"), "Error", None, plugin="not_installed")
    plugins.run_finished(run_of("ODD"), "Error", None, plugin=None)

    assert alpha.finished == []
    assert watcher.finished == [("NEW", "Error"), ("ODD", "Error")]
