"""HEALPix pixel functions for the scan, with healpy's names and conventions, on hpgeom.

hpgeom wraps the official HEALPix C++ library (Górski et al. 2005, ApJ 622, 759) with
numpy only, and imports in ~0.03 s where ``import healpy`` costs ~0.6 s (it loads
matplotlib and astropy), so a scan never imports healpy. Its results are those of the same
C++ code healpy runs, so pixel indices and angles agree with healpy on every machine.

What this module adds to hpgeom: healpy's argument order and output shapes
(``get_all_neighbours`` is (8, ...)), φ of any value (wrapped into [0, 2π) as healpy does),
scalars back for scalar input, and one-line ``ValueError`` for bad input (θ outside [0, π],
non-finite angles, pixels out of range, nside not a power of two). Angles are radians,
θ = colatitude, φ = longitude; every function defaults to NESTED.
"""

from __future__ import annotations

import math

import hpgeom
import numpy as np

__all__ = [
    "MAX_ORDER", "nside2order", "nside2npix", "pix2ang", "ang2pix", "ang2vec", "vec2pix",
    "nest2ring", "ring2nest", "get_all_neighbours", "query_disc",
]

MAX_ORDER = 29


def nside2order(nside: int) -> int:
    """log2(nside); ValueError unless ``nside`` is a power of two in ``1 .. 2**29``.

    >>> nside2order(512)
    9
    """
    n = int(nside)
    if n != nside or n < 1 or n & (n - 1) or n > 2**MAX_ORDER:
        raise ValueError(f"nside must be a power of two in 1..2**{MAX_ORDER}, got {nside!r}")
    return n.bit_length() - 1


def nside2npix(nside: int) -> int:
    """Number of pixels, 12·nside².

    >>> nside2npix(8)
    768
    """
    nside2order(nside)
    return 12 * int(nside) ** 2


def _out(a: np.ndarray):
    """0-d arrays back to numpy scalars (as healpy returns them for scalar input)."""
    return a[()] if a.ndim == 0 else a


def _pixels(nside: int, ipix) -> np.ndarray:
    """``ipix`` as int64, checked to lie in ``0 .. 12·nside² - 1``."""
    npix = nside2npix(nside)
    p = np.asarray(ipix)
    if p.dtype.kind == "f":
        if not np.all(p == np.floor(p)):
            raise ValueError("pixel indices must be integers")
    elif p.dtype.kind not in "iu":
        raise TypeError(f"pixel indices must be integers, not {p.dtype}")
    p = p.astype(np.int64)
    if p.size and (p.min() < 0 or p.max() >= npix):
        raise ValueError(f"pixel index out of range 0..{npix - 1} for nside {nside}")
    return p


# HEALPix C++ gets φ within a few ulp below 2π wrong at |z| = 2/3 (the face-12 index, or a
# pixel a quarter turn away); such a φ is 0 to within 1e-14 rad, far below any pixel size.
_PHI_SNAP = 2 * math.pi - 1e-14


def _wrap_phi(phi: np.ndarray) -> np.ndarray:
    """φ mod 2π in [0, 2π), with φ a hair below 2π taken as 0 (see ``_PHI_SNAP``)."""
    out = np.mod(phi, 2 * math.pi)
    out[out > _PHI_SNAP] = 0.0
    return out


def pix2ang(nside: int, ipix, nest: bool = True):
    """[rad] (θ, φ) of pixel centres; θ colatitude in [0, π], φ in [0, 2π)."""
    p = _pixels(nside, ipix)
    theta, phi = hpgeom.pixel_to_angle(nside, p.ravel(), nest=nest, lonlat=False,
                                       degrees=False)
    return _out(theta.reshape(p.shape)), _out(phi.reshape(p.shape))


def ang2pix(nside: int, theta, phi, nest: bool = True):
    """Pixel containing each direction (θ [rad] colatitude in [0, π], φ [rad] any value).

    ValueError for θ outside [0, π] or non-finite angles (mask them out first).
    """
    nside2order(nside)
    theta, phi = np.broadcast_arrays(np.asarray(theta, dtype=np.float64),
                                     np.asarray(phi, dtype=np.float64))
    if not (np.all(theta >= 0.0) and np.all(theta <= math.pi)):
        raise ValueError("theta out of range [0, pi] (or not finite)")
    if not np.all(np.isfinite(phi)):
        raise ValueError("phi is not finite")
    shape = theta.shape
    theta, phi = theta.ravel(), _wrap_phi(phi.ravel())
    pix = hpgeom.angle_to_pixel(nside, theta, phi, nest=True, lonlat=False, degrees=False)
    return _out(_as_scheme(nside, _fix_wrap(nside, pix, theta), nest).reshape(shape))


