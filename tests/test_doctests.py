"""The examples in the docstrings run (``>>>`` lines) and give what they show."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["skyscan_tui.sky", "skyscan_tui.stats", "skyscan_tui.healpix",
           "skyscan_tui.app_api", "skyscan_tui.options", "skyscan_tui.coords",
           "skyscan_tui.contours", "skyscan_tui.projections", "skyscan_tui.progress",
           "skyscan_tui.eventinfo", "skyscan_tui.realtime.i3time", "recos.track.pull",
           "recos.track.pandel", "recos.track.frame", "recos.track.cleaning",
           "recos.track.mpecharge", "skyscan_tui.scanupdates", "skyscan_tui.refinement",
           "skyscan_tui.observe", "executors.slurm_format", "executors.condor_format"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
    assert result.attempted > 0, f"{name} has no docstring examples"
