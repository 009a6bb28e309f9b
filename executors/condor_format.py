"""HTCondor's files, pure functions: the submit file we write and what we read back.

:func:`render_submit_file` (one cluster, one proc per job file), the outputs of
``condor_submit -terse`` (:func:`parse_terse`) and ``condor_q``/``condor_history -json``
(:func:`parse_condor_q_json`), and the user job event log (:func:`parse_event_log`, read
incrementally, in the text, JSON or XML format; :func:`event_status`: what an event means
for its job, the same whatever the format), what a hold means by its code and subcode
(:func:`hold_meaning`) and the requests raised after out-of-memory or out-of-disk holds
(:func:`request_amount`). No SSH here; the
backend that runs the commands is :mod:`executors.condor`. The formats follow the HTCondor
manual (condor_submit, condor_q, "Job Event Log Codes"); docs/clusters.md says how jobs are
followed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from xml.etree import ElementTree

from executors.remote.scheduler import (
    DONE,
    FAIL,
    FAILED,
    GROW,
    HELD,
    LOST,
    QUEUED,
    RELEASE,
    RESUBMIT,
    RUNNING,
    WAIT,
    HoldAction,
    Submission,
    job_stems,
)
from skyscan_tui.errors import UserError

__all__ = ["CondorOptions", "render_submit_file", "parse_terse", "parse_condor_q_json",
           "LogEvent", "parse_event_log", "event_status", "TRANSIENT_HOLD_CODES",
           "hold_meaning", "size_amount", "request_amount", "format_amount", "RESOURCES",
           "render_probe_file", "PROBE_DIR"]

# hold codes that are usually transient (file transfer trouble): released before resubmitting,
# unless the job crashed (see hold_meaning)
TRANSIENT_HOLD_CODES = (12, 13)
# HoldReasonCode values (HTCondor's CONDOR_HOLD_CODE, manual: "Hold Reason Codes")
HOLD_USER = 1  # UserRequest: condor_hold by the owner or an administrator
HOLD_POLICY = (3, 26)  # JobPolicy (periodic_hold), SystemPolicy (SYSTEM_PERIODIC_HOLD)
HOLD_OUT_OF_RESOURCES = 34  # JobOutOfResources; subcode 102 memory, 104 disk
HOLD_DURATION = (46, 47)  # allowed_job_duration, allowed_execute_duration
SUBCODE_MEMORY, SUBCODE_DISK = 102, 104
ENOENT = 2  # the subcode of a transfer hold is the errno: a listed output file is missing
#: the requests a hold can make the executor raise: option name -> (submit key, bare unit)
RESOURCES = {"memory": ("request_memory", "M"), "disk": ("request_disk", "K")}
#: request_disk when the profile sets none and a job runs out of disk (HTCondor's own
#: default is the sandbox size, which the executor does not know)
DEFAULT_DISK = "1GB"

@dataclass(frozen=True)
class CondorOptions:
    """Submit-file settings, named as in the submit file.

    From the executor options cpus, memory, disk, extra_directives and max_releases, and
    job_timeout; also how often the backend asks ``condor_q``, and how far out-of-memory/disk
    holds may raise a request."""

    request_cpus: int = 1
    request_memory: str = "2GB"  # MB if a bare number, else with unit
    request_disk: str | None = None  # KB if a bare number
    extra_submit_lines: tuple[str, ...] = ()
    max_releases: int = 1  # releases of a transient hold before the job is resubmitted
    job_timeout: float = 3600.0  # [s] -> allowed_execute_duration
    queue_check_interval: float = 60.0  # [s] between condor_q watchdog checks
    memory_cap: str = "16GB"  # largest request_memory after out-of-memory holds
    disk_cap: str = "64GB"  # largest request_disk after out-of-disk holds
    container_image: str = ""  # env_mode = container: universe = container with this image
    extra_inputs: tuple[str, ...] = ()  # env_mode = transfer: the environment archive

    def __post_init__(self) -> None:
        for name, unit in (("memory_cap", "M"), ("disk_cap", "K")):
            if size_amount(getattr(self, name), unit) is None:
                raise UserError(f"{name} {getattr(self, name)!r}: expected a size such as "
                                "16GB")


# --------------------------------------------------------------------------- sizes, holds
_SIZE = re.compile(r"^\s*(\d+(?:\.\d*)?)\s*([KMGTP]?)B?\s*$", re.IGNORECASE)
_UNITS = "KMGTP"


def size_amount(text: str | None, bare: str) -> int | None:
    """A submit-file size (``2GB``, ``512M``, ``4096``) in the unit ``bare``.

    ``bare`` is the unit of a bare number: "M" for request_memory, "K" for request_disk.
    None if it is not a plain size (an expression, say)."""
    m = _SIZE.match(str(text or ""))
    if m is None:
        return None
    unit = (m.group(2) or bare).upper()
    return int(float(m.group(1)) * 1024 ** (_UNITS.index(unit) - _UNITS.index(bare)))


def request_amount(opts: CondorOptions, resource: str, factor: int = 1) -> int | None:
    """request_<resource> at ``factor`` x the profile's, in MB (memory) or KB (disk).

    Capped by ``<resource>_cap`` (never below the profile's own). None when it cannot be
    scaled (not a plain size, or set by an extra submit line, which would override ours)."""
    key, unit = RESOURCES[resource]
    if any(re.match(rf"(?i)^\s*{key}\s*=", line) for line in opts.extra_submit_lines):
        return None
    base_text = opts.request_memory if resource == "memory" else opts.request_disk
    base = size_amount(base_text or (DEFAULT_DISK if resource == "disk" else None), unit)
    cap = size_amount(opts.memory_cap if resource == "memory" else opts.disk_cap, unit)
    if base is None or cap is None:
        return None
    return base if factor <= 1 else max(base, min(base * factor, cap))


def format_amount(amount: int, resource: str) -> str:
    """A :func:`request_amount` as a submit value, e.g. ``4096MB``."""
    return f"{amount}{RESOURCES[resource][1]}B"


def _hold_resource(subcode: int | None, reason: str) -> str:
    """The resource a hold says ran out ("" if none).

    Read from the subcode (25.x: 102 memory, 104 disk), else from the reason text (older pools
    write 0; site policies write their own)."""
    if subcode == SUBCODE_MEMORY:
        return "memory"
    if subcode == SUBCODE_DISK:
        return "disk"
    text = reason.lower()
    return "memory" if "memory" in text else "disk" if "disk" in text else ""


def hold_meaning(code: int | None, subcode: int | None, reason: str, ran: bool) -> HoldAction:
    """What a hold means for the job, by its code and subcode (before any release budget).

    ``ran``: the job began executing in this attempt (an execute event was seen).
    """
    if code == HOLD_USER:
        return HoldAction(WAIT, "held with condor_hold (by you or an administrator)")
    if (code == 12 and subcode == ENOENT) or (code == 13 and ran):
        # a listed output file is missing: the job ended without writing it (it crashed);
        # older pools report the output side as 13 (UploadFileError)
        return HoldAction(FAIL, "the job ended without its output file (it crashed)")
    if code in TRANSIENT_HOLD_CODES:
        return HoldAction(RELEASE, "file transfer failed")
    if code == HOLD_OUT_OF_RESOURCES or code in HOLD_POLICY:
        resource = _hold_resource(subcode, reason)
        if code == HOLD_OUT_OF_RESOURCES and not resource:
            resource = "memory"  # before disk limits (subcode 104) existed, 34 meant memory
        if resource:
            return HoldAction(GROW, f"out of {resource}", resource)
        return HoldAction(RESUBMIT, "held by a periodic_hold policy")
    if code in HOLD_DURATION:
        return HoldAction(RESUBMIT, "over its time limit")
    return HoldAction(RESUBMIT, "held" if code is None else f"held (code {code})")


# --------------------------------------------------------------------------- submit file
def _submit_value(text: str) -> str:
    """A submit-file value must stay on one line."""
    if "\n" in text or "\r" in text:
        raise UserError(f"submit-file value {text!r} spans lines")
    return text


# "queue ..." and its synonym "iterate ..." (a second statement would queue more procs)
_QUEUE_WORD = re.compile(r"(?i)^(queue|iterate)\b")


def render_submit_file(sub: Submission, opts: CondorOptions, scan_id: str) -> str:
    """The submit description of ``sub`` (one cluster, one proc per job, in ``sub.jobs`` order).

    Paths are relative to the scan folder, which is the submit directory (and so every job's
    Iwd): the remote folder name, which may hold spaces or quotes, never appears in the file.
    """
    names = job_stems(sub)
    d = f"subs/{sub.id}"
    # requests raised for some jobs (out-of-memory holds, ...): one queue column each
    grown = sorted({r for job in sub.jobs for r, f in job.scale if f > 1 and r in RESOURCES})
    columns: dict[str, list[str]] = {}
    for r in grown:
        amounts = [request_amount(opts, r, dict(job.scale).get(r, 1)) for job in sub.jobs]
        if all(a is not None for a in amounts):
            columns[r] = [format_amount(a, r) for a in amounts if a is not None]
    lines = [
        f"# skyscan-tui scan {scan_id}, submission {sub.id}: {len(sub.jobs)} job(s)",
        *_universe_lines(opts),
        f"executable               = {sub.script}",
        f'arguments                = "{sub.context} job_$(job).npz result_$(job).npz"',
        "should_transfer_files    = YES",
        "when_to_transfer_output  = ON_EXIT",
        "transfer_input_files     = " + ", ".join([sub.context, "jobs/job_$(job).npz",
                                                    *map(_submit_value, opts.extra_inputs)]),
        "transfer_output_files    = result_$(job).npz",
        'transfer_output_remaps   = "result_$(job).npz = results/result_$(job).npz"',
        f"output                   = {d}/job_$(job).out",
        f"error                    = {d}/job_$(job).err",
        f"log                      = {d}/events.log",
        # the text form, said explicitly: a pool may default to JSON or XML logs
        # (DEFAULT_USERLOG_FORMAT_OPTIONS); the reader takes all three anyway
        "log_xml                  = False",
        f"request_cpus             = {int(opts.request_cpus)}",
        "request_memory           = " + ("$(skyscan_memory)" if "memory" in columns
                                             else _submit_value(str(opts.request_memory))),
    ]
    if "disk" in columns:
        lines.append("request_disk             = $(skyscan_disk)")
    elif opts.request_disk:
        lines.append(f"request_disk             = {_submit_value(str(opts.request_disk))}")
    if opts.job_timeout and opts.job_timeout > 0:
        lines.append(f"allowed_execute_duration = {int(opts.job_timeout)}")
    lines += [
        f'+SkyscanScan             = "{scan_id}"',
        f'+SkyscanSubmission       = "{sub.id}"',
    ]
    lines += _extra_lines(opts)
    lines.append("queue " + ", ".join(["job", *(f"skyscan_{r}" for r in columns)]) + " from (")
    lines += [" ".join([name, *(columns[r][i] for r in columns)])
              for i, name in enumerate(names)]
    lines.append(")")
    return "\n".join(lines) + "\n"


def _universe_lines(opts: CondorOptions) -> list[str]:
    """The universe lines: ``vanilla``, or the container universe with the profile's image.

    See the manual's "Container Universe Jobs": a ``.sif`` path is transferred, a
    ``docker://`` name pulled."""
    if not opts.container_image:
        return ["universe                 = vanilla"]
    return ["universe                 = container",
            f"container_image          = {_submit_value(opts.container_image)}"]


def _extra_lines(opts: CondorOptions) -> list[str]:
    """The profile's extra submit lines, checked (no queue statement of their own)."""
    out = []
    for extra in opts.extra_submit_lines:
        extra = _submit_value(extra).strip()
        if _QUEUE_WORD.match(extra):
            raise UserError(f"extra submit lines must not contain a queue statement "
                            f"({extra!r}): the executor writes the one queue statement")
        if extra:
            out.append(extra)
    return out


#: the probe job's folder in the scan folder (submit file, log, stdout, stderr)
PROBE_DIR = "probe"


def render_probe_file(opts: CondorOptions, scan_id: str, reco: str, timeout: float,
                      script: str = "run_job.sh") -> str:
    """The probe job's submit file: one proc running ``run_job.sh --check RECO``.

    It runs on an execute node with the jobs' universe, image, environment archive, requests
    and extra lines, and lists no output (a failure then shows as its exit code and stderr,
    not as a transfer hold)."""
    if not reco.isidentifier():
        raise UserError(f"reco name {reco!r} is not an identifier")
    lines = [
        f"# skyscan-tui scan {scan_id}: probe job (can an execute node run the worker?)",
        *_universe_lines(opts),
        f"executable               = {script}",
        f'arguments                = "--check {reco}"',
        "should_transfer_files    = YES",
        "when_to_transfer_output  = ON_EXIT",
    ]
    if opts.extra_inputs:
        lines.append("transfer_input_files     = "
                     + ", ".join(map(_submit_value, opts.extra_inputs)))
    lines += [
        f"output                   = {PROBE_DIR}/probe.out",
        f"error                    = {PROBE_DIR}/probe.err",
        f"log                      = {PROBE_DIR}/events.log",
        "log_xml                  = False",
        f"request_cpus             = {int(opts.request_cpus)}",
        f"request_memory           = {_submit_value(str(opts.request_memory))}",
    ]
    if opts.request_disk:
        lines.append(f"request_disk             = {_submit_value(str(opts.request_disk))}")
    lines += [f"allowed_execute_duration = {max(60, int(timeout))}",
              f'+SkyscanScan             = "{scan_id}"',
              "+SkyscanProbe            = true",
              *_extra_lines(opts), "queue"]
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
    """One user-log event, whatever the log's format.

    ``attrs`` holds what the event says in the attribute names of its ClassAd form (the JSON
    and XML logs write those names; the text form is read into the same names), so the
    meaning of an event never depends on the format it came in.
    """

    code: int
    cluster: int
    proc: int
    when: str  # as written (ISO or MM/DD form); only shown to users
    text: str  # header text, e.g. "Job was held." (the event type in JSON/XML logs)
    body: tuple[str, ...] = ()
    attrs: Mapping[str, Any] = field(default_factory=dict)


# "NNN (C.P.S) DATE TIME text"; cluster events (035/036) write proc -1
_HEADER = re.compile(r"^(\d{3}) \((\d+)\.(-?\d+)\.(-?\d+)\) (\S+ \S+) ?(.*)$")
_NORMAL = re.compile(r"Normal termination \(return value (-?\d+)\)")
_ABNORMAL = re.compile(r"Abnormal termination \(signal (\d+)\)")
_CODES = re.compile(r"Code (-?\d+) Subcode (-?\d+)")


def parse_event_log(data: bytes) -> tuple[list[LogEvent], int]:
    """Complete events in ``data`` and the number of bytes they span.

    Reads the three formats HTCondor writes (text, JSON, XML: the pool's
    ``DEFAULT_USERLOG_FORMAT_OPTIONS`` or a job's ``log_xml``), recognised per event by its
    first character. A text event is a header line, TAB-indented body lines and a line
    ``...``; a JSON event is one object, an XML event one ``<c>...</c>`` element. A trailing
    partial event (the writer is still appending) is not consumed, so the caller re-reads it
    from the returned offset next time. Unknown event codes are returned too (callers ignore
    them), and so are unreadable events' bytes (skipped, never re-read forever).
    """
    # surrogateescape: the byte offsets stay exact whatever bytes a hold reason holds
    text = data.decode("utf-8", "surrogateescape")
    events: list[LogEvent] = []
    pos = consumed = 0
    while True:
        start = pos
        while start < len(text) and text[start] in " \t\r\n":
            start += 1
        if start >= len(text):
            break
        first = text[start]
        if first == "{":
            found = _json_event(text, start)
        elif first == "<":
            found = _xml_event(text, start)
        else:
            found = _text_event(text, start)
        if found is None:  # incomplete: wait for the rest
            break
        event, pos = found
        if text.startswith("\n", pos) and first in "{<":  # the line end of the event
            pos += 1
        if event is not None:
            events.append(event)
        consumed = pos
    return events, len(text[:consumed].encode("utf-8", "surrogateescape"))


def _text_event(text: str, start: int) -> tuple[LogEvent | None, int] | None:
    if text.startswith("...\n", start):
        return None, start + 4
    end = text.find("\n...\n", start)
    if end < 0:
        end = text.find("\n...\r\n", start)
        if end < 0:
            return None
        stop = end + 6
    else:
        stop = end + 5
    lines = text[start:end].split("\n")
    m = _HEADER.match(lines[0].rstrip("\r"))
    if m is None:
        return None, stop  # not an event we can read: skip it
    code, head = int(m.group(1)), m.group(6).strip()
    body = tuple(ln.rstrip("\r").strip() for ln in lines[1:])
    return LogEvent(code, int(m.group(2)), int(m.group(3)), m.group(5), head, body,
                    _text_attrs(code, head, body)), stop


def _text_attrs(code: int, head: str, body: tuple[str, ...]) -> dict[str, Any]:
    """What a text event's body says, in the names of the event's ClassAd form."""
    attrs: dict[str, Any] = {}
    if code == 5:
        for line in body:
            if (m := _NORMAL.search(line)):
                attrs.update(TerminatedNormally=True, ReturnValue=int(m.group(1)))
                break
            if (m := _ABNORMAL.search(line)):
                attrs.update(TerminatedNormally=False, TerminatedBySignal=int(m.group(1)))
                break
    elif code == 9 and body:
        attrs["Reason"] = body[0]
    elif code == 12:
        if body and not _CODES.match(body[0]) and body[0] != "Reason unspecified":
            attrs["HoldReason"] = body[0]
        for line in body:
            if (m := _CODES.match(line)):
                attrs.update(HoldReasonCode=int(m.group(1)), HoldReasonSubCode=int(m.group(2)))
    elif code == 4:
        # 25.x: "Job was evicted. Code N Subcode M" when the vacate has a reason
        if (m := _CODES.search(head)):
            attrs.update(ReasonCode=int(m.group(1)), ReasonSubCode=int(m.group(2)))
    elif code == 7 and body:
        attrs["Message"] = body[0]
    return attrs


def _ad_event(ad: Mapping[str, Any]) -> LogEvent | None:
    try:
        code, cluster = int(ad["EventTypeNumber"]), int(ad["Cluster"])
    except (KeyError, TypeError, ValueError):
        return None
    proc = ad.get("Proc", -1)
    return LogEvent(code, cluster, int(proc) if isinstance(proc, int) else -1,
                    str(ad.get("EventTime", "")), str(ad.get("MyType", "")), (), dict(ad))


_DECODER = json.JSONDecoder()


def _json_event(text: str, start: int) -> tuple[LogEvent | None, int] | None:
    try:
        ad, stop = _DECODER.raw_decode(text, start)
    except json.JSONDecodeError:
        # a partial object (the writer is appending) or a broken one: only the end of the
        # data can be partial, so a broken object followed by more text is skipped
        nxt = text.find("\n}\n", start)
        if nxt < 0 or nxt + 3 >= len(text):
            return None
        return None, nxt + 3
    return (_ad_event(ad) if isinstance(ad, dict) else None), stop


def _xml_event(text: str, start: int) -> tuple[LogEvent | None, int] | None:
    if text.startswith(("<?", "<!"), start):  # a file header, if a writer added one
        stop = text.find(">", start)
        return None if stop < 0 else (None, stop + 1)
    if text.startswith(("<classads>", "</classads>"), start):
        return None, text.index(">", start) + 1
    stop = text.find("</c>", start)
    if stop < 0:
        return None
    stop += len("</c>")
    try:
        root = ElementTree.fromstring(text[start:stop])
    except ElementTree.ParseError:
        return None, stop
    ad: dict[str, Any] = {}
    for a in root.findall("a"):
        name, value = a.get("n"), next(iter(a), None)
        if name is None or value is None:
            continue
        v = value.text or ""
        if value.tag == "i":
            ad[name] = int(v)
        elif value.tag == "r":
            ad[name] = float(v)
        elif value.tag == "b":
            ad[name] = value.get("v", "f").lower().startswith("t")
        else:  # s (string), e (expression): as written
            ad[name] = v
    return _ad_event(ad), stop


def event_status(ev: LogEvent) -> tuple[str, str, int | None] | None:
    """What a log event means for its job: (state, detail, code), or None (no change)."""
    a = ev.attrs
    if ev.code in (0, 13):  # submitted, released
        return QUEUED, {0: "submitted", 13: "released"}[ev.code], None
    if ev.code == 4:  # evicted: idle again, it runs again
        why = f" (code {a['ReasonCode']})" if "ReasonCode" in a else ""
        return QUEUED, f"evicted{why}", None
    if ev.code == 7:  # shadow exception: back to idle without an eviction event
        msg = str(a.get("Message", "")).strip()
        return QUEUED, f"shadow exception{': ' + msg if msg else ''}", None
    if ev.code == 1:
        return RUNNING, "executing", None
    if ev.code == 5:
        if a.get("TerminatedNormally") is True and "ReturnValue" in a:
            rv = int(a["ReturnValue"])
            return (DONE, "exited 0", 0) if rv == 0 else (FAILED, f"exit code {rv}", rv)
        if "TerminatedBySignal" in a:
            return FAILED, f"killed by signal {a['TerminatedBySignal']}", None
        return FAILED, "terminated (no exit status in the log)", None
    if ev.code == 9:
        return LOST, f"removed from the queue ({a.get('Reason') or 'aborted'})", None
    if ev.code == 12:
        code = a.get("HoldReasonCode")
        code = int(code) if code is not None else None
        reason = str(a.get("HoldReason") or "held")
        sub = a.get("HoldReasonSubCode")
        codes = f"{code}/{sub}" if sub not in (None, 0, "0") else f"{code}"
        return HELD, f"{reason} (code {codes})" if code is not None else reason, code
    return None
