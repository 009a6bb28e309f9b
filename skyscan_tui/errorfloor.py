"""Angular error floor: the probability map convolved with a Gaussian on the sphere.

``--error-floor DEG`` adds a systematic pointing error of width σ = DEG to the statistical
map, as skyreader's "systematics" convolution does. The kernel is the von Mises–Fisher
distribution, the Gaussian of the sphere: K(d) = κ / (2π (1 − e^{−2κ})) · exp(−κ (1 − cos d))
with κ = 1/σ², which is exp(−d²/2σ²)/(2πσ²) for small angles, so a Gaussian map of width
σ_map becomes one of width σ_tot = sqrt(σ_map² + σ²).

No full-sky spherical-harmonic smoothing (at nside 512 it costs seconds and loses the
tail beyond ~1e−10 of the peak in numerical noise, where the calibrated thresholds look).
Instead a direct sum over the pixels that matter, on the multi-order pixels as they are:

* **Sources** are the pixels with ΔLLH ≤ ``cut`` (the rest holds less than e^{−cut} of the
  peak density and keeps its probability where it is). A source pixel coarser than the
  working resolution ``nside_w`` (pixels ≤ σ/2 across, at most twice finer than the map's
  finest, coarser when the sum would take more than ``MAX_PAIRS`` pairs) is split into its
  ``nside_w`` children, each with an equal share of its probability.
* **Targets** are the known pixels within reach R = sqrt(2 cut) σ of a source (beyond it a
  source contributes less than e^{−cut}); a coarse one is split, level by level, into the
  children still within reach, and its smoothed probability is the sum over them.
* The density at each target point is Σᵢ pᵢ K(dᵢ) over the sources within R (a k-d tree
  of unit vectors, in chunks), times the point's area; the result is renormalised to 1.

``benchmarks/error_floor.py`` measures the time and compares with a full-resolution
reference and with healpy's harmonic smoothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from skyscan_tui import healpix as hp
from skyscan_tui.errors import UserError

__all__ = ["MAX_ERROR_FLOOR_DEG", "Smoothing", "check_error_floor", "working_nside",
           "smooth_map", "dllh_cut"]

#: A floor wider than this is not a pointing systematic any more.
MAX_ERROR_FLOOR_DEG = 45.0
#: Source-target pairs the sum may take (~1 s per 10⁷); past it the working pixels are
#: coarsened: only when the floor is much narrower than the wide map it smooths, where it
#: changes little (a 20° × 15° map: 0.1° floor 1.4·10⁸ pairs, 20 s, before this cap).
MAX_PAIRS = 20_000_000
#: ΔLLH margin past the largest threshold in use: a contribution below e^{−margin} of the
#: density at a contour changes its 2ΔLLH by < 1e−5.
MARGIN = 12.0
#: The working resolution is at most this many times finer than the map's finest pixels: a
#: floor narrower than those pixels moves little probability (benchmarks/error_floor.py
#: measures what a finer one would change).
FINER = 2
_CHUNK = 4096  # target points per k-d tree query


@dataclass(frozen=True)
class Smoothing:
    """What ``smooth_map`` did (for the summary and the benchmark)."""

    sigma_deg: float
    nside_w: int
    cut: float  # ΔLLH of the source cut
    reach_deg: float
    n_sources: int
    n_targets: int
    n_pairs: int

    def to_dict(self) -> dict[str, float | int]:
        """These numbers as a plain dict (``working_nside`` is ``nside_w``) for ``SkyStats``."""
        return {"sigma_deg": self.sigma_deg, "working_nside": self.nside_w,
                "dllh_cut": self.cut, "reach_deg": self.reach_deg,
                "sources": self.n_sources, "targets": self.n_targets, "pairs": self.n_pairs}


def check_error_floor(value: float | None) -> float:
    """[deg] A usable floor (0 = none); UserError otherwise."""
    if value is None:
        return 0.0
    v = float(value)
    if not (math.isfinite(v) and 0.0 <= v <= MAX_ERROR_FLOOR_DEG):
        raise UserError(f"error floor {value!r}: use 0 to {MAX_ERROR_FLOOR_DEG:g} deg")
    return v


def dllh_cut(ts_max: float) -> float:
    """ΔLLH down to which the smoothed map must be right, for thresholds up to ``ts_max``."""
    return max(ts_max / 2.0, 9.2) + MARGIN  # 9.2: Wilks' 99.99 % (2ΔLLH 18.4)


def working_nside(sigma_rad: float, max_nside: int, finer: int = FINER,
                  oversample: int = 1) -> int:
    """Smallest power of two with pixels ≤ σ/(2 ``oversample``) across.

    At most ``finer`` × the map's finest."""
    need = 2.0 * oversample * math.sqrt(math.pi / 3.0) / sigma_rad
    n = 1 << max(0, math.ceil(math.log2(max(need, 1.0))))
    return int(min(n, finer * max(int(max_nside), 1)))


