"""Alert products of a scan: multi-order HEALPix FITS probability map and a GCN-style text.

The FITS file follows the multi-order ("NUNIQ") convention that ``ligo.skymap`` reads
(``ligo.skymap.io.read_sky_map(path, moc=True)``): one binary table with ``UNIQ`` (int64,
4·nside² + NESTED ipix) and ``PROBDENSITY`` [sr⁻¹], header ``PIXTYPE = HEALPIX``,
``ORDERING = NUNIQ``, ``COORDSYS = C`` (equatorial J2000), and skyreader's event keywords
(``fitsheader.py``). Σ PROBDENSITY·Ω = 1. The multi-order llh map (``fits_bytes(...,
llh=True)``, ``BASENAME.multiorder_llh.fits``) is written on request.

The text summary is one paragraph in the style of an IceCube GCN circular/notice (best fit
with asymmetric 90 % errors, areas, reconstruction and nsides).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from skyscan_tui import __version__
from skyscan_tui.fileio import atomic_write_bytes, atomic_write_text
from skyscan_tui.stats import SkyStats

__all__ = ["fits_bytes", "alert_text", "write_products", "write_multiorder_llh", "write_notice",
           "mjd_to_iso"]


def mjd_to_iso(mjd: float) -> str:
    """UTC ISO time of an MJD [days], to the millisecond (no leap-second table needed)."""
    from datetime import datetime, timedelta, timezone

    t = datetime(1858, 11, 17, tzinfo=timezone.utc) + timedelta(days=float(mjd))
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}"


def _multiorder_cards(result: Any, stats: SkyStats, llh_map: bool) -> list:
    """ligo.skymap's multi-order keywords, ours, then skyreader's event keywords."""
    from skyscan_tui.fitsheader import event_cards

    max_order = int(round(math.log2(stats.mo.max_nside)))
    cards = [
        ("PIXTYPE", "HEALPIX", "HEALPIX pixelisation"),
        ("ORDERING", "NUNIQ", "Pixel ordering scheme: RING, NESTED, or NUNIQ"),
        ("COORDSYS", "C", "Ecliptic, Galactic or Celestial (equatorial)"),
        ("MOCORDER", max_order, "MOC resolution (best order)"),
        ("INDXSCHM", "EXPLICIT", "Indexing: IMPLICIT or EXPLICIT"),
        ("OBJECT", f"run{int(result.run_id)}.evt{int(result.event_id)}",
         "Unique identifier for this event"),
        ("CREATOR", "skyscan-tui", "Program that created this file"),
        ("VCSVERS", f"skyscan-tui {__version__}", "Software version"),
        ("EVTTYPE", str(result.event_type or "SIM")[:68], "event type / alert stream"),
        ("RECO", str(result.reco)[:68], "reconstruction that made the map"),
        ("NSIDES", ",".join(str(n) for n in result.nsides), "scanned nside levels"),
        ("RA_BEST", round(stats.ra_deg, 6), "[deg] best-fit right ascension (J2000)"),
        ("DEC_BEST", round(stats.dec_deg, 6), "[deg] best-fit declination (J2000)"),
        ("LLH_MIN", float(stats.llh_min), "minimum -ln L of the scan"),
        ("AREA50", round(stats.credible[0].area_deg2, 6), "[deg2] 50% credible area"),
        ("AREA90", round(stats.credible[1].area_deg2, 6), "[deg2] 90% credible area"),
        *event_cards(result, stats, llh_map),
        ("HISTORY", "Probability map P_i ~ exp(-(LLH_i - LLH_min)) * Omega_i, flat prior.", ""),
    ]
    if stats.error_floor_deg > 0:
        cards.append(("HISTORY", "Convolved with a von Mises-Fisher (spherical Gaussian) "
                      f"kernel, sigma {stats.error_floor_deg:g} deg.", ""))
    return cards


def fits_bytes(result: Any, stats: SkyStats, llh: bool = False) -> bytes:
    """The map as a multi-order (NUNIQ) FITS file (bytes), written with astropy.io.fits.

    Default: the probability map (``UNIQ``, ``PROBDENSITY`` [sr⁻¹]), as
    ``ligo.skymap.io.read_sky_map(path, moc=True)`` reads it. ``llh``: the likelihood map
    instead (``UNIQ``, ``LLH`` = −ln L as scanned, NaN for a failed fit, and ``2DLLH`` as in
    the flat llh map: with an error floor, of the smoothed map), with the errors and areas
    of the likelihood regions in its event keywords.
    """
    from astropy.io import fits

    from skyscan_tui.fitsheader import hdul_bytes, set_cards

    mo = stats.mo
    order = np.argsort(mo.uniq, kind="stable")
    cols = [fits.Column(name="UNIQ", format="K", array=mo.uniq[order])]
    if llh:
        cols += [fits.Column(name="LLH", format="D", array=mo.llh[order]),
                 fits.Column(name="2DLLH", format="D", array=2.0 * stats.dllh[order])]
    else:
        cols.append(fits.Column(name="PROBDENSITY", format="D", unit="sr-1",
                                array=stats.prob_density[order]))
    tab = fits.BinTableHDU.from_columns(cols, name="LLH" if llh else "PROB_DENSITY")
    set_cards(tab.header, _multiorder_cards(result, stats, llh))
    return hdul_bytes(tab)


def _err(plus: float, minus: float) -> str:
    return f"+{plus:.2f}, {minus:.2f}"


def alert_text(result: Any, stats: SkyStats | None) -> str:
    """One GCN-circular-style paragraph (plain text, ~75 columns)."""
    import textwrap

    n_pix = sum(len(lv) for lv in result.levels.values())
    nsides = ", ".join(str(n) for n in result.nsides)
    etype = result.event_type or "simulated"
    head = (f"skyscan-tui scan of run {result.run_id}, event {result.event_id} ({etype}), "
            f"at {mjd_to_iso(result.mjd)[:19].replace('T', ' ')} UT (MJD {result.mjd:.6f}). "
            f"Reconstruction: {result.reco}"
            + (f" ({result.likelihood})" if result.likelihood else "")
            + f"; HEALPix nside {nsides}, {n_pix} pixels scanned, {result.n_failed} failed.")
    topo = result.meta.get("topology") if isinstance(result.meta, dict) else None
    if topo and topo.get("cascade_like"):
        # a cascade has no track direction: the warning comes first, before any number
        head = (f"WARNING: CASCADE-LIKE EVENT. The topology test prefers a point-like "
                f"cascade to a track (log-likelihood ratio {topo['llr']:+.3f} per DOM > "
                f"{topo['threshold']:+.3f}, {topo['n_dom']} DOMs, light deposit length "
                f"{topo['length']:.0f} m); the track map below is not meaningful. " + head)
    if stats is None:
        body = "No pixel gave a finite likelihood, so there is no best fit and no contour."
        return textwrap.fill(head + " " + body, 78, break_on_hyphens=False)
    r50, r90 = stats.regions
    c50, c90 = stats.credible
    th = stats.thresholds
    body = (f"The best-fit direction is RA = {stats.ra_deg:.2f} ({_err(r90.ra_plus_deg, r90.ra_minus_deg)}"
            f" deg 90% containment) J2000, Dec = {stats.dec_deg:+.2f} "
            f"({_err(r90.dec_plus_deg, r90.dec_minus_deg)} deg 90% containment) J2000; "
            f"galactic l = {stats.l_deg:.2f} deg, b = {stats.b_deg:+.2f} deg. "
            f"The 50% and 90% regions ({th.description}: 2 dLLH <= {th.ts50:.3g} and "
            f"{th.ts90:.3g}) cover {r50.area_deg2:.2f} and {r90.area_deg2:.2f} sq. deg "
            f"(circularised radii {r50.radius_deg:.2f} and {r90.radius_deg:.2f} deg); the "
            f"probability map's 50% and 90% credible regions cover {c50.area_deg2:.2f} and "
            f"{c90.area_deg2:.2f} sq. deg. "
            + (f"Errors: {stats.systematic}." if stats.systematic_included
               else "Errors are statistical only."))
    return textwrap.fill(head + " " + body, 78, break_on_hyphens=False)


def write_multiorder_llh(result: Any, stats: SkyStats, outdir: str | Path,
                         basename: str) -> dict[str, Path]:
    """Write ``BASENAME.multiorder_llh.fits`` (``fits_bytes(..., llh=True)``) atomically."""
    path = Path(outdir) / f"{basename}.multiorder_llh.fits"
    atomic_write_bytes(path, fits_bytes(result, stats, llh=True))
    return {"fits_llh": path}


def write_products(result: Any, outdir: str | Path, stats: SkyStats | None,
                   basename: str, flat_nside: int | None = None,
                   multiorder_llh: bool = False) -> dict[str, Path]:
    """Write the alert products atomically; returns their paths.

    ``BASENAME.multiorder.fits`` (and ``.multiorder_llh.fits`` when ``multiorder_llh``), the
    50/90 % contours ``BASENAME.contour_50.txt`` and ``.geojson``, the flat
    ``…skymap_nside_N_{llh,probability}.fits.gz`` maps when ``flat_nside`` is given (> 0),
    ``notice.json`` (if there is a map) and ``alert.txt``."""
    outdir = Path(outdir)
    paths: dict[str, Path] = {}
    if stats is not None:
        paths["fits"] = outdir / f"{basename}.multiorder.fits"
        atomic_write_bytes(paths["fits"], fits_bytes(result, stats))
        if multiorder_llh:
            paths.update(write_multiorder_llh(result, stats, outdir, basename))
    paths["alert"] = outdir / "alert.txt"
    atomic_write_text(paths["alert"], alert_text(result, stats) + "\n")
    if stats is not None:
        # 50 % / 90 % contour polygons for follow-up (skyreader text and GeoJSON)
        from skyscan_tui.contours import write_contours

        paths.update(write_contours(result, stats, outdir, basename=basename))
        if flat_nside:
            from skyscan_tui.flatmap import write_flat_maps

            paths.update(write_flat_maps(result, stats, outdir, int(flat_nside), basename))
        paths.update(write_notice(result, stats, outdir, basename,
                                  paths.get("flat_probability", paths["fits"])))
    return paths


def write_notice(result: Any, stats: SkyStats, outdir: str | Path, basename: str,
                 healpix: Path | None = None, **kw: Any) -> dict[str, Path]:
    """Write ``notice.json`` (``skyscan_tui.notice``) in ``outdir``.

    ``healpix`` defaults to the probability FITS found there."""
    import json

    from skyscan_tui.notice import NOTICE_NAME, notice, probability_file

    outdir = Path(outdir)
    if healpix is None:
        healpix = probability_file(outdir, basename) or outdir / f"{basename}.multiorder.fits"
    path = outdir / NOTICE_NAME
    atomic_write_text(path, json.dumps(notice(result, stats, healpix, outdir, **kw),
                                       indent=2) + "\n")
    return {"notice": path}
