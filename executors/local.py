"""Local worker processes (loky): ``--executor local -j N``.

Each worker process builds the reco once (``executors.worker.init_worker``) and then fits
batches; finished batches are reported as they complete. At most ``2 × jobs`` batches are
in flight. A worker that dies (segfault, OOM kill, ``os._exit``) breaks the loky pool: every
batch still in it is reported ``lost`` (the engine re-queues them) and the pool is rebuilt.

Timeouts (``set_pixel_timeout``): loky cannot stop one task, so when a batch runs longer
than its limit (pixels × seconds per pixel) the whole pool is killed and rebuilt; the late
batch is reported failed ("timed out") and the others that were still running are reported
lost. A batch's clock starts when a worker process begins it (the worker drops a marker
file in a private temp folder), so queueing and worker start-up never count. Cancel kills
the workers.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
import warnings
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from typing import TYPE_CHECKING

from executors.base import BatchDone, BatchFailed, Executor, ExecutorLog, ScanContext, Update
from skyscan_tui.errors import UserError
from skyscan_tui.options import Option

if TYPE_CHECKING:  # the worker (numpy) is imported when a scan starts, not to declare options
    from skyscan_tui.tasks import TaskBatch

__all__ = ["LocalExecutor", "default_jobs"]

MAX_JOBS = 256


def default_jobs() -> int:
    """Worker processes by default [1]: the CPUs this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


