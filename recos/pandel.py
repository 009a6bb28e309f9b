"""Pandel photon arrival-time PDFs for muon tracks, in log space (physics.md §2).

Three layers:

* :func:`pandel_logpdf` — the plain Pandel function, a Gamma distribution of the time residual
  with shape ξ = d_eff/λ and rate ρ = 1/τ + c_g/λ_a [D. Pandel, Diploma thesis, HU Berlin
  (1996); J. Ahrens et al. (AMANDA), NIM A 524 (2004) 169, eqs. (8)–(10), "H2 bulk ice"
  constants τ = 556.7 ns, λ = 33.29 m, λ_a = 98 m as in IceCube ipdf / rdmc].
* :func:`convoluted_logpdf` — the Pandel function convolved with a Gaussian jitter of width σ
  [N. van Eijndhoven, O. Fadiran, G. Japaridze, Astropart. Phys. 28 (2007) 456,
  arXiv:0704.1706], in the closed form with the parabolic-cylinder function
  ``p_c = ρ^ξ σ^(ξ-1)/√(2π) · exp(-t²/2σ²) · exp(η²/4) · D_{-ξ}(η)``, η = ρσ - t/σ, evaluated
  in three numerically stable regions (saddle-point corrected plain Pandel for t ≥ 30σ, the
  large-η asymptote for η ≥ 30, ``scipy.special.pbdv`` otherwise). Exact but slow; used to
  build tables and in tests.
* :class:`PandelTable` — the fast path: per (σ, ρ) a 2-D table of log p_c and of the log
  survival log S_c = log(1 - P_c) on nodes in (log ξ, t), bilinearly interpolated. The t axis
  is fine and uniform on [-8σ, 30σ] (where the jitter matters) and coarser and uniform from
  30σ to ``T_MAX`` (where the plain Pandel with the saddle-point correction is exact
  enough); below the table the Gaussian tail continues analytically and beyond ``T_MAX`` the
  plain Pandel is evaluated directly, so every finite residual gives a finite value.

The noise floor (physics.md §2.4) is added by the likelihoods with ``logaddexp``.
"""

from __future__ import annotations

import hashlib
import io
import os
import zipfile
from functools import lru_cache
from pathlib import Path

import numpy as np

from recos.track.constants import (
    C_GROUP,
    EFF_A0,
    EFF_A1,
    PANDEL_LAMBDA,
    PANDEL_LAMBDA_A,
    PANDEL_RHO,
    PANDEL_TAU,
)

__all__ = ["PANDEL_RHO", "pandel_rho", "pandel_logpdf", "convoluted_logpdf",
           "plain_logsf", "PandelTable", "get_table", "effective_xi", "XI_MIN", "XI_MAX"]

XI_MIN, XI_MAX = 0.03, 60.0
T_MAX = 9.0e3  # [ns] end of the tabulated t range
_LOG_SQRT_2PI = 0.5 * np.log(2.0 * np.pi)


def pandel_rho(tau: float = PANDEL_TAU, lambda_a: float = PANDEL_LAMBDA_A) -> float:
    """Pandel rate ρ = 1/τ + c_g/λ_a [1/ns] for τ [ns] and absorption length λ_a [m]."""
    return 1.0 / tau + C_GROUP / lambda_a


def effective_xi(d: np.ndarray, lam: float = PANDEL_LAMBDA) -> np.ndarray:
    """Pandel shape ξ = max(a1 d + a0, 1 m)/λ for perpendicular distance d [m] (cos η = 0)."""
    return np.maximum(EFF_A1 * np.asarray(d, dtype=float) + EFF_A0, 1.0) / lam


def pandel_logpdf(t, xi, rho: float = PANDEL_RHO) -> np.ndarray:
    """log of the plain Pandel PDF [log(1/ns)]; -inf for t ≤ 0.

    ``log p = ξ log ρ + (ξ-1) log t - ρ t - lgamma(ξ)`` (Ahrens et al. 2004, eq. 8, in the
    Gamma form; normalised to 1 over t > 0 for every ξ).
    """
    from scipy.special import gammaln

    t, xi = np.broadcast_arrays(np.asarray(t, float), np.asarray(xi, float))
    out = np.full(t.shape, -np.inf)
    pos = t > 0
    tp, xp = t[pos], xi[pos]
    out[pos] = xp * np.log(rho) + (xp - 1.0) * np.log(tp) - rho * tp - gammaln(xp)
    return out


