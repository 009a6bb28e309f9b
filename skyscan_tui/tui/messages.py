"""Messages from the scan thread to the UI (all posted by :mod:`skyscan_tui.tui.runner`).

Pixel results travel in batches (one message per ~0.1 s, however many engine batches came
back), so thousands of results cost a handful of messages. The engine's numbers (rate, ETA)
are passed through unchanged; the UI computes no timing of its own.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from textual.message import Message

__all__ = ["RoundBegan", "ScanProgress", "RoundEnded", "ScanLogged", "ExecutorStatus",
           "ScanDone", "ScanCrashed", "ResultSaved", "SaveFailed"]


class RoundBegan(Message):
    """A refinement round started: ``n_pixels`` pixels (``n_tasks`` fits) at ``nside``."""

    def __init__(self, round: int, nside: int, n_pixels: int, n_tasks: int) -> None:
        super().__init__()
        self.round, self.nside, self.n_pixels, self.n_tasks = round, nside, n_pixels, n_tasks


class ScanProgress(Message):
    """Result rows (``RESULT_DTYPE``) of finished batches, and the latest counters.

    Fits done in the round / overall, rate [fits/s] and engine ETA [s] of the latest batch."""

    def __init__(self, rows: np.ndarray, round: int, nside: int, round_done: int,
                 round_total: int, done: int, total: int, rate: float, eta: float,
                 worker: str, batches: int) -> None:
        super().__init__()
        self.rows, self.round, self.nside = rows, round, nside
        self.round_done, self.round_total = round_done, round_total
        self.done, self.total, self.rate, self.eta = done, total, rate, eta
        self.worker, self.batches = worker, batches


class RoundEnded(Message):
    """A round of the scan ended (its best pixel, −log L there, failed fits)."""

    def __init__(self, round: int, nside: int, best_ipix: int, best_llh: float,
                 n_failed: int) -> None:
        super().__init__()
        self.round, self.nside = round, nside
        self.best_ipix, self.best_llh, self.n_failed = best_ipix, best_llh, n_failed


class ScanLogged(Message):
    """A message for the app's log."""

    def __init__(self, level: str, message: str) -> None:
        super().__init__()
        self.level, self.message = level, message


class ExecutorStatus(Message):
    """A remote executor's ``status()`` changed (jobs by state, holds and what is done about
    them); posted at most every ``STATUS_INTERVAL`` and after each executor message."""

    def __init__(self, status: dict[str, Any]) -> None:
        super().__init__()
        self.status = status


class ScanDone(Message):
    """The engine finished (or stopped after a cancel): its result and the wall time [s]."""

    def __init__(self, result: Any, cancelled: bool, elapsed: float) -> None:
        super().__init__()
        self.result, self.cancelled, self.elapsed = result, cancelled, elapsed


class ScanCrashed(Message):
    """The scan thread raised; the executor has been stopped. ``error`` is one line."""

    def __init__(self, error: str) -> None:
        super().__init__()
        self.error = error


class ResultSaved(Message):
    """Result files were written (``final``: the scan has ended)."""

    def __init__(self, paths: dict[str, Any], final: bool) -> None:
        super().__init__()
        self.paths, self.final = paths, final


class SaveFailed(Message):
    """Writing the result files failed; ``error`` says why."""

    def __init__(self, error: str) -> None:
        super().__init__()
        self.error = error
