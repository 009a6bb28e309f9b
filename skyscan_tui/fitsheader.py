"""Header keywords every FITS product carries, and writing FITS files with astropy.

The multi-order maps (``products.py``), the flat maps (``flatmap.py``) and the contour MOCs
(``contours.py``) all carry the event keywords of skyreader's ``format_fits_header``
(RUNID, EVENTID, DATE-OBS, MJD-OBS, EVENT-TYPE, I3TYPE, RA, DEC, RA_ERR_PLUS_50 ...
DEC_ERR_MINUS_90, CONTOUR_AREA_50/90) plus which systematic the map includes (SYSTEMAT,
ERRFLOOR, SYSTNOTE). Only these named values become cards: nothing is copied from the
result's own header fields (whose ``overlays`` entry is a long JSON text).

astropy is imported only when a file is written (~0.3 s, once, at the end of a scan).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from skyscan_tui.stats import Region, SkyStats

__all__ = ["Card", "event_cards", "ascii_value", "set_cards", "hdul_bytes", "table_file_bytes"]

#: (keyword, value, comment); keywords longer than 8 characters become HIERARCH cards
Card = tuple[str, Any, str]


def _errors(regions: list[Region]) -> list[Card]:
    cards = []
    for r in regions:
        lab = round(r.level * 100)
        for key, value in (("RA_ERR_PLUS", r.ra_plus_deg), ("RA_ERR_MINUS", r.ra_minus_deg),
                           ("DEC_ERR_PLUS", r.dec_plus_deg),
                           ("DEC_ERR_MINUS", r.dec_minus_deg)):
            side = "high" if "PLUS" in key else "low"
            cards.append((f"{key}_{lab}", round(abs(value), 2),
                          f"{lab}% containment error {side}"))
    return cards


def event_cards(result: Any, stats: SkyStats, llh_map: bool) -> list[Card]:
    """skyreader's event keywords as FITS cards.

    The 50/90 % errors and areas are those of the likelihood regions (``llh_map``) or of the
    probability map's credible regions."""
    from skyscan_tui.products import mjd_to_iso

    regions = stats.regions if llh_map else stats.credible
    how = ("Change in 2LLH, " + stats.thresholds.description if llh_map
           else "Highest posterior density 50% and 90% credible region")
    etype = str(result.event_type or "SIM")
    return [
        ("RUNID", int(result.run_id), "run number"),
        ("EVENTID", int(result.event_id), "event number"),
        ("SENDER", "skyscan-tui", "program that made the map"),
        ("DATE-OBS", mjd_to_iso(result.mjd), "UTC date of the observation"),
        ("MJD-OBS", float(result.mjd), "modified Julian date of the observation"),
        ("EVENT-TYPE", etype, "Event Type"),
        ("I3TYPE", etype, "Event Type (same as EVENT-TYPE)"),
        ("RA", round(stats.ra_deg, 2), "Degree"),
        ("DEC", round(stats.dec_deg, 2), "Degree"),
        *_errors(regions),
        ("CONTOUR_AREA_50", round(regions[0].area_deg2, 2), "50% contour area (sqdeg)"),
        ("CONTOUR_AREA_90", round(regions[1].area_deg2, 2), "90% contour area (sqdeg)"),
        ("COMMENTS", "50% and 90% uncertainty location => " + how, ""),
        ("NOTE", "Please ignore pixels with infinite or NaN values.", ""),
        ("SYSTEMAT", bool(stats.systematic_included), "systematic error included"),
        ("ERRFLOOR", float(stats.error_floor_deg), "[deg] Gaussian error floor convolved in"),
        ("SYSTNOTE", stats.systematic, ""),
    ]


def ascii_value(value: Any, clip: int | None = None) -> Any:
    """A card value FITS can hold.

    Strings in printable ASCII ('?' for anything else), clipped to ``clip`` characters;
    numpy scalars as Python numbers."""
    if isinstance(value, str):
        text = "".join(c if " " <= c <= "~" else "?" for c in value)
        return text[:clip] if clip else text
    if isinstance(value, np.generic):
        return value.item()
    return value


def set_cards(header: Any, cards: list[Card]) -> None:
    """Put ``cards`` in an astropy header (long strings continue on CONTINUE cards)."""
    from astropy.io import fits

    with warnings.catch_warnings():  # keywords longer than 8 characters become HIERARCH
        warnings.simplefilter("ignore", fits.verify.VerifyWarning)
        for key, value, comment in cards:
            if key == "HISTORY":
                header.add_history(ascii_value(value))
            else:
                value = ascii_value(value)
                header[key] = (value, comment) if comment else value


def hdul_bytes(table: Any) -> bytes:
    """An empty primary HDU and ``table`` as the bytes of a FITS file.

    No CHECKSUM or date cards: the same map gives the same bytes."""
    import io

    from astropy.io import fits

    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fits.verify.VerifyWarning)
        fits.HDUList([fits.PrimaryHDU(), table]).writeto(buf)
    return buf.getvalue()


def table_file_bytes(table: Any, rows: np.ndarray) -> bytes:
    """:func:`hdul_bytes` of a binary table of one column whose data are ``rows`` (n, k).

    ``table`` is the astropy table HDU that gives the header (made with any number of rows;
    NAXIS2 is set to n here); the data are written here, big-endian, zero-padded to the
    2880-byte FITS block: the same bytes as astropy's writer, which byte-swaps row by row
    (~0.1 s for the 25 MB of a nside-512 flat map)."""
    from astropy.io import fits

    header = table.header.copy()
    if rows.ndim != 2 or header["TFIELDS"] != 1 or header["NAXIS1"] != rows.shape[1] * 8:
        raise ValueError("table_file_bytes: one column of float64 rows is expected")
    header["NAXIS2"] = rows.shape[0]
    head = (fits.PrimaryHDU().header.tostring() + header.tostring()).encode("ascii")
    size = rows.size * 8
    buf = bytearray(len(head) + size + (-size % 2880))  # zero padding included
    buf[:len(head)] = head
    # the rows converted to big-endian straight into the file (no intermediate copies)
    np.frombuffer(buf, dtype=">f8", count=rows.size, offset=len(head))[:] = rows.reshape(-1)
    return bytes(buf)
