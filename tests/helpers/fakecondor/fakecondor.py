"""A stand-in for the HTCondor command line, for tests (no HTCondor daemons run here).

Multi-call script: ``fakecondor.py condor_submit|condor_q|condor_rm|condor_release|
condor_hold|condor_history ARGS`` (the ``bin/`` wrappers call it by name). It follows the
interfaces and output formats of the HTCondor manual (https://htcondor.readthedocs.io/;
what the tests cover with it: docs/clusters.md): submit files with macros and the queue
forms, ``-terse``, ``-batch-name``, ``condor_q -json`` (empty output when nothing matches;
``condor_history -json`` prints ``[`` ``]``) and ``-af``, job states, and user job event
logs in the real formats: text (ISO dates for even clusters, ``MM/DD`` dates for odd ones,
so readers must handle both), or JSON or XML and UTC/sub-second times when the pool's
``config.json`` sets ``userlog_format_options`` (as ``DEFAULT_USERLOG_FORMAT_OPTIONS``).
``max_idle``/``max_materialize`` materialise procs gradually (``materialized.jsonl``).

Jobs run as local processes in a scratch sandbox, with only the transferred files and a
near-empty environment; with ``execute_node`` in ``config.json`` they run as on an execute
node that does not mount the submit node's venv (or any listed folder: a private mount
namespace hides them) and has ``PATH=/usr/bin:/bin``. A listed output file that is missing at exit holds the job (code
12); ``allowed_execute_duration`` holds it (code 47); a ``request_cpus`` above
``FAKECONDOR_MAX_CPUS`` stays idle forever. Completed and removed jobs leave the queue
(``condor_history`` still knows them).

State lives in ``$FAKECONDOR_SPOOL``. Faults are injected from ``$FAKECONDOR_SPOOL/faults.json``
(probabilities per job start, seeded, plus ``force``: a list of faults for the next job
starts in order): ``fail`` (exits 1 without output ->
hold 12/2), ``fail_exit`` (runs, but exits 1), ``hold`` (held with ``hold_code`` before it
runs), ``admin_hold`` (held with code 1, as by ``condor_hold``, before it runs: it waits for a
``condor_release``), ``oom`` / ``disk_full`` (killed on the runner's first look after it
started and held with code 34, subcode 102 / 104, HTCondor's out-of-memory text), ``vanish`` (leaves the queue with no event and no history), ``evict`` (killed on the
runner's first look after it started, however fast the job is, and back to idle), ``stuck``
(sleeps until the duration limit holds it), ``shadow`` (event 007 after it started, back to
idle); ``history_errors: N`` makes the next N ``condor_history`` calls fail; ``memory_need_mb: N``
makes every job whose ``request_memory`` is below N MB run out of memory (``oom``). Every finished execution is appended to
``runs.jsonl``, every fault applied to ``faults.jsonl`` and every command invocation to
``calls.jsonl``, for the tests (and the benchmark) to count.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

SPOOL = Path(os.environ.get("FAKECONDOR_SPOOL", "/tmp/fakecondor-spool"))
HOST = "<127.0.0.1:9618?addrs=127.0.0.1-9618&alias=localhost>"
USER = os.environ.get("USER") or os.environ.get("LOGNAME") or "root"


# --------------------------------------------------------------------------- spool helpers
@contextlib.contextmanager
def locked():
    SPOOL.mkdir(parents=True, exist_ok=True)
    with open(SPOOL / "lock", "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _qdir() -> Path:
    d = SPOOL / "queue"
    d.mkdir(parents=True, exist_ok=True)
    return d


def _hdir() -> Path:
    d = SPOOL / "history"
    d.mkdir(parents=True, exist_ok=True)
    return d


def _write_json(path: Path, obj: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(obj))
    os.replace(tmp, path)


def load_queue() -> list[dict]:
    out = []
    for p in sorted(_qdir().glob("*.json")):
        try:
            out.append(json.loads(p.read_text()))
        except (OSError, ValueError):
            pass
    out.sort(key=lambda a: (a["ClusterId"], a["ProcId"]))
    return out


def load_history() -> list[dict]:
    out = []
    for p in sorted(_hdir().glob("*.json")):
        with contextlib.suppress(OSError, ValueError):
            out.append(json.loads(p.read_text()))
    out.sort(key=lambda a: (-a["ClusterId"], -a["ProcId"]))
    return out


def _qpath(ad: dict) -> Path:
    return _qdir() / f"{ad['ClusterId']}.{ad['ProcId']}.json"


def save_ad(ad: dict) -> None:
    _write_json(_qpath(ad), ad)


def to_history(ad: dict) -> None:
    _write_json(_hdir() / f"{ad['ClusterId']}.{ad['ProcId']}.json", ad)
    _qpath(ad).unlink(missing_ok=True)


def faults() -> dict:
    try:
        return json.loads((SPOOL / "faults.json").read_text())
    except (OSError, ValueError):
        return {}


# --------------------------------------------------------------------------- event log
def config() -> dict:
    """The pool's settings (``$FAKECONDOR_SPOOL/config.json``), e.g.
    ``{"userlog_format_options": "JSON UTC SUB_SECOND"}`` (HTCondor's
    ``DEFAULT_USERLOG_FORMAT_OPTIONS``)."""
    try:
        return json.loads((SPOOL / "config.json").read_text())
    except (OSError, ValueError):
        return {}


_MY_TYPE = {0: "SubmitEvent", 1: "ExecuteEvent", 4: "JobEvictedEvent", 5: "JobTerminatedEvent",
            7: "ShadowExceptionEvent", 9: "JobAbortedEvent", 12: "JobHeldEvent",
            13: "JobReleasedEvent"}


def _log_options(ad: dict) -> tuple[str, set[str]]:
    """(format, time flags) of the events written for ``ad``.

    A site's ``userlog_format_options`` applies to every event written here (as for writers
    that follow the pool default, such as the schedd's own events); without it a job's
    ``log_xml = True`` gives XML. Without options the dates alternate between the two text
    forms: ISO for even clusters, ``MM/DD`` (``LEGACY``) for odd ones.
    """
    words = {w.upper() for w in re.split(r"[\s,]+", config().get("userlog_format_options", ""))
             if w}
    fmt = "json" if "JSON" in words else "xml" if "XML" in words else (
        "xml" if ad.get("UserLogUseXML") is True else "text")
    if not words - {"JSON", "XML"}:
        words |= {"LEGACY"} if ad["ClusterId"] % 2 else {"ISO_DATE"}
    return fmt, words


def _stamp(flags: set[str], iso_t: bool) -> str:
    """An event time as HTCondor writes it: local or UTC (then a trailing ``Z``, never a
    numeric offset), ISO or ``MM/DD``, with ``.mmm`` under ``SUB_SECOND``."""
    now = time.time()
    t = time.gmtime(now) if "UTC" in flags else time.localtime(now)
    if "LEGACY" in flags and not iso_t:
        text = time.strftime("%m/%d %H:%M:%S", t)
    else:
        text = time.strftime("%Y-%m-%dT%H:%M:%S" if iso_t else "%Y-%m-%d %H:%M:%S", t)
    if "SUB_SECOND" in flags:
        text += f".{int(now * 1000) % 1000:03d}"
    return text + ("Z" if "UTC" in flags else "")


def _xml_value(v: object) -> str:
    if isinstance(v, bool):
        return f'<b v="{"t" if v else "f"}"/>'
    if isinstance(v, int):
        return f"<i>{v}</i>"
    if isinstance(v, float):
        return f"<r>{v!r}</r>"
    esc = str(v).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return f"<s>{esc}</s>"


def write_event(ad: dict, code: int, text: str, body: list[str] = (),
                attrs: dict | None = None) -> None:
    """Append one event to the job's log: the text form (header, TAB body, ``...``) or the
    event's ClassAd (``attrs``, named as HTCondor names them) as JSON or XML."""
    log = ad.get("UserLog")
    if not log:
        return
    fmt, flags = _log_options(ad)
    if fmt == "text":
        head = (f"{code:03d} ({ad['ClusterId']:03d}.{ad['ProcId']:03d}.000) "
                f"{_stamp(flags, False)} {text}\n")
        data = head + "".join(f"\t{b}\n" for b in body) + "...\n"
    else:
        event = {"MyType": _MY_TYPE.get(code, "FutureEvent"), "EventTypeNumber": code,
                 "Cluster": ad["ClusterId"], "Proc": ad["ProcId"], "Subproc": 0,
                 "EventTime": _stamp(flags, True), **(attrs or {})}
        if fmt == "json":  # one pretty-printed object per event (ClassAdJsonUnParser)
            data = json.dumps(event, indent=2) + "\n"
        else:  # one <c> element per event, no file header (ClassAdXMLUnParser)
            data = "<c>\n" + "".join(f'    <a n="{k}">{_xml_value(v)}</a>\n'
                                     for k, v in event.items()) + "</c>\n"
    with open(log, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        fh.write(data)
        fh.flush()
        fcntl.flock(fh, fcntl.LOCK_UN)


def short_time(secs: int) -> str:
    """HTCondor's short time format: ``1:00:00`` for an hour, ``00:02`` for 2 s."""
    d, h, m, s = secs // 86400, secs // 3600 % 24, secs // 60 % 60, secs % 60
    if d:
        return f"{d}+{h:02d}:{m:02d}:{s:02d}"
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


_USAGE = ["\tUsr 0 00:00:00, Sys 0 00:00:00  -  Run Remote Usage",
          "\tUsr 0 00:00:00, Sys 0 00:00:00  -  Run Local Usage",
          "\tUsr 0 00:00:00, Sys 0 00:00:00  -  Total Remote Usage",
          "\tUsr 0 00:00:00, Sys 0 00:00:00  -  Total Local Usage"]


def ev_terminated(ad: dict, rv: int | None, sig: int | None = None) -> None:
    first = (f"(1) Normal termination (return value {rv})" if sig is None
             else f"(0) Abnormal termination (signal {sig})")
    body = [first, *_USAGE,
            "0  -  Run Bytes Sent By Job", "0  -  Run Bytes Received By Job",
            "0  -  Total Bytes Sent By Job", "0  -  Total Bytes Received By Job",
            "Partitionable Resources :    Usage  Request Allocated",
            f"   Cpus                 :                 {ad.get('RequestCpus', 1)}         1",
            "   Disk (KB)            :        1        1         1",
            "   Memory (MB)          :        0     2048      2048"]
    attrs = ({"TerminatedNormally": True, "ReturnValue": rv} if sig is None
             else {"TerminatedNormally": False, "TerminatedBySignal": sig})
    write_event(ad, 5, "Job terminated.", body, attrs)


def set_held(ad: dict, reason: str, code: int, sub: int = 0) -> None:
    ad.update(JobStatus=5, HoldReason=reason, HoldReasonCode=code, HoldReasonSubCode=sub,
              EnteredCurrentStatus=int(time.time()))
    save_ad(ad)
    write_event(ad, 12, "Job was held.", [reason, f"Code {code} Subcode {sub}"],
                {"HoldReason": reason, "HoldReasonCode": code, "HoldReasonSubCode": sub})


# --------------------------------------------------------------------------- submit files
_MACRO = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_.]*)\)")


