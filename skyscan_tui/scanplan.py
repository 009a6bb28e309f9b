"""Planning of a scan's rounds: size checks, the pixels of each round, their tasks, batch sizes.

:class:`ScanPlan` is a mixin of :class:`skyscan_tui.engine.ScanEngine`: the first round's
pixels (the whole sky or the reco's pointed region), the refinement of the best pixels into
the next round, the tasks (with the parent's best vertex as seed) and the batch size.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from skyscan_tui import sky
from skyscan_tui.coords import equatorial_to_local, local_to_equatorial
from skyscan_tui.errors import UserError
from skyscan_tui.rounds import Round
from skyscan_tui.tasks import TaskBatch

__all__ = ["ScanPlan", "MAX_ROUND_TASKS"]

#: fits in one round at most (memory: ~200 bytes each); nside 256 full sky is 786,432
MAX_ROUND_TASKS = 2_000_000


class ScanPlan:
    """The planning half of :class:`~skyscan_tui.engine.ScanEngine` (a mixin)."""

    # set by ScanEngine
    event: Any
    settings: Any
    executor: Any
    reco: Any

    def _check_size(self) -> None:
        """Refuse a progression whose rounds would not fit in memory, before any work."""
        from recos.base import Reco

        pointed = type(self.reco).pointed_region is not Reco.pointed_region
        prev = 0
        for i, (nside, count) in enumerate(self.settings.progression):
            if i == 0:
                n = 0 if pointed else 12 * nside * nside  # a disc is checked when known
            else:
                n = min(count * (nside // prev) ** 2, 12 * nside * nside)
            if n * self.reco.n_variations > MAX_ROUND_TASKS:
                raise UserError(f"nside progression: round {i + 1} (nside {nside}) would "
                                f"need {n * self.reco.n_variations:,} fits; at most "
                                f"{MAX_ROUND_TASKS:,} per round")
            prev = nside

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
        frac = (1.0 - np.cos(min(max(region.radius, 0.0), np.pi))) / 2.0  # of the sphere
        if frac * 12 * nside * nside * self.reco.n_variations > MAX_ROUND_TASKS:
            raise UserError(f"the first round at nside {nside} would need more than "
                            f"{MAX_ROUND_TASKS:,} fits; start at a lower nside")
        return sky.disc_pixels(nside, float(ra), float(dec), region.radius)

    def _make_round(self, index: int, prev: Round | None, prepared: Any) -> Round:
        nside, count = self.settings.progression[index]
        if prev is None:
            ipix = self._first_round_pixels(prepared)
        else:
            ok = np.isfinite(prev.level["llh"])
            n_best = min(count, int(ok.sum()))
            ipix = sky.refine(prev.nside, prev.ipix, prev.level["llh"], nside, n_best)
        return Round(index, nside, ipix, self.reco.n_variations)

    def _tasks(self, rnd: Round, prev: Round | None, prepared: Any,
               ipix: np.ndarray | None = None) -> TaskBatch:
        """The tasks of the pixels ``ipix`` of ``rnd`` (default: all of them)."""
        ipix = rnd.ipix if ipix is None else np.asarray(ipix, dtype=np.int64)
        ra, dec = sky.pixel_radec(rnd.nside, ipix)
        zen, azi = equatorial_to_local(ra, dec, self.event.mjd)
        n = len(ipix)
        if prev is None:
            seed = np.tile(self.reco.seed_vertex(prepared), (n, 1))
        else:  # the parent's best fit seeds each child (as upstream)
            shift = 2 * int(np.log2(rnd.nside // prev.nside))
            parent = prev.pixel_index(ipix >> shift)
            pl = prev.level[np.maximum(parent, 0)]
            seed = np.stack([pl["x"], pl["y"], pl["z"], pl["t"]], axis=1)
            bad = ~np.isfinite(seed).all(axis=1) | (parent < 0)
            seed[bad] = self.reco.seed_vertex(prepared)
        nv = self.reco.n_variations
        rep = np.repeat(np.arange(n), nv)
        return TaskBatch(-1, rnd.index, np.full(n * nv, rnd.nside, dtype=np.int32),
                         ipix[rep], np.tile(np.arange(nv, dtype=np.int32), n),
                         zen[rep], azi[rep], seed[rep])

    def _batch_size(self, n_tasks: int) -> int:
        if self.settings.batch_size:
            return int(self.settings.batch_size)
        # enough batches to keep every worker busy and results streaming
        per_worker = -(-n_tasks // (4 * max(1, self.executor.workers)))
        return int(max(1, min(self.reco.preferred_batch, per_worker)))
