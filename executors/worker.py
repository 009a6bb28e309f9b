"""Runs pixel batches for any executor: in a local worker process or on a remote node.

Only depends on ``skyscan_tui.tasks``/``events`` and ``recos``, so it runs anywhere the
package is installed. ``python -m executors.worker CONTEXT.json IN.npz OUT.npz`` fits one
batch file and writes the result file atomically (temp name, then rename).
``python -m executors.worker job CONTEXT.json JOB.npz OUT.npz`` does the same for a *job
file* holding several batches (the remote executors' unit of work); a batch whose fit raises
is recorded as failed in the output and the others still run, so a bad pixel does not cost
the whole job. Job and job-result files are ``.npz`` without pickle.
``python -m executors.worker check RECO`` is the probe job's self-check (imports, the reco).
"""

from __future__ import annotations

import sys
import time
from typing import Any

import numpy as np

from recos.base import mark_worker_process
from skyscan_tui.tasks import RESULT_DTYPE, TaskBatch

__all__ = ["WorkerState", "init_worker", "run_batch", "main", "job_to_npz", "job_from_npz",
           "job_results_to_npz", "job_results_from_npz", "job_results_with_cpu", "run_job",
           "reco_class", "check"]


def reco_class(name: str) -> type:
    """The reco class called ``name``, as a worker resolves it.

    Through the plug-in registry (``recos.get_reco``). Only where the registry knows no reco
    at all, i.e. a copied source tree run with ``PYTHONPATH`` and no package metadata (as on
    some cluster nodes), is ``recos.<name>`` imported and its ``RECO`` attribute used. This
    fallback exists for workers only; a reco whose dependency is missing is reported with
    the import error and an install hint either way, never as unknown.
    """
    from recos import available_recos, get_reco

    if available_recos() or not name.isidentifier() or name.startswith("_") or name == "base":
        return get_reco(name)
    import importlib

    from recos.base import Reco
    from skyscan_tui.errors import UserError
    from skyscan_tui.plugins import PluginError, install_hint

    try:
        module = importlib.import_module(f"recos.{name}")
    except ImportError as exc:
        if exc.name == f"recos.{name}":
            raise UserError(f"unknown reco {name!r} (no package metadata, and no "
                            f"recos/{name}.py)") from None
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise PluginError(f"reco {name!r} cannot be loaded: {first} ({install_hint(exc)})"
                          ) from None
    cls = getattr(module, "RECO", None)
    if not (isinstance(cls, type) and issubclass(cls, Reco)):
        raise UserError(f"recos/{name}.py has no RECO class")
    return cls


class WorkerState:
    """A reco instance and its prepared event, built once per process and scan."""

    def __init__(self, context: Any) -> None:
        cls = reco_class(context.reco_name)
        self.reco = cls(**context.reco_options)
        self.prepared = self.reco.prepare(context.event)

    def run(self, batch: TaskBatch) -> np.ndarray:
        """Fit the pixels of ``batch``; its ``RESULT_DTYPE`` rows, checked."""
        res = self.reco.fit_pixels(self.prepared, batch)
        res = np.asarray(res)
        if res.dtype != RESULT_DTYPE or res.shape != (len(batch),):
            raise RuntimeError(f"reco returned {res.shape} {res.dtype}, "
                               f"expected {len(batch)} result rows")
        return res


_STATE: WorkerState | None = None


def init_worker(context: Any) -> None:
    """Process initialiser of local workers; Ctrl-C is the parent's to handle."""
    import signal

    global _STATE
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    mark_worker_process()
    _watch_parent()
    _STATE = WorkerState(context)


def _watch_parent(interval: float = 1.0) -> None:
    """Exit when the parent process is gone, checking every ``interval`` [s].

    E.g. when the scan was killed with kill -9, so no orphaned worker lingers; a daemon thread
    checks."""
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
    """Fit ``batch`` with the process's state; returns (results, CPU seconds, pid).

    CPU time of the whole worker process (threads a reco starts count too)."""
    import os

    if _STATE is None:
        raise RuntimeError("worker not initialised")
    t0 = time.process_time()
    res = _STATE.run(batch)
    return res, time.process_time() - t0, os.getpid()


_TASK_FIELDS = ("nside", "ipix", "variation", "zenith", "azimuth", "seed")


def job_to_npz(batches: list[TaskBatch]) -> bytes:
    """Several batches in one file: concatenated task arrays plus per-batch bounds."""
    import io

    if not batches:
        raise ValueError("a job needs at least one batch")
    buf = io.BytesIO()
    sizes = [len(b) for b in batches]
    np.savez(buf, batch_ids=np.array([b.batch_id for b in batches], dtype=np.int64),
             rounds=np.array([b.round for b in batches], dtype=np.int64),
             bounds=np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64),
             **{f: np.concatenate([getattr(b, f) for b in batches]) for f in _TASK_FIELDS})
    return buf.getvalue()


def job_from_npz(data: bytes) -> list[TaskBatch]:
    """The batches of one remote job file (the bytes of a ``jobs/job_J.npz``)."""
    import io

    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        ids, rounds, bounds = npz["batch_ids"], npz["rounds"], npz["bounds"]
        arrays = {f: np.asarray(npz[f]) for f in _TASK_FIELDS}
    n = int(bounds[-1]) if len(bounds) else 0
    if len(bounds) != len(ids) + 1 or any(a.shape[0] != n for a in arrays.values()) \
            or np.any(np.diff(bounds) < 0) or arrays["seed"].shape != (n, 4):
        raise ValueError("inconsistent job file")
    # fresh (aligned) copies: numpy's SIMD loops can round differently for an offset view,
    # and a pixel's answer must not depend on where its batch sat in the job file
    return [TaskBatch(int(ids[i]), int(rounds[i]),
                      **{f: a[bounds[i]:bounds[i + 1]].copy() for f, a in arrays.items()})
            for i in range(len(ids))]


