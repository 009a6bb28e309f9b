"""The scheduler backend API of the remote executors, and what HTCondor and Slurm share.

A backend turns job files into scheduler jobs and scheduler output back into job states; the
batch executor (:mod:`executors.remote.batch`) does everything else. Interface::

    check()                       the scheduler's commands exist on the remote (RemoteError if not)
    submit(sub: Submission) -> str | None
                                  submit all jobs of ``sub`` at once (idempotent per
                                  ``sub.id``); returns a label for messages ("cluster 12")
    poll() -> list[JobStatus]     current state of the jobs it knows (any order, repeats are fine)
    remove(jobs: list[JobRef])    cancel those jobs (best effort, idempotent)
    release(jobs)                 let held jobs run again (schedulers without holds: no-op)
    hold_action(status, n) -> HoldAction                policy for a held job (release, wait,
                                                        fail, resubmit, grow a request)
    grow(resource, factor) -> (old, new) | None         a request scaled up (within its cap)
    stderr_file(job) -> str | None                     a job attempt's stderr (for OUTDIR/logs)
    probe(reco, timeout) -> ProbeResult | None          a probe job on an execute node (HTCondor)
    state() -> dict / attach(dict)                      JSON state for resume

A job moves through ``queued -> running -> done | failed | lost | held``; ``done`` means the
scheduler says the job ended with exit code 0, after which the executor fetches its result
file. ``JobRef(job_id, attempt)`` names one attempt; statuses of older attempts are ignored.

Shared here: running commands in the scan folder, the check for the scheduler's commands,
the idempotent submission (a marker file, else the tag already in the queue, else submit),
the default hold policy (release while allowed, else resubmit) and, in :class:`GroupedBackend`, the
bookkeeping of jobs submitted as one group (an HTCondor cluster, a Slurm array), plus the
options whose one name covers what each scheduler calls its own (``cpus``, ``memory``,
``extra_directives``, ``max_releases``). Every value put into a command line is quoted.
"""

from __future__ import annotations

import re
import shlex
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from executors.remote.environment import EnvSpec, Launch, ProbeResult
from executors.remote.ssh import RemoteError, RunResult
from skyscan_tui.options import Option, text

if TYPE_CHECKING:
    from executors.remote.config import RemoteSettings
    from executors.remote.ssh import RemoteConnection

__all__ = ["JobRef", "JobSpec", "Submission", "JobStatus", "HoldAction", "SchedulerBackend",
           "GroupedBackend", "Group", "Member", "job_stems", "QUEUED", "RUNNING", "DONE",
           "FAILED", "HELD", "LOST", "CPUS", "MEMORY", "EXTRA_DIRECTIVES", "MAX_RELEASES",
           "RELEASE", "WAIT", "FAIL", "RESUBMIT", "GROW"]


@dataclass(frozen=True)
class JobRef:
    """One attempt (``attempt``, from 0) of the job ``job_id``."""

    job_id: int
    attempt: int


@dataclass(frozen=True)
class JobSpec:
    """One job to submit. Paths are relative to the scan folder (the submit cwd)."""

    job_id: int
    attempt: int
    input: str  # e.g. "jobs/job_000012.npz"
    output: str  # e.g. "results/result_000012.npz"
    # requests scaled up after the job ran out of them, e.g. (("memory", 2),): twice the
    # profile's request (capped by the backend)
    scale: tuple[tuple[str, int], ...] = ()

    @property
    def ref(self) -> JobRef:
        """The job's current attempt."""
        return JobRef(self.job_id, self.attempt)


@dataclass(frozen=True)
class Submission:
    """Jobs submitted together (one ``condor_submit`` / ``sbatch --array``)."""

    id: str  # unique within the scan, e.g. "s0003"
    tag: str  # unique across scans, e.g. "skyscan-<scan>-s0003" (batch name)
    jobs: tuple[JobSpec, ...]
    scan_dir: str  # absolute remote path of the scan folder
    context: str = "context.json"
    script: str = "run_job.sh"


QUEUED, RUNNING, DONE, FAILED, HELD, LOST = "queued", "running", "done", "failed", "held", "lost"


@dataclass(frozen=True)
class JobStatus:
    """What the scheduler says about one job attempt (``detail``: its words, for users)."""

    ref: JobRef
    state: str  # QUEUED | RUNNING | DONE | FAILED | HELD | LOST
    detail: str = ""
    code: int | None = None  # hold reason code or exit code
    subcode: int | None = None  # hold reason subcode (HTCondor)


