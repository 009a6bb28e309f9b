"""Never lose a scan: checkpoint log format, kill -9 and resume, refusals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from executors.serial import SerialExecutor
from skyscan_tui import checkpoint as ckpt
from skyscan_tui.engine import ScanEngine, ScanFinished, ScanSettings
from skyscan_tui.errors import UserError
from skyscan_tui.tasks import empty_results
from tests.conftest import cli_env, run_cli

PROG = "8:0,16:8"
PROG_T = ((8, 0), (16, 8))
N_TASKS = 768 + 32
JOBS, BATCH = 2, 4


def _rows(n: int, nside: int = 8) -> np.ndarray:
    rows = empty_results(n)
    rows["nside"], rows["ipix"], rows["llh"] = nside, np.arange(n), np.arange(n) * 0.5
    return rows


def _scan(event, outdir=None, resume=False, reco="dummy", opts=None, executor=None):
    eng = ScanEngine(event, ScanSettings(reco, opts or {}, PROG_T, batch_size=8),
                     executor or SerialExecutor(), outdir=outdir, resume=resume)
    return [u for u in eng.run() if isinstance(u, ScanFinished)][0].result


# ------------------------------------------------------------------ the log format
def test_records_roundtrip_and_torn_tail_is_cut():
    data = ckpt.encode_records(ckpt.RESULT, 0, _rows(5), attempt=2)
    assert len(data) == 5 * ckpt.RECORD_DTYPE.itemsize == 5 * 88
    rec, valid = ckpt.decode_records(data + data[:40])  # a write cut short
    assert len(rec) == 5 and valid == len(data)
    assert np.array_equal(rec["row"]["llh"], _rows(5)["llh"]) and (rec["attempt"] == 2).all()
    broken = bytearray(data)
    broken[3 * 88 + 30] ^= 0x01  # a flipped bit in record 3
    rec, valid = ckpt.decode_records(bytes(broken))
    assert len(rec) == 3 and valid == 3 * 88


def test_resume_cuts_a_corrupt_tail_and_recomputes_it(tmp_path, sim_event):
    ref = _scan(sim_event)
    out = tmp_path / "out"
    _scan(sim_event, out)
    log = out / "checkpoint" / "results.log"
    data = log.read_bytes()
    # keep 100 records and half of the next one, as a crash in mid-write would
    log.write_bytes(data[:100 * 88 + 44])
    state = json.loads((out / "checkpoint" / "state.json").read_text())
    state["status"] = "running"
    (out / "checkpoint" / "state.json").write_text(json.dumps(state))
    res = _scan(sim_event, out, resume=True)
    meta = res.meta["checkpoint"]
    assert meta["discarded_log_bytes"] == 44
    assert meta["restored_tasks"] + meta["computed_tasks"] == N_TASKS
    assert sorted(res.levels) == sorted(ref.levels)
    for nside in ref.levels:  # bit for bit (NaN != NaN, so compare bytes)
        assert res.levels[nside].tobytes() == ref.levels[nside].tobytes()


def test_unfinished_scan_is_not_overwritten_and_other_inputs_are_refused(tmp_path, sim_event):
    from skyscan_tui.simulate import SimConfig, simulate_event

    out = tmp_path / "out"
    eng = ScanEngine(sim_event, ScanSettings("dummy", {}, PROG_T), SerialExecutor(),
                     outdir=out)
    gen = eng.run()
    for u in gen:
        if type(u).__name__ == "PixelsDone":
            break
    gen.close()  # interrupted after one batch
    info = ckpt.find_unfinished(out)
    assert info is not None and info.status == "interrupted" and info.tasks_done > 0
    with pytest.raises(UserError, match="unfinished scan"):
        ScanEngine(sim_event, ScanSettings("dummy", {}, PROG_T), SerialExecutor(), outdir=out)
    other = simulate_event(SimConfig(seed=8))
    with pytest.raises(UserError, match="another event"):
        ScanEngine(other, ScanSettings("dummy", {}, PROG_T), SerialExecutor(), outdir=out,
                   resume=True)
    with pytest.raises(UserError, match="nside_progression"):
        ScanEngine(sim_event, ScanSettings("dummy", {}, ((8, 0), (32, 8))), SerialExecutor(),
                   outdir=out, resume=True)
    with pytest.raises(UserError, match="reco_options"):
        ScanEngine(sim_event, ScanSettings("dummy", {"sigma_deg": "2"}, PROG_T),
                   SerialExecutor(), outdir=out, resume=True)
    with pytest.raises(UserError, match="no scan checkpoint"):
        ScanEngine(sim_event, ScanSettings("dummy", {}, PROG_T), SerialExecutor(),
                   outdir=tmp_path / "nothing", resume=True)
    # the checkpoint survived all of that and resumes
    res = _scan(sim_event, out, resume=True)
    assert res.meta["checkpoint"]["restored_tasks"] > 0
    assert ckpt.find_unfinished(out) is None


def test_executor_state_hook_gets_a_folder_in_the_checkpoint(tmp_path, sim_event):
    seen = []

    class Hooked(SerialExecutor):
        can_resume = True  # the capability that makes the engine call the hook

        def set_state_dir(self, path, resume=False):
            seen.append((Path(path), resume))

    _scan(sim_event, tmp_path / "o", executor=Hooked())
    _scan(sim_event, tmp_path / "o", resume=True, executor=Hooked())
    assert seen == [(tmp_path / "o" / "checkpoint" / "executor", False),
                    (tmp_path / "o" / "checkpoint" / "executor", True)]


# ------------------------------------------------------------------ kill -9 the CLI
def _count(log: Path, kind: int) -> int:
    if not log.is_file():
        return 0
    rec, _ = ckpt.decode_records(log.read_bytes())
    return int((rec["kind"] == kind).sum())


def _start(*args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "skyscan_tui", *map(str, args)],
                            env=cli_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)


def _kill_when(proc: subprocess.Popen, log: Path, n_results: int) -> bool:
    """kill -9 the CLI once ``n_results`` results are logged; False if it finished first."""
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                return False
            if _count(log, ckpt.RESULT) >= n_results:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(10)
                return True
            time.sleep(0.02)
        raise AssertionError("scan made no progress")
    finally:
        try:  # its orphaned loky workers (same session, started by this test)
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _in_flight(log: Path) -> int:
    rec, _ = ckpt.decode_records(log.read_bytes())
    row = rec["row"]
    keys = ckpt.task_keys(row["nside"], row["ipix"], row["variation"])
    sub = np.unique(keys[rec["kind"] == ckpt.SUBMITTED])
    done = keys[rec["kind"] != ckpt.SUBMITTED]
    return int((~np.isin(sub, done)).sum())


@pytest.mark.slow
def test_kill9_at_several_points_then_resume_gives_the_uninterrupted_result(
        tmp_path, sim_event, sim_event_file):
    from skyscan_tui.results import load_result

    ref = _scan(sim_event)  # sleep does not change the likelihood
    out = tmp_path / "out"
    log = out / "checkpoint" / "results.log"
    common = ["--progress", "none", "-j", JOBS]
    proc = _start("scan", sim_event_file, "--reco", "dummy", "--reco-opt", "sleep=0.004",
                  "--nside-progression", PROG, "--batch-size", BATCH, "-o", out, *common)
    in_flight = []
    for target in (60, 400, 780):  # early, mid-round, in the second round
        if not _kill_when(proc, log, target):
            break
        in_flight.append(_in_flight(log))
        assert ckpt.find_unfinished(out) is not None
        proc = _start("scan", "--resume", out, *common)
    else:
        assert proc.wait(120) == 0
    assert len(in_flight) >= 2, "the scan finished before it could be killed twice"
    assert proc.returncode == 0
    summary = json.loads((out / "summary.json").read_text())
    meta = summary["meta"]["checkpoint"]
    state = json.loads((out / "checkpoint" / "state.json").read_text())
    assert state["status"] == "finished" and state["sessions"] == len(in_flight) + 1
    # nothing finished was computed again: only tasks in flight at a kill were redone
    assert state["recomputed_tasks"] <= sum(in_flight)
    assert all(n <= 2 * JOBS * BATCH for n in in_flight)  # the engine's in-flight cap
    assert meta["recomputed_tasks"] <= meta["in_flight_at_interrupt"] == in_flight[-1]
    assert _count(log, ckpt.RESULT) == N_TASKS  # each task logged once
    res = load_result(out)
    for nside in ref.levels:
        got, want = res.levels[nside], ref.levels[nside]
        np.testing.assert_array_equal(got["ipix"], want["ipix"])
        np.testing.assert_array_equal(got["llh"], want["llh"])


def test_cli_resume_refusals(tmp_path, sim_event, sim_event_file):
    out = tmp_path / "out"
    eng = ScanEngine(sim_event, ScanSettings("dummy", {}, PROG_T), SerialExecutor(),
                     outdir=out)
    gen = eng.run()
    next(u for u in gen if type(u).__name__ == "PixelsDone")
    gen.close()
    other = tmp_path / "other.json"
    assert run_cli("simulate", "-o", other, "--seed", "99").returncode == 0
    for args, msg in [
        (("scan", other, "--resume", out), "another event"),
        (("scan", sim_event_file, "--resume", out, "--nside-progression", "8:0,32:8"),
         "nside_progression"),
        (("scan", "--resume", out, "--reco-opt", "sigma_deg=3"), "reco_options"),
        (("scan", "--resume", out, "--reco", "crash_dummy"), "reco=dummy, not crash_dummy"),
        (("scan", sim_event_file, "-o", out), "unfinished scan"),
        (("scan", "--resume", tmp_path / "missing"), "no such output folder"),
        (("scan",), "give an EVENT"),
    ]:
        r = run_cli(*args, "--progress", "none")
        assert r.returncode == 2, (args, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and msg in lines[0] and "Traceback" not in r.stderr, r.stderr


def test_executor_can_hand_back_results_recovered_from_an_earlier_session(sim_event):
    """The re-attach protocol: BatchDone with an unknown id is merged, not recomputed."""
    from executors.base import BatchDone

    ref = _scan(sim_event)
    lv = ref.levels[8][:100]
    rows = empty_results(len(lv))
    rows["nside"], rows["ipix"], rows["llh"] = 8, lv["ipix"], lv["llh"]
    for f in ("x", "y", "z", "t"):
        rows[f] = lv[f]

    class Reattached(SerialExecutor):
        sent = False
        submitted = 0

        def submit(self, batches):
            self.submitted += sum(len(b) for b in batches)
            super().submit(batches)

        def poll(self, timeout):
            if not self.sent:
                self.sent = True
                return [BatchDone(-7, rows, "old job")]
            return super().poll(timeout)

    ex = Reattached()
    res = _scan(sim_event, executor=ex)
    assert ex.submitted <= N_TASKS - 100 + 2 * 8  # only the first 2 batches were out
    for nside in ref.levels:
        assert res.levels[nside].tobytes() == ref.levels[nside].tobytes()


def test_resuming_a_finished_scan_recomputes_nothing(tmp_path, sim_event):
    first = _scan(sim_event, tmp_path / "o")
    again = _scan(sim_event, tmp_path / "o", resume=True)
    meta = again.meta["checkpoint"]
    assert meta["computed_tasks"] == 0 and meta["restored_tasks"] == N_TASKS
    for nside in first.levels:
        assert again.levels[nside].tobytes() == first.levels[nside].tobytes()
