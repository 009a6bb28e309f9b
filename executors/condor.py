"""HTCondor over SSH: ``--executor condor``.

The generic part (SSH, job files, result files, retries, resume) is
:class:`executors.remote.RemoteBatchExecutor`; this module is the HTCondor
:class:`~executors.remote.scheduler.SchedulerBackend` (its files are read and written by the
pure functions of :mod:`executors.condor_format`):

* one ``condor_submit -terse`` per submission (one cluster, one proc per job file), with a
  submit file from :func:`~executors.condor_format.render_submit_file`; submission is
  idempotent (a marker file holds the cluster id, and a retry first looks for the batch name
  in ``condor_q``), so a reply lost with the link never submits twice;
* job states from the user job event log on every poll (read incrementally from a byte
  offset, partial events are left for the next read; text, JSON or XML, every date form);
  ``condor_q -json -attributes ...`` (empty output = no jobs) is only a watchdog, run every
  ``queue_check_interval`` (60 s) and once when the logs fall silent, as ``condor_watch_q``
  does. A job that left the queue without a terminal event in the log is looked up in
  ``condor_history`` (retried with back-off while that fails); if it is not there either
  it *vanished* and is resubmitted. With late materialisation (``max_idle``,
  ``max_materialize``) a proc with no event yet and not in the queue is still queued;
* holds by their cause (:func:`~executors.condor_format.hold_meaning`, from HoldReasonCode
  and HoldReasonSubCode): 1 (``condor_hold`` by you or an administrator) is waited for, never
  undone; 12/2 (a listed output missing), or 13 after the job ran, is a crash: a failure of
  the job; other transfer holds (12, 13) are released up to ``max_releases`` times; 34 (out of
  memory or disk) and 3/26 policy holds naming memory or disk resubmit the job with that
  request doubled, up to ``memory_cap``/``disk_cap``; 46/47 (duration) and the rest remove the
  job and resubmit it. ``allowed_execute_duration = job_timeout`` makes stuck jobs hold;
* ``condor_rm`` for cancel and for jobs replaced by a resubmission;
* where jobs find Python (``env_mode``: shared, container universe, transfer archive) and the
  probe job run on connect: :mod:`executors.remote.environment` (its submit file:
  :func:`~executors.condor_format.render_probe_file`).
"""

from __future__ import annotations

import shlex
import time
from dataclasses import dataclass, replace
from typing import Any, ClassVar

