"""Headless observability: progress.json, partial.npz, the summary's timing, the ETA rule."""

from __future__ import annotations

import json
import math
import random
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from executors.serial import SerialExecutor
from skyscan_tui.engine import PixelsDone, ScanEngine, ScanFinished, ScanSettings
from skyscan_tui.errors import UserError
from skyscan_tui.observe import PARTIAL_FILE, PROGRESS_FILE, parse_partial_interval, run_lines
from skyscan_tui.scanupdates import ETA_MIN_FRACTION, ETA_MIN_SECONDS, eta_estimate
from tests.conftest import cli_env, run_cli

PROG_T = ((8, 0), (16, 8))  # 768 + 32 fits
N_TASKS = 768 + 32


# ------------------------------------------------------------------ the ETA rule
def test_eta_is_withheld_until_meaningful():
    # the demo's case: 3 % of a round after 0.05 s
    assert math.isnan(eta_estimate(2980, 64, 0.05, 64, 768, 0))
    # enough of the round, too little time; enough time, too little of the round
    assert math.isnan(eta_estimate(500, 300, ETA_MIN_SECONDS * 0.9, 300, 768, 0))
    few = int(ETA_MIN_FRACTION * 768) - 1
    assert math.isnan(eta_estimate(800 - few, few, 10.0, few, 768, 0))
    # both met: remaining / rate, and remaining counts the refinement rounds to come
    eta = eta_estimate(800 - 100, 100, 4.0, 100, 768, 0)
    assert eta == pytest.approx(700 / 25.0)
    # a refinement round starts with the rate of the finished round: shown at once
    assert eta_estimate(32, 768, 3.0, 0, 32, 1) == pytest.approx(32 / 256.0)
    # fits restored from a checkpoint do not count as measured: the round's own work does
    assert math.isnan(eta_estimate(400, 30, 5.0, 30, 400, 0))
    assert eta_estimate(0, 10, 0.1, 10, 10, 0) == 0.0


def test_partial_interval_values():
    assert parse_partial_interval("auto") == "auto"
    assert parse_partial_interval("0") is None and parse_partial_interval("off") is None
    assert parse_partial_interval("2.5") == 2.5
    for bad in ("-1", "nan", "soon", "0.5"):
        with pytest.raises(UserError):
            parse_partial_interval(bad)


