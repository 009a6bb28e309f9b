"""Pandel photon arrival-time PDFs of muon tracks, exact, in log space [log(1/ns)].

Two of the three layers of the track likelihood (``docs/reconstructions.md``) live here, the
third in :mod:`recos.track.table`:

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
* :class:`recos.track.table.PandelTable` — the fast path: log p_c and the log survival
  log S_c = log(1 - P_c) tabulated per (σ, ρ) and bilinearly interpolated; its tails and
  its survival use :func:`pandel_logpdf` and :func:`plain_logsf`.

The noise floor is added by the likelihoods with ``logaddexp``
(:mod:`recos.track.objective`).
"""

from __future__ import annotations

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

__all__ = ["pandel_rho", "pandel_logpdf", "convoluted_logpdf", "plain_logsf", "effective_xi"]

_LOG_SQRT_2PI = 0.5 * np.log(2.0 * np.pi)


def pandel_rho(tau: float = PANDEL_TAU, lambda_a: float = PANDEL_LAMBDA_A) -> float:
    """Pandel rate ρ = 1/τ + c_g/λ_a [1/ns] for τ [ns] and absorption length λ_a [m].

    >>> round(pandel_rho(), 7)
    0.0040517
    """
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
    """log Q(ξ, ρt) [1] of the plain Pandel at residual ``t`` [ns], ``rho`` [1/ns].

    Q is the survival function, the regularised upper incomplete Γ.

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
    """log of the Gauss-convoluted Pandel PDF [log(1/ns)], exact.

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
