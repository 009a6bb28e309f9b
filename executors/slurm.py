"""Slurm over SSH: ``--executor slurm``.

The generic part (SSH, job files, result files, retries, resume) is
:class:`executors.remote.RemoteBatchExecutor`; this module is the Slurm
:class:`~executors.remote.scheduler.SchedulerBackend` (its files are read and written by the
pure functions of :mod:`executors.slurm_format`):

* one ``sbatch --parsable`` per submission: a **job array**, one element per job file, from a
  batch script from :func:`~executors.slurm_format.render_batch_script`. Submission is
  idempotent (a marker file holds the array id, and a retry first looks for the job name in
  ``squeue``), so a reply lost with the link never submits twice;
* states from ``squeue -h -r -t all -j IDS -o '%i|%T|%r'`` (one row per element, finished
  ones included while Slurm keeps them, ``MinJobAge``) plus the job's own marker file
  ``subs/<S>/rc_<index>`` (exit code, written by the batch script after the worker). Never
  ``sacct``: many sites rate-limit it or run without accounting;
* ``PREEMPTED``, ``NODE_FAIL``, ``REQUEUED`` are not terminal: the element normally comes
  back as ``PENDING`` (the script asks for ``--requeue``). Only if it stays in such a state
  for :attr:`SlurmOptions.settle` seconds is it counted lost and resubmitted. A requeued
  element reruns the same job file into the same result name (atomic rename), and the
  executor answers each job once, so a requeue never yields a duplicate result;
* an element that left ``squeue`` (a cancelled pending element simply disappears; finished
  ones are purged after ``MinJobAge``) is judged by its marker: exit 0 means done (the
  result file is fetched; a missing one is a failure), another code a failure, no marker
  after two checks means lost;
* held elements (``JobHeldUser``, ``REQUEUE_HOLD``, ...) are released up to
  ``max_releases`` times, admin holds and further holds are resubmitted;
* ``scancel`` for cancel and for elements replaced by a resubmission.
"""

from __future__ import annotations

import shlex
import time
from dataclasses import dataclass
from typing import Any, ClassVar

from executors.remote.batch import RemoteBatchExecutor
from executors.remote.config import REMOTE_OPTIONS, RemoteSettings
from executors.remote.scheduler import (
    CPUS,
    DONE,
    EXTRA_DIRECTIVES,
    FAILED,
    LOST,
    MAX_RELEASES,
    MEMORY,
    QUEUED,
    Group,
    GroupedBackend,
    JobRef,
    JobStatus,
    Member,
    Submission,
)
from executors.remote.ssh import RemoteError
from executors.slurm_format import (
    LIMBO_STATES,
    SlurmOptions,
    element_state,
    parse_markers,
    parse_sbatch_parsable,
    parse_squeue,
    render_batch_script,
)
from skyscan_tui.errors import UserError
from skyscan_tui.options import Option, text

__all__ = ["SlurmExecutor", "SlurmBackend", "SlurmOptions", "render_batch_script",
           "parse_sbatch_parsable", "parse_squeue", "element_state"]


@dataclass
class _Elem(Member):
    reported: tuple[str, str] | None = None  # last (state, detail) handed to the executor
    limbo_since: float | None = None  # entered PREEMPTED/NODE_FAIL at [monotonic s]


