"""Scan the real alerts in tests/data and print the best fit's angle to the file's own seeds.

Usage::

    python -m benchmarks.realtime_scan_angles [--reco mpe] [-j 2] [--progression 8:0,64:12,512:24]
                                              [FILE ...]

For each event: run/event id and type, best-fit RA/Dec, −log L, wall time, and the angle [deg]
between the best fit and every seed fit stored in the file (the first is the online track
fit, e.g. OnlineL2_SplineMPE). Track alerts should land within a few degrees of it. Runs the
events one after the other (the local executor with ``-j`` workers each).
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def _angle_deg(zen1: float, azi1: float, zen2: float, azi2: float) -> float:
    def vec(z: float, a: float) -> np.ndarray:
        return np.array([np.sin(z) * np.cos(a), np.sin(z) * np.sin(a), np.cos(z)])

    return math.degrees(math.acos(float(np.clip(vec(zen1, azi1) @ vec(zen2, azi2), -1, 1))))


def main() -> int:
    from executors import get_executor
    from recos import available_recos
    from skyscan_tui import sky
    from skyscan_tui.engine import ScanEngine, ScanFinished, ScanSettings
    from skyscan_tui.eventfiles import load_event

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="*", type=Path)
    ap.add_argument("--reco", default="mpe")
    ap.add_argument("-j", "--jobs", type=int, default=2)
    ap.add_argument("--progression", default="8:0,64:12,512:24")
    args = ap.parse_args()
    if args.reco not in available_recos():
        print(f"reco {args.reco!r} is not available here ({', '.join(available_recos())})")
        return 1
    files = args.files or sorted(p for p in (REPO / "tests" / "data").iterdir()
                                 if p.suffix in (".json", ".pkl"))
    settings = ScanSettings(reco=args.reco, progression=sky.parse_progression(args.progression))
    print(f"reco {args.reco}, progression {args.progression}, local executor -j {args.jobs}")
    for path in files:
        event = load_event(path)
        t0 = time.monotonic()
        result = None
        for update in ScanEngine(event, settings, get_executor("local")(jobs=args.jobs)).run():
            if isinstance(update, ScanFinished):
                result = update.result
        wall = time.monotonic() - t0
        best = result.best() if result is not None else None
        if best is None:
            print(f"{path.name}: no result")
            continue
        angles = ", ".join(
            f"{s.name} {_angle_deg(best.zenith, best.azimuth, s.zenith, s.azimuth):.2f}"
            for s in event.seeds)
        print(f"{path.name}: run {event.run_id} event {event.event_id} {event.event_type}; "
              f"{len(event.pulses)} pulses; best RA {math.degrees(best.ra):.2f} "
              f"Dec {math.degrees(best.dec):+.2f} deg, -log L {best.llh:.1f} "
              f"(nside {best.nside}); {wall:.0f} s; angle to seeds [deg]: {angles}",
              flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
