"""HEALPix sky grid: nside progression, pixel centres, refinement and uniq encoding.

NESTED ordering everywhere; RING appears only at file edges (``ipix_ring``). The scan grid is
on the sky in equatorial J2000 coordinates: pixel θ = π/2 - dec, φ = ra.

Refinement (``--nside-progression 8:0,64:12,512:24``, the progression upstream scans use):
the first nside is scanned over the whole sky (or a disc, for pointed recos); for every later
level ``(nside, n)`` the default rule (:func:`refine`) splits the ``n`` best pixels (lowest
−log L) of the previous level into all their (nside/nside_prev)² children at the new nside.
For a single minimum the best pixels are neighbours, so this refines a region of about ``n``
previous-level pixel areas around the best fit. Upstream's own rule, a disc around the global
best, is ``--refine upstream`` (:mod:`skyscan_tui.refinement`).
"""

from __future__ import annotations

import numpy as np

from skyscan_tui import healpix
from skyscan_tui.errors import UserError

__all__ = [
    "DEFAULT_PROGRESSION", "Progression", "parse_progression", "format_progression",
    "pixel_radec", "children", "refine", "uniq", "disc_pixels", "pixel_area",
]

Progression = tuple[tuple[int, int], ...]
DEFAULT_PROGRESSION: Progression = ((8, 0), (64, 12), (512, 24))
MAX_NSIDE = 8192
MAX_REFINE = 100_000


def parse_progression(text: str) -> Progression:
    """Parse ``"8:0,64:12,512:24"`` (or ``"8,64,512"``, which takes the default counts).

    >>> parse_progression("8:0,64:12,512:24")
    ((8, 0), (64, 12), (512, 24))
    """
    parts = [p.strip() for p in str(text).split(",") if p.strip()]
    if not parts:
        raise UserError("nside progression is empty")
    out: list[tuple[int, int]] = []
    defaults = {8: 0, 64: 12, 512: 24}
    for i, part in enumerate(parts):
        nside_s, _, count_s = part.partition(":")
        try:
            nside = int(nside_s)
            count = int(count_s) if count_s else (0 if i == 0 else defaults.get(nside, 12))
        except ValueError:
            raise UserError(f"bad nside progression entry {part!r} (want NSIDE:COUNT)") from None
        if nside < 1 or nside > MAX_NSIDE or nside & (nside - 1):
            raise UserError(f"nside {nside} is not a power of two between 1 and {MAX_NSIDE}")
        if count < 0 or count > MAX_REFINE:
            raise UserError(f"refine count {count} out of range 0..{MAX_REFINE}")
        if i > 0 and count == 0:
            raise UserError(f"nside {nside}: refine count must be positive after the first level")
        if out and nside <= out[-1][0]:
            raise UserError("nside progression must increase")
        out.append((nside, count))
    return tuple(out)


def format_progression(prog: Progression) -> str:
    """The text form of a progression, as ``--nside-progression`` takes it.

    >>> format_progression(((8, 0), (64, 12)))
    '8:0,64:12'
    """
    return ",".join(f"{n}:{c}" for n, c in prog)


def uniq(nside, ipix):
    """NUNIQ index 4·nside² + ipix (NESTED).

    >>> int(uniq(8, 5))
    261
    """
    nside = np.asarray(nside, dtype=np.int64)
    return 4 * nside * nside + np.asarray(ipix, dtype=np.int64)


def pixel_area(nside) -> np.ndarray:
    """[sr] area of one pixel at ``nside``.

    >>> round(float(pixel_area(1)) * 12, 6) == round(4 * 3.141592653589793, 6)
    True
    """
    return 4.0 * np.pi / (12.0 * np.asarray(nside, dtype=np.float64) ** 2)


def pixel_radec(nside: int, ipix) -> tuple[np.ndarray, np.ndarray]:
    """[rad] (ra, dec) J2000 of NESTED pixel centres."""
    theta, phi = healpix.pix2ang(nside, np.asarray(ipix, dtype=np.int64), nest=True)
    return phi, np.pi / 2 - theta


def children(nside_prev: int, ipix_prev, nside: int) -> np.ndarray:
    """All NESTED children at ``nside`` of pixels ``ipix_prev`` at ``nside_prev`` (sorted)."""
    factor = (nside // nside_prev) ** 2
    base = np.asarray(ipix_prev, dtype=np.int64)[:, None] * factor
    return np.unique((base + np.arange(factor, dtype=np.int64)[None, :]).ravel())


def refine(nside_prev: int, ipix_prev, llh_prev, nside: int, n_best: int) -> np.ndarray:
    """Children at ``nside`` of the ``n_best`` lowest-llh pixels (ties broken by ipix).

    Parameters
    ----------
    nside_prev : int
        The nside of the previous round.
    ipix_prev, llh_prev : array_like
        Its NESTED pixels and their −log L (NaN: failed, never refined).
    nside : int
        The nside of the next round, a power of two above ``nside_prev``.
    n_best : int
        How many of the previous round's pixels to refine.

    Returns
    -------
    numpy.ndarray
        The NESTED pixels at ``nside`` to fit next, sorted.
    """
    ipix_prev = np.asarray(ipix_prev, dtype=np.int64)
    llh_prev = np.asarray(llh_prev, dtype=np.float64)
    ok = np.isfinite(llh_prev)
    ipix_prev, llh_prev = ipix_prev[ok], llh_prev[ok]
    order = np.lexsort((ipix_prev, llh_prev))[:n_best]
    return children(nside_prev, ipix_prev[order], nside)


def disc_pixels(nside: int, ra: float, dec: float, radius: float) -> np.ndarray:
    """NESTED pixels whose centre lies within ``radius`` [rad] of (ra, dec); at least one."""
    vec = healpix.ang2vec(np.pi / 2 - dec, ra)
    pix = healpix.query_disc(nside, vec, radius, nest=True, inclusive=False)
    if pix.size == 0:
        pix = np.array([healpix.vec2pix(nside, *vec, nest=True)])
    return np.sort(pix.astype(np.int64))