class SlurmBackend(GroupedBackend):
    """Job arrays (groups) of elements (members), keyed ``(array id, index)``."""

    name: ClassVar[str] = "slurm"
    label: ClassVar[str] = "Slurm"
    commands: ClassVar[tuple[str, ...]] = ("sbatch", "squeue", "scancel", "scontrol")
    login_node: ClassVar[str] = "Slurm login node"
    cancel_command: ClassVar[str] = "scancel"
    release_command: ClassVar[str] = "scontrol release"
    query_mark: ClassVar[str] = "==skyscan-squeue-rc=="
    why_pending_hint: ClassVar[str] = "squeue -j JOBID -o '%i %T %r'"
    MISSING_CHECKS: ClassVar[int] = 2  # squeue checks without an element before it is lost

    def __init__(self, opts: SlurmOptions | None = None) -> None:
        super().__init__()
        self.opts = opts or SlurmOptions()
        self.opts.validate()
        self.max_releases = self.opts.max_releases

    @property
    def arrays(self) -> dict[int, Group]:
        """The scan's Slurm job arrays by array job id (the groups under their own name)."""
        return self.groups

    def member_id(self, key: tuple[int, int]) -> str:
        return f"{key[0]}_{key[1]}"

    # ---------------------------------------------------------------- submit
    def submit(self, sub: Submission) -> None:
        scan_id = sub.tag.removeprefix("skyscan-").rsplit("-", 1)[0]
        script = render_batch_script(sub, self.opts, scan_id)
        d = shlex.quote(f"subs/{sub.id}")
        # one command: the script from stdin, then submit once
        out = self._submit_once(
            sub, prepare=f"mkdir -p {d} && cat > {d}/job.sbatch",
            lookup=f"squeue -h -t all -n {shlex.quote(sub.tag)} -o %F", found="\"$x\"",
            submit=f"sbatch --parsable {d}/job.sbatch", stdin=script.encode())
        try:
            array_id = parse_sbatch_parsable(out)
        except ValueError as exc:
            raise RemoteError(str(exc)) from None
        # the executor marks submitted jobs queued itself: report changes from there
        self._add(Group(sub.id, sub.tag, array_id, [job.ref for job in sub.jobs]), _Elem,
                  reported=(QUEUED, ""))

    # ---------------------------------------------------------------- poll
    def poll(self) -> list[JobStatus]:
        live = self._live()
        if not live:
            return []
        ids = ",".join(str(a.id) for a in live)
        markers = " ".join(shlex.quote(f"subs/{a.sub_id}") + "/rc_*" for a in live)
        # squeue first, then the markers: an element gone from the queue has written its
        # marker (if it ever will) by the time the marker is read
        qpart, mpart, res = self._query_then(
            f"squeue -h -r -t all -j {ids} -o '%i|%T|%r'",
            f"for f in {markers}; do [ -f \"$f\" ] && "
            f"printf '%s %s\\n' \"$f\" \"$(cat \"$f\")\"; done; true")
        queue: dict[tuple[int, int], tuple[str, str]] | None = None
        if qpart is not None:
            queue = parse_squeue(qpart.decode("utf-8", "replace"))
        elif "invalid job id" in res.err.decode("utf-8", "replace").lower():
            queue = {}  # every id purged from the controller (older than MinJobAge)
        marks = parse_markers(mpart.decode("utf-8", "replace"))
        now = time.monotonic()
        out: list[JobStatus] = []
        for a in live:
            for i in a.indices:
                e = self.members[(a.id, i)]
                if e.terminal:
                    continue
                self._update(e, a, i, queue, marks, now)
                key = (e.state, e.detail)
                if e.reported != key:
                    e.reported = key
                    out.append(JobStatus(e.ref, e.state, e.detail, e.code))
        return out

    def _update(self, e: _Elem, a: Group, i: int,
                queue: dict[tuple[int, int], tuple[str, str]] | None,
                marks: dict[tuple[str, int], tuple[int, int]], now: float) -> None:
        row = queue.get((a.id, i)) if queue is not None else None
        if row is not None:
            e.missing = 0
            state, detail, terminal = element_state(*row)
            if row[0] in LIMBO_STATES:
                e.limbo_since = e.limbo_since if e.limbo_since is not None else now
                if now - e.limbo_since > self.opts.settle:
                    state, detail, terminal = LOST, f"{row[0].lower()} and not requeued", True
            else:
                e.limbo_since = None
            mark = marks.get((a.sub_id, i))
            e.code = mark[0] if mark else None
            if state == FAILED and mark and mark[0] != 0:
                detail = f"{detail}, exit code {mark[0]}"
            e.state, e.detail, e.terminal = state, detail, terminal
            return
        if queue is None:
            return  # squeue did not answer: decide nothing on absence
        e.missing += 1
        mark = marks.get((a.sub_id, i))
        if mark is not None:
            # left the queue (purged after MinJobAge): its own marker tells how it ended
            e.code = mark[0]
            if mark[0] == 0:
                e.state, e.detail = DONE, "exited 0 (marker)"
            else:
                e.state, e.detail = FAILED, f"exit code {mark[0]} (marker)"
            e.terminal = True
        elif e.missing >= self.MISSING_CHECKS:
            e.state, e.detail, e.terminal = LOST, "left the queue without a result", True

    def releasable(self, status: JobStatus) -> bool:
        return "JobHeldAdmin" not in status.detail

    @property
    def extra_directives(self) -> tuple[str, ...]:
        """The profile's extra ``#SBATCH`` lines."""
        return tuple(self.opts.extra_sbatch_lines)

    def stderr_file(self, job: JobRef) -> str | None:
        for (array_id, index), m in self.members.items():
            if m.ref == job:
                return f"subs/{self.groups[array_id].sub_id}/task_{index}.err"
        return None

    # ---------------------------------------------------------------- resume
    def state(self) -> dict[str, Any]:
        return {"arrays": [{**self._group_state(a), "array_id": a.id,
                            "refs": [[r.job_id, r.attempt] for r in a.refs]}
                           for a in self.groups.values()]}

    def attach(self, state: dict[str, Any]) -> None:
        for a in state.get("arrays", []):
            group = Group(str(a["sub"]), str(a["tag"]), int(a["array_id"]),
                          [JobRef(int(j), int(t)) for j, t in a["refs"]])
            self._add(group, _Elem)
            for i in a.get("terminal", []):
                self.members[(group.id, int(i))].terminal = True


