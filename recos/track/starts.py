"""Starting candidates of the track fits [m, m, ns]: where each pixel's descents begin.

Parameters are (a, b, t0): transverse offsets from the pixel's reference point and a time
offset (:mod:`recos.track.objective`). Vertex variation k = 0 starts at the reference point
(the seed or the parent pixel's fit), k = 1 at the hit centre of gravity, k ≥ 2 on a ring of
``variation_step`` around the seed. From that start a round builds candidates:

* first round: a 5×5 grid (±60 m) of offsets × 3 start times (the 15 % quantile of the
  residuals, 80 and 240 ns earlier), then Nelder–Mead passes with steps 15 m / 15 m / 20 ns
  (``iterations``) and a restart with 5 m / 5 m / 5 ns (half as many);
* refined rounds: the start itself (the parent's best fit) and the offsets of the start, of
  the event seed and of the centre of gravity, each with the quantile start time and 80 and
  160 ns earlier; then passes of 5 m / 5 ns and 2 m / 2 ns (½ and ¼ ``iterations``).

Two descents per pixel follow (:func:`descent_starts`). See ``docs/reconstructions.md``.
"""

from __future__ import annotations

import numpy as np

from recos.track.objective import TrackObjective
from recos.track.prepare import PreparedTrack

__all__ = ["Passes", "T0_SHIFTS", "REFINE_T0_SHIFTS", "SECOND_START_DT", "variation_starts",
           "round_candidates", "refine_candidates", "descent_starts"]

#: Nelder–Mead passes: (initial simplex steps (a [m], b [m], t0 [ns]), iterations) each
Passes = tuple[tuple[np.ndarray, int], ...]

#: first-round grid: start times relative to the 15 % quantile [ns]. The quantile is
#: often late for dim events (scattered light only, or a noise hit among few DOMs); on
#: 50 seeded 1 TeV events (0, -80, -240) gave the same failures and Wilks-90 % coverage
#: as (0, -40, -80, -160, -320), and better coverage than (0, -40, -80) or (0, -150).
T0_SHIFTS: tuple[float, ...] = (0.0, -80.0, -240.0)
#: start-time shifts of the refined rounds' candidates [ns]
REFINE_T0_SHIFTS = np.array([0.0, -80.0, -160.0])
#: the second descent starts from the best candidate at least this far in time from the best
#: one [ns]: an early noise hit can make a wrong start time look best before any descent
SECOND_START_DT = 50.0


def variation_starts(prepared: PreparedTrack, obj: TrackObjective, variation: np.ndarray,
                     n_variations: int, step: float) -> np.ndarray:
    """Start parameters (a [m], b [m], t0 [ns]) (P, 3) of vertex variations ``variation``.

    #0 the reference point itself, #1 the hit centre of gravity, #2.. ``n_variations`` - 2
    points on a ring of radius ``step`` [m] around it; t0 = 0 (rounds choose the time).
    """
    start = np.zeros((obj.n_pix, 3))
    var = np.asarray(variation)
    cog_rel = prepared.cog - obj.r_ref
    is_cog = var == 1
    start[is_cog, 0] = np.einsum("pj,pj->p", cog_rel, obj.e1)[is_cog]
    start[is_cog, 1] = np.einsum("pj,pj->p", cog_rel, obj.e2)[is_cog]
    many = var >= 2
    if many.any():
        n_ring = max(1, n_variations - 2)
        ang = 2 * np.pi * (var[many] - 2) / n_ring
        start[many, 0] = step * np.cos(ang)
        start[many, 1] = step * np.sin(ang)
    return start


