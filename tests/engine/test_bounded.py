"""Bounded resources: in-flight batches capped, streamed JSON, no half-written output."""

from __future__ import annotations

import json

import numpy as np

from executors.serial import SerialExecutor
from skyscan_tui.engine import ScanEngine, ScanFinished, ScanSettings
from skyscan_tui.results import ScanResult, empty_level
from tests.conftest import run_cli


class CountingExecutor(SerialExecutor):
    """Serial, but holds batches back to see how many the engine keeps outstanding."""

    def __init__(self) -> None:
        super().__init__()
        self.outstanding = self.max_outstanding = self.polls = 0

    @property
    def slots(self) -> int:
        return 3

    def submit(self, batches) -> None:
        super().submit(batches)
        self.outstanding += len(batches)
        self.max_outstanding = max(self.max_outstanding, self.outstanding)

    def poll(self, timeout: float):
        self.polls += 1
        if self.polls % 3:  # answer only every third poll, so work piles up if it can
            return []
        out = super().poll(timeout)
        self.outstanding -= len(out)
        return out


def test_in_flight_batches_never_exceed_slots(sim_event):
    ex = CountingExecutor()
    eng = ScanEngine(sim_event, ScanSettings("dummy", {}, ((8, 0), (16, 8)), batch_size=5), ex)
    res = [u for u in eng.run() if isinstance(u, ScanFinished)][0].result
    assert ex.max_outstanding == 3
    assert len(res.levels[8]) == 768 and np.isfinite(res.levels[8]["llh"]).all()


def test_streamed_json_equals_the_plain_dump():
    lv = empty_level(np.arange(3000))
    lv["llh"] = np.linspace(0, 1, 3000)
    lv["llh"][::7] = np.nan
    res = ScanResult(1, 2, 60000.0, "SIM", "dummy", levels={8: lv[:768], 64: lv,
                                                            512: empty_level(np.arange(0))})
    assert res.to_json_text(chunk=100) == json.dumps(res.to_json_dict())


def test_a_failing_scan_leaves_no_result_files(tmp_path, sim_event_file):
    out = tmp_path / "out"
    r = run_cli("scan", sim_event_file, "--reco", "dummy", "--executor", "serial",
                "--nside-progression", "1:0,8192:100000", "-o", out, "--progress", "none")
    assert r.returncode == 2 and "at most" in r.stderr
    assert not out.exists() or not list(out.glob("run*"))
    r = run_cli("scan", sim_event_file, "--reco", "crash_dummy", "--reco-opt", "fail=1",
                "--reco-opt", "kill=0", "--executor", "serial", "--max-retries", "0",
                "--nside-progression", "1:0", "-o", out, "--progress", "none")
    # every fit failed: the scan still completes and says so; files are whole
    assert r.returncode == 0, r.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["failed_pixels"] == 12 and summary["best_fit"] is None
    assert summary["meta"]["failed_tasks"] == 12
    assert not list(out.glob(".*.tmp"))
