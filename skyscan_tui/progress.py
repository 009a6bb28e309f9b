"""Headless progress display: a one-line bar on a terminal, plain lines otherwise."""

from __future__ import annotations

import json
import math
import sys
import time
from typing import TextIO

from skyscan_tui.engine import (
    PixelsDone,
    RoundFinished,
    RoundStarted,
    ScanFinished,
    ScanLog,
    ScanUpdate,
)

__all__ = ["ProgressPrinter", "format_eta"]


def format_eta(seconds: float) -> str:
    """A duration [s] as ``H:MM:SS`` or ``MM:SS``; ``--:--`` when unknown.

    >>> format_eta(75), format_eta(3725.4), format_eta(float("nan"))
    ('01:15', '1:02:05', '--:--')
    """
    if not math.isfinite(seconds) or seconds < 0:
        return "--:--"
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


class ProgressPrinter:
    """Consumes engine updates. ``mode``: "bar" (TTY), "lines" (logs) or "jsonl"."""

    def __init__(self, stream: TextIO | None = None, mode: str | None = None,
                 interval: float = 2.0) -> None:
        self.stream = stream or sys.stderr
        is_tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.mode = mode or ("bar" if is_tty else "lines")
        self.interval = interval
        self._last = 0.0
        self._nside = 0

    def __call__(self, update: ScanUpdate) -> None:
        """Print one scan update in this reporter's mode."""
        if self.mode == "jsonl":
            self._jsonl(update)
        elif isinstance(update, RoundStarted):
            self._nside = update.nside
            self._line(f"round {update.round + 1}: nside {update.nside}, "
                       f"{update.n_pixels} pixels ({update.n_tasks} fits)")
        elif isinstance(update, PixelsDone):
            now = time.monotonic()
            if self.mode == "bar" and now - self._last > 0.1:
                self._last = now
                self._bar(update)
            elif self.mode == "lines" and now - self._last > self.interval:
                self._last = now
                self._line(self._status(update))
        elif isinstance(update, RoundFinished):
            self._line(f"round {update.round + 1} done: best nside-{update.nside} pixel "
                       f"{update.best_ipix}, -log L {update.best_llh:.3f}"
                       + (f", {update.n_failed} failed" if update.n_failed else ""))
        elif isinstance(update, ScanLog):
            self._line(f"{update.level}: {update.message}")
        elif isinstance(update, ScanFinished):
            state = "cancelled" if update.cancelled else "finished"
            self._line(f"scan {state} in {update.elapsed:.1f} s")

    def _status(self, u: PixelsDone) -> str:
        pct = 100.0 * u.done / max(u.total, 1)
        return (f"{pct:5.1f}% {u.done}/{u.total} fits  nside {u.nside} "
                f"{u.round_done}/{u.round_total}  {u.rate:,.0f} fits/s  "
                f"ETA {format_eta(u.eta)}")

    def _bar(self, u: PixelsDone) -> None:
        width = 24
        filled = int(width * u.done / max(u.total, 1))
        bar = "█" * filled + "·" * (width - filled)
        self.stream.write(f"\r[{bar}] {self._status(u)}\x1b[K")
        self.stream.flush()

    def _line(self, text: str) -> None:
        if self.mode == "bar":
            self.stream.write("\r\x1b[K")
        self.stream.write(text + "\n")
        self.stream.flush()

    def _jsonl(self, update: ScanUpdate) -> None:
        if isinstance(update, PixelsDone):
            obj = {"type": "progress", "round": update.round, "nside": update.nside,
                   "round_done": update.round_done, "round_total": update.round_total,
                   "done": update.done, "total": update.total,
                   "rate": round(update.rate, 3),
                   "eta": None if not math.isfinite(update.eta) else round(update.eta, 3)}
        elif isinstance(update, ScanFinished):
            obj = {"type": "finished", "cancelled": update.cancelled,
                   "elapsed": round(update.elapsed, 3)}
        elif isinstance(update, RoundStarted | RoundFinished | ScanLog):
            obj = {"type": type(update).__name__, **update.__dict__}
        else:
            return
        self.stream.write(json.dumps(obj, default=float) + "\n")
        self.stream.flush()