def expand(text: str, macros: dict[str, str]) -> str:
    return _MACRO.sub(lambda m: macros.get(m.group(1).lower(), ""), text)


def split_new_args(value: str) -> list[str]:
    """The "new" arguments syntax: double-quoted whole, single quotes group, '' is a quote."""
    v = value.strip()
    if not (v.startswith('"') and v.endswith('"') and len(v) >= 2):
        return v.split()  # old syntax
    v = v[1:-1].replace('""', '"')
    out, cur, inq, have, i = [], [], False, False, 0
    while i < len(v):
        c = v[i]
        if c == "'":
            if inq and i + 1 < len(v) and v[i + 1] == "'":
                cur.append("'")
                i += 2
                continue
            inq, have = not inq, True
        elif c.isspace() and not inq:
            if cur or have:
                out.append("".join(cur))
            cur, have = [], False
        else:
            cur.append(c)
        i += 1
    if cur or have:
        out.append("".join(cur))
    return out


def parse_env(value: str) -> dict[str, str]:
    env = {}
    for word in split_new_args(value) if value.strip().startswith('"') else value.split(";"):
        k, sep, v = word.partition("=")
        if sep and k.strip():
            env[k.strip()] = v
    return env


def parse_submit(text: str, appended: list[str], queue_override: str | None):
    """Returns (commands {lower key: raw value}, custom attrs, queue spec, inline items)."""
    cmds: dict[str, str] = {}
    custom: dict[str, str] = {}
    queue_line, items = None, None
    lines = appended + text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        i += 1
        if not line or line.startswith("#"):
            continue
        if re.match(r"(?i)^queue\b", line):
            if queue_line is not None:
                raise SystemExit("ERROR: only one queue statement is supported here")
            queue_line = line[5:].strip()
            m = re.search(r"(?i)\bfrom\s*\($", queue_line)
            if m:
                items = []
                while i < len(lines) and lines[i].strip() != ")":
                    if lines[i].strip():
                        items.append(lines[i].strip())
                    i += 1
                if i >= len(lines):
                    raise SystemExit("ERROR: queue from ( block is not closed")
                i += 1
                queue_line = queue_line[:m.start()].strip() + " from"
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise SystemExit(f"ERROR: Parse error in submit file: {line!r}")
        key, value = key.strip(), value.strip()
        if key.startswith("+"):
            custom[key[1:]] = value
        elif key.lower().startswith("my."):
            custom[key[3:]] = value
        else:
            cmds[key.lower()] = value
    if queue_override is not None:
        if queue_line is not None:
            raise SystemExit("ERROR: -queue given and the submit file has a queue statement")
        queue_line = queue_override
    if queue_line is None:
        raise SystemExit("ERROR: no queue statement")
    return cmds, custom, queue_line, items


