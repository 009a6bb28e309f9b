"""Per-event input of the track fits [m, ns]: cleaned first pulses, charges, first guess.

Done once per scan (the engine's ``prepare``): the first pulse per DOM, hit cleaning
(:mod:`recos.track.cleaning`), the charge per DOM inside the kept time window (MPE's photon
count N), the charge-weighted centre of gravity, and the first guess — the event's best seed,
or a LineFit (least squares ``r_i ≈ r̄ + v (t_i - t̄)``) when it carries none. See
``docs/reconstructions.md``.

The IceCube-like hit selection (all off by default) masks the DeepCore strings before
cleaning (``deepcore="mask"``), drops pulses more than ``late_ns`` after their DOM's first
pulse from its charge, and drops bright DOMs (:func:`recos.track.cleaning.bright_doms`) from
the fit (``bright="drop"``) — each only when at least 4 DOMs remain.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recos.track.cleaning import (
    TIME_WINDOW,
    bright_doms,
    clean_hits,
    deepcore_keep,
    late_keep,
)
from skyscan_tui.errors import UserError
from skyscan_tui.events import Event

__all__ = ["PreparedTrack", "line_fit", "prepare_track"]


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
    #: the event comes from the real detector, or from its realistic simulation
    #: (``simulate --ice spice_mie``, ``sim_ice`` in the metadata): both take the real path
    #: (``ice=auto`` fits layered ice, the pull is the realistic calibration)
    real_detector: bool = False
    total_charge: float = float("nan")  # [PE] in-window charge of the fitted DOMs
    seed_energy: float = float("nan")  # [GeV] the best seed's energy estimate, if it has one


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


def real_detector(event: Event) -> bool:
    """A real event, or one of the realistic simulation (``sim_ice`` in its metadata)."""
    meta = event.meta or {}
    return bool(meta.get("is_real_event")) or bool(meta.get("sim_ice"))


def prepare_track(event: Event, use_charge: bool, max_npe: int, *, deepcore: str = "keep",
                  bright: str = "keep", late_ns: float = 0.0) -> PreparedTrack:
    """Cleaned first pulses [m, ns], charges and first guess of one event (see module doc).

    ``deepcore`` keep|mask, ``bright`` keep|drop and ``late_ns`` [ns] (0: off) select hits
    as the module doc says; the defaults are the plain selection."""
    p = event.pulses
    if len(p) == 0:
        raise UserError("event has no pulses: nothing to reconstruct")
    if deepcore == "mask":
        dc = deepcore_keep(p.string)
        if np.unique(p.string[dc] * 10_000 + p.om[dc]).size >= 4:
            p = p.select(dc)
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
    in_win = (time_t >= t_lo) & (time_t <= t_hi) & late_keep(key_t, time_t, late_ns)
    kpos = np.searchsorted(dom_key, key_t[in_win])
    kpos = np.clip(kpos, 0, dom_key.size - 1)
    ok = dom_key[kpos] == key_t[in_win]
    charge = np.zeros(dom_key.size)
    np.add.at(charge, kpos[ok], q_t[in_win][ok])
    charge = np.maximum(charge, 0.0)
    if bright == "drop":
        ok_dom = ~bright_doms(charge)
        if ok_dom.sum() >= 4:
            pos, t, dom_key, charge = pos[ok_dom], t[ok_dom], dom_key[ok_dom], charge[ok_dom]
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
                         n_bright=int((np.rint(charge) >= 2).sum()),
                         real_detector=real_detector(event),
                         total_charge=float(charge.sum()),
                         seed_energy=float(seed_obj.energy) if ok_seed else float("nan"))
