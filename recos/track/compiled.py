"""The numba-compiled track −log L, its gradient and the minimisers (see ``kernels.py``).

Imported only through :func:`recos.track.kernels.get_kernels` (it needs numba). Every
function is at module level so numba's disk cache finds it again in the next process (a
function built inside another one is compiled anew in every process).
"""

from __future__ import annotations

import math

import numba
import numpy as np

njit = numba.njit(cache=True, nogil=True, error_model="numpy")

BFGS_F_TOL = 1e-4  # [1] −log L the polish's quadratic model may still gain at convergence
BFGS_X_TOL = 0.05  # [m, ns] the polish's largest step at convergence


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
    term = 1.0 / a  # series for P(a, x), then log(1 - P)
    total = term
    ap = a
    for _ in range(1000):
        ap += 1.0
        term *= x / ap
        total += term
        if abs(term) < abs(total) * 1e-16:
            break
    p = math.exp(-x + a * math.log(x) - lg + math.log(total))
    if p >= 1.0:
        return -745.0
    return math.log1p(-p)


@njit
def digamma(x):
    """ψ(x) for x > 0: recurrence up to x ≥ 6, then the asymptotic series."""
    acc = 0.0
    while x < 6.0:
        acc -= 1.0 / x
        x += 1.0
    inv = 1.0 / x
    inv2 = inv * inv
    return acc + math.log(x) - 0.5 * inv - inv2 * (1.0 / 12 - inv2 * (1.0 / 120
                                                                     - inv2 / 252))


@njit
def fast_log(x, out, scratch):
    """out = log(x) for x > 0 (normal numbers), to ~1e-11, in vectorisable loops.

    x = 2^e m with m in [√½, √2): log m = 2 atanh(t), t = (m - 1)/(m + 1), |t| < 0.172,
    by its series to t^11 (glibc's scalar log is ~3x slower here and does not vectorise)."""
    bits = x.view(np.int64)
    mant = scratch.view(np.int64)
    for k in range(x.shape[0]):
        mant[k] = (bits[k] & 0x000FFFFFFFFFFFFF) | 0x3FF0000000000000
        out[k] = np.float64((bits[k] >> 52) - 1023)
    for k in range(x.shape[0]):
        m = scratch[k]
        e = out[k]
        if m > 1.4142135623730951:
            m *= 0.5
            e += 1.0
        t = (m - 1.0) / (m + 1.0)
        t2 = t * t
        out[k] = e * 0.6931471805599453 + 2.0 * t * (
            1.0 + t2 * (1.0 / 3 + t2 * (0.2 + t2 * (1.0 / 7 + t2 * (1.0 / 9 + t2 / 11)))))


@njit
def exp_neg(x, out, scratch):
    """out = exp(x) for x <= 0 (0 below -700), to ~1e-15 relative, in vectorisable loops.

    x = n ln 2 + f with |f| <= ln2/2: e^f by its Taylor series to f^11, 2^n through the
    exponent bits (glibc's scalar exp does not vectorise)."""
    bits = scratch.view(np.int64)
    for k in range(x.shape[0]):
        xk = x[k] if x[k] > -700.0 else -700.0
        n = np.floor(xk * 1.4426950408889634 + 0.5)
        f = (xk - n * 0.6931471803691238) - n * 1.9082149292705877e-10
        out[k] = 1.0 + f * (1.0 + f * (0.5 + f * (1.0 / 6 + f * (1.0 / 24 + f * (
            1.0 / 120 + f * (1.0 / 720 + f * (1.0 / 5040 + f * (1.0 / 40320 + f * (
                1.0 / 362880 + f * (1.0 / 3628800 + f / 39916800))))))))))
        bits[k] = (np.int64(n) + 1023) << 52
    for k in range(x.shape[0]):
        out[k] = out[k] * scratch[k] if x[k] > -700.0 else 0.0


@njit
def cell(rec, idx, wx, wt, col=0):
    """Bilinear value and its derivatives by (w_ξ, w_t) from a cell record at column col."""
    c0 = np.float64(rec[idx, col])
    ct = np.float64(rec[idx, col + 1])
    cx = np.float64(rec[idx, col + 2])
    cxt = np.float64(rec[idx, col + 3])
    return c0 + ct * wt + (cx + cxt * wt) * wx, cx + cxt * wt, ct + cxt * wx


