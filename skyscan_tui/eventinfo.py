"""What an event file holds, for ``skyscan-tui info``: header, pulse statistics and seeds."""

from __future__ import annotations

import datetime as _dt
import math
from typing import Any

import numpy as np

__all__ = ["event_info", "format_event_info", "mjd_to_utc"]


def mjd_to_utc(mjd: float) -> str:
    """[UTC days] MJD → ``YYYY-MM-DD hh:mm:ss.ffffff`` (no leap-second smearing).

    >>> mjd_to_utc(58849.5)
    '2020-01-01 12:00:00.000000'
    """
    day = math.floor(mjd)
    micro = round((mjd - day) * 86400e6)
    stamp = _dt.datetime(1858, 11, 17) + _dt.timedelta(days=day, microseconds=micro)
    return stamp.strftime("%Y-%m-%d %H:%M:%S.%f")


def event_info(event: Any) -> dict[str, Any]:
    """A JSON-ready description of ``event`` (angles in degrees, lengths m, times ns)."""
    from skyscan_tui.coords import local_to_equatorial

    p = event.pulses
    seeds = []
    if event.seeds:
        zen = np.array([s.zenith for s in event.seeds])
        azi = np.array([s.azimuth for s in event.seeds])
        ra, dec = local_to_equatorial(zen, azi, event.mjd)
        for s, r, d in zip(event.seeds, np.atleast_1d(ra), np.atleast_1d(dec), strict=True):
            seeds.append({
                "name": s.name, "zenith": math.degrees(s.zenith),
                "azimuth": math.degrees(s.azimuth), "ra": math.degrees(float(r)),
                "dec": math.degrees(float(d)), "x": s.x, "y": s.y, "z": s.z, "time": s.time,
                "energy": s.energy if math.isfinite(s.energy) else None,
            })
    meta = event.meta or {}
    info: dict[str, Any] = {
        "run_id": int(event.run_id), "event_id": int(event.event_id),
        "event_type": event.event_type, "mjd": float(event.mjd),
        "utc": meta.get("utc") or mjd_to_utc(event.mjd),
        "is_real_event": bool(meta.get("is_real_event", False)),
        "geometry": event.geometry,
        "pulse_series": meta.get("pulse_series"),
        "n_pulses": len(p), "n_doms": p.n_doms, "total_charge": float(np.sum(p.charge)),
        "time_range": [float(p.time.min()), float(p.time.max())] if len(p) else None,
        "seeds": seeds,
        "best_seed": None if not seeds else {k: seeds[0][k] for k in ("name", "ra", "dec")},
    }
    for key in ("available_series", "dropped_icetop_pulses", "dropped_unknown_dom_pulses",
                "sub_event_id", "source_format"):
        if key in meta:
            info[key] = meta[key]
    return info


def format_event_info(info: dict[str, Any]) -> str:
    """The lines ``skyscan-tui info`` prints for the event summary ``info``."""
    lines = [
        f"Run {info['run_id']} event {info['event_id']} ({info['event_type'] or 'simulated'})"
        + ("" if info["is_real_event"] else ", simulated"),
        f"Time: {info['utc']} UTC, MJD {info['mjd']:.8f}",
        f"Pulses: {info['n_pulses']} on {info['n_doms']} DOMs, total charge "
        f"{info['total_charge']:.2f} PE"
        + (f", series {info['pulse_series']}" if info.get("pulse_series") else ""),
    ]
    if info.get("time_range"):
        t0, t1 = info["time_range"]
        lines.append(f"Pulse times: {t0:.1f} .. {t1:.1f} ns (span {t1 - t0:.1f} ns)")
    dropped = info.get("dropped_icetop_pulses", 0)
    if dropped or info.get("dropped_unknown_dom_pulses"):
        lines.append(f"Dropped: {dropped} IceTop pulses, "
                     f"{info.get('dropped_unknown_dom_pulses', 0)} on DOMs not in the geometry")
    if info.get("available_series"):
        lines.append("Pulse series in file: " + ", ".join(info["available_series"]))
    lines.append(f"Geometry: {info['geometry']}")
    if info["seeds"]:
        lines.append("Seeds (zenith/azimuth of origin; RA/Dec J2000 at the event time):")
        for s in info["seeds"]:
            lines.append(f"  {s['name']:28s} zen {s['zenith']:8.3f} azi {s['azimuth']:8.3f} "
                         f"RA {s['ra']:8.3f} Dec {s['dec']:+8.3f} deg  "
                         f"x,y,z ({s['x']:.1f}, {s['y']:.1f}, {s['z']:.1f}) m  "
                         f"t {s['time']:.1f} ns")
        b = info["best_seed"]
        lines.append(f"Best seed {b['name']}: RA {b['ra']:.3f} deg, Dec {b['dec']:+.3f} deg")
    else:
        lines.append("Seeds: none")
    return "\n".join(lines)