def plain_logsf(t, xi, rho: float = PANDEL_RHO) -> np.ndarray:
    """log of the plain Pandel survival function Q(ξ, ρt) (regularised upper incomplete Γ).

    Where ``gammaincc`` underflows, its asymptotic series
    ``Γ(ξ,x)/Γ(ξ) ≈ x^(ξ-1) e^(-x) (1 + (ξ-1)/x + (ξ-1)(ξ-2)/x²)/Γ(ξ)`` is used in log form.
    """
    from scipy.special import gammaincc, gammaln

    t, xi = np.broadcast_arrays(np.asarray(t, float), np.asarray(xi, float))
    x = rho * np.maximum(t, 0.0)
    with np.errstate(divide="ignore"):
        q = gammaincc(xi, x)
        out = np.log(q)
    small = q < 1e-250
    if small.any():
        xs, s = x[small], xi[small]
        series = 1.0 + (s - 1.0) / xs + (s - 1.0) * (s - 2.0) / xs**2
        out[small] = (s - 1.0) * np.log(xs) - xs + np.log(np.maximum(series, 1e-300)) \
            - gammaln(s)
    return out


def convoluted_logpdf(t, xi, sigma: float, rho: float = PANDEL_RHO) -> np.ndarray:
    """log of the Gauss-convoluted Pandel PDF [log(1/ns)], exact (physics.md §2.3).

    van Eijndhoven, Fadiran & Japaridze (2007) closed form via ``D_{-ξ}(η)``:
    ``log p_c = ξ log ρ + (ξ-1) log σ - ½ log 2π - t²/2σ² + η²/4 + log D_{-ξ}(η)``.
    Regions: t ≥ 30σ plain Pandel + second-order saddle-point jitter correction
    ``(σ²/2)[((ξ-1)/t - ρ)² - (ξ-1)/t²]``; η ≥ 30 the large-η asymptote
    ``D_{-ξ}(η) ≈ η^(-ξ) e^(-η²/4) (1 - ξ(ξ+1)/2η²)`` (where that correction is < 0.1;
    otherwise, for large ξ, Laplace's method on ``D_{-ξ}(η) = e^(-η²/4)/Γ(ξ) ∫ s^(ξ-1)
    e^(-s²/2-ηs) ds``, DLMF 12.5.1); otherwise ``scipy.special.pbdv``.
    """
    from scipy.special import gammaln, pbdv

    t, xi = np.broadcast_arrays(np.asarray(t, float), np.asarray(xi, float))
    shape = t.shape
    t, xi = t.ravel(), xi.ravel()
    out = np.empty(t.shape)
    eta = rho * sigma - t / sigma
    base = xi * np.log(rho) + (xi - 1.0) * np.log(sigma) - _LOG_SQRT_2PI - t**2 / (2 * sigma**2)
    hi = t >= 30.0 * sigma
    big_eta = (~hi) & (eta >= 30.0)
    mid = ~(hi | big_eta)
    if hi.any():
        th, xh = t[hi], xi[hi]
        corr = 0.5 * sigma**2 * (((xh - 1.0) / th - rho) ** 2 - (xh - 1.0) / th**2)
        out[hi] = (xh * np.log(rho) + (xh - 1.0) * np.log(th) - rho * th - gammaln(xh)
                   + corr)
    if big_eta.any():
        e, x = eta[big_eta], xi[big_eta]
        corr = x * (x + 1.0) / (2 * e**2)
        series = corr < 0.1
        logd = np.empty_like(e)  # log D_{-ξ}(η) + η²/4
        logd[series] = -x[series] * np.log(e[series]) + np.log1p(-corr[series])
        lap = ~series  # large ξ (≳ 13): Laplace's method on the integral representation
        if lap.any():  # D_{-ξ}(η) = e^{-η²/4}/Γ(ξ) ∫ s^(ξ-1) e^(-s²/2 - ηs) ds
            el, xl = e[lap], x[lap]
            s_ = 0.5 * (-el + np.sqrt(el**2 + 4.0 * (xl - 1.0)))
            curv = (xl - 1.0) / s_**2 + 1.0
            logd[lap] = ((xl - 1.0) * np.log(s_) - 0.5 * s_**2 - el * s_
                         + 0.5 * np.log(2 * np.pi / curv) - gammaln(xl))
        out[big_eta] = base[big_eta] + logd
    if mid.any():
        e, x = eta[mid], xi[mid]
        d = pbdv(-x, e)[0]
        with np.errstate(divide="ignore"):
            out[mid] = base[mid] + e**2 / 4.0 + np.log(d)
    return out.reshape(shape)