# ------------------------------------------------------------------ in-process scan
def test_progress_file_is_always_valid_while_a_reader_polls(tmp_path, sim_event):
    """A thread reads progress.json as fast as it can during a ~3 s scan: every read parses,
    the numbers only grow, and the end state names the result files; the partial result
    written meanwhile is a skyreader file holding the scan's values."""
    import skyreader

    out = tmp_path / "out"
    settings = ScanSettings("dummy", {"sleep": 0.004}, PROG_T, batch_size=16)
    engine = ScanEngine(sim_event, settings, SerialExecutor(), outdir=out, partial_interval=1.0)
    stop = threading.Event()
    seen: list[dict] = []
    errors: list[str] = []

    def poll() -> None:
        path = out / PROGRESS_FILE
        while not stop.is_set():
            try:
                text = path.read_text()
            except FileNotFoundError:
                time.sleep(0.002)
                continue
            try:
                seen.append(json.loads(text))
            except ValueError as exc:
                errors.append(f"{exc}: {text[:80]!r}")
            time.sleep(0.002)

    reader = threading.Thread(target=poll)
    reader.start()
    try:
        updates = list(engine.run())
    finally:
        stop.set()
        reader.join()
    # the reader may have slept through the last write: read the file as the scan left it
    seen.append(json.loads((out / PROGRESS_FILE).read_text()))
    fin = updates[-1]
    assert isinstance(fin, ScanFinished) and not fin.cancelled
    assert not errors, errors[:3]
    assert len(seen) > 50
    running = [d for d in seen if d["state"] == "running"]
    assert running and seen[-1]["state"] == "finished"
    done = [d["fits"]["done"] for d in seen]
    assert done == sorted(done) and done[-1] == N_TASKS
    assert all(d["fits"]["total"] in (0, N_TASKS) for d in seen)
    # the ETA: withheld at the start (< 10 % of the first round), then given (the scan runs
    # more than 2 s), and it counts the refinement round to come
    pix = [u for u in updates if isinstance(u, PixelsDone) and u.worker != "checkpoint"]
    assert math.isnan(pix[0].eta)
    late = [u for u in pix if math.isfinite(u.eta) and u.round == 0]
    assert late, "no ETA in a 3 s scan"
    u = late[0]
    assert u.total - u.done > u.round_total - u.round_done  # round 2 is in the remainder
    assert u.eta == pytest.approx((u.total - u.done) / u.rate, rel=1e-6)
    etas = [d["eta_s"] for d in running]
    assert etas[0] is None and any(e is not None for e in etas)
    # per-round tallies in the file
    final = seen[-1]
    assert [r["nside"] for r in final["rounds"]] == [8, 16]
    assert all(r["state"] == "done" and r["wall_s"] > 0 and r["cpu_s"] is not None
               for r in final["rounds"])
    assert final["rounds"][0]["pixels"] == 768 and final["rounds"][1]["pixels_done"] == 32
    # the partial result (written every second, kept until the result is saved)
    partial = out / PARTIAL_FILE
    assert partial.is_file() and final["partial"]["file"] == PARTIAL_FILE
    sr = skyreader.SkyScanResult.read_npz(partial)
    key = next(iter(sr.result))
    got = sr.result[key]
    assert key == "nside-8" and 0 < len(got) <= 768
    from skyscan_tui import healpix

    ref = fin.result.levels[8]
    nest = healpix.ring2nest(8, np.asarray(got["index"]))
    np.testing.assert_array_equal(np.asarray(got["llh"]),
                                  ref["llh"][np.searchsorted(ref["ipix"], nest)])
    # saving the final result names its files and drops the partial one
    paths = fin.result.save(out)
    engine.record_saved(paths)
    engine.close()
    doc = json.loads((out / PROGRESS_FILE).read_text())
    assert doc["files"]["npz"] == str(paths["npz"]) and not partial.exists()
    assert doc["partial"] is None


def test_a_failed_scan_says_so(tmp_path, sim_event, monkeypatch):
    def broken(self, timeout):
        raise MemoryError("no more")  # not a reco error: the scan itself fails

    monkeypatch.setattr(SerialExecutor, "poll", broken)
    engine = ScanEngine(sim_event, ScanSettings("dummy", {}, PROG_T), SerialExecutor(),
                        outdir=tmp_path / "o")
    with pytest.raises(MemoryError):
        list(engine.run())
    doc = json.loads((tmp_path / "o" / PROGRESS_FILE).read_text())
    assert doc["state"] == "failed" and "MemoryError: no more" in doc["error"]


