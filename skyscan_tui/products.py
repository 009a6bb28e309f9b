"""Alert products of a scan: multi-order HEALPix FITS probability map and a GCN-style text.

The FITS file follows the multi-order ("NUNIQ") convention that ``ligo.skymap`` reads
(``ligo.skymap.io.read_sky_map(path, moc=True)``): one binary table with ``UNIQ`` (int64,
4·nside² + NESTED ipix) and ``PROBDENSITY`` [sr⁻¹], header ``PIXTYPE = HEALPIX``,
``ORDERING = NUNIQ``, ``COORDSYS = C`` (equatorial J2000). Σ PROBDENSITY·Ω = 1.

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

__all__ = ["fits_bytes", "alert_text", "write_products", "write_notice", "mjd_to_iso"]


def mjd_to_iso(mjd: float) -> str:
    """UTC ISO time of an MJD [days], to the millisecond (no leap-second table needed)."""
    from datetime import datetime, timedelta, timezone

    t = datetime(1858, 11, 17, tzinfo=timezone.utc) + timedelta(days=float(mjd))
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}"


_BLOCK = 2880  # FITS block [bytes]


def _card(key: str, value: Any = None, comment: str = "") -> bytes:
    """One 80-character FITS header card in the fixed format (FITS 4.0 §4.1-4.2)."""
    if key in ("HISTORY", "COMMENT", "END"):
        text = f"{key:8s}{comment}" if key != "END" else "END"
    else:
        if isinstance(value, bool):
            val = f"{'T' if value else 'F':>20s}"
        elif isinstance(value, (int, np.integer)):
            val = f"{int(value):>20d}"
        elif isinstance(value, (float, np.floating)):
            num = repr(float(value)).upper()
            if not math.isfinite(float(value)):
                raise ValueError(f"FITS card {key}: {value} is not finite")
            if "." not in num and "E" not in num:
                num += ".0"
            val = f"{num:>20s}"
        else:
            escaped = str(value).replace("'", "''")
            val = f"'{escaped:8s}'"
        text = f"{key:8s}= {val}" + (f" / {comment}" if comment else "")
    text = text.encode("ascii", "replace").decode("ascii")[:80]
    return f"{text:80s}".encode("ascii")


def _header(cards: list[bytes]) -> bytes:
    raw = b"".join(cards) + _card("END")
    return raw + b" " * (-len(raw) % _BLOCK)


def fits_bytes(result: Any, stats: SkyStats) -> bytes:
    """The probability map as a multi-order FITS file (bytes).

    Written directly (a primary HDU and one binary table in 2880-byte blocks, FITS 4.0):
    importing astropy.io.fits would cost every scan ~1 s; tests read it back with astropy.
    """
    mo = stats.mo
    uniq = mo.uniq
    order = np.argsort(uniq, kind="stable")
    rows = np.empty(uniq.size, dtype=[("UNIQ", ">i8"), ("PROBDENSITY", ">f8")])
    rows["UNIQ"] = uniq[order]
    rows["PROBDENSITY"] = stats.prob_density[order]
    primary = _header([_card("SIMPLE", True, "conforms to FITS standard"),
                       _card("BITPIX", 8, "array data type"),
                       _card("NAXIS", 0, "number of array dimensions"),
                       _card("EXTEND", True)])
    max_order = int(round(math.log2(mo.max_nside)))
    cards = [
        _card("XTENSION", "BINTABLE", "binary table extension"),
        _card("BITPIX", 8, "array data type"),
        _card("NAXIS", 2, "number of array dimensions"),
        _card("NAXIS1", rows.dtype.itemsize, "length of dimension 1"),
        _card("NAXIS2", int(rows.size), "length of dimension 2"),
        _card("PCOUNT", 0, "number of group parameters"),
        _card("GCOUNT", 1, "number of groups"),
        _card("TFIELDS", 2, "number of table fields"),
        _card("TTYPE1", "UNIQ"),
        _card("TFORM1", "K"),
        _card("TTYPE2", "PROBDENSITY"),
        _card("TFORM2", "D"),
        _card("TUNIT2", "sr-1"),
        _card("EXTNAME", "PROB_DENSITY", "extension name"),
    ]
    for key, value, comment in (
        ("PIXTYPE", "HEALPIX", "HEALPIX pixelisation"),
        ("ORDERING", "NUNIQ", "Pixel ordering scheme: RING, NESTED, or NUNIQ"),
        ("COORDSYS", "C", "Ecliptic, Galactic or Celestial (equatorial)"),
        ("MOCORDER", max_order, "MOC resolution (best order)"),
        ("INDXSCHM", "EXPLICIT", "Indexing: IMPLICIT or EXPLICIT"),
        ("OBJECT", f"run{int(result.run_id)}.evt{int(result.event_id)}",
         "Unique identifier for this event"),
        ("DATE-OBS", mjd_to_iso(result.mjd), "UTC date of the observation"),
        ("MJD-OBS", float(result.mjd), "modified Julian date of the observation"),
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
        ("SYSTEMAT", bool(stats.error_floor_deg > 0), "systematic error floor included"),
        ("ERRFLOOR", float(stats.error_floor_deg), "[deg] Gaussian error floor convolved in"),
    ):
        cards.append(_card(key, value, comment))
    cards.append(_card("HISTORY", comment="Probability map P_i ~ exp(-(LLH_i - LLH_min)) * "
                       "Omega_i, flat prior."))
    if stats.error_floor_deg > 0:
        cards.append(_card("HISTORY", comment="Convolved with a von Mises-Fisher (spherical "
                           f"Gaussian) kernel, sigma {stats.error_floor_deg:g} deg."))
    data = rows.tobytes()
    # no CHECKSUM cards and no dates of writing: files are reproducible
    return primary + _header(cards) + data + b"\0" * (-len(data) % _BLOCK)


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


def write_products(result: Any, outdir: str | Path, stats: SkyStats | None,
                   basename: str, flat_nside: int | None = None) -> dict[str, Path]:
    """Write the alert products atomically; returns their paths.

    ``BASENAME.multiorder.fits``, the 50/90 % contours ``BASENAME.contour_50.txt`` and
    ``.geojson``, the flat ``…skymap_nside_N_{llh,probability}.fits.gz`` maps when
    ``flat_nside`` is given (> 0), ``notice.json`` (if there is a map) and ``alert.txt``."""
    outdir = Path(outdir)
    paths: dict[str, Path] = {}
    if stats is not None:
        paths["fits"] = outdir / f"{basename}.multiorder.fits"
        atomic_write_bytes(paths["fits"], fits_bytes(result, stats))
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
    """Write ``notice.json`` (``skyscan_tui.notice``) in ``outdir``; ``healpix`` defaults to
    the probability FITS found there."""
    import json

    from skyscan_tui.notice import NOTICE_NAME, notice, probability_file

    outdir = Path(outdir)
    if healpix is None:
        healpix = probability_file(outdir, basename) or outdir / f"{basename}.multiorder.fits"
    path = outdir / NOTICE_NAME
    atomic_write_text(path, json.dumps(notice(result, stats, healpix, outdir, **kw),
                                       indent=2) + "\n")
    return {"notice": path}
