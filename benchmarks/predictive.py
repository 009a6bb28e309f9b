"""Predictive scanning: time to the final result, and what it changes in the map (issue 21).

Scans a simulated event with the default progression through ``local -j N``: without
``--predictive``, with ``--predictive 1.0`` and with ``--predictive F``, alternating the
runs ``--repeat`` times, and prints the median wall time of each, the pixels per level, and
the differences to the default map (pixel sets, largest |Δ llh| on the pixels both fitted,
best pixel).

A laptop's round ends leave a worker idle for at most one batch, so the gain there is small;
on a cluster a round waits for its slowest jobs. The second part therefore runs the same
scans on a simulated cluster (:class:`VirtualCluster`): ``--workers`` workers, each batch
taking one virtual second per fit, and a seeded fraction ``--stragglers`` of the batches
``--slowdown`` times longer (a busy or slow node). The fits are real; only the clock is
simulated, so its times are exact and repeatable.

    python -m benchmarks.predictive [--reco spe] [--jobs 2] [--fraction 0.8] [--repeat 3]
                                    [--workers 100] [--stragglers 0.05] [--slowdown 10]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np


def scan(event, reco: str, jobs: int, predictive: float | None, refine: str = "best",
         executor=None, batch_size: int | None = None):
    """(result, wall seconds) of one scan through ``local -j jobs`` (or ``executor``)."""
    from executors.local import LocalExecutor
    from skyscan_tui.engine import ScanEngine, ScanFinished, ScanSettings

    settings = ScanSettings(reco=reco, predictive=predictive, refine=refine,
                            batch_size=batch_size)
    t0 = time.perf_counter()
    result = None
    ex = executor if executor is not None else LocalExecutor(jobs=jobs)
    for upd in ScanEngine(event, settings, ex).run():
        if isinstance(upd, ScanFinished):
            result = upd.result
    return result, time.perf_counter() - t0


def virtual_cluster(workers: int, stragglers: float, slowdown: float, seed: int = 1):
    """A :class:`VirtualCluster` (built here so the module imports without the project)."""
    from collections import deque

    from executors.base import BatchDone
    from executors.serial import SerialExecutor

    class VirtualCluster(SerialExecutor):
        """``workers`` simulated workers on a virtual clock; fits run for real in-process.

        A batch of n fits takes n virtual seconds, ``slowdown`` times more for a seeded
        fraction ``stragglers`` of the batches; :attr:`clock` is the virtual time [s]."""

        def __init__(self) -> None:
            super().__init__()
            self.rng = np.random.default_rng(seed)
            self.clock = 0.0
            self.running: deque[tuple[float, int, object]] = deque()
            self.count = 0

        @property
        def slots(self) -> int:
            return workers

        @property
        def workers(self) -> int:
            return workers

        def submit(self, batches) -> None:
            for b in batches:
                slow = slowdown if self.rng.random() < stragglers else 1.0
                self.count += 1
                self.running.append((self.clock + len(b) * slow, self.count, b))

        def poll(self, timeout: float):
            if not self.running or self._state is None:
                return []
            first = min(self.running, key=lambda r: (r[0], r[1]))
            self.running.remove(first)
            self.clock = max(self.clock, first[0])
            batch = first[2]
            return [BatchDone(batch.batch_id, self._state.run(batch), "virtual", 0.0)]

    return VirtualCluster()


def compare(ref, res) -> dict[str, object]:
    """Pixel-set and llh differences of ``res`` to ``ref``, per nside."""
    out: dict[str, object] = {}
    worst = 0.0
    for nside in sorted(ref.levels):
        a, b = ref.levels[nside], res.levels.get(nside)
        if b is None:
            out[f"nside {nside}"] = "missing"
            continue
        common = np.intersect1d(a["ipix"], b["ipix"])
        la = a["llh"][np.isin(a["ipix"], common)]
        lb = b["llh"][np.isin(b["ipix"], common)]
        ok = np.isfinite(la) & np.isfinite(lb)
        if ok.any():
            worst = max(worst, float(np.max(np.abs(la[ok] - lb[ok]))))
        out[f"nside {nside}"] = (f"{len(a)} vs {len(b)} pixels, "
                                 f"{len(np.setdiff1d(a['ipix'], b['ipix']))} only in default, "
                                 f"{len(np.setdiff1d(b['ipix'], a['ipix']))} only here")
    out["max |d llh| on common pixels"] = f"{worst:.3g}"
    rb, sb = ref.best(), res.best()
    out["same best pixel"] = (rb.nside, rb.ipix) == (sb.nside, sb.ipix)
    return out


def main(argv: list[str] | None = None) -> None:
    """Run the comparison and print its figures."""
    from skyscan_tui.simulate import SimConfig, simulate_event

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reco", default="spe")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--fraction", type=float, default=0.8)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=14)
    ap.add_argument("--workers", type=int, default=100)
    ap.add_argument("--stragglers", type=float, default=0.05)
    ap.add_argument("--slowdown", type=float, default=10.0)
    ap.add_argument("--batch-size", type=int, default=4)
    args = ap.parse_args(argv)
    event = simulate_event(SimConfig(seed=args.seed))
    modes = {"default": None, "--predictive 1.0": 1.0,
             f"--predictive {args.fraction:g}": args.fraction}
    walls: dict[str, list[float]] = {m: [] for m in modes}
    results: dict[str, object] = {}
    for _ in range(args.repeat):
        for name, frac in modes.items():
            res, wall = scan(event, args.reco, args.jobs, frac)
            walls[name].append(wall)
            results.setdefault(name, res)
    print(f"event: simulated seed {args.seed}; reco {args.reco}; local -j {args.jobs}; "
          f"{args.repeat} runs each, alternating")
    for name in modes:
        w = walls[name]
        print(f"  {name:>18}: median wall {statistics.median(w):.2f} s "
              f"(min {min(w):.2f}, max {max(w):.2f})")
    ref = results["default"]
    for name in list(modes)[1:]:
        print(f"  {name} vs default:")
        for key, value in compare(ref, results[name]).items():
            print(f"    {key}: {value}")
    up, wall = scan(event, args.reco, args.jobs, None, "upstream")
    print(f"  --refine upstream: wall {wall:.2f} s")
    for key, value in compare(ref, up).items():
        print(f"    {key}: {value}")
    print(f"virtual cluster: {args.workers} workers, {args.batch_size} pixels per batch, "
          f"1 virtual s per fit, {args.stragglers:.0%} of batches "
          f"{args.slowdown:g}x slower (seeded)")
    vref = None
    for name, frac in modes.items():
        ex = virtual_cluster(args.workers, args.stragglers, args.slowdown)
        res, _ = scan(event, args.reco, args.jobs, frac, executor=ex,
                      batch_size=args.batch_size)
        vref = vref or res
        n = sum(len(lv) for lv in res.levels.values())
        print(f"  {name:>18}: time to final result {ex.clock:.0f} virtual s, {n} pixels")
        if res is not vref:
            for key, value in compare(vref, res).items():
                print(f"    {key}: {value}")


if __name__ == "__main__":
    main()