def queue_rows(spec: str, items: list[str] | None, iwd: str) -> list[dict[str, str]]:
    spec = spec.strip()
    if not spec:
        return [{}]
    if re.fullmatch(r"\d+", spec):
        return [{} for _ in range(int(spec))]
    m = re.fullmatch(r"(?i)(?:(\d+)\s+)?([\w, ]+?)\s+(from|in|matching)\s*(.*)", spec)
    if not m:
        raise SystemExit(f"ERROR: cannot parse queue statement {spec!r}")
    names = [n.strip().lower() for n in re.split(r"[,\s]+", m.group(2)) if n.strip()]
    kind, rest = m.group(3).lower(), m.group(4).strip()
    if kind == "from":
        if items is None:
            path = rest if os.path.isabs(rest) else os.path.join(iwd, rest)
            try:
                items = [ln.strip() for ln in Path(path).read_text().splitlines() if ln.strip()]
            except OSError:
                raise SystemExit(f"ERROR: cannot read queue items from {rest}") from None
        words = [[w for w in re.split(r"[,\s]+", it) if w] for it in items]
    elif kind == "in":
        inner = rest.strip().lstrip("(").rstrip(")")
        words = [[w] for w in re.split(r"[,\s]+", inner) if w]
    else:
        words = [[w] for w in sorted(glob.glob(os.path.join(iwd, rest)))]
        words = [[os.path.relpath(w[0], iwd)] for w in words]
    rows = []
    for ws in words:
        row = {n: (ws[k] if k < len(ws) else "") for k, n in enumerate(names)}
        if names and len(ws) > len(names):  # the last variable takes the rest of the line
            row[names[-1]] = " ".join(ws[len(names) - 1:])
        rows.append(row)
    return rows


