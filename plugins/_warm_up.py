"""The built-in neutron plugins' shared ``warm_up`` hook; importing this module stays cheap."""

from __future__ import annotations

from autoreduce.plugin import hookimpl


@hookimpl
def warm_up() -> None:
    """Import scipp, scippnexus and matplotlib once per processor, not once per run."""
    import plugins._neutron_run
    import plugins._outputs  # noqa: F401
