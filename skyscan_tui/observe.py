"""Headless observability of a running scan: ``OUTDIR/progress.json`` and ``OUTDIR/partial.npz``.

The engine drives one :class:`ScanObserver` per run when the scan has an output folder, so
both front ends (and a scan nobody watches, on a cluster login node) get the same files:

* ``progress.json``: the engine's numbers (:meth:`skyscan_tui.engine.ScanEngine.snapshot`:
  state, per-round tallies, rate, ETA, failures) plus the executor's own status
  (:meth:`executors.base.Executor.status`, e.g. remote job counts and holds). Rewritten
  atomically (temp file, fsync, ``os.replace``: :mod:`skyscan_tui.fileio`), at most once per
  ``MIN_WRITE_INTERVAL`` for progress and at once for a change of state (a round starts or
  ends, the scan ends or fails), so a reader always finds the old or the new complete file.
* ``partial.npz``: the result so far (finished rounds plus the finished pixels of the
  running round) as a skyreader ``.npz``, every ``partial_interval`` seconds; removed once the
  final result is saved (:meth:`ScanObserver.saved`).

:func:`run_lines` turns the per-round timing the engine records in ``result.meta`` into the
summary's lines.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from skyscan_tui.errors import UserError
from skyscan_tui.fileio import atomic_write_bytes, atomic_write_text

__all__ = ["PROGRESS_FILE", "PARTIAL_FILE", "ScanObserver", "parse_partial_interval",
           "resolve_partial_interval", "read_progress", "run_lines", "job_status_lines",
           "AUTO_PARTIAL_LOCAL",
           "AUTO_PARTIAL_REMOTE", "MIN_WRITE_INTERVAL"]

PROGRESS_FILE = "progress.json"
PARTIAL_FILE = "partial.npz"
FORMAT = "skyscan-progress"
VERSION = 1
#: [s] between rewrites of progress.json for progress alone (state changes write at once)
MIN_WRITE_INTERVAL = 1.0
#: [s] a quiet scan still rewrites progress.json this often (``updated`` shows it is alive)
HEARTBEAT = 10.0
#: [s] default partial-result interval of local executors: a scan shorter than this (a
#: "short" local scan) writes none
AUTO_PARTIAL_LOCAL = 300.0
#: [s] ... of remote executors (slower, and watched from afar)
AUTO_PARTIAL_REMOTE = 120.0
#: [s] shortest partial-result interval accepted
MIN_PARTIAL_INTERVAL = 1.0


def parse_partial_interval(text: str | float | None) -> float | None | str:
    """``--partial-interval`` as given: "auto" (also None), 0/"off" (None: never) or seconds.

    >>> parse_partial_interval("off"), parse_partial_interval("90"), parse_partial_interval(None)
    (None, 90.0, 'auto')
    """
    if text is None or (isinstance(text, str) and text.strip().lower() == "auto"):
        return "auto"
    if isinstance(text, str) and text.strip().lower() in ("off", "none", "no"):
        return None
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise UserError(f"--partial-interval {text!r}: expected seconds, 'auto' or 'off'"
                        ) from None
    if not math.isfinite(value) or value < 0:
        raise UserError(f"--partial-interval {text!r}: expected seconds ≥ 0")
    if value == 0:
        return None
    if value < MIN_PARTIAL_INTERVAL:
        raise UserError(f"--partial-interval must be at least {MIN_PARTIAL_INTERVAL:g} s "
                        "(or 0/off)")
    return value


def resolve_partial_interval(value: float | None | str, remote: bool) -> float | None:
    """Seconds between partial results (None: off); "auto" depends on the executor."""
    if value == "auto":
        return AUTO_PARTIAL_REMOTE if remote else AUTO_PARTIAL_LOCAL
    return None if value is None else float(value)


def read_progress(outdir: str | Path) -> dict[str, Any] | None:
    """``OUTDIR/progress.json`` as a dict (None if there is none)."""
    path = Path(outdir) / PROGRESS_FILE
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def _clean(obj: Any) -> Any:
    """JSON-ready: NaN and infinities become null (progress.json is strict JSON)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    if hasattr(obj, "item") and not isinstance(obj, str):  # numpy scalars
        return _clean(obj.item())
    return obj


def _weak(fn: Callable[[], Any], dead: Callable[[], Any]) -> Callable[[], Any]:
    """``fn`` without a strong reference to its object (for bound methods)."""
    import weakref

    if not hasattr(fn, "__self__"):
        return fn
    ref = weakref.WeakMethod(fn)  # type: ignore[arg-type]

    def call() -> Any:
        method = ref()
        return dead() if method is None else method()
    return call


