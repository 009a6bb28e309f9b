"""One scan per job for ``benchmarks.validation_report``: a simulated event or a real alert.

Every scan uses what a user gets from ``skyscan-tui scan FILE`` with no options: the default
reco (``app_api.scan_settings``), its default options, and the CLI's default ``--thresholds``
and ``--error-floor`` for the regions read off the map (``ScanResult.stats``). Only the nside
progression may be coarsened (``--quick``). Each job returns one JSON-ready row.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np


def cli_defaults() -> dict[str, Any]:
    """The ``scan`` command's default thresholds and error floor (what users get)."""
    from skyscan_tui.cli import parser

    args = parser().parse_args(["scan", "event.json"])
    return {"thresholds": args.thresholds, "error_floor_deg": args.error_floor or 0.0}


def _angle_deg(ra1: float, dec1: float, ra2: float, dec2: float) -> float:
    """Angle [deg] between two sky directions [rad]."""
    c = (math.sin(dec1) * math.sin(dec2)
         + math.cos(dec1) * math.cos(dec2) * math.cos(ra1 - ra2))
    return math.degrees(math.acos(max(-1.0, min(1.0, c))))


def _scan(event: Any, progression: str | None) -> tuple[Any, Any, float]:
    """(engine, result, cpu seconds) of a default scan of ``event`` (serial executor)."""
    from executors.serial import SerialExecutor
    from skyscan_tui.app_api import scan_settings
    from skyscan_tui.engine import ScanEngine, ScanFinished

    engine = ScanEngine(event, scan_settings(progression=progression), SerialExecutor())
    t0 = time.process_time()
    result = None
    for update in engine.run():
        if isinstance(update, ScanFinished):
            result = update.result
    cpu = time.process_time() - t0
    if result is None or result.best() is None:
        raise RuntimeError("the scan gave no fit")
    result.meta.update(cli_defaults())
    return engine, result, cpu


def _regions(stats: Any, ra: float, dec: float) -> dict[str, Any]:
    """Areas [deg²] of the map's 50/90 % regions, whether they hold (ra, dec) [rad], and
    2Δ(−log L) of the map pixel there."""
    i = int(stats.mo.lookup(ra, dec))
    ts = float(stats.ts[i]) if i >= 0 and np.isfinite(stats.ts[i]) else float("inf")
    r50, r90 = stats.region(0.5), stats.region(0.9)
    return {"a50": r50.area_deg2, "a90": r90.area_deg2,
            "in50": bool(i >= 0 and r50.mask[i]), "in90": bool(i >= 0 and r90.mask[i]),
            "ts": ts if math.isfinite(ts) else None}


def brightness(engine: Any, event: Any) -> int:
    """Cleaned DOMs with >= 2 photons (``PreparedTrack.n_bright``, what the pull curves and
    accuracy.py use); the pulse count for a reco without it."""
    prepared = engine.reco.prepare(event)
    return int(getattr(prepared, "n_bright", len(event.pulses)))


def scan_sim(job: tuple) -> dict[str, Any]:
    """One simulated track: job = (ice, spectrum, energy [GeV], seed, progression)."""
    from skyscan_tui.coords import local_to_equatorial
    from skyscan_tui.simulate import SimConfig, simulate_event

    ice, spectrum, energy, seed, progression = job
    event = simulate_event(SimConfig(seed=seed, energy=energy, ice=ice))
    engine, result, cpu = _scan(event, progression)
    best, truth = result.best(), event.truth
    ra_t, dec_t = (float(v) for v in local_to_equatorial(truth.zenith, truth.azimuth,
                                                         event.mjd))
    return {"kind": "sim", "ice": ice, "spectrum": spectrum, "energy": energy, "seed": seed,
            "reco": engine.settings.reco, "err": _angle_deg(best.ra, best.dec, ra_t, dec_t),
            "n_bright": brightness(engine, event), "cpu": cpu,
            **_regions(result.stats(), ra_t, dec_t)}


def scan_real(job: tuple) -> dict[str, Any]:
    """One real alert file: job = (path, progression). The file is scanned whatever the
    topology guard says (the CLI would need ``--allow-cascade`` for a cascade-like event)."""
    from skyscan_tui.app_api import topology_check
    from skyscan_tui.coords import local_to_equatorial
    from skyscan_tui.eventfiles import load_event

    path, progression = job
    event = load_event(Path(path))
    verdict = topology_check(event)
    engine, result, cpu = _scan(event, progression)
    best, stats = result.best(), result.stats()
    fits = []
    for s in event.seeds:
        ra, dec = (float(v) for v in local_to_equatorial(s.zenith, s.azimuth, event.mjd))
        there = {k: v for k, v in _regions(stats, ra, dec).items() if k in ("in50", "in90", "ts")}
        fits.append({"name": s.name, "angle": _angle_deg(best.ra, best.dec, ra, dec), **there})
    return {"kind": "real", "file": Path(path).name, "event_type": event.event_type,
            "reco": engine.settings.reco, "ra": math.degrees(best.ra),
            "dec": math.degrees(best.dec), "n_bright": brightness(engine, event),
            "a50": stats.region(0.5).area_deg2, "a90": stats.region(0.9).area_deg2,
            "cascade_like": None if verdict is None else bool(verdict.cascade_like),
            "llr": None if verdict is None else float(verdict.llr),
            "fits": fits, "cpu": cpu}
