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
numbers and timing in :mod:`skyscan_tui.scanstatus` (mixins of :class:`ScanEngine`), the
batch loop in :mod:`skyscan_tui.dispatch`; rounds run one after the other, except with
``--predictive`` or ``--refine upstream`` (:mod:`skyscan_tui.refinement`), where they may
overlap and grow.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from executors.base import Executor, ScanContext
from skyscan_tui import sky
from skyscan_tui.dispatch import LOST_EXTRA, Dispatcher
from skyscan_tui.errors import UserError
from skyscan_tui.events import Event
from skyscan_tui.folderlock import FolderLock
from skyscan_tui.overlays import event_overlays
from skyscan_tui.results import ScanResult
from skyscan_tui.rounds import Round
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
from skyscan_tui.tasks import empty_results

__all__ = ["ScanSettings", "ScanEngine", "RoundStarted", "PixelsDone", "RoundFinished",
           "ScanLog", "ScanFinished", "ScanUpdate", "LOST_EXTRA", "MAX_RETRIES"]

#: at most this many failed tasks are listed by name in the result metadata
MAX_FAILED_LISTED = 1000


def _settings_key(settings: ScanSettings, reco: Any) -> dict[str, Any]:
    """The settings a checkpoint must match (those that change the result), JSON-normal.

    The refinement rule and the predictive fraction appear only when not the defaults, so
    the checkpoints of default scans stay as they were."""
    key: dict[str, Any] = {
        "reco": settings.reco, "reco_options": dict(reco.options),
        "nside_progression": sky.format_progression(settings.progression),
        "n_variations": int(reco.n_variations)}
    if settings.refine != "best":
        key["refine"] = settings.refine
    if settings.predictive is not None:
        key["predictive"] = float(settings.predictive)
    return json.loads(json.dumps(key, sort_keys=True))


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
                 partial_interval: float | str | None = "auto",
                 topology: dict[str, Any] | None = None) -> None:
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
        # the topology guard's verdict (a dict), carried into every result; None: not tested
        self.topology = topology
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
        if self.topology is not None:  # partial results copy the meta, so they carry it too
            result.meta["topology"] = dict(self.topology)
        if self.settings.overlapping:  # a map whose pixels depend on the rule (and order)
            result.meta["refine"] = self.settings.refine
            result.meta["predictive"] = self.settings.predictive
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
        self._done_total = self._first_pixels = 0
        self._t_work: float | None = None
        self._in_flight_keys = in_flight_keys
        cancelled = False
        finished_ok = False
        try:
            self.executor.start(context)
            if self.settings.overlapping:
                from skyscan_tui.refinement import run_overlapping

                cancelled = yield from run_overlapping(self, prepared)
            else:
                cancelled = yield from self._sequential_rounds(prepared)
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
        self._record_timing(result, elapsed, self._t_work)
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


    # ---------------------------------------------------------------- rounds
    def _sequential_rounds(self, prepared: Any) -> Generator[ScanUpdate, None, bool]:
        """One round after the other, each refining the finished one before; True if cancelled.

        The pixels of every round depend only on finished rounds, never on arrival order."""
        prev: Round | None = None
        for index in range(len(self.settings.progression)):
            rnd = self._make_round(index, prev, prepared)
            if len(rnd.ipix) == 0:
                break
            rnd.tasks = self._tasks(rnd, prev, prepared)
            if index == 0:
                self._first_pixels = len(rnd.ipix)
            # planned tasks of this and the later rounds (refined children never overlap)
            total = self._done_total + rnd.n_tasks + sum(
                self.planned_tasks(i, self._first_pixels)
                for i in range(index + 1, len(self.settings.progression)))
            yield from self._begin_round(rnd, total)
            dispatcher = Dispatcher(self, self._in_flight_keys)
            dispatcher.add(rnd, np.arange(rnd.n_tasks))
            for item in dispatcher.run():
                if isinstance(item, ScanLog):
                    yield item
                else:
                    yield self._pixels_done(*item)
            status = yield from self._close_round(rnd)
            if status == "cancelled":
                return True
            if status == "failed":
                break
            prev = rnd
        return False

    def _begin_round(self, rnd: Round, total: int) -> Iterator[ScanUpdate]:
        """A round begins: its tallies, ``RoundStarted``, its fits restored from a checkpoint."""
        index = rnd.index
        info = {"round": index + 1, "nside": rnd.nside, "pixels": len(rnd.ipix),
                "fits": rnd.n_tasks, "fits_done": 0, "restored": 0, "computed": 0,
                "failed": 0, "state": "running", "wall_s": 0.0,
                "pixels_per_s": None, "cpu_s": None, "batches": 0,
                "_t0": time.monotonic(), "_measured": 0}
        rnd.info = info
        self._rounds_info.append(info)
        self._live.update(round=rnd, total=total, done=self._done_total)
        yield RoundStarted(index, rnd.nside, len(rnd.ipix), rnd.n_tasks)
        if self._ckpt is not None:
            self._ckpt.update(round=index, tasks_total=total)
            self._ckpt.maybe_sync(force=True)
        restored = self._restored
        if restored is not None:
            back = self._restore_round(rnd, restored.final)
            if len(back):
                self._done_total += len(back)
                info["restored"] = info["fits_done"] = len(back)
                self._live["done"] = self._done_total
                yield PixelsDone(index, rnd.nside, back, int(rnd.finished.sum()),
                                 rnd.n_tasks, self._done_total, total, 0.0, float("nan"),
                                 "checkpoint")
        if self._t_work is None:
            self._t_work = time.monotonic()
            self._live["t_work"] = self._t_work
        info["_t0"] = time.monotonic()  # the round's wall time starts with its work
        # earlier rounds that measured a rate: the ETA may use it at once
        info["_measured"] = sum(1 for r in self._rounds_info[:-1] if r["computed"] > 0)

    def _pixels_done(self, rnd: Round, rows: np.ndarray) -> PixelsDone:
        """The update for ``rows`` of ``rnd`` that just came back (counts, rate, ETA)."""
        assert self._t_work is not None
        info = rnd.info
        self._done_total += len(rows)
        elapsed = max(time.monotonic() - self._t_work, 1e-9)
        info["fits_done"] = int(rnd.finished.sum())
        info["computed"] = rnd.computed
        self._live["done"] = self._done_total
        total = int(self._live["total"])
        eta = eta_estimate(total - self._done_total, self._computed, elapsed,
                           info["computed"], rnd.n_tasks - info["restored"],
                           info["_measured"])
        if self._ckpt is not None:
            self._ckpt.update(tasks_done=self._done_total)
        return PixelsDone(rnd.index, rnd.nside, rows, int(rnd.finished.sum()), rnd.n_tasks,
                          self._done_total, total, self._computed / elapsed, eta,
                          self._last_worker)

    def _close_round(self, rnd: Round) -> Generator[ScanUpdate, None, str]:
        """A round ended: its level into the result, ``RoundFinished``.

        Returns "ok", "cancelled" (no update) or "failed" (every pixel failed)."""
        assert self.result is not None
        self._end_round(rnd.info, rnd)
        self.result.levels[rnd.nside] = rnd.sorted_level()
        if self._cancel.is_set():
            return "cancelled"
        if self._ckpt is not None:  # a round boundary: make it durable
            self._ckpt.update(round=rnd.index + 1, tasks_done=self._done_total)
            self._ckpt.maybe_sync(force=True)
        lv = rnd.level
        ok = np.flatnonzero(np.isfinite(lv["llh"]))
        n_failed = len(lv) - len(ok)
        rnd.tasks = None  # free the task arrays of a finished round
        if ok.size:
            b = ok[np.lexsort((lv["ipix"][ok], lv["llh"][ok]))[0]]
            yield RoundFinished(rnd.index, rnd.nside, int(lv["ipix"][b]),
                                float(lv["llh"][b]), n_failed)
            return "ok"
        yield RoundFinished(rnd.index, rnd.nside, -1, float("nan"), n_failed)
        yield ScanLog("error", f"every pixel failed at nside {rnd.nside}")
        return "failed"