def condor_submit(argv: list[str]) -> int:
    terse, batch, appended, qover, files = False, None, [], None, []
    it = iter(argv)
    for a in it:
        if a == "-terse":
            terse = True
        elif a in ("-batch-name", "-batch_name"):
            batch = next(it)
        elif a in ("-append", "-a"):
            appended.append(next(it))
        elif a == "-queue":
            qover = next(it)
        elif a.startswith("-") and a != "-":
            print(f"ERROR: unknown option {a}", file=sys.stderr)
            return 1
        else:
            files.append(a)
    if len(files) != 1:
        print("ERROR: exactly one submit file expected", file=sys.stderr)
        return 1
    text = sys.stdin.read() if files[0] == "-" else Path(files[0]).read_text()
    try:
        cmds, custom, qspec, items = parse_submit(text, appended, qover)
    except SystemExit as exc:
        print(str(exc), file=sys.stderr)
        return 1
    iwd0 = cmds.get("initialdir", os.getcwd())
    iwd0 = iwd0 if os.path.isabs(iwd0) else os.path.join(os.getcwd(), iwd0)
    try:
        rows = queue_rows(qspec, items, iwd0)
    except SystemExit as exc:
        print(str(exc), file=sys.stderr)
        return 1
    batch = batch or cmds.get("batch_name")
    ads = []
    with locked():
        counter = SPOOL / "next_cluster"
        cluster = int(counter.read_text()) if counter.exists() else 1
        for proc, row in enumerate(rows):
            macros = {"clusterid": str(cluster), "cluster": str(cluster),
                      "procid": str(proc), "process": str(proc), "step": "0",
                      "itemindex": str(proc), "row": str(proc), **row}
            c = {k: expand(v, macros) for k, v in cmds.items()}
            iwd = c.get("initialdir", os.getcwd())
            iwd = iwd if os.path.isabs(iwd) else os.path.join(os.getcwd(), iwd)

            def rel(p: str, iwd: str = iwd) -> str:
                return p if os.path.isabs(p) else os.path.join(iwd, p)

            exe = c.get("executable")
            if not exe or not os.path.isfile(rel(exe)):
                print(f"ERROR: Executable file {exe} does not exist", file=sys.stderr)
                return 1
            inputs = [s.strip() for s in c.get("transfer_input_files", "").split(",") if s.strip()]
            for f in inputs:
                if not os.path.exists(rel(f)):
                    print(f"ERROR: Can't open \"{rel(f)}\"  with flags 00 (No such file or "
                          "directory)", file=sys.stderr)
                    return 1
            remaps = {}
            for part in c.get("transfer_output_remaps", "").strip().strip('"').split(";"):
                src, sep, dst = part.partition("=")
                if sep:
                    remaps[src.strip()] = dst.strip()
            outs = [s.strip() for s in c.get("transfer_output_files", "").split(",") if s.strip()]
            ad = {
                "ClusterId": cluster, "ProcId": proc, "JobStatus": 1, "QDate": int(time.time()),
                "EnteredCurrentStatus": int(time.time()), "NumJobStarts": 0, "Owner": USER,
                "Iwd": iwd, "Cmd": rel(exe), "Args": split_new_args(c.get("arguments", "")),
                "TransferInput": [rel(f) for f in inputs], "TransferOutput": outs,
                "Remaps": remaps, "Out": rel(c["output"]) if c.get("output") else None,
                "Err": rel(c["error"]) if c.get("error") else None,
                "UserLog": rel(c["log"]) if c.get("log") else None,
                **({"UserLogUseXML": c["log_xml"].strip().lower() in ("true", "t", "1", "yes")}
                   if c.get("log_xml") else {}),
                "Env": parse_env(c.get("environment", "")),
                "RequestCpus": int(c.get("request_cpus", "1") or 1),
                "RequestMemory": size_mb(c.get("request_memory", "")),
                "AllowedExecuteDuration": int(c["allowed_execute_duration"])
                if c.get("allowed_execute_duration") else None,
                "JobBatchName": batch or "", "Attempts": 0,
            }
            for k, v in custom.items():
                v = expand(v, macros)
                try:
                    ad[k] = json.loads(v)
                except ValueError:
                    ad[k] = v
            ads.append(ad)
        limits = _materialize_limits(cmds)
        if limits is None:
            for ad in ads:
                save_ad(ad)
        else:  # late materialisation: the runner brings procs into the queue as it may
            _write_json(_factory_path(cluster), {"limits": limits, "pending": ads})
        counter.write_text(str(cluster + 1))
    if limits is None:
        for ad in ads:
            write_event(ad, 0, f"Job submitted from host: {HOST}", [], {"SubmitHost": HOST})
    else:
        with locked():
            materialize(cluster)
    subprocess.Popen([sys.executable, os.path.abspath(__file__), "_runner", str(cluster)],
                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                     stderr=subprocess.DEVNULL, start_new_session=True, close_fds=True)
    if terse:
        print(f"{cluster}.0 - {cluster}.{len(ads) - 1}")
    else:
        print("Submitting job(s)" + "." * len(ads))
        print(f"{len(ads)} job(s) submitted to cluster {cluster}.")
    return 0


