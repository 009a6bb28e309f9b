"""Bookkeeping of the engine's rounds.

The tasks of one nside level, which are finished, the best row per pixel
(:class:`Round`), and a batch out at the executor (:class:`Flight`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from skyscan_tui.results import empty_level
from skyscan_tui.tasks import TaskBatch

__all__ = ["Round", "Flight"]


class Round:
    """Bookkeeping of one nside level: its tasks, which are finished, the best row per pixel.

    Task ``t`` is pixel ``t // n_var`` (index into the sorted ``ipix``), variation
    ``t % n_var``.
    """

    def __init__(self, index: int, nside: int, ipix: np.ndarray, n_var: int) -> None:
        self.index, self.nside, self.n_var = index, nside, n_var
        self.ipix = ipix
        self.level = empty_level(ipix)
        self.finished = np.zeros(len(ipix) * n_var, dtype=bool)
        self.tasks: TaskBatch | None = None

    def task_index(self, rows: np.ndarray) -> np.ndarray:
        """Task index of each row; -1 where a row is not a task of this round."""
        pos = np.searchsorted(self.ipix, rows["ipix"])
        pos_c = np.minimum(pos, max(len(self.ipix) - 1, 0))
        var = rows["variation"].astype(np.int64)
        ok = ((rows["nside"] == self.nside) & (pos < len(self.ipix)) & (var >= 0)
              & (var < self.n_var))
        if len(self.ipix):
            ok &= self.ipix[pos_c] == rows["ipix"]
        return np.where(ok, pos_c * self.n_var + var, -1)

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
