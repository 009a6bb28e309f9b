"""HTCondor over SSH: ``--executor condor``.

The generic part (SSH, job files, result files, retries, resume) is
:class:`executors.remote.RemoteBatchExecutor`; this module is the HTCondor
:class:`~executors.remote.SchedulerBackend`:

* one ``condor_submit -terse`` per submission (one cluster, one proc per job file), with a
  submit file rendered by the pure function :func:`render_submit_file`; submission is
  idempotent (a marker file holds the cluster id, and a retry first looks for the batch name
  in ``condor_q``), so a reply lost with the link never submits twice;
* job states from the user job event log (read incrementally from a byte offset, partial
  events are left for the next read; both date formats) cross-checked with
  ``condor_q -json -attributes ...`` (empty output = no jobs). A job that left the queue
  without a terminal event in the log is looked up in ``condor_history``; if it is not
  there either it *vanished* and is resubmitted;
* holds: transient transfer holds (codes 12, 13) are released up to ``max_releases`` times;
  any other hold (duration limits 46/47, memory 34, failed to execute 6, ...) removes the job
  and resubmits it. ``allowed_execute_duration = job_timeout`` makes stuck jobs hold;
* ``condor_rm`` for cancel and for jobs replaced by a resubmission.

Facts about the CLI and the log format: docs/htcondor-cli.md (project shared docs).
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, replace
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

__all__ = ["CondorExecutor", "CondorBackend", "CondorOptions", "render_submit_file",
           "parse_event_log", "LogEvent", "parse_terse", "parse_condor_q_json"]

# hold codes that are usually transient (file transfer trouble): release before resubmitting
TRANSIENT_HOLD_CODES = (12, 13)

_JOB_NAME = re.compile(r"^jobs/job_(\w+)\.npz$")
_OUT_NAME = re.compile(r"^results/result_(\w+)\.npz$")


@dataclass(frozen=True)
class CondorOptions:
    """Submit-file settings (profile keys of the same name)."""

    request_cpus: int = 1
    request_memory: str = "2GB"  # MB if a bare number, else with unit
    request_disk: str | None = None  # KB if a bare number
    extra_submit_lines: tuple[str, ...] = ()
    max_releases: int = 1  # releases of a transient hold before the job is resubmitted
    job_timeout: float = 3600.0  # [s] -> allowed_execute_duration


# --------------------------------------------------------------------------- submit file
def _submit_value(text: str) -> str:
    """A submit-file value must stay on one line."""
    if "\n" in text or "\r" in text:
        raise UserError(f"submit-file value {text!r} spans lines")
    return text


def render_submit_file(sub: Submission, opts: CondorOptions, scan_id: str) -> str:
    """The submit description of ``sub`` (one cluster, one proc per job, in ``sub.jobs`` order).

    Paths are relative to the scan folder, which is the submit directory (and so every job's
    Iwd): the remote folder name, which may hold spaces or quotes, never appears in the file.
    """
    if not sub.jobs:
        raise ValueError("empty submission")
    names = []
    for job in sub.jobs:
        m_in, m_out = _JOB_NAME.match(job.input), _OUT_NAME.match(job.output)
        if not (m_in and m_out and m_in.group(1) == m_out.group(1)):
            raise ValueError(f"unexpected job file names {job.input!r}, {job.output!r}")
        names.append(m_in.group(1))
    d = f"subs/{sub.id}"
    lines = [
        f"# skyscan-tui scan {scan_id}, submission {sub.id}: {len(sub.jobs)} job(s)",
        "universe                 = vanilla",
        f"executable               = {sub.script}",
        f'arguments                = "{sub.context} job_$(job).npz result_$(job).npz"',
        "should_transfer_files    = YES",
        "when_to_transfer_output  = ON_EXIT",
        f"transfer_input_files     = {sub.context}, jobs/job_$(job).npz",
        "transfer_output_files    = result_$(job).npz",
        'transfer_output_remaps   = "result_$(job).npz = results/result_$(job).npz"',
        f"output                   = {d}/job_$(job).out",
        f"error                    = {d}/job_$(job).err",
        f"log                      = {d}/events.log",
        f"request_cpus             = {int(opts.request_cpus)}",
        f"request_memory           = {_submit_value(str(opts.request_memory))}",
    ]
    if opts.request_disk:
        lines.append(f"request_disk             = {_submit_value(str(opts.request_disk))}")
    if opts.job_timeout and opts.job_timeout > 0:
        lines.append(f"allowed_execute_duration = {int(opts.job_timeout)}")
    lines += [
        f'+SkyscanScan             = "{scan_id}"',
        f'+SkyscanSubmission       = "{sub.id}"',
    ]
    for extra in opts.extra_submit_lines:
        extra = _submit_value(extra).strip()
        if extra.lower().startswith("queue"):
            raise UserError("extra submit lines must not contain a queue statement")
        if extra:
            lines.append(extra)
    lines.append("queue job from (")
    lines += names
    lines.append(")")
    return "\n".join(lines) + "\n"


_TERSE = re.compile(r"^(\d+)\.(\d+) - (\d+)\.(\d+)$")


def parse_terse(text: str) -> tuple[int, int, int]:
    """``condor_submit -terse`` output -> (cluster, first proc, last proc)."""
    for line in text.splitlines():
        m = _TERSE.match(line.strip())
        if m:
            if m.group(1) != m.group(3):
                raise ValueError(f"submission spans clusters: {line!r}")
            return int(m.group(1)), int(m.group(2)), int(m.group(4))
    raise ValueError(f"no cluster id in condor_submit output {text.strip()[:200]!r}")


def parse_condor_q_json(text: str) -> list[dict[str, Any]]:
    """``condor_q -json`` / ``condor_history -json`` output (empty output = no jobs)."""
    text = text.strip()
    if not text:
        return []
    data = json.loads(text)
    if not isinstance(data, list):
        raise ValueError("condor_q -json did not print a list")
    return [ad for ad in data if isinstance(ad, dict)]


# --------------------------------------------------------------------------- event log
@dataclass(frozen=True)
class LogEvent:
    code: int
    cluster: int
    proc: int
    when: str  # as written (ISO or MM/DD form); only shown to users
    text: str  # header text, e.g. "Job was held."
    body: tuple[str, ...] = ()


_HEADER = re.compile(r"^(\d{3}) \((\d+)\.(\d+)\.(\d+)\) (\S+ \S+) ?(.*)$")


def parse_event_log(data: bytes) -> tuple[list[LogEvent], int]:
    """Complete events in ``data`` and the number of bytes they span.

    An event is a header line, TAB-indented body lines and a line ``...``; a trailing partial
    event (the writer is still appending) is not consumed, so the caller re-reads it from the
    returned offset next time. Unknown event codes are returned too (callers ignore them).
    """
    events: list[LogEvent] = []
    consumed = 0
    pos = 0
    header: re.Match[str] | None = None
    body: list[str] = []
    while True:
        nl = data.find(b"\n", pos)
        if nl < 0:
            break
        line = data[pos:nl].decode("utf-8", "replace").rstrip("\r")
        pos = nl + 1
        if line == "...":
            if header is not None:
                events.append(LogEvent(int(header.group(1)), int(header.group(2)),
                                       int(header.group(3)), header.group(5),
                                       header.group(6).strip(), tuple(body)))
            header, body = None, []
            consumed = pos
        elif header is None:
            header = _HEADER.match(line)
            body = []
        else:
            body.append(line.strip())
    return events, consumed


_NORMAL = re.compile(r"Normal termination \(return value (-?\d+)\)")
_ABNORMAL = re.compile(r"Abnormal termination \(signal (\d+)\)")
_HOLD_CODE = re.compile(r"Code (\d+) Subcode (-?\d+)")


def event_status(ev: LogEvent) -> tuple[str, str, int | None] | None:
    """What a log event means for its job: (state, detail, code), or None (no change)."""
    if ev.code in (0, 4, 13):  # submitted, evicted (runs again), released
        return QUEUED, {0: "submitted", 4: "evicted", 13: "released"}[ev.code], None
    if ev.code == 1:
        return RUNNING, "executing", None
    if ev.code == 5:
        for line in ev.body:
            m = _NORMAL.search(line)
            if m:
                rv = int(m.group(1))
                return (DONE, "exited 0", 0) if rv == 0 else (FAILED, f"exit code {rv}", rv)
            m = _ABNORMAL.search(line)
            if m:
                return FAILED, f"killed by signal {m.group(1)}", None
        return FAILED, "terminated (no exit status in the log)", None
    if ev.code == 9:
        reason = ev.body[0] if ev.body else "aborted"
        return LOST, f"removed from the queue ({reason})", None
    if ev.code == 12:
        code = None
        for line in ev.body:
            m = _HOLD_CODE.search(line)
            if m:
                code = int(m.group(1))
        reason = ev.body[0] if ev.body else "held"
        return HELD, f"{reason} (code {code})" if code is not None else reason, code
    return None


def _job_name(ref: JobRef) -> str:
    """``job_<id>`` as in the job files (see RemoteBatchExecutor's naming)."""
    return f"job_{ref.job_id:06d}"


# --------------------------------------------------------------------------- backend
@dataclass
class _Proc:
    ref: JobRef
    state: str = QUEUED
    detail: str = ""
    code: int | None = None
    terminal: bool = False  # 005 or 009 seen (or decided by us)
    changes: int = 0  # state-changing events seen
    missing: int = 0  # consecutive condor_q checks without it
    removed: bool = False  # we ran condor_rm on it


@dataclass
class _Cluster:
    sub_id: str
    tag: str
    cluster: int
    procs: dict[int, JobRef]
    log_offset: int = 0


class CondorBackend(SchedulerBackend):
    name: ClassVar[str] = "condor"

    def __init__(self, opts: CondorOptions | None = None) -> None:
        self.opts = opts or CondorOptions()
        self.clusters: dict[int, _Cluster] = {}
        self.procs: dict[tuple[int, int], _Proc] = {}
        self._where: dict[JobRef, tuple[int, int]] = {}
        self._news: list[JobStatus] = []  # every state change, in order, since the last poll
        self._names: dict[JobRef, str] = {}  # job_<id>: stem of its .out/.err files
        self.scan_id = ""

    def _changed(self, p: _Proc) -> None:
        p.changes += 1
        self._news.append(JobStatus(p.ref, p.state, p.detail, p.code))

    # ---------------------------------------------------------------- helpers
    def _run(self, cmd: str, *, check: bool = False, stdin: bytes | None = None):
        return self.conn.run(f"cd {shlex.quote(self.scan_dir)} && {cmd}",
                             self.settings.command_timeout, check=check, stdin=stdin)

    def check(self) -> None:
        res = self._run("for c in condor_submit condor_q condor_rm condor_release "
                        "condor_history; do command -v \"$c\" >/dev/null || echo \"$c\"; done")
        missing = res.text.split()
        if res.code != 0 or missing:
            raise RemoteError(
                f"HTCondor command(s) {', '.join(missing) or '?'} not found on "
                f"{self.conn.target.label} (PATH of a non-interactive ssh session); is this a "
                "submit node? Add them to PATH in ~/.bashrc or ~/.ssh/environment")

    # ---------------------------------------------------------------- submit
    def bind(self, conn, scan_dir, settings) -> None:  # noqa: ANN001 (see base class)
        super().bind(conn, scan_dir, settings)
        # the scan folder is named scan-<id>: the same id tags the jobs (+SkyscanScan)
        self.scan_id = scan_dir.rstrip("/").rsplit("/", 1)[-1].removeprefix("scan-")

    def submit(self, sub: Submission) -> str:
        d = f"subs/{sub.id}"
        text = render_submit_file(sub, self.opts, self.scan_id)
        done, tmp, err = f"{d}/submit.done", f"{d}/submit.tmp", f"{d}/submit.err"
        tag = shlex.quote(sub.tag)
        constraint = shlex.quote(f'JobBatchName == "{sub.tag}"')
        self.conn.put_bytes(text.encode(), f"{self.scan_dir}/subs/{sub.id}.sub")
        # idempotent: the marker file, else the batch name already in the queue (the reply
        # was lost with the link), else submit
        cmd = (f"mkdir -p {d} && mv -f subs/{sub.id}.sub {d}/submit.sub && "
               f"if [ -s {done} ]; then cat {done}; else "
               f"c=$(condor_q -constraint {constraint} -af ClusterId 2>/dev/null | head -n 1); "
               f"if [ -n \"$c\" ]; then echo \"$c.0 - $c.{len(sub.jobs) - 1}\" > {done}; "
               f"cat {done}; "
               f"elif condor_submit -terse -batch-name {tag} {d}/submit.sub > {tmp} 2> {err}; "
               f"then mv {tmp} {done} && cat {done}; "
               f"else cat {err} >&2; exit 1; fi; fi")
        res = self._run(cmd)
        if res.code != 0:
            raise RemoteError(f"condor_submit failed on {self.conn.target.label}: "
                              f"{res.err_line()}")
        cluster, first, last = parse_terse(res.text)
        if last - first + 1 != len(sub.jobs):
            raise RemoteError(f"condor_submit queued {last - first + 1} job(s), "
                              f"expected {len(sub.jobs)}")
        procs = {first + i: job.ref for i, job in enumerate(sub.jobs)}
        self.clusters[cluster] = _Cluster(sub.id, sub.tag, cluster, procs)
        for proc, ref in procs.items():
            self.procs[(cluster, proc)] = _Proc(ref)
            self._where[ref] = (cluster, proc)
        for job in sub.jobs:
            self._names[job.ref] = "job_" + _JOB_NAME.match(job.input).group(1)
        return f"cluster {cluster}"

    # ---------------------------------------------------------------- poll
    def _live(self) -> list[_Cluster]:
        return [c for c in self.clusters.values()
                if any(not self.procs[(c.cluster, p)].terminal for p in c.procs)]

    def poll(self) -> list[JobStatus]:
        live = self._live()
        if not live:
            return []
        # condor_q first, then the log: a job missing from the queue has its terminal
        # event (if any) in the log by the time we read it
        ids = " ".join(str(c.cluster) for c in live)
        qmark = "==skyscan-q-rc=="
        res = self._run(f"condor_q -json {ids} -attributes "
                        "ClusterId,ProcId,JobStatus,HoldReasonCode,HoldReason; "
                        f"echo \"{qmark} $?\"; " + self._log_command(live))
        qpart, _, logpart = res.out.partition(f"{qmark} ".encode())
        rc_text, _, logpart = logpart.partition(b"\n")
        queue: dict[tuple[int, int], dict[str, Any]] | None = None
        if rc_text.strip() == b"0":
            try:
                queue = {(int(ad["ClusterId"]), int(ad["ProcId"])): ad
                         for ad in parse_condor_q_json(qpart.decode("utf-8", "replace"))}
            except (ValueError, KeyError, TypeError):
                queue = None  # garbled output: rely on the log this time
        before = {k: p.changes for k, p in self.procs.items()}
        self._read_logs(logpart)
        if queue is not None:
            # the log was read after condor_q: where it has news, the queue entry is older
            fresh = {k for k, p in self.procs.items() if p.changes != before.get(k)}
            self._apply_queue(live, queue, fresh)
        out, self._news = self._news, []
        return [st for st in out if not self.procs[self._where[st.ref]].removed]

    _LOG_MARK = "==skyscan-log=="

    def _log_command(self, live: list[_Cluster]) -> str:
        """Shell text printing each live cluster's event log from its saved offset."""
        parts = []
        for c in live:
            log = shlex.quote(f"subs/{c.sub_id}/events.log")
            parts.append(f"printf '\\n{self._LOG_MARK} %s\\n' {c.cluster}; "
                         f"if [ -f {log} ]; then tail -c +{c.log_offset + 1} {log}; fi")
        return "; ".join(parts)

    def _read_logs(self, out: bytes) -> None:
        for chunk in out.split(f"\n{self._LOG_MARK} ".encode())[1:]:
            head, _, data = chunk.partition(b"\n")
            try:
                cluster = self.clusters[int(head)]
            except (ValueError, KeyError):
                continue
            events, used = parse_event_log(data)
            cluster.log_offset += used
            for ev in events:
                self._apply_event(ev)

    def _apply_event(self, ev: LogEvent) -> None:
        p = self.procs.get((ev.cluster, ev.proc))
        if p is None or p.terminal:
            return
        meaning = event_status(ev)
        if meaning is None:
            return
        p.state, p.detail, p.code = meaning
        self._changed(p)
        p.missing = 0
        if ev.code in (5, 9):
            p.terminal = True

    def _apply_queue(self, live: list[_Cluster], queue: dict[tuple[int, int], dict],
                     fresh: set[tuple[int, int]]) -> None:
        lookup: list[_Proc] = []
        for c in live:
            for proc in c.procs:
                p = self.procs[(c.cluster, proc)]
                if p.terminal or p.removed or (c.cluster, proc) in fresh:
                    continue
                ad = queue.get((c.cluster, proc))
                if ad is None:
                    p.missing += 1
                    if p.missing >= 2:
                        lookup.append(p)
                    continue
                p.missing = 0
                status = int(ad.get("JobStatus", 0))
                if status == 5 and p.state != HELD:  # held, event not in the log (yet)
                    code = ad.get("HoldReasonCode")
                    p.state, p.code = HELD, int(code) if code is not None else None
                    p.detail = f"{ad.get('HoldReason', 'held')} (code {p.code})"
                    self._changed(p)
                elif status in (2, 6) and p.state == QUEUED:
                    p.state, p.detail = RUNNING, "running"
                    self._changed(p)
        if lookup:
            self._history(lookup)

    def _history(self, procs: list[_Proc]) -> None:
        """Jobs gone from the queue with no terminal event: ask condor_history, else lost."""
        where = {(c, pr): p for (c, pr), p in self.procs.items() if p in procs}
        ids = " ".join(f"{c}.{pr}" for c, pr in where)
        res = self._run(f"condor_history -json {ids} -attributes "
                        f"ClusterId,ProcId,JobStatus,ExitCode -limit {len(where)}")
        ads: dict[tuple[int, int], dict[str, Any]] = {}
        if res.code == 0:
            try:
                ads = {(int(a["ClusterId"]), int(a["ProcId"])): a
                       for a in parse_condor_q_json(res.text)}
            except (ValueError, KeyError, TypeError):
                ads = {}
        for key, p in where.items():
            ad = ads.get(key)
            p.terminal = True
            if ad is not None and int(ad.get("JobStatus", 0)) == 4:
                rv = ad.get("ExitCode")
                if rv == 0:
                    p.state, p.detail, p.code = DONE, "exited 0 (condor_history)", 0
                else:
                    p.state, p.detail, p.code = FAILED, f"exit code {rv} (condor_history)", rv
            elif ad is not None and int(ad.get("JobStatus", 0)) == 3:
                p.state, p.detail = LOST, "removed from the queue (condor_history)"
            else:
                p.state, p.detail = LOST, "vanished from the queue (no log event, no history)"
            self._changed(p)

    # ---------------------------------------------------------------- control
    def _ids(self, refs: Sequence[JobRef]) -> list[tuple[int, int]]:
        want = set(refs)
        return [k for k, p in self.procs.items() if p.ref in want and not p.terminal]

    def remove(self, jobs: Sequence[JobRef]) -> None:
        keys = self._ids(jobs)
        if not keys:
            return
        for k in keys:
            self.procs[k].removed = True
            self.procs[k].terminal = True
        self._run("condor_rm " + " ".join(f"{c}.{p}" for c, p in keys) + " >/dev/null 2>&1; true")

    def remove_all(self) -> None:
        """Remove every job of the scan, also of a submission whose reply never came back
        (e.g. interrupted mid-way): by the scan's ``SkyscanScan`` attribute."""
        live = [c.cluster for c in self._live()]
        for p in self.procs.values():
            if not p.terminal:
                p.removed = p.terminal = True
        cmds = []
        if live:
            cmds.append("condor_rm " + " ".join(map(str, live)) + " >/dev/null 2>&1")
        if self.scan_id:
            expr = shlex.quote(f'SkyscanScan == "{self.scan_id}"')
            cmds.append(f"condor_rm -constraint {expr} >/dev/null 2>&1")
        if cmds:
            self._run("; ".join(cmds) + "; true")

    def active(self) -> list[JobRef]:
        return [p.ref for p in self.procs.values() if not p.terminal]

    def release(self, jobs: Sequence[JobRef]) -> None:
        keys = self._ids(jobs)
        if keys:
            self._run("condor_release " + " ".join(f"{c}.{p}" for c, p in keys)
                      + " >/dev/null 2>&1; true")

    def error_tail(self, job: JobRef) -> str:
        where = self._where.get(job)
        if where is None:
            return ""
        name = self._names.get(job) or _job_name(job)
        err = shlex.quote(f"subs/{self.clusters[where[0]].sub_id}/{name}.err")
        res = self._run(f"if [ -f {err} ]; then grep -v '^[[:space:]]*$' {err} | tail -n 1; fi")
        return res.text.strip()[-300:]

    def hold_action(self, status: JobStatus, releases: int) -> str:
        if status.code in TRANSIENT_HOLD_CODES and releases < self.opts.max_releases:
            return "release"
        return "resubmit"

    # ---------------------------------------------------------------- resume
    def state(self) -> dict[str, Any]:
        return {"clusters": [
            {"sub": c.sub_id, "tag": c.tag, "cluster": c.cluster, "offset": c.log_offset,
             "procs": {str(pr): [ref.job_id, ref.attempt] for pr, ref in c.procs.items()},
             "terminal": [pr for pr in c.procs if self.procs[(c.cluster, pr)].terminal]}
            for c in self.clusters.values()]}

    def attach(self, state: dict[str, Any]) -> None:
        """Re-read the logs from the saved offsets (events are idempotent)."""
        for c in state.get("clusters", []):
            procs = {int(pr): JobRef(int(v[0]), int(v[1])) for pr, v in c["procs"].items()}
            cl = _Cluster(c["sub"], c["tag"], int(c["cluster"]), procs, int(c["offset"]))
            self.clusters[cl.cluster] = cl
            done = set(c.get("terminal", []))
            for pr, ref in procs.items():
                self.procs[(cl.cluster, pr)] = _Proc(ref, terminal=pr in done)
                self._where[ref] = (cl.cluster, pr)


# --------------------------------------------------------------------------- executor
class CondorExecutor(RemoteBatchExecutor):
    name: ClassVar[str] = "condor"
    description: ClassVar[str] = "HTCondor jobs submitted over SSH (--profile NAME)"
    OPTIONS: ClassVar[tuple[Option, ...]] = REMOTE_OPTIONS + (
        CPUS, replace(MEMORY, default="2GB"),
        Option("disk", text, None, "disk per job (HTCondor request_disk; KB if a bare number)",
               flags=("--disk", "--request-disk"), aliases=("request_disk",), metavar="SIZE"),
        EXTRA_DIRECTIVES, MAX_RELEASES)

    @classmethod
    def make_backend(cls, values: dict[str, Any], settings: RemoteSettings) -> CondorBackend:
        return CondorBackend(CondorOptions(
            request_cpus=values["cpus"], request_memory=values["memory"],
            request_disk=values["disk"], extra_submit_lines=values["extra_directives"],
            max_releases=values["max_releases"], job_timeout=settings.job_timeout))
