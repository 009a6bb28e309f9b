"""SVG snapshots of the three screens (pytest-textual-snapshot; update with
``pytest tests/tui/test_snapshots.py --snapshot-update`` after checking the change by eye).

Everything shown is fixed: a seeded simulated event, analytic maps fed to the scan screen
as if they came from the engine, and a result built from the same maps.
"""

from __future__ import annotations

import math
from pathlib import Path

import healpy as hp
import numpy as np
import pytest

pytest.importorskip("pytest_textual_snapshot")

from skyscan_tui import raster  # noqa: E402
from skyscan_tui.results import ScanResult, empty_level  # noqa: E402
from skyscan_tui.tui.app import SkyscanApp  # noqa: E402
from skyscan_tui.tui.messages import RoundBegan, RoundEnded, ScanLogged, ScanProgress  # noqa: E402
from skyscan_tui.tui.screens import (  # noqa: E402
    ResultsScreen,
    ScanScreen,
    StartScreen,
    fixed_progress_rows,
)
from skyscan_tui.tui.skymap import SkymapWidget  # noqa: E402
from tests.tui.conftest import press_enter_on, wait_for  # noqa: E402

SIZE = (150, 46)
RA0, DEC0, SIGMA_DEG = math.radians(77.4), math.radians(5.7), 1.0


def _llh(nside: int, ipix: np.ndarray) -> np.ndarray:
    th, ph = hp.pix2ang(nside, ipix, nest=True)
    psi = raster.angular_distance(RA0, DEC0, ph, np.pi / 2 - th)
    return 10.0 + 0.5 * (psi / math.radians(SIGMA_DEG)) ** 2


def _levels() -> dict[int, np.ndarray]:
    """nside 8 full sky → 64 (children of the 12 best) → 512 (of the 24 best), analytic."""
    from skyscan_tui import sky

    out = {}
    ipix = np.arange(12 * 64, dtype=np.int64)
    out[8] = ipix, _llh(8, ipix)
    for prev, nside, n in ((8, 64, 12), (64, 512, 24)):
        ipix = sky.refine(prev, out[prev][0], out[prev][1], nside, n)
        out[nside] = ipix, _llh(nside, ipix)
    return out


def _fixed_app(**kw) -> SkyscanApp:
    kw.setdefault("outdir_root", Path("skyscan-results"))
    return SkyscanApp(jobs=2, recos=["dummy"], cwd=Path("."),
                      executors=[("local — worker processes on this machine (joblib/loky)",
                                  "local"), ("serial — in this process", "serial")],
                      executor_notes=["condor: no profiles configured (use `skyscan-tui scan "
                                      "--executor condor`)"], **kw)


def test_start_screen(snap_compare):
    async def simulate(pilot):
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, StartScreen), 10,
                       "start screen")
        start = pilot.app.screen
        button = start.query_one("#start")
        await press_enter_on(pilot, button)  # simulates the seed-1 event
        # and the button no longer shows the press (a 0.2 s effect)
        await wait_for(pilot, lambda: start.event is not None
                       and not button.has_class("-active"), 30, "the simulated event")

    assert snap_compare(_fixed_app(), terminal_size=SIZE, run_before=simulate)


class _ReplayApp(SkyscanApp):
    """Shows a scan screen fed with fixed engine messages instead of a running engine."""

    def open_first_screen(self) -> None:
        from skyscan_tui.simulate import SimConfig, simulate_event

        event = simulate_event(SimConfig(seed=1))
        self.push_screen(ScanScreen(event, None, Path("skyscan-results/replay"),
                                    "local ×2", title="replay"))


def test_scan_in_progress(snap_compare):
    levels = _levels()

    async def feed(pilot):
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, ScanScreen), 10,
                       "scan screen")
        screen = pilot.app.screen
        ip8, l8 = levels[8]
        ip64, l64 = levels[64]
        screen.post_message(RoundBegan(0, 8, 768, 768))
        screen.post_message(ScanProgress(fixed_progress_rows(8, ip8, l8), 0, 8, 768, 768, 768,
                                         3072, 410.0, 6.0, "pid 101", 12))
        best = int(ip8[np.argmin(l8)])
        screen.post_message(RoundEnded(0, 8, best, float(l8.min()), 0))
        screen.post_message(RoundBegan(1, 64, 768, 768))
        half = len(ip64) // 2
        screen.post_message(ScanProgress(fixed_progress_rows(64, ip64[:half], l64[:half]), 1,
                                         64, half, 768, 768 + half, 3072, 395.5, 5.8,
                                         "pid 102", 6))
        screen.post_message(ScanLogged("warning", "1 pixel fit(s) returned NaN; retrying"))
        await pilot.pause()
        # the maps redraw on a 0.1 s tick: wait until both show all the fed results
        await wait_for(pilot, lambda: all(w._drawn_version == screen.sky.version
                                          for w in screen.query(SkymapWidget)),
                       10, "the maps' redraw")
        await pilot.pause()

    assert snap_compare(_ReplayApp(), terminal_size=SIZE, run_before=feed)


def _result() -> ScanResult:
    levels = {}
    for nside, (ipix, llh) in _levels().items():
        lv = empty_level(ipix)
        lv["llh"] = llh
        lv["variation"] = 0
        levels[nside] = lv
    ra, dec = math.degrees(RA0), math.degrees(DEC0)
    overlays = {"seeds": [{"name": "l2_online_SplineMPE", "ra_deg": ra + 0.9,
                           "dec_deg": dec + 0.4}],
                "truth": {"name": "truth", "ra_deg": ra - 0.6, "dec_deg": dec - 1.1}}
    return ScanResult(run_id=138632, event_id=31747601, mjd=60312.123456, event_type="SIM",
                      reco="dummy", likelihood="analytic Gaussian in angle (no physics)",
                      levels=levels, meta={"overlays": overlays})


class _ResultApp(SkyscanApp):
    def open_first_screen(self) -> None:
        out = Path("skyscan-results/run138632")
        self.push_screen(ResultsScreen(
            _result(), outdir=out, elapsed=83.0,
            files={"npz": str(out / "run00138632.evt000031747601.SIM_8_64_512.npz"),
                   "summary": str(out / "summary.json")}))


def test_results_screen(snap_compare):
    """The seed fit (○) and the truth (★) over the maps, the 90 % contour visible in a zoom
    of about three 90 % radii, and how well the simulated event did."""
    async def settle(pilot):
        await pilot.pause()

    assert snap_compare(_ResultApp(), terminal_size=SIZE, run_before=settle)


def test_results_screen_query(snap_compare):
    """A direction typed in the query field: the answer below it and a × on the maps."""
    async def ask(pilot):
        await pilot.pause()
        await pilot.press("slash", *"78.2 6.9", "enter")
        await pilot.pause()

    assert snap_compare(_ResultApp(), terminal_size=SIZE, run_before=ask)
