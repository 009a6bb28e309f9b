"""Resume of the remote executors: the state they keep and re-attaching to earlier jobs.

The executor writes its state (scan folder, jobs and the task keys they hold, backend state)
to a local JSON file after every change. Where: ``set_state_dir(path, resume)`` (the
engine's checkpoint hook, ``path/remote-state.json``) or ``bind_output(outdir)`` (the CLI,
``OUTDIR/.skyscan-remote-state.json``), or hand it over with ``state()`` /
``attach(state)``. A new executor with the same scan context (event digest, reco, options)
re-attaches in ``start()`` if the remote scan folder still exists: jobs still queued or
running are followed again (their event-log offsets are restored), and a batch the engine
submits whose tasks are all covered by such jobs (*orphans*), or by their result files
already on the remote, is answered from them instead of being submitted again. Tasks are
matched by content (:func:`task_keys`: pixel, variation, direction, seed), so the resumed
engine may batch them differently. The state holds ids, paths and task hashes, nothing
secret.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from executors.base import BatchDone, ScanContext, Update
from executors.remote.scheduler import DONE, FAILED, HELD, QUEUED, JobRef, JobSpec, Submission

if TYPE_CHECKING:
    import numpy as np

    from skyscan_tui.tasks import TaskBatch

__all__ = ["Job", "Resumable", "task_keys", "context_digest"]

log = logging.getLogger(__name__)


def task_keys(batch: TaskBatch) -> list[str]:
    """Content hash of each task (pixel, variation, direction, seed): equal keys = same fit."""
    import numpy as np

    rows = np.empty(len(batch), dtype=[("n", "<i4"), ("i", "<i8"), ("v", "<i4"),
                                       ("z", "<f8"), ("a", "<f8"), ("s", "<f8", (4,))])
    rows["n"], rows["i"], rows["v"] = batch.nside, batch.ipix, batch.variation
    rows["z"], rows["a"], rows["s"] = batch.zenith, batch.azimuth, batch.seed
    return [hashlib.blake2b(r.tobytes(), digest_size=8).hexdigest() for r in rows]


def context_digest(context: ScanContext) -> str:
    """Digest of what a scan fits (event, reco and its options), to match saved state."""
    from skyscan_tui.events import event_digest

    blob = json.dumps([event_digest(context.event), context.reco_name,
                       sorted((k, str(v)) for k, v in context.reco_options.items())])
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


# --------------------------------------------------------------------------- jobs
@dataclass
class Job:
    """One job file of the scan and where it stands (also what the resume state keeps)."""

    job_id: int
    batches: list[TaskBatch]  # empty for jobs re-attached from a saved state
    keys: list[str]  # task keys, in file order
    attempt: int = 0
    state: str = QUEUED
    since: float = field(default_factory=time.monotonic)  # entered the current state
    releases: int = 0
    round: int = 0
    reported: bool = False  # its batches were answered
    orphan: bool = False  # re-attached: no engine batch of ours waits on it directly
    scale: dict[str, int] = field(default_factory=dict)  # requests raised, e.g. memory: 2
    grows: int = 0  # resubmissions that raised a request (not counted as failures)

    @property
    def spec(self) -> JobSpec:
        return JobSpec(self.job_id, self.attempt, self.input, self.output,
                       tuple(sorted(self.scale.items())))

    @property
    def ref(self) -> JobRef:
        """The job's current attempt."""
        return JobRef(self.job_id, self.attempt)

    @property
    def input(self) -> str:
        """The job's input file, relative to the scan folder."""
        return f"jobs/job_{self.job_id:06d}.npz"

    @property
    def output(self) -> str:
        """The job's result file, relative to the scan folder."""
        return f"results/result_{self.job_id:06d}.npz"


