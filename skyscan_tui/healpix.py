"""HEALPix pixel functions in plain numpy, so that a scan never has to import healpy.

``import healpy`` costs about two seconds (its package ``__init__`` loads matplotlib and
astropy); the scanner only needs a handful of pixel-index functions, implemented here,
vectorised, on int64 indices, for every ``nside = 2**order`` with ``order <= 29``.

The pixelisation is that of Górski et al. 2005, ApJ 622, 759 ("HEALPix: a framework for
high-resolution discretization and fast analysis of data distributed on the sphere"):

- 12 base pixels ("faces") of equal area: 4 around the north pole, 4 on the equator, 4
  around the south pole. Face ``f`` is a rhombus whose centre lies on ring ``ring(f)·nside``
  (``ring(f)`` = 1, 2, 3 for the north, equatorial, south row) at longitude
  ``phi(f)·π/4`` (``phi(f)`` = 1, 3, 5, 7 for the polar rows, 0, 2, 4, 6 on the equator).
- Inside a face a pixel has integer coordinates ``(ix, iy)`` in ``[0, nside)``; ``ix`` grows
  towards the north-east, ``iy`` towards the north-west, so the face's north corner is
  ``ix = iy = nside - 1``.
- NESTED index: ``face·nside² + interleave(ix, iy)`` (bit ``2k`` of the in-face index is bit
  ``k`` of ``ix``, bit ``2k+1`` is bit ``k`` of ``iy``).
- RING index: the ``4·nside - 1`` iso-latitude rings counted from the north pole, each
  counted eastwards from ``phi = 0``. Ring ``i`` has ``4i`` pixels in the north polar cap
  (``i < nside``; ``z = 1 - i²/(3 nside²)``), ``4 nside`` in the equatorial belt
  (``nside <= i <= 3 nside``; ``z = (4/3) - 2i/(3 nside)``), mirrored in the south cap.

NESTED results are bit-for-bit those of healpy 1.20 (the same formulas evaluated in the
same order, with the same switch to ``sin θ`` near the poles), which keeps scan results
identical to the healpy-based code this module replaced; ``tests/test_healpix.py`` checks
that against healpy itself. One deliberate difference: healpy's NESTED ang2pix/vec2pix
return a wrong (even out-of-range) pixel for φ within an ulp below 2π at |z| = 2/3; we
return the pixel at φ = 0. RING variants renumber the NESTED result (``nest=False``), so
they can differ from healpy's own RING code by an ulp in φ, or for a direction exactly on a
pixel corner. Angles are radians, θ = colatitude in [0, π], φ = longitude.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "MAX_ORDER", "nside2order", "nside2npix", "pix2ang", "ang2pix", "ang2vec", "vec2pix",
    "nest2ring", "ring2nest", "get_all_neighbours", "query_disc",
]

MAX_ORDER = 29

_HALFPI = math.pi / 2
_INV_HALFPI = 0.6366197723675813430755350534900574  # 2/π, correctly rounded
_TWOTHIRD = 2.0 / 3.0

# Face centre: ring (units of nside) and longitude (units of π/4), see the module docstring.
_FACE_RING = np.array([1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3], dtype=np.int64)
_FACE_PHI = np.array([1, 3, 5, 7, 0, 2, 4, 6, 1, 3, 5, 7], dtype=np.int64)


# ----------------------------------------------------------------------------- helpers
def nside2order(nside: int) -> int:
    """log2(nside); ValueError unless ``nside`` is a power of two in ``1 .. 2**29``."""
    n = int(nside)
    if n != nside or n < 1 or n & (n - 1) or n > (1 << MAX_ORDER):
        raise ValueError(f"nside must be a power of two between 1 and 2**{MAX_ORDER}, not {nside!r}")
    return n.bit_length() - 1


def nside2npix(nside: int) -> int:
    """Number of pixels, 12·nside²."""
    nside2order(nside)
    return 12 * int(nside) ** 2


def _out(a: np.ndarray):
    """0-d arrays back to numpy scalars (as healpy returns them for scalar input)."""
    return a[()] if a.ndim == 0 else a


def _pixels(nside: int, ipix, what: str = "pixel") -> np.ndarray:
    """``ipix`` as int64, checked to lie in ``0 .. 12·nside² - 1``."""
    p = np.asarray(ipix)
    if p.dtype.kind == "f":
        if not np.all(p == np.floor(p)):
            raise ValueError(f"{what} indices must be integers")
    elif p.dtype.kind not in "iu":
        raise TypeError(f"{what} indices must be integers, not {p.dtype}")
    p = p.astype(np.int64)
    npix = 12 * int(nside) ** 2
    if p.size and (p.min() < 0 or p.max() >= npix):
        raise ValueError(f"{what} index out of range 0..{npix - 1} for nside {nside}")
    return p


def _spread_bits(v: np.ndarray) -> np.ndarray:
    """Move bit k of ``v`` (< 2**32) to bit 2k."""
    v = v & 0xFFFFFFFF
    v = (v | (v << 16)) & 0x0000FFFF0000FFFF
    v = (v | (v << 8)) & 0x00FF00FF00FF00FF
    v = (v | (v << 4)) & 0x0F0F0F0F0F0F0F0F
    v = (v | (v << 2)) & 0x3333333333333333
    return (v | (v << 1)) & 0x5555555555555555


def _compact_bits(v: np.ndarray) -> np.ndarray:
    """Inverse of :func:`_spread_bits` on the even bits of ``v``."""
    v = v & 0x5555555555555555
    v = (v | (v >> 1)) & 0x3333333333333333
    v = (v | (v >> 2)) & 0x0F0F0F0F0F0F0F0F
    v = (v | (v >> 4)) & 0x00FF00FF00FF00FF
    v = (v | (v >> 8)) & 0x0000FFFF0000FFFF
    return (v | (v >> 16)) & 0xFFFFFFFF


def _nest2xyf(order: int, pix: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    face = pix >> (2 * order)
    p = pix & ((1 << (2 * order)) - 1)
    return _compact_bits(p), _compact_bits(p >> 1), face


def _xyf2nest(order: int, ix: np.ndarray, iy: np.ndarray, face: np.ndarray) -> np.ndarray:
    return (face << (2 * order)) + _spread_bits(ix) + (_spread_bits(iy) << 1)


def _isqrt(v: np.ndarray) -> np.ndarray:
    """floor(sqrt(v)) for int64 ``v >= 0`` (exact; the float root is only a first guess)."""
    r = np.sqrt(v.astype(np.float64)).astype(np.int64)
    r -= r * r > v
    r += (r + 1) * (r + 1) <= v
    return r


def _xyf2ring(nside: int, ix, iy, face) -> np.ndarray:
    ns = np.int64(nside)
    npix = 12 * ns * ns
    ncap = 2 * ns * (ns - 1)
    jr = (_FACE_RING[face] + 1) * ns - ix - iy - 1  # ring number, 1 .. 4·nside-1
    north, south = jr < ns, jr > 3 * ns
    nr = np.where(north, jr, np.where(south, 4 * ns - jr, ns))  # pixels per ring / 4
    first = np.where(north, 2 * nr * (nr - 1),
                     np.where(south, npix - 2 * nr * (nr + 1), ncap + (jr - ns) * 4 * ns))
    shifted = np.where(north | south, 0, (jr - ns) & 1)  # ring starts at phi = 0
    jp = (_FACE_PHI[face] * nr + ix - iy + 1 + shifted) >> 1  # 1-based position in ring
    jp = np.where(jp > 4 * nr, jp - 4 * nr, np.where(jp < 1, jp + 4 * nr, jp))
    return first + jp - 1


def _ring2xyf(nside: int, pix: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ns = np.int64(nside)
    order = nside2order(nside)
    npix = 12 * ns * ns
    ncap = 2 * ns * (ns - 1)
    face = np.empty_like(pix)
    ix = np.empty_like(pix)
    iy = np.empty_like(pix)

    # Polar caps: ring nr (counted from its pole) holds 4·nr pixels, nr per face; the pixel
    # k = 0 .. nr-1 along the face's part of the ring sits at in-face coordinates
    # (nside-nr+k, nside-1-k) in the north and (k, nr-1-k) in the south.
    cap_n = pix < ncap
    cap_s = pix >= npix - ncap
    for cap, sign in ((cap_n, 1), (cap_s, -1)):
        if not cap.any():
            continue
        p = pix[cap] if sign > 0 else npix - 1 - pix[cap]  # index from the own pole
        nr = (1 + _isqrt(1 + 2 * p)) >> 1
        j = p - 2 * nr * (nr - 1)  # 0-based position in the ring, from phi = 0
        if sign < 0:  # the south ring runs eastwards too: mirror the position
            j = 4 * nr - 1 - j
        f, k = j // nr, j % nr
        if sign > 0:
            face[cap], ix[cap], iy[cap] = f, ns - nr + k, ns - 1 - k
        else:
            face[cap], ix[cap], iy[cap] = f + 8, k, nr - 1 - k

    # Equatorial belt: from ring jr and 1-based position jp, the lattice lines through the
    # pixel centre, ascending (a) and descending (d), are integers; their quotients by
    # nside name the face and their remainders the in-face coordinates.
    eq = ~(cap_n | cap_s)
    if eq.any():
        p = pix[eq] - ncap
        jr = (p >> (order + 2)) + ns
        jp = (p & (4 * ns - 1)) + 1
        shifted = (jr - ns) & 1
        a = jp - 1 + ((jr - ns - shifted) >> 1)
        d = jp - 1 + ((3 * ns - jr - shifted) >> 1)
        fa, fd = a >> order, d >> order
        face[eq] = np.where(fa == fd, fa | 4, np.where(fa < fd, fa, fd + 8))
        ix[eq] = d & (ns - 1)
        iy[eq] = ns - (a & (ns - 1)) - 1
    return ix, iy, face


def _nest_zphi(order: int, pix: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(z = cos θ, φ, sin θ or NaN) of NESTED pixel centres; sin θ is given where |z| > 0.99.

    The polar caps use ``1 - z = nr²/(3 nside²)`` directly (not ``1 - z`` from z), so θ keeps
    full precision next to the poles.
    """
    ns = np.int64(1) << order
    ix, iy, face = _nest2xyf(order, pix)
    fact2 = 4.0 / float(12 * ns * ns)
    fact1 = float(2 * ns) * fact2
    jr = (_FACE_RING[face] + 1) * ns - ix - iy - 1
    north, south = jr < ns, jr > 3 * ns
    nr = np.where(north, jr, np.where(south, 4 * ns - jr, ns))
    tmp = (nr * nr).astype(np.float64) * fact2  # 1 - |z| in the caps
    z = np.where(north, 1.0 - tmp,
                 np.where(south, tmp - 1.0, (2 * ns - jr).astype(np.float64) * fact1))
    sth = np.where((north & (z > 0.99)) | (south & (z < -0.99)),
                   np.sqrt(tmp * (2.0 - tmp)), np.nan)
    t = _FACE_PHI[face] * nr + ix - iy  # φ in units of π/(4·nr)
    t = np.where(t < 0, t + 8 * nr, t).astype(np.float64)
    phi = np.where(nr == ns, 0.75 * _HALFPI * t * fact1, 0.5 * _HALFPI * t / nr)
    return z, phi, sth


