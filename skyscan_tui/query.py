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


#: Column names accepted for name, ra, dec (case-insensitive), in order of preference: ours,
#: the Fermi-LAT 4FGL/4LAC FITS catalogues' and VizieR's.
ALIASES: dict[str, tuple[str, ...]] = {
    "name": ("name", "source_name", "source", "src_name", "object", "assoc1", "id"),
    "ra": ("ra", "raj2000", "ra_j2000", "_raj2000", "ra_deg", "radeg", "ra_icrs"),
    "dec": ("dec", "dej2000", "decj2000", "dec_j2000", "_dej2000", "dec_deg", "dedeg",
            "de_icrs"),
}
FITS_SUFFIXES = (".fits", ".fit", ".fts", ".fits.gz", ".fit.gz")
_NEED = "a catalogue needs columns name, ra, dec [deg] (or e.g. Source_Name, RAJ2000, DEJ2000)"


def _columns(names: list[str]) -> dict[str, str] | None:
    """Which of ``names`` serves as name, ra and dec (case-insensitive aliases)."""
    lower = {n.strip().lower(): n for n in names}
    out = {}
    for key, aliases in ALIASES.items():
        hit = next((lower[a] for a in aliases if a in lower), None)
        if hit is None:
            return None
        out[key] = hit
    return out


def _check_row(path: Path, where: str, ra: float, dec: float) -> None:
    if not (math.isfinite(ra) and math.isfinite(dec) and -90 <= dec <= 90):
        raise UserError(f"{path}: {where}: ({ra}, {dec}) is not a direction")


def _read_fits_catalog(path: Path) -> list[tuple[str, float, float]]:
    """Rows of the first table extension of a FITS file (astropy, imported only here)."""
    from astropy.io import fits

    try:
        with fits.open(path, memmap=False) as hdul:
            tab = next((h for h in hdul[1:] if isinstance(h, (fits.BinTableHDU,
                                                               fits.TableHDU))), None)
            if tab is None:
                raise UserError(f"{path}: no table in this FITS file")
            if tab.data is None or len(tab.data) > MAX_CATALOG:
                raise UserError(f"{path}: empty table or more than {MAX_CATALOG} sources")
            cols = _columns(list(tab.columns.names))
            if cols is None:
                raise UserError(f"{path}: {_NEED}")
            units = {c.name: (c.unit or "").strip().lower() for c in tab.columns}
            names = [str(x).strip() for x in tab.data[cols["name"]]]
            radec = []
            for key in ("ra", "dec"):
                v = np.asarray(tab.data[cols[key]], dtype=np.float64).reshape(-1)
                radec.append(np.degrees(v) if units[cols[key]] in ("rad", "radian") else v)
            if not len(names) == len(radec[0]) == len(radec[1]):
                raise UserError(f"{path}: ra/dec columns must hold one number per source")
    except UserError:
        raise
    except (OSError, ValueError, TypeError, KeyError, IndexError, AttributeError, EOFError,
            OverflowError, fits.VerifyError) as exc:  # what a damaged file makes astropy raise
        first = str(exc).splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{path}: not a readable FITS catalogue ({first})") from None
    rows = []
    for i, (name, ra, dec) in enumerate(zip(names, *radec, strict=True)):
        _check_row(path, f"row {i + 1}", float(ra), float(dec))
        rows.append((name, float(ra), float(dec)))
    return rows


def read_catalog(path: str | Path) -> list[tuple[str, float, float]]:
    """(name, ra [deg], dec [deg]) rows of a catalogue.

    The catalogue is a CSV file with columns ``name, ra, dec`` or a FITS table (e.g. 4FGL:
    ``Source_Name, RAJ2000, DEJ2000``)."""
    path = Path(path)
    if not path.is_file():  # a user error (exit 2), like a missing event or result file
        raise UserError(f"{path}: " + ("not a file" if path.exists() else "no such file"))
    if path.name.lower().endswith(FITS_SUFFIXES):
        return _read_fits_catalog(path)
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            found = _columns(list(reader.fieldnames or []))
            if found is None:
                raise UserError(f"{path}: {_NEED}")
            cols = {key: found[key] for key in ("name", "ra", "dec")}
            rows = []
            for i, row in enumerate(reader, start=2):
                if len(rows) >= MAX_CATALOG:
                    raise UserError(f"{path}: more than {MAX_CATALOG} sources")
                try:
                    ra, dec = float(row[cols["ra"]]), float(row[cols["dec"]])
                except (TypeError, ValueError):
                    raise UserError(f"{path}: line {i}: ra/dec are not numbers") from None
                _check_row(path, f"line {i}", ra, dec)
                rows.append((str(row[cols["name"]]).strip(), ra, dec))
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a UTF-8 text file") from None
    except OSError as exc:  # e.g. no permission to read it
        raise UserError(f"{path}: cannot read the catalogue ({exc.strerror or exc})") from None
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
