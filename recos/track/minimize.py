"""Batched lock-step Nelder–Mead minimiser of P independent objectives [units of x].

Minimises P independent functions of D parameters at once. The objective is called with
``fun(x, rows)`` where ``x`` has shape (n, M, D) — M trial points for each of the n pixels
``rows`` (indices into the P problems) — and returns (n, M) values. Every decision (ordering,
reflection / expansion / contraction / shrink, convergence) is taken per problem from that
problem's own values only, so a pixel follows the same trajectory whatever else is in its
batch: the skymap does not depend on how pixels are batched or which executor runs them.

Pure numpy; one iteration costs one batched call for the reflections, one for the
expansions/contractions of the problems that need them and, rarely, one for shrinks.
Standard coefficients (Nelder & Mead 1965; Lagarias et al., SIAM J. Optim. 9 (1998) 112):
reflection 1, expansion 2, contraction ½, shrink ½. How the track fit drives it:
``docs/reconstructions.md``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["nelder_mead_batched", "Objective"]

Objective = Callable[[np.ndarray, np.ndarray], np.ndarray]

_ALPHA, _GAMMA, _RHO, _SIGMA = 1.0, 2.0, 0.5, 0.5


def nelder_mead_batched(fun: Objective, x0: np.ndarray, step: np.ndarray, n_iter: int,
                        f_tol: float = 1e-7, x_tol: float | np.ndarray = 1e-3,
                        ) -> tuple[np.ndarray, np.ndarray, int]:
    """Minimise P problems in lock-step.

    Parameters
    ----------
    fun : objective ``fun(x (n, M, D), rows (n,)) -> (n, M)``; must treat rows independently
        and may return +inf for invalid points (NaN is treated as +inf).
    x0 : (P, D) start points.
    step : (D,) or (P, D) initial simplex steps (vertex i = x0 + step_i e_i).
    n_iter : iterations (every problem gets at most this many).
    f_tol, x_tol : a problem stops when its simplex spread in f is < f_tol and every
        coordinate spread is < x_tol (scalar or (D,)).

    Returns
    -------
    x_best (P, D), f_best (P,), number of objective points evaluated (all problems).
    """
    x0 = np.asarray(x0, dtype=float)
    n_prob, dim = x0.shape
    step = np.broadcast_to(np.asarray(step, dtype=float), (n_prob, dim))
    x_tol = np.broadcast_to(np.asarray(x_tol, dtype=float), (dim,))
    all_rows = np.arange(n_prob)

    def call(x: np.ndarray, rows: np.ndarray) -> np.ndarray:
        f = np.asarray(fun(x, rows), dtype=float)
        return np.where(np.isnan(f), np.inf, f)

    simplex = np.repeat(x0[:, None, :], dim + 1, axis=1)
    idx = np.arange(dim)
    simplex[:, idx + 1, idx] += step
    fvals = call(simplex, all_rows)
    n_evals = simplex.shape[0] * simplex.shape[1]
    active = np.ones(n_prob, dtype=bool)

    for _ in range(n_iter):
        rows = np.flatnonzero(active)
        if rows.size == 0:
            break
        s, f = simplex[rows], fvals[rows]
        order = np.argsort(f, axis=1, kind="stable")
        s = np.take_along_axis(s, order[:, :, None], axis=1)
        f = np.take_along_axis(f, order, axis=1)
        # convergence per problem (its own simplex only)
        spread_x = np.ptp(s, axis=1)
        done = (f[:, -1] - f[:, 0] <= f_tol) & (spread_x < x_tol).all(axis=1)
        if done.any():
            simplex[rows], fvals[rows] = s, f
            active[rows[done]] = False
            keep = ~done
            rows, s, f = rows[keep], s[keep], f[keep]
            if rows.size == 0:
                break
        centroid = s[:, :-1].mean(axis=1)
        worst = s[:, -1]
        xr = centroid + _ALPHA * (centroid - worst)
        fr = call(xr[:, None, :], rows)[:, 0]
        n_evals += rows.size
        f_best, f_second, f_worst = f[:, 0], f[:, -2], f[:, -1]

        expand = fr < f_best
        accept_r = (fr >= f_best) & (fr < f_second)
        outside = (fr >= f_second) & (fr < f_worst)
        inside = fr >= f_worst
        # second point: expansion, outside or inside contraction
        x2 = np.where(expand[:, None], centroid + _GAMMA * (xr - centroid),
                      np.where(outside[:, None], centroid + _RHO * (xr - centroid),
                               centroid + _RHO * (worst - centroid)))
        need2 = ~accept_r
        f2 = np.full(rows.size, np.inf)
        if need2.any():
            f2[need2] = call(x2[need2][:, None, :], rows[need2])[:, 0]
            n_evals += int(need2.sum())

        new_x = worst.copy()
        new_f = f_worst.copy()
        # expansion: take the better of xe and xr
        take_e = expand & (f2 < fr)
        take_r = accept_r | (expand & ~take_e)
        new_x[take_r], new_f[take_r] = xr[take_r], fr[take_r]
        new_x[take_e], new_f[take_e] = x2[take_e], f2[take_e]
        contr_ok = (outside & (f2 <= fr)) | (inside & (f2 < f_worst))
        new_x[contr_ok], new_f[contr_ok] = x2[contr_ok], f2[contr_ok]
        s[:, -1], f[:, -1] = new_x, new_f

        shrink = (outside | inside) & ~contr_ok
        if shrink.any():
            sb = s[shrink]
            sb[:, 1:] = sb[:, :1] + _SIGMA * (sb[:, 1:] - sb[:, :1])
            fs = call(sb[:, 1:], rows[shrink])
            n_evals += fs.size
            fb = f[shrink]
            fb[:, 1:] = fs
            s[shrink], f[shrink] = sb, fb
        simplex[rows], fvals[rows] = s, f

    best = np.argmin(fvals, axis=1)
    x_best = simplex[all_rows, best]
    f_best = fvals[all_rows, best]
    return x_best, f_best, n_evals