def _fmod4(v: np.ndarray) -> np.ndarray:
    """v mod 4 in [0, 4) (a tiny negative v gives 0, not 4)."""
    t = np.fmod(v, 4.0)
    t = np.where(t < 0, t + 4.0, t)
    return np.where(t == 4.0, 0.0, t)


def _fmod_2pi(phi: np.ndarray) -> np.ndarray:
    """φ mod 2π in [0, 2π), as healpy normalises longitudes before locating a pixel (this
    decides the pixel of directions exactly on a boundary next to φ = 0)."""
    t = np.fmod(phi, 2 * math.pi)
    t = np.where(t < 0, t + 2 * math.pi, t)
    return np.where(t == 2 * math.pi, 0.0, t)


def _loc2nest(order: int, z: np.ndarray, phi: np.ndarray, sth: np.ndarray) -> np.ndarray:
    """NESTED pixel of (z = cos θ, φ); ``sth`` = sin θ where known precisely (else NaN)."""
    ns = np.int64(1) << order
    fns = float(ns)
    za = np.abs(z)
    tt = _fmod4(phi * _INV_HALFPI)  # φ in units of π/2
    # equatorial belt: indices of the ascending and descending lattice lines
    t1 = fns * (0.5 + tt)
    t2 = fns * (z * 0.75)
    a = (t1 - t2).astype(np.int64)
    d = (t1 + t2).astype(np.int64)
    fa, fd = a >> order, d >> order
    # φ just below 2π can round 0.5 + tt up to 4.5, which at |z| = 2/3 puts a line index at
    # 5·nside: that is φ = 0 one turn later. (healpy returns face 12 there, an invalid pixel,
    # or for z = +2/3 a pixel a quarter turn away; we return the pixel at φ = 0.)
    turn = np.maximum(fa, fd) >= 5
    fa, fd = np.where(turn, fa - 4, fa), np.where(turn, fd - 4, fd)
    face_e = np.where(fa == fd, fa | 4, np.where(fa < fd, fa, fd + 8))
    ix_e = d & (ns - 1)
    iy_e = ns - (a & (ns - 1)) - 1
    # polar caps: distance from the pole in ring units, split along the two face edges
    ntt = np.minimum(3, tt.astype(np.int64))
    tp = tt - ntt
    with np.errstate(invalid="ignore"):
        precise = ~(za < 0.99) & ~np.isnan(sth)
        rp = np.where(precise, fns * sth / np.sqrt((1.0 + za) / 3.0),
                      fns * np.sqrt(3.0 * (1.0 - za)))
    jp = np.minimum((tp * rp).astype(np.int64), ns - 1)
    jm = np.minimum(((1.0 - tp) * rp).astype(np.int64), ns - 1)
    north = z >= 0
    face_p = np.where(north, ntt, ntt + 8)
    ix_p = np.where(north, ns - jm - 1, jp)
    iy_p = np.where(north, ns - jp - 1, jm)
    eq = za <= _TWOTHIRD
    return _xyf2nest(order, np.where(eq, ix_e, ix_p), np.where(eq, iy_e, iy_p),
                     np.where(eq, face_e, face_p))


