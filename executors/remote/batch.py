"""The remote batch executor: task batches as batch-system jobs over SSH.

:class:`RemoteBatchExecutor` is a generic :class:`~executors.base.Executor`. It packs the
engine's ``TaskBatch``es into *jobs* (about ``pixels_per_job`` tasks each, one ``.npz`` per
job), uploads all the job files of one flush as **one tar**, submits them through a
:class:`~executors.remote.scheduler.SchedulerBackend`, polls job states, fetches finished
result files as **one tar** per poll, and reports ``BatchDone`` / ``BatchFailed(lost=...)``
as results arrive. It owns the fault policy shared by all schedulers: retries of failed,
vanished, held, stuck jobs and of jobs that finished without their output (``max_retries``
per job, then ``BatchFailed(lost=True)`` so the engine may re-queue; job states, holds,
retries and result fetches are its :class:`~executors.remote.jobstates.JobStates` half), and,
through :class:`~executors.remote.resume.Resumable`, the resume state.

Remote layout (one folder per scan, every path shell-quoted when used in a command)::

    WORKDIR/scan-<id>/context.json   event + reco settings, uploaded once
                      run_job.sh     sets up the environment, runs `python -m executors.worker job`
                                     (executors.remote.environment: which python, per env_mode)
                      jobs/job_<J>.npz        input of job J (several batches)
                      results/result_<J>.npz  written by the job (temp name, then rename)
                      subs/<S>/...   one folder per submission, owned by the backend
                      state.json     copy of the resume state

Cleanup: ``close()`` deletes the remote scan folder and the state file when no job the engine
waits for is left (a finished scan); otherwise it keeps both for a later re-attach.
``cancel()`` removes every job of the scan (``condor_rm``/``scancel``) and the folder.
"""

from __future__ import annotations

import io
import json
import logging
import shlex
import time
import uuid
from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from executors.base import Executor, ExecutorLog, ScanContext, Update
from executors.remote.config import REMOTE_OPTIONS, RemoteSettings, remote_config
from executors.remote.environment import (
    CONTAINER,
    TRANSFER,
    Launch,
    container_launch,
    ensure_archive,
    env_exports,
    probe_failure,
    probe_key,
    run_script,
    shared_launch,
)
from executors.remote.jobstates import JobStates
from executors.remote.resume import Job, Resumable, context_digest, task_keys
from executors.remote.scheduler import (
    DONE,
    FAILED,
    HELD,
    QUEUED,
    RUNNING,
    SchedulerBackend,
    Submission,
)
from executors.remote.ssh import RemoteConnection, RemoteError, SSHTarget
from skyscan_tui.options import Option

if TYPE_CHECKING:
    from skyscan_tui.tasks import TaskBatch

__all__ = ["RemoteBatchExecutor"]

log = logging.getLogger(__name__)

#: recent failures and holds listed by :meth:`RemoteBatchExecutor.status`
MAX_LISTED = 20


