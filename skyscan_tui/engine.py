"""The scan engine: rounds of pixel tasks over an nside progression, through any executor.

``ScanEngine.run()`` is a generator of progress updates (``RoundStarted``, ``PixelsDone``,
``RoundFinished``, ``ScanLog``, ``ScanFinished``) that the CLI and the TUI consume; it never
calls into a UI. The engine owns what every executor shares: batching, the number of
batches in flight, merging results (best over vertex variations, independent of arrival
order), retries, refinement between rounds, the ETA (which counts the pixels of the rounds
still to come) and the checkpoint.

Failures. A batch that raises or times out is split in halves and retried until the bad
pixel is alone; a pixel fit that raises, times out or returns NaN on its own is retried
``max_retries`` times and then recorded as failed (NaN in the skymap, listed in
``result.meta["failed_tasks"]``); the scan goes on. A batch whose worker died (segfault,
OOM kill, ``os._exit``) is re-queued the same way but may be lost ``max_retries +
LOST_EXTRA`` times, because a dying worker takes innocent batches down with it. Every retry
is a new try number (``TaskBatch.attempt``) and names the worker it failed on
(``TaskBatch.avoid``), for executors that can send it elsewhere.

Checkpoint. With ``outdir`` the engine logs every finished task to ``outdir/checkpoint/``
(see :mod:`skyscan_tui.checkpoint`) the moment it arrives; ``resume=True`` replays the log:
finished tasks are merged back, the refinement is recomputed from them (deterministic), and
only the missing tasks are submitted.

Memory. The engine keeps one compact array of tasks per round and a cursor into it; batches
are cut when a slot frees up, so at most ``executor.slots`` batches exist at any time, plus
retries. Nothing grows with the number of batches processed.

Layout: the planning of rounds and tasks is in :mod:`skyscan_tui.scanplan`, the progress
numbers and timing in :mod:`skyscan_tui.scanstatus` (mixins of :class:`ScanEngine`).
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from executors.base import BatchDone, BatchFailed, Executor, ExecutorLog, ScanContext
from skyscan_tui import sky
from skyscan_tui.errors import UserError
from skyscan_tui.events import Event
from skyscan_tui.folderlock import FolderLock
from skyscan_tui.overlays import event_overlays
from skyscan_tui.results import ScanResult
from skyscan_tui.rounds import Flight, Round
from skyscan_tui.scanplan import MAX_ROUND_TASKS, ScanPlan  # noqa: F401 (re-exported)
from skyscan_tui.scanstatus import ScanStatus
from skyscan_tui.scanupdates import (
    MAX_RETRIES,
    PixelsDone,
    RoundFinished,
    RoundStarted,
    ScanFinished,
    ScanLog,
    ScanSettings,
    ScanUpdate,
    eta_estimate,
)
from skyscan_tui.tasks import RESULT_DTYPE, empty_results

__all__ = ["ScanSettings", "ScanEngine", "RoundStarted", "PixelsDone", "RoundFinished",
           "ScanLog", "ScanFinished", "ScanUpdate", "LOST_EXTRA", "MAX_RETRIES"]

#: extra tries a batch gets when its worker died (it may be an innocent bystander)
LOST_EXTRA = 3
#: at most this many failed tasks are listed by name in the result metadata
MAX_FAILED_LISTED = 1000


def _settings_key(settings: ScanSettings, reco: Any) -> dict[str, Any]:
    """The settings a checkpoint must match (those that change the result), JSON-normal."""
    return json.loads(json.dumps({
        "reco": settings.reco, "reco_options": dict(reco.options),
        "nside_progression": sky.format_progression(settings.progression),
        "n_variations": int(reco.n_variations)}, sort_keys=True))


class ScanEngine(ScanStatus, ScanPlan):
    """Runs a scan of ``event`` with ``settings`` on ``executor`` (see module docstring).

    ``outdir``: checkpoint into ``outdir/checkpoint/``. ``resume``: continue the checkpoint
    there (UserError if there is none, or it is for another event or other settings).
    Without ``resume`` an unfinished checkpoint in ``outdir`` is refused, never overwritten.
    The engine locks ``outdir`` (:mod:`skyscan_tui.folderlock`) from construction (or, for a
    new folder, from the start of :meth:`run`) until :meth:`close`: another live scan of the
    folder makes the constructor or ``run`` raise :class:`~skyscan_tui.folderlock.FolderBusy`.
    """

    def __init__(self, event: Event, settings: ScanSettings, executor: Executor,
                 outdir: str | Path | None = None, resume: bool = False,
                 partial_interval: float | str | None = "auto") -> None:
        from recos import get_reco
        from skyscan_tui.events import event_digest

        self.event = event
        self.settings = settings
        self.executor = executor
        self.reco = get_reco(settings.reco)(**settings.reco_options)
        self._cancel = threading.Event()
        self._paused = threading.Event()
        self.result: ScanResult | None = None
        self.outdir = None if outdir is None else Path(outdir)
        self.resume_requested = bool(resume)
        # progress.json / partial.npz (skyscan_tui.observe): seconds, None (off) or "auto"
        self.partial_interval = partial_interval
        self._observer: Any = None
        self._rounds_info: list[dict[str, Any]] = []
        self._live: dict[str, Any] = {"done": 0, "total": 0, "t_work": None, "round": None}
        self._settings_key = _settings_key(settings, self.reco)
        self._check_size()
        self._digest = event_digest(event) if self.outdir is not None else ""
        self._ckpt: Any = None
        self._restored: Any = None
        if self.outdir is None:
            if resume:
                raise UserError("resuming needs the output folder of the scan")
            return
        self._folder_lock = FolderLock(self.outdir)
        if self.outdir.is_dir():  # refuse a folder another scan is using before reading it
            self._folder_lock.acquire(create=False)
        try:
            self._check_checkpoint(resume)
        except BaseException:
            self._folder_lock.release()
            raise

    def _check_checkpoint(self, resume: bool) -> None:
        from skyscan_tui import checkpoint as ckpt

        assert self.outdir is not None
        if resume:
            info = ckpt.read_info(self.outdir)
            if info is None:
                raise UserError(f"{self.outdir}: no scan checkpoint to resume")
            ckpt.check_compatible(info, self._settings_key, self._digest)
        else:
            info = ckpt.find_unfinished(self.outdir)
            if info is not None and ckpt.has_results(self.outdir):
                raise UserError(
                    f"{self.outdir} holds an unfinished scan ({info.describe()}); continue it "
                    f"with --resume {self.outdir}, or delete {info.path} to start over")

    def close(self) -> None:
        """Release the output folder.

        A finished scan's front end calls this after saving; the lock also ends with the
        process."""
        if self.outdir is not None:
            self._folder_lock.release()

    def record_saved(self, paths: dict[str, Any]) -> None:
        """The front end saved the final result to ``paths``.

        ``progress.json`` names them and ``partial.npz`` goes (call before :meth:`close`)."""
        if self._observer is not None:
            self._observer.saved(paths)

    # ---------------------------------------------------------------- control (thread-safe)
    def cancel(self) -> None:
        """Stop the scan soon (thread- and signal-safe: it only sets flags)."""
        self._cancel.set()
        self.executor.interrupt()

    def pause(self) -> None:
        """Submit no more batches until :meth:`resume` (batches in flight finish)."""
        self._paused.set()

    def resume(self) -> None:
        """Submit batches again after :meth:`pause`."""
        self._paused.clear()

    @property
    def paused(self) -> bool:
        """Whether the scan is paused."""
        return self._paused.is_set()

    # ---------------------------------------------------------------- checkpoint
    def _open_checkpoint(self) -> None:
        from skyscan_tui import checkpoint as ckpt

        if self.outdir is None:
            return
        if self.resume_requested:
            self._ckpt, self._restored = ckpt.Checkpoint.open_resume(
                self.outdir, self._settings_key, self._digest)
        else:
            st = self.settings
            self._ckpt = ckpt.Checkpoint.create(
                self.outdir, self.event, self._settings_key, self._digest,
                run_options={"batch_size": st.batch_size, "max_retries": st.max_retries,
                             "pixel_timeout": st.pixel_timeout})
        if self.executor.can_resume:
            self.executor.set_state_dir(self._ckpt.path / "executor", self.resume_requested)

    def _log(self, kind: int, rnd: Round, rows: np.ndarray, attempt: int = 0) -> None:
        if self._ckpt is not None:
            self._ckpt.append(kind, rnd.index, rows, attempt)
            self._ckpt.maybe_sync()

    # ---------------------------------------------------------------- the scan
    def run(self) -> Iterator[ScanUpdate]:
        """Run the scan, yielding progress; ends with :class:`ScanFinished`.

        A run that ends in an error, or whose generator is closed before the end, frees the
        output folder at once; after a normal end it stays locked until :meth:`close`, so
        the front end can save the result first.
        """
        self._n_warn = self._n_err = 0
        self._recent: deque[dict[str, Any]] = deque(maxlen=20)
        try:
            for update in self._run():
                self._observe(update)
                yield update
        except BaseException as exc:
            if self._observer is not None:
                cancelled = isinstance(exc, GeneratorExit | KeyboardInterrupt)
                self._observer.finish("cancelled" if cancelled else "failed",
                                      "" if cancelled else
                                      f"{type(exc).__name__}: {str(exc)[:300]}")
            self.close()
            raise

    def _run(self) -> Iterator[ScanUpdate]:
        t_start = time.monotonic()
        prepared = self.reco.prepare(self.event)
        context = ScanContext(self.settings.reco, dict(self.reco.options), self.event)
        if self.outdir is not None:
            self._folder_lock.acquire()
        self._open_checkpoint()
        if self.outdir is not None:
            from skyscan_tui.observe import ScanObserver, resolve_partial_interval

            self.executor.set_log_dir(self.outdir / "logs")
            self._observer = ScanObserver(
                self.outdir, self.snapshot, self.executor.status, self.partial_result,
                resolve_partial_interval(self.partial_interval, self.executor.remote))
        if self.settings.pixel_timeout is not None:
            if self.executor.enforces_pixel_timeout:
                self.executor.set_pixel_timeout(float(self.settings.pixel_timeout))
            else:
                yield ScanLog("warning", f"executor {self.executor.name!r} cannot enforce "
                              "--pixel-timeout; running without it")
        result = ScanResult(
            run_id=self.event.run_id, event_id=self.event.event_id, mjd=self.event.mjd,
            event_type=self.event.event_type, reco=self.reco.name,
            likelihood=self.reco.likelihood_for(prepared),
            is_real_event=bool(self.event.meta.get("is_real_event", False)),
            meta={"nside_progression": sky.format_progression(self.settings.progression),
                  "reco_options": dict(self.reco.options),
                  "geometry": self.event.geometry,
                  # seed fits and (simulated) truth as RA/Dec, for plots and the summary
                  "overlays": event_overlays(self.event)},
        )
        self.result = result
        if self._observer is not None:
            self._observer.write()  # "running", before the first round
        self._failed: list[list[int]] = []
        self._n_failed = 0
        self._computed = 0
        self._recomputed = 0
        restored = self._restored
        in_flight_keys = (restored.in_flight_keys if restored is not None
                          else np.zeros(0, dtype=np.int64))
        if restored is not None:
            yield ScanLog("info", f"resuming: {len(restored.final)} finished fits restored, "
                          f"{len(in_flight_keys)} were in flight"
                          + (f", {restored.discarded_bytes} bytes of a torn log record "
                             "dropped" if restored.discarded_bytes else ""))
        prev: Round | None = None
        done_total = first_pixels = 0
        t_work = None
        cancelled = False
        finished_ok = False
        try:
            self.executor.start(context)
            for index in range(len(self.settings.progression)):
                rnd = self._make_round(index, prev, prepared)
                if len(rnd.ipix) == 0:
                    break
                rnd.tasks = self._tasks(rnd, prev, prepared)
                if index == 0:
                    first_pixels = len(rnd.ipix)
                # planned tasks of this and the later rounds (refined children never overlap)
                total = done_total + rnd.n_tasks + sum(
                    self.planned_tasks(i, first_pixels)
                    for i in range(index + 1, len(self.settings.progression)))
                info = {"round": index + 1, "nside": rnd.nside, "pixels": len(rnd.ipix),
                        "fits": rnd.n_tasks, "fits_done": 0, "restored": 0, "computed": 0,
                        "failed": 0, "state": "running", "wall_s": 0.0,
                        "pixels_per_s": None, "cpu_s": None, "batches": 0,
                        "_t0": time.monotonic(), "_c0": self._computed}
                self._rounds_info.append(info)
                self._live.update(round=rnd, total=total, done=done_total)
                self._round_cpu, self._round_cpu_batches = 0.0, 0
                yield RoundStarted(index, rnd.nside, len(rnd.ipix), rnd.n_tasks)
                if self._ckpt is not None:
                    self._ckpt.update(round=index, tasks_total=total)
                    self._ckpt.maybe_sync(force=True)
                if restored is not None:
                    back = self._restore_round(rnd, restored.final)
                    if len(back):
                        done_total += len(back)
                        info["restored"] = info["fits_done"] = len(back)
                        self._live["done"] = done_total
                        yield PixelsDone(index, rnd.nside, back, int(rnd.finished.sum()),
                                         rnd.n_tasks, done_total, total, 0.0, float("nan"),
                                         "checkpoint")
                if t_work is None:
                    t_work = time.monotonic()
                    self._live["t_work"] = t_work
                info["_t0"] = time.monotonic()  # the round's wall time starts with its work
                measured = sum(1 for r in self._rounds_info[:-1] if r["computed"] > 0)
                for update in self._run_round(rnd, in_flight_keys):
                    if isinstance(update, ScanLog):
                        yield update
                        continue
                    done_total += len(update)
                    elapsed = max(time.monotonic() - t_work, 1e-9)
                    rate = self._computed / elapsed
                    info["fits_done"] = int(rnd.finished.sum())
                    info["computed"] = self._computed - info["_c0"]
                    self._live["done"] = done_total
                    eta = eta_estimate(total - done_total, self._computed, elapsed,
                                       info["computed"], rnd.n_tasks - info["restored"],
                                       measured)
                    if self._ckpt is not None:
                        self._ckpt.update(tasks_done=done_total)
                    yield PixelsDone(index, rnd.nside, update,
                                     int(rnd.finished.sum()), rnd.n_tasks, done_total, total,
                                     rate, eta, self._last_worker)
                self._end_round(info, rnd)
                result.levels[rnd.nside] = rnd.level
                if self._cancel.is_set():
                    cancelled = True
                    break
                if self._ckpt is not None:  # a round boundary: make it durable
                    self._ckpt.update(round=index + 1, tasks_done=done_total)
                    self._ckpt.maybe_sync(force=True)
                lv = rnd.level
                ok = np.flatnonzero(np.isfinite(lv["llh"]))
                n_failed = len(lv) - len(ok)
                rnd.tasks = None  # free the task arrays of a finished round
                if ok.size:
                    b = ok[np.lexsort((lv["ipix"][ok], lv["llh"][ok]))[0]]
                    yield RoundFinished(index, rnd.nside, int(lv["ipix"][b]),
                                        float(lv["llh"][b]), n_failed)
                else:
                    yield RoundFinished(index, rnd.nside, -1, float("nan"), n_failed)
                    yield ScanLog("error", f"every pixel failed at nside {rnd.nside}")
                    break
                prev = rnd
            finished_ok = not cancelled and not self._cancel.is_set()
        finally:
            if self._cancel.is_set():
                cancelled = True
                self.executor.cancel()
            self.executor.close()
            if self._ckpt is not None:
                self._ckpt.update(recomputed_tasks=self._recomputed + (
                    restored.recomputed_before if restored is not None else 0))
                self._ckpt.close("finished" if finished_ok else "interrupted")
        elapsed = time.monotonic() - t_start
        result.meta["elapsed_s"] = round(elapsed, 3)
        self._record_timing(result, elapsed, t_work)
        result.meta["cancelled"] = cancelled
        result.meta["failed_tasks"] = self._n_failed
        result.meta["failed_task_list"] = list(self._failed)
        if self._ckpt is not None:
            result.meta["checkpoint"] = {
                "folder": str(self._ckpt.path), "sessions": int(self._ckpt.state["sessions"]),
                "computed_tasks": self._computed,
                "restored_tasks": 0 if restored is None else len(restored.final),
                "in_flight_at_interrupt": int(len(in_flight_keys)),
                "recomputed_tasks": self._recomputed,
                "discarded_log_bytes": 0 if restored is None else restored.discarded_bytes,
            }
        yield ScanFinished(result, cancelled, elapsed)

    def _restore_round(self, rnd: Round, final: np.ndarray) -> np.ndarray:
        """Merge this round's logged results back in; returns their rows."""
        from skyscan_tui.checkpoint import FAILED

        mine = final[final["round"] == rnd.index]
        if not len(mine):
            return empty_results(0)
        rows = mine["row"]
        idx = rnd.task_index(rows)
        if (idx < 0).any():
            raise UserError(f"{self.outdir}: the checkpoint does not match this scan (logged "
                            f"pixels outside round {rnd.index + 1}); start a new scan")
        keep = ~rnd.finished[idx]  # a task logged twice counts once
        _, first = np.unique(idx, return_index=True)
        once = np.zeros(len(idx), dtype=bool)
        once[first] = True
        keep &= once
        rows, idx, kinds = rows[keep], idx[keep], mine["kind"][keep]
        rnd.merge(rows, idx)
        for r in rows[kinds == FAILED]:
            self._note_failed(r)
        return rows

    def _note_failed(self, row: np.ndarray) -> None:
        self._n_failed += 1
        if len(self._failed) < MAX_FAILED_LISTED:
            self._failed.append([int(row["nside"]), int(row["ipix"]), int(row["variation"])])

    def _run_round(self, rnd: Round, in_flight_keys: np.ndarray
                   ) -> Iterator[np.ndarray | ScanLog]:
        """Submit the round's missing tasks in batches; yield result rows as they come."""
        from skyscan_tui.checkpoint import FAILED, RESULT, SUBMITTED, task_keys

        tasks = rnd.tasks
        assert tasks is not None
        todo = np.flatnonzero(~rnd.finished)
        size = self._batch_size(len(todo))
        cursor = 0
        retries: deque[Flight] = deque()
        in_flight: dict[int, Flight] = {}
        next_id = 0
        max_lost = self.settings.max_retries + LOST_EXTRA

        def next_batch() -> Flight | None:
            nonlocal cursor, next_id
            while retries:
                fl = retries.popleft()
                keep = ~rnd.finished[fl.idx]  # an orphan report may have finished some
                if keep.any():
                    fl.idx = fl.idx[keep]
                    fl.batch = tasks.select(fl.idx, next_id).with_attempt(
                        fl.batch.attempt, fl.batch.avoid)
                    next_id += 1
                    return fl
            while cursor < len(todo):
                idx = todo[cursor:cursor + size]
                cursor += len(idx)
                idx = idx[~rnd.finished[idx]]
                if len(idx):
                    next_id += 1
                    return Flight(tasks.select(idx, next_id - 1), idx)
            return None

        def requeue(fl: Flight, lost: bool, worker: str) -> None:
            """Retry a failed batch, split to isolate the bad pixel.

            The tries of a pixel on its own are counted."""
            single = len(fl.idx) == 1
            failures = fl.failures + (0 if lost or not single else 1)
            losses = fl.losses + (1 if lost else 0)
            parts = (np.array_split(np.arange(len(fl.idx)), 2) if not single
                     else [np.arange(1)])
            for part in parts:
                retries.append(Flight(fl.batch.select(part, -1).with_attempt(
                    fl.batch.attempt + 1, worker), fl.idx[part], failures, losses))

        def give_up(fl: Flight) -> np.ndarray:
            rows = empty_results(len(fl.idx))
            rows["nside"], rows["ipix"] = fl.batch.nside, fl.batch.ipix
            rows["variation"] = fl.batch.variation
            fresh = ~rnd.finished[fl.idx]
            rows, idx = rows[fresh], fl.idx[fresh]
            rnd.merge(rows, idx)
            self._log(FAILED, rnd, rows, fl.batch.attempt)
            for r in rows:
                self._note_failed(r)
            return rows

        restored = self._restored
        recomputed_before = restored.recomputed_before if restored is not None else 0

        def accept(rows: np.ndarray, idx: np.ndarray, attempt: int) -> np.ndarray:
            """Merge finished rows of tasks not finished yet; log them; count recomputes."""
            fresh = (idx >= 0)
            fresh[fresh] = ~rnd.finished[idx[fresh]]
            rows, idx = rows[fresh], idx[fresh]
            if not len(rows):
                return rows
            rnd.merge(rows, idx)
            self._log(RESULT, rnd, rows, attempt)
            self._computed += len(rows)
            if len(in_flight_keys):
                keys = task_keys(rows["nside"], rows["ipix"], rows["variation"])
                self._recomputed += int(np.isin(keys, in_flight_keys).sum())
                if self._ckpt is not None:  # cumulative, so a later kill keeps the count
                    self._ckpt.update(recomputed_tasks=self._recomputed + recomputed_before)
            return rows

        self._round_batches = 0
        observer = self._observer
        while not self._cancel.is_set():
            if observer is not None:
                observer.tick()
            if not self._paused.is_set():
                while len(in_flight) < self.executor.slots:
                    fl = next_batch()
                    if fl is None:
                        break
                    in_flight[fl.batch.batch_id] = fl
                    sub = empty_results(len(fl.idx))
                    sub["nside"], sub["ipix"] = fl.batch.nside, fl.batch.ipix
                    sub["variation"] = fl.batch.variation
                    self._log(SUBMITTED, rnd, sub, fl.batch.attempt)
                    self.executor.submit([fl.batch])
            if not in_flight and not retries and cursor >= len(todo):
                break
            if not in_flight and self._paused.is_set():
                time.sleep(0.05)  # paused and idle: do not spin on an empty poll
                continue
            for up in self.executor.poll(timeout=0.05):
                if isinstance(up, ExecutorLog):
                    yield ScanLog(up.level, up.message)
                    continue
                fl = in_flight.pop(up.batch_id, None)
                if fl is None:
                    if (isinstance(up, BatchDone) and getattr(up.results, "dtype", None)
                            == RESULT_DTYPE):  # recovered from an earlier session
                        rows = accept(up.results, rnd.task_index(up.results), 0)
                        if len(rows):
                            yield rows
                    continue
                batch = fl.batch
                if isinstance(up, BatchDone):
                    rows = np.asarray(up.results)
                    if (rows.dtype != RESULT_DTYPE or len(rows) != len(batch)
                            or not np.array_equal(rows["ipix"], batch.ipix)
                            or not np.array_equal(rows["nside"], batch.nside)
                            or not np.array_equal(rows["variation"], batch.variation)):
                        up = BatchFailed(up.batch_id, "reco returned rows for other tasks",
                                         worker=up.worker)
                if isinstance(up, BatchDone):
                    self._last_worker = up.worker
                    self._round_batches += 1
                    cpu = float(getattr(up, "cpu_s", float("nan")))
                    if math.isfinite(cpu):
                        self._round_cpu += cpu
                        self._round_cpu_batches += 1
                    bad = ~np.isfinite(rows["llh"])
                    out = accept(rows[~bad], fl.idx[~bad], batch.attempt)
                    if bad.any():
                        nan = Flight(batch.select(np.flatnonzero(bad), -1).with_attempt(
                            batch.attempt + 1, up.worker), fl.idx[bad], fl.failures + 1,
                            fl.losses)
                        if nan.failures <= self.settings.max_retries:
                            retries.append(nan)
                            yield ScanLog("warning", f"{int(bad.sum())} pixel fit(s) returned "
                                          "NaN; retrying")
                        else:
                            yield ScanLog("error", f"{int(bad.sum())} pixel fit(s) returned "
                                          f"NaN {nan.failures} times; recorded as failed")
                            out = np.concatenate([out, give_up(nan)])
                    if len(out):
                        yield out
                elif isinstance(up, BatchFailed):
                    what = "lost (worker died)" if up.lost else "failed"
                    yield ScanLog("warning", f"batch of {len(batch)} pixel(s) {what} "
                                  f"(try {batch.attempt + 1}): {up.error}")
                    single = len(batch) == 1
                    if up.lost:
                        over = fl.losses + 1 > max_lost
                    else:
                        over = single and fl.failures + 1 > self.settings.max_retries
                    if over:
                        yield ScanLog("error", f"{len(batch)} pixel fit(s) at nside "
                                      f"{rnd.nside} failed for good: {up.error}")
                        rows = give_up(fl)
                        if len(rows):
                            yield rows
                    else:
                        requeue(fl, up.lost, up.worker)
