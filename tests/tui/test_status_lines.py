"""The app says which systematic a result includes (results screen) and a remote executor's
job counts (scan status) — issue 20, items 3 and 7."""

from __future__ import annotations

import threading

import pytest

pytest.importorskip("textual")

from executors.serial import SerialExecutor  # noqa: E402
from skyscan_tui.tui.screens import ResultsScreen, ScanScreen  # noqa: E402
from skyscan_tui.tui.widgets import contour_areas  # noqa: E402
from tests.products.test_science import synthetic_scan  # noqa: E402
from tests.tui.conftest import engineless_scan_app, run_async, wait_for  # noqa: E402

SIZE = (150, 46)


@pytest.mark.parametrize("meta, says", [
    ({}, "errors: statistical only (Wilks' thresholds, no error floor)"),
    ({"error_floor_deg": 1.0}, "errors: systematic included: a Gaussian error floor of 1 deg"),
    ({"thresholds": "ic160427a"}, "errors: systematic included: thresholds IC160427A"),
])
def test_results_text_says_which_systematic(meta, says):
    res = synthetic_scan(1.0, 0.3, 0.8, 0.5)
    res.meta.update(meta)
    areas, _source, extra = contour_areas(res)
    assert any(line.strip().startswith(says) for line in extra), extra
    # the areas are those of the same map (the scan's floor and thresholds)
    assert areas[90] == pytest.approx(res.stats().region(0.9).area_deg2)


def test_a_reopened_result_keeps_its_systematic(tmp_path):
    from skyscan_tui.results import load_result

    res = synthetic_scan(1.0, 0.3, 0.8, 0.5)
    res.meta.update(error_floor_deg=0.5, thresholds="ic160427a")
    paths = res.save(tmp_path)
    for key in ("npz", "json"):
        back = load_result(paths[key])
        assert back.stats().systematic == res.stats().systematic, key
        assert "0.5 deg" in back.stats().systematic and "IC160427A" in back.stats().systematic
    plain = synthetic_scan(1.0, 0.3, 0.8, 0.5).save(tmp_path / "plain")["npz"]
    assert load_result(plain).stats().systematic.startswith("statistical only")


class FakeRemote(SerialExecutor):
    """The serial executor posing as a remote one: job counts, and a gate on the first fit
    so the test sees the counts while the scan is running."""

    name = "fakeremote"
    remote = True
    gate = threading.Event()

    def status(self):
        done = 0 if not self.gate.is_set() else len(self._queue)
        return {"scheduler": "fakecondor", "jobs": {"queued": 3, "running": 2, "held": 1,
                                                    "done": done, "failed": 0},
                "counters": {"jobs_submitted": 6, "resubmitted": 1, "holds": 1,
                             "failures": 0}}

    def poll(self, timeout):
        if not self.gate.wait(timeout):
            return []
        return super().poll(timeout)


@run_async
async def test_scan_status_shows_remote_job_counts(app_factory, tmp_path, sim_event):
    from skyscan_tui import sky
    from skyscan_tui.engine import ScanEngine, ScanSettings

    FakeRemote.gate.clear()
    engine = ScanEngine(sim_event, ScanSettings("dummy", {}, sky.parse_progression("8:0")),
                        FakeRemote(), outdir=tmp_path / "out")

    class Live(type(app_factory())):
        def open_first_screen(self):
            self.push_screen(ScanScreen(sim_event, engine, tmp_path / "out", "fakeremote",
                                        title="remote"))

    app = Live(recos=["dummy"])
    try:
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: isinstance(app.screen, ScanScreen)
                           and app.screen.job_lines, 20, "the job counts")
            text = str(app.screen.query_one("#workers-label").render())
            assert "jobs (fakecondor): 3 queued · 2 running · 1 held" in text
            FakeRemote.gate.set()
            await wait_for(pilot, lambda: isinstance(app.screen, ResultsScreen), 60,
                           "the results")
    finally:
        FakeRemote.gate.set()
        engine.cancel()


@run_async
async def test_local_scans_show_no_job_line(app_factory):
    app = engineless_scan_app(app_factory)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, ScanScreen), 10, "scan screen")
        await pilot.pause(0.3)
        assert app.screen.job_lines == []
        assert "jobs (" not in str(app.screen.query_one("#workers-label").render())
