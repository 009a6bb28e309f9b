"""Failing pixels: retries, failures recorded, dying and hanging workers (crash_dummy)."""

from __future__ import annotations

import numpy as np
import pytest

from executors.local import LocalExecutor
from executors.serial import SerialExecutor
from recos.crash_dummy import HANG, KILL, OK, fault_plan
from skyscan_tui.engine import (
    LOST_EXTRA,
    PixelsDone,
    ScanEngine,
    ScanFinished,
    ScanLog,
    ScanSettings,
)
from skyscan_tui.errors import UserError
from skyscan_tui.tasks import TaskBatch

PROG = ((8, 0), (16, 8))


def _run(event, reco, opts, executor, **kw):
    eng = ScanEngine(event, ScanSettings(reco, opts, kw.pop("prog", PROG), **kw), executor)
    updates = list(eng.run())
    fin = [u for u in updates if isinstance(u, ScanFinished)][0]
    return fin.result, updates


def _same_where_succeeded(res, ref) -> int:
    """Every pixel crash_dummy fitted has dummy's −log L; returns how many failed."""
    n_failed = 0
    for nside, lv in res.levels.items():
        want = ref.levels[nside]
        ok = np.isfinite(lv["llh"])
        n_failed += int((~ok).sum())
        common, i, j = np.intersect1d(lv["ipix"][ok], want["ipix"], return_indices=True)
        assert len(common) == ok.sum()  # refined pixels are those dummy refines too
        np.testing.assert_array_equal(lv["llh"][ok][i], want["llh"][j])
    return n_failed


def test_crash_dummy_plan_is_deterministic_and_changes_with_the_try():
    n = 2000
    b = TaskBatch(0, 0, np.full(n, 8, np.int32), np.arange(n), np.zeros(n, np.int32),
                  np.zeros(n), np.zeros(n), np.zeros((n, 4)))
    opts = {"fail": 0.1, "kill": 0.01, "hang": 0.0, "fault_seed": 1}
    p0, p0b, p1 = fault_plan(b, opts), fault_plan(b, opts), fault_plan(b.with_attempt(1), opts)
    assert np.array_equal(p0, p0b) and not np.array_equal(p0, p1)
    assert 0.08 < np.mean(p0 != OK) < 0.14 and (p0 == KILL).any() and not (p0 == HANG).any()


def test_crash_dummy_serial_retries_nans_and_raises_and_records_failures(sim_event):
    ref, _ = _run(sim_event, "dummy", {}, SerialExecutor(), batch_size=8)
    # kills turn into exceptions outside a worker process, so this runs in-process
    res, updates = _run(sim_event, "crash_dummy", {"fail": "0.3", "kill": "0.02"},
                        SerialExecutor(), batch_size=8, max_retries=1)
    n_failed = _same_where_succeeded(res, ref)
    assert 0 < n_failed == res.n_failed == res.meta["failed_tasks"]
    assert len(res.meta["failed_task_list"]) == n_failed
    assert sorted(map(tuple, res.meta["failed_task_list"])) == sorted(
        (n, int(p), 0) for n, lv in res.levels.items() for p in lv["ipix"][np.isnan(lv["llh"])])
    assert res.summary()["failed_pixels"] == n_failed
    assert any(isinstance(u, ScanLog) and "failed for good" in u.message for u in updates)
    # and retries are worth it: with more of them, fewer pixels fail
    more, _ = _run(sim_event, "crash_dummy", {"fail": "0.3", "kill": "0.02"},
                   SerialExecutor(), batch_size=8, max_retries=4)
    assert _same_where_succeeded(more, ref) < n_failed


def test_a_pixel_that_always_fails_is_reported_and_the_scan_completes(sim_event):
    res, _ = _run(sim_event, "crash_dummy", {"fail": "1.0", "kill": "0"}, SerialExecutor(),
                  batch_size=16, max_retries=2)
    assert res.levels[8].size == 768 and np.isnan(res.levels[8]["llh"]).all()
    assert res.meta["failed_tasks"] == 768 and res.best() is None


@pytest.mark.slow
def test_crash_dummy_with_worker_kills_matches_dummy_where_it_succeeded(sim_event):
    ref, _ = _run(sim_event, "dummy", {}, SerialExecutor(), batch_size=8)
    ex = LocalExecutor(2)
    res, updates = _run(sim_event, "crash_dummy", {"fail": "0.1", "kill": "0.004"}, ex,
                        batch_size=8, max_retries=1)
    assert ex.restarts >= 1  # workers really died and the pool came back
    lost = [u for u in updates if isinstance(u, ScanLog) and "lost (worker died)" in u.message]
    assert lost
    n_failed = _same_where_succeeded(res, ref)
    assert n_failed == res.meta["failed_tasks"] > 0
    done = sum(len(u.results) for u in updates if isinstance(u, PixelsDone))
    assert done == sum(len(lv) for lv in res.levels.values())  # each task reported once


@pytest.mark.slow
def test_hanging_fits_time_out_and_are_retried(sim_event):
    prog = ((4, 0),)
    opts = {"fail": "0", "kill": "0", "hang": "0.01", "fault_seed": "4"}
    n = 192
    b = TaskBatch(0, 0, np.full(n, 4, np.int32), np.arange(n), np.zeros(n, np.int32),
                  np.zeros(n), np.zeros(n), np.zeros((n, 4)))
    plan = {"fail": 0, "kill": 0, "hang": 0.01, "fault_seed": 4}
    assert (fault_plan(b, plan) == HANG).sum() == 2  # two fits hang at their first try
    ex = LocalExecutor(2)
    res, updates = _run(sim_event, "crash_dummy", opts, ex, prog=prog, batch_size=8,
                        max_retries=2, pixel_timeout=0.25)
    assert any("timed out" in getattr(u, "message", "") for u in updates)
    assert ex.restarts >= 1
    ref, _ = _run(sim_event, "dummy", {}, SerialExecutor(), prog=prog)
    assert _same_where_succeeded(res, ref) == 0  # a retry (new try number) succeeds


def test_settings_are_bounded():
    for kw in ({"max_retries": 1000}, {"max_retries": -1}, {"pixel_timeout": 0.0},
               {"pixel_timeout": float("inf")}, {"batch_size": 0}):
        with pytest.raises(UserError):
            ScanSettings("dummy", **kw)
    assert LOST_EXTRA >= 1


class TwoNodes(SerialExecutor):
    """Node "bad" fails every batch; a batch goes there unless told to avoid it."""

    def poll(self, timeout: float):
        from executors.base import BatchDone, BatchFailed

        if not self._queue:
            return []
        batch = self._queue.popleft()
        if batch.avoid != "bad":
            return [BatchFailed(batch.batch_id, "node bad is broken", worker="bad")]
        return [BatchDone(batch.batch_id, self._state.run(batch), "good")]


def test_retries_are_sent_away_from_the_worker_that_failed(sim_event):
    res, _ = _run(sim_event, "dummy", {}, TwoNodes(), batch_size=64, max_retries=1)
    ref, _ = _run(sim_event, "dummy", {}, SerialExecutor(), batch_size=64)
    assert _same_where_succeeded(res, ref) == 0
