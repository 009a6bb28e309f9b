"""The track fits' −log L of (a [m], b [m], t0 [ns]) at fixed directions, vectorised.

For a fixed direction u the free parameters are the transverse offsets (a, b) along
e1, e2 (:func:`recos.track.frame.transverse_basis`) from a reference point ``r_ref`` and a
time offset t0. Per DOM the time residual t_res = t_hit − t_geo (direct Cherenkov light from
the track) and the perpendicular distance d give log p from the tabulated Gauss-convoluted
Pandel (:mod:`recos.track.table`), with a noise floor; MPE's multi-photon DOMs use the
first-of-N PDF ``N p_c S_c^(N−1)``. Evaluated in numpy (single-precision fast path when the
noise floor can be folded into the table) or by the optional numba kernel
(:mod:`recos.track.kernels`). See ``docs/reconstructions.md``.

Layered ice (``layers``): per pixel and DOM a Pandel λ_k and rate ρ_k (from λ_a,k, τ kept;
:mod:`recos.track.ice`). λ_k enters the ξ axis exactly (ξ = d_eff/λ_k). ρ_k enters by
scaling the time axis of the bulk table: with r = ρ_k/ρ, ``p(t; ξ, ρ_k) = r p(r t; ξ, ρ)``,
exact for the Pandel part; the jitter is scaled with it (σ/r instead of σ), which matters
only within a few ns of the direct time. So one table (σ, ρ) serves every DOM and no new
table is built. The noise floor scales with the DOM's time axis too (r p_noise), so the
folded fast path stays exact and costs as little as bulk ice; with a uniform ice table every
r is 1 and the layered −log L is the bulk one.
"""

from __future__ import annotations

import copy

import numpy as np

from recos.track.constants import C_VACUUM, EFF_A0, EFF_A1, K_OVER_C, PANDEL_LAMBDA, PANDEL_RHO
from recos.track.frame import transverse_basis
from recos.track.kernels import TAB_FIELDS, get_kernels
from recos.track.pandel import pandel_logpdf, plain_logsf
from recos.track.prepare import PreparedTrack
from recos.track.table import XI_MAX, XI_MIN, get_table

__all__ = ["TrackObjective"]

