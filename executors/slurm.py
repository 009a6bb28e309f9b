"""Slurm over SSH: ``--executor slurm``.

The generic part (SSH, job files, result files, retries, resume) is
:class:`executors.remote.RemoteBatchExecutor`; this module is the Slurm
:class:`~executors.remote.SchedulerBackend`:

* one ``sbatch --parsable`` per submission: a **job array**, one element per job file, from a
  batch script rendered by the pure function :func:`render_batch_script`. Submission is
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

import re
import shlex
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from executors.remote import (
    CPUS,
    DONE,
    EXTRA_DIRECTIVES,
    FAILED,
    HELD,
    LOST,
    MAX_RELEASES,
    MEMORY,
    QUEUED,
    REMOTE_OPTIONS,
    RUNNING,
    JobRef,
    JobStatus,
    RemoteBatchExecutor,
    RemoteError,
    RemoteSettings,
    SchedulerBackend,
    Submission,
)
from skyscan_tui.errors import UserError
from skyscan_tui.options import Option, text

__all__ = ["SlurmExecutor", "SlurmBackend", "SlurmOptions", "render_batch_script",
           "parse_sbatch_parsable", "parse_squeue", "element_state"]

_JOB_NAME = re.compile(r"^jobs/job_(\w+)\.npz$")
_OUT_NAME = re.compile(r"^results/result_(\w+)\.npz$")
_SAFE_FILE = re.compile(r"^[\w.-]+$")
_PARTITION = re.compile(r"^[\w.-]+(,[\w.-]+)*$")
_ACCOUNT = re.compile(r"^[\w.-]+$")
# minutes | M:S | H:M:S | D-H | D-H:M | D-H:M:S, or UNLIMITED/INFINITE
_TIME = re.compile(r"^(\d+|\d+:\d{1,2}|\d+:\d{1,2}:\d{1,2}|\d+-\d+(:\d{1,2}){0,2}"
                   r"|UNLIMITED|INFINITE)$", re.IGNORECASE)
_MEMORY = re.compile(r"^\d+[KMGT]?$", re.IGNORECASE)
# options the script owns; an extra #SBATCH line must not override them
_OWNED = ("--array", "-a", "--output", "-o", "--error", "-e", "--chdir", "-D", "--job-name",
          "-J", "--wrap", "--parsable", "--open-mode")


@dataclass(frozen=True)
class SlurmOptions:
    """Batch-script settings (profile keys of the same name)."""

    partition: str | None = None
    account: str | None = None
    time_limit: str | None = None  # Slurm time format, e.g. "30", "1:00:00", "1-0"
    cpus_per_task: int = 1
    memory: str | None = None  # per task (one task per job): MB if bare, or with K/M/G/T
    extra_sbatch_lines: tuple[str, ...] = ()
    max_releases: int = 1  # releases of a held element before it is resubmitted
    settle: float = 120.0  # [s] in PREEMPTED/NODE_FAIL without a requeue -> lost

    def validate(self) -> None:
        """Raise UserError for values that would break the script or that sbatch rejects."""
        if self.partition is not None and not _PARTITION.match(self.partition):
            raise UserError(f"bad Slurm partition {self.partition!r}")
        if self.account is not None and not _ACCOUNT.match(self.account):
            raise UserError(f"bad Slurm account {self.account!r}")
        if self.time_limit is not None and not _TIME.match(self.time_limit):
            raise UserError(f"bad Slurm time limit {self.time_limit!r} (minutes, H:M:S or "
                            "D-H:M:S)")
        if self.memory is not None and not _MEMORY.match(self.memory):
            raise UserError(f"bad Slurm memory {self.memory!r} (e.g. 2000, 2G, 500M)")
        if self.cpus_per_task < 1:
            raise UserError("cpus_per_task must be at least 1")
        if self.max_releases < 0 or self.settle <= 0:
            raise UserError("max_releases must be >= 0 and settle > 0 [s]")
        for line in self.extra_sbatch_lines:
            _sbatch_line(line)


def _sbatch_line(text: str) -> str:
    """An extra ``#SBATCH`` line, with or without the prefix; checked, one line."""
    if "\n" in text or "\r" in text:
        raise UserError(f"extra #SBATCH line {text!r} spans lines")
    line = text.strip()
    if line.startswith("#SBATCH"):
        line = line[len("#SBATCH"):].strip()
    if not line.startswith("-"):
        raise UserError(f"extra #SBATCH line {text!r}: expected an sbatch option such as "
                        "--qos=normal")
    opt = line.split("=", 1)[0].split()[0]
    if opt in _OWNED:
        raise UserError(f"extra #SBATCH line {text!r}: {opt} is set by skyscan-tui")
    return f"#SBATCH {line}"


