"""One live scan per output folder: a second scan, resume or engine on it is refused at once;
the lock ends with its holder, also after kill -9."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from skyscan_tui.folderlock import LOCK_NAME, FolderBusy, FolderLock
from tests.conftest import cli_env, run_cli
from tests.helpers.scans import assert_same_levels, levels_of, wait_for

PROG = "8:0,16:4"
SCAN = ("--reco", "dummy", "--executor", "serial", "--nside-progression", PROG,
        "--progress", "none")


def _holds_lock(outdir: Path, pid: int) -> bool:
    """The scan ``pid`` holds the folder and has logged at least one finished batch."""
    try:
        holder = json.loads((outdir / LOCK_NAME).read_text())["pid"]
    except (OSError, ValueError, KeyError):
        return False
    # the log exists (empty) before state.json is written: wait for a record, so a resume
    # finds the checkpoint whenever the scan is stopped or killed
    try:
        return holder == pid and (outdir / "checkpoint" / "results.log").stat().st_size > 0
    except OSError:
        return False


@pytest.fixture(scope="module")
def clean_levels(sim_event_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("clean") / "out"
    r = run_cli("scan", sim_event_file, *SCAN, "-o", out)
    assert r.returncode == 0, r.stderr
    return levels_of(out)


def _start_scan(event: Path, out: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "skyscan_tui", "scan", str(event), *SCAN,
                             "--reco-opt", "sleep=0.002", "-o", str(out)],
                            env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def _wait_until_it_holds(scan: subprocess.Popen, out: Path) -> None:
    """Until ``scan`` holds ``out`` and has logged a batch; it must still be running then."""
    wait_for(lambda: _holds_lock(out, scan.pid) or scan.poll() is not None, 60,
             "the first scan to lock the folder")
    assert scan.poll() is None, scan.communicate()[1]


def test_second_scan_and_resume_are_refused_while_the_first_runs(
        tmp_path, sim_event_file, clean_levels):
    out = tmp_path / "out"
    first = _start_scan(sim_event_file, out)
    try:
        _wait_until_it_holds(first, out)
        os.kill(first.pid, signal.SIGSTOP)  # it cannot finish while we try the others
        try:
            for args in (("scan", sim_event_file, *SCAN, "-o", out),
                         ("scan", "--resume", out, "--progress", "none")):
                r = run_cli(*args)
                assert r.returncode == 2, r.stderr
                lines = r.stderr.strip().splitlines()
                assert len(lines) == 1, r.stderr
                assert "being scanned by another process" in lines[0]
                assert f"pid {first.pid}" in lines[0]
        finally:
            os.kill(first.pid, signal.SIGCONT)
        _, err = first.communicate(timeout=120)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert first.returncode == 0, err
    assert_same_levels(levels_of(out), clean_levels)


def test_kill_9_frees_the_folder_for_resume(tmp_path, sim_event_file, clean_levels):
    out = tmp_path / "out"
    first = _start_scan(sim_event_file, out)
    try:
        _wait_until_it_holds(first, out)
    finally:
        first.kill()  # SIGKILL: no clean-up runs, the kernel drops the lock
        first.wait()
    r = run_cli("scan", "--resume", out, "--progress", "none")
    assert r.returncode == 0, r.stderr
    assert_same_levels(levels_of(out), clean_levels)


def test_engines_in_one_process_share_no_folder(tmp_path, sim_event):
    from executors.serial import SerialExecutor
    from skyscan_tui import sky
    from skyscan_tui.engine import ScanEngine, ScanSettings

    settings = ScanSettings("dummy", {}, sky.parse_progression("4:0"))
    out = tmp_path / "out"
    first = ScanEngine(sim_event, settings, SerialExecutor(), outdir=out)
    updates = first.run()
    next(updates)  # run() has begun: the new folder exists and is locked
    with pytest.raises(FolderBusy, match="this process"):
        ScanEngine(sim_event, settings, SerialExecutor(), outdir=out)
    for _ in updates:
        pass
    first.close()
    second = ScanEngine(sim_event, settings, SerialExecutor(), outdir=out)
    second.close()


def test_lock_object_acquire_release(tmp_path):
    a, b = FolderLock(tmp_path / "x"), FolderLock(tmp_path / "x")
    a.acquire()
    a.acquire()  # idempotent for its holder
    with pytest.raises(FolderBusy):
        b.acquire()
    a.release()
    b.acquire()
    assert b.held and not a.held
    b.release()
