"""HTCondor holds handled by their cause, end to end (loopback sshd and the stand-in).

Each test injects one kind of hold with the stand-in and checks what the executor does about
it (docs/clusters.md, "Holds"), that the CLI log and ``progress.json`` say so, and that every
pixel is fitted exactly once in the final result (the stand-in's record of finished runs).
"""

# ruff: noqa: F811 (the stand-in's fixtures are imported, then taken as arguments)
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import cli_env
from tests.executors.test_condor_integration import (  # noqa: F401 (fixtures)
    FAKEBIN,
    calls,
    condor_cmd,
    condor_scan,
    faults,
    injected,
    local_levels,
    queue_files,
    runs,
    sshd,
    write_config,
)
from tests.helpers.scans import assert_same_levels, levels_of, wait_for

pytestmark = pytest.mark.integration

FAKECONDOR = FAKEBIN.parent / "fakecondor.py"


def fitted_once(sshd, before: int, local_levels) -> list[dict]:
    """Every pixel of the scan was fitted in exactly one finished job (the jobs' files are
    kept with --keep-remote); the successful runs."""
    from executors.worker import job_from_npz

    done = [x for x in runs(sshd)[before:] if x["exit"] == 0]
    fitted = [(int(n), int(i)) for x in done
              for b in job_from_npz((Path(x["iwd"]) / "jobs" / x["args"][1]).read_bytes())
              for n, i in zip(b.nside, b.ipix, strict=True)]
    assert len(fitted) == len(set(fitted)) == sum(len(v) for v in local_levels.values()), \
        "some pixels were fitted twice or not at all"
    assert len({(x["cluster"], x["proc"]) for x in done}) == len(done)  # each proc ran once
    return done


def status_of(out: Path) -> dict:
    return json.loads((out / "progress.json").read_text())["executor_status"]


def _held_ads(sshd, code: int) -> list[dict]:
    ads = []
    for p in queue_files(sshd):
        try:
            ad = json.loads(p.read_text())
        except (OSError, ValueError):
            continue
        if ad.get("JobStatus") == 5 and ad.get("HoldReasonCode") == code:
            ads.append(ad)
    return ads


def test_admin_hold_is_waited_for_and_never_undone(sshd, tmp_path, sim_event_file,
                                                    local_levels, faults):
    """Code 1 (condor_hold by an administrator): the job stays held, is shown, and is neither
    removed nor resubmitted; once released it runs and the scan finishes."""
    faults(force=["admin_hold"])
    cfg = write_config(tmp_path / "config.toml", sshd, tmp_path / "remote", pixels_per_job=24,
                       queue_check_interval=1)
    out = tmp_path / "out"
    before, rm_before = len(runs(sshd)), len(calls(sshd, "condor_rm"))
    proc = subprocess.Popen(condor_cmd(sim_event_file, cfg, out, "--keep-remote"),
                            env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        wait_for(lambda: _held_ads(sshd, 1), 90, "a job held with code 1")
        # the app's and the files' status show the hold and what is done about it
        wait_for(lambda: (out / "progress.json").exists()
                 and any(h.get("code") == 1 for h in status_of(out).get("holds", [])),
                 30, "the hold in progress.json")
        (hold,) = [h for h in status_of(out)["holds"] if h.get("code") == 1]
        assert hold["action"] == "wait" and "condor_hold" in hold["cause"]
        time.sleep(3)  # ~30 polls and a few condor_q checks: still held, still ours
        (ad,) = _held_ads(sshd, 1)
        assert proc.poll() is None
        assert len(calls(sshd, "condor_rm")) == rm_before
        subprocess.run([sys.executable, str(FAKECONDOR), "condor_release",
                        f"{ad['ClusterId']}.{ad['ProcId']}"], check=True,
                       env={**os.environ, "FAKECONDOR_SPOOL": str(sshd.spool)},
                       capture_output=True)
        _, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-3000:]
    assert "held with condor_hold" in err and "waiting for its release (condor_release)" in err
    assert f"job {hold['job']} was released; back in the queue" in err
    assert "resubmitting" not in err
    assert len(calls(sshd, "condor_rm")) == rm_before  # never removed
    assert_same_levels(levels_of(out), local_levels)
    done = fitted_once(sshd, before, local_levels)
    assert (ad["ClusterId"], ad["ProcId"]) in {(x["cluster"], x["proc"]) for x in done}
    counters = status_of(out)["counters"]
    assert counters["resubmitted"] == 0 and counters["holds"] == 1