@njit
def dom_general(rs, ldeff, sh, idx, wx, wt, dfx, dft, multi, lnk, nm1k, folded, rec_p, rec_s,
                tab, want_grad):
    """(v, ∂v/∂rs, ∂v/∂log d_eff) of one DOM beyond the table, or without a folded noise floor.

    The cases :func:`point`'s vectorised pass leaves out: the exact Pandel tail, the Gaussian
    continuation below the table, MPE's survival term and an explicit noise floor. ``idx``,
    ``wx``, ``wt``, ``dfx``, ``dft``: the DOM's cell, weights and node-coordinate derivatives as
    :func:`point` computed them."""
    t_lo, t_max, sigma, rho = tab[1], tab[6], tab[7], tab[8]
    lxi_min, lxi_max, lx0, log_noise = tab[13], tab[14], tab[17], tab[18]
    noise_on = log_noise > -1e300
    if rs > t_max:  # beyond the table: exact plain Pandel (rare)
        log_rho = math.log(rho)
        lxi = ldeff - sh + lx0
        dxi = 1.0
        if lxi < lxi_min:
            lxi = lxi_min
            dxi = 0.0
        elif lxi > lxi_max:
            lxi = lxi_max
            dxi = 0.0
        xi = math.exp(lxi)
        v = xi * log_rho + (xi - 1.0) * math.log(rs) - rho * rs - math.lgamma(xi)
        v_r = (xi - 1.0) / rs - rho
        v_l = dxi * xi * (log_rho + math.log(rs) - digamma(xi))
        if multi:
            ls = log_q(xi, rho * rs)
            s_r = -math.exp(v - ls)
            s_l = 0.0
            if dxi > 0.0 and want_grad:
                h = 1e-5
                s_l = (log_q(math.exp(lxi + h), rho * rs)
                       - log_q(math.exp(lxi - h), rho * rs)) / (2.0 * h)
            v += lnk + nm1k * ls
            v_r += nm1k * s_r
            v_l += nm1k * s_l
    else:  # in the table, noise floor not folded into it
        v, v_x, v_t = cell(rec_p, idx, wx, wt)
        v_r = v_t * dft
        v_l = v_x * dfx
        if rs < t_lo:  # Gaussian continuation below the table
            v -= (rs * rs - t_lo * t_lo) * 0.5 / (sigma * sigma)
            v_r -= rs / (sigma * sigma)
        if multi:
            s, s_x, s_t = cell(rec_s, idx, wx, wt, 4)
            v += lnk + nm1k * s
            v_r += nm1k * s_t * dft
            v_l += nm1k * s_x * dfx
    if folded or noise_on:  # log(p + p_noise)
        tot = v + math.log1p(math.exp(log_noise - v)) if v > log_noise else \
            log_noise + math.log1p(math.exp(v - log_noise))
        w = math.exp(v - tot)
        return tot, v_r * w, v_l * w
    return v, v_r, v_l


