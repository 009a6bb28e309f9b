"""Job states of the remote batch executor: polls, holds, failures, retries and results.

:class:`JobStates` is the half of :class:`~executors.remote.batch.RemoteBatchExecutor` that
turns the backend's job states into engine updates: it handles holds by their cause
(release, wait, fail, resubmit with a raised request), retries failed, vanished and stuck
jobs (``max_retries`` each, then ``BatchFailed(lost=True)``), fetches the result files of
finished jobs as one tar per poll, saves the stderr of failed and held jobs into
``OUTDIR/logs/`` and keeps the counters and recent events that
:meth:`~executors.remote.batch.RemoteBatchExecutor.status` lists. It works on the
executor's attributes (``conn``, ``backend``, ``settings``, ``_jobs``, ``_holds``,
``stats``, ...), which :class:`~executors.remote.batch.RemoteBatchExecutor` sets.
"""

from __future__ import annotations

import io
import logging
import shlex
import time
from typing import TYPE_CHECKING

from executors.base import BatchDone, BatchFailed, Update
from executors.remote.resume import Job
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
)
from executors.remote.ssh import RemoteError

if TYPE_CHECKING:
    import numpy as np

    from skyscan_tui.tasks import TaskBatch

__all__ = ["JobStates", "MAX_STDERR_BYTES"]

log = logging.getLogger("executors.remote.batch")  # the executor's logger, as before the split

#: at most this much of a failed or held job's stderr is fetched (its end) [bytes]
MAX_STDERR_BYTES = 1024 * 1024


class JobStates:
    """The job-state half of :class:`~executors.remote.batch.RemoteBatchExecutor` (a mixin)."""

    def _note(self, job: Job, kind: str, reason: str, log_file: str, action: str = "",
              cause: str = "") -> None:
        """Count a failure or hold and keep it for the executor's ``status()``.

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
        if path is None:  # the backend cannot say where it is
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


def _rows_match(rows: np.ndarray, batch: TaskBatch) -> bool:
    import numpy as np

    return (len(rows) == len(batch) and np.array_equal(rows["ipix"], batch.ipix)
            and np.array_equal(rows["nside"], batch.nside)
            and np.array_equal(rows["variation"], batch.variation))