# --------------------------------------------------------------------------- batch script
def render_batch_script(sub: Submission, opts: SlurmOptions, scan_id: str) -> str:
    """The ``sbatch`` script of ``sub``: array element ``i`` runs ``sub.jobs[i]``.

    Paths are relative to the scan folder, where sbatch is run (and so every element's
    working directory): the remote folder name, which may hold spaces or quotes, never
    appears in the script. The script writes ``subs/<S>/rc_<i>`` (exit code, restart count)
    after the worker, atomically.
    """
    if not sub.jobs:
        raise ValueError("empty submission")
    opts.validate()
    names = []
    for job in sub.jobs:
        m_in, m_out = _JOB_NAME.match(job.input), _OUT_NAME.match(job.output)
        if not (m_in and m_out and m_in.group(1) == m_out.group(1)):
            raise ValueError(f"unexpected job file names {job.input!r}, {job.output!r}")
        names.append(m_in.group(1))
    for name in (sub.id, sub.script, sub.context):
        if not _SAFE_FILE.match(name):
            raise ValueError(f"unexpected file name {name!r}")
    if not re.match(r"^[\w.-]+$", sub.tag):
        raise ValueError(f"unexpected job name {sub.tag!r}")
    d = f"subs/{sub.id}"
    lines = [
        "#!/bin/sh",
        f"#SBATCH --job-name={sub.tag}",
        f"#SBATCH --array=0-{len(sub.jobs) - 1}",
        f"#SBATCH --output={d}/task_%a.out",
        f"#SBATCH --error={d}/task_%a.err",
        "#SBATCH --open-mode=append",
        "#SBATCH --ntasks=1",
        f"#SBATCH --cpus-per-task={int(opts.cpus_per_task)}",
        "#SBATCH --requeue",
    ]
    if opts.memory:
        lines.append(f"#SBATCH --mem={opts.memory}")
    if opts.time_limit:
        lines.append(f"#SBATCH --time={opts.time_limit}")
    if opts.partition:
        lines.append(f"#SBATCH --partition={opts.partition}")
    if opts.account:
        lines.append(f"#SBATCH --account={opts.account}")
    lines += [_sbatch_line(x) for x in opts.extra_sbatch_lines if x.strip()]
    lines += [
        f"# skyscan-tui scan {scan_id}, submission {sub.id}: {len(sub.jobs)} job(s)",
        'i="${SLURM_ARRAY_TASK_ID:-}"',
        'case "$i" in',
    ]
    lines += [f"  {i}) j={name} ;;" for i, name in enumerate(names)]
    lines += [
        '  *) echo "skyscan-tui: unexpected array index \'$i\'" >&2; exit 3 ;;',
        "esac",
        f'./{sub.script} {sub.context} "jobs/job_$j.npz" "results/result_$j.npz"',
        "rc=$?",
        f'm="{d}/rc_$i"',
        'printf \'%s %s\\n\' "$rc" "${SLURM_RESTART_COUNT:-0}" > "$m.tmp" && mv -f "$m.tmp" "$m"',
        'exit "$rc"',
    ]
    return "\n".join(lines) + "\n"


def parse_sbatch_parsable(text: str) -> int:
    """``sbatch --parsable`` output (``123`` or ``123;cluster``) -> job id."""
    for line in text.splitlines():
        head = line.strip().split(";")[0]
        if head.isdigit():
            return int(head)
    raise ValueError(f"no job id in sbatch output {text.strip()[:200]!r}")