@njit
def point(r, a, b, t0, grad, A, B, D, multi_n, log_n, nm1, folded, rec_v, rec_p, rec_s,
          layered, shift_k, scale_k, logsc_k, tab, want_grad, work, w_idx):
    """−log L at (a, b, t0) of pixel row r; its gradient into ``grad`` if asked.

    Branch-free loops over the DOMs (vectorised by LLVM) do the geometry, the table lookup
    and MPE's first-of-N term with a folded noise floor; DOMs beyond the table, or every DOM
    without a folded floor, are evaluated by ``dom_general``."""
    inv_hx, t_lo, inv_hf, kink, t_hi = tab[0], tab[1], tab[2], tab[3], tab[4]
    n_t, t_max, shift = int(tab[5]), tab[6], tab[9]
    a1, a0, k_over_c = tab[10], tab[11], tab[12]
    fx_max, ft_max = tab[15], tab[16]
    n_k = A.shape[1]
    w_d, w_res, w_deff, w_log = work[0], work[1], work[2], work[3]
    w_v, w_gr, w_gl = work[5], work[6], work[7]
    if layered:
        for k in range(n_k):
            da = A[r, k] - a
            db = B[r, k] - b
            d = math.sqrt(da * da + db * db)
            w_d[k] = d
            w_res[k] = (D[r, k] - t0 - k_over_c * d) * scale_k[r, k]  # r t
            w_deff[k] = a1 * d + a0  # a0 > 1 m: no clamp needed
    else:
        for k in range(n_k):
            da = A[r, k] - a
            db = B[r, k] - b
            d = math.sqrt(da * da + db * db)
            w_d[k] = d
            w_res[k] = D[r, k] - t0 - k_over_c * d
            w_deff[k] = a1 * d + a0
    fast_log(w_deff, w_log, work[4])
    rec = rec_v if folded else rec_p
    w_wx, w_wt, w_dx, w_dt = work[8], work[9], work[10], work[11]
    n_far = 0
    for k in range(n_k):  # node coordinates: vectorised
        sh = shift_k[r, k] if layered else shift
        fx = (w_log[k] - sh) * inv_hx
        fxc = fx if fx > 0.0 else 0.0
        fxc = fxc if fxc < fx_max else fx_max
        w_dx[k] = inv_hx if fxc == fx else 0.0
        ix = np.int64(fxc)
        w_wx[k] = fxc - ix
        rs = w_res[k]
        over = rs - t_hi
        ft = (rs - t_lo) * inv_hf - (over if over > 0.0 else 0.0) * kink
        ftc = ft if ft > 0.0 else 0.0
        ftc = ftc if ftc < ft_max else ft_max
        w_dt[k] = (inv_hf - kink if over > 0.0 else inv_hf) if ftc == ft else 0.0
        it = np.int64(ftc)
        w_wt[k] = ftc - it
        w_idx[k] = ix * n_t + it
        n_far += 1 if rs > t_max else 0
    # the cells: gathers (MPE's multi-photon DOMs read their own records below; without a
    # folded noise floor every DOM is evaluated by dom_general)
    for k in range(multi_n if folded else n_k, n_k):
        idx = w_idx[k]
        wx = w_wx[k]
        wt = w_wt[k]
        c0 = np.float64(rec[idx, 0])
        ct = np.float64(rec[idx, 1])
        cx = np.float64(rec[idx, 2])
        cxt = np.float64(rec[idx, 3])
        w_v[k] = c0 + ct * wt + (cx + cxt * wt) * wx
        w_gr[k] = (ct + cxt * wx) * w_dt[k]
        w_gl[k] = (cx + cxt * wt) * w_dx[k]
    if folded and multi_n > 0:  # MPE's first-of-N DOMs, vectorised: N p S^(N-1) + noise
        log_noise = tab[18]
        w_z, w_u = work[12], work[13]
        for k in range(multi_n):
            idx = w_idx[k]
            wx = w_wx[k]
            wt = w_wt[k]
            p0 = np.float64(rec_s[idx, 0])  # log p and log S side by side: one cache line
            pt = np.float64(rec_s[idx, 1])
            px = np.float64(rec_s[idx, 2])
            pxt = np.float64(rec_s[idx, 3])
            s0 = np.float64(rec_s[idx, 4])
            st = np.float64(rec_s[idx, 5])
            sx = np.float64(rec_s[idx, 6])
            sxt = np.float64(rec_s[idx, 7])
            m = nm1[k]
            v = (p0 + pt * wt + (px + pxt * wt) * wx + log_n[k]
                 + m * (s0 + st * wt + (sx + sxt * wt) * wx))
            w_v[k] = v
            w_gr[k] = (pt + pxt * wx + m * (st + sxt * wx)) * w_dt[k]
            w_gl[k] = (px + pxt * wt + m * (sx + sxt * wt)) * w_dx[k]
            w_z[k] = -abs(v - log_noise)
        w_l1p = work[15]
        exp_neg(w_z[:multi_n], w_u[:multi_n], work[14][:multi_n])
        for k in range(multi_n):
            w_z[k] = 1.0 + w_u[k]
        fast_log(w_z[:multi_n], w_l1p[:multi_n], work[4][:multi_n])
        for k in range(multi_n):  # log(e^v + e^noise) = max + log(1 + e^-|v - noise|)
            v = w_v[k]
            u = w_u[k]
            w = 1.0 / (1.0 + u) if v > log_noise else u / (1.0 + u)  # d tot / d v
            w_v[k] = (v if v > log_noise else log_noise) + w_l1p[k]
            w_gr[k] *= w
            w_gl[k] *= w
    if n_far > 0 or not folded:  # beyond the table, or no folded noise floor: per DOM
        for k in range(n_k):
            rs = w_res[k]
            if not folded or rs > t_max:
                sh = shift_k[r, k] if layered else shift
                w_v[k], w_gr[k], w_gl[k] = dom_general(
                    rs, w_log[k], sh, w_idx[k], w_wx[k], w_wt[k], w_dx[k], w_dt[k],
                    k < multi_n, log_n[k] if k < multi_n else 0.0,
                    nm1[k] if k < multi_n else 0.0, folded, rec_p, rec_s, tab, want_grad)
    total = 0.0
    if layered:
        for k in range(n_k):
            total += w_v[k] + logsc_k[r, k]
    else:
        for k in range(n_k):
            total += w_v[k]
    if want_grad:
        ga = 0.0
        gb = 0.0
        gt = 0.0
        for k in range(n_k):
            g_res = w_gr[k] * scale_k[r, k] if layered else w_gr[k]  # d v / d res
            g_d = w_gl[k] * a1 / w_deff[k] - k_over_c * g_res  # d v / d d
            d = w_d[k]
            inv_d = 1.0 / d if d > 1e-9 else 0.0
            ga -= g_d * (A[r, k] - a) * inv_d  # d d / d a = -(A - a) / d
            gb -= g_d * (B[r, k] - b) * inv_d
            gt -= g_res  # d res / d t0 = -1
        grad[0] = -ga
        grad[1] = -gb
        grad[2] = -gt
    return -total


