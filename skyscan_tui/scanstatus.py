"""Progress numbers of a running scan: ``progress.json``'s snapshot, the partial result, the tallies.

:class:`ScanStatus` is a mixin of :class:`skyscan_tui.engine.ScanEngine` holding what the engine
tells its observers (:mod:`skyscan_tui.observe`) and records in ``result.meta``: the snapshot
for ``progress.json``, the result so far, the warning/error counts and the per-round timing.
It reads the engine's state and never changes the scan.
"""

from __future__ import annotations

import math
import time
from collections import deque
from typing import Any

import numpy as np

from skyscan_tui import sky
from skyscan_tui.results import ScanResult
from skyscan_tui.rounds import Round
from skyscan_tui.scanupdates import (
    RoundFinished,
    RoundStarted,
    ScanFinished,
    ScanLog,
    ScanUpdate,
    eta_estimate,
)

__all__ = ["ScanStatus"]


class ScanStatus:
    """The observability half of :class:`~skyscan_tui.engine.ScanEngine` (a mixin)."""

    # set by ScanEngine
    event: Any
    settings: Any
    executor: Any
    reco: Any
    result: ScanResult | None
    # the tallies' values before the engine's run sets them
    _last_worker = ""
    _n_warn = _n_err = 0
    _recent: deque[dict[str, Any]] = deque()

    @property
    def executor_status(self) -> dict[str, Any]:
        """The executor's status as last written to ``progress.json`` (remote job counts).

        ``{}`` before the first write or without an output folder. Safe to read from another
        thread: the engine's thread replaces it, never changes it."""
        obs = self._observer
        return getattr(obs, "executor_status", None) or {}

    def snapshot(self) -> dict[str, Any]:
        """The scan's numbers for ``progress.json`` (plain data; cheap)."""
        live = self._live
        now = time.monotonic()
        t_work = live["t_work"]
        work_s = 0.0 if t_work is None else now - t_work
        n_var = max(1, int(self.reco.n_variations))
        rounds = []
        for info in self._rounds_info:
            r = {k: v for k, v in info.items() if not k.startswith("_")}
            if info["state"] == "running":
                wall = now - info["_t0"]
                r["wall_s"] = round(wall, 3)
                r["pixels_per_s"] = (round(info["computed"] / n_var / wall, 3)
                                     if wall > 0 else None)
            r["pixels_done"] = info["fits_done"] // n_var
            rounds.append(r)
        cur = self._rounds_info[-1] if self._rounds_info else None
        measured = sum(1 for r in self._rounds_info[:-1] if r["computed"] > 0)
        eta = float("nan")
        if cur is not None:
            eta = eta_estimate(live["total"] - live["done"], self._computed_total(), work_s,
                               cur["computed"], cur["fits"] - cur["restored"], measured)
        rate = self._computed_total() / work_s if work_s > 0 else 0.0
        return {
            "event": {"run_id": int(self.event.run_id), "event_id": int(self.event.event_id)},
            "reco": self.settings.reco, "executor": self.executor.name,
            "nside_progression": sky.format_progression(self.settings.progression),
            "paused": self.paused,
            "round": None if cur is None else {
                "index": cur["round"], "of": len(self.settings.progression),
                "nside": cur["nside"], "pixels_done": cur["fits_done"] // n_var,
                "pixels_total": cur["pixels"], "fits_done": cur["fits_done"],
                "fits_total": cur["fits"]},
            "rounds": rounds,
            "fits": {"done": live["done"], "total": live["total"],
                     "computed": self._computed_total(), "failed": getattr(self, "_n_failed", 0),
                     "variations_per_pixel": n_var},
            "rate": {"fits_per_s": round(rate, 3), "pixels_per_s": round(rate / n_var, 3),
                     "work_s": round(work_s, 3)},
            "eta_s": None if not math.isfinite(eta) else round(eta, 1),
            "warnings": self._n_warn, "errors": self._n_err,
            "recent": list(self._recent),
        }

    def _computed_total(self) -> int:
        return int(getattr(self, "_computed", 0))

    def partial_result(self) -> ScanResult | None:
        """The result so far; None before anything finished.

        The finished rounds plus the pixels of the running rounds (several in a predictive
        scan) whose every fit is done (a subset of that level)."""
        base = self.result
        if base is None:
            return None
        levels = dict(base.levels)
        live = self._live.get("round")
        for rnd in self._live.get("open") or ([] if live is None else [live]):
            if rnd.nside in levels:
                continue
            done = rnd.pixels_done
            if done.any():
                lv = rnd.level[done]
                levels[rnd.nside] = lv[np.argsort(lv["ipix"], kind="stable")]
        if not levels:
            return None
        return ScanResult(base.run_id, base.event_id, base.mjd, base.event_type, base.reco,
                          base.likelihood, base.is_real_event, levels,
                          dict(base.meta, partial=True))

    def _observe(self, update: ScanUpdate) -> None:
        if isinstance(update, ScanLog):
            if update.level in ("warning", "error"):
                if update.level == "warning":
                    self._n_warn += 1
                else:
                    self._n_err += 1
                self._recent.append({"level": update.level, "message": update.message[:500],
                                     "time": round(time.time(), 3)})
        obs = self._observer
        if obs is None:
            return
        if isinstance(update, RoundStarted | RoundFinished):
            obs.event()
        elif isinstance(update, ScanFinished):
            obs.finish("cancelled" if update.cancelled else "finished")
        else:
            obs.changed()

    def _end_round(self, info: dict[str, Any], rnd: Round) -> None:
        """Close the per-round tallies (wall time, pixels/s, CPU seconds)."""
        wall = time.monotonic() - info["_t0"]
        n_var = max(1, rnd.n_var)
        lv = rnd.level
        info.update(state="interrupted" if self._cancel.is_set() else "done",
                    wall_s=round(wall, 3),
                    fits_done=int(rnd.finished.sum()),
                    computed=rnd.computed,
                    # pixels whose fits all ended without a value (not those never run)
                    failed=int((rnd.finished.reshape(-1, n_var).all(axis=1)
                                & ~np.isfinite(lv["llh"])).sum()) if len(lv) else 0,
                    pixels_per_s=(round(rnd.computed / n_var / wall, 3)
                                  if wall > 0 else None),
                    cpu_s=(round(rnd.cpu_s, 3) if rnd.cpu_batches else None),
                    batches=rnd.batches)
        if self._live.get("round") is rnd:
            self._live["round"] = None

    def _record_timing(self, result: ScanResult, elapsed: float, t_work: float | None) -> None:
        """Per-round and total timing [s] and the executor's status, in ``result.meta``.

        The timing includes CPU seconds; the summary files show them."""
        rounds = [{k: v for k, v in r.items() if not k.startswith("_")}
                  for r in self._rounds_info]
        for r in rounds:
            if r["state"] == "running":  # cancelled or failed mid-round
                r["state"] = "interrupted"
        cpus = [r["cpu_s"] for r in rounds if r["cpu_s"] is not None]
        result.meta["rounds"] = rounds
        result.meta["timing"] = {
            "elapsed_s": round(elapsed, 3),
            "work_s": round(0.0 if t_work is None else time.monotonic() - t_work, 3),
            "cpu_s": round(sum(cpus), 3) if cpus else None,
            "cpu_measure": "CPU time of the workers inside the reco's fits, summed over the "
                           "batches that came back (failed and lost batches, start-up and "
                           "fits restored from a checkpoint not counted)"}
        try:
            status = self.executor.status()
        except Exception:  # a status is a courtesy: never lose a result over it
            status = {}
        if status:
            result.meta["executor_status"] = status