def refine_candidates(prepared: PreparedTrack, obj: TrackObjective, start: np.ndarray,
                      rows: np.ndarray) -> np.ndarray:
    """(n, 10, 3) starts [m, m, ns] for refined pixels.

    ``start`` itself, and the offsets of the start, of the event seed and of the centre of
    gravity, each with the quantile start time and two earlier ones."""
    ab = [start[:, :2]]
    for point in (prepared.seed[:3], prepared.cog):
        rel = point - obj.r_ref
        ab.append(np.stack([np.einsum("pj,pj->p", rel, obj.e1),
                            np.einsum("pj,pj->p", rel, obj.e2)], axis=-1))
    abs_ = np.stack(ab, axis=1)  # (n, 3, 2)
    tq = obj.quantile_t0(abs_[..., 0], abs_[..., 1], rows)  # (n, 3)
    k = REFINE_T0_SHIFTS.size
    a = np.repeat(abs_[..., 0], k, axis=1)
    b = np.repeat(abs_[..., 1], k, axis=1)
    t = (tq[:, :, None] + REFINE_T0_SHIFTS).reshape(len(rows), -1)
    return np.concatenate([start[:, None, :], np.stack([a, b, t], axis=-1)], axis=1)


def round_candidates(prepared: PreparedTrack, obj: TrackObjective, start: np.ndarray,
                     first_round: bool, variation: np.ndarray, rows: np.ndarray,
                     n_iter: int) -> tuple[np.ndarray, Passes]:
    """Candidate starts (n, M, 3) [m, m, ns] of a round, and the passes that follow.

    The best candidates start the descents; then come the Nelder–Mead passes; ``n_iter`` is
    the ``iterations`` option.

    In refined rounds the start time of variations other than #0 (which keep the parent's
    time) is set in ``start`` in place to the quantile start time.
    """
    if first_round:
        # 5×5 grid of transverse offsets around the start, times from the quantile
        g = np.arange(-60.0, 61.0, 30.0)
        ga, gb = np.meshgrid(g, g, indexing="ij")
        a = start[:, :1] + ga.ravel()[None, :]
        b = start[:, 1:2] + gb.ravel()[None, :]
        t0 = obj.quantile_t0(a, b, rows)
        shifts = T0_SHIFTS
        a = np.tile(a, (1, len(shifts)))
        b = np.tile(b, (1, len(shifts)))
        t0 = np.concatenate([t0 + s for s in shifts], axis=1)
        passes = ((np.array([15.0, 15.0, 20.0]), n_iter),
                  (np.array([5.0, 5.0, 5.0]), max(3, n_iter // 2)))
        return np.stack([a, b, t0], axis=-1), passes
    keep_time = np.asarray(variation) == 0
    if not keep_time.all():
        t0 = obj.quantile_t0(start[:, :1], start[:, 1:2], rows)[:, 0]
        start[:, 2] = np.where(keep_time, 0.0, t0)
    # the parent's vertex is usually within metres of the child's optimum (small steps),
    # but for dim events it can lie in another valley at the child's direction: compare
    # it with a few cheap candidates first
    passes = ((np.array([5.0, 5.0, 5.0]), max(3, n_iter // 2)),
              (np.array([2.0, 2.0, 2.0]), max(3, n_iter // 4)))
    return refine_candidates(prepared, obj, start, rows), passes


def descent_starts(cand: np.ndarray, f: np.ndarray) -> np.ndarray:
    """(n, 2) indices of the two starts among candidates (n, M, 3) with values ``f`` (n, M).

    The best, and the best whose start time differs from it by SECOND_START_DT or more (else
    the runner-up). On 200 seeded 1 TeV tracks one descent from the best candidate missed the
    optimum at the true direction by 6 in −log L twice."""
    order = np.argsort(np.where(np.isnan(f), np.inf, f), axis=1, kind="stable")
    t_sorted = np.take_along_axis(cand[..., 2], order, axis=1)
    far = np.abs(t_sorted - t_sorted[:, :1]) >= SECOND_START_DT
    local = np.arange(order.shape[0])
    second = order[local, np.where(far.any(axis=1), np.argmax(far, axis=1),
                                   min(1, order.shape[1] - 1))]
    return np.stack([order[:, 0], second], axis=1)