# ------------------------------------------------------------------------------ public
def nest2ring(nside: int, ipix):
    """RING index of NESTED pixels ``ipix``."""
    order = nside2order(nside)
    p = _pixels(nside, ipix)
    return _out(_xyf2ring(nside, *_nest2xyf(order, p)))


def ring2nest(nside: int, ipix):
    """NESTED index of RING pixels ``ipix``."""
    order = nside2order(nside)
    p = _pixels(nside, ipix)
    return _out(_xyf2nest(order, *_ring2xyf(nside, p)))


def pix2ang(nside: int, ipix, nest: bool = True):
    """[rad] (θ, φ) of pixel centres; θ colatitude in [0, π], φ in [0, 2π).

    NESTED: bit-exact with healpy. RING (``nest=False``): renumbered to NESTED first, so φ
    may differ from healpy's RING code in the last bit.
    """
    order = nside2order(nside)
    p = _pixels(nside, ipix)
    if not nest:
        p = _xyf2nest(order, *_ring2xyf(nside, p))
    z, phi, sth = _nest_zphi(order, p)
    theta = np.where(np.isnan(sth), np.arccos(z), np.arctan2(np.nan_to_num(sth), z))
    return _out(theta), _out(phi)


def ang2pix(nside: int, theta, phi, nest: bool = True):
    """Pixel containing each direction (θ [rad] colatitude in [0, π], φ [rad] any value).

    ValueError for θ outside [0, π] or non-finite angles (mask them out first).
    """
    order = nside2order(nside)
    theta, phi = np.broadcast_arrays(np.asarray(theta, dtype=np.float64),
                                     np.asarray(phi, dtype=np.float64))
    if not (np.all(theta >= 0.0) and np.all(theta <= math.pi)):
        raise ValueError("theta out of range [0, pi] (or not finite)")
    if not np.all(np.isfinite(phi)):
        raise ValueError("phi is not finite")
    # Within 0.01 rad of a pole, pass sin θ as well: 1 - cos θ loses digits there.
    near_pole = (theta < 0.01) | (theta > 3.14159 - 0.01)
    sth = np.where(near_pole, np.sin(theta), np.nan)
    pix = _loc2nest(order, np.cos(theta), _fmod_2pi(phi), sth)
    if not nest:
        pix = _xyf2ring(nside, *_nest2xyf(order, pix))
    return _out(pix)


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
    order = nside2order(nside)
    x, y, z = np.broadcast_arrays(*(np.asarray(c, dtype=np.float64) for c in (x, y, z)))
    norm = np.sqrt(x * x + y * y + z * z)
    if not (np.all(np.isfinite(norm)) and np.all(norm > 0)):
        raise ValueError("direction vectors must be finite and non-zero")
    inv = 1.0 / norm
    phi = np.where((x == 0) & (y == 0), 0.0, np.arctan2(y, x))
    nz = z * inv
    sth = np.where(np.abs(nz) > 0.99, np.sqrt(x * x + y * y) * inv, np.nan)
    pix = _loc2nest(order, nz, phi, sth)
    if not nest:
        pix = _xyf2ring(nside, *_nest2xyf(order, pix))
    return _out(pix)


