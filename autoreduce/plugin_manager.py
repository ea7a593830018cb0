"""Find reduction plugins through the ``autoreduce.plugins`` entry points and call their hooks."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from types import ModuleType
from typing import Any

import pluggy

from autoreduce import hookspecs
from autoreduce.plugin import PROJECT, ReductionContext, ReductionResult, RunInfo, Variable

ENTRY_POINT_GROUP = "autoreduce.plugins"


class UnknownPlugin(LookupError):
    """An instrument names a plugin that no installed package provides."""


@dataclass(frozen=True)
class PluginRelease:
    """A plugin as installed here: its entry-point name, distribution and version.

    A plugin registered in-process (a pluggy manager built by the caller, as tests do) has no
    distribution: ``distribution`` and ``version`` are empty.
    """

    name: str
    distribution: str
    version: str

    @property
    def from_entry_point(self) -> bool:
        return bool(self.distribution)

    def __str__(self) -> str:
        return f"{self.name} {self.version}" if self.version else self.name


class Plugins:
    """The plugin manager: the built-in plugins register exactly as third-party ones do."""

    def __init__(self, manager: pluggy.PluginManager | None = None) -> None:
        if manager is None:
            manager = pluggy.PluginManager(PROJECT)
            manager.add_hookspecs(hookspecs)
            manager.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
        self.manager = manager

    def names(self) -> list[str]:
        return sorted(name for name, _ in self.manager.list_name_plugin() if name)

    def _caller(self, plugin_name: str, hook: str) -> Any:
        target = self.manager.get_plugin(plugin_name)
        if target is None:
            raise UnknownPlugin(
                f"no reduction plugin named {plugin_name!r} is installed "
                f"(installed: {', '.join(self.names()) or 'none'})"
            )
        others = [p for p in self.manager.get_plugins() if p is not target]
        return self.manager.subset_hook_caller(hook, remove_plugins=others)

    def releases(self) -> list[PluginRelease]:
        """Every registered plugin with the distribution and version it was installed from."""
        found = {
            self.manager.get_name(plugin): (str(dist.project_name), str(dist.version))
            for plugin, dist in self.manager.list_plugin_distinfo()
        }
        return [PluginRelease(name, *found.get(name, ("", ""))) for name in self.names()]

    def release(self, plugin_name: str) -> PluginRelease | None:
        """``plugin_name`` as installed here; None when no such plugin is registered."""
        return next((r for r in self.releases() if r.name == plugin_name), None)

    def package_of(self, plugin_name: str) -> str:
        """The top-level package of the code behind ``plugin_name`` (``plugins`` for
        ``plugins.noop``); empty when no such plugin is registered."""
        target = self.manager.get_plugin(plugin_name)
        if target is None:
            return ""
        module = target.__name__ if isinstance(target, ModuleType) else type(target).__module__
        return str(module).split(".", 1)[0]

    def variables(self, plugin_name: str, instrument: str) -> list[Variable]:
        return list(self._caller(plugin_name, "reduction_variables")(instrument=instrument) or [])

    def reduce(self, plugin_name: str, context: ReductionContext) -> ReductionResult:
        result = self._caller(plugin_name, "reduce")(context=context)
        if not isinstance(result, ReductionResult):
            raise TypeError(
                f"plugin {plugin_name!r} returned {type(result).__name__} from reduce, "
                "not a ReductionResult"
            )
        return result

    def warm_up(self, plugin_name: str | None = None) -> None:
        """Run every plugin's ``warm_up`` hook, or only ``plugin_name``'s."""
        if plugin_name is None:
            self.manager.hook.warm_up()
        else:
            self._caller(plugin_name, "warm_up")()

    def _observers(self, plugin_name: str | None, hook: str) -> Any:
        """``hook`` of the plugin ``plugin_name`` (if installed) and of the global observers.

        A global observer is a plugin whose ``observes_all_instruments`` answers True.
        """
        own = self.manager.get_plugin(plugin_name) if plugin_name else None
        observers = [own] if own is not None else []
        for impl in self.manager.hook.observes_all_instruments.get_hookimpls():
            if impl.function():
                observers.append(impl.plugin)
        others = [
            plugin
            for plugin in self.manager.get_plugins()
            if not any(plugin is observer for observer in observers)
        ]
        return self.manager.subset_hook_caller(hook, remove_plugins=others)

    def skip_reason(self, run: RunInfo, *, plugin: str | None) -> str | None:
        """The first reason to skip ``run`` from ``plugin`` (its instrument's) or an observer."""
        reason = self._observers(plugin, "skip_run")(run=run)
        return str(reason) if reason else None

    def run_finished(
        self, run: RunInfo, status: str, result: ReductionResult | None, *, plugin: str | None
    ) -> None:
        """Tell ``plugin`` (the run's instrument's) and the global observers how ``run`` ended."""
        self._observers(plugin, "run_finished")(run=run, status=status, result=result)


@cache
def installed_plugins() -> Plugins:
    """The process-wide plugin manager, loaded once."""
    return Plugins()
