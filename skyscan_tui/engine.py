"""The scan engine: rounds of pixel tasks over an nside progression, through any executor.

``ScanEngine.run()`` is a generator of progress updates (``RoundStarted``, ``PixelsDone``,
``RoundFinished``, ``ScanLog``, ``ScanFinished``) that the CLI and the TUI consume; it never
calls into a UI. The engine owns what every executor shares: batching, the number of
batches in flight, merging results (best over vertex variations, independent of arrival
order), retries of failed batches (split in halves to isolate a bad pixel), refinement
between rounds and the ETA, which counts the pixels of the rounds still to come.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from executors.base import BatchDone, BatchFailed, Executor, ExecutorLog, ScanContext
from skyscan_tui import sky
from skyscan_tui.coords import equatorial_to_local, local_to_equatorial
from skyscan_tui.events import Event
from skyscan_tui.results import ScanResult, empty_level
from skyscan_tui.tasks import TaskBatch, empty_results

__all__ = ["ScanSettings", "ScanEngine", "RoundStarted", "PixelsDone", "RoundFinished",
           "ScanLog", "ScanFinished", "ScanUpdate"]


@dataclass(frozen=True)
class ScanSettings:
    reco: str
    reco_options: dict[str, Any] = field(default_factory=dict)
    progression: sky.Progression = sky.DEFAULT_PROGRESSION
    batch_size: int | None = None  # pixels per batch; None = the reco's preference
    max_retries: int = 2


@dataclass(frozen=True)
class RoundStarted:
    round: int
    nside: int
    n_pixels: int
    n_tasks: int


@dataclass(frozen=True, eq=False)
class PixelsDone:
    """A batch came back. ``results`` holds its raw rows (one per pixel and variation)."""

    round: int
    nside: int
    results: np.ndarray
    round_done: int  # tasks finished in this round
    round_total: int
    done: int  # tasks finished overall
    total: int  # tasks planned overall, including rounds still to come
    rate: float  # [tasks/s]
    eta: float  # [s] until the scan is finished; nan while unknown
    worker: str = ""


@dataclass(frozen=True)
class RoundFinished:
    round: int
    nside: int
    best_ipix: int
    best_llh: float
    n_failed: int


@dataclass(frozen=True)
class ScanLog:
    level: str
    message: str


@dataclass(frozen=True, eq=False)
class ScanFinished:
    result: ScanResult
    cancelled: bool
    elapsed: float


ScanUpdate = RoundStarted | PixelsDone | RoundFinished | ScanLog | ScanFinished


class _Round:
    """Bookkeeping of one nside level: best row per pixel over its variations."""

    def __init__(self, index: int, nside: int, ipix: np.ndarray, n_var: int) -> None:
        self.index, self.nside, self.n_var = index, nside, n_var
        self.ipix = ipix
        self.level = empty_level(ipix)
        self.finished = np.zeros((len(ipix), n_var), dtype=bool)

    def merge(self, rows: np.ndarray) -> None:
        pos = np.searchsorted(self.ipix, rows["ipix"])
        for p, row in zip(pos, rows, strict=False):
            self.finished[p, row["variation"]] = True
            llh = row["llh"]
            cur = self.level[p]
            better = np.isnan(cur["llh"]) or llh < cur["llh"] or (
                llh == cur["llh"] and row["variation"] < cur["variation"])
            if np.isfinite(llh) and better:
                for f in ("llh", "E_in", "E_tot", "x", "y", "z", "t", "variation"):
                    self.level[p][f] = row[f]

    @property
    def n_tasks(self) -> int:
        return self.finished.size


class ScanEngine:
    """Runs a scan of ``event`` with ``settings`` on ``executor`` (see module docstring)."""

    def __init__(self, event: Event, settings: ScanSettings, executor: Executor) -> None:
        from recos import get_reco

        self.event = event
        self.settings = settings
        self.executor = executor
        self.reco = get_reco(settings.reco)(**settings.reco_options)
        self._cancel = threading.Event()
        self._paused = threading.Event()
        self.result: ScanResult | None = None

    # ---------------------------------------------------------------- control (thread-safe)
    def cancel(self) -> None:
        self._cancel.set()

    def pause(self) -> None:
        self._paused.set()

    def resume(self) -> None:
        self._paused.clear()

    @property
    def paused(self) -> bool:
        return self._paused.is_set()

    # ---------------------------------------------------------------- planning
    def planned_tasks(self, round_index: int, first_round_pixels: int) -> int:
        """Tasks of round ``round_index`` (exact: refined children never overlap)."""
        prog = self.settings.progression
        if round_index == 0:
            return first_round_pixels * self.reco.n_variations
        nside, count = prog[round_index]
        prev = prog[round_index - 1][0]
        return count * (nside // prev) ** 2 * self.reco.n_variations

    def _first_round_pixels(self, prepared: Any) -> np.ndarray:
        nside = self.settings.progression[0][0]
        region = self.reco.pointed_region(prepared)
        if region is None:
            return np.arange(12 * nside * nside, dtype=np.int64)
        ra, dec = local_to_equatorial(region.zenith, region.azimuth, self.event.mjd)
        return sky.disc_pixels(nside, float(ra), float(dec), region.radius)

    def _make_round(self, index: int, prev: _Round | None, prepared: Any) -> _Round:
        nside, count = self.settings.progression[index]
        if prev is None:
            ipix = self._first_round_pixels(prepared)
        else:
            ok = np.isfinite(prev.level["llh"])
            n_best = min(count, int(ok.sum()))
            ipix = sky.refine(prev.nside, prev.ipix, prev.level["llh"], nside, n_best)
        return _Round(index, nside, ipix, self.reco.n_variations)

    def _tasks(self, rnd: _Round, prev: _Round | None, prepared: Any) -> TaskBatch:
        ra, dec = sky.pixel_radec(rnd.nside, rnd.ipix)
        zen, azi = equatorial_to_local(ra, dec, self.event.mjd)
        n = len(rnd.ipix)
        if prev is None:
            seed = np.tile(self.reco.seed_vertex(prepared), (n, 1))
        else:  # the parent's best fit seeds each child (as upstream)
            shift = 2 * int(np.log2(rnd.nside // prev.nside))
            parent = np.searchsorted(prev.ipix, rnd.ipix >> shift)
            pl = prev.level[parent]
            seed = np.stack([pl["x"], pl["y"], pl["z"], pl["t"]], axis=1)
            bad = ~np.isfinite(seed).all(axis=1)
            seed[bad] = self.reco.seed_vertex(prepared)
        nv = self.reco.n_variations
        rep = np.repeat(np.arange(n), nv)
        return TaskBatch(-1, rnd.index, np.full(n * nv, rnd.nside, dtype=np.int32),
                         rnd.ipix[rep], np.tile(np.arange(nv, dtype=np.int32), n),
                         zen[rep], azi[rep], seed[rep])

    def _batch_size(self, n_tasks: int) -> int:
        if self.settings.batch_size:
            return int(self.settings.batch_size)
        # enough batches to keep every worker busy and results streaming
        per_worker = -(-n_tasks // (4 * max(1, self.executor.workers)))
        return int(max(1, min(self.reco.preferred_batch, per_worker)))

    # ---------------------------------------------------------------- the scan
    def run(self) -> Iterator[ScanUpdate]:
        t_start = time.monotonic()
        prepared = self.reco.prepare(self.event)
        context = ScanContext(self.settings.reco, dict(self.reco.options), self.event)
        self.executor.start(context)
        result = ScanResult(
            run_id=self.event.run_id, event_id=self.event.event_id, mjd=self.event.mjd,
            event_type=self.event.event_type, reco=self.reco.name,
            likelihood=self.reco.likelihood,
            is_real_event=bool(self.event.meta.get("is_real_event", False)),
            meta={"nside_progression": sky.format_progression(self.settings.progression),
                  "reco_options": dict(self.reco.options),
                  "geometry": self.event.geometry},
        )
        self.result = result
        prev: _Round | None = None
        done_total = first_pixels = 0
        t_work = None
        cancelled = False
        try:
            for index in range(len(self.settings.progression)):
                rnd = self._make_round(index, prev, prepared)
                if len(rnd.ipix) == 0:
                    break
                tasks = self._tasks(rnd, prev, prepared)
                if index == 0:
                    first_pixels = len(rnd.ipix)
                # planned tasks of this and the later rounds (refined children never overlap)
                total = done_total + rnd.n_tasks + sum(
                    self.planned_tasks(i, first_pixels)
                    for i in range(index + 1, len(self.settings.progression)))
                yield RoundStarted(index, rnd.nside, len(rnd.ipix), rnd.n_tasks)
                if t_work is None:
                    t_work = time.monotonic()
                for update in self._run_round(rnd, tasks):
                    if isinstance(update, ScanLog):
                        yield update
                        continue
                    done_total += len(update)
                    elapsed = max(time.monotonic() - t_work, 1e-9)
                    rate = done_total / elapsed
                    remaining = total - done_total
                    yield PixelsDone(index, rnd.nside, update,
                                     int(rnd.finished.sum()), rnd.n_tasks, done_total, total,
                                     rate, remaining / rate if rate > 0 else float("nan"),
                                     self._last_worker)
                result.levels[rnd.nside] = rnd.level
                if self._cancel.is_set():
                    cancelled = True
                    break
                lv = rnd.level
                ok = np.flatnonzero(np.isfinite(lv["llh"]))
                n_failed = len(lv) - len(ok)
                if ok.size:
                    b = ok[np.lexsort((lv["ipix"][ok], lv["llh"][ok]))[0]]
                    yield RoundFinished(index, rnd.nside, int(lv["ipix"][b]),
                                        float(lv["llh"][b]), n_failed)
                else:
                    yield RoundFinished(index, rnd.nside, -1, float("nan"), n_failed)
                    yield ScanLog("error", f"every pixel failed at nside {rnd.nside}")
                    break
                prev = rnd
        finally:
            if self._cancel.is_set():
                cancelled = True
                self.executor.cancel()
            self.executor.close()
        elapsed = time.monotonic() - t_start
        result.meta["elapsed_s"] = round(elapsed, 3)
        result.meta["cancelled"] = cancelled
        yield ScanFinished(result, cancelled, elapsed)

    _last_worker = ""

    def _run_round(self, rnd: _Round, tasks: TaskBatch) -> Iterator[np.ndarray | ScanLog]:
        """Submit the round's tasks in batches; yield each batch's result rows as they come."""
        size = self._batch_size(len(tasks))
        queue: deque[tuple[TaskBatch, int]] = deque()
        next_id = 0
        for start in range(0, len(tasks), size):
            queue.append((tasks.select(np.arange(start, min(start + size, len(tasks))),
                                       next_id), 0))
            next_id += 1
        in_flight: dict[int, tuple[TaskBatch, int]] = {}
        while (queue or in_flight) and not self._cancel.is_set():
            free = self.executor.slots - len(in_flight)
            if free > 0 and queue and not self._paused.is_set():
                sending = [queue.popleft() for _ in range(min(free, len(queue)))]
                for batch, attempt in sending:
                    in_flight[batch.batch_id] = (batch, attempt)
                self.executor.submit([b for b, _ in sending])
            for up in self.executor.poll(timeout=0.05):
                if isinstance(up, ExecutorLog):
                    yield ScanLog(up.level, up.message)
                    continue
                entry = in_flight.pop(up.batch_id, None)
                if entry is None:
                    continue  # a duplicate report; results are keyed by pixel anyway
                batch, attempt = entry
                if isinstance(up, BatchDone):
                    rows = up.results
                    bad = ~np.isfinite(rows["llh"])
                    if bad.any() and attempt < self.settings.max_retries:
                        retry = batch.select(np.flatnonzero(bad), next_id)
                        next_id += 1
                        queue.append((retry, attempt + 1))
                        rows = rows[~bad]
                        yield ScanLog("warning", f"{int(bad.sum())} pixel fit(s) returned NaN;"
                                      " retrying")
                    rnd.merge(rows)
                    self._last_worker = up.worker
                    if len(rows):
                        yield rows
                elif isinstance(up, BatchFailed):
                    yield ScanLog("warning", f"batch of {len(batch)} pixel(s) failed "
                                  f"(attempt {attempt + 1}): {up.error}")
                    if attempt < self.settings.max_retries:
                        # split a failing batch to isolate a bad pixel; a lost one stays whole
                        parts = ([np.arange(len(batch))] if up.lost or len(batch) == 1
                                 else np.array_split(np.arange(len(batch)), 2))
                        for part in parts:
                            queue.append((batch.select(part, next_id), attempt + 1))
                            next_id += 1
                    else:
                        yield ScanLog("error", f"{len(batch)} pixel(s) failed for good at "
                                      f"nside {rnd.nside}: {up.error}")
                        rows = empty_results(len(batch))
                        rows["nside"], rows["ipix"] = batch.nside, batch.ipix
                        rows["variation"] = batch.variation
                        rnd.merge(rows)
                        yield rows