def _as_scheme(nside: int, nested: np.ndarray, nest: bool) -> np.ndarray:
    """The NESTED pixels ``nested`` in the scheme asked for (RING unless ``nest``).

    RING lookups renumber the NESTED pixel: HEALPix C++'s own RING lookup can return -1 or a
    far pixel for a direction exactly on a face corner (|z| = 2/3, φ = kπ/4)."""
    return nested if nest else hpgeom.nest_to_ring(nside, nested)


def _fix_wrap(nside: int, pix: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """Replace out-of-range pixels of ``pix`` by the pixel at φ = 0.

    Where HEALPix C++ still returns an out-of-range pixel (φ a hair below 2π, see
    ``_PHI_SNAP``), the direction is the one at φ = 0, so look that up instead."""
    bad = (pix < 0) | (pix >= nside2npix(nside))
    if bad.any():
        pix[bad] = hpgeom.angle_to_pixel(nside, theta[bad], np.zeros(int(bad.sum())),
                                         nest=True, lonlat=False, degrees=False)
    return pix


def ang2vec(theta, phi) -> np.ndarray:
    """Unit vectors (..., 3) of directions (θ, φ) [rad]."""
    theta = np.asarray(theta, dtype=np.float64)
    phi = np.asarray(phi, dtype=np.float64)
    if not (np.all(theta >= 0.0) and np.all(theta <= math.pi)):
        raise ValueError("theta out of range [0, pi] (or not finite)")
    st = np.sin(theta)
    return np.stack(np.broadcast_arrays(st * np.cos(phi), st * np.sin(phi), np.cos(theta)),
                    axis=-1)


def vec2pix(nside: int, x, y, z, nest: bool = True):
    """Pixel containing each direction vector (x, y, z) (need not be normalised)."""
    nside2order(nside)
    x, y, z = np.broadcast_arrays(*(np.asarray(c, dtype=np.float64) for c in (x, y, z)))
    norm = np.sqrt(x * x + y * y + z * z)
    if not (np.all(np.isfinite(norm)) and np.all(norm > 0)):
        raise ValueError("direction vectors must be finite and non-zero")
    x, y, z = x.ravel(), y.ravel(), z.ravel()
    # atan2(y, x) a hair below 0 is φ a hair below 2π: put such vectors on φ = 0
    y = np.where((x > 0) & (y < 0) & (-y < 1e-14 * x), 0.0, y)
    pix = hpgeom.vector_to_pixel(nside, x, y, z, nest=True)
    theta = np.arctan2(np.sqrt(x * x + y * y), z)
    return _out(_as_scheme(nside, _fix_wrap(nside, pix, theta), nest).reshape(norm.shape))


def nest2ring(nside: int, ipix):
    """RING index of NESTED pixels ``ipix``."""
    p = _pixels(nside, ipix)
    return _out(hpgeom.nest_to_ring(nside, p.ravel()).reshape(p.shape))


def ring2nest(nside: int, ipix):
    """NESTED index of RING pixels ``ipix``."""
    p = _pixels(nside, ipix)
    return _out(hpgeom.ring_to_nest(nside, p.ravel()).reshape(p.shape))


def get_all_neighbours(nside: int, ipix, nest: bool = True) -> np.ndarray:
    """The 8 neighbours of each pixel, shape (8, ...): SW, W, NW, N, NE, E, SE, S.

    -1 where a neighbour does not exist (the 8 points where only three base faces meet).
    Same order and convention as ``healpy.get_all_neighbours(nside, ipix)``.
    """
    p = _pixels(nside, ipix)
    nb = hpgeom.neighbors(nside, p.ravel(), nest=nest)  # (N, 8)
    return np.ascontiguousarray(nb.T).astype(np.int64, copy=False).reshape((8,) + p.shape)


def query_disc(nside: int, vec, radius: float, inclusive: bool = False,
               nest: bool = True) -> np.ndarray:
    """Sorted pixels whose centre lies within ``radius`` [rad] of the direction ``vec``.

    ``inclusive=True``: every pixel that overlaps the disc, as ``healpy.query_disc``."""
    nside2order(nside)
    v = np.asarray(vec, dtype=np.float64).reshape(3)
    norm = float(np.sqrt(v @ v))
    if not (math.isfinite(norm) and norm > 0):
        raise ValueError("query_disc: vec must be a finite non-zero 3-vector")
    radius = float(radius)
    if not radius > 0.0:  # no centre lies exactly on a pixel-free direction of radius 0
        return np.empty(0, dtype=np.int64)
    if radius >= math.pi:
        pix = np.arange(nside2npix(nside), dtype=np.int64)
        return pix
    pix = hpgeom.query_circle_vec(nside, v / norm, radius, inclusive=inclusive, nest=nest)
    return np.sort(np.asarray(pix, dtype=np.int64))
