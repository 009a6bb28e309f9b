"""Slurm's files, pure functions: the batch script we write and what we read back.

:class:`SlurmOptions` (checked: nothing may break the script or be refused by sbatch),
:func:`render_batch_script` (a job array, element ``i`` runs job file ``i``), and the
outputs of ``sbatch --parsable`` (:func:`parse_sbatch_parsable`), ``squeue -h -r -o
'%i|%T|%r'`` (:func:`parse_squeue`, :func:`element_state`: what a Slurm state means for a
job) and the markers the script writes (:func:`parse_markers`). No SSH here; the backend
that runs the commands is :mod:`executors.slurm`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from executors.remote.scheduler import (
    DONE,
    FAILED,
    HELD,
    LOST,
    QUEUED,
    RUNNING,
    Submission,
    job_stems,
)
from skyscan_tui.errors import UserError

__all__ = ["SlurmOptions", "render_batch_script", "parse_sbatch_parsable", "parse_squeue",
           "element_state", "parse_markers", "LIMBO_STATES"]

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
    """Batch-script settings, named as sbatch names them.

    From the executor options partition, account, walltime, cpus, memory, extra_directives and
    max_releases."""

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
    names = job_stems(sub)
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
    """``sbatch --parsable`` output (``123`` or ``123;cluster``) -> job id.

    >>> parse_sbatch_parsable("1234;cluster")
    1234
    """
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
LIMBO_STATES = {"PREEMPTED", "NODE_FAIL"}  # normally followed by a requeue
_FAILED_STATES = {"FAILED", "TIMEOUT", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE"}
_GONE_STATES = {"CANCELLED", "REVOKED"}
_HELD_REASONS = ("JobHeldUser", "JobHeldAdmin", "launch failed requeued held")


def element_state(state: str, reason: str) -> tuple[str, str, bool]:
    """Map a Slurm state to ``(executor state, detail, terminal)``.

    ``terminal`` False with a state in ``LIMBO_STATES`` means "wait for the requeue".
    Unknown states count as queued (not terminal): a new Slurm state must not lose work,
    and a job that never finishes is caught by the executor's timeouts.

    >>> element_state("PENDING", "Priority")
    ('queued', 'pending (Priority)', False)
    >>> element_state("COMPLETED", "None")
    ('done', 'completed', True)
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
    if state in LIMBO_STATES:
        return QUEUED, f"{detail}, waiting for a requeue", False
    if state in _FAILED_STATES:
        return FAILED, detail, True
    if state in _GONE_STATES:
        return LOST, detail, True
    return QUEUED, detail, False


_MARK = re.compile(r"^subs/([\w.-]+)/rc_(\d+) (-?\d+)(?: (\d+))?$")


def parse_markers(text: str) -> dict[tuple[str, int], tuple[int, int]]:
    """``subs/<S>/rc_<i> <rc> <restarts>`` lines -> ``{(S, i): (rc, restarts)}``."""
    out: dict[tuple[str, int], tuple[int, int]] = {}
    for line in text.splitlines():
        m = _MARK.match(line.strip())
        if m:
            out[(m.group(1), int(m.group(2)))] = (int(m.group(3)), int(m.group(4) or 0))
    return out