class PandelTable:
    """Tabulated log p_c and log S_c for one (σ, ρ), bilinear in (log ξ, t).

    The t axis has two uniform pieces: step ``h_fine`` on [-8σ, 30σ] (where the jitter
    shapes the PDF) and ``h_coarse`` on [30σ, ``t_max``] (where log p is smooth); two
    uniform pieces make the node index a few multiply-adds (no log, no branch) per pulse.

    Parameters
    ----------
    sigma : jitter width σ [ns]
    rho : Pandel rate ρ [1/ns]
    n_xi : nodes in log ξ on [XI_MIN, XI_MAX]
    n_fine : nodes on [-8σ, 30σ]
    h_coarse : node step beyond 30σ [ns]
    t_max : end of the table [ns]; beyond it the plain Pandel is evaluated directly
    """

    def __init__(self, sigma: float, rho: float = PANDEL_RHO, n_xi: int = 200,
                 n_fine: int = 480, h_coarse: float = 5.0, t_max: float = T_MAX) -> None:
        self.sigma, self.rho = float(sigma), float(rho)
        self.t_lo, self.t_hi = -8.0 * self.sigma, 30.0 * self.sigma
        self.lx0 = np.log(XI_MIN)
        self.hx = (np.log(XI_MAX) - self.lx0) / (n_xi - 1)
        self.n_xi = n_xi
        self.h_fine = (self.t_hi - self.t_lo) / (n_fine - 1)
        self.n_fine = n_fine
        self.h_coarse = float(h_coarse)
        n_coarse = max(1, int(np.ceil((max(t_max, 2 * self.t_hi) - self.t_hi) / h_coarse)))
        self.n_t = n_fine + n_coarse
        self.t_max = self.t_hi + n_coarse * self.h_coarse
        xi = np.exp(self.lx0 + self.hx * np.arange(n_xi))
        t_fine = self.t_lo + self.h_fine * np.arange(n_fine)
        t_coarse = self.t_hi + self.h_coarse * np.arange(1, n_coarse + 1)
        self.t_nodes = np.concatenate([t_fine, t_coarse])
        self.xi_nodes = xi
        cached = _load_cached(self._cache_key())
        if cached is not None and cached[0].shape == (n_xi, self.n_t) == cached[1].shape:
            logp, self.logsf_table = cached
        else:
            xx, tt = np.meshgrid(xi, self.t_nodes, indexing="ij")
            logp = convoluted_logpdf(tt, xx, self.sigma, self.rho)
            self.logsf_table = self._survival(logp, xi, t_fine)
            _save_cached(self._cache_key(), logp, self.logsf_table)
        self.logpdf_table = logp
        self._flat_pdf = np.ascontiguousarray(logp.ravel())
        self._flat_sf = np.ascontiguousarray(self.logsf_table.ravel())
        # node coordinate ft = (t - t_lo)/h_fine - max(t - t_hi, 0) (1/h_fine - 1/h_coarse)
        self._inv_hf = 1.0 / self.h_fine
        self._kink = 1.0 / self.h_fine - 1.0 / self.h_coarse
        self._folded: dict[float, np.ndarray] = {}
        self._records: dict = {}

    def _cache_key(self) -> str:
        spec = (_TABLE_VERSION, self.sigma, self.rho, self.n_xi, self.n_fine, self.h_coarse,
                self.n_t, float(XI_MIN), float(XI_MAX))
        return hashlib.sha256(repr(spec).encode()).hexdigest()[:24]

    def folded_logpdf(self, log_noise: float) -> np.ndarray | None:
        """Flat log(p_c + p_noise) on the nodes: the fits' fast path needs no ``logaddexp``
        per pulse. ``None`` unless the noise floor exceeds p_c at the table's lower edge by
        e^20 for every ξ: only then is "clamp to the edge" exact below the table (no
        Gaussian tail to add)."""
        if not np.isfinite(log_noise) or self.logpdf_table[:, 0].max() > log_noise - 20.0:
            return None
        key = float(log_noise)
        if key not in self._folded:
            self._folded[key] = np.logaddexp(self._flat_pdf, key)
        return self._folded[key]

    def bilinear_records(self, flat: np.ndarray) -> np.ndarray:
        """(n_xi·n_t, 4) coefficients (c0, c_t, c_ξ, c_ξt) of each cell's bilinear form
        ``c0 + c_t w_t + c_ξ w_ξ + c_ξt w_ξ w_t``: one gather of a record per pulse instead
        of four scattered ones (~1.6x faster lookups)."""
        f = flat.reshape(self.n_xi, self.n_t)
        rec = np.zeros((self.n_xi, self.n_t, 4))
        rec[..., 0] = f
        rec[:, :-1, 1] = f[:, 1:] - f[:, :-1]
        rec[:-1, :, 2] = f[1:] - f[:-1]
        rec[:-1, :-1, 3] = f[1:, 1:] - f[1:, :-1] - f[:-1, 1:] + f[:-1, :-1]
        return rec.reshape(-1, 4)

    def records32(self, which: float | str | None) -> np.ndarray:
        """Single-precision :meth:`bilinear_records` of the folded log p (``which`` = log
        noise), of the raw log p (``None``) or of log S (``"sf"``); cached."""
        key = ("r32", which)
        if key not in self._records:
            if which is None:
                flat = self._flat_pdf
            elif which == "sf":
                flat = self._flat_sf
            else:
                flat = self.folded_logpdf(float(which))
            self._records[key] = self.bilinear_records(flat).astype(np.float32)
        return self._records[key]

    def _survival(self, logp: np.ndarray, xi: np.ndarray, t_fine: np.ndarray) -> np.ndarray:
        """log S_c: cumulative trapezoid on the fine range rescaled to match the plain
        Pandel CDF at t_hi, plain-Pandel survival (gammaincc) beyond (physics.md §2.3)."""
        n_fine = t_fine.size
        p = np.exp(logp[:, :n_fine])
        cum = np.concatenate([np.zeros((xi.size, 1)),
                              np.cumsum(0.5 * (p[:, 1:] + p[:, :-1]) * self.h_fine, axis=1)],
                             axis=1)
        sf_hi = plain_logsf(self.t_hi, xi, self.rho)  # log Q(ξ, ρ t_hi)
        target = -np.expm1(sf_hi)  # P_c(t_hi) = 1 - Q
        cdf = cum * (target / np.maximum(cum[:, -1], 1e-300))[:, None]
        out = np.empty_like(logp)
        with np.errstate(divide="ignore"):
            out[:, :n_fine] = np.log1p(-np.minimum(cdf, 1.0))
        out[:, n_fine - 1] = sf_hi  # exactly continuous at t_hi
        tt = self.t_nodes[None, n_fine:]
        out[:, n_fine:] = plain_logsf(tt, xi[:, None], self.rho)
        return np.maximum(out, -1e4)

    # ----------------------------------------------------------------- fast lookup
    def _coords(self, t: np.ndarray, logxi: np.ndarray):
        fx = logxi - self.lx0
        fx *= 1.0 / self.hx
        np.clip(fx, 0.0, self.n_xi - 1.000001, out=fx)
        ix = fx.astype(np.intp)
        wx = fx - ix
        ft = t - self.t_lo
        ft *= self._inv_hf
        over = t - self.t_hi
        np.maximum(over, 0.0, out=over)
        over *= self._kink
        ft -= over
        np.clip(ft, 0.0, self.n_t - 1.000001, out=ft)
        it = ft.astype(np.intp)
        wt = ft - it
        ix *= self.n_t
        ix += it
        return ix, wx, wt

    def _interp(self, flat: np.ndarray, idx, wx, wt) -> np.ndarray:
        n_t = self.n_t
        v00 = flat[idx]
        v01 = flat[idx + 1]
        idx = idx + n_t
        v10 = flat[idx]
        v11 = flat[idx + 1]
        v01 -= v00
        v01 *= wt
        v00 += v01  # value at ξ_i
        v11 -= v10
        v11 *= wt
        v10 += v11  # value at ξ_i+1
        v10 -= v00
        v10 *= wx
        v00 += v10
        return v00

    def _tails(self, t: np.ndarray, logxi: np.ndarray, out: np.ndarray,
               sf: np.ndarray | None = None) -> None:
        """Below t_lo: Gaussian continuation of the edge value; above t_max: the plain
        Pandel log p and log Q(ξ, ρt) computed exactly for those (rare) residuals."""
        if t.size == 0:
            return
        if t.min() < self.t_lo:
            lo = np.minimum(t, self.t_lo)
            lo *= lo
            lo -= self.t_lo * self.t_lo
            lo *= 0.5 / self.sigma**2
            out -= lo
        if t.max() > self.t_max:
            far = t > self.t_max
            tf = t[far]
            xi = np.exp(np.clip(logxi[far], np.log(XI_MIN), np.log(XI_MAX)))
            out[far] = pandel_logpdf(tf, xi, self.rho)
            if sf is not None:
                sf[far] = plain_logsf(tf, xi, self.rho)

    def logpdf(self, t, logxi, logsf: bool = False):
        """Interpolated log p_c(t; ξ) [log(1/ns)] for residuals t [ns] and log ξ.

        Finite for every finite t: below -8σ the Gaussian tail ``-(t² - t_lo²)/2σ²`` is added
        to the edge value, above ``t_max`` the plain Pandel is evaluated directly. With
        ``logsf=True`` also returns log S_c(t; ξ) (edge value below the table, plain Pandel
        survival above).
        """
        t = np.asarray(t, dtype=float)
        logxi = np.asarray(logxi, dtype=float)
        idx, wx, wt = self._coords(t, logxi)
        out = self._interp(self._flat_pdf, idx, wx, wt)
        sf = self._interp(self._flat_sf, idx, wx, wt) if logsf else None
        self._tails(t, logxi, out, sf)
        return (out, sf) if logsf else out

    def logsf(self, t, logxi) -> np.ndarray:
        """Interpolated log survival log S_c(t; ξ) = log(1 - P_c(t; ξ))."""
        return self.logpdf(t, logxi, logsf=True)[1]


