"""Small helpers shared by tests that compare scans or wait on a background process."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np


def levels_of(outdir: Path) -> dict[int, np.ndarray]:
    """The result levels (nside → rows) saved in ``outdir``."""
    from skyscan_tui.results import load_result

    return load_result(outdir).levels


def assert_same_levels(a: dict, b: dict, fields: Sequence[str] = ("llh", "x")) -> None:
    """The same nsides, pixels and, bit for bit, ``fields`` (NaN equal to NaN)."""
    assert sorted(a) == sorted(b)
    for nside in a:
        x, y = a[nside], b[nside]
        assert np.array_equal(x["ipix"], y["ipix"]), nside
        for f in fields:
            assert np.array_equal(x[f], y[f], equal_nan=True), (nside, f)


def wait_for(cond: Callable[[], object], timeout: float = 60.0, what: str = "condition") -> None:
    """Poll ``cond`` every 50 ms until it is true; AssertionError after ``timeout`` [s]."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")
