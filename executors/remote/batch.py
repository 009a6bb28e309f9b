"""The remote batch executor: task batches as batch-system jobs over SSH.

:class:`RemoteBatchExecutor` is a generic :class:`~executors.base.Executor`. It packs the
engine's ``TaskBatch``es into *jobs* (about ``pixels_per_job`` tasks each, one ``.npz`` per
job), uploads all the job files of one flush as **one tar**, submits them through a
:class:`~executors.remote.scheduler.SchedulerBackend`, polls job states, fetches finished
result files as **one tar** per poll, and reports ``BatchDone`` / ``BatchFailed(lost=...)``
as results arrive. It owns the fault policy shared by all schedulers: retries of failed,
vanished, held, stuck jobs and of jobs that finished without their output (``max_retries``
per job, then ``BatchFailed(lost=True)`` so the engine may re-queue), and, through
:class:`~executors.remote.resume.Resumable`, the resume state.

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

from executors.base import BatchDone, BatchFailed, Executor, ExecutorLog, ScanContext, Update
from executors.remote.config import REMOTE_OPTIONS, RemoteSettings, remote_config
from executors.remote.environment import (
    CONTAINER,
    TRANSFER,
    Launch,
    container_launch,
    ensure_archive,
    probe_failure,
    probe_key,
    run_script,
    shared_launch,
)
from executors.remote.resume import Job, Resumable, context_digest, task_keys
from executors.remote.scheduler import (
    DONE,
    FAIL,
    FAILED,
    GROW,
    HELD,
    LOST,
    QUEUED,
    RELEASE,
    RUNNING,
    WAIT,
    HoldAction,
    JobStatus,
    SchedulerBackend,
    Submission,
)
from executors.remote.ssh import RemoteConnection, RemoteError, SSHTarget
from skyscan_tui.options import Option

if TYPE_CHECKING:
    import numpy as np

    from skyscan_tui.tasks import TaskBatch

__all__ = ["RemoteBatchExecutor"]

log = logging.getLogger(__name__)

#: at most this much of a failed or held job's stderr is fetched (its end) [bytes]
MAX_STDERR_BYTES = 1024 * 1024
#: recent failures and holds listed by :meth:`RemoteBatchExecutor.status`
MAX_LISTED = 20


class RemoteBatchExecutor(Resumable, Executor):
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
            state = DONE if j.reported and j.state == DONE else j.state
            if state == DONE and not j.reported:
                state = RUNNING  # finished, its result not fetched yet
            jobs[state] = jobs.get(state, 0) + 1
        return {"scheduler": self.backend.label, "host": self.target.label,
                "jobs": jobs, "batches_waiting": len(self._pending),
                "counters": dict(self.stats),
                "holds": [{"job": k, **v} for k, v in sorted(self._holds.items())],
                "recent": list(self._events)}

    def _note(self, job: Job, kind: str, reason: str, log_file: str, action: str = "",
              cause: str = "") -> None:
        """Count a failure or hold and keep it for :meth:`status`.

        ``action``: what was done about a hold, e.g. "waiting for its release"; ``cause``: the
        hold's cause in words."""
        self.stats["holds" if kind == HELD else "failures"] += 1
        self._events.append({"job": job.job_id, "attempt": job.attempt + 1, "kind": kind,
                             "reason": reason[:500], "time": round(time.time(), 3),
                             **({"action": action} if action else {}),
                             **({"cause": cause} if cause else {}),
                             **({"log": log_file} if log_file else {})})

    @staticmethod
    def _stderr_text(tail: str, saved: str) -> str:
        """What a message says of a job's stderr: its last line, and where the rest is."""
        text = f"; stderr: {tail}" if tail else ""
        return text + (f" (stderr in {saved})" if saved else "")

    def _save_stderr(self, job: Job, kind: str) -> tuple[str, str]:
        """Fetch the stderr of ``job``'s current attempt into ``OUTDIR/logs/``.

        Only its last MAX_STDERR_BYTES are kept. Returns (its last non-empty line, the local file
        or "")."""
        path = self.backend.stderr_file(job.ref)
        if path is None:
            try:
                return self.backend.error_tail(job.ref), ""
            except RemoteError:
                return "", ""
        p = shlex.quote(path)
        try:
            res = self.conn.run(f"cd {shlex.quote(self.scan_dir)} && if [ -f {p} ]; then "
                                f"tail -c {MAX_STDERR_BYTES} {p}; fi",
                                self.settings.command_timeout)
        except RemoteError:
            return "", ""
        data = res.out if res.code == 0 else b""
        lines = [ln for ln in data.decode("utf-8", "replace").splitlines() if ln.strip()]
        tail = lines[-1].strip()[-300:] if lines else ""
        saved = ""
        if data and self._log_dir is not None:
            from skyscan_tui.fileio import atomic_write_bytes

            dest = self._log_dir / f"job_{job.job_id:06d}.attempt{job.attempt + 1}.{kind}.err"
            try:
                atomic_write_bytes(dest, data)
                saved = str(dest)
            except OSError as exc:
                log.warning("cannot write %s: %s", dest, exc)
        return tail, saved

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
        s = self.settings
        parts = [f"{k}={shlex.quote(str(v))}; export {k}; "
                 for k, v in sorted(s.environment.items())]
        setup = s.setup.strip()
        return "".join(parts) + (f"{setup}\n" if setup else "")

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
        extra = tuple(getattr(getattr(self.backend, "opts", None), "extra_submit_lines", ()))
        key = probe_key(env, launch, self.settings, extra, reco)
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

    # ---------------------------------------------------------------- job states
    def _check_jobs(self) -> list[Update]:
        out: list[Update] = []
        now = time.monotonic()
        for st in self.backend.poll():
            job = self._jobs.get(st.ref.job_id)
            if job is None or job.reported or st.ref.attempt != job.attempt:
                continue  # an older attempt or a job already answered
            if st.state != HELD:
                hold = self._holds.pop(job.job_id, None)
                if hold and hold.get("action") == WAIT and st.state == QUEUED:
                    self._log("info", f"job {job.job_id} was released; back in the queue")
            if st.state == QUEUED:
                if job.state == RUNNING:
                    self._log("info", f"job {job.job_id} is back in the queue ({st.detail}); "
                                      "it will run again")
                job.state, job.since = QUEUED, now
            elif st.state == RUNNING:
                job.state, job.since = RUNNING, now
            elif st.state == DONE:
                job.state = DONE
            elif st.state == HELD:
                if job.state == HELD:
                    continue  # this hold was handled (seen in condor_q, then in the log)
                job.state, job.since = HELD, now
                out.extend(self._held(job, st))
            elif st.state in (FAILED, LOST):
                why = st.detail or st.state
                saved = ""
                if st.state == FAILED:
                    tail, saved = self._save_stderr(job, FAILED)
                    why += self._stderr_text(tail, "")
                self._note(job, st.state, why, saved)
                out.extend(self._retry(job, why + self._stderr_text("", saved)))
        for job in self._jobs.values():
            idle = max(600.0, 20 * self.settings.poll_interval)
            if job.state == QUEUED and not job.reported and now - job.since > idle \
                    and job.job_id not in self._idle_warned:
                self._idle_warned.add(job.job_id)
                self._log("warning", f"job {job.job_id} still waits in the queue after "
                                     f"{now - job.since:.0f} s (no free slot, or requests "
                                     "no machine can meet; ask the scheduler, e.g. "
                                     f"{self.backend.why_pending_hint})")
            # the scheduler's own limit (e.g. allowed_execute_duration = job_timeout) acts
            # first; this watchdog is for pools where such a policy is not honoured
            limit = 1.25 * self.settings.job_timeout + self.settings.watchdog_grace
            if job.state == RUNNING and not job.reported and now - job.since > limit:
                self.backend.remove([job.ref])
                out.extend(self._retry(job, f"stuck: running for more than {limit:.0f} s"))
        to_fetch = [j for j in self._jobs.values() if j.state == DONE and not j.reported]
        if to_fetch:
            out.extend(self._fetch(to_fetch))
        if out or to_fetch:
            self._save_state()
        return out

    def _held(self, job: Job, st: JobStatus) -> list[Update]:
        """A hold, handled by its cause (the backend's :meth:`hold_action`).

        Released, waited for, a failure of the job, or resubmitted (with a raised request)."""
        decision: HoldAction = self.backend.hold_action(st, job.releases)
        detail = st.detail or "held"
        tail, saved = self._save_stderr(job, HELD)
        what = f"held: {decision.cause} ({detail})" if decision.cause else f"held ({detail})"
        stderr = self._stderr_text(tail, saved)
        action = {RELEASE: "released", WAIT: "waiting for its release",
                  FAIL: "failed (resubmitted as a failure)"}.get(decision.action, "resubmitted")
        hold = {"reason": detail, "code": st.code, "subcode": st.subcode,
                "cause": decision.cause, "action": decision.action}
        if decision.action == RELEASE:
            self._note(job, HELD, what + stderr, saved, action, decision.cause)
            job.releases += 1
            self._holds[job.job_id] = hold
            self._log("warning", f"job {job.job_id} {what}{stderr}; releasing")
            self.backend.release([job.ref])
            self._save_state()
            return []
        if decision.action == WAIT:
            self._note(job, HELD, what + stderr, saved, action, decision.cause)
            self._holds[job.job_id] = hold
            release = getattr(self.backend, "release_command", "a release")
            self._log("warning", f"job {job.job_id} {what}{stderr}; waiting for its release "
                                 f"({release}); the tool never removes or resubmits a job "
                                 "held this way")
            self._save_state()  # the hold is listed again after a resume
            return []
        self.backend.remove([job.ref])
        how = ""
        grow = False
        if decision.action == GROW:
            res = decision.resource
            factor = job.scale.get(res, 1) * 2
            sizes = self.backend.grow(res, factor)
            if sizes is None:
                what += (f"; the {res} request cannot be raised (not a plain size, or set by "
                         "an extra directive)")
            elif sizes[1] == sizes[0]:
                what += f"; {res} already at its cap {res}_cap = {sizes[0]}"
            else:
                job.scale[res], grow = factor, True
                job.grows += 1
                self.stats["requests_raised"] += 1
                how = f" with {res} {sizes[1]} (was {sizes[0]}; cap: {res}_cap)"
                action = f"resubmitted with {res} {sizes[1]}"
        if not grow and job.attempt - job.grows >= self.settings.max_retries:
            action = "gave up"  # no retries left (see _retry)
        self._note(job, HELD, what + stderr, saved, action, decision.cause)
        if decision.action == FAIL:
            self.stats["failures"] += 1
        return self._retry(job, what + stderr, how=how, grow=grow)

    def _retry(self, job: Job, reason: str, how: str = "", grow: bool = False) -> list[Update]:
        """Resubmit ``job`` while retries are left.

        ``how``: e.g. " with memory 4096MB". A resubmission that raised a request (``grow``) is
        not counted as a failure."""
        if grow or job.attempt - job.grows < self.settings.max_retries:
            job.attempt += 1
            job.state = QUEUED
            self._resubmit.append(job)
            self.stats["resubmitted"] += 1
            self._log("warning", f"job {job.job_id} ({len(job.keys)} tasks): {reason}; "
                                 f"resubmitting{how} (attempt {job.attempt + 1})")
            return []
        job.reported = True
        job.state = FAILED
        self.stats["gave_up"] += 1
        self._log("error", f"job {job.job_id} gave up after {job.attempt + 1} attempts: "
                           f"{reason}")
        if job.orphan:
            self._orphan_gone(job)
            return []
        return [BatchFailed(b.batch_id, f"remote job failed: {reason}", lost=True,
                            worker=self.target.label) for b in job.batches]

    def _fetch(self, jobs: list[Job]) -> list[Update]:
        """Download the result files of finished jobs as one tar; answer their batches."""
        import tarfile

        from executors.worker import job_results_with_cpu

        q = shlex.quote(self.scan_dir)
        names = " ".join(shlex.quote(j.output) for j in jobs)
        cmd = (f"cd {q} && for f in {names}; do if [ -f \"$f\" ]; then printf '%s\\n' \"$f\"; "
               f"fi; done | tar cf - -T -")
        res = self.conn.run(cmd, self.settings.command_timeout)
        files: dict[str, bytes] = {}
        if res.code == 0 and res.out:
            try:
                with tarfile.open(fileobj=io.BytesIO(res.out), mode="r:") as tar:
                    for member in tar.getmembers():
                        fh = tar.extractfile(member) if member.isfile() else None
                        if fh is not None:
                            files[member.name] = fh.read()
            except tarfile.TarError as exc:
                self._log("warning", f"result archive unreadable ({exc}); refetching")
                return []  # the jobs stay DONE and are fetched again at the next poll
        out: list[Update] = []
        for job in jobs:
            data = files.get(job.output)
            why = ""
            if data is None:
                why = "finished without its output file"
            else:
                try:
                    parsed = job_results_with_cpu(data)
                except (ValueError, KeyError, OSError) as exc:
                    why = f"unreadable output ({exc})"
            if why:  # a failure of the job: its stderr says why
                tail, saved = self._save_stderr(job, FAILED)
                self._note(job, FAILED, why + self._stderr_text(tail, ""), saved)
                out.extend(self._retry(job, why + self._stderr_text(tail, saved)))
                continue
            out.extend(self._answer(job, parsed))
        return out

    def _answer(self, job: Job, parsed: list[tuple[int, int, np.ndarray | None, str, float]]
                ) -> list[Update]:
        if job.orphan:
            return self._orphan_done(job, [p[:4] for p in parsed])
        by_id = {bid: (rows, err, cpu) for bid, _n, rows, err, cpu in parsed}
        out: list[Update] = []
        for batch in job.batches:
            rows, error, cpu = by_id.get(batch.batch_id,
                                         (None, "batch missing from the output", float("nan")))
            if rows is not None and not _rows_match(rows, batch):
                rows, error = None, "result rows do not match the batch"
            if rows is None:
                out.append(BatchFailed(batch.batch_id, error, lost=False,
                                       worker=self.target.label))
            else:
                out.append(BatchDone(batch.batch_id, rows, f"{self.target.label} "
                                                           f"job {job.job_id}", cpu))
        job.reported = True
        return out

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


def _rows_match(rows: np.ndarray, batch: TaskBatch) -> bool:
    import numpy as np

    return (len(rows) == len(batch) and np.array_equal(rows["ipix"], batch.ipix)
            and np.array_equal(rows["nside"], batch.nside)
            and np.array_equal(rows["variation"], batch.variation))