class ScanObserver:
    """Writes ``progress.json`` and ``partial.npz`` for one run of an engine.

    ``snapshot()`` returns the engine's numbers, ``executor_status()`` the executor's, and
    ``partial()`` the result so far (or None); ``partial_interval`` [s] or None (off).
    Errors writing the files are logged once and never stop the scan.
    """

    def __init__(self, outdir: str | Path, snapshot: Callable[[], dict[str, Any]],
                 executor_status: Callable[[], dict[str, Any]],
                 partial: Callable[[], Any], partial_interval: float | None) -> None:
        self.outdir = Path(outdir)
        # weak: the engine owns the observer, and a cycle would keep a finished engine (and
        # its folder lock) alive until the garbage collector runs
        self._snapshot = _weak(snapshot, dict)
        self._executor_status = _weak(executor_status, dict)
        self._partial = _weak(partial, lambda: None)
        self.partial_interval = partial_interval
        self.t_start = time.monotonic()
        self.started = time.time()
        self.state = "running"
        self.error = ""
        self.files: dict[str, str] = {}
        self.partial_info: dict[str, Any] | None = None
        self.writes = 0
        #: the executor's last status, as written to progress.json (``jobs_line``)
        self.executor_status: dict[str, Any] = {}
        self._last_write = -math.inf
        self._last_partial = self.t_start
        self._dirty = True
        self._failed_once = False

    # ---------------------------------------------------------------- cadence
    def changed(self) -> None:
        """Progress happened: written within MIN_WRITE_INTERVAL."""
        self._dirty = True
        self.tick()

    def tick(self) -> None:
        """Called often by the engine: write when due (cheap otherwise)."""
        now = time.monotonic()
        if self.partial_interval is not None and self.state == "running" \
                and now - self._last_partial >= self.partial_interval:
            self._last_partial = now
            self.write_partial()
        since = now - self._last_write
        if (self._dirty and since >= MIN_WRITE_INTERVAL) or since >= HEARTBEAT:
            self.write()

    def event(self) -> None:
        """A change of state (a round began or ended): written at once."""
        self.write()

    def finish(self, state: str, error: str = "") -> None:
        """The run ended: ``finished``, ``cancelled`` or ``failed`` (with ``error``)."""
        self.state, self.error = state, error
        self.write()

    def saved(self, paths: dict[str, Any]) -> None:
        """The front end saved the final result: name its files, drop the partial one."""
        self.files = {k: str(v) for k, v in paths.items()}
        try:
            (self.outdir / PARTIAL_FILE).unlink(missing_ok=True)
        except OSError:
            pass
        self.partial_info = None
        self.write()

    # ---------------------------------------------------------------- files
    def document(self) -> dict[str, Any]:
        """The ``progress.json`` content: state, timing, scan numbers, executor status, files."""
        snap = self._snapshot()
        try:
            executor = self._executor_status()
        except Exception as exc:  # an executor's status must not stop the scan
            executor = {"error": f"{type(exc).__name__}: {exc}"[:200]}
        # a fresh dict each time, never changed after: the app reads it from its own thread
        self.executor_status = executor
        doc = {"format": FORMAT, "version": VERSION, "state": self.state,
               "pid": os.getpid(), "started": round(self.started, 3),
               "updated": round(time.time(), 3),
               "elapsed_s": round(time.monotonic() - self.t_start, 3), **snap,
               "executor_status": executor,
               "partial": self.partial_info,
               "partial_interval_s": self.partial_interval}
        if self.error:
            doc["error"] = self.error
        if self.files:
            doc["files"] = self.files
        return _clean(doc)

    def write(self) -> None:
        """Write ``progress.json`` now, atomically (a failure is logged once, never raised)."""
        self._last_write = time.monotonic()
        self._dirty = False
        try:
            text = json.dumps(self.document(), indent=1, default=str)
            atomic_write_text(self.outdir / PROGRESS_FILE, text + "\n")
            self.writes += 1
        except (OSError, TypeError, ValueError) as exc:
            self._warn(exc)

    def write_partial(self) -> None:
        """Write the result so far, if any, to ``partial.npz`` atomically (failures logged)."""
        try:
            result = self._partial()
            if result is None or not result.levels:
                return
            atomic_write_bytes(self.outdir / PARTIAL_FILE, result.to_npz_bytes())
        except (OSError, ValueError) as exc:
            self._warn(exc)
            return
        self.partial_info = {
            "file": PARTIAL_FILE, "written": round(time.time(), 3),
            "pixels": {str(n): int(len(lv)) for n, lv in sorted(result.levels.items())}}
        self._dirty = True

    def _warn(self, exc: BaseException) -> None:
        if not self._failed_once:
            import logging

            self._failed_once = True
            logging.getLogger(__name__).warning("cannot write the progress files in %s: %s",
                                                self.outdir, exc)


