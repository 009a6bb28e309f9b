"""Bulk against layered ice on the real alerts in tests/data (``--reco-opt ice=layered``).

For each file and each ice model: a default 8/64/512 scan (serial executor) with the chosen
reco and ``pull=none`` (so −log L is the plain likelihood; the pull does not move the best
fit), printing −log L at the best fit, its angle to every seed fit of the file (the first is
the online SplineMPE), 2Δ(−log L) read off the map at the first seed's direction, and the
Wilks-90 % area. Nothing here tunes anything: the figures are reported as they come.

    python -m benchmarks.real_alert_ice [--reco spe] [--ice bulk,layered] [FILE ...]

Default files: the track alerts (the GOLD, BRONZE and 2023 stream alerts).
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TRACK_ALERTS = ("run00136766-evt000007637140-GOLD.pkl", "run00136662-evt000035405932-BRONZE.pkl",
                "138632_31747601.json")


def scan_file(path: Path, reco: str, ice: str) -> str:
    from benchmarks.accuracy import WILKS_90, region_area, ts_at
    from benchmarks.realtime_scan_angles import _angle_deg
    from executors.serial import SerialExecutor
    from skyscan_tui.coords import local_to_equatorial
    from skyscan_tui.engine import ScanEngine, ScanFinished, ScanSettings
    from skyscan_tui.eventfiles import load_event

    event = load_event(path)
    settings = ScanSettings(reco=reco, reco_options={"ice": ice, "pull": "none"})
    t0 = time.process_time()
    result = None
    for update in ScanEngine(event, settings, SerialExecutor()).run():
        if isinstance(update, ScanFinished):
            result = update.result
    cpu = time.process_time() - t0
    best = result.best()
    angles = ", ".join(f"{s.name} {_angle_deg(best.zenith, best.azimuth, s.zenith, s.azimuth):.2f}"
                       for s in event.seeds)
    first = event.seeds[0]
    ra, dec = local_to_equatorial(first.zenith, first.azimuth, event.mjd)
    ts_first = ts_at(result.levels, float(ra), float(dec))
    return (f"{path.name} {ice:7s}: -log L {best.llh:8.1f}; best RA {math.degrees(best.ra):6.2f} "
            f"Dec {math.degrees(best.dec):+6.2f}; angle to seeds [deg]: {angles}; 2dLLH at "
            f"{first.name} {ts_first:.1f}; A90 {region_area(result.levels, WILKS_90):.2f} deg2; "
            f"{cpu:.0f} s cpu")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="*", type=Path)
    ap.add_argument("--reco", default="spe")
    ap.add_argument("--ice", default="bulk,layered", help="ice models, comma-separated")
    args = ap.parse_args(argv)
    files = args.files or [REPO / "tests" / "data" / name for name in TRACK_ALERTS]
    print(f"reco {args.reco}, pull=none, default 8/64/512 scan, serial executor")
    for path in files:
        for ice in [i for i in args.ice.split(",") if i]:
            print(scan_file(path, args.reco, ice), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