from executors.condor_format import (
    PROBE_DIR,
    RESOURCES,
    CondorOptions,
    LogEvent,
    event_status,
    format_amount,
    hold_meaning,
    parse_condor_q_json,
    parse_event_log,
    parse_terse,
    render_probe_file,
    render_submit_file,
    request_amount,
)
from executors.remote.batch import RemoteBatchExecutor
from executors.remote.config import REMOTE_OPTIONS, RemoteSettings
from executors.remote.environment import (
    CONTAINER,
    ENV_OPTIONS,
    EnvSpec,
    Launch,
    ProbeResult,
    env_spec,
)
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
    RELEASE,
    RESUBMIT,
    RUNNING,
    Group,
    GroupedBackend,
    HoldAction,
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
    seen: bool = False  # in the log or the queue at least once (materialised)
    ran: bool = False  # began executing (an execute event was seen)
    subcode: int | None = None  # of the current hold


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

    def __init__(self, opts: CondorOptions | None = None, env: EnvSpec | None = None) -> None:
        super().__init__()
        self.env = env or EnvSpec(probe=True)
        self.opts = opts or CondorOptions()
        if self.env.mode == CONTAINER:
            self.opts = replace(self.opts, container_image=self.env.container_image)
        self.max_releases = self.opts.max_releases
        self._news: list[JobStatus] = []  # every state change, in order, since the last poll
        self._where: dict[JobRef, tuple[int, int]] = {}
        self._names: dict[JobRef, str] = {}  # job_<id>: stem of its .out/.err files
        self.scan_id = ""
        self._clock = time.monotonic
        self._last_q: float | None = None  # last condor_q (None: not polled yet)
        self._last_event = self._clock()  # last event read from a log (or submission)
        self._quiet_checked = False  # condor_q ran since the last event
        self._q_soon: float | None = None  # an earlier condor_q, to confirm a missing job
        self._absent: dict[int, int] = {}  # condor_q runs in a row without a cluster's procs
        self._lookups: set[tuple[int, int]] = set()  # to ask condor_history about
        self._lookup_at = 0.0
        self._history_fails = 0
        self.stats = {"condor_q": 0, "condor_history": 0}

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
        self._news.append(JobStatus(p.ref, p.state, p.detail, p.code,
                                    p.subcode if p.state == HELD else None))

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
            # the queue is searched for the batch name only when an earlier attempt started
            # (its reply lost with the link), not before every first submission
            lookup=f"if [ -e {d}/submit.try ]; then condor_q -constraint {constraint} "
                   f"-af ClusterId; else : > {d}/submit.try; fi",
            found=f"\"$x.0 - $x.{len(sub.jobs) - 1}\"",
            submit=f"condor_submit -terse -batch-name {shlex.quote(sub.tag)} {d}/submit.sub")
        cluster, first, last = parse_terse(out)
        if last - first + 1 != len(sub.jobs):
            raise RemoteError(f"condor_submit queued {last - first + 1} job(s), "
                              f"expected {len(sub.jobs)}")
        self._add_cluster(Group(sub.id, sub.tag, cluster, [j.ref for j in sub.jobs], first))
        self._last_event, self._quiet_checked = self._clock(), False
        for job, stem in zip(sub.jobs, job_stems(sub), strict=True):
            self._names[job.ref] = f"job_{stem}"
        return f"cluster {cluster}"

    def set_launch(self, launch: Launch) -> None:
        super().set_launch(launch)
        self.opts = replace(self.opts, extra_inputs=launch.inputs)  # the archive (transfer)

    def probe(self, reco: str, timeout: float) -> ProbeResult:
        """Submit the probe job and return how it ended, with its stdout and stderr.

        The job (:func:`~executors.condor_format.render_probe_file`) is followed in its event
        log until it ends or is held; removed and ``ok=None`` if it has not ended after
        ``timeout`` [s]."""
        text = render_probe_file(self.opts, self.scan_id, reco, timeout)
        self.conn.put_bytes(text.encode(), f"{self.scan_dir}/probe.sub")
        tag = shlex.quote(f"skyscan-{self.scan_id}-probe")
        res = self._run(f"rm -rf {PROBE_DIR} && mkdir {PROBE_DIR} && mv -f probe.sub "
                        f"{PROBE_DIR}/submit.sub && condor_submit -terse -batch-name {tag} "
                        f"{PROBE_DIR}/submit.sub")
        if res.code != 0:
            raise RemoteError(f"condor_submit of the probe job failed on "
                              f"{self.conn.target.label}: {res.err_line()}")
        cluster = parse_terse(res.text)[0]
        deadline, offset = self._clock() + timeout, 0
        nap = min(5.0, max(0.1, self.settings.poll_interval))
        while True:
            out = self._run(f"if [ -f {PROBE_DIR}/events.log ]; then "
                            f"tail -c +{offset + 1} {PROBE_DIR}/events.log; fi").out
            events, used = parse_event_log(out)
            offset += used
            end = None
            for ev in events:
                meaning = event_status(ev) if ev.cluster == cluster else None
                if meaning and meaning[0] in (DONE, FAILED, HELD, LOST):
                    end = meaning
            if end is not None or self._clock() > deadline:
                break
            time.sleep(nap)
        if end is None or end[0] == HELD:
            self._run(f"condor_rm {cluster} >/dev/null 2>&1; true")
        if end is None:
            return ProbeResult(None, f"cluster {cluster} still queued or running")
        res = self._run(f"tail -c 65536 {PROBE_DIR}/probe.out 2>/dev/null; "
                        f"echo '{self._LOG_MARK}'; tail -c 65536 {PROBE_DIR}/probe.err "
                        "2>/dev/null; true")
        stdout, _, stderr = res.text.partition(f"{self._LOG_MARK}\n")
        detail = end[1] if end[0] != HELD else f"held: {end[1]}"
        return ProbeResult(end[0] == DONE, f"cluster {cluster}: {detail}", stdout, stderr)

    # ---------------------------------------------------------------- poll
    def poll(self) -> list[JobStatus]:
        """Job states from the event logs; ``condor_q`` only as a rare watchdog.

        Every poll reads the new part of each live cluster's log (a file read on the submit
        node, no schedd query). ``condor_q`` runs (in the same command, before the log read)
        every ``queue_check_interval`` seconds, once when the logs have been silent for half
        of that, and again soon after a job was first missed from the queue, as
        ``condor_watch_q`` follows jobs from their logs rather than from the schedd.
        """
        live = self._live()
        if not live:
            return []
        now = self._clock()
        if self._last_q is None:
            self._last_q = now  # the first look at the queue waits one interval
        queue: dict[tuple[int, int], dict[str, Any]] | None = None
        if self._queue_due(now):
            ids = " ".join(str(c.id) for c in live)
            qpart, logpart, _ = self._query_then(
                f"condor_q -json {ids} -attributes "
                "ClusterId,ProcId,JobStatus,HoldReasonCode,HoldReasonSubCode,HoldReason",
                self._log_command(live))
            self._last_q, self._quiet_checked, self._q_soon = now, True, None
            self.stats["condor_q"] += 1
            if qpart is not None:
                try:
                    queue = {(int(ad["ClusterId"]), int(ad["ProcId"])): ad
                             for ad in parse_condor_q_json(qpart.decode("utf-8", "replace"))}
                except (ValueError, KeyError, TypeError):
                    queue = None  # garbled output: rely on the log this time
        else:
            logpart = self._run(self._log_command(live)).out
        before = {k: p.changes for k, p in self.members.items()}
        if self._read_logs(logpart):
            self._last_event, self._quiet_checked = now, False
        if queue is not None:
            # the log was read after condor_q: where it has news, the queue entry is older
            fresh = {k for k, p in self.members.items() if p.changes != before.get(k)}
            self._apply_queue(live, queue, fresh, now)
        if self._lookups and now >= self._lookup_at:
            self._history(sorted(self._lookups), now)
        out, self._news = self._news, []
        return [st for st in out if not self.members[self._where[st.ref]].removed]

    def _queue_due(self, now: float) -> bool:
        every = self.opts.queue_check_interval
        assert self._last_q is not None
        return (now - self._last_q >= every
                or (self._q_soon is not None and now >= self._q_soon)
                or (not self._quiet_checked and now - self._last_event >= every / 2))

    def _log_command(self, live: list[Group]) -> str:
        """Shell text printing each live cluster's event log from its saved offset."""
        parts = []
        for c in live:
            log = shlex.quote(f"subs/{c.sub_id}/events.log")
            parts.append(f"printf '\\n{self._LOG_MARK} %s\\n' {c.id}; "
                         f"if [ -f {log} ]; then tail -c +{c.log_offset + 1} {log}; fi")
        return "; ".join(parts)

    def _read_logs(self, out: bytes) -> int:
        """Apply the events in ``out`` (see :meth:`_log_command`); how many there were."""
        n = 0
        for chunk in out.split(f"\n{self._LOG_MARK} ".encode())[1:]:
            head, _, data = chunk.partition(b"\n")
            try:
                cluster = self.groups[int(head)]
            except (ValueError, KeyError):
                continue
            events, used = parse_event_log(data)
            cluster.log_offset += used
            n += len(events)
            for ev in events:
                self._apply_event(ev)
        return n

    def _apply_event(self, ev: LogEvent) -> None:
        p = self.members.get((ev.cluster, ev.proc))
        if p is None or p.terminal:
            return
        p.seen = True
        meaning = event_status(ev)
        if meaning is None:
            return
        p.state, p.detail, p.code = meaning
        if ev.code in (1, 4, 7, 13):  # executing; back to idle (a rerun transfers anew)
            p.ran = ev.code == 1
        sub = ev.attrs.get("HoldReasonSubCode") if ev.code == 12 else None
        p.subcode = int(sub) if isinstance(sub, (int, str)) and str(sub).isdigit() else None
        self._changed(p)
        p.missing = 0
        if ev.code in (5, 9):
            p.terminal = True
            self._lookups.discard((ev.cluster, ev.proc))

    def _apply_queue(self, live: list[Group], queue: dict[tuple[int, int], dict],
                     fresh: set[tuple[int, int]], now: float) -> None:
        for c in live:
            # late materialisation (max_idle, max_materialize): a proc with no event yet and
            # not in the queue has not materialised; it is queued, not missing, unless the
            # whole cluster stays absent from the queue (then its factory is gone too)
            present = any(k[0] == c.id for k in queue)
            self._absent[c.id] = 0 if present else self._absent.get(c.id, 0) + 1
            for proc in c.indices:
                key = (c.id, proc)
                p = self.members[key]
                if p.terminal or p.removed or key in fresh or key in self._lookups:
                    continue
                ad = queue.get(key)
                if ad is None:
                    if not p.seen and self._absent[c.id] < 2:
                        continue  # not materialised yet
                    p.missing += 1
                    if p.missing >= 2:
                        self._lookups.add(key)
                        self._lookup_at = now
                    else:  # confirm soon: the job may have just ended (event on its way)
                        soon = now + min(10.0, self.opts.queue_check_interval)
                        self._q_soon = soon if self._q_soon is None else min(self._q_soon, soon)
                    continue
                p.missing, p.seen = 0, True
                status = int(ad.get("JobStatus", 0))
                if status == 5 and p.state != HELD:  # held, event not in the log (yet)
                    code, sub = ad.get("HoldReasonCode"), ad.get("HoldReasonSubCode")
                    p.state, p.code = HELD, int(code) if code is not None else None
                    p.subcode = int(sub) if sub is not None else None
                    codes = f"{p.code}/{p.subcode}" if p.subcode else f"{p.code}"
                    p.detail = f"{ad.get('HoldReason', 'held')} (code {codes})"
                    self._changed(p)
                elif status in (2, 6) and p.state == QUEUED:
                    p.state, p.detail = RUNNING, "running"
                    self._changed(p)

    #: condor_history failures in a row before a job is given up as lost
    HISTORY_TRIES: ClassVar[int] = 5

    def _history(self, keys: list[tuple[int, int]], now: float) -> None:
        """Jobs gone from the queue with no terminal event: ask condor_history, else lost.

        A failing condor_history (the schedd busy or unreachable; it prints ``[`` and exits
        1) says nothing about the jobs: they are asked about again later, with back-off.
        """
        res = self._run(f"condor_history -json {' '.join(self.member_id(k) for k in keys)} "
                        f"-attributes ClusterId,ProcId,JobStatus,ExitCode -limit {len(keys)}")
        self.stats["condor_history"] += 1
        ads: dict[tuple[int, int], dict[str, Any]] | None = None
        if res.code == 0:
            try:
                ads = {(int(a["ClusterId"]), int(a["ProcId"])): a
                       for a in parse_condor_q_json(res.text)}
            except (ValueError, KeyError, TypeError):
                ads = None
        if ads is None:
            self._history_fails += 1
            if self._history_fails < self.HISTORY_TRIES:
                self._lookup_at = now + min(60.0, 5.0 * 2 ** (self._history_fails - 1))
                return
            why = res.err_line() if res.code else "unreadable output"
            ads, gave_up = {}, (f"condor_history failed {self._history_fails} times "
                                f"({why}); taken as lost")
        else:
            gave_up = ""
        self._history_fails = 0
        for key in keys:
            p, ad = self.members[key], ads.get(key)
            self._lookups.discard(key)
            if p.terminal:
                continue
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
                p.state, p.detail = LOST, gave_up or (
                    "vanished from the queue (no log event, no history)")
            self._changed(p)

    # ---------------------------------------------------------------- control
    def _sweep_commands(self) -> list[str]:
        # also a submission whose reply never came back (e.g. interrupted mid-way)
        if not self.scan_id:
            return []
        expr = shlex.quote(f'SkyscanScan == "{self.scan_id}"')
        return [f"condor_rm -constraint {expr} >/dev/null 2>&1"]

    def hold_action(self, status: JobStatus, releases: int) -> HoldAction:
        """The hold's meaning by code and subcode (condor_format.hold_meaning).

        A transient hold is released while releases are left, then resubmitted."""
        where = self._where.get(status.ref)
        ran = where is not None and self.members[where].ran
        meaning = hold_meaning(status.code, status.subcode, status.detail, ran)
        if meaning.action == RELEASE and releases >= self.max_releases:
            return HoldAction(RESUBMIT, meaning.cause)
        return meaning

    def grow(self, resource: str, factor: int) -> tuple[str, str] | None:
        if resource not in RESOURCES:
            return None
        old = request_amount(self.opts, resource, max(1, factor // 2))
        new = request_amount(self.opts, resource, factor)
        if old is None or new is None:
            return None
        return format_amount(old, resource), format_amount(new, resource)

    @property
    def extra_directives(self) -> tuple[str, ...]:
        """The profile's extra submit-file lines."""
        return tuple(self.opts.extra_submit_lines)

    def stderr_file(self, job: JobRef) -> str | None:
        where = self._where.get(job)
        if where is None:
            return None
        name = self._names.get(job) or f"job_{job.job_id:06d}"
        return f"subs/{self.groups[where[0]].sub_id}/{name}.err"

    # ---------------------------------------------------------------- resume
    def state(self) -> dict[str, Any]:
        return {"clusters": [
            {**self._group_state(c), "cluster": c.id, "offset": c.log_offset,
             "seen": [i for i in c.indices if self.members[(c.id, i)].seen],
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
            # procs whose events were read before (older states: all, if any were read)
            seen = set(c["seen"]) if "seen" in c else (
                {pr for pr, _ in procs} if int(c["offset"]) else set())
            for pr in seen:
                self.members[(int(c["cluster"]), pr)].seen = True


class CondorExecutor(RemoteBatchExecutor):
    """HTCondor jobs submitted over SSH, one cluster per submission."""

    name: ClassVar[str] = "condor"
    description: ClassVar[str] = "HTCondor jobs submitted over SSH (--profile NAME)"
    OPTIONS: ClassVar[tuple[Option, ...]] = REMOTE_OPTIONS + ENV_OPTIONS + (
        CPUS, replace(MEMORY, default="2GB"),
        Option("disk", text, None, "disk per job (HTCondor request_disk; KB if a bare number)",
               flags=("--disk", "--request-disk"), aliases=("request_disk",), metavar="SIZE"),
        EXTRA_DIRECTIVES, MAX_RELEASES,
        Option("memory_cap", text, "16GB", "largest memory request after out-of-memory holds "
               "(each doubles the job's request)", metavar="SIZE"),
        Option("disk_cap", text, "64GB", "largest disk request after out-of-disk holds",
               metavar="SIZE"),
        Option("queue_check_interval", float, 60.0, "seconds between condor_q checks (job "
               "states come from the event log; condor_q is the watchdog)", min=0.5, unit="s",
               flags=()))

    @classmethod
    def make_backend(cls, values: dict[str, Any], settings: RemoteSettings) -> CondorBackend:
        return CondorBackend(CondorOptions(
            request_cpus=values["cpus"], request_memory=values["memory"],
            request_disk=values["disk"], extra_submit_lines=values["extra_directives"],
            max_releases=values["max_releases"], job_timeout=settings.job_timeout,
            queue_check_interval=values["queue_check_interval"],
            memory_cap=values["memory_cap"], disk_cap=values["disk_cap"]), env_spec(values))