# ---------------------------------------------------------------------- summary lines
def run_lines(meta: dict[str, Any]) -> list[str]:
    """The summary's lines on how the scan ran.

    Per-round wall time [s], pixels/s, CPU seconds, and the remote job counts (empty for
    results that do not record them)."""
    lines: list[str] = []
    for r in meta.get("rounds") or []:
        cpu = r.get("cpu_s")
        rate = r.get("pixels_per_s")
        text = (f"Round {r['round']} (nside {r['nside']}): {r['pixels']:,} pixels, "
                f"{r['computed']:,} fits computed in {r['wall_s']:.2f} s"
                + (f" ({rate:,.1f} pixels/s)" if rate is not None else ""))
        text += f", CPU {cpu:.2f} s" if cpu is not None else ", CPU not measured"
        if r.get("restored"):
            text += f"; {r['restored']:,} fits restored from the checkpoint"
        if r.get("failed"):
            text += f"; {r['failed']:,} failed"
        lines.append(text)
    timing = meta.get("timing") or {}
    if timing:
        cpu = timing.get("cpu_s")
        lines.append(f"Time: {timing['elapsed_s']:.2f} s in all, {timing['work_s']:.2f} s of "
                     "fitting, " + (f"CPU {cpu:.2f} s (workers' CPU time in the reco's fits)"
                                    if cpu is not None else "CPU not measured by the executor"))
    jobs = jobs_line(meta.get("executor_status") or {})
    if jobs:
        lines.append(jobs)
    return lines


_HOLD_ACTIONS = {"wait": "waiting for its release", "release": "released",
                 "fail": "a failure: resubmitted", "resubmit": "resubmitted",
                 "grow": "resubmitted with more"}


def job_status_lines(status: dict[str, Any], max_holds: int = 3) -> list[str]:
    """A remote executor's ``status()`` in a few short lines (the app's scan status).

    The jobs by state, each current hold with its cause and what is done about it, and the
    latest hold or failure; empty for executors without jobs."""
    jobs = status.get("jobs")
    if not isinstance(jobs, dict):
        return []
    counts = " · ".join(f"{v} {k}" for k, v in jobs.items() if v) or "none yet"
    lines = [f"jobs ({status.get('scheduler', 'remote')}): {counts}"]
    holds = [h for h in status.get("holds") or [] if isinstance(h, dict)]
    for h in holds[:max_holds]:
        code = h.get("code")
        sub = h.get("subcode")
        codes = "" if code is None else f" (code {code}{f'/{sub}' if sub else ''})"
        cause = h.get("cause") or h.get("reason") or "held"
        action = _HOLD_ACTIONS.get(str(h.get("action")), str(h.get("action") or ""))
        lines.append(f"job {h.get('job')} held{codes}: {cause}"
                     + (f" — {action}" if action else ""))
    if len(holds) > max_holds:
        lines.append(f"… and {len(holds) - max_holds} more held")
    recent = [e for e in status.get("recent") or [] if isinstance(e, dict)]
    if recent:
        e = recent[-1]
        what = e.get("cause") or str(e.get("reason", "")).split(";")[0][:80]
        lines.append(f"last {'hold' if e.get('kind') == 'held' else e.get('kind', 'event')}: "
                     f"job {e.get('job')} {what}"
                     + (f" → {e['action']}" if e.get("action") else ""))
    return lines


def jobs_line(status: dict[str, Any]) -> str:
    """A remote executor's job counts (``Executor.status()``) as one line.

    "" without any (local executors). The summary shows it."""
    jobs = status.get("jobs") if isinstance(status, dict) else None
    if not isinstance(jobs, dict):
        return ""
    c = status.get("counters") or {}
    return (f"Jobs ({status.get('scheduler', 'remote')}): "
            + ", ".join(f"{v} {k}" for k, v in jobs.items())
            + f"; {c.get('jobs_submitted', 0)} submitted, "
              f"{c.get('resubmitted', 0)} resubmitted, {c.get('holds', 0)} holds, "
              f"{c.get('failures', 0)} failures")
