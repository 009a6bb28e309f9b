"""Runs pixel batches for any executor: in a local worker process or on a remote node.

Only depends on ``skyscan_tui.tasks``/``events`` and ``recos``, so it runs anywhere the
package is installed. ``python -m executors.worker CONTEXT.json IN.npz OUT.npz`` fits one
batch file and writes the result file atomically (temp name, then rename).
"""

from __future__ import annotations

import sys
import time
from typing import Any

import numpy as np

from skyscan_tui.tasks import RESULT_DTYPE, TaskBatch

__all__ = ["WorkerState", "init_worker", "run_batch", "main"]


class WorkerState:
    """A reco instance and its prepared event, built once per process and scan."""

    def __init__(self, context: Any) -> None:
        from recos import get_reco

        cls = get_reco(context.reco_name)
        self.reco = cls(**context.reco_options)
        self.prepared = self.reco.prepare(context.event)

    def run(self, batch: TaskBatch) -> np.ndarray:
        res = self.reco.fit_pixels(self.prepared, batch)
        res = np.asarray(res)
        if res.dtype != RESULT_DTYPE or res.shape != (len(batch),):
            raise RuntimeError(f"reco returned {res.shape} {res.dtype}, "
                               f"expected {len(batch)} result rows")
        return res


_STATE: WorkerState | None = None
#: True in a process that exists only to fit pixels (a local pool worker, a remote job), so
#: that dying there loses only its batch; test recos that kill their process check this.
IN_WORKER_PROCESS = False


def init_worker(context: Any) -> None:
    """Process initialiser of local workers; Ctrl-C is the parent's to handle."""
    import signal

    global _STATE, IN_WORKER_PROCESS
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    IN_WORKER_PROCESS = True
    _watch_parent()
    _STATE = WorkerState(context)


def _watch_parent(interval: float = 1.0) -> None:
    """Exit when the parent process is gone (e.g. the scan was killed with kill -9), so no
    orphaned worker lingers; a daemon thread checks every ``interval`` [s]."""
    import os
    import threading

    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(interval)
            if os.getppid() != parent:
                os._exit(0)

    threading.Thread(target=watch, name="skyscan-parent-watch", daemon=True).start()


def run_batch(batch: TaskBatch) -> tuple[np.ndarray, float, int]:
    """Fit ``batch`` with the process's state; returns (results, seconds, pid)."""
    import os

    if _STATE is None:
        raise RuntimeError("worker not initialised")
    t0 = time.perf_counter()
    res = _STATE.run(batch)
    return res, time.perf_counter() - t0, os.getpid()


def main(argv: list[str] | None = None) -> int:
    from pathlib import Path

    from skyscan_tui.events import event_from_dict
    from skyscan_tui.fileio import atomic_write_bytes
    from skyscan_tui.tasks import batch_from_npz, results_to_npz

    global IN_WORKER_PROCESS
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 3:
        print("usage: python -m executors.worker CONTEXT.json IN.npz OUT.npz", file=sys.stderr)
        return 2
    import json

    from executors.base import ScanContext

    ctx_obj = json.loads(Path(args[0]).read_text())
    context = ScanContext(ctx_obj["reco_name"], ctx_obj["reco_options"],
                          event_from_dict(ctx_obj["event"]))
    IN_WORKER_PROCESS = True
    state = WorkerState(context)
    batch = batch_from_npz(Path(args[1]).read_bytes())
    atomic_write_bytes(Path(args[2]), results_to_npz(state.run(batch)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