_ELEM = re.compile(r"^(\d+)_(\d+)$")
_RANGE = re.compile(r"^(\d+)_\[([\d,\-%]+)\]$")


def parse_squeue(text: str) -> dict[tuple[int, int], tuple[str, str]]:
    """``squeue -h -r -o '%i|%T|%r'`` rows -> ``{(array_id, index): (state, reason)}``.

    Collapsed rows (``12_[3-5%2]``, as without ``-r``) are expanded; plain job ids (not array
    elements) and unparsable lines are skipped.
    """
    out: dict[tuple[int, int], tuple[str, str]] = {}
    for line in text.splitlines():
        parts = line.strip().split("|", 2)
        if len(parts) < 2:
            continue
        jid, state = parts[0].strip(), parts[1].strip().upper()
        reason = parts[2].strip() if len(parts) > 2 else ""
        m = _ELEM.match(jid)
        if m:
            out[(int(m.group(1)), int(m.group(2)))] = (state, reason)
            continue
        m = _RANGE.match(jid)
        if m:
            spec = m.group(2).split("%")[0]
            for part in spec.split(","):
                lo, _, hi = part.partition("-")
                if lo.isdigit() and (hi.isdigit() or not hi):
                    for idx in range(int(lo), int(hi or lo) + 1):
                        out[(int(m.group(1)), idx)] = (state, reason)
    return out


_RUNNING_STATES = {"RUNNING", "COMPLETING", "STAGE_OUT", "SIGNALING"}
_QUEUED_STATES = {"PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_FED", "RESIZING",
                  "SUSPENDED", "STOPPED"}
