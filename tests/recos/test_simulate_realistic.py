"""The realistic simulation (``simulate --ice spice_mie``; skyscan_tui/simulate_realistic.py)."""

from __future__ import annotations

import numpy as np
import pytest

from skyscan_tui.errors import UserError
from skyscan_tui.events import event_digest, load_event
from skyscan_tui.geometry import default_geometry
from skyscan_tui.simulate import SimConfig, simulate_event
from skyscan_tui.simulate_realistic import (
    NOISE_HQE,
    NOISE_STANDARD,
    Q_SAT,
    detector_for,
    orientation_a0,
    saturate,
)


def test_default_events_unchanged():
    # digests of the matched model before the realistic detector existed
    assert event_digest(simulate_event(SimConfig(seed=1))) == (
        "b67216938289e887911d5c39462e34fb3023475688d6ceee5d67a545dd4adbb4")
    assert SimConfig().ice == "bulk" and "sim_ice" not in simulate_event(SimConfig(seed=2)).meta


@pytest.mark.parametrize("kind", [{}, {"cascade": True}, {"starting": True}])
def test_realistic_events_seeded_and_different(kind):
    a = simulate_event(SimConfig(seed=4, ice="spice_mie", **kind))
    b = simulate_event(SimConfig(seed=4, ice="spice_mie", **kind))
    bulk = simulate_event(SimConfig(seed=4, **kind))
    assert event_digest(a) == event_digest(b) != event_digest(bulk)
    assert a.meta["sim_ice"] == "spice_mie" and a.truth == bulk.truth
    assert a.meta["n_signal_pe"] > 0


def test_detector_draws():
    geo = default_geometry()
    det = detector_for(geo, 3)
    deepcore = geo.string >= 79
    hqe = geo.rde > 1.2
    assert deepcore.sum() > 400 and hqe[deepcore].mean() > 0.5
    # per-DOM noise rates: HQE DOMs noisier, each within ±30 % of its type's rate
    assert np.all(det.noise_rate[hqe] >= 0.7 * NOISE_HQE)
    assert np.all(det.noise_rate[~hqe] <= 1.3 * NOISE_STANDARD)
    assert det.noise_rate[hqe].mean() > det.noise_rate[~hqe].mean() + 150
    spread = det.efficiency / geo.rde
    assert 0.08 < spread.std() < 0.12 and abs(spread.mean() - 1) < 0.01
    assert not np.array_equal(spread, detector_for(geo, 4).efficiency / geo.rde)
    np.testing.assert_array_equal(det.efficiency, detector_for(geo, 3).efficiency)


def test_orientation_and_saturation():
    np.testing.assert_allclose(orientation_a0(np.array([1.0, 0.0, -1.0])),
                               [3.784, 3.094, 11.676])
    dom = np.array([0, 0, 1, 2])
    q = np.array([3.0 * Q_SAT, Q_SAT, 1.0, 0.0])
    out = saturate(dom, q)
    assert out[:2].sum() == pytest.approx(Q_SAT * (1 - np.exp(-4.0)))
    assert out[0] / out[1] == pytest.approx(3.0)  # shape of the DOM's pulses kept
    assert out[2] == pytest.approx(Q_SAT * -np.expm1(-1.0 / Q_SAT)) and out[3] == 0.0


def test_realistic_excludes_toy_mismatch():
    with pytest.raises(UserError, match="ice-mismatch"):
        simulate_event(SimConfig(seed=1, ice="spice_mie", ice_mismatch=0.2))
    with pytest.raises(UserError, match="--ice"):
        simulate_event(SimConfig(seed=1, ice="nonsense"))


def test_cli_simulate_ice(tmp_path):
    from tests.conftest import run_cli

    out = tmp_path / "ev.json"
    proc = run_cli("simulate", "-o", out, "--seed", "5", "--ice", "spice_mie")
    assert proc.returncode == 0, proc.stderr
    assert load_event(out).meta["sim_ice"] == "spice_mie"
    bad = run_cli("simulate", "-o", out, "--ice", "nonsense")
    assert bad.returncode == 2 and "--ice" in bad.stderr
