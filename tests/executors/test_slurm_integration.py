"""``--executor slurm`` end to end: a real single-node Slurm, reached only through a real sshd.

The loopback Slurm (tests/helpers/slurm_fixture.py) and sshd (tests/helpers/sshfx.py) run on 127.0.0.1; the
CLI's executor logs in with paramiko and runs sbatch/squeue/scancel there, exactly as on a
cluster login node. sshd's ``SetEnv`` points the remote session at the fixture's
``slurm.conf``. Scans are tiny (nside 4 then 8, 24 pixels per job: 9 array tasks) because
the scheduler starts about one task per second here.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, cli_env, run_cli
from tests.helpers.scans import assert_same_levels, levels_of
from tests.helpers.services import service_unavailable

pytestmark = pytest.mark.integration

FIELDS = ("llh", "x", "y", "z", "t")  # compared bit for bit with the local scan
PROG = "4:0,8:2"
BATCH = "24"
SLOW = ("--reco-opt", "sleep=0.06")  # +1.4 s per 24-pixel job: time to interfere


@pytest.fixture(scope="module")
def slurm_sshd(slurm_cluster, tmp_path_factory):
    from tests.helpers.sshfx import start_sshd

    root = tmp_path_factory.mktemp("sshd-slurm")
    try:
        server = start_sshd(root / "server", setenv={"SLURM_CONF": str(slurm_cluster.conf)})
    except (RuntimeError, OSError, subprocess.CalledProcessError) as exc:
        failure = f"cannot start a loopback sshd: {exc}"
    else:
        failure = ""
    if failure:  # outside the except block: the report shows the reason alone
        service_unavailable(failure)
    yield server
    server.stop()


def write_config(path: Path, sshd, workdir: Path, **extra) -> Path:
    values = {
        "executor": "slurm", "host": "127.0.0.1", "port": sshd.port, "user": sshd.user,
        "identity_file": str(sshd.client_key), "known_hosts": str(sshd.known_hosts),
        "workdir": str(workdir), "python": sys.executable, "jobs_in_flight": 20,
        "pixels_per_job": 24, "poll_interval": 0.3, "max_retries": 3, "job_timeout": 120,
        "reconnect_timeout": 30, "partition": "debug", "time_limit": "10", "memory": "200M",
        "cpus_per_task": 1, "extra_sbatch_lines": ["--nice=0"],
    }
    values.update(extra)
    lines = ["[profiles.test]"]
    lines += [f"{k} = {json.dumps(v)}" for k, v in values.items()]
    lines += ["[profiles.test.environment]", f"PYTHONPATH = {json.dumps(str(REPO))}"]
    path.write_text("\n".join(lines) + "\n")
    return path


def scan_args(event, cfg: Path, out: Path, *extra: str) -> list[str]:
    return ["scan", str(event), "--reco", "dummy", "--executor", "slurm", "--config", str(cfg),
            "--profile", "test", "--nside-progression", PROG, "--batch-size", BATCH,
            "-o", str(out), "--progress", "lines", *extra]


def start_scan(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "skyscan_tui", *args], env=cli_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture(scope="module")
def local_levels(sim_event_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("local") / "out"
    r = run_cli("scan", sim_event_file, "--reco", "dummy", "--executor", "serial",
                "--nside-progression", PROG, "--batch-size", BATCH, "-o", out,
                "--progress", "none")
    assert r.returncode == 0, r.stderr
    return levels_of(out)


def our_elements(cluster, name_part: str = "skyscan-") -> dict[str, str]:
    """``{"12_3": "RUNNING", ...}`` for skyscan jobs known to squeue (any state)."""
    out = cluster.run("squeue", "-h", "-r", "-t", "all", "-o", "%i|%T|%j", check=False)
    rows = [ln.split("|") for ln in out.splitlines() if ln.count("|") == 2]
    return {r[0]: r[1] for r in rows if name_part in r[2]}


def wait_for(cond, timeout: float, what: str, proc: subprocess.Popen | None = None):
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"scan ended before {what}: {proc.stderr.read()[-2000:]}")
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def new_running(cluster, before: set[str]) -> list[str]:
    return sorted(k for k, v in our_elements(cluster).items()
                  if v == "RUNNING" and k not in before)


def act_on_running(cluster, exclude: set[str], *cmd: str) -> str | None:
    """Run ``cmd ELEMENT`` on a running skyscan element not in ``exclude``; returns the
    element, or None if none is running or it finished before the command reached it."""
    for elem in new_running(cluster, exclude):
        try:
            cluster.run(*cmd, elem)
            return elem
        except RuntimeError:  # just finished: try another one (next time)
            continue
    return None


# --------------------------------------------------------------------------- tests
def test_slurm_scan_equals_local(slurm_cluster, slurm_sshd, tmp_path, sim_event_file,
                                 local_levels):
    workdir = tmp_path / "remote dir 'quoted'"
    cfg = write_config(tmp_path / "config.toml", slurm_sshd, workdir)
    before = set(our_elements(slurm_cluster))
    t0 = time.monotonic()
    r = run_cli(*scan_args(sim_event_file, cfg, tmp_path / "out"), timeout=180)
    wall = time.monotonic() - t0
    assert r.returncode == 0, r.stderr[-3000:]
    assert_same_levels(levels_of(tmp_path / "out"), local_levels, FIELDS)
    ran = {k: v for k, v in our_elements(slurm_cluster).items() if k not in before}
    assert len(ran) == 9 and set(ran.values()) == {"COMPLETED"}, ran  # 8 + 1 array tasks
    assert list(workdir.iterdir()) == []  # remote scan folder cleaned up
    assert not (tmp_path / "out" / ".skyscan-remote-state.json").exists()
    assert json.loads((tmp_path / "out" / "summary.json").read_text())  # a real result
    print(f"slurm scan, 9 array tasks: {wall:.1f} s wall")


def test_predictive_scans_through_slurm(slurm_cluster, slurm_sshd, tmp_path, sim_event_file,
                                        local_levels):
    """The engine's predictive scheduling is shared by every executor: ``--predictive 1.0``
    gives the local map bit for bit, ``--predictive 0.3`` still holds every K-best child."""
    import numpy as np

    from skyscan_tui import sky

    cfg = write_config(tmp_path / "config.toml", slurm_sshd, tmp_path / "remote")
    r = run_cli(*scan_args(sim_event_file, cfg, tmp_path / "one", "--predictive", "1.0"),
                timeout=180)
    assert r.returncode == 0, r.stderr[-3000:]
    assert_same_levels(levels_of(tmp_path / "one"), local_levels, FIELDS)
    r = run_cli(*scan_args(sim_event_file, cfg, tmp_path / "early", "--predictive", "0.3"),
                timeout=180)
    assert r.returncode == 0, r.stderr[-3000:]
    levels = levels_of(tmp_path / "early")
    coarse = levels[4]
    want = sky.refine(4, coarse["ipix"], coarse["llh"], 8, 2)
    assert np.isin(want, levels[8]["ipix"]).all()
    assert np.array_equal(coarse["llh"], local_levels[4]["llh"], equal_nan=True)


def test_killed_failing_and_requeued_tasks(slurm_cluster, slurm_sshd, tmp_path,
                                           sim_event_file, local_levels):
    """One element scancel'd while running, one worker exiting 7, one element requeued with
    scontrol, running ones preempted by a higher-priority partition: the first two are
    resubmitted, the requeued and preempted ones are not, and the skymap is identical."""
    token = tmp_path / "fail-once"
    token.write_text("")
    setup = (f'[ -n "${{SLURM_ARRAY_TASK_ID:-}}" ] && rm {token} 2>/dev/null '
             '&& echo "injected failure" >&2 && exit 7')
    cfg = write_config(tmp_path / "config.toml", slurm_sshd, tmp_path / "remote",
                       setup=setup, keep_remote=True)
    before = set(our_elements(slurm_cluster))
    proc = start_scan(*scan_args(sim_event_file, cfg, tmp_path / "out", *SLOW))
    try:
        # first the injected failure (the first task to start takes the token) must have
        # ended in Slurm, so that the elements picked below are healthy ones
        wait_for(lambda: "FAILED" in [v for k, v in our_elements(slurm_cluster).items()
                                      if k not in before], 60, "the injected failure", proc)
        killed = wait_for(lambda: act_on_running(slurm_cluster, before, "scancel"), 60,
                          "a task to scancel", proc)
        requeued = wait_for(lambda: act_on_running(slurm_cluster, before | {killed},
                                                   "scontrol", "requeue"), 60,
                            "a task to requeue", proc)
        # a job in the higher-priority partition takes both CPUs: running tasks are
        # preempted (PreemptMode=REQUEUE) and must be waited for, not resubmitted
        wait_for(lambda: new_running(slurm_cluster, before | {killed, requeued}), 60,
                 "a task to preempt", proc)
        slurm_cluster.run("sbatch", "--parsable", "--partition=urgent", "--cpus-per-task=2",
                          "--output=/dev/null", "--wrap=sleep 1")
        out, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err[-3000:]
    assert not token.exists()  # the injected failure happened
    assert_same_levels(levels_of(tmp_path / "out"), local_levels, FIELDS)
    resubmits = [ln for ln in err.splitlines() if "resubmitting" in ln]
    assert len(resubmits) == 2, err[-3000:]
    assert any("exit code 7" in ln for ln in resubmits), resubmits
    assert any("cancelled" in ln for ln in resubmits), resubmits
    # the failed task's stderr was fetched into OUTDIR/logs, and the warning names it
    logs = sorted((tmp_path / "out" / "logs").glob("job_*.failed.err"))
    assert any("injected failure" in p.read_text() for p in logs), logs
    assert any(f"stderr in {p}" in err for p in logs), err[-3000:]
    # the requeued element ran again under its own id, and nobody submitted it a second time
    scan_dir = next((tmp_path / "remote").iterdir())
    n_jobs = len(list((scan_dir / "jobs").iterdir()))
    n_elements = sum(sub.joinpath("job.sbatch").read_text().count(") j=")
                     for sub in (scan_dir / "subs").iterdir())
    assert n_jobs == 9 and n_elements == 9 + 2, (n_jobs, n_elements)
    restarts = [int(m.read_text().split()[1]) for m in scan_dir.glob("subs/*/rc_*")]
    assert sum(restarts) >= 2, restarts  # the requeue and at least one preemption
    assert not slurm_cluster.active_jobs()


def test_resume_reattaches_after_kill(slurm_cluster, slurm_sshd, tmp_path, sim_event_file,
                                      local_levels):
    """The tool is SIGKILLed while its array runs; ``scan --resume OUTDIR`` re-attaches to the running tasks and submits
    only the rest (no job file is made twice)."""
    cfg = write_config(tmp_path / "config.toml", slurm_sshd, tmp_path / "remote",
                       keep_remote=True)
    args = scan_args(sim_event_file, cfg, tmp_path / "out", *SLOW)
    before = set(our_elements(slurm_cluster))
    proc = start_scan(*args)
    try:
        wait_for(lambda: new_running(slurm_cluster, before), 60, "a running task", proc)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=10)
    mine = {k: v for k, v in our_elements(slurm_cluster).items() if k not in before}
    assert len(mine) == 8 and any(v in ("PENDING", "RUNNING") for v in mine.values()), mine
    assert (tmp_path / "out" / ".skyscan-remote-state.json").exists()
    r = run_cli("scan", "--resume", tmp_path / "out", "--executor", "slurm", "--config", cfg,
                "--profile", "test", "--progress", "lines", timeout=180)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "re-attached to 8 job(s)" in r.stderr
    assert_same_levels(levels_of(tmp_path / "out"), local_levels, FIELDS)
    scan_dir = next((tmp_path / "remote").iterdir())
    assert len(list((scan_dir / "jobs").iterdir())) == 9  # 8 + 1: nothing redone
    assert not slurm_cluster.active_jobs()


def test_cancel_leaves_no_job(slurm_cluster, slurm_sshd, tmp_path, sim_event_file):
    workdir = tmp_path / "remote"
    cfg = write_config(tmp_path / "config.toml", slurm_sshd, workdir)
    before = set(our_elements(slurm_cluster))
    proc = start_scan(*scan_args(sim_event_file, cfg, tmp_path / "out", *SLOW))
    try:
        wait_for(lambda: new_running(slurm_cluster, before), 60, "a running task", proc)
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err[-2000:]
    try:
        wait_for(lambda: not slurm_cluster.active_jobs(), 10, "an empty queue")
    except AssertionError:
        raise AssertionError(f"{our_elements(slurm_cluster)}\n{err[-3000:]}") from None
    mine = {k: v for k, v in our_elements(slurm_cluster).items() if k not in before}
    assert "CANCELLED" in mine.values() and set(mine.values()) <= {"CANCELLED", "COMPLETED"}
    assert list(workdir.iterdir()) == []  # remote scan folder removed


def test_submit_is_idempotent_and_requeue_is_followed(slurm_cluster, slurm_sshd, tmp_path):
    """Backend level, through SSH: submitting the same submission again (a retry after a
    lost reply) does not make a second array, even when the marker file is gone; a
    requeued element is reported back in the queue, then done, never lost."""
    from executors.remote import (
        DONE,
        RemoteConnection,
        RemoteSettings,
        Submission,
        resolve_ssh_target,
    )
    from executors.remote import JobSpec as Spec
    from executors.slurm import SlurmBackend, SlurmOptions

    scan = tmp_path / "scan"
    for d in ("jobs", "results", "subs"):
        (scan / d).mkdir(parents=True)
    # a stand-in worker: a first run waits for the file "go", a rerun (requeue) does not
    (scan / "run_job.sh").write_text(
        '#!/bin/sh\nif [ "${SLURM_RESTART_COUNT:-0}" = 0 ]; then\n'
        '  while [ ! -e go ]; do sleep 0.1; done\nfi\n: > "$3"\n')
    (scan / "run_job.sh").chmod(0o755)
    target = resolve_ssh_target(f"{slurm_sshd.user}@127.0.0.1:{slurm_sshd.port}",
                                identity=[str(slurm_sshd.client_key)],
                                known_hosts=str(slurm_sshd.known_hosts))
    conn = RemoteConnection(target)
    try:
        be = SlurmBackend(SlurmOptions())
        be.bind(conn, str(scan), RemoteSettings())
        be.check()
        jobs = tuple(Spec(i, 0, f"jobs/job_{i:06d}.npz", f"results/result_{i:06d}.npz")
                     for i in range(2))
        sub = Submission("s0000", f"skyscan-idem{tmp_path.name[-6:]}-s0000", jobs, str(scan))
        be.submit(sub)
        first = list(be.arrays)
        be.submit(sub)  # marker file answers
        (scan / "subs/s0000/submit.done").unlink()
        be.submit(sub)  # the job name in squeue answers
        assert list(be.arrays) == first
        assert len({k.split("_")[0] for k in our_elements(slurm_cluster, sub.tag)}) == 1
        aid = first[0]
        wait_for(lambda: slurm_cluster.job_states(aid).get(f"{aid}_0") == "RUNNING", 30,
                 f"element 0 running (states: {slurm_cluster.job_states(aid)})")
        slurm_cluster.run("scontrol", "requeue", f"{aid}_0")
        (scan / "go").write_text("")
        seen: list[tuple[int, str]] = []

        def finished() -> bool:
            seen.extend((s.ref.job_id, s.state) for s in be.poll())
            return not be.active()

        wait_for(finished, 60, "both elements done")
        states0 = [st for j, st in seen if j == 0]
        assert "queued" in states0 and states0[-1] == DONE, seen
        assert [st for j, st in seen if j == 1][-1] == DONE
        assert sorted(p.name for p in (scan / "results").iterdir()) == [
            "result_000000.npz", "result_000001.npz"]
        assert (scan / "subs/s0000/rc_0").read_text().split() == ["0", "1"]  # 1 restart
    finally:
        conn.close()
