"""HTCondor's files, pure functions: the submit file we write and what we read back.

:func:`render_submit_file` (one cluster, one proc per job file), the outputs of
``condor_submit -terse`` (:func:`parse_terse`) and ``condor_q``/``condor_history -json``
(:func:`parse_condor_q_json`), and the user job event log (:func:`parse_event_log`, read
incrementally; :func:`event_status`: what an event means for its job). No SSH here; the
backend that runs the commands is :mod:`executors.condor`. The formats follow the HTCondor
manual (condor_submit, condor_q, "Job Event Log Codes"); docs/clusters.md says how jobs are
followed.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

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

__all__ = ["CondorOptions", "render_submit_file", "parse_terse", "parse_condor_q_json",
           "LogEvent", "parse_event_log", "event_status", "TRANSIENT_HOLD_CODES"]

# hold codes that are usually transient (file transfer trouble): release before resubmitting
TRANSIENT_HOLD_CODES = (12, 13)

@dataclass(frozen=True)
class CondorOptions:
    """Submit-file settings, named as in the submit file.

    From the executor options cpus, memory, disk, extra_directives and max_releases, and
    job_timeout."""

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
    names = job_stems(sub)
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
    """``condor_submit -terse`` output -> (cluster, first proc, last proc).

    >>> parse_terse("12.0 - 12.3")
    (12, 0, 3)
    """
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
    """One event of an HTCondor job event log (``code``: the event number, e.g. 5)."""

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