def test_crashed_job_hold_is_a_failure_not_a_release(sshd, tmp_path, sim_event_file,
                                                      local_levels, faults):
    """12/2 (a listed output missing: the job crashed): no blind release; the job is
    resubmitted as a failure, and the message carries the tail of its stderr."""
    faults(force=["fail"])
    cfg = write_config(tmp_path / "config.toml", sshd, tmp_path / "remote", pixels_per_job=24)
    out = tmp_path / "out"
    before, rel_before = len(runs(sshd)), len(calls(sshd, "condor_release"))
    r = condor_scan(sim_event_file, cfg, out, "--keep-remote")
    assert r.returncode == 0, r.stderr[-3000:]
    assert len(calls(sshd, "condor_release")) == rel_before
    assert "held: the job ended without its output file (it crashed)" in r.stderr
    assert "(code 12/2)); stderr: fake fault: crashed" in r.stderr
    assert "releasing" not in r.stderr
    assert_same_levels(levels_of(out), local_levels)
    fitted_once(sshd, before, local_levels)
    status = status_of(out)
    assert status["counters"]["failures"] == 1 and status["counters"]["holds"] == 1
    (event,) = [e for e in status["recent"] if e["kind"] == "held"]
    assert event["action"].startswith("failed") and "fake fault: crashed" in event["reason"]


def test_out_of_memory_job_is_resubmitted_with_more_memory_up_to_the_cap(
        sshd, tmp_path, sim_event_file, local_levels, faults):
    """34/102: every job needs 3000 MB and asks for 2GB; each is resubmitted once with its
    memory doubled but capped by memory_cap = 3GB (3072 MB), and then runs."""
    faults(memory_need_mb=3000)
    cfg = write_config(tmp_path / "config.toml", sshd, tmp_path / "remote", pixels_per_job=48,
                       memory="2GB", memory_cap="3GB", max_retries=1)
    out = tmp_path / "out"
    before, applied = len(runs(sshd)), len(injected(sshd))
    r = condor_scan(sim_event_file, cfg, out, "--keep-remote")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "held: out of memory (Job has gone over cgroup memory limit of 2048 megabytes" \
        in r.stderr
    assert "resubmitting with memory 3072MB (was 2048MB; cap: memory_cap)" in r.stderr
    assert_same_levels(levels_of(out), local_levels)
    done = fitted_once(sshd, before, local_levels)
    assert {x["memory"] for x in done} == {3072}
    ooms = injected(sshd)[applied:]
    assert ooms and set(ooms) == {"oom"}
    counters = status_of(out)["counters"]
    # one raise per job that ran out; not failures, so max_retries = 1 is not used up
    assert counters["requests_raised"] == len(ooms) == len(done)
    assert counters["gave_up"] == 0 and counters["failures"] == 0


def test_duration_hold_is_resubmitted(sshd, tmp_path, sim_event_file, local_levels, faults):
    """47 (allowed_execute_duration): removed and resubmitted unchanged, as before."""
    faults(force=["stuck"])
    cfg = write_config(tmp_path / "config.toml", sshd, tmp_path / "remote", pixels_per_job=48,
                       job_timeout=2)
    out = tmp_path / "out"
    before = len(runs(sshd))
    r = condor_scan(sim_event_file, cfg, out, "--keep-remote")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "held: over its time limit (The job exceeded allowed execute duration of 00:02 " \
           "(code 47))" in r.stderr
    assert "resubmitting (attempt 2)" in r.stderr
    assert_same_levels(levels_of(out), local_levels)
    fitted_once(sshd, before, local_levels)
    (event,) = [e for e in status_of(out)["recent"] if e["kind"] == "held"]
    assert event["action"] == "resubmitted"
