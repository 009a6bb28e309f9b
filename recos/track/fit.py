"""The track fits' driver: from candidate starts to each pixel's best (a, b, t0) and −log L.

Per pixel two descents start from the candidates (:func:`recos.track.starts.descent_starts`)
and run the round's Nelder–Mead passes (:mod:`recos.track.minimize`, batched over pixels in
lock step); the better end point is kept. An MPE fit first runs the first pass on the SPE1st
objective of the same pixels and adds that rough optimum to its candidates, as IceCube seeds
MPEFit with SPEFit. See ``docs/reconstructions.md``.
"""

from __future__ import annotations

import numpy as np

from recos.track.minimize import nelder_mead_batched
from recos.track.objective import TrackObjective
from recos.track.starts import Passes, descent_starts

__all__ = ["descend", "fit_candidates"]

#: a descent stops when its simplex spans less than this in each of (a [m], b [m], t0 [ns])
#: (and F_TOL in −log L): 0.1 m at a ~500 m lever arm is 0.01°, far below a 0.11° nside-512
#: pixel
X_TOL = np.array([0.1, 0.1, 0.1])
#: 1e-3 in −log L is far below the 0.7 of a Wilks-50 % contour
F_TOL = 1e-3
#: iterations cap of each compiled BFGS pass (they converge in ~10-20)
BFGS_MAX_ITER = 100


def descend(obj: TrackObjective, cand: np.ndarray, passes: Passes, rows: np.ndarray,
            polish: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Best (a [m], b [m], t0 [ns]) (n, 3) and its −log L (n,) of pixels ``rows``.

    Nelder–Mead passes from two of the candidate starts (n, M, 3) (see
    :func:`recos.track.starts.descent_starts`), keeping the better end point.
    """
    n = rows.size
    local = np.arange(n)
    pick = descent_starts(cand, obj(cand, rows))
    x = cand[local[:, None], pick].reshape(2 * n, 3)
    pix = np.repeat(rows, 2)
    if obj.compiled:  # the same passes, compiled; then a BFGS polish of the better end
        x, f, _ = obj.minimise(x, pix, passes, F_TOL, X_TOL, 0)
        f = f.reshape(n, 2)
        pick = np.argmin(f, axis=1)
        x, f = x.reshape(n, 2, 3)[local, pick], f[local, pick]
        if polish:
            x, f, _ = obj.minimise(x, rows, (), F_TOL, X_TOL, BFGS_MAX_ITER,
                                   polish_step=passes[-1][0])
        return x, f

    def objective(xs: np.ndarray, r: np.ndarray) -> np.ndarray:
        return obj(xs, pix[r])

    for step, iters in passes:
        x, f, _ = nelder_mead_batched(objective, x, step, iters, f_tol=F_TOL, x_tol=X_TOL)
    f = f.reshape(n, 2)  # NaN is already +inf (nelder_mead_batched)
    pick = np.argmin(f, axis=1)
    return x.reshape(n, 2, 3)[local, pick], f[local, pick]


def fit_candidates(obj: TrackObjective, cand: np.ndarray, passes: Passes, rows: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Best (a [m], b [m], t0 [ns]) (n, 3) and −log L (n,) from candidates (n, M, 3).

    MPE objectives add the SPE1st pre-fit's optimum to the candidates first."""
    if obj.mpe:
        # as IceCube seeds MPEFit with SPEFit: the first-of-N surface is narrow and
        # rugged, the SPE one smooth, so the SPE optimum joins the candidate starts
        # rough optimum, as the reference (no polish: the same start for the MPE descents)
        x_spe, _ = descend(obj.as_spe(), cand, passes[:1], rows, polish=False)
        cand = np.concatenate([cand, x_spe[:, None, :]], axis=1)
    return descend(obj, cand, passes, rows)