class Resumable:
    """The resume half of :class:`~executors.remote.batch.RemoteBatchExecutor`.

    See the module docstring; it works on the executor's jobs, counters and backend."""

    def _init_resume(self) -> None:
        self._state_paths: list[Path] = []  # where the resume state is kept (bind/hook)
        self._saved: dict[str, Any] | None = None  # state to re-attach to (from attach())
        self._adopted: dict[tuple[int, int], tuple[TaskBatch, list[str]]] = {}
        self._cache: dict[str, np.void] = {}  # task key -> result row of an orphan job
        self._orphan_keys: dict[str, int] = {}  # task key -> orphan job id still running

    def bind_output(self, outdir: Path) -> None:
        """Keep the resume state in ``outdir`` (re-attach if it holds one for this scan)."""
        path = Path(outdir) / ".skyscan-remote-state.json"
        self._state_paths.append(path)
        if path.is_file() and self._saved is None:
            try:
                self._saved = json.loads(path.read_text())
            except (OSError, ValueError):
                self._saved = None  # unreadable: start afresh

    def set_state_dir(self, path: Path, resume: bool = False) -> None:
        """Engine hook (checkpointed scans): keep the resume state in ``path``.

        With ``resume`` the state found there is re-attached to (same scan context only).
        """
        state_path = Path(path) / "remote-state.json"
        if resume and state_path.is_file():
            try:
                self._saved = json.loads(state_path.read_text())
            except (OSError, ValueError):
                pass  # unreadable: start afresh (a state from bind_output may still apply)
        self._state_paths.append(state_path)

    def attach(self, state: dict[str, Any]) -> None:
        """Re-attach to a scan described by ``state()`` of an earlier executor (before start)."""
        self._saved = dict(state)

    def state(self) -> dict[str, Any]:
        """JSON-serialisable resume state (jobs, task keys, backend state)."""
        return {
            "version": 1, "executor": self.name, "host": self.target.label,
            "scan_dir": self.scan_dir, "scan_id": self.scan_id, "digest": self._digest,
            "next_job": self._next_job, "next_sub": self._next_sub,
            "pending_sub": None if self._retry_sub is None else {
                "id": self._retry_sub.id, "tag": self._retry_sub.tag,
                "jobs": [[j.job_id, j.attempt, j.input, j.output, dict(j.scale)]
                         for j in self._retry_sub.jobs]},
            "jobs": {str(j.job_id): {"attempt": j.attempt, "keys": j.keys, "round": j.round,
                                     "state": j.state,
                                     **({"scale": j.scale, "grows": j.grows} if j.scale else {})}
                     for j in self._jobs.values()},
            "backend": self.backend.state(),
            # current holds (a job waiting for an administrator's release stays listed)
            **({"holds": {str(k): v for k, v in self._holds.items()}} if self._holds else {}),
        }

    def _save_state(self) -> None:
        state = self.state()
        if self._state_paths:
            from skyscan_tui.fileio import atomic_write_text

            text = json.dumps(state)
            for path in self._state_paths:
                try:
                    atomic_write_text(path, text)
                except OSError as exc:
                    log.warning("cannot write %s: %s", path, exc)

    def _reattach(self, saved: dict[str, Any]) -> None:
        """Adopt the jobs of an earlier run of this scan as orphans (see module docstring)."""
        self._next_job = int(saved.get("next_job", 0))
        self._next_sub = int(saved.get("next_sub", 0))
        self.backend.attach(saved.get("backend", {}))
        now = time.monotonic()
        known = set(self.backend.active())
        for jid, info in saved.get("jobs", {}).items():
            job = Job(int(jid), [], list(info["keys"]), attempt=int(info["attempt"]),
                       round=int(info.get("round", 0)), orphan=True, since=now,
                       scale={str(k): int(v) for k, v in info.get("scale", {}).items()},
                       grows=int(info.get("grows", 0)))
            job.state = info.get("state", QUEUED)
            if job.state == FAILED:
                continue  # given up before: its batches were reported failed
            self._jobs[job.job_id] = job
            for k in job.keys:
                self._orphan_keys[k] = job.job_id
            if job.state != DONE and job.ref not in known:
                self._resubmit.append(job)  # was waiting for a resubmission when we stopped
        for jid, hold in (saved.get("holds") or {}).items():
            job = self._jobs.get(int(jid))
            if job is not None and job.state == HELD and isinstance(hold, dict):
                self._holds[job.job_id] = hold
        pending = saved.get("pending_sub")
        if isinstance(pending, dict):  # submitted or not when we stopped: submit it again
            specs = tuple(JobSpec(int(j[0]), int(j[1]), str(j[2]), str(j[3]),
                                  tuple(sorted((str(k), int(v)) for k, v in
                                               (j[4] if len(j) > 4 else {}).items())))
                          for j in pending["jobs"])
            ids = {spec.job_id for spec in specs}
            self._resubmit = [j for j in self._resubmit if j.job_id not in ids]
            self._retry_sub = Submission(str(pending["id"]), str(pending["tag"]), specs,
                                         self.scan_dir)
            self._retry_at = 0.0
        self._log("info", f"re-attached to {len(self._jobs)} job(s) of scan {self.scan_id} "
                          f"in {self.scan_dir}")

    def _adopt(self, batch: TaskBatch) -> bool:
        """Answer ``batch`` from orphan jobs if they hold all of its tasks."""
        if not self._orphan_keys and not self._cache:
            return False
        keys = task_keys(batch)
        if not all(k in self._cache or k in self._orphan_keys for k in keys):
            return False
        self._adopted[(batch.round, batch.batch_id)] = (batch, keys)
        self.stats["adopted_batches"] += 1
        return True

    def _orphan_done(self, job: Job, parsed: list[tuple[int, int, np.ndarray | None, str]]
                     ) -> list[Update]:
        job.reported = True
        offset = 0
        for _bid, n, rows, _err in parsed:
            if rows is not None and len(rows) == n and offset + n <= len(job.keys):
                for k, row in zip(job.keys[offset:offset + n], rows, strict=True):
                    self._cache[k] = row
            offset += n
        self._orphan_gone(job)
        return []

    def _orphan_gone(self, job: Job) -> None:
        for k in job.keys:
            if self._orphan_keys.get(k) == job.job_id:
                del self._orphan_keys[k]

    def _answer_adopted(self) -> list[Update]:
        import numpy as np

        from skyscan_tui.tasks import RESULT_DTYPE

        out: list[Update] = []
        for key, (batch, keys) in list(self._adopted.items()):
            if all(k in self._cache for k in keys):
                rows = np.array([self._cache[k] for k in keys], dtype=RESULT_DTYPE)
                out.append(BatchDone(batch.batch_id, rows, f"{self.target.label} (re-attached)"))
                del self._adopted[key]
            elif not all(k in self._cache or k in self._orphan_keys for k in keys):
                del self._adopted[key]  # its orphan job failed for good: run it afresh
                self._pending.append(batch)
        return out
