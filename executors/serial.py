"""In-process executor for debugging: runs each batch when polled, one at a time."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING

from executors.base import BatchDone, BatchFailed, Executor, ScanContext, Update

if TYPE_CHECKING:  # the worker (numpy) is imported when a scan starts, not to declare options
    from executors.worker import WorkerState
    from skyscan_tui.tasks import TaskBatch

__all__ = ["SerialExecutor"]


class SerialExecutor(Executor):
    """Batches run one at a time in this process (debugging; the smallest executor)."""

    name = "serial"
    description = "in-process, one batch at a time (debugging)"

    def __init__(self) -> None:
        self._state: WorkerState | None = None
        self._queue: deque[TaskBatch] = deque()

    @property
    def slots(self) -> int:
        return 2

    @property
    def workers(self) -> int:
        return 1

    def start(self, context: ScanContext) -> None:
        from executors.worker import WorkerState

        self._state = WorkerState(context)

    def submit(self, batches: Sequence[TaskBatch]) -> None:
        self._queue.extend(batches)

    def poll(self, timeout: float) -> list[Update]:
        if not self._queue or self._state is None:
            return []
        import time

        batch = self._queue.popleft()
        t0 = time.thread_time()  # this thread only: the process also runs the front end
        try:
            rows = self._state.run(batch)
            return [BatchDone(batch.batch_id, rows, "serial", time.thread_time() - t0)]
        except Exception as exc:  # a reco error fails this batch only
            return [BatchFailed(batch.batch_id, f"{type(exc).__name__}: {exc}")]

    def cancel(self) -> None:
        self._queue.clear()

    def close(self) -> None:
        self._queue.clear()
        self._state = None
