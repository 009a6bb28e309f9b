"""Hit cleaning of the track fits [m, ns]: seeded RT cleaning and a sliding time window.

Seeded RT (as IceCube's SeededRT, which skymap_scanner's ``splinempe.py`` uses): start from
the hard local coincidences (HLC: another hit within ``HLC_SPAN`` DOM positions on the same
string and ``HLC_TIME``) and keep every hit connected to them by chains of ``RT_RADIUS`` /
``RT_TIME`` steps, so pairs of dark-noise hits far from the track go. Without local
coincidences, classic RT: keep a hit with another kept hit within the RT radius and time.
Then the ``TIME_WINDOW`` interval holding the most kept hits (IceCube's
``TimeWindow=6000 ns``). See ``docs/reconstructions.md``.

Optional IceCube-like hit selection (reco options ``deepcore``, ``bright``, ``late_ns``; off
by default): :func:`deepcore_keep` drops the DeepCore strings 79–86 before cleaning (as the
realtime muon fits mask them), :func:`bright_doms` marks DOMs whose charge exceeds
``BRIGHT_FACTOR`` times the mean DOM charge (IceCube's bright-DOM cleaning) and
:func:`late_keep` drops pulses more than ``late_ns`` after their DOM's first pulse from the
DOM's charge.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["RT_RADIUS", "RT_TIME", "TIME_WINDOW", "HLC_SPAN", "HLC_TIME",
           "DEEPCORE_STRINGS", "BRIGHT_FACTOR", "local_coincidences", "seeded_rt",
           "clean_hits", "deepcore_keep", "bright_doms", "late_keep"]

RT_RADIUS = 150.0  # [m]
RT_TIME = 1000.0  # [ns]
TIME_WINDOW = 6000.0  # [ns]
HLC_SPAN = 2  # [DOM positions on a string]
HLC_TIME = 1000.0  # [ns]
DEEPCORE_STRINGS = (79, 80, 81, 82, 83, 84, 85, 86)
BRIGHT_FACTOR = 10.0  # [1] bright DOM: charge above this many times the mean DOM charge

#: ``near(rows)`` → (len(rows), n) mask of pairs that count as neighbours
NearFn = Callable[[slice], np.ndarray]


def _pairs_any(n: int, near_fn: NearFn) -> np.ndarray:
    """True for items with a partner j ≠ i where ``near_fn(slice)`` (rows × n) holds.

    Chunked, so the n² pairs never need an n×n×3 temporary."""
    keep = np.zeros(n, dtype=bool)
    for lo in range(0, n, 512):
        sl = slice(lo, min(n, lo + 512))
        near = near_fn(sl)
        near[np.arange(sl.stop - lo), np.arange(lo, sl.stop)] = False
        keep[sl] = near.any(axis=1)
    return keep


def _rt_near(pos: np.ndarray, t: np.ndarray, radius: float, dt: float) -> NearFn:
    """Neighbour test of RT cleaning: within ``radius`` [m] and ``dt`` [ns]."""
    def near(sl: slice) -> np.ndarray:
        d2 = ((pos[sl, None, :] - pos[None, :, :]) ** 2).sum(axis=-1)
        return (d2 <= radius * radius) & (np.abs(t[sl, None] - t[None, :]) <= dt)
    return near


def _rt_keep(pos: np.ndarray, t: np.ndarray, radius: float, dt: float) -> np.ndarray:
    """True for hits with at least one other hit within ``radius`` [m] and ``dt`` [ns]."""
    return _pairs_any(t.size, _rt_near(pos, t, radius, dt))


def local_coincidences(string: np.ndarray, om: np.ndarray, t: np.ndarray,
                       span: int = HLC_SPAN, dt: float = HLC_TIME) -> np.ndarray:
    """True for hits with an HLC partner: same string, ``span`` DOMs, ``dt`` [ns].

    Another hit on the same string within ``span`` DOM positions and ``dt`` (IceCube's hard
    local coincidence, HLC): rare for dark noise."""
    def near(sl: slice) -> np.ndarray:
        return ((string[sl, None] == string[None, :])
                & (np.abs(om[sl, None] - om[None, :]) <= span)
                & (np.abs(t[sl, None] - t[None, :]) <= dt))
    return _pairs_any(t.size, near)


def seeded_rt(pos: np.ndarray, t: np.ndarray, seeds: np.ndarray, radius: float = RT_RADIUS,
              dt: float = RT_TIME) -> np.ndarray:
    """Mask of the hits RT-connected to the ``seeds`` mask (steps ``radius`` [m], ``dt`` [ns]).

    Connected through chains of such steps: pairs of noise hits far from the track are not
    connected to it."""
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


def deepcore_keep(string: np.ndarray) -> np.ndarray:
    """Mask [1] of the pulses not on a DeepCore string (79–86).

    >>> deepcore_keep(np.array([1, 79, 86, 87])).tolist()
    [True, False, False, True]
    """
    return ~np.isin(np.asarray(string), DEEPCORE_STRINGS)


def bright_doms(charge: np.ndarray, factor: float = BRIGHT_FACTOR) -> np.ndarray:
    """Mask [1] of the bright DOMs: charge [PE] above ``factor`` × the mean DOM charge.

    >>> bright_doms(np.array([1.0] * 20 + [100.0])).tolist()[-2:]
    [False, True]
    """
    q = np.asarray(charge, dtype=float)
    if q.size == 0:
        return np.zeros(0, dtype=bool)
    return q > factor * float(q.mean())


def late_keep(key: np.ndarray, time: np.ndarray, late_ns: float) -> np.ndarray:
    """Mask [1] of the pulses at most ``late_ns`` [ns] after the first pulse of their DOM.

    ``key`` identifies the DOM of each pulse; ``late_ns`` <= 0 keeps every pulse.

    >>> late_keep(np.array([1, 1, 2, 1]), np.array([0.0, 50.0, 900.0, 3000.0]), 1000.0).tolist()
    [True, True, True, False]
    """
    key = np.asarray(key)
    t = np.asarray(time, dtype=float)
    if late_ns <= 0 or t.size == 0:
        return np.ones(t.size, dtype=bool)
    uniq, inv = np.unique(key, return_inverse=True)
    first = np.full(uniq.size, np.inf)
    np.minimum.at(first, inv, t)
    return t <= first[inv] + late_ns
