"""The engine's batch loop: tasks of one or more rounds through the executor.

:class:`Dispatcher` cuts batches from the task lists it was given (:meth:`Dispatcher.add`),
keeps at most ``executor.slots`` in flight, retries failed batches (split in halves until
the bad pixel is alone), merges finished rows into their round and logs them to the
checkpoint. A sequential scan gives it one round at a time; a predictive scan
(:mod:`skyscan_tui.refinement`) adds the next round's tasks, or more tasks of a round, while
it runs. Tasks are handed out in the order they were added, retries first.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Iterator
from typing import Any

import numpy as np

from executors.base import BatchDone, BatchFailed, ExecutorLog
from skyscan_tui.rounds import Flight, Round
from skyscan_tui.scanupdates import ScanLog
from skyscan_tui.tasks import RESULT_DTYPE, empty_results

__all__ = ["Dispatcher", "LOST_EXTRA"]

#: extra tries a batch gets when its worker died (it may be an innocent bystander)
LOST_EXTRA = 3


class _Source:
    """Task indices of one round still to hand out, cut into batches of ``size``."""

    def __init__(self, rnd: Round, todo: np.ndarray, size: int) -> None:
        self.rnd, self.todo, self.size, self.cursor = rnd, todo, size, 0

    @property
    def exhausted(self) -> bool:
        return self.cursor >= len(self.todo)


class Dispatcher:
    """Runs rounds' tasks through ``engine.executor`` (see the module docstring).

    ``engine`` is the :class:`~skyscan_tui.engine.ScanEngine` (settings, executor, checkpoint
    log, counters); ``in_flight_keys`` the task keys a resumed scan had in flight (their
    recomputation is counted)."""

    def __init__(self, engine: Any, in_flight_keys: np.ndarray) -> None:
        self.engine = engine
        self.in_flight_keys = in_flight_keys
        self.sources: deque[_Source] = deque()
        self.retries: deque[Flight] = deque()
        self.in_flight: dict[int, Flight] = {}
        self.rounds: dict[int, Round] = {}  # by nside, for reports of an earlier session
        self.next_id = 0
        restored = engine._restored
        self.recomputed_before = restored.recomputed_before if restored is not None else 0

    def add(self, rnd: Round, idx: np.ndarray) -> None:
        """Hand out the tasks ``idx`` of ``rnd`` (finished ones are skipped)."""
        self.rounds[rnd.nside] = rnd
        todo = np.asarray(idx, dtype=np.int64)
        todo = todo[~rnd.finished[todo]]
        if len(todo):
            self.sources.append(_Source(rnd, todo, self.engine._batch_size(len(todo))))

    @property
    def idle(self) -> bool:
        """Nothing in flight, to retry or to hand out."""
        return not self.in_flight and not self.retries and all(
            s.exhausted for s in self.sources)

    # ---------------------------------------------------------------- batches
    def _next_batch(self) -> Flight | None:
        while self.retries:
            fl = self.retries.popleft()
            rnd = fl.rnd
            assert rnd is not None and rnd.tasks is not None
            keep = ~rnd.finished[fl.idx]  # an orphan report may have finished some
            if keep.any():
                fl.idx = fl.idx[keep]
                fl.batch = rnd.tasks.select(fl.idx, self.next_id).with_attempt(
                    fl.batch.attempt, fl.batch.avoid)
                self.next_id += 1
                return fl
        while self.sources:
            src = self.sources[0]
            rnd = src.rnd
            while not src.exhausted:
                idx = src.todo[src.cursor:src.cursor + src.size]
                src.cursor += len(idx)
                idx = idx[~rnd.finished[idx]]
                if len(idx):
                    assert rnd.tasks is not None
                    self.next_id += 1
                    return Flight(rnd.tasks.select(idx, self.next_id - 1), idx, rnd=rnd)
            self.sources.popleft()
        return None

    def _requeue(self, fl: Flight, lost: bool, worker: str) -> None:
        """Retry a failed batch, split to isolate the bad pixel.

        The tries of a pixel on its own are counted."""
        single = len(fl.idx) == 1
        failures = fl.failures + (0 if lost or not single else 1)
        losses = fl.losses + (1 if lost else 0)
        parts = (np.array_split(np.arange(len(fl.idx)), 2) if not single
                 else [np.arange(1)])
        for part in parts:
            self.retries.append(Flight(fl.batch.select(part, -1).with_attempt(
                fl.batch.attempt + 1, worker), fl.idx[part], failures, losses, fl.rnd))

    def _give_up(self, fl: Flight) -> np.ndarray:
        from skyscan_tui.checkpoint import FAILED

        rnd = fl.rnd
        assert rnd is not None
        rows = empty_results(len(fl.idx))
        rows["nside"], rows["ipix"] = fl.batch.nside, fl.batch.ipix
        rows["variation"] = fl.batch.variation
        fresh = ~rnd.finished[fl.idx]
        rows, idx = rows[fresh], fl.idx[fresh]
        rnd.merge(rows, idx)
        self.engine._log(FAILED, rnd, rows, fl.batch.attempt)
        for r in rows:
            self.engine._note_failed(r)
        return rows

    def _accept(self, rnd: Round, rows: np.ndarray, idx: np.ndarray,
                attempt: int) -> np.ndarray:
        """Merge finished rows of tasks not finished yet; log them; count recomputes."""
        from skyscan_tui.checkpoint import RESULT, task_keys

        eng = self.engine
        fresh = (idx >= 0)
        fresh[fresh] = ~rnd.finished[idx[fresh]]
        rows, idx = rows[fresh], idx[fresh]
        if not len(rows):
            return rows
        rnd.merge(rows, idx)
        eng._log(RESULT, rnd, rows, attempt)
        eng._computed += len(rows)
        rnd.computed += len(rows)
        if len(self.in_flight_keys):
            keys = task_keys(rows["nside"], rows["ipix"], rows["variation"])
            eng._recomputed += int(np.isin(keys, self.in_flight_keys).sum())
            if eng._ckpt is not None:  # cumulative, so a later kill keeps the count
                eng._ckpt.update(recomputed_tasks=eng._recomputed + self.recomputed_before)
        return rows

    def _submit(self) -> None:
        from skyscan_tui.checkpoint import SUBMITTED

        eng = self.engine
        while len(self.in_flight) < eng.executor.slots:
            fl = self._next_batch()
            if fl is None:
                break
            self.in_flight[fl.batch.batch_id] = fl
            sub = empty_results(len(fl.idx))
            sub["nside"], sub["ipix"] = fl.batch.nside, fl.batch.ipix
            sub["variation"] = fl.batch.variation
            eng._log(SUBMITTED, fl.rnd, sub, fl.batch.attempt)
            eng.executor.submit([fl.batch])

    # ---------------------------------------------------------------- the loop
    def run(self) -> Iterator[tuple[Round, np.ndarray] | ScanLog]:
        """Submit and collect until idle or cancelled; yield (round, rows) as they come.

        The caller may :meth:`add` tasks between two yields; they are handed out next."""
        eng = self.engine
        max_lost = eng.settings.max_retries + LOST_EXTRA
        observer = eng._observer
        while not eng._cancel.is_set():
            if observer is not None:
                observer.tick()
            if not eng._paused.is_set():
                self._submit()
            if self.idle:
                break
            if not self.in_flight and eng._paused.is_set():
                time.sleep(0.05)  # paused and idle: do not spin on an empty poll
                continue
            for up in eng.executor.poll(timeout=0.05):
                if isinstance(up, ExecutorLog):
                    yield ScanLog(up.level, up.message)
                    continue
                fl = self.in_flight.pop(up.batch_id, None)
                if fl is None:
                    yield from self._orphan(up)
                    continue
                if isinstance(up, BatchDone):
                    yield from self._done(fl, up)
                elif isinstance(up, BatchFailed):
                    yield from self._failed(fl, up, max_lost)

    def _orphan(self, up: Any) -> Iterator[tuple[Round, np.ndarray]]:
        """A report of a batch this session did not submit (recovered from an earlier one)."""
        if not (isinstance(up, BatchDone)
                and getattr(up.results, "dtype", None) == RESULT_DTYPE):
            return
        for nside in np.unique(up.results["nside"]):
            rnd = self.rounds.get(int(nside))
            if rnd is None:
                continue
            part = up.results[up.results["nside"] == nside]
            rows = self._accept(rnd, part, rnd.task_index(part), 0)
            if len(rows):
                yield rnd, rows

    def _done(self, fl: Flight, up: BatchDone) -> Iterator[tuple[Round, np.ndarray] | ScanLog]:
        eng, batch, rnd = self.engine, fl.batch, fl.rnd
        assert rnd is not None
        rows = np.asarray(up.results)
        if (rows.dtype != RESULT_DTYPE or len(rows) != len(batch)
                or not np.array_equal(rows["ipix"], batch.ipix)
                or not np.array_equal(rows["nside"], batch.nside)
                or not np.array_equal(rows["variation"], batch.variation)):
            yield from self._failed(fl, BatchFailed(
                up.batch_id, "reco returned rows for other tasks", worker=up.worker),
                eng.settings.max_retries + LOST_EXTRA)
            return
        eng._last_worker = up.worker
        rnd.batches += 1
        cpu = float(getattr(up, "cpu_s", float("nan")))
        if math.isfinite(cpu):
            rnd.cpu_s += cpu
            rnd.cpu_batches += 1
        bad = ~np.isfinite(rows["llh"])
        out = self._accept(rnd, rows[~bad], fl.idx[~bad], batch.attempt)
        if bad.any():
            nan = Flight(batch.select(np.flatnonzero(bad), -1).with_attempt(
                batch.attempt + 1, up.worker), fl.idx[bad], fl.failures + 1, fl.losses, rnd)
            if nan.failures <= eng.settings.max_retries:
                self.retries.append(nan)
                yield ScanLog("warning", f"{int(bad.sum())} pixel fit(s) returned NaN; "
                              "retrying")
            else:
                yield ScanLog("error", f"{int(bad.sum())} pixel fit(s) returned NaN "
                              f"{nan.failures} times; recorded as failed")
                out = np.concatenate([out, self._give_up(nan)])
        if len(out):
            yield rnd, out

    def _failed(self, fl: Flight, up: BatchFailed, max_lost: int
                ) -> Iterator[tuple[Round, np.ndarray] | ScanLog]:
        batch, rnd = fl.batch, fl.rnd
        assert rnd is not None
        what = "lost (worker died)" if up.lost else "failed"
        yield ScanLog("warning", f"batch of {len(batch)} pixel(s) {what} "
                      f"(try {batch.attempt + 1}): {up.error}")
        single = len(batch) == 1
        if up.lost:
            over = fl.losses + 1 > max_lost
        else:
            over = single and fl.failures + 1 > self.engine.settings.max_retries
        if over:
            yield ScanLog("error", f"{len(batch)} pixel fit(s) at nside {rnd.nside} failed "
                          f"for good: {up.error}")
            rows = self._give_up(fl)
            if len(rows):
                yield rnd, rows
        else:
            self._requeue(fl, up.lost, up.worker)
