"""The generic RemoteBatchExecutor's fault policy, with this machine as the "remote".

``LocalConn`` replaces the SSH connection (commands run through the local ``sh``, files are
written locally) and ``ScriptedBackend`` is a scheduler whose jobs do what a test script
says (run, fail, vanish, hang, refuse the submission). The real worker runs the job files,
so results are real. SSH and HTCondor themselves are covered by test_condor_integration.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

import executors.remote.batch as remote_batch
from executors.base import BatchDone, BatchFailed, ScanContext
from executors.remote import (
    DONE,
    FAILED,
    HELD,
    LOST,
    QUEUED,
    RUNNING,
    JobRef,
    JobStatus,
    RemoteBatchExecutor,
    RemoteError,
    RemoteSettings,
    RunResult,
    SchedulerBackend,
    SSHTarget,
)
from executors.remote.scheduler import GROW, WAIT, HoldAction
from executors.worker import WorkerState
from skyscan_tui.tasks import TaskBatch
from tests.conftest import REPO


class LocalConn:
    def __init__(self, target, **kw) -> None:
        self.target = target

    def connect(self) -> None:
        pass

    def run(self, cmd, timeout=60.0, *, check=False, stdin=None, retry=True) -> RunResult:
        p = subprocess.run(["sh", "-c", cmd], input=stdin, capture_output=True, timeout=timeout)
        res = RunResult(p.returncode, p.stdout, p.stderr)
        if check and res.code:
            raise RemoteError(res.err_line())
        return res

    def put_bytes(self, data: bytes, path: str, mode=None) -> None:
        Path(path).write_bytes(data)
        if mode is not None:
            Path(path).chmod(mode)

    def close(self) -> None:
        pass


class ScriptedBackend(SchedulerBackend):
    """``script[job_id]`` lists the outcome of each attempt: ok, fail, lost, hang, nooutput."""

    name = "scripted"

    def __init__(self, script=None, refuse: int = 0) -> None:
        self.script = script or {}
        self.refuse = refuse  # refuse this many submissions first
        self.news: list[JobStatus] = []
        self.running: set[JobRef] = set()
        self.removed: list[JobRef] = []
        self.submissions: list[str] = []

    def check(self) -> None:
        pass

    def submit(self, sub) -> None:
        if self.refuse:
            self.refuse -= 1
            raise RemoteError("schedd busy")
        self.submissions.append(sub.id)
        for job in sub.jobs:
            outcomes = self.script.get(job.job_id, [])
            what = outcomes[job.attempt] if job.attempt < len(outcomes) else "ok"
            self.news.append(JobStatus(job.ref, QUEUED))
            if what == "ok":
                p = subprocess.run(["./run_job.sh", "context.json", job.input, job.output],
                                   cwd=self.scan_dir, capture_output=True)
                self.news.append(JobStatus(job.ref, DONE if p.returncode == 0 else FAILED,
                                           p.stderr.decode()[-300:]))
            elif what == "nooutput":  # says it succeeded, but left no result file
                self.news.append(JobStatus(job.ref, DONE))
            elif what == "fail":
                self.news.append(JobStatus(job.ref, FAILED, "exit code 1", 1))
            elif what == "lost":
                self.news.append(JobStatus(job.ref, LOST, "vanished"))
            elif what == "hang":
                self.news.append(JobStatus(job.ref, RUNNING))
                self.running.add(job.ref)

    def poll(self):
        out, self.news = self.news, []
        return out

    def remove(self, jobs) -> None:
        self.removed += list(jobs)
        self.running -= set(jobs)

    def active(self):
        return sorted(self.running, key=lambda r: (r.job_id, r.attempt))

    def state(self):
        return {"running": [[r.job_id, r.attempt] for r in self.running]}

    def attach(self, state) -> None:
        # the jobs that were hanging finished while nobody watched: run them now
        for jid, att in state.get("running", []):
            ref = JobRef(jid, att)
            self.running.add(ref)
            p = subprocess.run(["./run_job.sh", "context.json", f"jobs/job_{jid:06d}.npz",
                                f"results/result_{jid:06d}.npz"], cwd=self.scan_dir)
            self.news.append(JobStatus(ref, DONE if p.returncode == 0 else FAILED))


def _same(a: np.ndarray, b: np.ndarray, exact: bool = True) -> bool:
    for f in a.dtype.names:
        if a.dtype[f].kind == "f":
            ok = (np.array_equal(a[f], b[f], equal_nan=True) if exact
                  else np.allclose(a[f], b[f], rtol=1e-12, atol=0, equal_nan=True))
        else:
            ok = np.array_equal(a[f], b[f])
        if not ok:
            return False
    return True


def _settings(tmp_path, **kw) -> RemoteSettings:
    base = dict(workdir=str(tmp_path / "remote dir"), python="python3",
                environment={"PYTHONPATH": str(REPO)}, jobs_in_flight=2, pixels_per_job=10,
                max_retries=2, poll_interval=0.01, job_timeout=0.2, watchdog_grace=0.0)
    base.update(kw)
    return RemoteSettings(**base)


@pytest.fixture()
def local_remote(monkeypatch):
    monkeypatch.setattr(remote_batch, "RemoteConnection", LocalConn)


def _batches(n_batches=4, size=5) -> list[TaskBatch]:
    out = []
    for b in range(n_batches):
        ipix = np.arange(b * size, (b + 1) * size, dtype=np.int64)
        out.append(TaskBatch(b, 0, np.full(size, 8, np.int32), ipix, np.zeros(size, np.int32),
                             np.linspace(0.3, 2.8, size), np.linspace(0.2, 5.0, size),
                             np.tile([1.0, 2.0, 3.0, 4.0], (size, 1))))
    return out


def _drain(ex, n, timeout=60.0):
    got = []
    deadline = time.monotonic() + timeout
    while len([u for u in got if not hasattr(u, "level")]) < n and time.monotonic() < deadline:
        got += ex.poll(0.01)
    return got


def _run(ex, batches, sim_event, n=None):
    ex.start(ScanContext("dummy", {}, sim_event))
    ex.submit(batches)
    ups = _drain(ex, n if n is not None else len(batches))
    return ups


def test_results_match_the_worker(local_remote, tmp_path, sim_event):
    backend = ScriptedBackend()
    ex = RemoteBatchExecutor(SSHTarget("h", "h"), _settings(tmp_path), backend)
    batches = _batches()
    ups = _run(ex, batches, sim_event)
    done = {u.batch_id: u.results for u in ups if isinstance(u, BatchDone)}
    ref = WorkerState(ScanContext("dummy", {}, sim_event))
    assert sorted(done) == [0, 1, 2, 3]
    for b in batches:
        assert _same(done[b.batch_id], ref.run(b))
    assert len(backend.submissions) == 1  # one flush, one submission (2 jobs of 10 tasks)
    ex.close()
    assert not any((tmp_path / "remote dir").iterdir())  # cleaned up


def test_failed_and_lost_jobs_are_resubmitted(local_remote, tmp_path, sim_event):
    backend = ScriptedBackend({0: ["fail", "lost", "ok"]})
    ex = RemoteBatchExecutor(SSHTarget("h", "h"), _settings(tmp_path), backend)
    ups = _run(ex, _batches(), sim_event)
    assert sorted(u.batch_id for u in ups if isinstance(u, BatchDone)) == [0, 1, 2, 3]
    assert ex.stats["resubmitted"] == 2
    msgs = " ".join(u.message for u in ups if hasattr(u, "level"))
    assert "exit code 1" in msgs and "vanished" in msgs
    ex.close()


def test_job_without_its_output_file_is_resubmitted(local_remote, tmp_path, sim_event):
    backend = ScriptedBackend({1: ["nooutput", "ok"]})
    ex = RemoteBatchExecutor(SSHTarget("h", "h"), _settings(tmp_path), backend)
    ups = _run(ex, _batches(), sim_event)
    assert sorted(u.batch_id for u in ups if isinstance(u, BatchDone)) == [0, 1, 2, 3]
    assert any("without its output file" in u.message for u in ups if hasattr(u, "level"))
    ex.close()


def test_gives_up_after_max_retries_with_lost_batches(local_remote, tmp_path, sim_event):
    backend = ScriptedBackend({0: ["fail", "fail", "fail"]})
    ex = RemoteBatchExecutor(SSHTarget("h", "h"), _settings(tmp_path), backend)
    ups = _run(ex, _batches(), sim_event)
    failed = [u for u in ups if isinstance(u, BatchFailed)]
    assert sorted(u.batch_id for u in failed) == [0, 1] and all(u.lost for u in failed)
    assert sorted(u.batch_id for u in ups if isinstance(u, BatchDone)) == [2, 3]
    ex.close()


def test_watchdog_removes_a_stuck_job(local_remote, tmp_path, sim_event):
    backend = ScriptedBackend({1: ["hang", "ok"]})
    ex = RemoteBatchExecutor(SSHTarget("h", "h"), _settings(tmp_path), backend)
    ups = _run(ex, _batches(), sim_event)
    assert sorted(u.batch_id for u in ups if isinstance(u, BatchDone)) == [0, 1, 2, 3]
    assert backend.removed == [JobRef(1, 0)]
    assert any("stuck" in u.message for u in ups if hasattr(u, "level"))
    ex.close()


def test_refused_submission_is_retried_as_the_same_submission(local_remote, tmp_path,
                                                              sim_event):
    backend = ScriptedBackend(refuse=2)
    ex = RemoteBatchExecutor(SSHTarget("h", "h"), _settings(tmp_path), backend)
    ups = _run(ex, _batches(), sim_event)
    assert sorted(u.batch_id for u in ups if isinstance(u, BatchDone)) == [0, 1, 2, 3]
    assert backend.submissions == ["s0000"]
    assert sum("submission failed" in u.message for u in ups if hasattr(u, "level")) == 2
    ex.close()


@pytest.mark.parametrize("how", ["bind_output", "set_state_dir"])
def test_reattach_answers_from_jobs_of_the_earlier_run(local_remote, tmp_path, sim_event, how):
    def bind(ex, resume):
        if how == "bind_output":  # the CLI: state in OUTDIR
            ex.bind_output(tmp_path / "out")
            return tmp_path / "out" / ".skyscan-remote-state.json"
        ex.set_state_dir(tmp_path / "out" / "checkpoint" / "executor", resume)  # engine hook
        return tmp_path / "out" / "checkpoint" / "executor" / "remote-state.json"

    first_backend = ScriptedBackend({0: ["hang"], 1: ["hang"]})
    first = RemoteBatchExecutor(SSHTarget("h", "h"), _settings(tmp_path, job_timeout=60),
                                first_backend)
    state_file = bind(first, False)
    first.start(ScanContext("dummy", {}, sim_event))
    first.submit(_batches())
    first.poll(0.0)
    first.close()  # jobs still running: state kept in the output folder, remote kept
    assert state_file.is_file()
    second_backend = ScriptedBackend()
    second = RemoteBatchExecutor(SSHTarget("h", "h"), _settings(tmp_path, job_timeout=60),
                                 second_backend)
    bind(second, True)
    # the resumed engine batches the same tasks differently
    parts = _batches()
    whole = TaskBatch(0, 0, *(np.concatenate([getattr(b, f) for b in parts]) for f in
                              ("nside", "ipix", "variation", "zenith", "azimuth", "seed")))
    ups = _run(second, [whole.select(np.arange(0, 12), 100), whole.select(np.arange(12, 20),
                                                                           101)], sim_event)
    done = {u.batch_id: u for u in ups if isinstance(u, BatchDone)}
    assert sorted(done) == [100, 101]
    assert second_backend.submissions == []  # nothing submitted again
    ref = WorkerState(ScanContext("dummy", {}, sim_event))
    # rows computed in batches of 5 remotely: equal up to BLAS rounding of other batch sizes
    assert _same(done[100].results, ref.run(whole.select(np.arange(0, 12), 0)), exact=False)
    second.close()
    assert not state_file.exists()


def test_interrupt_stops_a_reconnect_back_off():
    """A Ctrl-C (the engine's cancel → executor.interrupt) ends a reconnect wait at once
    instead of after ``reconnect_timeout``."""
    import socket
    import threading

    from executors.remote import RemoteError
    from executors.remote.ssh import RemoteConnection, SSHTarget

    with socket.socket() as s:  # a loopback port nobody listens on: every connect is refused
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    conn = RemoteConnection(SSHTarget("nowhere", "127.0.0.1", port, connect_timeout=2.0),
                            reconnect_timeout=120.0)
    threading.Timer(0.5, conn.interrupted.set).start()
    t0 = time.monotonic()
    with pytest.raises(RemoteError, match="interrupted"):
        conn._reconnect("test")
    assert time.monotonic() - t0 < 20.0  # not the 120 s back-off


class HoldingBackend(ScriptedBackend):
    """Adds outcomes ``oom`` (held, out of memory: the request is doubled up to 3072MB) and
    ``crash`` (says it succeeded, no result, a traceback in its stderr file)."""

    def __init__(self, script) -> None:
        super().__init__(script)
        self.specs: list = []

    def submit(self, sub) -> None:
        self.specs += list(sub.jobs)
        for job in sub.jobs:
            outcomes = self.script.get(job.job_id, [])
            what = outcomes[job.attempt] if job.attempt < len(outcomes) else "ok"
            if what == "oom":
                self.news += [JobStatus(job.ref, QUEUED), JobStatus(
                    job.ref, HELD, "Job has gone over memory limit (code 34/102)", 34, 102)]
            elif what == "adminhold":  # held by an administrator: stays in the queue
                self.news += [JobStatus(job.ref, QUEUED), JobStatus(
                    job.ref, HELD, "via condor_hold (by user admin) (code 1)", 1, 0)]
                self.running.add(job.ref)
            elif what == "crash":
                Path(self.scan_dir, f"job_{job.job_id}.{job.attempt}.err").write_text(
                    "Traceback (most recent call last):\n  ...\nValueError: boom\n\n")
                self.news += [JobStatus(job.ref, QUEUED), JobStatus(job.ref, DONE)]
            else:
                super().submit(type(sub)(sub.id, sub.tag, (job,), sub.scan_dir))

    def stderr_file(self, job):
        return f"job_{job.job_id}.{job.attempt}.err"

    def hold_action(self, status, releases):
        if status.code == 1:
            return HoldAction(WAIT, "held with condor_hold")
        return HoldAction(GROW, "out of memory", "memory")

    def grow(self, resource, factor):
        return f"{min(1024 * factor // 2, 3072)}MB", f"{min(1024 * factor, 3072)}MB"


def test_out_of_memory_holds_raise_the_request_up_to_the_cap_then_fail(local_remote, tmp_path,
                                                                        sim_event):
    backend = HoldingBackend({0: ["oom", "oom", "oom"]})
    # no retries for failures at all: raising the request is not a failure of the job
    ex = RemoteBatchExecutor(SSHTarget("h", "h"), _settings(tmp_path, max_retries=0), backend)
    ups = _run(ex, _batches(), sim_event)
    assert sorted(u.batch_id for u in ups if isinstance(u, BatchDone)) == [2, 3]
    assert sorted(u.batch_id for u in ups if isinstance(u, BatchFailed)) == [0, 1]
    scales = [s.scale for s in backend.specs if s.job_id == 0]
    assert scales == [(), (("memory", 2),), (("memory", 4),)]
    msgs = "\n".join(u.message for u in ups if hasattr(u, "level"))
    assert "resubmitting with memory 2048MB (was 1024MB; cap: memory_cap) (attempt 2)" in msgs
    assert "resubmitting with memory 3072MB (was 2048MB; cap: memory_cap) (attempt 3)" in msgs
    assert "memory already at its cap memory_cap = 3072MB" in msgs and "gave up" in msgs
    assert ex.stats["requests_raised"] == 2 and ex.stats["gave_up"] == 1
    assert ex.state()["jobs"]["0"]["scale"] == {"memory": 4}  # kept for a resume
    ex.close()


def test_a_job_without_its_output_reports_the_tail_of_its_stderr(local_remote, tmp_path,
                                                                 sim_event):
    backend = HoldingBackend({1: ["crash"]})
    ex = RemoteBatchExecutor(SSHTarget("h", "h"), _settings(tmp_path), backend)
    ex.set_log_dir(tmp_path / "logs")
    ups = _run(ex, _batches(), sim_event)
    assert sorted(u.batch_id for u in ups if isinstance(u, BatchDone)) == [0, 1, 2, 3]
    msgs = "\n".join(u.message for u in ups if hasattr(u, "level"))
    assert "finished without its output file; stderr: ValueError: boom (stderr in " in msgs
    (log,) = (tmp_path / "logs").glob("job_000001.attempt1.failed.err")
    assert "Traceback" in log.read_text()
    (event,) = ex.status()["recent"]
    assert event["kind"] == "failed" and event["reason"].endswith("stderr: ValueError: boom")
    ex.close()


def test_a_job_held_by_an_administrator_is_waited_for_across_a_resume(local_remote, tmp_path,
                                                                      sim_event):
    backend = HoldingBackend({0: ["adminhold"]})
    ex = RemoteBatchExecutor(SSHTarget("h", "h"), _settings(tmp_path), backend)
    ups = _run(ex, _batches(), sim_event, n=2)  # job 1's two batches; job 0 waits
    assert sorted(u.batch_id for u in ups if isinstance(u, BatchDone)) == [2, 3]
    msgs = "\n".join(u.message for u in ups if hasattr(u, "level"))
    assert "held: held with condor_hold" in msgs and "waiting for its release" in msgs
    ex.poll(0.01)
    assert backend.removed == [] and ex.stats["resubmitted"] == 0  # never undone
    (hold,) = ex.status()["holds"]
    assert (hold["job"], hold["code"], hold["action"]) == (0, 1, "wait")
    state = ex.state()
    assert state["holds"]["0"]["action"] == "wait"
    # the tool stops; a new run re-attaches and still shows the job as held
    second = HoldingBackend({})
    again = RemoteBatchExecutor(SSHTarget("h", "h"), _settings(tmp_path), second)
    again.attach(state)
    again.start(ScanContext("dummy", {}, sim_event))
    assert [h["job"] for h in again.status()["holds"]] == [0]
    assert second.submissions == []  # the held job is not submitted again
    ex.cancel()
