"""Shared machinery of the Pandel track fits (``spe``, ``mpe`` and their pointed variants).

Per event (``prepare``, physics.md §4.2 step 0): first pulse per DOM, seeded RT cleaning
(IceCube's SeededRT, as in skymap_scanner's ``splinempe.py``: start from the hard local
coincidences — another hit within 2 DOMs on the same string and 1000 ns — and keep every hit
connected to them by chains of 150 m / 1000 ns steps, so pairs of dark-noise hits far from the
track go; classic RT when there are no such seeds), a 6 µs time window around the bulk
(IceCube ``TimeWindow=6000 ns``), charge per DOM inside the window (MPE) and a LineFit first
guess (least squares ``r_i ≈ r̄ + v (t_i - t̄)``) used when the event carries no seed.

Per pixel (``fit_pixels``, physics.md §4.1–4.2): the track direction u is fixed; the free
parameters are the transverse offsets (a, b) along e1 = u×ẑ/|u×ẑ|, e2 = u×e1 from a
reference point ``r_ref`` (the seed vertex projected onto the plane ⟂ u through the hit
centre of gravity) and a time offset t0. First-round pixels start with a 5×5 grid
(±60 m) × 3 start times (the 15 % quantile of the residuals, 80 and 240 ns earlier), then
run a batched Nelder–Mead (steps 15 m / 15 m / 20 ns, ``iterations``) and a restart
(5 m / 5 m / 5 ns, half as many). Refined pixels start at the best of ten candidates: the
parent's best-fit vertex (the engine passes it as ``batch.seed``) and the transverse offsets
of that vertex, of the event seed and of the centre of gravity with the quantile start time
and 80 and 160 ns earlier; then small steps (5 m / 5 ns, then 2 m / 2 ns; ½ and ¼
``iterations``). MPE pixels first run the same fit's first pass on the SPE objective and add
its optimum to their candidates (IceCube seeds MPEFit with SPEFit likewise). Vertex
variation k = 1 starts at the centre of gravity, k ≥ 2 at the seed shifted by
``variation_step`` in the transverse plane; the engine keeps the best.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import numpy as np

from recos.base import Option, PointedRegion, Reco
from recos.track.constants import (
    C_VACUUM,
    EFF_A0,
    EFF_A1,
    JITTER,
    K_CHERENKOV,
    PANDEL_LAMBDA,
    PANDEL_RHO,
)
from recos.track.frame import track_direction, transverse_basis
from recos.track.kernels import get_kernel
from recos.track.minimize import nelder_mead_batched
from recos.track.pandel import pandel_logpdf, plain_logsf
from recos.track.pull import parse_pull, pull_for
from recos.track.table import XI_MAX, XI_MIN, get_table
from skyscan_tui.errors import UserError
from skyscan_tui.events import Event
from skyscan_tui.tasks import TaskBatch, empty_results

__all__ = ["PreparedTrack", "TrackReco", "prepare_track", "clean_hits", "line_fit",
           "transverse_basis", "TrackObjective"]

RT_RADIUS = 150.0  # [m]
RT_TIME = 1000.0  # [ns]
TIME_WINDOW = 6000.0  # [ns]
HLC_SPAN = 2  # [DOM positions on a string]
HLC_TIME = 1000.0  # [ns]
_K_OVER_C = K_CHERENKOV / C_VACUUM  # [ns/m]
_MAX_ELEMENTS = 65536  # (pixel, trial, DOM) elements per numpy pass: ~0.5 MB arrays stay in L2


@dataclass(frozen=True)
class PreparedTrack:
    """Per-event input of the track fits (picklable; arrays per cleaned DOM).

    ``pos`` (K, 3) [m], ``time`` (K,) first-pulse time [ns], ``npe`` (K,) photon count used by
    MPE (1 for SPE), sorted so the ``n_multi`` DOMs with npe > 1 come first; ``cog`` (3,) [m]
    charge-weighted centre of gravity; ``seed`` (4,) [m, m, m, ns]; ``seed_dir`` (zenith,
    azimuth) [rad] of the first guess; ``seed_name`` where it came from; ``n_bright`` the
    brightness measure of the pull correction (:mod:`recos.track.pull`).
    """

    pos: np.ndarray
    time: np.ndarray
    npe: np.ndarray
    n_multi: int
    cog: np.ndarray
    seed: np.ndarray
    seed_dir: tuple[float, float]
    seed_name: str
    n_pulses_in: int
    n_doms_in: int
    n_bright: int  # cleaned DOMs with round(charge) >= 2, whether or not the fit uses charge
    real_event: bool = False  # set by ``auto`` when it chose SPE1st because the event is real


def _pairs_any(n: int, near_fn) -> np.ndarray:
    """True for items with at least one partner j ≠ i where ``near_fn(slice)`` (rows × n) holds;
    chunked so n² pairs never need an n×n×3 temporary."""
    keep = np.zeros(n, dtype=bool)
    for lo in range(0, n, 512):
        sl = slice(lo, min(n, lo + 512))
        near = near_fn(sl)
        near[np.arange(sl.stop - lo), np.arange(lo, sl.stop)] = False
        keep[sl] = near.any(axis=1)
    return keep


def _rt_near(pos: np.ndarray, t: np.ndarray, radius: float, dt: float):
    def near(sl: slice) -> np.ndarray:
        d2 = ((pos[sl, None, :] - pos[None, :, :]) ** 2).sum(axis=-1)
        return (d2 <= radius * radius) & (np.abs(t[sl, None] - t[None, :]) <= dt)
    return near


def _rt_keep(pos: np.ndarray, t: np.ndarray, radius: float, dt: float) -> np.ndarray:
    """True for hits with at least one other hit within ``radius`` [m] and ``dt`` [ns]."""
    return _pairs_any(t.size, _rt_near(pos, t, radius, dt))


def local_coincidences(string: np.ndarray, om: np.ndarray, t: np.ndarray,
                       span: int = HLC_SPAN, dt: float = HLC_TIME) -> np.ndarray:
    """True for hits with another hit on the same string within ``span`` DOM positions and
    ``dt`` [ns] (IceCube's hard local coincidence, HLC): rare for dark noise."""
    def near(sl: slice) -> np.ndarray:
        return ((string[sl, None] == string[None, :])
                & (np.abs(om[sl, None] - om[None, :]) <= span)
                & (np.abs(t[sl, None] - t[None, :]) <= dt))
    return _pairs_any(t.size, near)


def seeded_rt(pos: np.ndarray, t: np.ndarray, seeds: np.ndarray, radius: float = RT_RADIUS,
              dt: float = RT_TIME) -> np.ndarray:
    """Mask of the hits RT-connected (chains of ``radius`` [m] and ``dt`` [ns] steps) to the
    ``seeds`` mask: pairs of noise hits far from the track are not connected to it."""
    kept = seeds.copy()
    frontier = np.flatnonzero(seeds)
    while frontier.size:
        rest = np.flatnonzero(~kept)
        if rest.size == 0:
            break
        d2 = ((pos[rest, None, :] - pos[None, frontier, :]) ** 2).sum(axis=-1)
        near = (d2 <= radius * radius) & (np.abs(t[rest, None] - t[None, frontier]) <= dt)
        frontier = rest[near.any(axis=1)]
        kept[frontier] = True
    return kept


def clean_hits(pos: np.ndarray, t: np.ndarray, radius: float = RT_RADIUS,
               dt: float = RT_TIME, window: float = TIME_WINDOW, iterations: int = 2,
               string: np.ndarray | None = None, om: np.ndarray | None = None
               ) -> np.ndarray:
    """Indices of first-pulse hits kept by RT cleaning and a sliding time window.

    With ``string`` and ``om``: seeded RT — start from the local-coincidence hits and keep
    every hit connected to them by RT steps (as IceCube's SeededRT). Without them, or when
    fewer than 4 hits are connected: classic RT, keep a hit if another kept hit lies within
    ``radius`` [m] and ``dt`` [ns], repeated ``iterations`` times. Window: the ``window``
    [ns] interval starting at a kept hit that contains the most kept hits (earliest on ties).
    """
    idx = np.arange(t.size)
    seeded = None
    if string is not None and om is not None and t.size:
        hlc = local_coincidences(np.asarray(string), np.asarray(om), t)
        if hlc.sum() >= 2:
            seeded = np.flatnonzero(seeded_rt(pos, t, hlc, radius, dt))
    if seeded is not None and seeded.size >= 4:
        idx = seeded
    else:
        for _ in range(iterations):
            if idx.size == 0:
                break
            idx = idx[_rt_keep(pos[idx], t[idx], radius, dt)]
    if idx.size == 0:
        return idx
    order = np.argsort(t[idx], kind="stable")
    idx = idx[order]
    ts = t[idx]
    ends = np.searchsorted(ts, ts + window, side="right")
    start = int(np.argmax(ends - np.arange(ts.size)))
    return np.sort(idx[start:ends[start]])


def line_fit(pos: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, float, float, float]:
    """LineFit first guess: least squares ``r_i ≈ r̄ + v (t_i - t̄)``.

    Returns (r̄ [m], t̄ [ns], zenith, azimuth [rad]) of the direction of origin (-v).
    """
    r_mean = pos.mean(axis=0)
    t_mean = float(t.mean())
    dt = t - t_mean
    denom = float(dt @ dt)
    v = (pos - r_mean).T @ dt / denom if denom > 0 else np.array([0.0, 0.0, -1.0])
    norm = float(np.linalg.norm(v))
    o = -v / norm if norm > 0 else np.array([0.0, 0.0, 1.0])
    zen = float(np.arccos(np.clip(o[2], -1.0, 1.0)))
    azi = float(np.mod(np.arctan2(o[1], o[0]), 2 * np.pi))
    return r_mean, t_mean, zen, azi


def prepare_track(event: Event, use_charge: bool, max_npe: int) -> PreparedTrack:
    """Cleaning, first pulses, charges and first guess for one event (see module doc)."""
    p = event.pulses
    if len(p) == 0:
        raise UserError("event has no pulses: nothing to reconstruct")
    key = p.string.astype(np.int64) * 10_000 + p.om.astype(np.int64)
    order = np.argsort(p.time, kind="stable")
    key_t, time_t, q_t = key[order], np.asarray(p.time, float)[order], \
        np.asarray(p.charge, float)[order]
    pos_t = np.asarray(p.pos, float)[order]
    _, first = np.unique(key_t, return_index=True)  # first pulse of each DOM
    f_pos, f_t, f_key = pos_t[first], time_t[first], key_t[first]
    keep = clean_hits(f_pos, f_t, string=f_key // 10_000, om=f_key % 10_000)
    if keep.size < 4:  # too little left to fit: use every first pulse
        keep = np.arange(f_t.size)
    pos, t, dom_key = f_pos[keep], f_t[keep], f_key[keep]
    # charge per DOM inside the kept time window
    t_lo, t_hi = float(t.min()), float(t.min()) + TIME_WINDOW
    in_win = (time_t >= t_lo) & (time_t <= t_hi)
    kpos = np.searchsorted(dom_key, key_t[in_win])
    kpos = np.clip(kpos, 0, dom_key.size - 1)
    ok = dom_key[kpos] == key_t[in_win]
    charge = np.zeros(dom_key.size)
    np.add.at(charge, kpos[ok], q_t[in_win][ok])
    charge = np.maximum(charge, 0.0)
    if use_charge:
        npe = np.clip(np.rint(charge), 1, max_npe).astype(np.int64)
    else:
        npe = np.ones(dom_key.size, dtype=np.int64)
    # DOMs with several photons first (MPE evaluates the survival only for them)
    srt = np.lexsort((dom_key, npe == 1))
    pos, t, npe, charge = pos[srt], t[srt], npe[srt], charge[srt]
    w = np.maximum(charge, 1e-3)
    cog = (pos * w[:, None]).sum(axis=0) / w.sum()
    r_lf, t_lf, zen_lf, azi_lf = line_fit(pos, t)
    seed_obj = event.best_seed
    ok_seed = seed_obj is not None and np.all(np.isfinite(
        [seed_obj.x, seed_obj.y, seed_obj.z, seed_obj.time, seed_obj.zenith,
         seed_obj.azimuth]))
    if ok_seed:
        seed = np.array([seed_obj.x, seed_obj.y, seed_obj.z, seed_obj.time], dtype=float)
        seed_dir = (float(seed_obj.zenith), float(seed_obj.azimuth))
        name = seed_obj.name
    else:
        seed = np.array([*r_lf, t_lf])
        seed_dir = (zen_lf, azi_lf)
        name = "LineFit"
    return PreparedTrack(pos=np.ascontiguousarray(pos), time=t, npe=npe,
                         n_multi=int((npe > 1).sum()), cog=cog, seed=seed, seed_dir=seed_dir,
                         seed_name=name, n_pulses_in=len(p), n_doms_in=int(f_t.size),
                         n_bright=int((np.rint(charge) >= 2).sum()))


def _bilinear32(rec: np.ndarray, idx: np.ndarray, wx: np.ndarray, wt: np.ndarray
                ) -> np.ndarray:
    """c0 + c_t w_t + c_ξ w_ξ + c_ξt w_ξ w_t from one gathered record per element."""
    return _bilinear_from(np.take(rec, idx, axis=0), wx, wt)


def _bilinear_from(c: np.ndarray, wx: np.ndarray, wt: np.ndarray) -> np.ndarray:
    """The bilinear form of gathered records ``c`` (..., 4) at weights (w_ξ, w_t)."""
    out = c[..., 3] * wx
    out += c[..., 1]
    out *= wt
    out += c[..., 0]
    out += c[..., 2] * wx
    return out


class TrackObjective:
    """−log L of (a [m], b [m], t0 [ns]) for P fixed track directions (vectorised).

    Precomputes per pixel and DOM the transverse coordinates (A, B) relative to ``r_ref`` and
    ``D = t_hit - t_ref - L/c`` so a trial costs only
    ``d = |(A-a, B-b)|, t_res = D - t0 - K d / c`` plus a table lookup.
    """

    def __init__(self, prep: PreparedTrack, u: np.ndarray, r_ref: np.ndarray,
                 t_ref: np.ndarray, sigma: float, log_noise: float, mpe: bool,
                 rho: float = PANDEL_RHO, kernel: str = "numpy") -> None:
        self.table = tb = get_table(sigma, rho)
        self._kernel = get_kernel() if kernel == "numba" else None
        e1, e2 = transverse_basis(u)
        self.u, self.e1, self.e2 = u, e1, e2
        self.r_ref, self.t_ref = r_ref, t_ref
        rel = prep.pos[None, :, :] - r_ref[:, None, :]  # (P, K, 3)
        along = np.einsum("pkj,pj->pk", rel, u)
        self.A = np.ascontiguousarray(np.einsum("pkj,pj->pk", rel, e1))
        self.B = np.ascontiguousarray(np.einsum("pkj,pj->pk", rel, e2))
        self.D = np.ascontiguousarray(prep.time[None, :] - t_ref[:, None] - along / C_VACUUM)
        self.log_noise = float(log_noise)
        self.mpe = bool(mpe) and prep.n_multi > 0
        self.n_multi = prep.n_multi if self.mpe else 0
        npe = prep.npe[: self.n_multi].astype(float)
        self.log_n = np.log(npe)
        self.n_minus_1 = npe - 1.0
        self.n_pix = u.shape[0]
        self._fold = tb.folded_logpdf(self.log_noise)
        if self._fold is not None:  # single-precision copies for the fast path
            self._rec32 = tb.records32(self.log_noise)
            self._A32, self._B32, self._D32 = (v.astype(np.float32)
                                               for v in (self.A, self.B, self.D))
            if self.n_multi:  # log p and log S records side by side: one gather for both
                self._pdfsf32 = np.ascontiguousarray(
                    np.concatenate([tb.records32(None), tb.records32("sf")], axis=1))
                self._log_n32 = self.log_n.astype(np.float32)
                self._nm1_32 = self.n_minus_1.astype(np.float32)
        # ξ-axis node coordinate (log(a1 d + a0) - log λ - log ξ_min)/h_x, taken in single
        # precision: its SIMD log is ~3x faster, and 1e-7 of a node step is far below the
        # table's own interpolation error
        self._fx_shift = np.float32(np.log(PANDEL_LAMBDA) + tb.lx0)
        self._fx_scale = np.float32(1.0 / tb.hx)
        self._fx_max = np.float32(tb.n_xi - 1) - np.float32(1e-3)
        self._ft_max = tb.n_t - 1.000001
        if self._kernel is not None:
            self._tab = np.array([
                tb.lx0, 1.0 / tb.hx, tb.n_xi, tb.t_lo, tb._inv_hf, tb._kink, tb.t_hi, tb.n_t,
                tb.t_max, tb.sigma, tb.rho, np.log(PANDEL_LAMBDA), EFF_A1, EFF_A0, _K_OVER_C,
                np.log(XI_MIN), np.log(XI_MAX)], dtype=float)

    def as_spe(self) -> TrackObjective:
        """The same pixels and reference points under SPE1st (MPE's pre-fit), sharing the
        per-pixel arrays instead of computing them again."""
        spe = copy.copy(self)
        spe.mpe, spe.n_multi = False, 0
        spe.log_n = spe.n_minus_1 = np.empty(0)
        return spe

    def vertex(self, params: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(x, y, z) [m] and t [ns] of the fitted point for params (P, 3)."""
        pos = self.r_ref + params[:, :1] * self.e1 + params[:, 1:2] * self.e2
        return pos, self.t_ref + params[:, 2]

    def _rows(self, arr: np.ndarray, rows: np.ndarray) -> np.ndarray:
        # all rows, in order (the only increasing n-subset of 0..n-1): no copy; rows may
        # repeat (two descents per pixel), hence the full check
        if (rows.size == self.n_pix and rows[0] == 0 and rows[-1] == self.n_pix - 1
                and bool((np.diff(rows) > 0).all())):
            return arr
        return arr[rows]

    def distance(self, a, b, rows):
        """(n, M, K) perpendicular distances [m] for offsets a, b of shape (n, M)."""
        dA = self._rows(self.A, rows)[:, None, :] - a[..., None]
        dB = self._rows(self.B, rows)[:, None, :] - b[..., None]
        return np.sqrt(dA * dA + dB * dB)

    def residuals(self, x: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        d = self.distance(x[..., 0], x[..., 1], rows)
        res = self._rows(self.D, rows)[:, None, :] - x[..., 2:3] - _K_OVER_C * d
        return res, d

    def _coords(self, res: np.ndarray, d: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Flat table index and bilinear weights (w_ξ, w_t) for residuals and distances."""
        tb = self.table
        deff = d * EFF_A1
        deff += EFF_A0  # a0 > 1 m, so max(a1 d + a0, 1 m) needs no clamp
        fx = deff.astype(np.float32)
        np.log(fx, out=fx)
        fx -= self._fx_shift
        fx *= self._fx_scale
        np.maximum(fx, 0.0, out=fx)  # ξ clipped to [XI_MIN, XI_MAX] as in the table
        np.minimum(fx, self._fx_max, out=fx)
        ix = fx.astype(np.intp)
        wx = fx - ix
        ft = res - tb.t_lo
        ft *= tb._inv_hf
        over = np.subtract(res, tb.t_hi, out=deff)
        np.maximum(over, 0.0, out=over)
        over *= tb._kink  # two uniform pieces: fine up to t_hi, coarse beyond
        ft -= over
        np.maximum(ft, 0.0, out=ft)
        np.minimum(ft, self._ft_max, out=ft)
        it = ft.astype(np.intp)
        ft -= it
        ix *= tb.n_t
        ix += it
        return ix, wx, ft

    def _folded32(self, x: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Fast path: log p_tot per DOM (n, M, K) in single precision (SIMD arithmetic, half
        the memory traffic; ~1e-6 relative per DOM, the caller sums in double), with the
        noise floor folded into the table; MPE's k multi-photon DOMs add the survival term
        and the noise floor explicitly."""
        tb = self.table
        f32 = np.float32
        x32 = x.astype(f32)
        dA = self._rows(self._A32, rows)[:, None, :] - x32[..., 0:1]
        dA *= dA
        dB = self._rows(self._B32, rows)[:, None, :] - x32[..., 1:2]
        dB *= dB
        dA += dB
        d = np.sqrt(dA, out=dA)
        res = self._rows(self._D32, rows)[:, None, :] - x32[..., 2:3]
        res -= np.multiply(d, f32(_K_OVER_C), out=dB)
        fx = np.multiply(d, f32(EFF_A1), out=dB)  # ξ node coordinate, as in _coords
        fx += f32(EFF_A0)
        np.log(fx, out=fx)
        fx -= self._fx_shift
        fx *= self._fx_scale
        np.maximum(fx, 0.0, out=fx)
        np.minimum(fx, self._fx_max, out=fx)
        node = np.floor(fx)
        fx -= node  # now the ξ weight
        idx = node.astype(np.intp)
        idx *= tb.n_t
        ft = res * f32(tb._inv_hf)  # t node coordinate
        ft += f32(-tb.t_lo * tb._inv_hf)
        over = np.subtract(res, f32(tb.t_hi), out=node)
        np.maximum(over, 0.0, out=over)
        over *= f32(tb._kink)
        ft -= over
        np.maximum(ft, 0.0, out=ft)
        np.minimum(ft, f32(tb.n_t - 1.001), out=ft)
        node = np.floor(ft, out=over)
        ft -= node  # now the t weight
        idx += node.astype(np.intp)
        k = self.n_multi
        out = _bilinear32(self._rec32, idx, fx, ft) if k == 0 else np.empty(res.shape, f32)
        if k:
            sl = np.s_[..., k:]
            out[sl] = _bilinear32(self._rec32, idx[sl], fx[sl], ft[sl])
            m = np.s_[..., :k]
            # below the table the edge value is kept: folding requires the noise floor to
            # exceed p_c there by e^20, so N p_c S^(N-1) (N <= 1000) stays below it by e^13
            c = np.take(self._pdfsf32, idx[m], axis=0)
            wx, wt = fx[m], ft[m]
            logp = _bilinear_from(c[..., :4], wx, wt)
            logs = _bilinear_from(c[..., 4:], wx, wt)
            logs *= self._nm1_32
            logp += logs
            logp += self._log_n32
            np.exp(logp, out=logp)  # log(p + p_noise): 6x faster than logaddexp in f32
            logp += f32(np.exp(self.log_noise))
            out[m] = np.log(logp, out=logp)
        if res.max() > tb.t_max:  # beyond the table (rare): exact, in double
            out = out.astype(float)
            self._beyond_table(res, d, out)
        return out

    def _beyond_table(self, res: np.ndarray, d: np.ndarray, out: np.ndarray) -> None:
        """Where the residual is beyond the table: exact log(p_Pandel + p_noise), with
        N S^(N-1) for MPE's multi-photon columns (in place)."""
        tb = self.table
        far = res > tb.t_max
        tf = res[far].astype(float)
        xi = np.clip((EFF_A1 * d[far].astype(float) + EFF_A0) / PANDEL_LAMBDA, XI_MIN, XI_MAX)
        lp = pandel_logpdf(tf, xi, tb.rho)
        col = np.nonzero(far)[-1]
        multi = col < self.n_multi
        if multi.any():
            kk = col[multi]
            lp[multi] += self.log_n[kk] + self.n_minus_1[kk] * plain_logsf(tf[multi], xi[multi],
                                                                           tb.rho)
        out[far] = np.logaddexp(lp, self.log_noise)

    def per_dom_logl(self, x: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """(n, M, K) log p_tot per DOM [log(1/ns)] (noise floor included)."""
        if self._fold is not None:
            return self._folded32(x, rows)
        # no or a tiny noise floor: raw table, Gaussian tail, logaddexp, in double
        k = self.n_multi
        tb = self.table
        res, d = self.residuals(x, rows)
        idx, wx, wt = self._coords(res, d)
        logp = tb._interp(tb._flat_pdf, idx, wx, wt)
        logs = tb._interp(tb._flat_sf, idx, wx, wt) if k else None
        # outside the table: the table's own tails, which take log ξ
        tb._tails(res, np.log(EFF_A1 * d + EFF_A0) - np.log(PANDEL_LAMBDA), logp, logs)
        if k:
            logp[..., :k] += self.log_n + self.n_minus_1 * logs[..., :k]
        return np.logaddexp(logp, self.log_noise)

    def __call__(self, x: np.ndarray, rows: np.ndarray) -> np.ndarray:
        if self._kernel is not None:
            x = np.ascontiguousarray(x, dtype=float)
            out = np.empty(x.shape[:2])
            return self._kernel(self.A, self.B, self.D, np.ascontiguousarray(rows, np.int64),
                                x, self.log_n, self.n_minus_1, self.n_multi,
                                self._fold is not None, self._fold if self._fold is not None
                                else self.table._flat_pdf, self.table._flat_pdf,
                                self.table._flat_sf, self._tab, self.log_noise, out)
        # chunks of rows keep the (n, M, K) temporaries cache-sized (2x faster than one pass);
        # rows are independent, so chunking does not change any value
        per_row = x.shape[1] * self.A.shape[1]
        step = max(1, _MAX_ELEMENTS // max(1, per_row))
        if rows.size <= step:
            return -self.per_dom_logl(x, rows).sum(axis=-1, dtype=float)
        return np.concatenate([
            -self.per_dom_logl(x[i:i + step], rows[i:i + step]).sum(axis=-1, dtype=float)
            for i in range(0, rows.size, step)])

    def quantile_t0(self, a: np.ndarray, b: np.ndarray, rows: np.ndarray,
                    q: float = 0.15) -> np.ndarray:
        """Robust start time: the q quantile of D - K d/c at offsets (a, b) (n, M) [ns]."""
        k = int(q * (self.D.shape[1] - 1))
        if rows.size == 0:
            return np.zeros(a.shape)
        step = max(1, _MAX_ELEMENTS // max(1, a.shape[1] * self.D.shape[1]))
        out = []
        for i in range(0, rows.size, step):
            sl = slice(i, i + step)
            d = self.distance(a[sl], b[sl], rows[sl])
            delta = self._rows(self.D, rows[sl])[:, None, :] - _K_OVER_C * d
            out.append(np.partition(delta, k, axis=-1)[..., k])
        return np.concatenate(out)


class TrackReco(Reco):
    """Base of the Pandel track fits; subclasses set ``use_charge`` and ``pointed``."""

    use_charge: bool = False
    pointed: bool = False
    #: first-round grid: start times relative to the 15 % quantile [ns]. The quantile is
    #: often late for dim events (scattered light only, or a noise hit among few DOMs); on
    #: 50 seeded 1 TeV events (0, -80, -240) gave the same failures and Wilks-90 % coverage
    #: as (0, -40, -80, -160, -320), and better coverage than (0, -40, -80) or (0, -150).
    _T0_SHIFTS: tuple[float, ...] = (0.0, -80.0, -240.0)
    preferred_batch = 128
    COMMON_OPTIONS: tuple[Option, ...] = (
        Option("jitter", float, JITTER, "Gaussian time jitter σ of the convoluted Pandel [ns]",
               min=0.5, max=50.0),
        Option("noise_prob", float, 1e-6,
               "noise floor added to the time PDF [1/ns] (0 = none)", min=0.0, max=1e-2),
        Option("variations", int, 1, "vertex starts per pixel, the best is kept (#0 the "
               "seed or parent fit, #1 the hit centre of gravity, #2.. a ring of offsets "
               "around the seed)", min=1, max=8),
        Option("variation_step", float, 20.0,
               "transverse offset of variations >= 2 from the seed [m]", min=0.0, max=500.0),
        Option("kernel", str, "numpy", "likelihood code: numpy, or numba (optional compiled "
               "kernel, same formulas; first use compiles for ~10 s)"),
        Option("iterations", int, 40, "Nelder-Mead iterations of the first-round fit "
               "(its restart and refined pixels use 1/2 and 1/4)", min=5, max=2000),
        Option("pull", str, "calibrated", "pull correction: -log L is divided by p^2; "
               "calibrated (p from the event's DOMs with >= 2 photons, fitted on simulated "
               "tracks), none (p = 1, the plain likelihood) or a number p"),
    )

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        kernel = str(self.options["kernel"]).strip().lower()
        if kernel not in ("numpy", "numba"):
            raise UserError(f"reco option kernel: {kernel!r} is not numpy or numba")
        if kernel == "numba" and get_kernel() is None:
            raise UserError("reco option kernel=numba: numba is not installed")
        self._kernel_choice = kernel
        # per-instance: the engine reads n_variations from the reco object
        self.n_variations = int(self.options["variations"])
        self._pull_setting = parse_pull(self.options["pull"])
        self.likelihood = self._likelihood_text()

    def _mpe_sigma(self) -> float:
        return float(np.hypot(self.options["jitter"], self.options["timing_error"]))

    def uses_mpe(self, prepared: PreparedTrack) -> bool:
        """Whether the fit is MPE: an event without multi-photon DOMs is fitted with SPE1st."""
        return self.use_charge and prepared.n_multi > 0

    def sigma(self, prepared: PreparedTrack) -> float:
        """Gaussian σ of the convoluted Pandel [ns]: the jitter, widened by the timing error
        when the fit is MPE."""
        return self._mpe_sigma() if self.uses_mpe(prepared) else float(self.options["jitter"])

    def pull(self, prepared: PreparedTrack) -> float:
        """The pull p of this event: the fit's −log L is divided by p² (:mod:`recos.track.pull`)."""
        kind = "MPE" if self.uses_mpe(prepared) else "SPE1st"
        return pull_for(self._pull_setting, kind, prepared.n_bright)

    def likelihood_for(self, prepared: PreparedTrack) -> str:
        return self._likelihood_text(self.uses_mpe(prepared), prepared)

    def _pull_text(self, prepared: PreparedTrack | None) -> str:
        if self._pull_setting is None:
            how = "calibrated on simulated tracks"
            if prepared is None:
                return f"; -log L / p^2, pull p {how} from the DOMs with >= 2 photons"
            return (f"; -log L / p^2, pull p={self.pull(prepared):.3g} {how} for "
                    f"{prepared.n_bright} DOMs with >= 2 photons")
        if self._pull_setting == 1.0:
            return "; no pull correction"
        return f"; -log L / p^2, pull p={self._pull_setting:g} (fixed)"

    def _likelihood_text(self, mpe: bool | None = None,
                         prepared: PreparedTrack | None = None) -> str:
        o = self.options
        mpe = self.use_charge if mpe is None else mpe
        head = ("MPE (first of N photons, N = round(charge) capped at "
                f"{o['max_npe']})" if mpe else "SPE1st (first pulse per DOM)")
        floor = (f"noise floor {o['noise_prob']:g}/ns" if o["noise_prob"] > 0
                 else "no noise floor")
        sigma = (f"sigma={self._mpe_sigma():.3g} ns: jitter {o['jitter']:g} ns + timing "
                 f"error {o['timing_error']:.3g} ns in quadrature"
                 if mpe and o["timing_error"] > 0 else f"sigma={o['jitter']:g} ns")
        return (f"{head}, Gauss-convoluted Pandel ({sigma}; tau=556.7 ns, "
                f"lambda=33.29 m, lambda_a=98 m, d_eff=0.8395 d+3.094 m), {floor}; "
                f"seeded-RT-cleaned hits{self._pull_text(prepared)}")

    # ------------------------------------------------------------ per event
    def prepare(self, event: Event) -> PreparedTrack:
        max_npe = int(self.options.get("max_npe", 1))
        return prepare_track(event, self.use_charge, max_npe)

    def seed_vertex(self, prepared: PreparedTrack) -> np.ndarray:
        return prepared.seed.copy()

    def pointed_region(self, prepared: PreparedTrack) -> PointedRegion | None:
        if not self.pointed:
            return None
        zen, azi = prepared.seed_dir
        return PointedRegion(zen, azi, float(np.deg2rad(self.options["radius_deg"])))

    # ------------------------------------------------------------ per pixel
    def objective(self, prepared: PreparedTrack, batch: TaskBatch
                  ) -> tuple[TrackObjective, np.ndarray]:
        """The batch's objective and start parameters (a, b, t0) per task (P, 3)."""
        u = track_direction(np.asarray(batch.zenith, float), np.asarray(batch.azimuth, float))
        u = np.atleast_2d(u)
        seed = np.array(batch.seed, dtype=float, copy=True).reshape(-1, 4)
        bad = ~np.isfinite(seed).all(axis=1)
        seed[bad] = prepared.seed
        # project the seed onto the plane ⟂ u through the centre of gravity (§4.1)
        shift = -np.einsum("pj,pj->p", seed[:, :3] - prepared.cog, u)
        r_ref = seed[:, :3] + shift[:, None] * u
        t_ref = seed[:, 3] + shift / C_VACUUM
        o = self.options
        log_noise = np.log(o["noise_prob"]) if o["noise_prob"] > 0 else -np.inf
        obj = TrackObjective(prepared, u, r_ref, t_ref, self.sigma(prepared), log_noise,
                             self.use_charge, kernel=self._kernel_choice)
        start = np.zeros((len(batch), 3))
        var = np.asarray(batch.variation)
        cog_rel = prepared.cog - r_ref
        is_cog = var == 1
        start[is_cog, 0] = np.einsum("pj,pj->p", cog_rel, obj.e1)[is_cog]
        start[is_cog, 1] = np.einsum("pj,pj->p", cog_rel, obj.e2)[is_cog]
        many = var >= 2
        if many.any():
            n_ring = max(1, self.n_variations - 2)
            ang = 2 * np.pi * (var[many] - 2) / n_ring
            start[many, 0] = o["variation_step"] * np.cos(ang)
            start[many, 1] = o["variation_step"] * np.sin(ang)
        return obj, start

    def fit_pixels(self, prepared: PreparedTrack, batch: TaskBatch) -> np.ndarray:
        n = len(batch)
        out = empty_results(n)
        out["nside"], out["ipix"], out["variation"] = batch.nside, batch.ipix, batch.variation
        if n == 0:
            return out
        obj, params, llh = self.fit_params(prepared, batch)
        pos, t = obj.vertex(params)
        ok = np.isfinite(llh)
        # the fit minimises the plain −log L; the pull only rescales the recorded surface
        out["llh"] = np.where(ok, llh / self.pull(prepared) ** 2, np.nan)
        out["x"], out["y"], out["z"] = pos.T
        out["t"] = t
        return out

    #: start-time shifts of the refined rounds' candidates [ns]
    _REFINE_T0_SHIFTS = np.array([0.0, -80.0, -160.0])

    def _refine_candidates(self, prepared: PreparedTrack, obj: TrackObjective,
                           start: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """(n, 10, 3) starts for refined pixels: ``start`` itself, and the offsets of the
        start, of the event seed and of the centre of gravity, each with the quantile start
        time and two earlier ones."""
        ab = [start[:, :2]]
        for point in (prepared.seed[:3], prepared.cog):
            rel = point - obj.r_ref
            ab.append(np.stack([np.einsum("pj,pj->p", rel, obj.e1),
                                np.einsum("pj,pj->p", rel, obj.e2)], axis=-1))
        abs_ = np.stack(ab, axis=1)  # (n, 3, 2)
        tq = obj.quantile_t0(abs_[..., 0], abs_[..., 1], rows)  # (n, 3)
        k = self._REFINE_T0_SHIFTS.size
        a = np.repeat(abs_[..., 0], k, axis=1)
        b = np.repeat(abs_[..., 1], k, axis=1)
        t = (tq[:, :, None] + self._REFINE_T0_SHIFTS).reshape(len(rows), -1)
        return np.concatenate([start[:, None, :], np.stack([a, b, t], axis=-1)], axis=1)

    def starts(self, prepared: PreparedTrack, obj: TrackObjective, start: np.ndarray,
               batch: TaskBatch, rows: np.ndarray
               ) -> tuple[np.ndarray, tuple[tuple[np.ndarray, int], ...]]:
        """Candidate starts (n, M, 3) of the batch's round (the best one starts the fit) and
        the Nelder–Mead passes (initial steps, iterations) that follow."""
        n_iter = int(self.options["iterations"])
        if int(batch.round) == 0:
            # 5×5 grid of transverse offsets around the start, times from the quantile
            g = np.arange(-60.0, 61.0, 30.0)
            ga, gb = np.meshgrid(g, g, indexing="ij")
            a = start[:, :1] + ga.ravel()[None, :]
            b = start[:, 1:2] + gb.ravel()[None, :]
            t0 = obj.quantile_t0(a, b, rows)
            shifts = self._T0_SHIFTS
            a = np.tile(a, (1, len(shifts)))
            b = np.tile(b, (1, len(shifts)))
            t0 = np.concatenate([t0 + s for s in shifts], axis=1)
            passes = ((np.array([15.0, 15.0, 20.0]), n_iter),
                      (np.array([5.0, 5.0, 5.0]), max(3, n_iter // 2)))
            return np.stack([a, b, t0], axis=-1), passes
        keep_time = np.asarray(batch.variation) == 0
        if not keep_time.all():
            t0 = obj.quantile_t0(start[:, :1], start[:, 1:2], rows)[:, 0]
            start[:, 2] = np.where(keep_time, 0.0, t0)
        # the parent's vertex is usually within metres of the child's optimum (small steps),
        # but for dim events it can lie in another valley at the child's direction: compare
        # it with a few cheap candidates first
        passes = ((np.array([5.0, 5.0, 5.0]), max(3, n_iter // 2)),
                  (np.array([2.0, 2.0, 2.0]), max(3, n_iter // 4)))
        return self._refine_candidates(prepared, obj, start, rows), passes

    def fit_params(self, prepared: PreparedTrack, batch: TaskBatch
                   ) -> tuple[TrackObjective, np.ndarray, np.ndarray]:
        """The objective, best (a, b, t0) per task (P, 3) and its −log L (P,)."""
        obj, start = self.objective(prepared, batch)
        rows = np.arange(len(batch))
        cand, passes = self.starts(prepared, obj, start, batch, rows)
        if obj.mpe:
            # as IceCube seeds MPEFit with SPEFit: the first-of-N surface is narrow and
            # rugged, the SPE one smooth, so the SPE optimum joins the candidate starts
            x_spe, _ = self._descend(obj.as_spe(), cand, passes[:1], rows)  # rough optimum
            cand = np.concatenate([cand, x_spe[:, None, :]], axis=1)
        x, f = self._descend(obj, cand, passes, rows)
        return obj, x, f

    @staticmethod
    def _descend(obj: TrackObjective, cand: np.ndarray, passes, rows: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
        """Nelder–Mead passes from two of the candidate starts (n, M, 3) (see
        :func:`descent_starts`), keeping the better end point."""
        n = rows.size
        local = np.arange(n)
        pick = descent_starts(cand, obj(cand, rows))
        x = cand[local[:, None], pick].reshape(2 * n, 3)
        pix = np.repeat(rows, 2)

        def objective(xs: np.ndarray, r: np.ndarray) -> np.ndarray:
            return obj(xs, pix[r])

        for step, iters in passes:
            # tolerances: 0.1 m at a ~500 m lever arm is 0.01°, far below a 0.11° nside-512
            # pixel; 1e-3 in −log L is far below the 0.7 of a Wilks-50 % contour
            x, f, _ = nelder_mead_batched(objective, x, step, iters, f_tol=1e-3,
                                          x_tol=np.array([0.1, 0.1, 0.1]))
        f = f.reshape(n, 2)  # NaN is already +inf (nelder_mead_batched)
        pick = np.argmin(f, axis=1)
        return x.reshape(n, 2, 3)[local, pick], f[local, pick]


#: the second descent starts from the best candidate at least this far in time from the best
#: one [ns]: an early noise hit can make a wrong start time look best before any descent
SECOND_START_DT = 50.0


def descent_starts(cand: np.ndarray, f: np.ndarray) -> np.ndarray:
    """(n, 2) indices into the candidates (n, M, 3) with values ``f`` (n, M): the best, and
    the best whose start time differs from it by SECOND_START_DT or more (else the
    runner-up). On 200 seeded 1 TeV tracks one descent from the best candidate missed the
    optimum at the true direction by 6 in −log L twice."""
    order = np.argsort(np.where(np.isnan(f), np.inf, f), axis=1, kind="stable")
    t_sorted = np.take_along_axis(cand[..., 2], order, axis=1)
    far = np.abs(t_sorted - t_sorted[:, :1]) >= SECOND_START_DT
    local = np.arange(order.shape[0])
    second = order[local, np.where(far.any(axis=1), np.argmax(far, axis=1),
                                   min(1, order.shape[1] - 1))]
    return np.stack([order[:, 0], second], axis=1)


def pointed_option() -> Option:
    return Option("radius_deg", float, 3.5, "first-round disc around the seed direction [deg]",
                  min=0.1, max=180.0)


#: MPE's default timing error [ns]: none. Measured (matched model, 200 tracks per energy,
#: seeds 1000…): σ = 8 ns (timing_error = √48) lifts MPE's Wilks-90 % coverage at 1 TeV from
#: 0.80 to 0.86 but makes 10 and 100 TeV conservative (0.93 at 10 TeV; 0.98 on the first 53
#: at 100 TeV, against 0.90 and 0.88 with 4 ns), so the default stays the jitter alone
MPE_TIMING_ERROR = 0.0


def mpe_options() -> tuple[Option, ...]:
    # max_npe: physics.md §2.5 suggests 50–100. On 50 matched-model 100 TeV events (jitter
    # 3 ns in simulation and reco) a cap of 50 left the surface too wide, Wilks-50 % coverage
    # 0.58 against 0.48 uncapped; cap 100 (4 ns both) gave 0.53, 0.47 on 200 events
    return (
        Option("max_npe", int, 100, "cap on the photon count N per DOM (MPE)", min=1,
               max=1000),
        Option("timing_error", float, MPE_TIMING_ERROR,
               "extra Gaussian time error of MPE's first-of-N PDF, added to jitter in "
               "quadrature, as IceCube's MPETimingError [ns]", min=0.0, max=50.0),
    )