# Crossing a face edge or corner. A neighbour step (dx, dy) from (ix, iy) lands at
# (x, y) = (ix+dx, iy+dy); per face row (north, equator, south) and side hit — c = 0 for
# x < 0, 1 inside, 2 for x >= nside, likewise for y — the table gives the neighbouring face
# as (row, face offset within the row) and its in-face coordinates as
#     (x', y') = M·(x, y) + nside·A + B.
# None where only three faces meet at that corner (no neighbour; healpy returns -1).
# North row face k: NE edge → north k+1 and NW edge → north k-1 (rotations by ±90° about the
# pole), N corner → north k+2 (180°), SW/SE edges → equatorial k/k+1, S corner → south k.
# Equator face 4+k: NE/NW → north k/k-1, SW/SE → south k-1/k, E/W corner → equatorial k±1.
# South row face 8+k: mirror of the north (its pole corner is ix = iy = 0).
_R0 = ((1, 0), (0, 1))
_CROSS: dict[tuple[int, int, int], tuple[int, int, tuple, tuple, tuple] | None] = {
    # north row
    (0, 2, 1): (0, 1, ((0, 1), (-1, 0)), (0, 2), (0, -1)),
    (0, 1, 2): (0, 3, ((0, -1), (1, 0)), (2, 0), (-1, 0)),
    (0, 2, 2): (0, 2, ((-1, 0), (0, -1)), (2, 2), (-1, -1)),
    (0, 0, 1): (1, 0, _R0, (1, 0), (0, 0)),
    (0, 1, 0): (1, 1, _R0, (0, 1), (0, 0)),
    (0, 0, 0): (2, 0, _R0, (1, 1), (0, 0)),
    (0, 2, 0): None,
    (0, 0, 2): None,
    # equatorial row
    (1, 2, 1): (0, 0, _R0, (-1, 0), (0, 0)),
    (1, 1, 2): (0, 3, _R0, (0, -1), (0, 0)),
    (1, 0, 1): (2, 3, _R0, (1, 0), (0, 0)),
    (1, 1, 0): (2, 0, _R0, (0, 1), (0, 0)),
    (1, 2, 0): (1, 1, _R0, (-1, 1), (0, 0)),
    (1, 0, 2): (1, 3, _R0, (1, -1), (0, 0)),
    (1, 2, 2): None,
    (1, 0, 0): None,
    # south row
    (2, 2, 1): (1, 1, _R0, (-1, 0), (0, 0)),
    (2, 1, 2): (1, 0, _R0, (0, -1), (0, 0)),
    (2, 0, 1): (2, 3, ((0, 1), (-1, 0)), (0, 0), (0, -1)),
    (2, 1, 0): (2, 1, ((0, -1), (1, 0)), (0, 0), (-1, 0)),
    (2, 0, 0): (2, 2, ((-1, 0), (0, -1)), (0, 0), (-1, -1)),
    (2, 2, 2): (0, 0, _R0, (-1, -1), (0, 0)),
    (2, 2, 0): None,
    (2, 0, 2): None,
}
# Step per direction, in healpy's order: SW, W, NW, N, NE, E, SE, S.
_STEPS = ((-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1), (-1, -1))