class RemoteBatchExecutor(JobStates, Resumable, Executor):
    """Runs task batches as batch-system jobs over SSH (see the module docstring).

    A scheduler's executor subclasses it, adds its backend's options to ``OPTIONS`` and
    implements :meth:`make_backend`.
    """

    name: ClassVar[str] = "remote"
    OPTIONS: ClassVar[tuple[Option, ...]] = REMOTE_OPTIONS
    remote: ClassVar[bool] = True
    can_resume: ClassVar[bool] = True

    @classmethod
    def from_options(cls, values: Mapping[str, Any] | None = None) -> RemoteBatchExecutor:
        """Defaults < ``--profile`` < ``values``; SSH target, settings and backend from them."""
        v = cls.option_values(values)
        target, settings = remote_config(v)
        return cls(target, settings, cls.make_backend(v, settings))

    @classmethod
    def make_backend(cls, values: dict[str, Any], settings: RemoteSettings) -> SchedulerBackend:
        """The scheduler backend for resolved option ``values`` (scheduler executors)."""
        raise NotImplementedError

    def __init__(self, target: SSHTarget, settings: RemoteSettings,
                 backend: SchedulerBackend) -> None:
        self.target = target
        self.settings = settings
        self.backend = backend
        self.conn: RemoteConnection | None = None
        self.scan_dir = ""
        self.scan_id = ""
        self._digest = ""
        self._logs: list[Update] = []
        self._pending: list[TaskBatch] = []
        self._resubmit: list[Job] = []
        self._jobs: dict[int, Job] = {}
        self._next_job = 0
        self._next_sub = 0
        self._last_poll = 0.0
        self._batch_len_sum = 0
        self._batch_count = 0
        self._cancelled = False
        self._remote_existed = False
        self._submit_failures = 0
        self._retry_sub: Submission | None = None
        self._retry_at = 0.0
        self._idle_warned: set[int] = set()
        self._init_resume()
        self.stats = {"submissions": 0, "jobs_submitted": 0, "resubmitted": 0,
                      "adopted_batches": 0, "holds": 0, "failures": 0, "gave_up": 0,
                      "requests_raised": 0}
        self._log_dir: Path | None = None  # OUTDIR/logs: stderr of failed and held jobs
        self._holds: dict[int, dict[str, Any]] = {}  # job id -> its current hold
        self._events: deque[dict[str, Any]] = deque(maxlen=MAX_LISTED)  # failures, holds

    # ---------------------------------------------------------------- engine-facing
    @property
    def slots(self) -> int:
        if self._batch_count:
            mean = self._batch_len_sum / self._batch_count
            per_job = max(1, round(self.settings.pixels_per_job / max(mean, 1.0)))
        else:
            per_job = 1
        return self.settings.jobs_in_flight * per_job

    @property
    def workers(self) -> int:
        return self.settings.jobs_in_flight

    def _log(self, level: str, message: str) -> None:
        self._logs.append(ExecutorLog(level, message))

    def set_log_dir(self, path: Path) -> None:
        self._log_dir = Path(path)

    def status(self) -> dict[str, Any]:
        """Job counts by state, counters, current holds and recent failures (in memory)."""
        jobs = {QUEUED: 0, RUNNING: 0, HELD: 0, DONE: 0, FAILED: 0}
        for j in self._jobs.values():
            if j.orphan:
                continue
            # finished but its result not fetched yet: still running for the user
            state = RUNNING if j.state == DONE and not j.reported else j.state
            jobs[state] = jobs.get(state, 0) + 1
        return {"scheduler": self.backend.label, "host": self.target.label,
                "jobs": jobs, "batches_waiting": len(self._pending),
                "counters": dict(self.stats),
                "holds": [{"job": k, **v} for k, v in sorted(self._holds.items())],
                "recent": list(self._events)}

    def start(self, context: ScanContext) -> None:
        """Connect, check the remote interpreter, create the scan folder, upload the context.

        Two remote commands (the checks), then SFTP only: on a login node every command
        costs a shell start-up, so they are few. Then the environment mode's launch
        (transfer: the archive, built once) and the backend's probe job unless it passed
        before (a few commands more, once per profile and version).
        """
        from skyscan_tui.events import event_to_dict

        s = self.settings
        self._digest = context_digest(context)
        self.conn = RemoteConnection(self.target, reconnect_timeout=s.reconnect_timeout,
                                     on_log=self._log)
        self.conn.connect()
        saved = self._saved if (self._saved or {}).get("digest") == self._digest else None
        if saved and saved.get("scan_dir"):
            self.scan_id = saved["scan_id"]
            scan_expr = shlex.quote(saved["scan_dir"])
        else:
            self.scan_id = f"{self._digest[:8]}-{uuid.uuid4().hex[:6]}"
            scan_expr = _remote_path_expr(f"{s.workdir.rstrip('/')}/scan-{self.scan_id}")
        env = self.backend.env
        python = self._prepare_remote(scan_expr, context.reco_name,
                                      check_python=env.mode != CONTAINER)
        self.backend.bind(self.conn, self.scan_dir, s)
        self.backend.check()
        ctx = {"reco_name": context.reco_name, "reco_options": dict(context.reco_options),
               "event": event_to_dict(context.event)}
        self.conn.put_bytes(json.dumps(ctx).encode(), f"{self.scan_dir}/context.json")
        launch = self._launch(python)
        self.backend.set_launch(launch)
        self.conn.put_bytes(run_script(launch, s.environment, s.setup).encode(),
                            f"{self.scan_dir}/run_job.sh", mode=0o755)
        self._probe(context.reco_name, launch, python)
        if saved and self._remote_existed:
            self._reattach(saved)
        elif saved:
            self._log("warning", f"the remote folder of the earlier run ({self.scan_dir}) is "
                                 "gone; starting its jobs afresh")
        self._save_state()

    def _env_prefix(self) -> str:
        setup = self.settings.setup.strip()
        return env_exports(self.settings.environment, "; ") + (f"{setup}\n" if setup else "")

    def _workdir(self) -> str:
        """The remote work folder (absolute): the scan folder's parent."""
        return self.scan_dir.rstrip("/").rsplit("/", 1)[0]

    def _launch(self, python: str) -> Launch:
        """How jobs start the worker, by the profile's ``env_mode``.

        Transfer: the archive, built on the submit node the first time."""
        env = self.backend.env
        if env.mode == CONTAINER:
            return container_launch(env)
        if env.mode == TRANSFER:
            t0 = time.monotonic()
            launch, size, built = ensure_archive(self.conn, python, self._workdir(),
                                                 self.settings.command_timeout)
            what = (f"built in {built:.1f} s" if built else "cached") + \
                f" ({time.monotonic() - t0:.1f} s with the upload and checks)"
            self._log("info", f"environment archive {launch.inputs[0].rsplit('/', 1)[-1]}: "
                              f"{size / 1e6:.1f} MB, {what}")
            return launch
        return shared_launch(python)

    def _probe(self, reco: str, launch: Launch, python: str) -> None:
        """Run the backend's probe job unless one succeeded before for the same key.

        The key: :func:`~executors.remote.environment.probe_key`. RemoteError (one line, with
        the job's stderr and the fix) if it fails."""
        env = self.backend.env
        if not env.probe:
            return
        key = probe_key(env, launch, self.settings, tuple(self.backend.extra_directives), reco)
        marker = shlex.quote(f"{self._workdir()}/.skyscan-probe/{key}")
        res = self.conn.run(f"cat {marker} 2>/dev/null", self.settings.command_timeout)
        if res.code == 0 and res.text.strip():
            self._log("info", f"probe job: passed before ({res.text.strip()[:200]})")
            return
        t0 = time.monotonic()
        result = self.backend.probe(reco, env.probe_timeout)
        took = time.monotonic() - t0
        if result is None:
            return
        if result.ok is None:
            self._log("warning", f"the probe job did not finish within {env.probe_timeout:.0f} "
                                 f"s ({result.detail}); going on without the check")
            return
        if not result.ok:
            raise RemoteError(probe_failure(env, result, python, self.target.label))
        line = (result.out.strip().splitlines() or ["ok"])[-1][:300]
        self.conn.run(f"mkdir -p {shlex.quote(self._workdir() + '/.skyscan-probe')} && "
                      f"printf '%s\\n' {shlex.quote(line)} > {marker}.tmp && "
                      f"mv -f {marker}.tmp {marker}", self.settings.command_timeout)
        self._log("info", f"probe job (env_mode = {env.mode}) passed in {took:.1f} s: {line}")

    def _prepare_remote(self, scan_expr: str, reco_name: str, check_python: bool = True
                        ) -> str:
        """Create the scan folder and check the interpreter can run our worker (one command).

        Sets ``self.scan_dir`` (absolute) and returns the interpreter's absolute path ("" if
        not ``check_python``: container mode needs no interpreter on the submit node).
        """
        s = self.settings
        probe = ("import sys, skyscan_tui, executors.worker; "
                 f"executors.worker.reco_class({reco_name!r}); print(sys.executable); "
                 "print(skyscan_tui.__version__)")
        py = _remote_path_expr(s.python) if "/" in s.python else shlex.quote(s.python)
        cmd = (f"d={scan_expr} && if [ -f \"$d/context.json\" ]; then e=old; else e=new; fi && "
               f"mkdir -p \"$d/jobs\" \"$d/results\" \"$d/subs\" && "
               f"printf '%s\\n%s\\n' \"$d\" \"$e\"" +
               (f" && ( {self._env_prefix()}{py} -c {shlex.quote(probe)} )"
                if check_python else ""))
        res = self.conn.run(cmd, s.command_timeout)
        lines = res.text.splitlines()
        if len(lines) < 2 or not lines[0].startswith("/"):
            raise RemoteError(f"cannot create the remote folder under {s.workdir!r} on "
                              f"{self.target.label}: {res.err_line()}")
        self.scan_dir = lines[0]
        self._remote_existed = lines[1] == "old"
        lines = lines[1:]
        if not check_python:
            return ""
        if res.code != 0 or len(lines) < 2:
            raise RemoteError(
                f"on {self.target.label}, {s.python!r} cannot run the skyscan-tui worker "
                f"({res.err_line()}). Install it there, e.g. `python3 -m venv ~/skyscan-env && "
                "~/skyscan-env/bin/pip install skyscan-tui`, and set python = "
                "\"~/skyscan-env/bin/python\" in the profile (or --remote-python)")
        return lines[1].strip()

    def submit(self, batches: Sequence[TaskBatch]) -> None:
        for batch in batches:
            self._batch_len_sum += len(batch)
            self._batch_count += 1
            if self._adopt(batch):
                continue
            self._pending.append(batch)

    def poll(self, timeout: float) -> list[Update]:
        if self.conn is None:
            raise RuntimeError("executor not started")
        out: list[Update] = []
        self._flush()
        now = time.monotonic()
        wait = self._last_poll + self.settings.poll_interval - now
        if wait > 0 and not self._logs:
            time.sleep(min(timeout, wait))
        if time.monotonic() >= self._last_poll + self.settings.poll_interval:
            self._last_poll = time.monotonic()
            out.extend(self._check_jobs())
            self._flush()
        out.extend(self._answer_adopted())
        logs, self._logs = self._logs, []
        return logs + out

    def interrupt(self) -> None:
        """A Ctrl-C: a reconnect back-off in progress gives up instead of waiting it out."""
        conn = self.conn
        if conn is not None:
            conn.interrupted.set()

    def cancel(self) -> None:
        """Remove every job of the scan and delete the remote scan folder."""
        first = not self._cancelled
        self._cancelled = True
        self._pending.clear()
        self._resubmit.clear()
        if not self.scan_dir or not first and self.conn is None:
            return
        reopened = self.conn is None
        try:
            if reopened:  # closed already (e.g. interrupted): connect again
                self.conn = RemoteConnection(self.target, reconnect_timeout=30.0)
                self.conn.connect()
                self.backend.bind(self.conn, self.scan_dir, self.settings)
            self.backend.remove_all()
            if self.scan_dir:
                self.conn.run(f"rm -rf {shlex.quote(self.scan_dir)}",
                              self.settings.command_timeout)
        except RemoteError as exc:
            log.warning("cancel: %s", exc)
        self._jobs.clear()
        for path in self._state_paths:
            path.unlink(missing_ok=True)
        self.scan_dir = ""
        if reopened and self.conn is not None:
            self.conn.close()
            self.conn = None

    def close(self) -> None:
        if self.conn is None:
            return
        # busy: work the engine still waits for (orphans nobody asked for do not count)
        busy = bool(self._adopted) or any(not j.reported and not j.orphan
                                          for j in self._jobs.values())
        if not busy and not self._cancelled and self.scan_dir:
            try:
                stray = self.backend.active()  # orphans nobody needed, duplicate attempts
                if stray:
                    self.backend.remove(stray)
                if not self.settings.keep_remote:
                    self.conn.run(f"rm -rf {shlex.quote(self.scan_dir)}",
                                  self.settings.command_timeout, retry=False)
                for path in self._state_paths:
                    path.unlink(missing_ok=True)
            except RemoteError as exc:
                log.warning("cleanup: %s", exc)
        elif busy and not self._cancelled:
            self._save_state()
        self.conn.close()
        self.conn = None

    # ---------------------------------------------------------------- submission
    def _flush(self) -> None:
        """Pack pending batches into jobs, upload them as one tar, submit with the resubmits."""
        new: list[Job] = []
        # spread the work over the free job slots (jobs_in_flight is a cap): a small round
        # becomes many small jobs rather than one big one; pixels_per_job caps the job size
        active = sum(1 for j in self._jobs.values() if not j.reported)  # incl. resubmits
        free = self.settings.jobs_in_flight - active
        total = sum(len(b) for b in self._pending)
        if free > 0 and total:
            target = min(self.settings.pixels_per_job, -(-total // free))
            cur: list[TaskBatch] = []
            size = 0
            for batch in self._pending:
                cur.append(batch)
                size += len(batch)
                if size >= target:
                    new.append(self._new_job(cur))
                    cur, size = [], 0
            if cur:
                new.append(self._new_job(cur))
            self._pending = []
        if self._retry_sub is not None:
            if time.monotonic() >= self._retry_at:
                self._submit(self._retry_sub)
            if self._retry_sub is not None:  # still failing: hold back new work too
                self._pending = [b for j in new for b in j.batches] + self._pending
                self._next_job -= len(new)
                return
        if not new and not self._resubmit:
            return
        if new:
            import tarfile

            from executors.worker import job_to_npz

            buf = io.BytesIO()
            with tarfile.open(fileobj=buf, mode="w") as tar:
                for job in new:
                    data = job_to_npz(job.batches)
                    info = tarfile.TarInfo(job.input)
                    info.size, info.mtime, info.mode = len(data), int(time.time()), 0o644
                    tar.addfile(info, io.BytesIO(data))
            # one archive (SFTP), unpacked remotely: a few round trips for all job files
            name = f"upload-{uuid.uuid4().hex[:8]}.tar"
            self.conn.put_bytes(buf.getvalue(), f"{self.scan_dir}/{name}")
            self.conn.run(f"cd {shlex.quote(self.scan_dir)} && tar xf {name} && rm -f {name}",
                          self.settings.command_timeout, check=True)
            for job in new:
                self._jobs[job.job_id] = job
        jobs = new + self._resubmit
        self._resubmit = []
        sub_id = f"s{self._next_sub:04d}"
        self._next_sub += 1
        sub = Submission(sub_id, f"skyscan-{self.scan_id}-{sub_id}",
                         tuple(j.spec for j in jobs), self.scan_dir)
        now = time.monotonic()
        for j in jobs:
            j.state, j.since = QUEUED, now
        # write-ahead: until the backend confirms it, the submission is saved as pending, so
        # a run killed mid-submit is followed by a resumed run that re-submits the very same
        # submission (idempotent: found by its marker or batch name, never queued twice)
        self._retry_sub, self._retry_at = sub, 0.0
        self._save_state()
        self._submit(sub)

    def _submit(self, sub: Submission) -> None:
        """Submit ``sub``; on failure keep it as is and retry at the next poll.

        Same id and tag, so a submission whose reply was lost is found again, not repeated."""
        try:
            handle = self.backend.submit(sub)
        except RemoteError as exc:
            # schedds refuse now and then (busy, restarting); a persistent refusal (a bad
            # submit line, ...) ends the scan
            self._submit_failures += 1
            if self._submit_failures >= 5:
                raise
            delay = min(300.0, self.settings.poll_interval * 2 ** self._submit_failures)
            self._log("warning", f"submission failed ({exc}); retrying in {delay:.0f} s")
            self._retry_sub, self._retry_at = sub, time.monotonic() + delay
            self._save_state()
            return
        self._retry_sub = None
        self._submit_failures = 0
        self._log("info", f"submitted {len(sub.jobs)} job(s)"
                          + (f" as {handle}" if handle else "") + f" ({sub.tag})")
        self.stats["submissions"] += 1
        self.stats["jobs_submitted"] += len(sub.jobs)
        self._save_state()

    def _new_job(self, batches: list[TaskBatch]) -> Job:
        keys = [k for b in batches for k in task_keys(b)]
        job = Job(self._next_job, list(batches), keys, round=batches[0].round)
        self._next_job += 1
        return job

    # ---------------------------------------------------------------- resume

def _remote_path_expr(path: str) -> str:
    """Shell text for a remote path, safe with spaces and quotes in names.

    ``~/x`` and relative paths start at "$HOME"; the rest is quoted."""
    if path == "~":
        return '"$HOME"'
    if path.startswith("~/"):
        return '"$HOME"/' + shlex.quote(path[2:])
    if not path.startswith("/"):
        return '"$HOME"/' + shlex.quote(path)
    return shlex.quote(path)