def _vectors(nside: np.ndarray | int, ipix: np.ndarray) -> np.ndarray:
    nside = np.broadcast_to(np.asarray(nside, np.int64), ipix.shape)
    out = np.empty((ipix.size, 3))
    for n in np.unique(nside).tolist():
        m = nside == n
        out[m] = hp.ang2vec(*hp.pix2ang(int(n), ipix[m], nest=True))
    return out


def _children(nside: np.ndarray, ipix: np.ndarray, owner: np.ndarray, target: int):
    """Every ``target``-nside descendant of pixels no finer than it (NESTED)."""
    f = (target // nside) ** 2
    total = int(f.sum())
    rep = np.repeat(np.arange(ipix.size), f)
    start = np.repeat(np.cumsum(f) - f, f)
    kids = ipix[rep] * f[rep] + (np.arange(total) - start)
    return kids, owner[rep], f[rep]


def _chord(angle: float) -> float:
    return 2.0 * math.sin(min(angle, math.pi) / 2.0)


def _targets(mo, idx: np.ndarray, nside_w: int, tree, reach: float):
    """(unit vectors, areas [sr], owner index) of the target points of pixels ``idx``."""
    vec_l, area_l, own_l = [], [], []
    fine = idx[mo.nside[idx] >= nside_w]
    if fine.size:
        vec_l.append(_vectors(mo.nside[fine], mo.ipix[fine]))
        area_l.append(mo.area[fine])
        own_l.append(fine)
    coarse = idx[mo.nside[idx] < nside_w]
    nside, ipix, owner = mo.nside[coarse], mo.ipix[coarse], coarse
    while ipix.size:
        size = np.sqrt(4.0 * np.pi / (12.0 * nside.astype(np.float64) ** 2))
        vec = _vectors(nside, ipix)
        # a pixel reaches a source if its centre is within R + its size of one
        bound = np.array([_chord(reach + s) for s in size])
        dist, _ = tree.query(vec, k=1, distance_upper_bound=float(bound.max()) + 1e-12)
        near = dist <= bound
        nside, ipix, owner, vec, size = (a[near] for a in (nside, ipix, owner, vec, size))
        done = nside >= nside_w
        if done.any():
            vec_l.append(vec[done])
            area_l.append(4.0 * np.pi / (12.0 * nside[done].astype(np.float64) ** 2))
            own_l.append(owner[done])
        nside, ipix, owner = nside[~done], ipix[~done], owner[~done]
        if ipix.size:  # one level finer
            ipix = (ipix[:, None] * 4 + np.arange(4)[None, :]).ravel()
            owner = np.repeat(owner, 4)
            nside = np.repeat(nside * 2, 4)
    if not vec_l:
        return np.zeros((0, 3)), np.zeros(0), np.zeros(0, np.int64)
    return np.concatenate(vec_l), np.concatenate(area_l), np.concatenate(own_l)


def smooth_map(mo, dllh: np.ndarray, prob: np.ndarray, sigma_deg: float,
               cut: float, finer: int = FINER, oversample: int = 1,
               max_pairs: float = MAX_PAIRS) -> tuple[np.ndarray, np.ndarray, Smoothing]:
    """(probability, ΔLLH-equivalent) per pixel and what was done, after smoothing ``prob``.

    ``prob`` (per pixel of the multi-order map ``mo``, sums to 1) is convolved with the kernel
    of width ``sigma_deg`` [deg]. ΔLLH is −ln of the density relative to its maximum; unknown
    pixels (NaN in ``dllh``) stay unknown with probability 0."""
    from scipy.spatial import cKDTree  # only when a floor is asked for

    sigma = math.radians(sigma_deg)
    kappa = 1.0 / sigma ** 2
    finite = np.isfinite(dllh)
    active = np.flatnonzero(finite & (dllh <= cut))
    reach = min(math.sqrt(2.0 * cut) * sigma, math.pi)
    nside_w = working_nside(sigma, mo.max_nside, finer, oversample)
    while True:  # sources: active pixels, coarse ones split into nside_w children
        f = np.where(mo.nside[active] < nside_w, (nside_w // mo.nside[active]) ** 2, 1)
        n_src = int(f.sum())
        # each target meets about the sources in a disc of radius R (pixels ≥ nside_w's)
        per_target = min(n_src, math.pi * reach ** 2 / (math.pi / (3.0 * nside_w ** 2)) + 1)
        if n_src * per_target <= max_pairs or nside_w <= mo.nside[active].min():
            break
        nside_w //= 2
    split = mo.nside[active] < nside_w
    s_fine = active[~split]
    kids, k_owner, k_f = _children(mo.nside[active[split]], mo.ipix[active[split]],
                                   active[split], nside_w)
    src_vec = np.concatenate([_vectors(mo.nside[s_fine], mo.ipix[s_fine]),
                              _vectors(nside_w, kids)])
    src_mass = np.concatenate([prob[s_fine], prob[k_owner] / k_f])
    tree = cKDTree(src_vec)
    t_vec, t_area, t_owner = _targets(mo, np.flatnonzero(finite), nside_w, tree, reach)
    conv = np.zeros(len(t_vec))
    chord = _chord(reach)
    n_pairs = 0
    for a in range(0, len(t_vec), _CHUNK):
        sub = cKDTree(t_vec[a:a + _CHUNK])
        pairs = sub.sparse_distance_matrix(tree, chord, output_type="ndarray")
        n_pairs += len(pairs)
        # 1 − cos d = chord²/2 exactly: no cancellation for tiny angles
        w = src_mass[pairs["j"]] * np.exp(-kappa * 0.5 * pairs["v"] ** 2)
        conv[a:a + _CHUNK] += np.bincount(pairs["i"], w, minlength=min(_CHUNK, len(t_vec) - a))
    norm = kappa / (2.0 * math.pi * -math.expm1(-2.0 * kappa))
    new = np.bincount(t_owner, conv * norm * t_area, minlength=len(mo))
    passive = finite.copy()
    passive[active] = False
    new = np.where(passive, new + prob, new)  # the far tail stays where it is
    new = np.where(finite, new, 0.0)
    new /= new.sum()
    dens = new / mo.area
    with np.errstate(divide="ignore"):
        d = 0.0 - np.log(dens / dens.max())  # 0.0 -: no -0.0 at the peak
    # a pixel whose density underflowed keeps its own ΔLLH (≥ the cut): still "far away"
    d = np.where(finite & ~np.isfinite(d), np.fmax(dllh, cut), d)
    d = np.where(finite, d, np.nan)
    info = Smoothing(float(sigma_deg), int(nside_w), float(cut), math.degrees(reach),
                     int(len(src_vec)), int(len(t_vec)), int(n_pairs))
    return new, d, info

