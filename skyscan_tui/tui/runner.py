"""The one bridge from the headless scan engine to the UI: a thread worker.

``ScanRunner.run_scan`` iterates :meth:`ScanEngine.run` in a thread (Textual cannot kill
threads, so cancelling means ``engine.cancel()``, which stops and closes the executor; the
local executor kills its worker processes) and reports only through ``post_message``. Pixel
rows are buffered and posted at most every ``interval`` seconds.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Any

import numpy as np
from textual import work
from textual.worker import get_current_worker

from skyscan_tui.engine import (
    PixelsDone,
    RoundFinished,
    RoundStarted,
    ScanEngine,
    ScanFinished,
    ScanLog,
)
from skyscan_tui.tui.messages import (
    ExecutorStatus,
    ResultSaved,
    RoundBegan,
    RoundEnded,
    SaveFailed,
    ScanCrashed,
    ScanDone,
    ScanLogged,
    ScanProgress,
)

__all__ = ["ScanRunner", "drive_engine", "one_line", "start_loky_tracker"]


def one_line(exc: BaseException) -> str:
    """An exception as one line for the app's log: ``Type: first line of the message``."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def start_loky_tracker() -> None:
    """Start loky's (and multiprocessing's) resource trackers with stderr on /dev/null.

    Inside a Textual app ``sys.stderr`` is a capture object whose ``fileno()`` is -1; loky
    passes that fd to the tracker it spawns on first use and fails ("bad value(s) in
    fds_to_keep"). Starting it here, with a real (silent) stderr, avoids that and keeps the
    tracker from writing over the screen.
    """
    from multiprocessing import resource_tracker as mp_tracker

    try:
        from loky.backend import resource_tracker
    except ImportError:
        return
    saved = sys.stderr
    with open(os.devnull, "w") as devnull:
        sys.stderr = devnull
        try:
            resource_tracker.ensure_running()
            mp_tracker.ensure_running()
        finally:
            sys.stderr = saved


#: [s] between looks at a remote executor's status (jobs, holds) for the app
STATUS_INTERVAL = 0.5


def drive_engine(engine: ScanEngine, post: Any, is_cancelled: Any = lambda: False,
                 interval: float = 0.1) -> None:
    """Run ``engine`` to the end, posting messages through ``post`` (thread-safe callable).

    Never raises: an exception ends in ``ScanCrashed`` after the executor was stopped.
    """
    buffer: list[np.ndarray] = []
    last: PixelsDone | None = None
    batches = 0
    t_flush = time.monotonic()

    def flush() -> None:
        nonlocal buffer, last, batches, t_flush
        if last is None:
            return
        rows = np.concatenate(buffer) if len(buffer) > 1 else buffer[0]
        post(ScanProgress(rows, last.round, last.nside, last.round_done, last.round_total,
                          last.done, last.total, last.rate, last.eta, last.worker, batches))
        buffer, last, batches, t_flush = [], None, 0, time.monotonic()

    last_status: dict[str, Any] | None = None
    t_status = 0.0

    def post_status(now: bool = False) -> None:
        """The executor's jobs and holds, when they changed (remote executors only; read in
        this thread, the one that drives the executor)."""
        nonlocal last_status, t_status
        if not now and time.monotonic() - t_status < STATUS_INTERVAL:
            return
        t_status = time.monotonic()
        try:
            status = engine.executor.status()
        except Exception:  # a status is a nicety: never stop the scan for it
            return
        if isinstance(status, dict) and "jobs" in status and status != last_status:
            last_status = status
            post(ExecutorStatus(status))

    updates = engine.run()
    try:
        if engine.executor.local_processes:
            start_loky_tracker()
        for update in updates:
            if is_cancelled():
                engine.cancel()
            if isinstance(update, PixelsDone):
                buffer.append(update.results)
                last = update
                batches += 1
                if time.monotonic() - t_flush >= interval:
                    flush()
                post_status()
            elif isinstance(update, RoundStarted):
                flush()
                post(RoundBegan(update.round, update.nside, update.n_pixels, update.n_tasks))
            elif isinstance(update, RoundFinished):
                flush()
                post(RoundEnded(update.round, update.nside, update.best_ipix, update.best_llh,
                                update.n_failed))
            elif isinstance(update, ScanLog):
                post(ScanLogged(update.level, update.message))
                post_status(now=True)  # a hold or failure was just logged: show it
            elif isinstance(update, ScanFinished):
                flush()
                post_status(now=True)
                post(ScanDone(update.result, update.cancelled, update.elapsed))
    except Exception as exc:  # a broken reco/executor must not take the app down
        engine.cancel()
        try:
            updates.close()  # runs the engine's finally: executor cancelled and closed
        except Exception:
            pass
        post(ScanCrashed(one_line(exc)))


class ScanRunner:
    """Mixin for the scan screen: owns the worker thread of one scan."""

    engine: ScanEngine | None = None
    scan_finished: threading.Event

    @work(thread=True, exclusive=True, group="scan", exit_on_error=False)
    def run_scan(self, engine: ScanEngine) -> None:
        """Drive ``engine`` to the end in a worker thread, posting its updates as messages."""
        worker = get_current_worker()
        try:
            drive_engine(engine, self.post_message,  # type: ignore[attr-defined]
                         lambda: worker.is_cancelled)
        finally:
            self.scan_finished.set()

    @work(thread=True, group="save", exit_on_error=False)
    def save_result(self, result: Any, outdir: Any, final: bool) -> None:
        """Write ``result``'s files into ``outdir`` in a worker thread; post what happened."""
        try:
            paths = result.save(outdir)
            if final and self.engine is not None:  # progress.json names the files
                self.engine.record_saved(paths)
        except Exception as exc:
            self.post_message(SaveFailed(one_line(exc)))  # type: ignore[attr-defined]
        else:
            self.post_message(ResultSaved(paths, final))  # type: ignore[attr-defined]

    def stop_scan(self, wait: float = 0.0) -> bool:
        """Cancel the running scan; with ``wait`` [s], block until the executor is closed."""
        if self.engine is not None:
            self.engine.cancel()
            self.engine.resume()
        if wait > 0:
            return self.scan_finished.wait(wait)
        return self.scan_finished.is_set()
