"""Layered ice in the Pandel fits (``--reco-opt ice=layered``)."""

from __future__ import annotations

import numpy as np
import pytest

from recos import get_reco
from recos.track.constants import PANDEL_LAMBDA, PANDEL_RHO
from recos.track.ice import track_emission_z, uniform_ice
from recos.track.pandel import convoluted_logpdf
from skyscan_tui.errors import UserError
from skyscan_tui.simulate import SimConfig, simulate_event
from skyscan_tui.tasks import TaskBatch


def _batch(prepared, n: int = 6) -> TaskBatch:
    zen, azi = prepared.seed_dir
    rng = np.random.default_rng(2)
    zenith = np.clip(zen + rng.normal(0, 0.02, n), 0.01, np.pi - 0.01)
    azimuth = azi + rng.normal(0, 0.02, n)
    return TaskBatch(batch_id=0, round=0, nside=np.full(n, 8), ipix=np.arange(n), variation=np.zeros(n, int),
                     zenith=zenith, azimuth=azimuth, seed=np.tile(prepared.seed, (n, 1)))


@pytest.fixture(scope="module")
def event():
    return simulate_event(SimConfig(seed=21, energy=1e4, ice="spice_mie"))


@pytest.mark.parametrize("name", ["spe", "mpe"])
def test_uniform_table_layered_equals_bulk(name, event, monkeypatch):
    # pull=none: on this realistic-simulation event layered ice takes the realistic pull curve
    bulk = get_reco(name)(pull="none")
    layered = get_reco(name)(ice="layered", pull="none")
    monkeypatch.setattr(type(layered), "ice_model", lambda self: uniform_ice(0.02, 0.05))
    prepared = bulk.prepare(event)
    batch = _batch(prepared)
    obj_b, start = bulk.objective(prepared, batch)
    obj_l, start_l = layered.objective(prepared, batch)
    assert obj_l.layered and not obj_b.layered
    np.testing.assert_allclose(obj_l.lam, PANDEL_LAMBDA, rtol=1e-12)
    np.testing.assert_allclose(obj_l.scale, 1.0, rtol=1e-12)
    rows = np.arange(len(batch))
    x = start[:, None, :] + np.random.default_rng(3).normal(0, [20, 20, 30], (len(batch), 5, 3))
    np.testing.assert_allclose(obj_l(x, rows), obj_b(x, rows), rtol=2e-6)
    out_b, out_l = bulk.fit_pixels(prepared, batch), layered.fit_pixels(prepared, batch)
    np.testing.assert_allclose(out_l["llh"], out_b["llh"], rtol=1e-5)
    np.testing.assert_allclose(out_l["x"], out_b["x"], atol=0.5)


def test_layered_is_the_pandel_with_each_doms_constants(event):
    """Per DOM the layered objective is the Gauss-convoluted Pandel with that DOM's λ and
    ρ (exact form), up to the table's interpolation and the jitter scaling, which fades
    far from the direct time."""
    reco = get_reco("spe")(ice="layered", noise_prob=0.0)
    prepared = reco.prepare(event)
    batch = _batch(prepared, 1)
    obj, start = reco.objective(prepared, batch)
    assert np.ptp(obj.lam) > 10.0 and np.ptp(obj.scale) > 0.2  # the DOMs see different ice
    x = start[:, None, :].copy()
    res, d = obj.residuals(x, np.arange(1))
    per_dom = obj.per_dom_logl(x, np.arange(1))[0, 0]
    res, d = res[0, 0], d[0, 0]
    far = np.flatnonzero((res > 150.0) & (res < 3000.0))[:6]
    assert far.size >= 3
    for k in far:
        rho_k = obj.scale[0, k] * PANDEL_RHO
        xi = (0.8395 * d[k] + 3.094) / obj.lam[0, k]
        exact = convoluted_logpdf(np.array([res[k]]), np.array([xi]), obj.table.sigma, rho_k)
        assert per_dom[k] == pytest.approx(exact[0], abs=0.06)
        bulk = convoluted_logpdf(np.array([res[k]]), np.array([(0.8395 * d[k] + 3.094)
                                                                / PANDEL_LAMBDA]),
                                 obj.table.sigma, PANDEL_RHO)
        assert abs(per_dom[k] - bulk[0]) > 1e-3 or abs(obj.scale[0, k] - 1) < 1e-3


def test_emission_point_height():
    # a horizontal track at z = 10 m: every emission point is at z = 10 m
    pos = np.array([[50.0, 0.0, 40.0], [-30.0, 20.0, -100.0]])
    z = track_emission_z(pos, np.array([[0.0, 0.0, 10.0]]), np.array([[1.0, 0.0, 0.0]]))
    np.testing.assert_allclose(z, 10.0)
    # a vertical down-going track along x = y = 0: the emission point lies d cot θ_c above
    # the DOM's height (the light reaches the DOM after the muon passed its depth)
    z = track_emission_z(np.array([[30.0, 0.0, 0.0]]), np.zeros((1, 3)),
                         np.array([[0.0, 0.0, -1.0]]))
    assert z[0, 0] == pytest.approx(30.0 / np.sqrt(1.3195**2 - 1.0))


def test_option_checked():
    with pytest.raises(UserError, match="ice"):
        get_reco("spe")(ice="nonsense")
    assert "layered ice" in get_reco("spe")(ice="layered").likelihood
    assert "layered" not in get_reco("spe")().likelihood


@pytest.mark.parametrize("name", ["spe", "mpe"])
def test_layered_fast_path_matches_double_path(name, event):
    """The single-precision path (noise floor folded into the table) and the double one
    (raw table, explicit floor) give the same per-DOM values with SPICE Mie ice."""
    reco = get_reco(name)(ice="layered")
    prepared = reco.prepare(event)
    batch = _batch(prepared, 3)
    obj, start = reco.objective(prepared, batch)
    assert obj._fold is not None and np.ptp(obj.scale) > 0.2
    rows = np.arange(3)
    x = start[:, None, :] + np.random.default_rng(5).normal(0, [15, 15, 20], (3, 4, 3))
    fast = obj.per_dom_logl(x, rows)
    obj._fold = None  # force the double-precision path
    slow = obj.per_dom_logl(x, rows)
    np.testing.assert_allclose(fast, slow, atol=0.02)
    assert abs(fast.sum() - slow.sum()) < 1e-3 * abs(slow.sum())
