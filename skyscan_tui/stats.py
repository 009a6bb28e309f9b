"""Skymap statistics: multi-order partition, Δ(−ln L), contour regions, areas and errors.

What docs/usage.md ("Contours, areas and errors") describes, on the pixels a scan actually
has, never upgrading the whole sky to the finest nside:

* **Partition.** The scanned levels are merged into one non-overlapping multi-order set of
  NESTED pixels covering the scanned sky: a coarse pixel that contains finer scanned pixels
  is replaced by its descendants (the fewest pixels possible), descendants that were not
  scanned (or whose fit failed) inherit the coarse pixel's value.
* **Likelihood regions.** ``R = {i : 2 (LLH_i − LLH_min) ≤ k}`` with Wilks' theorem for two
  degrees of freedom (k = 1.386 / 4.605 for 50 % / 90 %) or other calibrated values (the
  IceCube "IC160427A syst." millipede thresholds 22.2 / 64.2, or the user's own). The area
  is Σ Ωᵢ over the region's pixels, Ωᵢ = 4π / (12 nsideᵢ²) [sr].
* **Probability map.** Flat prior on the sphere: ``Pᵢ ∝ exp(−ΔLLHᵢ) Ωᵢ``, normalised over all
  pixels with a finite value. Credible regions take pixels in order of decreasing density
  ``exp(−ΔLLH)`` until the probability reaches 50 % / 90 %; the pixel that crosses the level
  contributes the fraction of its area that is needed (linear interpolation).
* **Errors.** Circularised radius ``r = sqrt(area / π)``, and the asymmetric RA/Dec extent
  of the 90 % region around the best fit (as GCN notices quote "RA = x (+a, −b)").

Everything is numpy (pixel functions from ``skyscan_tui.healpix``; no healpy, no plotting,
no astropy); angles are radians unless a name ends in ``_deg``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from skyscan_tui import healpix as hp
from skyscan_tui.errors import UserError

__all__ = [
    "WILKS", "NAMED_THRESHOLDS", "CREDIBLE_LEVELS", "Thresholds", "parse_thresholds",
    "MultiOrderMap", "multiorder_map", "Region", "SkyStats", "analyse", "SR_TO_DEG2",
    "wilks_ts", "likelihood_region", "credible_region", "levels_summary",
]

SR_TO_DEG2 = (180.0 / math.pi) ** 2
#: 2ΔLLH for 50 % / 90 % coverage of a χ² with two degrees of freedom (2 ln 2, 2 ln 10).
WILKS = (2.0 * math.log(2.0), 2.0 * math.log(10.0))
#: Named 50 % / 90 % thresholds on 2ΔLLH. "ic160427a" are IceCube's millipede-with-systematics
#: values (skyreader: "from Pan-Starrs event 127852", event IC160427A); they are an empirical
#: calibration of *their* likelihood, not of ours; calibrating our own: docs/validation.md.
NAMED_THRESHOLDS: dict[str, tuple[float, float]] = {
    "wilks": WILKS,
    "ic160427a": (22.2, 64.2),
}
CREDIBLE_LEVELS = (0.5, 0.9)


# ------------------------------------------------------------------------- thresholds
def wilks_ts(level: float) -> float:
    """2ΔLLH threshold [1] of Wilks' theorem for containment ``level`` (χ², 2 dof).

    The χ² CDF with two degrees of freedom is 1 − exp(−k/2), so k = −2 ln(1 − level).

    >>> round(wilks_ts(0.9), 3), round(wilks_ts(0.5), 3)
    (4.605, 1.386)
    """
    if not 0.0 < level < 1.0:
        raise UserError(f"containment level {level!r} must lie strictly between 0 and 1")
    return -2.0 * math.log1p(-level)


@dataclass(frozen=True)
class Thresholds:
    """50 % and 90 % thresholds on 2ΔLLH, with the name they are reported under."""

    name: str
    ts50: float
    ts90: float

    @property
    def description(self) -> str:
        """The method in words, for result headers and reports."""
        if self.name == "wilks":
            return "Wilks' theorem, 2 dof"
        if self.name == "ic160427a":
            return "IC160427A-calibrated millipede thresholds"
        return "user-given thresholds"


def parse_thresholds(spec: str | Thresholds | None) -> Thresholds:
    """``"wilks"``, ``"ic160427a"`` or ``"TS50,TS90"`` (two values of 2ΔLLH) → Thresholds.

    >>> parse_thresholds("1.5,5")
    Thresholds(name='custom', ts50=1.5, ts90=5.0)
    """
    if isinstance(spec, Thresholds):
        return spec
    text = (spec or "wilks").strip().lower()
    if text in NAMED_THRESHOLDS:
        a, b = NAMED_THRESHOLDS[text]
        return Thresholds(text, a, b)
    parts = [p.strip() for p in text.split(",")]
    try:
        if len(parts) != 2:
            raise ValueError
        a, b = float(parts[0]), float(parts[1])
    except ValueError:
        raise UserError(f"thresholds {spec!r}: use {' or '.join(NAMED_THRESHOLDS)} or "
                        "two numbers TS50,TS90 (values of 2*dLLH)") from None
    if not (math.isfinite(a) and math.isfinite(b) and 0 < a <= b):
        raise UserError(f"thresholds {spec!r}: need 0 < TS50 <= TS90, both finite")
    return Thresholds("custom", a, b)


# ------------------------------------------------------------------------- partition
@dataclass(frozen=True)
class MultiOrderMap:
    """Non-overlapping multi-order NESTED pixels with −ln L values.

    Arrays are parallel and sorted by position along the NESTED curve (``lo``), so a point
    lookup is one ``searchsorted``. ``llh`` is NaN where nothing is known (a failed pixel of
    the first level with no finer scan inside).
    """

    nside: np.ndarray  # int64
    ipix: np.ndarray  # int64, NESTED at the pixel's own nside
    llh: np.ndarray  # float64, −ln L

    def __len__(self) -> int:
        return len(self.ipix)

    @property
    def max_nside(self) -> int:
        """The finest nside in the table (1 if it is empty)."""
        return int(self.nside.max()) if len(self) else 1

    @property
    def uniq(self) -> np.ndarray:
        """NUNIQ = 4 nside² + ipix."""
        return 4 * self.nside * self.nside + self.ipix

    @property
    def area(self) -> np.ndarray:
        """[sr] per pixel."""
        return 4.0 * np.pi / (12.0 * self.nside.astype(np.float64) ** 2)

    def _range_at(self, nside: int) -> tuple[np.ndarray, np.ndarray]:
        f = (nside // self.nside) ** 2
        return self.ipix * f, (self.ipix + 1) * f

    def radec(self) -> tuple[np.ndarray, np.ndarray]:
        """[rad] J2000 (ra, dec) of the pixel centres."""
        ra = np.empty(len(self))
        dec = np.empty(len(self))
        for n in np.unique(self.nside):
            m = self.nside == n
            theta, phi = hp.pix2ang(int(n), self.ipix[m], nest=True)
            ra[m], dec[m] = phi, np.pi / 2 - theta
        return ra, dec

    def lookup(self, ra, dec) -> np.ndarray:
        """Index of the pixel containing each (ra, dec) [rad]; −1 where the map has none."""
        nmax = self.max_nside
        ra, dec = np.broadcast_arrays(np.asarray(ra, float), np.asarray(dec, float))
        p = hp.ang2pix(nmax, np.pi / 2 - np.clip(dec, -np.pi / 2, np.pi / 2),
                       np.mod(ra, 2 * np.pi), nest=True)
        lo, hi = self._range_at(nmax)
        j = np.searchsorted(lo, p, side="right") - 1
        jc = np.clip(j, 0, max(len(self) - 1, 0))
        ok = (j >= 0) & (p < hi[jc]) if len(self) else np.zeros(p.shape, bool)
        return np.where(ok, jc, -1)


def _order(nside) -> np.ndarray:
    return np.round(np.log2(np.asarray(nside, dtype=np.float64))).astype(np.int64)


def _merge_level(part: MultiOrderMap, nside: int, ipix: np.ndarray,
                 llh: np.ndarray) -> MultiOrderMap:
    """Insert one finer level into the partition (every partition pixel is coarser)."""
    lo, hi = part._range_at(nside)
    j = np.searchsorted(lo, ipix, side="right") - 1
    jc = np.clip(j, 0, max(len(part) - 1, 0))
    inside = (j >= 0) & (ipix < hi[jc]) if len(part) else np.zeros(len(ipix), bool)
    # finer pixels outside the partition (pointed scans): added as they are; a failed one
    # there carries no information and is left out
    keep_out = ~inside & np.isfinite(llh)
    new_n = [np.full(int(keep_out.sum()), nside, np.int64)]
    new_i = [ipix[keep_out]]
    new_l = [llh[keep_out]]
    big_o = int(_order(nside))
    qi, qs, ql = jc[inside], ipix[inside], llh[inside]
    replaced = np.unique(qi)
    for o in np.unique(_order(part.nside[replaced])):
        o = int(o)
        sel = _order(part.nside[qi]) == o
        q_pix = qs[sel]  # scanned pixels at order big_o whose container has order o
        q_llh = ql[sel]
        cont = np.unique(qi[sel])
        cont_ipix = part.ipix[cont]  # sorted: partition is in NESTED order
        cont_llh = part.llh[cont]

        def inherited(pix: np.ndarray, k: int, cont_ipix=cont_ipix, cont_llh=cont_llh,
                      o=o) -> np.ndarray:
            return cont_llh[np.searchsorted(cont_ipix, pix >> (2 * (k - o)))]

        for k in range(o + 1, big_o + 1):
            parents = np.unique(q_pix >> (2 * (big_o - k + 1)))
            kids = (parents[:, None] * 4 + np.arange(4, dtype=np.int64)[None, :]).ravel()
            if k < big_o:
                kids = kids[~np.isin(kids, q_pix >> (2 * (big_o - k)))]
                vals = inherited(kids, k)
            else:
                vals = inherited(kids, k)
                pos = np.searchsorted(q_pix, kids)
                pos_c = np.clip(pos, 0, len(q_pix) - 1)
                hit = q_pix[pos_c] == kids
                hit &= np.isfinite(q_llh[pos_c])  # a failed fit inherits like an unscanned one
                vals = np.where(hit, q_llh[pos_c], vals)
            new_n.append(np.full(len(kids), 1 << k, np.int64))
            new_i.append(kids)
            new_l.append(vals)
    keep = np.ones(len(part), bool)
    keep[replaced] = False
    n = np.concatenate([part.nside[keep], *new_n])
    i = np.concatenate([part.ipix[keep], *new_i])
    v = np.concatenate([part.llh[keep], *new_l])
    order = np.argsort(i * (nside // n) ** 2, kind="stable")
    return MultiOrderMap(n[order], i[order], v[order])


def multiorder_map(result: Any) -> MultiOrderMap:
    """Merge a ``ScanResult``'s levels (NESTED, any nsides) into one multi-order partition.

    Refined pixels are replaced by their descendants (the fewest needed); unscanned or failed
    descendants inherit the coarser value. Nothing is upgraded beyond what was scanned.
    """
    levels = sorted((int(n), lv) for n, lv in result.levels.items() if len(lv))
    if not levels:
        return MultiOrderMap(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0))
    n0, lv0 = levels[0]
    ipix0 = np.asarray(lv0["ipix"], np.int64)
    order = np.argsort(ipix0, kind="stable")
    part = MultiOrderMap(np.full(len(ipix0), n0, np.int64), ipix0[order],
                         np.asarray(lv0["llh"], np.float64)[order])
    for nside, lv in levels[1:]:
        ipix = np.asarray(lv["ipix"], np.int64)
        o = np.argsort(ipix, kind="stable")
        part = _merge_level(part, nside, ipix[o], np.asarray(lv["llh"], np.float64)[o])
    return part


# ------------------------------------------------------------------------- regions
@dataclass
class Region:
    """One contour region: which pixels, its area and its extent around the best fit."""

    method: str  # "wilks", "ic160427a", "custom" or "credible"
    level: float  # nominal containment, 0.5 or 0.9
    ts: float  # threshold on 2ΔLLH (NaN for credible regions)
    area_deg2: float
    n_pixels: int
    ra_plus_deg: float
    ra_minus_deg: float  # ≤ 0
    dec_plus_deg: float
    dec_minus_deg: float  # ≤ 0
    mask: np.ndarray = field(repr=False)
    #: plain Σ Ωᵢ of the pixels in ``mask`` [deg²] (``area_deg2`` refines the edge pixels)
    pixel_area_deg2: float = float("nan")

    @property
    def radius_deg(self) -> float:
        """Circularised error sqrt(area / π) [deg]."""
        return math.sqrt(self.area_deg2 / math.pi)

    @property
    def label(self) -> str:
        """The level as a percentage, e.g. ``90%``."""
        return f"{round(self.level * 100)}%"

    def to_dict(self) -> dict[str, Any]:
        """The region as a JSON-ready dict (areas [deg²], radius and errors [deg])."""
        return {
            "method": self.method, "level": self.level,
            "ts_threshold": None if math.isnan(self.ts) else self.ts,
            "area_deg2": self.area_deg2, "radius_deg": self.radius_deg,
            "n_pixels": self.n_pixels, "pixel_area_deg2": self.pixel_area_deg2,
            "ra_err_deg": [self.ra_plus_deg, self.ra_minus_deg],
            "dec_err_deg": [self.dec_plus_deg, self.dec_minus_deg],
        }


def _inside_fraction(mo: MultiOrderMap, ts: np.ndarray, k: float) -> np.ndarray:
    """Fraction of each pixel's area with TS ≤ k (0 or 1 except on the region's edge).

    On the edge (a pixel whose neighbours lie on the other side of k) TS is taken as linear:
    a least-squares gradient g from the neighbouring pixel centres gives the signed distance
    d = (k − TSᵢ)/|g| from the centre to the contour, and the inside fraction
    clip(½ + d/√Ωᵢ, 0, 1). Without it the area of a region of N pixels jumps by whole pixels
    (a few per cent for the ~100 nside-512 pixels of a 1 deg² region).
    """
    inside = ts <= k
    frac = inside.astype(np.float64)
    n = len(mo)
    nb = np.full((8, n), -1, dtype=np.int64)
    ra, dec = mo.radec()
    for ns in np.unique(mo.nside):
        m = np.flatnonzero(mo.nside == ns)
        pix = hp.get_all_neighbours(int(ns), mo.ipix[m], nest=True)
        ok = pix >= 0
        th, ph = hp.pix2ang(int(ns), np.where(ok, pix, 0), nest=True)
        idx = mo.lookup(ph, np.pi / 2 - th)
        nb[:, m] = np.where(ok, idx, -1)
    valid = (nb >= 0) & (nb != np.arange(n)[None, :])
    ts_nb = np.where(valid, ts[np.clip(nb, 0, None)], np.nan)
    valid &= np.isfinite(ts_nb)
    edge = np.isfinite(ts) & np.any(valid & ((ts_nb <= k) != inside[None, :]), axis=0)
    e = np.flatnonzero(edge)
    if e.size == 0:
        return frac
    # neighbour centres in the gnomonic tangent plane of each edge pixel [rad]
    v = np.stack([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)], -1)
    c = v[e]
    east = np.stack([-np.sin(ra[e]), np.cos(ra[e]), np.zeros(e.size)], -1)
    north = np.cross(c, east)
    vn = v[np.clip(nb[:, e], 0, None)]  # (8, m, 3)
    dot = np.einsum("kmi,mi->km", vn, c)
    x = np.einsum("kmi,mi->km", vn, east) / dot
    y = np.einsum("kmi,mi->km", vn, north) / dot
    w = valid[:, e] & (dot > 0)
    dt = np.where(w, ts_nb[:, e] - ts[e][None, :], 0.0)
    x, y = np.where(w, x, 0.0), np.where(w, y, 0.0)
    # TS ≈ TSᵢ + g·p + ½ pᵀHp: least squares over the neighbours (5 unknowns, ≤ 8 points)
    basis = np.stack([x, y, 0.5 * x * x, x * y, 0.5 * y * y], -1) * w[..., None]  # (8, m, 5)
    ata = np.einsum("kmi,kmj->mij", basis, basis)
    atb = np.einsum("kmi,km->mi", basis, dt)
    scale = np.einsum("mii->mi", ata).max(1)
    good = (w.sum(0) >= 6) & (scale > 0)
    ata = ata + np.eye(5)[None] * (1e-9 * np.where(good, scale, 1.0))[:, None, None]
    sol = np.linalg.solve(np.where(good[:, None, None], ata, np.eye(5)[None]),
                          np.where(good[:, None], atb, 0.0)[..., None])[..., 0]
    gx, gy, hxx, hxy, hyy = sol.T
    g = np.hypot(gx, gy)
    good &= g > 0
    g = np.where(good, g, 1.0)
    ux, uy = gx / g, gy / g
    curv = hxx * ux * ux + 2 * hxy * ux * uy + hyy * uy * uy  # d²TS/dt² along the gradient
    # signed distance t from the centre to TS = k along the gradient (t > 0: centre inside)
    rhs = k - ts[e]
    disc = g * g + 2.0 * curv * rhs
    small = np.abs(curv) * np.abs(rhs) < 1e-6 * g * g
    root = (-g + np.sqrt(np.maximum(disc, 0.0))) / np.where(curv == 0, 1.0, curv)
    t_lin = rhs / g
    t = np.where(small | (disc < 0) | (curv == 0), t_lin, root)
    f = np.clip(0.5 + t / np.sqrt(mo.area[e]), 0.0, 1.0)
    frac[e] = np.where(good, f, frac[e])
    return frac


def _extent(mo: MultiOrderMap, ra: np.ndarray, dec: np.ndarray, mask: np.ndarray,
            ra0: float, dec0: float) -> tuple[float, float, float, float]:
    """[deg] (+RA, −RA, +Dec, −Dec) of the region around (ra0, dec0) [rad].

    Extremes of the pixel centres, widened by half a pixel (the contour lies between the
    last pixel in and the first pixel out). RA offsets wrap at ±180°; a region holding a pole
    spans all RA and gets ±180°.
    """
    if not mask.any():
        return 0.0, 0.0, 0.0, 0.0
    half = np.degrees(np.sqrt(mo.area[mask])) / 2.0
    d = np.degrees(dec[mask])
    d0 = math.degrees(dec0)
    dec_plus = min(float(np.max(d + half)), 90.0) - d0
    dec_minus = max(float(np.min(d - half)), -90.0) - d0
    dra = np.mod(np.degrees(ra[mask]) - math.degrees(ra0) + 180.0, 360.0) - 180.0
    cosd = np.cos(dec[mask])
    half_ra = np.where(cosd > 1e-9, half / np.maximum(cosd, 1e-9), 180.0)
    ra_plus = float(np.max(dra + half_ra))
    ra_minus = float(np.min(dra - half_ra))
    north, south = (bool(p >= 0 and mask[p])
                    for p in mo.lookup(np.zeros(2), np.array([np.pi / 2, -np.pi / 2])))
    if north:
        dec_plus = 90.0 - d0
    if south:
        dec_minus = -90.0 - d0
    if north or south or ra_plus - ra_minus >= 360.0:
        ra_plus, ra_minus = 180.0, -180.0
    else:
        ra_plus, ra_minus = min(ra_plus, 180.0), max(ra_minus, -180.0)
    return max(ra_plus, 0.0), min(ra_minus, 0.0), max(dec_plus, 0.0), min(dec_minus, 0.0)


@dataclass
class SkyStats:
    """Everything an alert needs from one scan (angles in degrees)."""

    mo: MultiOrderMap = field(repr=False)
    dllh: np.ndarray = field(repr=False)  # LLH − LLH_min per partition pixel (NaN: unknown)
    prob: np.ndarray = field(repr=False)  # probability per partition pixel (sums to 1)
    llh_min: float
    best_nside: int
    best_ipix: int  # NESTED
    ra_deg: float
    dec_deg: float
    l_deg: float
    b_deg: float
    thresholds: Thresholds
    regions: list[Region]  # likelihood regions at thresholds.ts50, ts90
    credible: list[Region]  # probability-map regions at 50 %, 90 %
    coverage_deg2: float  # sky area with a finite value
    #: [deg] Gaussian error floor convolved into ``prob`` (and ``dllh``: −ln of the smoothed
    #: density relative to its peak); 0 = the statistical map as scanned
    error_floor_deg: float = 0.0
    smoothing: Any = None  # errorfloor.Smoothing when a floor was applied

    @property
    def systematic_included(self) -> bool:
        """A floor was convolved in, or calibrated (non-Wilks) thresholds were used."""
        return self.error_floor_deg > 0 or self.thresholds.name != "wilks"

    @property
    def systematic(self) -> str:
        """One phrase saying which systematic treatment the regions include."""
        parts = []
        if self.error_floor_deg > 0:
            parts.append(f"a Gaussian error floor of {self.error_floor_deg:g} deg convolved "
                         "into the map")
        if self.thresholds.name != "wilks":
            parts.append(f"thresholds {self.thresholds.description} "
                         f"({self.thresholds.ts50:g}, {self.thresholds.ts90:g})")
        if not parts:
            return "statistical only (Wilks' thresholds, no error floor)"
        return "systematic included: " + " and ".join(parts)

    @property
    def ts(self) -> np.ndarray:
        """2ΔLLH per partition pixel."""
        return 2.0 * self.dllh

    @property
    def prob_density(self) -> np.ndarray:
        """[sr⁻¹] probability density per partition pixel."""
        return self.prob / self.mo.area

    def region(self, level: float) -> Region:
        """The region at containment ``level`` (a fraction, e.g. 0.9)."""
        return next(r for r in self.regions if abs(r.level - level) < 1e-9)

    def to_dict(self) -> dict[str, Any]:
        """The statistics as a JSON-ready dict (angles [deg], areas [deg²])."""
        r90 = self.region(0.9)
        return {
            "ra_deg": self.ra_deg, "dec_deg": self.dec_deg,
            "ra_err90_deg": [r90.ra_plus_deg, r90.ra_minus_deg],
            "dec_err90_deg": [r90.dec_plus_deg, r90.dec_minus_deg],
            "galactic_l_deg": self.l_deg, "galactic_b_deg": self.b_deg,
            "llh_min": self.llh_min, "best_nside": self.best_nside,
            "best_ipix_nest": self.best_ipix,
            "thresholds": {"name": self.thresholds.name,
                           "description": self.thresholds.description,
                           "ts50": self.thresholds.ts50, "ts90": self.thresholds.ts90},
            "contours": {r.label: r.to_dict() for r in self.regions},
            "credible": {r.label: r.to_dict() for r in self.credible},
            "multiorder_pixels": len(self.mo),
            "multiorder_nsides": sorted(int(n) for n in np.unique(self.mo.nside)),
            "coverage_deg2": self.coverage_deg2,
            "error_floor_deg": self.error_floor_deg,
            "systematic_included": self.systematic_included,
            "systematic": self.systematic,
            "smoothing": None if self.smoothing is None else self.smoothing.to_dict(),
        }


def _credible(mo: MultiOrderMap, prob: np.ndarray, dllh: np.ndarray,
              level: float) -> tuple[np.ndarray, float]:
    """Pixels of the ``level`` credible region and its (interpolated) area [deg²]."""
    area = mo.area
    dens = np.where(np.isfinite(dllh), -dllh, -np.inf)
    order = np.argsort(-dens, kind="stable")  # decreasing density; ties in NESTED order
    cum = np.cumsum(prob[order])
    n = int(min(np.searchsorted(cum, level * cum[-1]), len(order) - 1))
    before = cum[n - 1] if n > 0 else 0.0
    frac = (level * cum[-1] - before) / prob[order[n]] if prob[order[n]] > 0 else 1.0
    area_sr = float(area[order[:n]].sum() + min(max(frac, 0.0), 1.0) * area[order[n]])
    mask = np.zeros(len(mo), bool)
    mask[order[: n + 1]] = True
    return mask, area_sr * SR_TO_DEG2


def analyse(result: Any, thresholds: str | Thresholds | None = "wilks",
            error_floor_deg: float | None = 0.0) -> SkyStats | None:
    """Statistics of a ``ScanResult`` [deg, deg²]; None when no pixel has a finite −ln L.

    Parameters
    ----------
    result : ScanResult
        The scan, any nsides (merged into one multi-order map).
    thresholds : str or Thresholds or None
        2ΔLLH thresholds of the 50 %/90 % likelihood regions: ``"wilks"`` (default),
        ``"ic160427a"`` or ``"TS50,TS90"`` (see :func:`parse_thresholds`).
    error_floor_deg : float or None
        > 0 convolves the probability map with a Gaussian of that width [deg]
        (:mod:`skyscan_tui.errorfloor`); every region is then one of the smoothed map.

    Returns
    -------
    SkyStats or None
        Best fit and errors [deg], likelihood and credible regions (areas [deg²]).
    """
    from skyscan_tui.errorfloor import check_error_floor

    th = parse_thresholds(thresholds)
    floor = check_error_floor(error_floor_deg)
    mo = multiorder_map(result)
    best = result.best()
    finite = np.isfinite(mo.llh)
    if best is None or not finite.any():
        return None
    llh_min = min(float(best.llh), float(mo.llh[finite].min()))
    dllh = mo.llh - llh_min
    area = mo.area
    w = np.where(finite, np.exp(-np.where(finite, dllh, 0.0)) * area, 0.0)
    prob = w / w.sum()
    smoothing = None
    if floor > 0:
        from skyscan_tui.errorfloor import dllh_cut, smooth_map

        prob, dllh, smoothing = smooth_map(mo, dllh, prob, floor, dllh_cut(th.ts90))
        finite = np.isfinite(dllh)
    ra, dec = mo.radec()
    ra0, dec0 = best.ra, best.dec
    ts = np.where(finite, 2.0 * dllh, np.inf)
    regions = []
    for level, k in ((0.5, th.ts50), (0.9, th.ts90)):
        mask = ts <= k
        a = float((area * _inside_fraction(mo, ts, k)).sum() * SR_TO_DEG2)
        regions.append(Region(th.name, level, k, a, int(mask.sum()),
                              *_extent(mo, ra, dec, mask, ra0, dec0), mask=mask,
                              pixel_area_deg2=float(area[mask].sum() * SR_TO_DEG2)))
    credible = []
    for level in CREDIBLE_LEVELS:
        mask, a = _credible(mo, prob, dllh, level)
        credible.append(Region("credible", level, float("nan"), a, int(mask.sum()),
                               *_extent(mo, ra, dec, mask, ra0, dec0), mask=mask,
                               pixel_area_deg2=float(area[mask].sum() * SR_TO_DEG2)))
    from skyscan_tui.coords import equatorial_to_galactic

    gl, gb = equatorial_to_galactic(ra0, dec0)
    return SkyStats(
        mo=mo, dllh=dllh, prob=prob, llh_min=llh_min, best_nside=best.nside,
        best_ipix=best.ipix, ra_deg=math.degrees(ra0), dec_deg=math.degrees(dec0),
        l_deg=float(np.degrees(gl)), b_deg=float(np.degrees(gb)), thresholds=th,
        regions=regions, credible=credible,
        coverage_deg2=float(area[finite].sum() * SR_TO_DEG2),
        error_floor_deg=floor, smoothing=smoothing,
    )


def likelihood_region(stats: SkyStats, level: float) -> Region:
    """The 2ΔLLH ≤ k region [deg² areas] at any containment ``level``.

    50 % and 90 % use the scan's thresholds (Wilks, IC160427A or the user's); any other
    level uses Wilks' k = −2 ln(1 − level).
    """
    for r in stats.regions:
        if abs(r.level - level) < 1e-9:
            return r
    k = wilks_ts(level)
    mo = stats.mo
    finite = np.isfinite(stats.dllh)
    ts = np.where(finite, 2.0 * stats.dllh, np.inf)
    mask = ts <= k
    ra, dec = mo.radec()
    a = float((mo.area * _inside_fraction(mo, ts, k)).sum() * SR_TO_DEG2)
    return Region("wilks", level, k, a, int(mask.sum()),
                  *_extent(mo, ra, dec, mask, math.radians(stats.ra_deg),
                           math.radians(stats.dec_deg)),
                  mask=mask, pixel_area_deg2=float(mo.area[mask].sum() * SR_TO_DEG2))


def credible_region(stats: SkyStats, level: float) -> Region:
    """The ``level`` credible region of the probability map [deg² areas], any level."""
    for r in stats.credible:
        if abs(r.level - level) < 1e-9:
            return r
    if not 0.0 < level < 1.0:
        raise UserError(f"containment level {level!r} must lie strictly between 0 and 1")
    mo = stats.mo
    mask, a = _credible(mo, stats.prob, stats.dllh, level)
    ra, dec = mo.radec()
    return Region("credible", level, float("nan"), a, int(mask.sum()),
                  *_extent(mo, ra, dec, mask, math.radians(stats.ra_deg),
                           math.radians(stats.dec_deg)),
                  mask=mask, pixel_area_deg2=float(mo.area[mask].sum() * SR_TO_DEG2))


def levels_summary(stats: SkyStats, levels: list[float]) -> list[dict[str, Any]]:
    """[deg, deg²] Likelihood and credible regions at any ``levels`` (fractions), as dicts."""
    out = []
    for level in levels:
        lr, cr = likelihood_region(stats, level), credible_region(stats, level)
        out.append({"level": level, "likelihood": lr.to_dict(), "credible": cr.to_dict()})
    return out