def get_all_neighbours(nside: int, ipix, nest: bool = True) -> np.ndarray:
    """The 8 neighbours of each pixel, shape (8, ...): SW, W, NW, N, NE, E, SE, S.

    -1 where a neighbour does not exist: at the 8 points where only three base faces meet
    (|z| = 2/3, φ = k·π/2) each of the three corner pixels lacks one (N or S for the
    equatorial face, E or W for the polar ones). Same order and convention as
    ``healpy.get_all_neighbours(nside, ipix)``; with ``nest=False`` pixels are RING.
    """
    order = nside2order(nside)
    ns = np.int64(nside)
    p = _pixels(nside, ipix)
    shape = p.shape
    p = p.ravel()
    if not nest:
        p = _xyf2nest(order, *_ring2xyf(nside, p))
    ix, iy, face = _nest2xyf(order, p)
    row, k = face >> 2, face & 3
    out = np.empty((8, p.size), dtype=np.int64)
    for n, (dx, dy) in enumerate(_STEPS):
        x, y = ix + dx, iy + dy
        res = _xyf2nest(order, np.clip(x, 0, ns - 1), np.clip(y, 0, ns - 1), face)
        off = np.flatnonzero((x < 0) | (x >= ns) | (y < 0) | (y >= ns))  # leaves the face
        if off.size:
            xo, yo, ko = x[off], y[off], k[off]
            side = (row[off] * 3 + np.where(xo < 0, 0, np.where(xo >= ns, 2, 1))) * 3 + np.where(
                yo < 0, 0, np.where(yo >= ns, 2, 1))
            res_off = np.full(off.size, -1, dtype=np.int64)
            for (r, ccx, ccy), rule in _CROSS.items():
                m = side == (r * 3 + ccx) * 3 + ccy
                if rule is None or not m.any():
                    continue
                trow, dk, mat, a, b = rule
                xm, ym = xo[m], yo[m]
                xn = mat[0][0] * xm + mat[0][1] * ym + a[0] * ns + b[0]
                yn = mat[1][0] * xm + mat[1][1] * ym + a[1] * ns + b[1]
                res_off[m] = _xyf2nest(order, xn, yn, 4 * trow + ((ko[m] + dk) & 3))
            res[off] = res_off
        out[n] = res
    if not nest:
        ok = out >= 0
        out[ok] = _xyf2ring(nside, *_nest2xyf(order, out[ok]))
    return out.reshape((8,) + shape)