# ------------------------------------------------------------------ killed at random
def _start(event_file, out, resume: bool) -> subprocess.Popen:
    # 800 fits x 25 ms = 20 s of fitting: more than the six kill windows (<= 18 s) can
    # finish, however fast the machine starts a process (4 ms let a resumed scan end
    # before its kill on a quiet machine)
    args = (["scan", "--resume", str(out)] if resume else
            ["scan", str(event_file), "-o", str(out), "--reco", "dummy", "--reco-opt",
             "sleep=0.025", "--nside-progression", "8:0,16:8"])
    return subprocess.Popen([sys.executable, "-m", "skyscan_tui", *args, "--executor",
                             "serial", "--batch-size", "8", "--partial-interval", "1",
                             "--progress", "none"], env=cli_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


@pytest.mark.slow
def test_progress_file_survives_kill_9_at_random_moments(tmp_path, sim_event_file):
    """SIGKILL a scan at seeded random moments (resuming it each time): progress.json, when
    there, always parses; so does partial.npz (skyreader)."""
    import skyreader

    rng = random.Random(20)
    out = tmp_path / "out"
    parsed = 0
    for _ in range(6):
        resume = (out / "checkpoint" / "state.json").is_file()
        proc = _start(sim_event_file, out, resume)
        time.sleep(rng.uniform(0.8, 3.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
        path = out / PROGRESS_FILE
        if path.is_file():
            doc = json.loads(path.read_text())  # never torn
            parsed += 1
            assert doc["format"] == "skyscan-progress"
            assert doc["state"] in ("running", "finished")
            assert 0 <= doc["fits"]["done"] <= max(doc["fits"]["total"], 0) or \
                doc["fits"]["total"] == 0
        if (out / PARTIAL_FILE).is_file():
            sr = skyreader.SkyScanResult.read_npz(out / PARTIAL_FILE)
            assert sr.result
    assert parsed >= 3
    # the last run finishes: its file says so and names the result
    proc = _start(sim_event_file, out, (out / "checkpoint" / "state.json").is_file())
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.decode()[-2000:]
    doc = json.loads((out / PROGRESS_FILE).read_text())
    assert doc["state"] == "finished" and doc["fits"]["done"] == N_TASKS
    assert "npz" in doc["files"] and not (out / PARTIAL_FILE).exists()


# ------------------------------------------------------------------ CLI
def test_summary_reports_rounds_rate_and_cpu(tmp_path, sim_event_file):
    out = tmp_path / "out"
    r = run_cli("scan", sim_event_file, "--reco", "dummy", "--executor", "local", "-j", "1",
                "--nside-progression", "8:0,16:8", "-o", out, "--progress", "jsonl")
    assert r.returncode == 0, r.stderr
    meta = json.loads((out / "summary.json").read_text())["meta"]
    rounds = meta["rounds"]
    assert [(x["round"], x["nside"], x["pixels"], x["computed"]) for x in rounds] == [
        (1, 8, 768, 768), (2, 16, 32, 32)]
    for x in rounds:
        assert x["wall_s"] > 0 and x["pixels_per_s"] > 0
        assert x["cpu_s"] is not None and x["cpu_s"] >= 0
    assert meta["timing"]["cpu_s"] == pytest.approx(sum(x["cpu_s"] for x in rounds), abs=2e-3)
    assert meta["executor_status"]["workers"] == 1
    text = (out / "summary.txt").read_text()
    assert "Round 1 (nside 8): 768 pixels, 768 fits computed in" in text
    assert "pixels/s" in text and "CPU" in text
    assert "Round 2 (nside 16): 32 pixels" in r.stdout  # the CLI's final lines
    # --progress jsonl: one JSON object per event on stderr
    events = [json.loads(ln) for ln in r.stderr.splitlines() if ln.startswith("{")]
    kinds = [e["type"] for e in events]
    assert kinds[0] == "RoundStarted" and kinds[-1] == "finished" and "progress" in kinds
    prog = next(e for e in events if e["type"] == "progress")
    assert {"round", "nside", "done", "total", "round_done", "round_total", "rate",
            "eta"} <= set(prog)
    assert prog["eta"] is None  # the first batch: too early for an ETA


def test_bad_partial_interval_is_one_line(tmp_path, sim_event_file):
    r = run_cli("scan", sim_event_file, "--reco", "dummy", "-o", tmp_path / "o",
                "--partial-interval", "soon")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert "--partial-interval" in r.stderr


def test_run_lines_of_a_result_without_timing():
    assert run_lines({}) == []
    lines = run_lines({"executor_status": {"scheduler": "HTCondor", "jobs": {
        "queued": 0, "running": 0, "held": 0, "done": 5, "failed": 1},
        "counters": {"jobs_submitted": 7, "resubmitted": 1, "holds": 2, "failures": 1}}})
    assert lines == ["Jobs (HTCondor): 0 queued, 0 running, 0 held, 5 done, 1 failed; "
                     "7 submitted, 1 resubmitted, 2 holds, 1 failures"]