def size_mb(text: str) -> int | None:
    """request_memory in MB (a bare number is MB; K, M, G, T with an optional B)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*([KMGT]?)B?\s*", text or "", re.IGNORECASE)
    if m is None:
        return None
    return int(float(m.group(1)) * 1024 ** ("KMGT".index(m.group(2).upper() or "M") - 1))


# --------------------------------------------------------------------------- late materialisation
def _materialize_limits(cmds: dict[str, str]) -> dict[str, int] | None:
    """``max_idle`` / ``max_materialize`` of a submit file (None: all procs at once)."""
    limits = {k: int(cmds[k]) for k in ("max_idle", "max_materialize") if cmds.get(k)}
    return limits or None


def _factory_path(cluster: int) -> Path:
    d = SPOOL / "factory"
    d.mkdir(parents=True, exist_ok=True)
    return d / f"{cluster}.json"


def materialize(cluster: int) -> bool:
    """Bring the cluster's next procs into the queue while fewer than ``max_idle`` are idle
    and fewer than ``max_materialize`` are in the queue (call with the lock held); each gets
    its submit event as it appears. Returns whether procs are still waiting."""
    path = _factory_path(cluster)
    try:
        factory = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    pending, limits = factory["pending"], factory["limits"]
    mine = [a for a in load_queue() if a["ClusterId"] == cluster]
    idle = sum(1 for a in mine if a["JobStatus"] == 1)
    new = []
    while pending and idle < limits.get("max_idle", 1 << 30) and \
            len(mine) + len(new) < limits.get("max_materialize", 1 << 30):
        ad = pending.pop(0)
        ad.update(QDate=int(time.time()), EnteredCurrentStatus=int(time.time()))
        save_ad(ad)
        new.append(ad)
        idle += 1
    if new:
        _write_json(path, factory)
        with open(SPOOL / "materialized.jsonl", "a") as fh:
            for ad in new:
                fh.write(json.dumps({"cluster": cluster, "proc": ad["ProcId"],
                                     "time": time.time()}) + "\n")
    for ad in new:
        write_event(ad, 0, f"Job submitted from host: {HOST}", [], {"SubmitHost": HOST})
    if not pending:
        path.unlink(missing_ok=True)
    return bool(pending)


def drop_factories(ids: list[str], constraint: str | None) -> None:
    """condor_rm of a whole cluster (by id or constraint) removes its unmaterialised procs."""
    for path in sorted((SPOOL / "factory").glob("*.json")) if (SPOOL / "factory").exists() \
            else []:
        cluster = int(path.stem)
        try:
            pending = json.loads(path.read_text())["pending"]
        except (OSError, ValueError, KeyError):
            continue
        if str(cluster) in ids or (constraint and pending and _match(pending[0], constraint)):
            path.unlink(missing_ok=True)


# --------------------------------------------------------------------------- runner
def _kill(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(Exception):
        proc.wait(timeout=5)


# run in a private mount namespace: every hidden folder is covered by an empty tmpfs, so the
# job really cannot see it (not a convention the job could ignore); a folder that cannot be
# hidden fails the job with a line saying so, never silently
_HIDE = r"""
for d in "$@"; do
  [ "$d" = -- ] && break
  if [ -d "$d" ]; then
    mount -t tmpfs -o size=64k,mode=755 fakecondor-hidden "$d" && [ -z "$(ls -A "$d")" ] ||
      { echo "fakecondor: cannot hide $d from the job" >&2; exit 99; }
  fi
