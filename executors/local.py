"""Local worker processes (loky): ``--executor local -j N``.

Each worker process builds the reco once (``executors.worker.init_worker``) and then fits
batches; finished batches are reported as they complete. At most ``2 × jobs`` batches are
in flight, so a worker that dies (segfault, OOM kill) loses only those, which are reported
as ``lost`` for the engine to re-queue; the pool is then rebuilt. Cancel kills the workers.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import warnings
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait

from executors.base import BatchDone, BatchFailed, Executor, ExecutorLog, ScanContext, Update
from executors.worker import init_worker, run_batch
from skyscan_tui.errors import UserError
from skyscan_tui.tasks import TaskBatch

__all__ = ["LocalExecutor", "default_jobs"]

MAX_JOBS = 256


def default_jobs() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


class LocalExecutor(Executor):
    name = "local"
    description = "worker processes on this machine (joblib/loky)"

    def __init__(self, jobs: int | None = None) -> None:
        if jobs is not None and not 1 <= int(jobs) <= MAX_JOBS:
            raise UserError(f"--jobs must be between 1 and {MAX_JOBS}")
        self.jobs = int(jobs) if jobs else default_jobs()
        self._context: ScanContext | None = None
        self._pool = None
        self._futures: dict[Future, TaskBatch] = {}
        self._pending: list[Update] = []

    @property
    def slots(self) -> int:
        return 2 * self.jobs

    @property
    def workers(self) -> int:
        return self.jobs

    def _new_pool(self):
        from loky import ProcessPoolExecutor

        # Workers are spawned (all at once) by the first submit. Spawn them now with SIGINT
        # ignored, which they inherit through exec: a terminal's Ctrl-C reaches the whole
        # process group, but only the parent should act on it (it kills the workers).
        pool = ProcessPoolExecutor(max_workers=self.jobs, initializer=init_worker,
                                   initargs=(self._context,), timeout=None)
        with _sigint_ignored():
            pool.submit(os.getpid)
        return pool

    def start(self, context: ScanContext) -> None:
        self._context = context
        self._pool = self._new_pool()

    def submit(self, batches: Sequence[TaskBatch]) -> None:
        if self._pool is None:
            raise RuntimeError("executor not started")
        for batch in batches:
            try:
                fut = self._pool.submit(run_batch, batch)
            except Exception as exc:  # pool broken by a dead worker: rebuild, resubmit
                self._restart(f"worker pool broken ({type(exc).__name__}); restarting")
                fut = self._pool.submit(run_batch, batch)
            self._futures[fut] = batch

    def _restart(self, why: str) -> None:
        self._pending.append(ExecutorLog("warning", why))
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
            batch = self._futures.pop(fut)
            exc = fut.exception()
            if exc is None:
                res, _secs, pid = fut.result()
                out.append(BatchDone(batch.batch_id, res, f"pid {pid}"))
            elif _is_pool_death(exc):
                broken = True
                out.append(BatchFailed(batch.batch_id, f"worker died: {exc}", lost=True))
            else:
                out.append(BatchFailed(batch.batch_id, f"{type(exc).__name__}: {exc}"))
        if broken:
            # every other in-flight batch died with the pool
            for fut, batch in list(self._futures.items()):
                if fut.done() and fut.exception() is None:
                    res, _secs, pid = fut.result()
                    out.append(BatchDone(batch.batch_id, res, f"pid {pid}"))
                else:
                    out.append(BatchFailed(batch.batch_id, "worker pool restarted", lost=True))
            self._futures.clear()
            self._restart("a worker process died; its batches are re-queued")
        return out

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

    def close(self) -> None:
        self.cancel()


@contextlib.contextmanager
def _sigint_ignored():
    """Ignore SIGINT while child processes are spawned (main thread only)."""
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
