"""Optional compiled (numba) kernel of the track −log L (``--reco-opt kernel=numba``).

The numpy path is the default and the reference: measured end to end, numba's import and
cache loading per worker process cost more than the kernel saves on a default scan. The
kernel is kept for long scans and large events. :func:`get_kernel` returns ``None`` when
numba is not installed (or ``SKYSCAN_NO_NUMBA`` is set). The kernel fuses, per
(pixel, trial point), the loop over DOMs: distance, residual, bilinear lookup in the same
:class:`recos.track.table.PandelTable` arrays, the same analytic tails, MPE survival and noise
floor — the same formulas as the numpy path. They agree to ~1e-4 in −log L: numpy takes the
log of the ξ-axis node coordinate in single precision (fast SIMD), the kernel in double.
Beyond the table (t > t_max) the plain Pandel survival Q(ξ, ρt) uses the Legendre continued
fraction of Γ(ξ, x) (DLMF 8.9.2) for x > ξ + 1 and the power series of γ(ξ, x) (DLMF 8.7.1)
otherwise; numpy uses ``scipy.special.gammaincc``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import lru_cache
from typing import Any

__all__ = ["get_kernel"]


@lru_cache(maxsize=1)
def get_kernel() -> Callable[..., Any] | None:
    """The compiled −log L kernel [1] (built once per process), or None without numba."""
    if os.environ.get("SKYSCAN_NO_NUMBA"):
        return None
    try:
        import numba
    except ImportError:
        return None
    return _build(numba)


def _build(numba):  # noqa: C901 - one fused loop on purpose
    import math

    njit = numba.njit(cache=True, nogil=True, error_model="numpy")

    @njit
    def log_q(a, x):
        """log of the regularised upper incomplete gamma Q(a, x), a > 0, x > 0."""
        lg = math.lgamma(a)
        if x > a + 1.0:  # continued fraction (modified Lentz)
            tiny = 1e-300
            b = x + 1.0 - a
            c = 1.0 / tiny
            d = 1.0 / b
            h = d
            for i in range(1, 300):
                an = -i * (i - a)
                b += 2.0
                d = an * d + b
                if abs(d) < tiny:
                    d = tiny
                c = b + an / c
                if abs(c) < tiny:
                    c = tiny
                d = 1.0 / d
                delta = d * c
                h *= delta
                if abs(delta - 1.0) < 1e-15:
                    break
            return -x + a * math.log(x) - lg + math.log(h)
        # series for P(a, x), then log(1 - P)
        term = 1.0 / a
        total = term
        ap = a
        for _ in range(1000):
            ap += 1.0
            term *= x / ap
            total += term
            if abs(term) < abs(total) * 1e-16:
                break
        logp = -x + a * math.log(x) - lg + math.log(total)
        p = math.exp(logp)
        if p >= 1.0:
            return -745.0
        return math.log1p(-p)

    @njit
    def bilinear(flat, idx, nt, wx, wt):
        lo = flat[idx] + wt * (flat[idx + 1] - flat[idx])
        hi = flat[idx + nt] + wt * (flat[idx + nt + 1] - flat[idx + nt])
        return lo + wx * (hi - lo)

    @njit
    def plain_logpdf(lxi, res, lxi_min, lxi_max, rho, log_rho):
        """log plain Pandel beyond the table (ξ clipped as in the table); also returns ξ."""
        xi = math.exp(min(max(lxi, lxi_min), lxi_max))
        return (xi * log_rho + (xi - 1.0) * math.log(res) - rho * res - math.lgamma(xi)), xi

    @njit
    def add_noise(logp, log_noise):
        """logaddexp(logp, log_noise)."""
        diff = logp - log_noise
        if diff > 0.0:
            return logp + math.log1p(math.exp(-diff))
        return log_noise + math.log1p(math.exp(diff))

    @njit
    def kernel(A, B, D, rows, x, log_n, nm1, n_multi, folded, flat_fold, flat_pdf, flat_sf,
               tab, log_noise, out):
        # tab: lx0, inv_hx, n_xi, t_lo, inv_hf, kink, t_hi, n_t, t_max, sigma, rho,
        #      log_lambda, a1, a0, k_over_c, log_xi_min, log_xi_max
        lx0, inv_hx, n_xi = tab[0], tab[1], tab[2]
        t_lo, inv_hf, kink, t_hi, n_t, t_max = tab[3], tab[4], tab[5], tab[6], tab[7], tab[8]
        sigma, rho, log_lambda, a1, a0, k_over_c = tab[9], tab[10], tab[11], tab[12], \
            tab[13], tab[14]
        lxi_min, lxi_max = tab[15], tab[16]
        nt = int(n_t)
        fx_max = n_xi - 1.001
        ft_max = n_t - 1.000001
        log_rho = math.log(rho)
        half_inv_s2 = 0.5 / (sigma * sigma)
        noise_on = log_noise > -1e300
        n_k = A.shape[1]
        for i in range(x.shape[0]):
            r = rows[i]
            for m in range(x.shape[1]):
                a = x[i, m, 0]
                b = x[i, m, 1]
                t0 = x[i, m, 2]
                total = 0.0
                for k in range(n_k):
                    da = A[r, k] - a
                    db = B[r, k] - b
                    d = math.sqrt(da * da + db * db)
                    res = D[r, k] - t0 - k_over_c * d
                    lxi = math.log(a1 * d + a0) - log_lambda  # a0 > 1 m: no clamp needed
                    fx = (lxi - lx0) * inv_hx
                    if fx < 0.0:
                        fx = 0.0
                    elif fx > fx_max:
                        fx = fx_max
                    ix = int(fx)
                    wx = fx - ix
                    over = res - t_hi
                    if over < 0.0:
                        over = 0.0
                    ft = (res - t_lo) * inv_hf - over * kink
                    if ft < 0.0:
                        ft = 0.0
                    elif ft > ft_max:
                        ft = ft_max
                    it = int(ft)
                    wt = ft - it
                    idx = ix * nt + it
                    multi = k < n_multi
                    if folded and not multi:  # noise floor already in the table
                        if res > t_max:
                            logp = add_noise(plain_logpdf(lxi, res, lxi_min, lxi_max, rho,
                                                          log_rho)[0], log_noise)
                        else:
                            logp = bilinear(flat_fold, idx, nt, wx, wt)
                        total += logp
                        continue
                    logp = bilinear(flat_pdf, idx, nt, wx, wt)
                    logs = bilinear(flat_sf, idx, nt, wx, wt) if multi else 0.0
                    if res < t_lo:
                        logp -= (res * res - t_lo * t_lo) * half_inv_s2
                    elif res > t_max:
                        logp, xi = plain_logpdf(lxi, res, lxi_min, lxi_max, rho, log_rho)
                        if multi:
                            logs = log_q(xi, rho * res)
                    if multi:
                        logp += log_n[k] + nm1[k] * logs
                    total += add_noise(logp, log_noise) if noise_on else logp
                out[i, m] = -total
        return out

    return kernel