def query_disc(nside: int, vec, radius: float, inclusive: bool = False,
               nest: bool = True) -> np.ndarray:
    """Sorted pixels whose centre lies within ``radius`` [rad] of the direction ``vec``.

    Same set as ``healpy.query_disc(nside, vec, radius, inclusive=False, nest=nest)``: a
    centre is in when ``cos(distance) >= cos(radius)``, with the distance's cosine computed
    as healpy does. Work scales with the number of pixels returned (plus one candidate pixel
    per ring edge), not with the map. ``inclusive=True`` (all pixels overlapping the disc) is
    not provided.
    """
    if inclusive:
        raise ValueError("query_disc: inclusive=True is not implemented here")
    order = nside2order(nside)
    ns = np.int64(nside)
    npix = 12 * ns * ns
    v = np.asarray(vec, dtype=np.float64).reshape(3)
    if not np.all(np.isfinite(v)) or not np.any(v):
        raise ValueError("query_disc: vec must be a finite non-zero 3-vector")
    radius = float(radius)
    if radius >= math.pi:
        pix = np.arange(npix, dtype=np.int64)
        return pix if nest else np.sort(_xyf2ring(nside, *_nest2xyf(order, pix)))
    if not radius >= 0.0:
        return np.empty(0, dtype=np.int64)
    # disc centre as healpy holds it: (θ0, φ0) from the vector, then z0 = cos θ0
    rxy = math.sqrt(v[0] * v[0] + v[1] * v[1])
    theta0 = math.atan2(rxy, v[2])
    phi0 = 0.0 if rxy == 0.0 else math.atan2(v[1], v[0])
    if phi0 < 0.0:
        phi0 += 2 * math.pi
    z0 = math.cos(theta0)
    s0 = math.sin(theta0)
    cosrad = math.cos(radius)

    # Rings whose colatitude is within the disc's range, plus one ring of margin each side.
    ring = np.arange(1, 4 * ns, dtype=np.int64)
    nr = np.minimum(np.minimum(ring, 4 * ns - ring), ns)
    fact2 = 4.0 / float(npix)
    zr = np.where(ring < ns, 1.0 - (ring * ring) * fact2,
                  np.where(ring > 3 * ns, (nr * nr) * fact2 - 1.0,
                           (2 * ns - ring) * (2.0 * float(ns) * fact2)))
    zhi = math.cos(max(theta0 - radius, 0.0))
    zlo = math.cos(min(theta0 + radius, math.pi))
    sel = np.flatnonzero((zr >= zlo) & (zr <= zhi))
    if sel.size:
        sel = np.arange(max(sel[0] - 1, 0), min(sel[-1] + 2, ring.size))
    else:  # disc between two rings: keep the rings next to it
        j = int(np.searchsorted(-zr, -zhi))
        sel = np.arange(max(j - 1, 0), min(j + 1, ring.size))
    ring, nr, zr = ring[sel], 4 * nr[sel], zr[sel]  # nr: now pixels per ring
    first = np.where(ring < ns, 2 * ring * (ring - 1),
                     np.where(ring > 3 * ns, npix - 2 * (4 * ns - ring) * (4 * ns - ring + 1),
                              2 * ns * (ns - 1) + (ring - ns) * 4 * ns))
    offset = np.where((ring >= ns) & (ring <= 3 * ns) & (((ring - ns) & 1) == 1), 0.0, 0.5)
    step = 2 * math.pi / nr  # pixel spacing in φ on the ring

    # φ half-width of the disc on each ring, widened by one pixel for rounding.
    sr = np.sqrt((1.0 - zr) * (1.0 + zr))
    den = sr * s0
    with np.errstate(divide="ignore", invalid="ignore"):
        c = np.where(den > 1e-300, (cosrad - zr * z0) / den, -2.0)
    half = np.arccos(np.clip(c, -1.0, 1.0)) + step
    lo = np.ceil((phi0 - half) / step - offset).astype(np.int64)
    hi = np.floor((phi0 + half) / step - offset).astype(np.int64)
    full = (hi - lo + 1 >= nr) | (c <= -1.0)
    lo = np.where(full, 0, lo)
    count = np.where(full, nr, np.maximum(hi - lo + 1, 0))
    total = int(count.sum())
    if total == 0:
        return np.empty(0, dtype=np.int64)
    starts = np.cumsum(count) - count
    within = np.arange(total, dtype=np.int64) - np.repeat(starts, count)
    cand = np.repeat(first, count) + np.mod(np.repeat(lo, count) + within,
                                            np.repeat(nr, count))
    cand = _xyf2nest(order, *_ring2xyf(nside, cand))
    z, phi, _ = _nest_zphi(order, cand)
    cosd = z0 * z + np.cos(phi0 - phi) * np.sqrt((1.0 - z0 * z0) * (1.0 - z * z))
    pix = np.sort(cand[cosd >= cosrad])  # no duplicates: distinct rings, windows < a ring
    return pix if nest else np.sort(_xyf2ring(nside, *_nest2xyf(order, pix)))
