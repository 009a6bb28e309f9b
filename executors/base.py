"""The executor protocol: submit batches of pixel tasks, stream results back, cancel, close.

The engine owns retries, ordering and bookkeeping; an executor only runs ``TaskBatch``es
somewhere and reports what happened through ``poll()`` updates, as soon as each batch
finishes (not at the end of a round). Every worker — a local process or a remote job —
rebuilds the reco from a :class:`ScanContext` (plain data: reco name, options, event).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from skyscan_tui.events import Event
from skyscan_tui.tasks import TaskBatch

__all__ = ["ScanContext", "BatchDone", "BatchFailed", "ExecutorLog", "Update", "Executor"]


@dataclass(frozen=True, eq=False)
class ScanContext:
    """Everything a worker needs to fit pixels, and nothing else."""

    reco_name: str
    reco_options: dict[str, Any]
    event: Event


@dataclass(frozen=True, eq=False)
class BatchDone:
    batch_id: int
    results: np.ndarray  # RESULT_DTYPE rows
    worker: str = ""


@dataclass(frozen=True)
class BatchFailed:
    """A batch that raised (``lost=False``) or whose worker vanished (``lost=True``)."""

    batch_id: int
    error: str
    lost: bool = False
    worker: str = ""


@dataclass(frozen=True)
class ExecutorLog:
    level: str
    message: str


Update = BatchDone | BatchFailed | ExecutorLog


class Executor(ABC):
    """Base class of every executor.

    Lifecycle: ``start(context)`` once, then any number of ``submit``/``poll`` calls, then
    ``close()`` (idempotent, also after ``cancel()``). ``submit`` must return quickly; the
    engine never submits more than ``slots`` batches that have not been reported yet.
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""

    @property
    @abstractmethod
    def slots(self) -> int:
        """How many batches may be in flight at once."""

    @property
    def workers(self) -> int:
        return self.slots

    def set_state_dir(self, path: Path, resume: bool = False) -> None:
        """Optional hook, called before ``start`` when the scan is checkpointed.

        ``path`` is a folder inside the scan's checkpoint (``OUTDIR/checkpoint/executor``,
        not created yet) where the executor may keep its own state, written atomically
        (``skyscan_tui.fileio``), e.g. the ids of submitted remote jobs. ``resume`` is True
        when the scan continues an interrupted one: an executor that can re-attach to work
        still running there may report its results as ``BatchDone`` with batch ids it
        makes up (negative ones, say); the engine merges every row of the current round it
        still needs and ignores the rest. Default: nothing to keep.
        """
        return None

    @abstractmethod
    def start(self, context: ScanContext) -> None: ...

    @abstractmethod
    def submit(self, batches: Sequence[TaskBatch]) -> None: ...

    @abstractmethod
    def poll(self, timeout: float) -> list[Update]:
        """Updates that happened since the last call; waits up to ``timeout`` [s] for one."""

    @abstractmethod
    def cancel(self) -> None:
        """Drop queued work and stop running work (best effort, idempotent)."""

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