#: what to do with a held job (:meth:`SchedulerBackend.hold_action`)
RELEASE, WAIT, FAIL, RESUBMIT, GROW = "release", "wait", "fail", "resubmit", "grow"


@dataclass(frozen=True)
class HoldAction:
    """The policy's answer for one hold.

    ``release``: let it run again; ``wait``: leave it held (someone else holds it) and wait
    for its release; ``fail``: the job itself failed (a crash), a failure of the job;
    ``resubmit``: remove it and submit it again unchanged; ``grow``: remove it and submit it
    again with ``resource`` ("memory", "disk") doubled, up to the profile's cap.
    """

    action: str
    cause: str = ""  # the hold's cause in a few words, for messages ("out of memory")
    resource: str = ""  # GROW: the request that ran out


_JOB_FILE = re.compile(r"^jobs/job_(\w+)\.npz$")
_RESULT_FILE = re.compile(r"^results/result_(\w+)\.npz$")


def job_stems(sub: Submission) -> list[str]:
    """The ``J`` of each job's ``jobs/job_J.npz``, in order.

    ValueError for an empty submission or for names the executor does not write (they go into
    scheduler files)."""
    if not sub.jobs:
        raise ValueError("empty submission")
    stems = []
    for job in sub.jobs:
        m_in, m_out = _JOB_FILE.match(job.input), _RESULT_FILE.match(job.output)
        if not (m_in and m_out and m_in.group(1) == m_out.group(1)):
            raise ValueError(f"unexpected job file names {job.input!r}, {job.output!r}")
        stems.append(m_in.group(1))
    return stems