@njit
def evaluate(rows, x, A, B, D, multi_n, log_n, nm1, folded, rec_v, rec_p, rec_s,
             layered, shift_k, scale_k, logsc_k, tab, f_out, g_out, want_grad):
    """−log L (n, M) and, if asked, its gradient (n, M, 3) at x (n, M, 3)."""
    g = np.zeros(3)
    work = np.empty((16, A.shape[1]))
    w_idx = np.empty(A.shape[1], np.int64)
    for i in range(x.shape[0]):
        r = rows[i]
        for m in range(x.shape[1]):
            f = point(r, x[i, m, 0], x[i, m, 1], x[i, m, 2], g, A, B, D, multi_n, log_n,
                      nm1, folded, rec_v, rec_p, rec_s, layered, shift_k, scale_k,
                      logsc_k, tab, want_grad, work, w_idx)
            f_out[i, m] = f if math.isfinite(f) else np.inf
            if want_grad:
                g_out[i, m, 0] = g[0]
                g_out[i, m, 1] = g[1]
                g_out[i, m, 2] = g[2]


@njit
def bfgs(r, x, step, max_iter, A, B, D, multi_n, log_n, nm1, folded, rec_v, rec_p,
         rec_s, layered, shift_k, scale_k, logsc_k, tab, work, w_idx):
    """BFGS from x (in place) with backtracking; returns (f, evaluations).

    The first step is steepest descent scaled so its largest component is ``step``'s;
    every trial step is capped at 4 ``step`` per coordinate (a trust box)."""
    g = np.zeros(3)
    gn = np.zeros(3)
    xn = np.zeros(3)
    p = np.zeros(3)
    hinv = np.zeros((3, 3))
    s = np.empty(3)
    y = np.empty(3)
    hy = np.empty(3)
    f = point(r, x[0], x[1], x[2], g, A, B, D, multi_n, log_n, nm1, folded, rec_v, rec_p,
              rec_s, layered, shift_k, scale_k, logsc_k, tab, True, work, w_idx)
    nev = 1
    if not math.isfinite(f):
        return np.inf, nev
    fresh = True
    stalls = 0
    for _ in range(max_iter):
        if fresh:  # steepest descent, largest component = the pass's step
            gmax = 0.0
            for j in range(3):
                gmax = max(gmax, abs(g[j]) * step[j])
            if gmax == 0.0:
                break
            for j in range(3):
                for i in range(3):
                    hinv[i, j] = 0.0
                hinv[j, j] = step[j] * step[j] / gmax
        slope = 0.0
        for i in range(3):
            p[i] = 0.0
            for j in range(3):
                p[i] -= hinv[i, j] * g[j]
            slope += p[i] * g[i]
        if slope >= 0.0:  # not a descent direction: restart from steepest descent
            if fresh:
                break
            fresh = True
            continue
        if not fresh and -slope < BFGS_F_TOL:  # the quadratic model's remaining decrease
            pmax = 0.0
            for j in range(3):
                pmax = max(pmax, abs(p[j]))
            if pmax < BFGS_X_TOL:
                break
        cap = 1.0
        for j in range(3):
            lim = 4.0 * step[j]
            if abs(p[j]) > lim:
                cap = min(cap, lim / abs(p[j]))
        alpha = cap
        accepted = False
        fn = np.inf
        for _ls in range(12):
            for j in range(3):
                xn[j] = x[j] + alpha * p[j]
            fn = point(r, xn[0], xn[1], xn[2], gn, A, B, D, multi_n, log_n, nm1, folded,
                       rec_v, rec_p, rec_s, layered, shift_k, scale_k, logsc_k, tab,
                       True, work, w_idx)
            nev += 1
            if fn <= f + 1e-4 * alpha * slope:
                accepted = True
                break
            alpha *= 0.5
        if not accepted:
            if fresh:
                break  # no decrease even along the gradient: at the minimum (or a kink)
            fresh = True
            continue
        # s = xn - x, y = gn - g; BFGS update of the inverse Hessian
        sy = 0.0
        yy = 0.0
        smax = 0.0
        for j in range(3):
            s[j] = xn[j] - x[j]
            y[j] = gn[j] - g[j]
            sy += s[j] * y[j]
            yy += y[j] * y[j]
            smax = max(smax, abs(s[j]))
        df = f - fn
        for j in range(3):
            x[j] = xn[j]
            g[j] = gn[j]
        f = fn
        if sy > 1e-12:
            if fresh:  # scale the first matrix (Nocedal & Wright eq. 6.20)
                for i in range(3):
                    for j in range(3):
                        hinv[i, j] = 0.0
                    hinv[i, i] = sy / yy
            rho_ = 1.0 / sy
            for i in range(3):
                hy[i] = 0.0
                for j in range(3):
                    hy[i] += hinv[i, j] * y[j]
            yhy = 0.0
            for i in range(3):
                yhy += y[i] * hy[i]
            for i in range(3):
                for j in range(3):
                    hinv[i, j] += (-rho_ * (hy[i] * s[j] + s[i] * hy[j])
                                   + (rho_ * rho_ * yhy + rho_) * s[i] * s[j])
            fresh = False
        else:
            fresh = True
        # converged: two steps in a row below BFGS_X_TOL that gained less than BFGS_F_TOL
        if smax < BFGS_X_TOL and df < BFGS_F_TOL:
            stalls += 1
            if stalls >= 2:
                break
        else:
            stalls = 0
    return f, nev


