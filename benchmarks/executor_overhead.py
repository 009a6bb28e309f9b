"""Executor overhead: pixels/s of the zero-work `dummy` reco through `serial` and `local -j 2`.

Prints one line per executor and the overhead per pixel (wall time / pixels). Target: under
1 ms per pixel. Run: python -m benchmarks.executor_overhead [--pixels-nside 16] [--repeat 3]
"""

from __future__ import annotations

import argparse
import time


def main() -> int:
    from executors.local import LocalExecutor
    from executors.serial import SerialExecutor
    from skyscan_tui.engine import ScanEngine, ScanFinished, ScanSettings
    from skyscan_tui.simulate import SimConfig, simulate_event

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nside", type=int, default=16, help="single-level scan nside (16: 3072 px)")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    event = simulate_event(SimConfig(seed=1))
    settings = ScanSettings(reco="dummy", reco_options={"noise": 0.0},
                            progression=((args.nside, 0),))
    n_pix = 12 * args.nside**2
    print(f"dummy reco, zero work, {n_pix} pixels per scan, best of {args.repeat}")
    for label, make in (("serial", SerialExecutor), ("local -j 2", lambda: LocalExecutor(2)),
                        ("local -j 1", lambda: LocalExecutor(1))):
        best = float("inf")
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            for u in ScanEngine(event, settings, make()).run():
                if isinstance(u, ScanFinished):
                    assert len(u.result.levels[args.nside]) == n_pix
            best = min(best, time.perf_counter() - t0)
        print(f"{label:12s} {n_pix / best:10.0f} pixels/s   {1e3 * best / n_pix:.3f} ms/pixel "
              f"(wall {best:.2f} s incl. start-up)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