done
while [ "$1" != -- ]; do shift; done
shift
exec "$@"
"""


def execute_node_command(cmd: list[str], hide: list[str]) -> list[str]:
    """``cmd`` run as on an execute node that does not mount ``hide`` (the submit node's
    venv, the project checkout, the remote work folder): ``unshare --mount`` with an empty
    tmpfs over each of them. Pool config: ``{"execute_node": {"hide": [...], "path":
    "/usr/bin:/bin"}}`` (the job's PATH, and HOME is its sandbox)."""
    unshare = shutil.which("unshare") or "/usr/bin/unshare"
    return [unshare, "--mount", "--propagation", "private", "/bin/sh", "-c", _HIDE, "hide",
            *hide, "--", *cmd]


def _start(ad: dict, rng: random.Random, fl: dict) -> tuple[subprocess.Popen | None, str]:
    """Start one job (or apply a fault). Returns (process, fault name)."""
    roll = rng.random()
    fault = ""
    acc = 0.0
    for name in ("vanish", "hold", "fail", "fail_exit", "evict", "stuck", "shadow"):
        acc += float(fl.get(name, 0.0))
        if roll < acc:
            fault = name
            break
    if fl.get("force"):  # forced faults for the next job starts, in order (consumed)
        fault = fl["force"].pop(0)
        _write_json(SPOOL / "faults.json", fl)
    need = fl.get("memory_need_mb")
    if not fault and need and (ad.get("RequestMemory") or 0) < int(need):
        fault = "oom"  # the job needs more memory than it asked for
    if fault:
        with open(SPOOL / "faults.jsonl", "a") as fh:
            fh.write(json.dumps({"cluster": ad["ClusterId"], "proc": ad["ProcId"],
                                 "fault": fault, "time": time.time()}) + "\n")
    if fault == "vanish":
        _qpath(ad).unlink(missing_ok=True)  # gone: no event, no history
        return None, fault
    if fault == "hold":
        set_held(ad, "Transfer input files failure at execution point slot1@localhost "
                     "(fake fault)", int(fl.get("hold_code", 13)), 0)
        return None, fault
    if fault == "admin_hold":  # an administrator's condor_hold: only condor_release undoes it
        set_held(ad, "via condor_hold (by user admin)", 1, 0)
        return None, fault
    sandbox = SPOOL / "sandbox" / f"{ad['ClusterId']}.{ad['ProcId']}.{ad['NumJobStarts']}"
    shutil.rmtree(sandbox, ignore_errors=True)
    sandbox.mkdir(parents=True)
    exe = sandbox / os.path.basename(ad["Cmd"])
    shutil.copy2(ad["Cmd"], exe)
    for f in ad["TransferInput"]:
        src = f.rstrip("/")
        if os.path.isdir(src):
            if f.endswith("/"):
                shutil.copytree(src, sandbox, dirs_exist_ok=True)
            else:
                shutil.copytree(src, sandbox / os.path.basename(src))
        else:
            shutil.copy2(src, sandbox / os.path.basename(src))
    env = {"_CONDOR_SCRATCH_DIR": str(sandbox), "_CONDOR_SLOT": "slot1", **ad["Env"]}
    cmd = [str(exe), *ad["Args"]]
    if fault == "fail":
        cmd = ["/bin/sh", "-c", "echo 'fake fault: crashed' >&2; exit 1"]
    elif fault == "stuck":
        cmd = ["/bin/sleep", "3600"]
    node = config().get("execute_node") or {}
    if node:  # an execute node with its own filesystem view (see execute_node_command)
        env.update(PATH=node.get("path", "/usr/bin:/bin"), HOME=str(sandbox))
        cmd = execute_node_command(cmd, node.get("hide", []))
    ad.update(JobStatus=2, NumJobStarts=ad["NumJobStarts"] + 1,
              EnteredCurrentStatus=int(time.time()), Sandbox=str(sandbox), Fault=fault,
              StartTime=time.time())
    save_ad(ad)
    write_event(ad, 1, f"Job executing on host: {HOST}",
                ["SlotName: slot1@localhost", f'CondorScratchDir = "{sandbox}"', "Cpus = 1"],
                {"ExecuteHost": HOST, "SlotName": "slot1@localhost",
                 "CondorScratchDir": str(sandbox), "Cpus": 1})
    out = open(sandbox / ".stdout", "wb")
    err = open(sandbox / ".stderr", "wb")
    proc = subprocess.Popen(cmd, cwd=sandbox, env=env, stdin=subprocess.DEVNULL, stdout=out,
                            stderr=err, start_new_session=True)
    out.close()
    err.close()
    return proc, fault


def _finish(ad: dict, proc: subprocess.Popen, fault: str) -> None:
    sandbox = Path(ad["Sandbox"])
    rv = proc.returncode
    sig = -rv if rv is not None and rv < 0 else None
    if fault == "fail_exit":
        rv = 1
    for src, key in ((".stdout", "Out"), (".stderr", "Err")):
        if ad.get(key):
            with contextlib.suppress(OSError):
                shutil.copyfile(sandbox / src, ad[key])
    names = ad["TransferOutput"] or [p.name for p in sandbox.iterdir()
                                     if p.is_file() and not p.name.startswith(".")
                                     and p.name != os.path.basename(ad["Cmd"])]
    for name in names:
        src = sandbox / name
        if not src.exists():
            set_held(ad, f"Transfer output files failure at execution point slot1@localhost "
                         f"while sending files to access point localhost. Details: reading "
                         f"from file {src}: (errno 2) No such file or directory", 12, 2)
            return
        dst = ad["Remaps"].get(name, name)
        dst = dst if os.path.isabs(dst) else os.path.join(ad["Iwd"], dst)
        shutil.copyfile(src, dst + ".condor-transfer")
        os.replace(dst + ".condor-transfer", dst)
    ev_terminated(ad, None if sig else rv, sig)
    ad.update(JobStatus=4, ExitCode=None if sig else rv, ExitBySignal=sig is not None,
              EnteredCurrentStatus=int(time.time()), CompletionDate=int(time.time()))
    to_history(ad)
    with open(SPOOL / "runs.jsonl", "a") as fh:
        fh.write(json.dumps({"cluster": ad["ClusterId"], "proc": ad["ProcId"],
                             "args": ad["Args"], "iwd": ad["Iwd"], "exit": rv,
                             "fault": fault, "start": ad["StartTime"],
                             "memory": ad.get("RequestMemory"),
                             "end": time.time()}) + "\n")
    shutil.rmtree(sandbox, ignore_errors=True)


def runner(cluster: int) -> int:
    slots = int(os.environ.get("FAKECONDOR_SLOTS", "2"))
    max_cpus = int(os.environ.get("FAKECONDOR_MAX_CPUS", "64"))
    running: dict[int, tuple[subprocess.Popen, str]] = {}
    while True:
        with locked():
            fl = faults()
            ads = {a["ProcId"]: a for a in load_queue() if a["ClusterId"] == cluster}
            # jobs removed/held/vanished while running: kill them
            for proc_id in list(running):
                ad = ads.get(proc_id)
                if ad is None or ad["JobStatus"] != 2:
                    _kill(running.pop(proc_id)[0])
            for proc_id, (p, fault) in list(running.items()):
                ad = ads[proc_id]
                limit = ad.get("AllowedExecuteDuration")
                if fault == "evict":  # before the exit check: a fast job is evicted too
                    _kill(p)
                    running.pop(proc_id)
                    ad.update(JobStatus=1, EnteredCurrentStatus=int(time.time()), Fault="")
                    save_ad(ad)
                    # 25.x names the vacate reason in the header (the code here is only a
                    # placeholder: the executor reads no meaning into it)
                    write_event(ad, 4, "Job was evicted. Code 21 Subcode 0",
                                ["(0) Job was not checkpointed.", *[u.strip() for u in _USAGE[:2]],
                                 "0  -  Run Bytes Sent By Job", "0  -  Run Bytes Received By Job"],
                                {"Checkpointed": False, "TerminatedAndRequeued": False,
                                 "ReasonCode": 21, "ReasonSubCode": 0})
                elif fault in ("oom", "disk_full"):  # the starter's resource limit hit
                    _kill(p)
                    running.pop(proc_id)
                    mem = ad.get("RequestMemory") or 0
                    if fault == "oom":
                        set_held(ad, f"Job has gone over cgroup memory limit of {mem} "
                                     f"megabytes. Last measured usage: {mem + 1} megabytes.  "
                                     "Consider resubmitting with a higher request_memory.",
                                 34, 102)
                    else:
                        set_held(ad, "Job has exceeded its disk limit (request_disk). "
                                     "Consider resubmitting with a higher request_disk.",
                                 34, 104)
                elif fault == "shadow":  # the shadow failed: back to idle, no 004 event
                    _kill(p)
                    running.pop(proc_id)
                    ad.update(JobStatus=1, EnteredCurrentStatus=int(time.time()), Fault="")
                    save_ad(ad)
                    msg = "Error from slot1@localhost: (fake fault) shadow lost the starter"
                    write_event(ad, 7, "Shadow exception!",
                                [msg, "0  -  Run Bytes Sent By Job",
                                 "0  -  Run Bytes Received By Job"], {"Message": msg})
                elif p.poll() is not None:
                    running.pop(proc_id)
                    _finish(ad, p, fault)
                elif limit and time.time() - ad["StartTime"] > limit:
                    _kill(p)
                    running.pop(proc_id)
                    set_held(ad, "The job exceeded allowed execute duration of "
                                 f"{short_time(int(limit))}", 47, 0)
            waiting = materialize(cluster)
            ads = {a["ProcId"]: a for a in load_queue() if a["ClusterId"] == cluster}
            if not ads and not running and not waiting:
                return 0
            for proc_id, ad in sorted(ads.items()):
                if len(running) >= slots:
                    break
                if ad["JobStatus"] != 1 or proc_id in running or ad["RequestCpus"] > max_cpus:
                    continue
                seed = int(fl.get("seed", 0))
                rng = random.Random(f"{seed}-{cluster}-{proc_id}-{ad['NumJobStarts']}"
                                    f"-{ad.get('Attempts', 0)}-{ad['Args']}")
                ad["Attempts"] = ad.get("Attempts", 0) + 1
                p, fault = _start(ad, rng, fl)
                if p is not None:
                    running[proc_id] = (p, fault)
        time.sleep(0.05)


# --------------------------------------------------------------------------- queries
def _select(ads: list[dict], ids: list[str], constraint: str | None) -> list[dict]:
    out = []
    for ad in ads:
        if ids and not any(i == str(ad["ClusterId"]) or i == f"{ad['ClusterId']}.{ad['ProcId']}"
                           for i in ids):
            continue
        if constraint and not _match(ad, constraint):
            continue
        out.append(ad)
    return out


def _match(ad: dict, expr: str) -> bool:
    """Tiny ClassAd subset: ATTR == value, joined with &&."""
    for part in expr.split("&&"):
        m = re.fullmatch(r"\s*\(?\s*(\w+)\s*(==|!=|=\?=)\s*(.+?)\s*\)?\s*", part)
        if not m:
            raise SystemExit(f"ERROR: unsupported constraint {expr!r}")
        attr, op, raw = m.groups()
        try:
            val = json.loads(raw)
        except ValueError:
            val = raw
        cur = next((v for k, v in ad.items() if k.lower() == attr.lower()), None)
        if (cur == val) != (op in ("==", "=?=")):
            return False
    return True


_PUBLIC = {"ClusterId", "ProcId", "JobStatus", "QDate", "EnteredCurrentStatus", "NumJobStarts",
           "Owner", "Iwd", "Cmd", "JobBatchName", "HoldReason", "HoldReasonCode",
           "HoldReasonSubCode", "ExitCode", "ExitBySignal", "CompletionDate", "RequestCpus"}


def _public(ad: dict) -> dict:
    out = {k: v for k, v in ad.items() if k in _PUBLIC or k[:1].isupper() and k not in
           {"Args", "TransferInput", "TransferOutput", "Remaps", "Out", "Err", "UserLog",
            "Env", "Sandbox", "Fault", "StartTime", "Attempts", "AllowedExecuteDuration"}}
    out["Args"] = " ".join(ad.get("Args", []))
    out["Requirements"] = "/Expr(TARGET.Cpus >= RequestCpus)/"
    return out


def _print_ads(ads: list[dict], argv: list[str], history: bool = False) -> int:
    attrs, af, af_opts, as_json = None, None, "", False
    ids, constraint, limit = [], None, None
    it = iter(argv)
    for a in it:
        if a == "-json":
            as_json = True
        elif a in ("-attributes", "-attr"):
            attrs = next(it).split(",")
        elif a.startswith("-af") or a.startswith("-autoformat"):
            af_opts = a.partition(":")[2]
            af = []
        elif a == "-constraint":
            constraint = next(it)
        elif a == "-limit":
            limit = int(next(it))
        elif a in ("-nobatch", "-batch", "-allusers", "-totals"):
            pass
        elif a == "-hold":
            constraint = "JobStatus == 5"
        elif a.startswith("-"):
            print(f"ERROR: unknown option {a}", file=sys.stderr)
            return 1
        elif af is not None:
            af.append(a)
        elif re.fullmatch(r"\d+(\.\d+)?", a):
            ids.append(a)
        else:
            pass  # an owner name: all jobs are ours here
    try:
        sel = _select(ads, ids, constraint)
    except SystemExit as exc:
        print(str(exc), file=sys.stderr)
        return 1
    if limit is not None:
        sel = sel[:limit]
    pub = [_public(a) for a in sel]
    if as_json:
        if not pub:  # condor_q prints nothing; condor_history always prints the brackets
            if history:
                print("[\n]")
            return 0
        chunks = []
        for ad in pub:
            if attrs:
                ad = {k: v for k, v in ad.items() if k in attrs}
            chunks.append(json.dumps(dict(sorted(ad.items())), indent=2)
                          .replace('"/Expr(', '"\\/Expr(').replace(')/"', ')\\/"'))
        print("[\n" + "\n,\n".join(chunks) + "\n]")
        return 0
    if af is not None:
        if "h" in af_opts:
            print(" ".join(af))
        for ad in pub:
            vals = [str(ad[k]) if k in ad and ad[k] is not None else "undefined" for k in af]
            if "j" in af_opts:
                vals.insert(0, f"{ad['ClusterId']}.{ad['ProcId']}")
            print(" ".join(vals))
        return 0
    print(" ID      OWNER  SUBMITTED   RUN_TIME ST PRI SIZE CMD")  # human form, not parsed
    for ad in pub:
        st = " IRCXH>S"[ad["JobStatus"]]
        print(f"{ad['ClusterId']}.{ad['ProcId']}  {ad['Owner']}  -  - {st} 0 0.0 {ad['Cmd']}")
    return 0


def condor_q(argv: list[str]) -> int:
    return _print_ads(load_queue(), argv)


def condor_history(argv: list[str]) -> int:
    with locked():  # a schedd that does not answer: "[" and exit 1 (faults: history_errors)
        fl = faults()
        if int(fl.get("history_errors", 0)) > 0:
            fl["history_errors"] = int(fl["history_errors"]) - 1
            _write_json(SPOOL / "faults.json", fl)
            print("[")
            print("Error: Failed to connect to schedd (fake fault)", file=sys.stderr)
            return 1
    return _print_ads(load_history(), argv, history=True)


def _control(argv: list[str], verb: str, apply) -> int:
    ids = []
    constraint = None
    it = iter(argv)
    for a in it:
        if a == "-constraint":
            constraint = next(it)
        elif a in ("-reason",):
            next(it)
        elif not a.startswith("-"):
            ids.append(a)
    rc = 0
    with locked():
        if verb == "remove":
            drop_factories(ids, constraint)
        ads = load_queue()
        for target in ids or ([None] if constraint else []):
            sel = _select(ads, [target] if target else [], constraint)
            if not sel:
                what = f"cluster {target}" if target and "." not in target else f"job {target}"
                print(f"Couldn't find/{verb} all jobs in {what}", file=sys.stderr)
                rc = 1
                continue
            for ad in sel:
                apply(ad)
            if target and "." in target:
                print(f"Job {target} marked for {'removal' if verb == 'remove' else verb}")
            elif target:
                print(f"All jobs in cluster {target} have been marked for "
                      f"{'removal' if verb == 'remove' else verb}")
            else:
                print(f"All jobs matching constraint ({constraint}) have been marked for "
                      f"{'removal' if verb == 'remove' else verb}")
    return rc


def condor_rm(argv: list[str]) -> int:
    def apply(ad: dict) -> None:
        ad.update(JobStatus=3, EnteredCurrentStatus=int(time.time()))
        write_event(ad, 9, "Job was aborted.", [f"via condor_rm (by user {USER})"],
                    {"Reason": f"via condor_rm (by user {USER})"})
        to_history(ad)
    return _control(argv, "remove", apply)


def condor_release(argv: list[str]) -> int:
    def apply(ad: dict) -> None:
        if ad["JobStatus"] != 5:
            return
        ad.update(JobStatus=1, EnteredCurrentStatus=int(time.time()))
        for k in ("HoldReason", "HoldReasonCode", "HoldReasonSubCode"):
            ad.pop(k, None)
        save_ad(ad)
        write_event(ad, 13, "Job was released.", [f"via condor_release (by user {USER})"],
                    {"Reason": f"via condor_release (by user {USER})"})
    return _control(argv, "release", apply)


def condor_hold(argv: list[str]) -> int:
    def apply(ad: dict) -> None:
        if ad["JobStatus"] in (1, 2):
            set_held(ad, f"via condor_hold (by user {USER})", 1, 0)
    return _control(argv, "hold", apply)


COMMANDS = {"condor_submit": condor_submit, "condor_q": condor_q, "condor_rm": condor_rm,
            "condor_release": condor_release, "condor_hold": condor_hold,
            "condor_history": condor_history}


def _record_call(name: str, argv: list[str]) -> None:
    """One line per command invocation in ``calls.jsonl`` (the tests and the benchmark count
    how often the schedd is asked; one small O_APPEND write, so no lock is needed)."""
    SPOOL.mkdir(parents=True, exist_ok=True)
    with open(SPOOL / "calls.jsonl", "a") as fh:
        fh.write(json.dumps({"cmd": name, "args": argv, "time": time.time()}) + "\n")


def main() -> int:
    if len(sys.argv) >= 3 and sys.argv[1] == "_runner":
        return runner(int(sys.argv[2]))
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        print(f"usage: fakecondor.py {{{','.join(COMMANDS)}}} ARGS", file=sys.stderr)
        return 2
    _record_call(sys.argv[1], sys.argv[2:])
    return COMMANDS[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    raise SystemExit(main())
