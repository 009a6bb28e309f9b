"""The compiled track −log L, its gradient and minimisers against the numpy reference."""

from __future__ import annotations

import numpy as np
import pytest

from recos import get_reco
from recos.track.kernels import resolve_kernel
from recos.track.minimize import nelder_mead_batched
from skyscan_tui.errors import UserError
from skyscan_tui.simulate import SimConfig, simulate_event
from skyscan_tui.tasks import TaskBatch

CASES = [("spe", {}), ("mpe", {}), ("spe", {"noise_prob": 0.0}), ("mpe", {"noise_prob": 0.0}),
         ("spe", {"ice": "layered"}), ("mpe", {"ice": "layered"}),
         ("mpe", {"timing_error": 48**0.5, "mpe_exponent": "0.8"})]


@pytest.fixture(scope="module")
def event():
    return simulate_event(SimConfig(seed=14, energy=3.0e4))


def _objectives(event, name, opts, n=6, seed=8):
    ref = get_reco(name)(kernel="numpy", **opts)
    fast = get_reco(name)(kernel="compiled", **opts)
    prep = ref.prepare(event)
    rng = np.random.default_rng(seed)
    batch = TaskBatch(0, 0, np.full(n, 8, np.int32), np.arange(n), np.zeros(n, np.int32),
                      np.arccos(rng.uniform(-1, 1, n)), rng.uniform(0, 2 * np.pi, n),
                      np.tile(prep.seed, (n, 1)))
    obj_ref, start = ref.objective(prep, batch)
    obj_fast, _ = fast.objective(prep, batch)
    assert obj_fast.compiled and not obj_ref.compiled
    return obj_ref, obj_fast, start, rng


@pytest.mark.parametrize("name, opts", CASES)
def test_value_and_gradient_match_numpy_and_finite_differences(event, name, opts):
    obj_ref, obj_fast, start, rng = _objectives(event, name, opts)
    n = start.shape[0]
    x = start[:, None, :] + rng.normal(0.0, 40.0, (n, 9, 3))
    x[:, 0, 2] = 2e4  # beyond the table: the exact plain Pandel
    x[:, 1, 2] = -2e4  # before it: the Gaussian tail, or the noise floor
    rows = np.arange(n)
    f_ref = obj_ref(x, rows)
    f, g = obj_fast.value_and_grad(x, rows)
    assert np.allclose(f, f_ref, rtol=1e-5, atol=0)
    assert np.array_equal(obj_fast(x, rows), f)  # the value-only pass is the same sum
    h = 1e-4  # well inside one table cell, where the surface is smooth
    fd = np.empty_like(g)
    for j in range(3):
        up, down = x.copy(), x.copy()
        up[..., j] += h
        down[..., j] -= h
        fd[..., j] = (obj_fast(up, rows) - obj_fast(down, rows)) / (2 * h)
    err = np.abs(fd - g) / (np.abs(g) + 1e-3)
    # a step across a cell edge of the bilinear table sees the jump of the gradient there
    assert np.median(err) < 1e-6 and np.mean(err > 1e-4) < 0.03 and err.max() < 1e-2


def test_polish_only_lowers_and_compiled_simplex_follows_the_reference(event):
    obj_ref, obj_fast, start, rng = _objectives(event, "spe", {}, n=16, seed=3)
    rows = np.arange(16)
    x0 = start + rng.normal(0.0, 20.0, start.shape)
    passes = ((np.array([15.0, 15.0, 20.0]), 40), (np.array([5.0, 5.0, 5.0]), 20))
    tol = np.array([0.1, 0.1, 0.1])
    x_nm, f_nm, _ = obj_fast.minimise(x0, rows, passes, 1e-3, tol, 0)
    x_pol, f_pol, n_pol = obj_fast.minimise(x0, rows, passes, 1e-3, tol, 100)
    assert (f_pol <= f_nm).all() and (f_pol < f_nm - 1e-6).any()
    assert np.allclose(obj_fast(x_pol[:, None, :], rows)[:, 0], f_pol)

    def reference(xs, r):
        return obj_ref(xs, r)

    x_ref = x0
    for step, iters in passes:
        x_ref, f_ref, _ = nelder_mead_batched(reference, x_ref, step, iters, f_tol=1e-3,
                                              x_tol=tol)
    # same algorithm, values equal to ~1e-7: the same end points but for near-ties
    same = np.abs(f_nm - f_ref) < 1e-3
    assert same.mean() >= 0.8
    assert (np.abs(x_nm - x_ref) < 0.2).all(axis=1).mean() >= 0.7


def test_fits_reach_the_reference_minimum_or_lower(event):
    n = 48
    rng = np.random.default_rng(11)
    zen, azi = np.arccos(rng.uniform(-1, 1, n)), rng.uniform(0, 2 * np.pi, n)
    for name in ("spe", "mpe"):
        ref, fast = get_reco(name)(kernel="numpy"), get_reco(name)(kernel="compiled")
        prep = ref.prepare(event)
        for rnd in (0, 1):
            batch = TaskBatch(0, rnd, np.full(n, 8, np.int32), np.arange(n),
                              np.zeros(n, np.int32), zen, azi, np.tile(prep.seed, (n, 1)))
            want = ref.fit_pixels(prep, batch)["llh"]
            got = fast.fit_pixels(prep, batch)["llh"]
            assert np.mean(got <= want + 1e-3) >= 0.95, (name, rnd)
            assert got.min() <= want.min() + 1e-3


def test_kernel_option(monkeypatch):
    assert resolve_kernel("auto") == "compiled" == resolve_kernel("numba")
    assert get_reco("spe")().options["kernel"] == "compiled"
    assert get_reco("spe")().notice == ""
    with pytest.raises(UserError, match="kernel"):
        get_reco("spe")(kernel="fortran")
    monkeypatch.setenv("SKYSCAN_NO_NUMBA", "1")
    reco = get_reco("spe")()
    assert reco.options["kernel"] == "numpy" and "numba is not installed" in reco.notice
    with pytest.raises(UserError, match="numba is not installed"):
        get_reco("spe")(kernel="compiled")