_HELD_STATES = {"REQUEUE_HOLD", "SPECIAL_EXIT", "RESV_DEL_HOLD"}
_LIMBO_STATES = {"PREEMPTED", "NODE_FAIL"}  # normally followed by a requeue
_FAILED_STATES = {"FAILED", "TIMEOUT", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE"}
_GONE_STATES = {"CANCELLED", "REVOKED"}
_HELD_REASONS = ("JobHeldUser", "JobHeldAdmin", "launch failed requeued held")


def element_state(state: str, reason: str) -> tuple[str, str, bool]:
    """Map a Slurm state to ``(executor state, detail, terminal)``.

    ``terminal`` False with a state in ``_LIMBO_STATES`` means "wait for the requeue".
    Unknown states count as queued (not terminal): a new Slurm state must not lose work,
    and a job that never finishes is caught by the executor's timeouts.
    """
    detail = state.lower() + (f" ({reason})" if reason and reason != "None" else "")
    if state == "COMPLETED":
        return DONE, "completed", True
    if state in _RUNNING_STATES:
        return RUNNING, detail, False
    if state in _HELD_STATES or (state == "PENDING" and reason in _HELD_REASONS):
        return HELD, detail, False
    if state in _QUEUED_STATES:
        return QUEUED, detail, False
    if state in _LIMBO_STATES:
        return QUEUED, f"{detail}, waiting for a requeue", False
    if state in _FAILED_STATES:
        return FAILED, detail, True
    if state in _GONE_STATES:
        return LOST, detail, True
    return QUEUED, detail, False


# --------------------------------------------------------------------------- backend
@dataclass
class _Elem:
    ref: JobRef
    state: str = QUEUED
    detail: str = ""
    code: int | None = None
    terminal: bool = False
    reported: tuple[str, str] | None = None  # last (state, detail) handed to the executor
    missing: int = 0  # consecutive squeue checks without it
    limbo_since: float | None = None  # entered PREEMPTED/NODE_FAIL at [monotonic s]


@dataclass
class _Array:
    sub_id: str
    tag: str
    array_id: int
    refs: list[JobRef] = field(default_factory=list)  # element i runs refs[i]


class SlurmBackend(SchedulerBackend):
    name: ClassVar[str] = "slurm"
    why_pending_hint: ClassVar[str] = "squeue -j JOBID -o '%i %T %r'"
    MISSING_CHECKS: ClassVar[int] = 2  # squeue checks without an element before it is lost
    _QMARK: ClassVar[str] = "==skyscan-squeue-rc=="

    def __init__(self, opts: SlurmOptions | None = None) -> None:
        self.opts = opts or SlurmOptions()
        self.opts.validate()
        self.arrays: dict[int, _Array] = {}
        self.elems: dict[tuple[int, int], _Elem] = {}

    def _run(self, cmd: str, *, check: bool = False, stdin: bytes | None = None):
        return self.conn.run(f"cd {shlex.quote(self.scan_dir)} && {cmd}",
                             self.settings.command_timeout, check=check, stdin=stdin)

    def check(self) -> None:
        res = self._run("for c in sbatch squeue scancel scontrol; do "
                        "command -v \"$c\" >/dev/null || echo \"$c\"; done")
        missing = res.text.split()
        if res.code != 0 or missing:
            raise RemoteError(
                f"Slurm command(s) {', '.join(missing) or '?'} not found on "
                f"{self.conn.target.label} (PATH of a non-interactive ssh session); is this a "
                "Slurm login node? Add them to PATH in ~/.bashrc or ~/.ssh/environment")

    # ---------------------------------------------------------------- submit
    def submit(self, sub: Submission) -> None:
        scan_id = sub.tag.removeprefix("skyscan-").rsplit("-", 1)[0]
        text = render_batch_script(sub, self.opts, scan_id)
        d = shlex.quote(f"subs/{sub.id}")
        done, tmp, err = f"{d}/submit.done", f"{d}/submit.tmp", f"{d}/submit.err"
        # one command: the script from stdin, then (idempotent) the marker file, else the job
        # name already in the queue (the reply was lost with the link), else sbatch
        cmd = (f"mkdir -p {d} && cat > {d}/job.sbatch && "
               f"if [ -s {done} ]; then cat {done}; else "
               f"j=$(squeue -h -t all -n {shlex.quote(sub.tag)} -o %F 2>/dev/null | head -n 1); "
               f"if [ -n \"$j\" ]; then echo \"$j\" > {done}; cat {done}; "
               f"elif sbatch --parsable {d}/job.sbatch > {tmp} 2> {err}; "
               f"then mv {tmp} {done} && cat {done}; "
               f"else cat {err} >&2; exit 1; fi; fi")
        res = self._run(cmd, stdin=text.encode())
        if res.code != 0:
            raise RemoteError(f"sbatch failed on {self.conn.target.label}: {res.err_line()}")
        try:
            array_id = parse_sbatch_parsable(res.text)
        except ValueError as exc:
            raise RemoteError(str(exc)) from None
        refs = [job.ref for job in sub.jobs]
        self.arrays[array_id] = _Array(sub.id, sub.tag, array_id, refs)
        for i, ref in enumerate(refs):
            # the executor marks submitted jobs queued itself: report changes from there
            self.elems[(array_id, i)] = _Elem(ref, reported=(QUEUED, ""))

    # ---------------------------------------------------------------- poll
    def _live(self) -> list[_Array]:
        return [a for a in self.arrays.values()
                if any(not self.elems[(a.array_id, i)].terminal for i in range(len(a.refs)))]

    def poll(self) -> list[JobStatus]:
        live = self._live()
        if not live:
            return []
        ids = ",".join(str(a.array_id) for a in live)
        markers = " ".join(shlex.quote(f"subs/{a.sub_id}") + "/rc_*" for a in live)
        # squeue first, then the markers: an element gone from the queue has written its
        # marker (if it ever will) by the time the marker is read
        res = self._run(f"squeue -h -r -t all -j {ids} -o '%i|%T|%r'; "
                        f"echo \"{self._QMARK} $?\"; "
                        f"for f in {markers}; do [ -f \"$f\" ] && "
                        f"printf '%s %s\\n' \"$f\" \"$(cat \"$f\")\"; done; true")
        qpart, _, mpart = res.text.partition(f"{self._QMARK} ")
        rc_text, _, mpart = mpart.partition("\n")
        queue: dict[tuple[int, int], tuple[str, str]] | None = None
        if rc_text.strip() == "0":
            queue = parse_squeue(qpart)
        elif "invalid job id" in res.err.decode("utf-8", "replace").lower():
            queue = {}  # every id purged from the controller (older than MinJobAge)
        marks = _parse_markers(mpart)
        now = time.monotonic()
        out: list[JobStatus] = []
        for a in live:
            for i, _ref in enumerate(a.refs):
                e = self.elems[(a.array_id, i)]
                if e.terminal:
                    continue
                self._update(e, a, i, queue, marks, now)
                key = (e.state, e.detail)
                if e.reported != key:
                    e.reported = key
                    out.append(JobStatus(e.ref, e.state, e.detail, e.code))
        return out

    def _update(self, e: _Elem, a: _Array, i: int,
                queue: dict[tuple[int, int], tuple[str, str]] | None,
                marks: dict[tuple[str, int], tuple[int, int]], now: float) -> None:
        row = queue.get((a.array_id, i)) if queue is not None else None
        if row is not None:
            e.missing = 0
            state, detail, terminal = element_state(*row)
            if row[0] in _LIMBO_STATES:
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

    def remove(self, jobs: Sequence[JobRef]) -> None:
        wanted = set(jobs)
        keys = []
        for (aid, i), e in self.elems.items():
            if e.ref in wanted and not e.terminal:
                e.terminal = True
                keys.append(f"{aid}_{i}")
        if keys:
            self._run("scancel " + " ".join(keys) + " >/dev/null 2>&1; true")

    def remove_all(self) -> None:
        live = [str(a.array_id) for a in self._live()]
        for e in self.elems.values():
            e.terminal = True
        if live:
            self._run("scancel " + " ".join(live) + " >/dev/null 2>&1; true")

    def active(self) -> list[JobRef]:
        return [e.ref for e in self.elems.values() if not e.terminal]

    def release(self, jobs: Sequence[JobRef]) -> None:
        wanted = set(jobs)
        keys = [f"{aid}_{i}" for (aid, i), e in self.elems.items()
                if e.ref in wanted and not e.terminal]
        if keys:
            self._run("scontrol release " + " ".join(keys) + " >/dev/null 2>&1; true")

    def hold_action(self, status: JobStatus, releases: int) -> str:
        if "JobHeldAdmin" in status.detail or releases >= self.opts.max_releases:
            return "resubmit"
        return "release"

    # ---------------------------------------------------------------- resume
    def state(self) -> dict[str, Any]:
        return {"arrays": [
            {"sub": a.sub_id, "tag": a.tag, "array_id": a.array_id,
             "refs": [[r.job_id, r.attempt] for r in a.refs],
             "terminal": [i for i in range(len(a.refs))
                          if self.elems[(a.array_id, i)].terminal]}
            for a in self.arrays.values()]}

    def attach(self, state: dict[str, Any]) -> None:
        for a in state.get("arrays", []):
            arr = _Array(str(a["sub"]), str(a["tag"]), int(a["array_id"]),
                         [JobRef(int(j), int(t)) for j, t in a["refs"]])
            self.arrays[arr.array_id] = arr
            done = {int(i) for i in a.get("terminal", [])}
            for i, ref in enumerate(arr.refs):
                self.elems[(arr.array_id, i)] = _Elem(ref, terminal=i in done)


_MARK = re.compile(r"^subs/([\w.-]+)/rc_(\d+) (-?\d+)(?: (\d+))?$")


def _parse_markers(text: str) -> dict[tuple[str, int], tuple[int, int]]:
    """``subs/<S>/rc_<i> <rc> <restarts>`` lines -> ``{(S, i): (rc, restarts)}``."""
    out: dict[tuple[str, int], tuple[int, int]] = {}
    for line in text.splitlines():
        m = _MARK.match(line.strip())
        if m:
            out[(m.group(1), int(m.group(2)))] = (int(m.group(3)), int(m.group(4) or 0))
    return out


# --------------------------------------------------------------------------- executor
MAX_ARRAY_TASKS = 1000  # Slurm's default MaxArraySize is 1001 (indices 0..1000)


class SlurmExecutor(RemoteBatchExecutor):
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