class SchedulerBackend(ABC):
    """A batch system reached through a :class:`RemoteConnection` (see the module docstring)."""

    name: ClassVar[str]
    #: the scheduler as users know it, e.g. "HTCondor" (messages)
    label: ClassVar[str] = "scheduler"
    #: commands that must be on the PATH of a non-interactive ssh session
    commands: ClassVar[tuple[str, ...]] = ()
    #: the machine users log in to, e.g. "submit node" (messages)
    login_node: ClassVar[str] = "login node"
    # how to ask this scheduler why a job does not start (shown with the idle-job warning)
    why_pending_hint: ClassVar[str] = "condor_q -better-analyze"
    #: releases of a held job before it is resubmitted (the backend's option)
    max_releases: int = 0
    #: where jobs find Python (:mod:`executors.remote.environment`); Slurm: shared, no probe
    env: EnvSpec = EnvSpec()
    #: how run_job.sh starts the worker (set by the executor on connect)
    launch: Launch | None = None

    def set_launch(self, launch: Launch) -> None:
        """Use ``launch`` (how jobs start the worker) in the run scripts from now on."""
        self.launch = launch

    def probe(self, reco: str, timeout: float) -> ProbeResult | None:
        """Run one probe job (``run_job.sh --check RECO``) and wait up to ``timeout`` [s].

        It runs on an execute node; None when this scheduler has no probe job."""
        return None

    def bind(self, conn: RemoteConnection, scan_dir: str, settings: RemoteSettings) -> None:
        """Use ``conn`` and the remote scan folder ``scan_dir`` from now on."""
        self.conn, self.scan_dir, self.settings = conn, scan_dir, settings

    def check(self) -> None:
        """RemoteError naming the scheduler commands missing on the remote PATH."""
        probe = " ".join(shlex.quote(c) for c in self.commands)
        res = self._run(f"for c in {probe}; do command -v \"$c\" >/dev/null || echo \"$c\"; "
                        "done")
        missing = res.text.split()
        if res.code != 0 or missing:
            raise RemoteError(
                f"{self.label} command(s) {', '.join(missing) or '?'} not found on "
                f"{self.conn.target.label} (PATH of a non-interactive ssh session); is this a "
                f"{self.login_node}? Add them to PATH in ~/.bashrc or ~/.ssh/environment")

    @abstractmethod
    def submit(self, sub: Submission) -> str | None:
        """Submit all jobs of ``sub`` at once (idempotent per ``sub.id``).

        Returns
        -------
        str or None
            A label for messages, e.g. ``"cluster 12"``."""

    @abstractmethod
    def poll(self) -> list[JobStatus]:
        """The current state of the jobs this backend knows (any order; repeats are fine)."""

    @abstractmethod
    def remove(self, jobs: Sequence[JobRef]) -> None:
        """Cancel the job attempts ``jobs`` (best effort, idempotent)."""

    def remove_all(self) -> None:
        """Remove every job this backend submitted for the scan (cancel)."""
        self.remove(self.active())

    def active(self) -> list[JobRef]:
        """The job attempts submitted and not yet finished (default: none known)."""
        return []

    def release(self, jobs: Sequence[JobRef]) -> None:
        """Let the held jobs ``jobs`` run again (default: no holds, nothing to do)."""
        return None

    def releasable(self, status: JobStatus) -> bool:
        """Whether a hold of this kind may go away by itself (then the job is released)."""
        return False

    def hold_action(self, status: JobStatus, releases: int) -> HoldAction:
        """What to do with a held job: release it, or remove it and resubmit.

        Release it while its hold is releasable and releases are left; else remove it and
        resubmit."""
        if releases < self.max_releases and self.releasable(status):
            return HoldAction(RELEASE)
        return HoldAction(RESUBMIT)

    def grow(self, resource: str, factor: int) -> tuple[str, str] | None:
        """(request now, request at ``factor`` x the profile's) of ``resource``, capped.

        None when it cannot grow (at its cap, or not a plain size). Default: never."""
        return None

    @property
    def extra_directives(self) -> tuple[str, ...]:
        """The profile's extra scheduler lines (submit-file or ``#SBATCH`` lines)."""
        return ()

    def stderr_file(self, job: JobRef) -> str | None:
        """The stderr file of attempt ``job``, relative to the scan folder (None: unknown).

        The executor fetches it into ``OUTDIR/logs/`` when the job fails or is held."""
        return None

    def state(self) -> dict[str, Any]:
        """What the backend must keep to re-attach after a resume (JSON-ready)."""
        return {}

    def attach(self, state: dict[str, Any]) -> None:
        """Take back the ``state`` saved by :meth:`state` (resume)."""
        return None

    # ---------------------------------------------------------------- shared helpers
    def _run(self, cmd: str, *, check: bool = False, stdin: bytes | None = None) -> RunResult:
        """``cmd`` (arguments quoted by the caller) run in the scan folder."""
        return self.conn.run(f"cd {shlex.quote(self.scan_dir)} && {cmd}",
                             self.settings.command_timeout, check=check, stdin=stdin)

    def _run_quiet(self, command: str, ids: Sequence[str]) -> None:
        """``command IDS...``, output and failure ignored (best-effort control commands)."""
        if ids:
            self._run(f"{command} {' '.join(shlex.quote(i) for i in ids)} >/dev/null 2>&1; "
                      "true")

    def _submit_once(self, sub: Submission, *, prepare: str, lookup: str, found: str,
                     submit: str, stdin: bytes | None = None) -> str:
        """Submit ``sub`` at most once, whatever was lost with the link; its output.

        Runs ``prepare``, then prints the marker file ``subs/<S>/submit.done`` if there is
        one, else (the reply was lost with the link) records ``found`` if ``lookup`` (a
        queue query printing ``$x``) finds the tag in the queue, else runs ``submit`` and
        keeps its output as the marker. RemoteError with the scheduler's message on failure.
        """
        d = shlex.quote(f"subs/{sub.id}")
        done, tmp, err = f"{d}/submit.done", f"{d}/submit.tmp", f"{d}/submit.err"
        res = self._run(f"{prepare} && if [ -s {done} ]; then cat {done}; else "
                        f"x=$({lookup} 2>/dev/null | head -n 1); "
                        f"if [ -n \"$x\" ]; then echo {found} > {done}; cat {done}; "
                        f"elif {submit} > {tmp} 2> {err}; then mv {tmp} {done} && cat {done}; "
                        f"else cat {err} >&2; exit 1; fi; fi", stdin=stdin)
        if res.code != 0:
            raise RemoteError(f"{submit.split()[0]} failed on {self.conn.target.label}: "
                              f"{res.err_line()}")
        return res.text

    #: line between a query's output and what follows it (see :meth:`_query_then`)
    query_mark: ClassVar[str] = "==skyscan-query-rc=="

    def _query_then(self, query: str, then: str) -> tuple[bytes | None, bytes, RunResult]:
        """Run ``query`` and then ``then`` in one command.

        Returns the query's output (None if it failed), the output of ``then`` and the whole
        result. The order matters: what ``then`` reads (logs, markers) is at least as new as the
        queue."""
        res = self._run(f"{query}; echo \"{self.query_mark} $?\"; {then}")
        head, _, rest = res.out.partition(f"{self.query_mark} ".encode())
        rc, _, rest = rest.partition(b"\n")
        return (head if rc.strip() == b"0" else None), rest, res


