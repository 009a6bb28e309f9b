"""IceCube-like hit selection (deepcore, bright, late_ns) and the MPE charge exponent."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from recos import get_reco
from recos.track.cleaning import bright_doms, deepcore_keep, late_keep
from recos.track.frame import track_direction
from recos.track.mpecharge import energy_from_charge, event_exponent, exponent_for_energy
from recos.track.objective import TrackObjective
from recos.track.prepare import prepare_track
from skyscan_tui.errors import UserError
from skyscan_tui.events import Event, Pulses
from skyscan_tui.simulate import SimConfig, simulate_event
from tests.recos.test_spe_mpe import _batch


@pytest.fixture(scope="module")
def real_sim() -> Event:
    """10 TeV track of the realistic detector (DeepCore DOMs, noise, saturation)."""
    return simulate_event(SimConfig(seed=101900, energy=1e4, zenith_deg=150.0,
                                    azimuth_deg=30.0, ice="spice_mie"))


def _rows(pos: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """True for rows of ``pos`` that are rows of ``ref``."""
    return (np.abs(pos[:, None, :] - ref[None, :, :]).sum(axis=-1) < 1e-9).any(axis=1)


def _with_pulses(ev: Event, **cols: np.ndarray) -> Event:
    p = ev.pulses
    fields = {f: getattr(p, f) for f in ("string", "om", "x", "y", "z", "time", "charge")}
    fields.update(cols)
    return dataclasses.replace(ev, pulses=Pulses.from_arrays(*fields.values()))


def test_selection_masks():
    assert deepcore_keep(np.array([1, 78, 79, 83, 86, 87])).tolist() == \
        [True, True, False, False, False, True]
    q = np.array([1.0] * 30 + [400.0])
    assert np.flatnonzero(bright_doms(q)).tolist() == [30]
    assert not bright_doms(np.full(5, 50.0)).any()  # uniform charge: nothing is bright
    key = np.array([5, 5, 7, 5, 7])
    t = np.array([100.0, 300.0, 0.0, 1200.0, 999.0])
    assert late_keep(key, t, 1000.0).tolist() == [True, True, True, False, True]
    assert late_keep(key, t, 0.0).all()  # 0: off


def test_deepcore_mask_drops_strings_79_to_86(real_sim):
    p = real_sim.pulses
    dc_pos = p.pos[np.isin(p.string, np.arange(79, 87))]
    assert dc_pos.shape[0] > 0
    keep = prepare_track(real_sim, True, 100)
    masked = prepare_track(real_sim, True, 100, deepcore="mask")
    assert _rows(keep.pos, dc_pos).any()  # the default fits DeepCore DOMs
    assert not _rows(masked.pos, dc_pos).any()
    # every other fitted DOM is still there
    other = keep.pos[~_rows(keep.pos, dc_pos)]
    assert _rows(masked.pos, other).all() and masked.pos.shape[0] == other.shape[0]


def test_auto_applies_the_hit_selection_in_both_branches(real_sim):
    dc_pos = real_sim.pulses.pos[np.isin(real_sim.pulses.string, np.arange(79, 87))]
    for real_mpe in (True, False):  # the MPE branch, and the SPE1st one (real_mpe=false)
        reco = get_reco("auto")(deepcore="mask", real_mpe=real_mpe)
        prep = reco.prepare(real_sim)
        assert reco.uses_mpe(prep) == real_mpe
        assert not _rows(prep.pos, dc_pos).any()
        spe = get_reco("spe")(deepcore="mask").prepare(real_sim)
        if not real_mpe:  # exactly what spe fits
            assert np.array_equal(prep.pos, spe.pos) and np.array_equal(prep.time, spe.time)


def test_bright_dom_is_dropped_from_the_fit(real_sim):
    keep = prepare_track(real_sim, True, 1000)
    k = int(np.argmax(keep.npe))
    target = keep.pos[k]
    p = real_sim.pulses
    on_dom = np.all(np.abs(p.pos - target) < 1e-9, axis=1)
    # make the DOM 50x brighter than the whole event's mean DOM charge
    charge = np.where(on_dom, p.charge * 50 * keep.total_charge / keep.npe.size
                      / p.charge[on_dom].sum(), p.charge)
    ev = _with_pulses(real_sim, charge=charge)
    kept = prepare_track(ev, True, 1000)
    dropped = prepare_track(ev, True, 1000, bright="drop")
    assert _rows(kept.pos, target[None]).any()
    assert not _rows(dropped.pos, target[None]).any()
    assert _rows(dropped.pos, kept.pos).all()  # nothing else changes but the bright DOMs
    assert 1 <= kept.pos.shape[0] - dropped.pos.shape[0] <= 3


def test_late_pulses_leave_the_charge(real_sim):
    keep = prepare_track(real_sim, True, 1000)
    k = int(np.argmin(keep.time))  # the earliest fitted DOM: its window holds 6000 ns
    target, t_first = keep.pos[k], keep.time[k]
    p = real_sim.pulses
    on_dom = np.flatnonzero(np.all(np.abs(p.pos - target) < 1e-9, axis=1))
    i = int(on_dom[0])
    # one extra 40 PE pulse 2000 ns after the DOM's first pulse
    cols = {f: np.append(getattr(p, f), getattr(p, f)[i]) for f in
            ("string", "om", "x", "y", "z")}
    ev = _with_pulses(real_sim, **cols, time=np.append(p.time, t_first + 2000.0),
                      charge=np.append(p.charge, 40.0))
    n_all = prepare_track(ev, True, 1000).npe[_rows(prepare_track(ev, True, 1000).pos,
                                                    target[None])]
    late = prepare_track(ev, True, 1000, late_ns=1000.0)
    n_cut = late.npe[_rows(late.pos, target[None])]
    n_before = keep.npe[k]
    assert n_all[0] == n_before + 40
    assert n_cut[0] <= n_before  # the extra pulse (and any other late one) left the charge
    far = prepare_track(ev, True, 1000, late_ns=3000.0)  # 2000 ns is not late for 3000
    assert far.npe[_rows(far.pos, target[None])][0] >= n_cut[0] + 40


def test_exponent_schedule_and_proxy():
    assert exponent_for_energy(500.0) == 0.4 and exponent_for_energy(1e6) == 1.0
    assert exponent_for_energy(1e4) == pytest.approx(0.7)
    assert exponent_for_energy(10 ** 3.5) == pytest.approx(0.5)
    assert exponent_for_energy(1e5) == pytest.approx(0.9)
    # continuous at the knots
    for x in (3.0, 3.5, 4.0, 5.5):
        lo, hi = exponent_for_energy(10 ** (x - 1e-9)), exponent_for_energy(10 ** (x + 1e-9))
        assert abs(lo - hi) < 1e-6
    assert energy_from_charge(560.0) == pytest.approx(1e4)
    assert energy_from_charge(5600.0) > 9e4
    assert event_exponent(0.6, 1e5, 100.0) == (0.6, pytest.approx(np.nan, nan_ok=True),
                                               "fixed")
    assert event_exponent(None, 1e5, 10.0)[2] == "seed energy"
    m, e, src = event_exponent(None, float("nan"), 560.0)
    assert src == "charge proxy" and m == pytest.approx(0.7)


def test_mpe_exponent_one_is_todays_mpe_exactly(sim_event):
    today = get_reco("mpe")()
    one = get_reco("mpe")(mpe_exponent="1")
    prep = today.prepare(sim_event)
    assert one.mpe_exponent(prep) == 1.0
    batch = _batch([1.0, 2.0, 2.5], [0.5, 3.0, 5.0], prep.seed)
    a, b = today.fit_pixels(prep, batch), one.fit_pixels(prep, batch)
    for col in ("llh", "x", "y", "z", "t"):
        assert np.array_equal(a[col], b[col])
    assert today.likelihood == one.likelihood


def test_mpe_exponent_raises_n_to_the_m(sim_event):
    prep = prepare_track(sim_event, True, 100)
    u = track_direction(np.array([1.0]), np.array([2.0]))
    args = (prep, u, prep.cog[None], np.array([float(np.median(prep.time))]), 4.0,
            np.log(1e-6), True)
    base, half = TrackObjective(*args), TrackObjective(*args, npe_exponent=0.5)
    n = prep.npe[: prep.n_multi].astype(float)
    assert np.allclose(half.log_n, 0.5 * np.log(n))
    assert np.allclose(half.n_minus_1, np.sqrt(n) - 1)
    x = np.array([[[5.0, -3.0, 20.0]]])
    rows = np.array([0])
    lb, lh = base.per_dom_logl(x, rows), half.per_dom_logl(x, rows)
    k = prep.n_multi
    assert np.array_equal(lb[..., k:], lh[..., k:])  # single-photon DOMs unchanged
    assert not np.allclose(lb[..., :k], lh[..., :k])
    # the reco passes its exponent; auto takes it from the charge when the seed has no energy
    auto = get_reco("mpe")(mpe_exponent="auto")
    m = auto.mpe_exponent(prep)
    assert 0.4 <= m <= 1.0 and m == event_exponent(None, float("nan"), prep.total_charge)[0]
    assert auto.objective(prep, _batch([1.0], [2.0], prep.seed))[0].n_minus_1 == \
        pytest.approx(n ** m - 1)
    assert "N^m with m=" in auto.likelihood_for(prep)


def test_option_errors():
    for bad in ({"deepcore": "drop"}, {"bright": "cap"}, {"mpe_exponent": "0"},
                {"mpe_exponent": "1.5"}, {"mpe_exponent": "fast"}, {"late_ns": -1}):
        with pytest.raises(UserError):
            get_reco("mpe")(**bad)
    with pytest.raises(UserError):
        get_reco("spe")(mpe_exponent="auto")  # SPE1st has no charge
    assert "DeepCore strings masked" in get_reco("spe")(deepcore="mask").likelihood
