"""Bookkeeping of the engine's rounds.

The tasks of one nside level, which are finished, the best row per pixel
(:class:`Round`), and a batch out at the executor (:class:`Flight`). A round of a predictive
scan may grow while it runs (:meth:`Round.extend`): new pixels are appended, so the task
indices of batches in flight stay valid."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from skyscan_tui.results import empty_level
from skyscan_tui.tasks import TaskBatch

__all__ = ["Round", "Flight"]


class Round:
    """Bookkeeping of one nside level: its tasks, which are finished, the best row per pixel.

    Task ``t`` is pixel ``t // n_var`` (index into ``ipix``: sorted, unless the round was
    extended), variation ``t % n_var``.
    """

    def __init__(self, index: int, nside: int, ipix: np.ndarray, n_var: int) -> None:
        self.index, self.nside, self.n_var = index, nside, n_var
        self.ipix = ipix
        self.level = empty_level(ipix)
        self.finished = np.zeros(len(ipix) * n_var, dtype=bool)
        self.tasks: TaskBatch | None = None
        self._sorter: np.ndarray | None = None  # argsort of ipix once extended
        # tallies: fits computed this session, batches back, their CPU time (timing)
        self.computed, self.batches, self.cpu_s, self.cpu_batches = 0, 0, 0.0, 0
        self.info: dict[str, Any] = {}  # the engine's per-round numbers (progress.json)

    def pixel_index(self, ipix: np.ndarray) -> np.ndarray:
        """Index into ``self.ipix`` of each NESTED pixel; -1 where it is not in the round."""
        ipix = np.asarray(ipix, dtype=np.int64)
        srt = self.ipix if self._sorter is None else self.ipix[self._sorter]
        pos = np.minimum(np.searchsorted(srt, ipix), max(len(srt) - 1, 0))
        if not len(srt):
            return np.full(len(ipix), -1, dtype=np.int64)
        found = srt[pos] == ipix
        if self._sorter is not None:
            pos = self._sorter[pos]
        return np.where(found, pos, -1)

    def task_index(self, rows: np.ndarray) -> np.ndarray:
        """Task index of each row; -1 where a row is not a task of this round."""
        pix = self.pixel_index(rows["ipix"])
        var = rows["variation"].astype(np.int64)
        ok = (rows["nside"] == self.nside) & (pix >= 0) & (var >= 0) & (var < self.n_var)
        return np.where(ok, pix * self.n_var + var, -1)

    def extend(self, ipix: np.ndarray, tasks: TaskBatch) -> np.ndarray:
        """Append new pixels ``ipix`` (not in the round) and their ``tasks``.

        Returns the new task indices; earlier ones keep their meaning."""
        assert self.tasks is not None
        n0 = self.finished.size
        self.ipix = np.concatenate([self.ipix, ipix])
        self.level = np.concatenate([self.level, empty_level(ipix)])
        self.finished = np.concatenate([self.finished,
                                        np.zeros(len(ipix) * self.n_var, dtype=bool)])
        old = self.tasks
        self.tasks = TaskBatch(old.batch_id, old.round, *(
            np.concatenate([getattr(old, f), getattr(tasks, f)])
            for f in ("nside", "ipix", "variation", "zenith", "azimuth", "seed")))
        self._sorter = np.argsort(self.ipix, kind="stable")
        return np.arange(n0, self.finished.size)

    def sorted_level(self) -> np.ndarray:
        """The level's rows in NESTED pixel order (as a result stores them)."""
        return self.level if self._sorter is None else self.level[self._sorter]

    @property
    def pixels_done(self) -> np.ndarray:
        """Which pixels (index into ``ipix``) have every variation finished."""
        return self.finished.reshape(-1, self.n_var).all(axis=1)

    def merge(self, rows: np.ndarray, idx: np.ndarray) -> None:
        """Mark tasks ``idx`` finished and keep each pixel's best finite row.

        The best has the lowest llh, then the lowest variation; the outcome does not depend on
        arrival order."""
        self.finished[idx] = True
        fin = np.isfinite(rows["llh"])
        rows, idx = rows[fin], idx[fin]
        if not len(rows):
            return
        pix = idx // self.n_var
        order = np.lexsort((rows["variation"], rows["llh"], pix))
        rows, pix = rows[order], pix[order]
        first = np.ones(len(pix), dtype=bool)
        first[1:] = pix[1:] != pix[:-1]
        rows, pix = rows[first], pix[first]
        cur = self.level[pix]
        better = (np.isnan(cur["llh"]) | (rows["llh"] < cur["llh"])
                  | ((rows["llh"] == cur["llh"]) & (rows["variation"] < cur["variation"])))
        rows, pix = rows[better], pix[better]
        for f in ("llh", "E_in", "E_tot", "x", "y", "z", "t", "variation"):
            self.level[f][pix] = rows[f]

    @property
    def n_tasks(self) -> int:
        """Number of fits in the round."""
        return self.finished.size


@dataclass
class Flight:
    """A batch out at the executor and how often its tasks have failed so far."""

    batch: TaskBatch
    idx: np.ndarray  # task indices in the round
    failures: int = 0
    losses: int = 0
    rnd: Round | None = None  # the round the tasks belong to