class LocalExecutor(Executor):
    """Batches in worker processes on this machine (a loky pool of ``jobs`` workers)."""

    name = "local"
    description = "worker processes on this machine (joblib/loky)"
    OPTIONS = (Option("jobs", int, default_jobs, "worker processes", min=1, max=MAX_JOBS,
                      flags=("-j", "--jobs"), metavar="N", default_text="all cores",
                      form="workers"),)
    local_processes = True
    enforces_pixel_timeout = True

    def __init__(self, jobs: int | None = None) -> None:
        if jobs is not None and not 1 <= int(jobs) <= MAX_JOBS:
            raise UserError(f"--jobs must be between 1 and {MAX_JOBS}")
        self.jobs = int(jobs) if jobs else default_jobs()
        self._context: ScanContext | None = None
        self._pool = None
        # future -> (batch, monotonic time it was first seen handed to a worker, or None)
        self._futures: dict[Future, tuple[TaskBatch, float | None]] = {}
        self._pending: list[Update] = []
        self.pixel_timeout: float | None = None
        self.restarts = 0
        self._markers: str | None = None  # temp folder of "batch started" marker files

    @property
    def slots(self) -> int:
        return 2 * self.jobs

    @property
    def workers(self) -> int:
        return self.jobs

    def set_pixel_timeout(self, seconds: float | None) -> None:
        """[s] per pixel; a batch of n pixels is killed after n × seconds (None: no limit)."""
        self.pixel_timeout = None if seconds is None else float(seconds)
        if self.pixel_timeout is not None and self._markers is None:
            import tempfile

            self._markers = tempfile.mkdtemp(prefix="skyscan-local-")

    def _new_pool(self):
        from loky import ProcessPoolExecutor

        from executors.worker import init_worker

        # Workers are spawned (all at once) by the first submit. Spawn them now with SIGINT
        # blocked, which they inherit through exec (and then ignore, init_worker): a
        # terminal's Ctrl-C reaches the whole process group, but only the parent should act
        # on it (it kills the workers).
        pool = ProcessPoolExecutor(max_workers=self.jobs, initializer=init_worker,
                                   initargs=(self._context,), timeout=None)
        with _sigint_blocked():
            pool.submit(os.getpid)
        return pool

    def start(self, context: ScanContext) -> None:
        self._context = context
        self._pool = self._new_pool()

    def _marker(self, batch: TaskBatch) -> str | None:
        return (None if self._markers is None
                else os.path.join(self._markers, f"b{batch.batch_id}"))

    def submit(self, batches: Sequence[TaskBatch]) -> None:
        if self._pool is None:
            raise RuntimeError("executor not started")
        for batch in batches:
            try:
                fut = self._pool.submit(run_marked_batch, batch, self._marker(batch))
            except Exception as exc:  # pool broken by a dead worker: rebuild, resubmit
                self._restart(f"worker pool broken ({type(exc).__name__}); restarting")
                fut = self._pool.submit(run_marked_batch, batch, self._marker(batch))
            self._futures[fut] = (batch, None)

    def _restart(self, why: str) -> None:
        self._pending.append(ExecutorLog("warning", why))
        self.restarts += 1
        self._kill_pool()
        self._pool = self._new_pool()

    def poll(self, timeout: float) -> list[Update]:
        out, self._pending = self._pending, []
        if not self._futures:
            return out
        done, _ = wait(list(self._futures), timeout=0 if out else timeout,
                       return_when=FIRST_COMPLETED)
        broken = False
        for fut in done:
            batch, _ = self._futures.pop(fut)
            self._unmark(batch)
            upd = _outcome(fut, batch)
            broken |= isinstance(upd, BatchFailed) and upd.lost
            out.append(upd)
        late = [] if broken else self._overdue()
        if broken or late:
            # the pool is gone (or must go): report what finished, the rest is lost
            for fut, (batch, _) in list(self._futures.items()):
                if fut in late:
                    limit = len(batch) * (self.pixel_timeout or 0.0)
                    out.append(BatchFailed(batch.batch_id, f"timed out after {limit:.3g} s"))
                elif fut.done():
                    upd = _outcome(fut, batch)
                    if isinstance(upd, BatchFailed) and upd.lost:
                        upd = BatchFailed(batch.batch_id, "worker pool restarted", lost=True)
                    out.append(upd)
                else:
                    out.append(BatchFailed(batch.batch_id, "worker pool restarted", lost=True))
                self._unmark(batch)
            self._futures.clear()
            self._restart("a worker process died; its batches are re-queued" if broken else
                          f"{len(late)} batch(es) timed out; worker pool restarted")
        return out

    def _overdue(self) -> list[Future]:
        """Futures running longer than their limit (also starts the clock of new ones)."""
        if self.pixel_timeout is None:
            return []
        now = time.monotonic()
        late = []
        for fut, (batch, started) in self._futures.items():
            if started is None:
                marker = self._marker(batch)
                if marker is not None and os.path.exists(marker):
                    self._futures[fut] = (batch, now)
            elif now - started > len(batch) * self.pixel_timeout:
                late.append(fut)
        return late

    def _kill_pool(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                pool.shutdown(wait=True, kill_workers=True)

    def cancel(self) -> None:
        for fut in self._futures:
            fut.cancel()
        self._futures.clear()
        self._kill_pool()

    def status(self) -> dict:
        return {"workers": self.jobs, "batches_in_flight": len(self._futures),
                "pool_restarts": self.restarts}

    def close(self) -> None:
        self.cancel()
        if self._markers is not None:
            import shutil

            shutil.rmtree(self._markers, ignore_errors=True)
            self._markers = None

    def _unmark(self, batch: TaskBatch) -> None:
        marker = self._marker(batch)
        if marker is not None:
            try:
                os.unlink(marker)
            except FileNotFoundError:
                pass


def run_marked_batch(batch: TaskBatch, marker: str | None):
    """``run_batch`` in a worker, first dropping ``marker`` so the parent can time it."""
    from executors.worker import run_batch

    if marker is not None:
        os.close(os.open(marker, os.O_WRONLY | os.O_CREAT, 0o600))
    return run_batch(batch)


def _outcome(fut: Future, batch: TaskBatch) -> Update:
    exc = fut.exception()
    if exc is None:
        res, cpu_s, pid = fut.result()
        return BatchDone(batch.batch_id, res, f"pid {pid}", cpu_s)
    if _is_pool_death(exc):
        return BatchFailed(batch.batch_id, f"worker died ({type(exc).__name__})", lost=True)
    return BatchFailed(batch.batch_id, f"{type(exc).__name__}: {str(exc)[:300]}")


def _start_resource_trackers() -> None:
    """Start the resource trackers that spawning loky workers needs, unless running.

    Starting multiprocessing's tracker unblocks SIGINT in the calling thread (Python 3.11),
    which would undo ``_sigint_blocked`` for the workers spawned after it."""
    from multiprocessing import resource_tracker as mp_tracker

    from loky.backend import resource_tracker as loky_tracker

    mp_tracker.ensure_running()
    loky_tracker.ensure_running()


@contextlib.contextmanager
def _sigint_blocked():
    """Block SIGINT in this thread while it spawns child processes.

    The children inherit the block through exec. Blocked, not ignored: a Ctrl-C meanwhile
    still reaches this process (through another thread, or this one once the block ends),
    where SIG_IGN dropped it and the scan ran to its end. Where signal masks are missing
    (Windows), ignore it in the main thread instead."""
    if hasattr(signal, "pthread_sigmask"):
        _start_resource_trackers()  # before the block: starting one can undo it
        old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            yield
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
        return
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


def _is_pool_death(exc: BaseException) -> bool:
    from concurrent.futures.process import BrokenProcessPool

    from loky.process_executor import TerminatedWorkerError

    return isinstance(exc, (TerminatedWorkerError, BrokenProcessPool))
