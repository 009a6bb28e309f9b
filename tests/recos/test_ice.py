"""The depth-dependent ice table and its path averages (recos/track/ice.py)."""

from __future__ import annotations

import numpy as np
import pytest

from recos.track.constants import PANDEL_LAMBDA, PANDEL_LAMBDA_A
from recos.track.ice import RATIO_RANGE, IceModel, load_ice, uniform_ice
from skyscan_tui.errors import UserError


def test_shipped_spice_mie_table_loads():
    ice = load_ice("spice_mie")
    assert ice.b_e.size == ice.a.size == 171 and ice.z_edges.size == 172
    assert np.all(np.diff(ice.z_edges) > 0) and np.all(ice.a > 0) and np.all(ice.b_e > 0)
    # the dust layer (z ≈ -80 m) scatters and absorbs far more than the clear ice at z ≈ -320 m
    b_dust, a_dust = ice.at(np.array([-80.0]))
    b_clear, a_clear = ice.at(np.array([-320.0]))
    assert b_dust[0] > 5 * b_clear[0] and a_dust[0] > 5 * a_clear[0]
    with pytest.raises(UserError, match="unknown ice model"):
        load_ice("nonsense")


def test_uniform_table_gives_the_bulk_constants():
    ice = uniform_ice(0.03, 0.02)
    rng = np.random.default_rng(4)
    z1, z2 = rng.uniform(-600, 600, (2, 50, 7))
    z2[0] = z1[0]  # horizontal paths too
    lam, lam_a = ice.scaled_pandel(z1, z2)
    assert lam.shape == (50, 7)
    np.testing.assert_allclose(lam, PANDEL_LAMBDA, rtol=1e-12)
    np.testing.assert_allclose(lam_a, PANDEL_LAMBDA_A, rtol=1e-12)
    np.testing.assert_allclose(ice.attenuation_ratio(z1, z2), 1.0, rtol=1e-12)


def test_two_layer_path_average_is_exact():
    # b_e = 0.01 below z = 0, 0.05 above; a = 0.02 / 0.1
    edges = np.array([-300.0, 0.0, 300.0])
    ice = IceModel("two", edges, np.array([0.01, 0.05]), np.array([0.02, 0.1]))
    b, a = ice.path_average(np.array([-100.0, 50.0, -50.0]), np.array([50.0, -100.0, -10.0]))
    # 100 m in the lower layer, 50 m in the upper one, either direction
    np.testing.assert_allclose(b[:2], (100 * 0.01 + 50 * 0.05) / 150, rtol=1e-13)
    np.testing.assert_allclose(a[:2], (100 * 0.02 + 50 * 0.1) / 150, rtol=1e-13)
    np.testing.assert_allclose([b[2], a[2]], [0.01, 0.02], rtol=1e-13)
    # beyond the table the end layers continue: from -400 to -200 all in the lower layer
    b, _ = ice.path_average(np.array([-400.0]), np.array([-200.0]))
    np.testing.assert_allclose(b, 0.01, rtol=1e-13)
    # the reference ice is the mean over z in [-500, 500] (the end layers continued)
    assert ice.b_ref == pytest.approx(0.03)
    rb, _ = ice.ratios(np.array([100.0]), np.array([200.0]))
    assert rb[0] == pytest.approx(0.6)  # 0.03 / 0.05
    rb, _ = ice.ratios(np.array([-200.0]), np.array([-100.0]))
    assert rb[0] == pytest.approx(min(3.0, RATIO_RANGE[1]))  # 0.03 / 0.01 = 3, the cap