@njit
def nelder_mead(r, x, step, n_iter, f_tol, x_tol, A, B, D, multi_n, log_n, nm1, folded,
                rec_v, rec_p, rec_s, layered, shift_k, scale_k, logsc_k, tab, work,
                w_idx):
    """One problem of :func:`recos.track.minimize.nelder_mead_batched`, step for step.

    x (3,) is the start and receives the best vertex; returns (f, evaluations)."""
    g = np.zeros(3)
    sim = np.empty((4, 3))
    fv = np.empty(4)
    for v in range(4):
        for j in range(3):
            sim[v, j] = x[j]
        if v > 0:
            sim[v, v - 1] += step[v - 1]
        fv[v] = point(r, sim[v, 0], sim[v, 1], sim[v, 2], g, A, B, D, multi_n, log_n, nm1,
                      folded, rec_v, rec_p, rec_s, layered, shift_k, scale_k, logsc_k,
                      tab, False, work, w_idx)
        if not math.isfinite(fv[v]):
            fv[v] = np.inf
    nev = 4
    c = np.empty(3)
    xr = np.empty(3)
    x2 = np.empty(3)
    for _ in range(n_iter):
        for v in range(1, 4):  # stable insertion sort by f, as the batched argsort
            fk = fv[v]
            s0, s1, s2 = sim[v, 0], sim[v, 1], sim[v, 2]
            u = v - 1
            while u >= 0 and fv[u] > fk:
                fv[u + 1] = fv[u]
                sim[u + 1, 0] = sim[u, 0]
                sim[u + 1, 1] = sim[u, 1]
                sim[u + 1, 2] = sim[u, 2]
                u -= 1
            fv[u + 1] = fk
            sim[u + 1, 0] = s0
            sim[u + 1, 1] = s1
            sim[u + 1, 2] = s2
        done = fv[3] - fv[0] <= f_tol
        for j in range(3):
            lo = min(sim[0, j], min(sim[1, j], min(sim[2, j], sim[3, j])))
            hi = max(sim[0, j], max(sim[1, j], max(sim[2, j], sim[3, j])))
            if not hi - lo < x_tol[j]:
                done = False
        if done:
            break
        for j in range(3):
            c[j] = (sim[0, j] + sim[1, j] + sim[2, j]) / 3.0
            xr[j] = c[j] + 1.0 * (c[j] - sim[3, j])
        fr = point(r, xr[0], xr[1], xr[2], g, A, B, D, multi_n, log_n, nm1, folded,
                   rec_v, rec_p, rec_s, layered, shift_k, scale_k, logsc_k, tab, False,
                   work, w_idx)
        fr = fr if math.isfinite(fr) else np.inf
        nev += 1
        f_best, f_second, f_worst = fv[0], fv[2], fv[3]
        expand = fr < f_best
        accept_r = (fr >= f_best) and (fr < f_second)
        outside = (fr >= f_second) and (fr < f_worst)
        inside = fr >= f_worst
        for j in range(3):
            if expand:
                x2[j] = c[j] + 2.0 * (xr[j] - c[j])
            elif outside:
                x2[j] = c[j] + 0.5 * (xr[j] - c[j])
            else:
                x2[j] = c[j] + 0.5 * (sim[3, j] - c[j])
        f2 = np.inf
        if not accept_r:
            f2 = point(r, x2[0], x2[1], x2[2], g, A, B, D, multi_n, log_n, nm1, folded,
                       rec_v, rec_p, rec_s, layered, shift_k, scale_k, logsc_k, tab,
                       False, work, w_idx)
            f2 = f2 if math.isfinite(f2) else np.inf
            nev += 1
        take_e = expand and f2 < fr
        take_r = accept_r or (expand and not take_e)
        contr_ok = (outside and f2 <= fr) or (inside and f2 < f_worst)
        if take_r:
            for j in range(3):
                sim[3, j] = xr[j]
            fv[3] = fr
        if take_e or contr_ok:
            for j in range(3):
                sim[3, j] = x2[j]
            fv[3] = f2
        if (outside or inside) and not contr_ok:  # shrink towards the best vertex
            for v in range(1, 4):
                for j in range(3):
                    sim[v, j] = sim[0, j] + 0.5 * (sim[v, j] - sim[0, j])
                fv[v] = point(r, sim[v, 0], sim[v, 1], sim[v, 2], g, A, B, D, multi_n,
                              log_n, nm1, folded, rec_v, rec_p, rec_s, layered, shift_k,
                              scale_k, logsc_k, tab, False, work, w_idx)
                if not math.isfinite(fv[v]):
                    fv[v] = np.inf
            nev += 3
    best = np.argmin(fv)
    for j in range(3):
        x[j] = sim[best, j]
    return fv[best], nev