MAX_ARRAY_TASKS = 1000  # Slurm's default MaxArraySize is 1001 (indices 0..1000)


class SlurmExecutor(RemoteBatchExecutor):
    """Slurm job arrays submitted over SSH, one array per submission."""

    name: ClassVar[str] = "slurm"
    description: ClassVar[str] = "Slurm job arrays submitted over SSH (--profile NAME)"
    OPTIONS: ClassVar[tuple[Option, ...]] = REMOTE_OPTIONS + (
        Option("partition", text, None, "Slurm partition (sbatch --partition)",
               metavar="NAME"),
        Option("account", text, None, "Slurm account (sbatch --account)", metavar="NAME"),
        Option("walltime", text, None, "time limit per array task, e.g. 30 or 1:00:00 "
               "(sbatch --time)", flags=("--walltime", "--time-limit"),
               aliases=("time_limit",), metavar="TIME"),
        CPUS, MEMORY, EXTRA_DIRECTIVES, MAX_RELEASES)

    @classmethod
    def make_backend(cls, values: dict[str, Any], settings: RemoteSettings) -> SlurmBackend:
        opts = SlurmOptions(
            partition=values["partition"], account=values["account"],
            time_limit=values["walltime"], cpus_per_task=values["cpus"],
            memory=values["memory"], extra_sbatch_lines=values["extra_directives"],
            max_releases=values["max_releases"],
            settle=max(120.0, 3 * settings.poll_interval))
        opts.validate()
        if settings.jobs_in_flight > MAX_ARRAY_TASKS:
            # one submission holds up to about jobs_in_flight tasks, and Slurm's default
            # MaxArraySize (1001) caps an array's task index at 1000
            raise UserError(f"jobs_in_flight {settings.jobs_in_flight} is more than one Slurm "
                            f"job array may hold here ({MAX_ARRAY_TASKS}); use fewer, larger "
                            "jobs (pixels_per_job)")
        return SlurmBackend(opts)