@dataclass
class Group:
    """One submission as the scheduler knows it: an HTCondor cluster, a Slurm array.

    Job ``refs[i]`` has the scheduler index ``first + i`` (proc / array task id).
    """

    sub_id: str
    tag: str
    id: int
    refs: list[JobRef] = field(default_factory=list)
    first: int = 0
    log_offset: int = 0  # bytes of the group's event log already read (HTCondor)

    @property
    def indices(self) -> range:
        """The scheduler indices of the group's jobs (proc or array task ids)."""
        return range(self.first, self.first + len(self.refs))


@dataclass
class Member:
    """What a backend knows of one job of a group."""

    ref: JobRef
    state: str = QUEUED
    detail: str = ""
    code: int | None = None
    terminal: bool = False  # ended, or given up by us: never looked at again
    removed: bool = False  # we removed it from the queue
    missing: int = 0  # consecutive queue checks without it


class GroupedBackend(SchedulerBackend):
    """A backend whose jobs are submitted in groups; members keyed ``(group id, index)``.

    Subclasses name their control commands and how a member is addressed.
    """

    cancel_command: ClassVar[str]  # e.g. "condor_rm"
    release_command: ClassVar[str]  # e.g. "condor_release"

    def __init__(self) -> None:
        self.groups: dict[int, Group] = {}
        self.members: dict[tuple[int, int], Member] = {}

    @abstractmethod
    def member_id(self, key: tuple[int, int]) -> str:
        """How the scheduler's commands name member ``key``, e.g. "12.3" or "12_3"."""

    def _add(self, group: Group, member: type[Member] = Member, **kw: Any) -> None:
        self.groups[group.id] = group
        for index, ref in zip(group.indices, group.refs, strict=True):
            self.members[(group.id, index)] = member(ref, **kw)

    def _live(self) -> list[Group]:
        return [g for g in self.groups.values()
                if any(not self.members[(g.id, i)].terminal for i in g.indices)]

    def _keys(self, refs: Sequence[JobRef]) -> list[tuple[int, int]]:
        wanted = set(refs)
        return [k for k, m in self.members.items() if m.ref in wanted and not m.terminal]

    def active(self) -> list[JobRef]:
        """The job attempts of every group that have not ended."""
        return [m.ref for m in self.members.values() if not m.terminal]

    def remove(self, jobs: Sequence[JobRef]) -> None:
        """Cancel ``jobs``, one scheduler command per group (best effort)."""
        keys = self._keys(jobs)
        for k in keys:
            self.members[k].removed = self.members[k].terminal = True
        self._run_quiet(self.cancel_command, [self.member_id(k) for k in keys])

    def release(self, jobs: Sequence[JobRef]) -> None:
        """Release the held ``jobs`` (errors are only logged)."""
        self._run_quiet(self.release_command, [self.member_id(k) for k in self._keys(jobs)])

    def remove_all(self) -> None:
        """Remove every job of the scan: whole live groups, plus :meth:`_sweep_commands`."""
        live = [str(g.id) for g in self._live()]
        for m in self.members.values():
            if not m.terminal:
                m.removed = m.terminal = True
        cmds = [f"{self.cancel_command} {' '.join(live)} >/dev/null 2>&1"] if live else []
        cmds += self._sweep_commands()
        if cmds:
            self._run("; ".join(cmds) + "; true")

    def _sweep_commands(self) -> list[str]:
        """Extra commands for :meth:`remove_all` (e.g. by a scan attribute)."""
        return []

    def _group_state(self, g: Group) -> dict[str, Any]:
        return {"sub": g.sub_id, "tag": g.tag,
                "terminal": [i for i in g.indices if self.members[(g.id, i)].terminal]}


# options of the scheduler backends: one name per concept, whatever the scheduler calls it
CPUS = Option("cpus", int, 1, "CPUs per job", min=1,
              flags=("--cpus", "--request-cpus", "--cpus-per-task"),
              aliases=("request_cpus", "cpus_per_task"), metavar="N")
MEMORY = Option("memory", text, None, "memory per job: MB if a bare number, else with a unit "
                "(HTCondor: 2GB, Slurm: 2G)", flags=("--memory", "--request-memory"),
                aliases=("request_memory",), metavar="SIZE")
EXTRA_DIRECTIVES = Option(
    "extra_directives", str, (), "extra scheduler directive (repeatable): a submit-file line "
    "(HTCondor) or an #SBATCH option such as --qos=short (Slurm)",
    flags=("--extra-directive", "--submit-line", "--sbatch-line"),
    aliases=("extra_submit_lines", "extra_sbatch_lines"), metavar="LINE", multiple=True,
    extend=True)
MAX_RELEASES = Option("max_releases", int, 1, "releases of a held job before it is "
                      "resubmitted", min=0, flags=())