@njit
def minimise(rows, x0, A, B, D, multi_n, log_n, nm1, folded, rec_v, rec_p, rec_s,
             layered, shift_k, scale_k, logsc_k, tab, nm_steps, nm_iters, f_tol, x_tol,
             bfgs_step, max_iter, x_out, f_out, nev_out):
    """Per start i: Nelder–Mead passes, then BFGS from the best point.

    The passes have initial steps ``nm_steps[p]`` and ``nm_iters[p]`` iterations (none if
    empty); BFGS's first step is ``bfgs_step``."""
    x = np.zeros(3)
    work = np.empty((16, A.shape[1]))
    w_idx = np.empty(A.shape[1], np.int64)
    for i in range(x0.shape[0]):
        for j in range(3):
            x[j] = x0[i, j]
        f = np.inf
        nev = 0
        for ps in range(nm_steps.shape[0]):
            f, n = nelder_mead(rows[i], x, nm_steps[ps], nm_iters[ps], f_tol, x_tol, A, B,
                               D, multi_n, log_n, nm1, folded, rec_v, rec_p, rec_s,
                               layered, shift_k, scale_k, logsc_k, tab, work, w_idx)
            nev += n
        if max_iter > 0 and (nm_steps.shape[0] == 0 or math.isfinite(f)):
            f, n = bfgs(rows[i], x, bfgs_step, max_iter, A, B, D, multi_n, log_n, nm1,
                        folded, rec_v, rec_p, rec_s, layered, shift_k, scale_k, logsc_k,
                        tab, work, w_idx)
            nev += n
        for j in range(3):
            x_out[i, j] = x[j]
        f_out[i] = f
        nev_out[i] = nev
