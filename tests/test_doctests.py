"""The examples in the docstrings run (``>>>`` lines) and give what they show."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["skyscan_tui.sky", "skyscan_tui.stats", "skyscan_tui.healpix",
           "skyscan_tui.app_api", "skyscan_tui.options", "skyscan_tui.scanupdates",
           "skyscan_tui.observe"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
    assert result.attempted > 0, f"{name} has no docstring examples"