#: bump when the table's formulas change: cached tables of older versions are ignored
_TABLE_VERSION = 1


def _cache_dir() -> Path:
    """Where built tables are kept: ``$SKYSCAN_CACHE``, else the user cache directory."""
    env = os.environ.get("SKYSCAN_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "skyscan-tui"


def _load_cached(key: str) -> tuple[np.ndarray, np.ndarray] | None:
    """The cached (log p, log S) tables, or None if absent or unreadable (then rebuilt)."""
    path = _cache_dir() / f"pandel-{key}.npz"
    try:
        with np.load(path, allow_pickle=False) as z:
            logp, logs = z["logpdf"], z["logsf"]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None
    if logp.dtype != np.float64 or logs.dtype != np.float64 or np.isnan(logp).any() \
            or np.isnan(logs).any():
        return None
    return logp, logs


def _save_cached(key: str, logp: np.ndarray, logs: np.ndarray) -> None:
    """Keep a built table for the next process (~1 s saved per worker); best effort."""
    from skyscan_tui.fileio import atomic_write_bytes

    buf = io.BytesIO()
    np.savez(buf, logpdf=logp, logsf=logs)
    try:
        atomic_write_bytes(_cache_dir() / f"pandel-{key}.npz", buf.getvalue())
    except OSError:
        pass  # read-only home, full disk: the table is simply built again next time


@lru_cache(maxsize=8)
def get_table(sigma: float, rho: float = PANDEL_RHO) -> PandelTable:
    """The table for (σ, ρ), once per process: loaded from the user cache (~20 ms) or built
    (~1 s) and cached."""
    return PandelTable(float(sigma), float(rho))
