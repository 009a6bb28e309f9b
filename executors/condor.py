"""HTCondor over SSH: ``--executor condor``.

The generic part (SSH, job files, result files, retries, resume) is
:class:`executors.remote.RemoteBatchExecutor`; this module is the HTCondor
:class:`~executors.remote.scheduler.SchedulerBackend` (its files are read and written by the
pure functions of :mod:`executors.condor_format`):

* one ``condor_submit -terse`` per submission (one cluster, one proc per job file), with a
  submit file from :func:`~executors.condor_format.render_submit_file`; submission is
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
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, replace
from typing import Any, ClassVar

from executors.condor_format import (
    TRANSIENT_HOLD_CODES,
    CondorOptions,
    LogEvent,
    event_status,
    parse_condor_q_json,
    parse_event_log,
    parse_terse,
    render_submit_file,
)
from executors.remote.batch import RemoteBatchExecutor
from executors.remote.config import REMOTE_OPTIONS, RemoteSettings
from executors.remote.scheduler import (
    CPUS,
    DONE,
    EXTRA_DIRECTIVES,
    FAILED,
    HELD,
    LOST,
    MAX_RELEASES,
    MEMORY,
    QUEUED,
    RUNNING,
    Group,
    GroupedBackend,
    JobRef,
    JobStatus,
    Member,
    Submission,
    job_stems,
)
from executors.remote.ssh import RemoteError
from skyscan_tui.options import Option, text

__all__ = ["CondorExecutor", "CondorBackend", "CondorOptions", "render_submit_file",
           "parse_event_log", "LogEvent", "parse_terse", "parse_condor_q_json", "event_status"]


@dataclass
class _Proc(Member):
    changes: int = 0  # state-changing events seen


class CondorBackend(GroupedBackend):
    """Clusters (groups) of procs (members), keyed ``(cluster, proc)``."""

    name: ClassVar[str] = "condor"
    label: ClassVar[str] = "HTCondor"
    commands: ClassVar[tuple[str, ...]] = ("condor_submit", "condor_q", "condor_rm",
                                           "condor_release", "condor_history")
    login_node: ClassVar[str] = "submit node"
    cancel_command: ClassVar[str] = "condor_rm"
    release_command: ClassVar[str] = "condor_release"
    query_mark: ClassVar[str] = "==skyscan-q-rc=="
    _LOG_MARK: ClassVar[str] = "==skyscan-log=="

    def __init__(self, opts: CondorOptions | None = None) -> None:
        super().__init__()
        self.opts = opts or CondorOptions()
        self.max_releases = self.opts.max_releases
        self._news: list[JobStatus] = []  # every state change, in order, since the last poll
        self._where: dict[JobRef, tuple[int, int]] = {}
        self._names: dict[JobRef, str] = {}  # job_<id>: stem of its .out/.err files
        self.scan_id = ""

    @property
    def clusters(self) -> dict[int, Group]:
        """The scan's HTCondor clusters by cluster id (the groups under their own name)."""
        return self.groups

    def member_id(self, key: tuple[int, int]) -> str:
        return f"{key[0]}.{key[1]}"

    def bind(self, conn, scan_dir, settings) -> None:  # noqa: ANN001 (see base class)
        super().bind(conn, scan_dir, settings)
        # the scan folder is named scan-<id>: the same id tags the jobs (+SkyscanScan)
        self.scan_id = scan_dir.rstrip("/").rsplit("/", 1)[-1].removeprefix("scan-")

    def _changed(self, p: _Proc) -> None:
        p.changes += 1
        self._news.append(JobStatus(p.ref, p.state, p.detail, p.code))

    def _add_cluster(self, group: Group, terminal: set[int] = frozenset()) -> None:
        self._add(group, _Proc)
        for proc, ref in zip(group.indices, group.refs, strict=True):
            self.members[(group.id, proc)].terminal = proc in terminal
            self._where[ref] = (group.id, proc)

    # ---------------------------------------------------------------- submit
    def submit(self, sub: Submission) -> str:
        d = shlex.quote(f"subs/{sub.id}")
        self.conn.put_bytes(render_submit_file(sub, self.opts, self.scan_id).encode(),
                            f"{self.scan_dir}/subs/{sub.id}.sub")
        constraint = shlex.quote(f'JobBatchName == "{sub.tag}"')
        out = self._submit_once(
            sub, prepare=f"mkdir -p {d} && mv -f {shlex.quote(f'subs/{sub.id}.sub')} "
                         f"{d}/submit.sub",
            lookup=f"condor_q -constraint {constraint} -af ClusterId",
            found=f"\"$x.0 - $x.{len(sub.jobs) - 1}\"",
            submit=f"condor_submit -terse -batch-name {shlex.quote(sub.tag)} {d}/submit.sub")
        cluster, first, last = parse_terse(out)
        if last - first + 1 != len(sub.jobs):
            raise RemoteError(f"condor_submit queued {last - first + 1} job(s), "
                              f"expected {len(sub.jobs)}")
        self._add_cluster(Group(sub.id, sub.tag, cluster, [j.ref for j in sub.jobs], first))
        for job, stem in zip(sub.jobs, job_stems(sub), strict=True):
            self._names[job.ref] = f"job_{stem}"
        return f"cluster {cluster}"

    # ---------------------------------------------------------------- poll
    def poll(self) -> list[JobStatus]:
        live = self._live()
        if not live:
            return []
        # condor_q first, then the log: a job missing from the queue has its terminal
        # event (if any) in the log by the time we read it
        ids = " ".join(str(c.id) for c in live)
        qpart, logpart, _ = self._query_then(
            f"condor_q -json {ids} -attributes "
            "ClusterId,ProcId,JobStatus,HoldReasonCode,HoldReason", self._log_command(live))
        queue: dict[tuple[int, int], dict[str, Any]] | None = None
        if qpart is not None:
            try:
                queue = {(int(ad["ClusterId"]), int(ad["ProcId"])): ad
                         for ad in parse_condor_q_json(qpart.decode("utf-8", "replace"))}
            except (ValueError, KeyError, TypeError):
                queue = None  # garbled output: rely on the log this time
        before = {k: p.changes for k, p in self.members.items()}
        self._read_logs(logpart)
        if queue is not None:
            # the log was read after condor_q: where it has news, the queue entry is older
            fresh = {k for k, p in self.members.items() if p.changes != before.get(k)}
            self._apply_queue(live, queue, fresh)
        out, self._news = self._news, []
        return [st for st in out if not self.members[self._where[st.ref]].removed]

    def _log_command(self, live: list[Group]) -> str:
        """Shell text printing each live cluster's event log from its saved offset."""
        parts = []
        for c in live:
            log = shlex.quote(f"subs/{c.sub_id}/events.log")
            parts.append(f"printf '\\n{self._LOG_MARK} %s\\n' {c.id}; "
                         f"if [ -f {log} ]; then tail -c +{c.log_offset + 1} {log}; fi")
        return "; ".join(parts)

    def _read_logs(self, out: bytes) -> None:
        for chunk in out.split(f"\n{self._LOG_MARK} ".encode())[1:]:
            head, _, data = chunk.partition(b"\n")
            try:
                cluster = self.groups[int(head)]
            except (ValueError, KeyError):
                continue
            events, used = parse_event_log(data)
            cluster.log_offset += used
            for ev in events:
                self._apply_event(ev)

    def _apply_event(self, ev: LogEvent) -> None:
        p = self.members.get((ev.cluster, ev.proc))
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

    def _apply_queue(self, live: list[Group], queue: dict[tuple[int, int], dict],
                     fresh: set[tuple[int, int]]) -> None:
        lookup: list[tuple[int, int]] = []
        for c in live:
            for proc in c.indices:
                p = self.members[(c.id, proc)]
                if p.terminal or p.removed or (c.id, proc) in fresh:
                    continue
                ad = queue.get((c.id, proc))
                if ad is None:
                    p.missing += 1
                    if p.missing >= 2:
                        lookup.append((c.id, proc))
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

    def _history(self, keys: list[tuple[int, int]]) -> None:
        """Jobs gone from the queue with no terminal event: ask condor_history, else lost."""
        res = self._run(f"condor_history -json {' '.join(self.member_id(k) for k in keys)} "
                        f"-attributes ClusterId,ProcId,JobStatus,ExitCode -limit {len(keys)}")
        ads: dict[tuple[int, int], dict[str, Any]] = {}
        if res.code == 0:
            try:
                ads = {(int(a["ClusterId"]), int(a["ProcId"])): a
                       for a in parse_condor_q_json(res.text)}
            except (ValueError, KeyError, TypeError):
                ads = {}
        for key in keys:
            p, ad = self.members[key], ads.get(key)
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
    def _sweep_commands(self) -> list[str]:
        # also a submission whose reply never came back (e.g. interrupted mid-way)
        if not self.scan_id:
            return []
        expr = shlex.quote(f'SkyscanScan == "{self.scan_id}"')
        return [f"condor_rm -constraint {expr} >/dev/null 2>&1"]

    def releasable(self, status: JobStatus) -> bool:
        return status.code in TRANSIENT_HOLD_CODES

    def error_tail(self, job: JobRef) -> str:
        where = self._where.get(job)
        if where is None:
            return ""
        name = self._names.get(job) or f"job_{job.job_id:06d}"
        err = shlex.quote(f"subs/{self.groups[where[0]].sub_id}/{name}.err")
        res = self._run(f"if [ -f {err} ]; then grep -v '^[[:space:]]*$' {err} | tail -n 1; fi")
        return res.text.strip()[-300:]

    # ---------------------------------------------------------------- resume
    def state(self) -> dict[str, Any]:
        return {"clusters": [
            {**self._group_state(c), "cluster": c.id, "offset": c.log_offset,
             "procs": {str(pr): [ref.job_id, ref.attempt]
                       for pr, ref in zip(c.indices, c.refs, strict=True)}}
            for c in self.groups.values()]}

    def attach(self, state: dict[str, Any]) -> None:
        """Re-read the logs from the saved offsets (events are idempotent)."""
        for c in state.get("clusters", []):
            procs = sorted((int(pr), JobRef(int(v[0]), int(v[1])))
                           for pr, v in c["procs"].items())
            self._add_cluster(Group(c["sub"], c["tag"], int(c["cluster"]),
                                    [ref for _, ref in procs], procs[0][0] if procs else 0,
                                    int(c["offset"])), set(c.get("terminal", [])))


class CondorExecutor(RemoteBatchExecutor):
    """HTCondor jobs submitted over SSH, one cluster per submission."""

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
