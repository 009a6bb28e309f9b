"""Point queries on a skymap [deg]: likelihood, credible level and regions at a direction.

For a direction (RA, Dec) the multi-order pixel holding it gives −ln L and
TS = 2ΔLLH (with an error floor: of the smoothed map, −2 ln of its density relative to the
peak; −ln L stays the scanned value); its *credible level* is the searched probability, the probability of all pixels
with a density at least the pixel's (ligo.skymap's ``searched_prob``), and the searched
area is their area. ``likelihood_level`` = 1 − exp(−TS/2) is the containment of a χ² with
two degrees of freedom at TS (Wilks). A source is inside a region when its pixel is.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import numpy as np

from skyscan_tui.errors import UserError
from skyscan_tui.stats import SR_TO_DEG2, SkyStats, credible_region, likelihood_region

__all__ = ["point_query", "format_query", "read_catalog", "catalog_query", "MAX_CATALOG"]

MAX_CATALOG = 1_000_000  # rows; a catalogue file is user input


def _sep_deg(ra1: float, dec1: float, ra2: float, dec2: float) -> float:
    """[deg] angular distance between two directions given in degrees (haversine)."""
    r1, d1, r2, d2 = map(math.radians, (ra1, dec1, ra2, dec2))
    h = (math.sin((d2 - d1) / 2) ** 2
         + math.cos(d1) * math.cos(d2) * math.sin((r2 - r1) / 2) ** 2)
    return math.degrees(2 * math.asin(min(1.0, math.sqrt(h))))


def point_query(stats: SkyStats, ra_deg: float, dec_deg: float,
                levels: list[float] | tuple[float, ...] = (0.5, 0.9)) -> dict[str, Any]:
    """What the map says at (``ra_deg``, ``dec_deg``) [deg, J2000].

    Returns a dict: ``llh`` (−ln L), ``ts`` (2ΔLLH), ``likelihood_level``,
    ``credible_level`` (searched probability), ``searched_area_deg2``, ``offset_deg`` from
    the best fit, ``inside`` (per level: likelihood and credible region) and the pixel's
    ``nside``/``ipix_nest``. Values are None where the map has nothing at the direction.
    """
    if not (math.isfinite(ra_deg) and math.isfinite(dec_deg) and -90 <= dec_deg <= 90):
        raise UserError(f"query: ({ra_deg}, {dec_deg}) is not a direction (Dec in -90..90)")
    mo = stats.mo
    j = int(mo.lookup(math.radians(ra_deg), math.radians(dec_deg)))
    out: dict[str, Any] = {
        "ra_deg": ra_deg % 360.0, "dec_deg": dec_deg,
        "offset_deg": _sep_deg(stats.ra_deg, stats.dec_deg, ra_deg, dec_deg),
        "nside": None, "ipix_nest": None, "llh": None, "ts": None, "likelihood_level": None,
        "credible_level": None, "searched_area_deg2": None, "inside": {},
        "error_floor_deg": stats.error_floor_deg, "systematic": stats.systematic,
    }
    known = j >= 0 and math.isfinite(float(stats.dllh[j]))
    if known:
        ts = float(2.0 * stats.dllh[j])
        dens = np.where(np.isfinite(stats.dllh), -stats.dllh, -np.inf)
        higher = dens >= dens[j]  # pixels searched before reaching this one, itself included
        out.update(nside=int(mo.nside[j]), ipix_nest=int(mo.ipix[j]), llh=float(mo.llh[j]),
                   ts=ts, likelihood_level=float(-math.expm1(-ts / 2.0)),
                   credible_level=float(min(stats.prob[higher].sum(), 1.0)),
                   searched_area_deg2=float(mo.area[higher].sum() * SR_TO_DEG2))
    for level in levels:
        lr, cr = likelihood_region(stats, level), credible_region(stats, level)
        out["inside"][f"{level * 100:g}"] = {
            "likelihood": bool(known and lr.mask[j]), "ts_threshold": lr.ts,
            "credible": bool(known and cr.mask[j])}
    return out


def format_query(q: dict[str, Any]) -> str:
    """The query as a few lines of text."""
    lines = [f"RA {q['ra_deg']:.4f} deg, Dec {q['dec_deg']:+.4f} deg: "
             f"{q['offset_deg']:.3f} deg from the best fit"]
    if q["llh"] is None:
        lines.append("the map has no value here (not scanned, or the fit failed)")
        return "\n".join(lines)
    if q.get("error_floor_deg"):  # the regions are of the smoothed map; -log L is as scanned
        lines.append(f"{q['systematic']}; 2 dLLH is of the smoothed map")
    lines.append(f"-log L = {q['llh']:.4f}, 2 dLLH = {q['ts']:.4f} "
                 f"(Wilks containment {q['likelihood_level'] * 100:.2f}%; nside {q['nside']})")
    lines.append(f"credible level {q['credible_level'] * 100:.2f}% "
                 f"(searched area {q['searched_area_deg2']:.3f} sq. deg)")
    for lab, ins in q["inside"].items():
        lines.append(f"{lab}% region (2 dLLH <= {ins['ts_threshold']:.4g}): "
                     f"{'inside' if ins['likelihood'] else 'outside'}; {lab}% credible: "
                     f"{'inside' if ins['credible'] else 'outside'}")
    return "\n".join(lines)


def read_catalog(path: str | Path) -> list[tuple[str, float, float]]:
    """(name, ra [deg], dec [deg]) rows of a CSV file with columns ``name, ra, dec``."""
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            cols = {c.strip().lower(): c for c in (reader.fieldnames or [])}
            if not {"name", "ra", "dec"} <= set(cols):
                raise UserError(f"{path}: a catalogue needs the columns name, ra, dec [deg]")
            rows = []
            for i, row in enumerate(reader, start=2):
                if len(rows) >= MAX_CATALOG:
                    raise UserError(f"{path}: more than {MAX_CATALOG} sources")
                try:
                    ra, dec = float(row[cols["ra"]]), float(row[cols["dec"]])
                except (TypeError, ValueError):
                    raise UserError(f"{path}: line {i}: ra/dec are not numbers") from None
                if not (math.isfinite(ra) and math.isfinite(dec) and -90 <= dec <= 90):
                    raise UserError(f"{path}: line {i}: ({ra}, {dec}) is not a direction")
                rows.append((str(row[cols["name"]]).strip(), ra, dec))
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a UTF-8 text file") from None
    except csv.Error as exc:
        raise UserError(f"{path}: not a readable CSV file ({exc})") from None
    return rows


def catalog_query(stats: SkyStats, sources: list[tuple[str, float, float]],
                  level: float = 0.9) -> list[dict[str, Any]]:
    """Sources inside the ``level`` likelihood region, each with its query [deg], by TS."""
    region = likelihood_region(stats, level)
    if not sources:
        return []
    ra = np.radians([s[1] for s in sources])
    dec = np.radians([s[2] for s in sources])
    j = stats.mo.lookup(ra, dec)
    inside = (j >= 0) & region.mask[np.clip(j, 0, None)]
    out = []
    for k in np.flatnonzero(inside).tolist():
        name, r, d = sources[k]
        q = point_query(stats, r, d, levels=())
        out.append({"name": name, "ra_deg": r, "dec_deg": d, "ts": q["ts"],
                    "likelihood_level": q["likelihood_level"],
                    "credible_level": q["credible_level"], "offset_deg": q["offset_deg"]})
    return sorted(out, key=lambda s: (s["ts"], s["name"]))
