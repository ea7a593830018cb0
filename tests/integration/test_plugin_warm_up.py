"""Processors import the heavy reduction libraries once, before they fork reductions."""

from __future__ import annotations

import subprocess
import sys


def test_warm_up_imports_scipp_and_matplotlib_in_the_processor() -> None:
    script = (
        "import sys\n"
        "from autoreduce.plugin_manager import Plugins\n"
        "plugins = Plugins()\n"
        "before = {'scipp', 'scippnexus', 'matplotlib.pyplot'} & set(sys.modules)\n"
        "plugins.warm_up()\n"
        "after = {'scipp', 'scippnexus', 'matplotlib.pyplot'} & set(sys.modules)\n"
        "print(sorted(before), sorted(after))\n"
    )

    output = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout.strip()

    assert output == "[] ['matplotlib.pyplot', 'scipp', 'scippnexus']"
