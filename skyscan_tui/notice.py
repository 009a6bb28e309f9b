"""GCN-style JSON notice of a scan, in the shape of IceCube's public notice schema.

The keys and their order follow the example of the GCN schema for IceCube single-neutrino
alerts (repository nasa-gcn/gcn-schema, ``gcn/notices/icecube/single_neutrino_alerts``,
release v6.1.0: ``$schema``, ``mission``, ``instrument``, ``messenger``, ``pipeline``,
``record_number``, ``event_name``, ``id``, ``alert_datetime``, ``alert_type``,
``alert_tense``, ``alert_topology``, ``number_of_events``, ``ra``, ``dec``, ``ra_dec_error``,
``containment_probability``, ``systematic_included``, ``healpix_url``, ``trigger_time``,
``nu_energy``, ``p_astro``, ``far``). Our values:

* ``ra``/``dec``: the best fit [deg, J2000]; ``ra_dec_error``: the circularised radius
  sqrt(area/π) [deg] of the 90 % region of the thresholds in use
  (``containment_probability`` 0.9); ``systematic_included``: an error floor was convolved
  in or calibrated (non-Wilks) thresholds were used.
* ``healpix_url``: the path of the probability FITS relative to the notice's folder (the
  flat ``…_probability.fits.gz`` when there is one, else the multi-order FITS).
* ``pipeline`` (the schema's enum: GOLD, BRONZE or cascade alerts), ``event_name``,
  ``nu_energy`` [TeV], ``p_astro`` (signalness) and ``far`` [Hz] appear only when known:
  given on the command line, or (``pipeline``) from the event type.
* ``alert_tense``: ``current`` for a real event, ``test`` for a simulated one;
  ``alert_type`` ``initial``, ``record_number`` 1; ``alert_topology`` ``Shower`` when the
  topology test found the event cascade-like, else ``Track``.
"""

from __future__ import annotations

import math
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from skyscan_tui.errors import UserError
from skyscan_tui.stats import SkyStats

__all__ = ["SCHEMA_URL", "NOTICE_NAME", "notice", "probability_file", "check_extra"]

SCHEMA_URL = ("https://gcn.nasa.gov/schema/v6.1.0/gcn/notices/icecube/"
              "single_neutrino_alerts.schema.json")
NOTICE_NAME = "notice.json"
#: event types (upper case) → the schema's ``pipeline`` enum
PIPELINES = {"GOLD": "Gold Track Alert", "BRONZE": "Bronze Track Alert",
             "CASCADE": "Cascade Alert"}


def _iso_z(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%f") + "Z"


def _trigger_time(result: Any) -> str:
    """[UTC, ISO 8601] event time: the alert file's own UTC string when there is one."""
    utc = result.meta.get("utc") if isinstance(result.meta, dict) else None
    if isinstance(utc, str):
        try:
            return _iso_z(datetime.strptime(utc, "%Y-%m-%d %H:%M:%S.%f"))
        except ValueError:
            pass
    t = datetime(1858, 11, 17) + timedelta(days=float(result.mjd))
    return _iso_z(t)


def check_extra(nu_energy: float | None = None, p_astro: float | None = None,
                far: float | None = None) -> dict[str, float]:
    """The optional numbers a notice carries when known; UserError for impossible ones."""
    out: dict[str, float] = {}
    for key, value, ok in (("nu_energy", nu_energy, lambda v: v > 0),
                           ("p_astro", p_astro, lambda v: 0 <= v <= 1),
                           ("far", far, lambda v: v >= 0)):
        if value is None:
            continue
        v = float(value)
        if not (math.isfinite(v) and ok(v)):
            raise UserError(f"notice: {key} {value!r} is out of range")
        out[key] = v
    return out


def probability_file(outdir: Path, basename: str) -> Path | None:
    """The probability FITS a scan wrote in ``outdir``: flat if there is one, else
    multi-order; None when neither exists."""
    flat = sorted(outdir.glob(f"{basename}.skymap_nside_*_probability.fits.gz"),
                  key=lambda p: (len(p.name), p.name))
    if flat:
        return flat[-1]  # the finest
    mo = outdir / f"{basename}.multiorder.fits"
    return mo if mo.is_file() else None


def notice(result: Any, stats: SkyStats, healpix: str | Path, notice_dir: str | Path,
           event_name: str | None = None, extra: dict[str, float] | None = None,
           now: datetime | None = None) -> dict[str, Any]:
    """The notice as a dict (keys in the schema example's order)."""
    etype = str(result.event_type or "").upper()
    topo = result.meta.get("topology") if isinstance(result.meta, dict) else None
    real = bool(result.is_real_event or result.meta.get("is_real_event"))
    r90 = stats.region(0.9)
    rel = os.path.relpath(Path(healpix), Path(notice_dir)).replace(os.sep, "/")
    now = now or datetime.now(timezone.utc)
    out: dict[str, Any] = {
        "$schema": SCHEMA_URL,
        "mission": "IceCube",
        "instrument": "IC86",
        "messenger": "Neutrino",
    }
    if etype in PIPELINES:
        out["pipeline"] = PIPELINES[etype]
    out["record_number"] = 1
    if event_name:
        out["event_name"] = [event_name]
    out.update({
        "id": [f"{int(result.run_id)}_{int(result.event_id)}"],
        "alert_datetime": _iso_z(now.astimezone(timezone.utc).replace(tzinfo=None)),
        "alert_type": "initial",
        "alert_tense": "current" if real else "test",
        "alert_topology": "Shower" if topo and topo.get("cascade_like") else "Track",
        "number_of_events": 1,
        "ra": round(stats.ra_deg % 360.0, 3),
        "dec": round(stats.dec_deg, 3),
        "ra_dec_error": round(r90.radius_deg, 3),
        "containment_probability": 0.9,
        "systematic_included": bool(stats.systematic_included),
        "healpix_url": rel,
        "trigger_time": _trigger_time(result),
    })
    out.update(extra or {})
    return out