def job_results_to_npz(batches: list[TaskBatch], answers: list[np.ndarray | str],
                       cpu_s: list[float] | None = None) -> bytes:
    """Results of a job as ``.npz`` bytes.

    Per batch either result rows or an error message, and the CPU seconds its fit took (NaN
    where unknown)."""
    import io

    ok = np.array([not isinstance(a, str) for a in answers], dtype=bool)
    rows = [a for a in answers if not isinstance(a, str)]
    results = np.concatenate(rows) if rows else np.zeros(0, dtype=RESULT_DTYPE)
    errors = np.array([a if isinstance(a, str) else "" for a in answers], dtype=np.str_)
    buf = io.BytesIO()
    np.savez(buf, batch_ids=np.array([b.batch_id for b in batches], dtype=np.int64),
             ntasks=np.array([len(b) for b in batches], dtype=np.int64), ok=ok,
             errors=errors, results=np.asarray(results, dtype=RESULT_DTYPE),
             cpu_s=np.asarray(cpu_s if cpu_s is not None else [np.nan] * len(batches),
                              dtype=np.float64))
    return buf.getvalue()


def job_results_from_npz(data: bytes) -> list[tuple[int, int, np.ndarray | None, str]]:
    """``[(batch_id, n_tasks, rows or None, error), ...]`` in job-file order."""
    return [r[:4] for r in job_results_with_cpu(data)]


def job_results_with_cpu(data: bytes
                         ) -> list[tuple[int, int, np.ndarray | None, str, float]]:
    """``[(batch_id, n_tasks, rows or None, error, cpu_s), ...]`` of a job's results.

    ``cpu_s`` [s] is NaN for files of workers that do not record it."""
    import io

    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        ids, ntasks, ok = npz["batch_ids"], npz["ntasks"], npz["ok"]
        errors, results = npz["errors"], npz["results"]
        cpu = (np.asarray(npz["cpu_s"], dtype=np.float64) if "cpu_s" in npz.files
               else np.full(len(ids), np.nan))
    if results.dtype != RESULT_DTYPE or not len(ids) == len(ntasks) == len(ok) == len(errors) \
            or int(ntasks[ok].sum()) != len(results) or cpu.shape != (len(ids),):
        raise ValueError("inconsistent job result file")
    out, pos = [], 0
    for bid, n, good, err, secs in zip(ids, ntasks, ok, errors, cpu, strict=True):
        if good:
            out.append((int(bid), int(n), results[pos:pos + n], "", float(secs)))
            pos += int(n)
        else:
            out.append((int(bid), int(n), None, str(err), float(secs)))
    return out


def run_job(context_path: str, job_path: str, out_path: str) -> int:
    """Fit every batch of a job file; write the results atomically. Returns the exit code."""
    import json
    import traceback
    from pathlib import Path

    from executors.base import ScanContext
    from skyscan_tui.events import event_from_dict
    from skyscan_tui.fileio import atomic_write_bytes

    ctx_obj = json.loads(Path(context_path).read_text())
    context = ScanContext(ctx_obj["reco_name"], ctx_obj["reco_options"],
                          event_from_dict(ctx_obj["event"]))
    state = WorkerState(context)
    batches = job_from_npz(Path(job_path).read_bytes())
    answers: list[np.ndarray | str] = []
    cpu: list[float] = []
    for batch in batches:
        t0 = time.process_time()
        try:
            answers.append(state.run(batch))
        except Exception as exc:  # one bad batch must not sink the job
            traceback.print_exc()
            answers.append(f"{type(exc).__name__}: {exc}"[:500])
        cpu.append(time.process_time() - t0)
    atomic_write_bytes(Path(out_path), job_results_to_npz(batches, answers, cpu))
    return 0


def check(reco: str) -> int:
    """The probe job's self-check: this interpreter imports the worker and ``reco``.

    Prints one line (version, interpreter) and returns 0, or the reason on stderr and 1."""
    import platform

    try:
        import skyscan_tui

        reco_class(reco)
    except Exception as exc:  # reported by the probe job as one line
        print(f"skyscan-tui worker check failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(f"skyscan-tui {skyscan_tui.__version__} worker ok: reco {reco}, python "
          f"{platform.python_version()} at {sys.executable} on {platform.node()}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run ``python -m executors.worker``: fit the batches of one input file; the exit code."""
    from pathlib import Path

    from skyscan_tui.events import event_from_dict
    from skyscan_tui.fileio import atomic_write_bytes
    from skyscan_tui.tasks import batch_from_npz, results_to_npz

    args = sys.argv[1:] if argv is None else argv
    if args and args[0] == "check":
        if len(args) != 2:
            print("usage: python -m executors.worker check RECO", file=sys.stderr)
            return 2
        return check(args[1])
    if args and args[0] == "job":
        if len(args) != 4:
            print("usage: python -m executors.worker job CONTEXT.json JOB.npz OUT.npz",
                  file=sys.stderr)
            return 2
        return run_job(*args[1:])
    if len(args) != 3:
        print("usage: python -m executors.worker CONTEXT.json IN.npz OUT.npz", file=sys.stderr)
        return 2
    import json

    from executors.base import ScanContext

    ctx_obj = json.loads(Path(args[0]).read_text())
    context = ScanContext(ctx_obj["reco_name"], ctx_obj["reco_options"],
                          event_from_dict(ctx_obj["event"]))
    mark_worker_process()
    state = WorkerState(context)
    batch = batch_from_npz(Path(args[1]).read_bytes())
    atomic_write_bytes(Path(args[2]), results_to_npz(state.run(batch)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