_MAX_ELEMENTS = 65536  # (pixel, trial, DOM) elements per numpy pass: ~0.5 MB arrays stay in L2


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
                 rho: float = PANDEL_RHO, kernel: str = "numpy",
                 layers: tuple[np.ndarray, np.ndarray] | None = None,
                 npe_exponent: float = 1.0) -> None:
        self.table = tb = get_table(sigma, rho)
        self._kernels = get_kernels() if kernel == "compiled" else None
        if kernel == "compiled" and self._kernels is None:
            raise ValueError("the compiled kernel needs numba")
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
        # MPE charge exponent m (IceCube's EnergyDependentMPE): N^m photons instead of N;
        # m = 1 leaves N exactly as it is
        npe = prep.npe[: self.n_multi].astype(float)
        if npe_exponent != 1.0:
            npe = npe ** float(npe_exponent)
        self.log_n = np.log(npe)
        self.n_minus_1 = npe - 1.0
        self.n_pix = u.shape[0]
        self._fold = tb.folded_logpdf(self.log_noise)
        if self._fold is not None:  # single-precision copies for the fast path
            self._rec32 = tb.records32(self.log_noise)
            self._A32, self._B32, self._D32 = (v.astype(np.float32)
                                               for v in (self.A, self.B, self.D))
            if self.n_multi:  # log p and log S records side by side: one gather for both
                self._pdfsf32 = tb.records32("pdf+sf")
                self._log_n32 = self.log_n.astype(np.float32)
                self._nm1_32 = self.n_minus_1.astype(np.float32)
        # ξ-axis node coordinate (log(a1 d + a0) - log λ - log ξ_min)/h_x, taken in single
        # precision: its SIMD log is ~3x faster, and 1e-7 of a node step is far below the
        # table's own interpolation error
        self._fx_shift = np.float32(np.log(PANDEL_LAMBDA) + tb.lx0)
        self._fx_scale = np.float32(1.0 / tb.hx)
        self._fx_max = np.float32(tb.n_xi - 1) - np.float32(1e-3)
        self._ft_max = tb.n_t - 1.000001
        self.layered = layers is not None
        if layers is not None:
            lam, rate = (np.ascontiguousarray(np.broadcast_to(v, self.A.shape), dtype=float)
                         for v in layers)
            self.lam = lam  # (P, K) Pandel λ [m]
            self.scale = rate / tb.rho  # (P, K) r = ρ_k / ρ
            self.log_scale = np.log(self.scale)
            self._shift_k = np.log(lam) + tb.lx0  # ξ-axis shift per DOM, as _fx_shift
            self._shift32 = self._shift_k.astype(np.float32)
            self._scale32 = self.scale.astype(np.float32)
            self._logs32 = self.log_scale.astype(np.float32)
        if self._kernels is not None:
            self._model = self._compiled_model()

    def as_spe(self) -> TrackObjective:
        """The same pixels and reference points under SPE1st (MPE's pre-fit).

        It shares the per-pixel arrays instead of computing them again."""
        spe = copy.copy(self)
        spe.mpe, spe.n_multi = False, 0
        spe.log_n = spe.n_minus_1 = np.empty(0)
        if spe._kernels is not None:
            spe._model = spe._compiled_model()
        return spe

    @property
    def compiled(self) -> bool:
        """Whether −log L, its gradient and the descents run in the compiled kernels."""
        return self._kernels is not None

    def _compiled_model(self) -> tuple:
        """The arguments the compiled kernels take after the points (see kernels.py)."""
        tb = self.table
        folded = self._fold is not None
        rec_p = tb.records32(None)
        rec_v = tb.records32(self.log_noise) if folded else rec_p
        # MPE: the records of log p and log S side by side (N, 8), one cache line per cell
        rec_s = tb.records32("pdf+sf") if self.n_multi else rec_p
        if self.layered:
            layers = (np.ascontiguousarray(self._shift_k), np.ascontiguousarray(self.scale),
                      np.ascontiguousarray(self.log_scale))
        else:
            layers = (np.zeros((1, 1)),) * 3
        tab = dict(inv_hx=1.0 / tb.hx, t_lo=tb.t_lo, inv_hf=tb._inv_hf, kink=tb._kink,
                   t_hi=tb.t_hi, n_t=tb.n_t, t_max=tb.t_max, sigma=tb.sigma, rho=tb.rho,
                   shift=np.log(PANDEL_LAMBDA) + tb.lx0, a1=EFF_A1, a0=EFF_A0,
                   k_over_c=K_OVER_C, lxi_min=np.log(XI_MIN), lxi_max=np.log(XI_MAX),
                   fx_max=tb.n_xi - 1.001, ft_max=tb.n_t - 1.001, lx0=tb.lx0,
                   log_noise=self.log_noise if np.isfinite(self.log_noise) else -1e308)
        return (self.A, self.B, self.D, int(self.n_multi),
                np.ascontiguousarray(self.log_n, dtype=float),
                np.ascontiguousarray(self.n_minus_1, dtype=float), folded, rec_v, rec_p,
                rec_s, self.layered, *layers, np.array([tab[k] for k in TAB_FIELDS]))

    def value_and_grad(self, x: np.ndarray, rows: np.ndarray, want_grad: bool = True
                       ) -> tuple[np.ndarray, np.ndarray | None]:
        """−log L (n, M) [1] and its gradient (n, M, 3) [1/m, 1/m, 1/ns] (compiled kernel).

        The gradient is None when not ``want_grad``."""
        x = np.ascontiguousarray(x, dtype=float)
        f = np.empty(x.shape[:2])
        g = np.empty(x.shape if want_grad else (1, 1, 3))
        self._kernels.evaluate(np.ascontiguousarray(rows, np.int64), x, *self._model, f, g,
                               want_grad)
        return f, g if want_grad else None

    def minimise(self, x0: np.ndarray, rows: np.ndarray,
                 passes: tuple[tuple[np.ndarray, int], ...], f_tol: float,
                 x_tol: np.ndarray, polish_iter: int, polish_step: np.ndarray | None = None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Nelder–Mead passes, then a BFGS polish, from starts x0 (n, 3) of pixels ``rows``.

        The compiled kernel runs, per start, the same Nelder–Mead passes as
        :func:`recos.track.minimize.nelder_mead_batched` (``passes``: (initial steps
        (a [m], b [m], t0 [ns]), iterations) each; tolerances ``f_tol``, ``x_tol``) and then
        BFGS on the analytic gradient (at most ``polish_iter`` iterations, first step
        ``polish_step``, else the last pass's), which only ever lowers −log L. Returns the end points (n, 3), −log L (n,)
        and the evaluations per start (n,)."""
        x0 = np.ascontiguousarray(x0, dtype=float)
        x = np.empty_like(x0)
        f = np.empty(x0.shape[0])
        nev = np.empty(x0.shape[0], np.int64)
        steps = np.array([step for step, _ in passes], dtype=float).reshape(-1, 3)
        iters = np.array([it for _, it in passes], dtype=np.int64)
        polish = (np.asarray(polish_step, dtype=float) if polish_step is not None
                  else steps[-1] if len(steps) else np.array([5.0, 5.0, 5.0]))
        self._kernels.minimise(np.ascontiguousarray(rows, np.int64), x0, *self._model, steps,
                               iters, float(f_tol), np.asarray(x_tol, dtype=float), polish,
                               int(polish_iter), x, f, nev)
        return x, f, nev

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

    def distance(self, a: np.ndarray, b: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Perpendicular distances (n, M, K) [m] for offsets a, b [m] of shape (n, M)."""
        dA = self._rows(self.A, rows)[:, None, :] - a[..., None]
        dB = self._rows(self.B, rows)[:, None, :] - b[..., None]
        return np.sqrt(dA * dA + dB * dB)

    def residuals(self, x: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Time residuals [ns] and perpendicular distances [m] (n, M, K), double precision.

        At params x (n, M, 3) of pixels ``rows``."""
        d = self.distance(x[..., 0], x[..., 1], rows)
        res = self._rows(self.D, rows)[:, None, :] - x[..., 2:3] - K_OVER_C * d
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
        """Fast path: log p_tot per DOM (n, M, K) [1] in single precision.

        SIMD arithmetic and half the memory traffic; ~1e-6 relative per DOM, the caller sums in
        double. The noise floor is folded into the table; MPE's k multi-photon DOMs add the
        survival term and the noise floor explicitly. Layered ice: per-DOM time scale r and ξ
        shift, and log r added at the end."""
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
        res -= np.multiply(d, f32(K_OVER_C), out=dB)
        if self.layered:
            res *= self._rows(self._scale32, rows)[:, None, :]  # r t
        fx = np.multiply(d, f32(EFF_A1), out=dB)  # ξ node coordinate, as in _coords
        fx += f32(EFF_A0)
        np.log(fx, out=fx)
        fx -= self._rows(self._shift32, rows)[:, None, :] if self.layered else self._fx_shift
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
            self._beyond_table(res, d, out,
                               self._rows(self.lam, rows)[:, None, :] if self.layered else None)
        if self.layered:
            out += self._rows(self._logs32, rows)[:, None, :]
        return out

    def _beyond_table(self, res: np.ndarray, d: np.ndarray, out: np.ndarray,
                      lam: np.ndarray | None = None) -> None:
        """Exact log(p_Pandel + p_noise) where the residual is beyond the table (in place).

        With N S^(N-1) for MPE's multi-photon columns. Layered ice: ``res`` is the scaled
        residual r t and ``lam`` (broadcastable to ``res``) the DOMs' λ."""
        tb = self.table
        far = res > tb.t_max
        tf = res[far].astype(float)
        lam_far = PANDEL_LAMBDA if lam is None else np.broadcast_to(lam, res.shape)[far]
        xi = np.clip((EFF_A1 * d[far].astype(float) + EFF_A0) / lam_far, XI_MIN, XI_MAX)
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
        if self.layered:
            return self._layered_logl(x, rows)
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

    def _layered_logl(self, x: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Layered ice: the fast path, or in double precision.

        Double precision (raw table, tails, per-DOM ξ shift and time scale) when the noise floor
        is too low to keep the edge value."""
        if self._fold is not None:
            return self._folded32(x, rows)
        k = self.n_multi
        tb = self.table
        res, d = self.residuals(x, rows)
        res *= self._rows(self.scale, rows)[:, None, :]
        logxi = np.log(EFF_A1 * d + EFF_A0) - np.log(self._rows(self.lam, rows))[:, None, :]
        fx = (logxi - tb.lx0) / tb.hx
        np.clip(fx, 0.0, tb.n_xi - 1.000001, out=fx)
        ix = fx.astype(np.intp)
        wx = fx - ix
        ft = (res - tb.t_lo) * tb._inv_hf - np.maximum(res - tb.t_hi, 0.0) * tb._kink
        np.clip(ft, 0.0, self._ft_max, out=ft)
        it = ft.astype(np.intp)
        idx = ix * tb.n_t + it
        wt = ft - it
        logp = tb._interp(tb._flat_pdf, idx, wx, wt)
        logs = tb._interp(tb._flat_sf, idx, wx, wt) if k else None
        tb._tails(res, logxi, logp, logs)
        if k:
            logp[..., :k] += self.log_n + self.n_minus_1 * logs[..., :k]
        return np.logaddexp(logp, self.log_noise) + self._rows(self.log_scale, rows)[:, None, :]

    def __call__(self, x: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """−log L [1] (n, M) at params (a, b, t0) x (n, M, 3) of pixels ``rows`` (n,)."""
        if self._kernels is not None:
            return self.value_and_grad(x, rows, want_grad=False)[0]
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
            delta = self._rows(self.D, rows[sl])[:, None, :] - K_OVER_C * d
            out.append(np.partition(delta, k, axis=-1)[..., k])
        return np.concatenate(out)
