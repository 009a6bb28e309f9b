"""Pandel PDFs: normalisation, convolution, stability, table accuracy; batched Nelder–Mead."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.integrate import quad
from scipy.special import gammaln

from recos.track.constants import PANDEL_RHO
from recos.track.minimize import nelder_mead_batched
from recos.track.pandel import convoluted_logpdf, pandel_logpdf, plain_logsf
from recos.track.table import XI_MAX, XI_MIN, get_table

SIGMA = 4.0
RHO = PANDEL_RHO


@pytest.fixture(scope="module", params=[SIGMA, 8.0], ids=["sigma4", "sigma8"])
def table(request):
    """SPE's table (σ = jitter) and MPE's (jitter and timing error in quadrature)."""
    return get_table(request.param, RHO)


def _integrate(f, lo=-300.0, hi=3.0e4):
    pts = [p for p in (-20.0, 0.0, 5.0, 20.0, 100.0, 500.0, 2000.0, 8000.0) if lo < p < hi]
    return quad(f, lo, hi, points=pts, limit=800, epsabs=1e-10)[0]


@pytest.mark.parametrize("xi", [0.05, 0.5, 1.0, 3.0, 15.0])
def test_plain_pandel_integrates_to_one(xi):
    f = lambda t: np.exp(pandel_logpdf(np.array([t]), xi, RHO))[0]  # noqa: E731
    total = quad(f, 0, np.inf, limit=500)[0] if xi >= 1 else \
        quad(f, 0, 1.0, limit=500)[0] + quad(f, 1.0, np.inf, limit=500)[0]
    assert total == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("xi", [0.05, 0.5, 2.0, 8.0, 30.0])
def test_convoluted_pandel_integrates_to_one(xi):
    f = lambda t: np.exp(convoluted_logpdf(np.array([t]), xi, SIGMA, RHO))[0]  # noqa: E731
    assert _integrate(f) == pytest.approx(1.0, abs=2e-4)


@pytest.mark.parametrize("xi", [0.05, 0.5, 2.0, 8.0, 30.0])
def test_table_integrates_to_one(table, xi):
    lx = np.log(xi)
    f = lambda t: np.exp(table.logpdf(np.array([t]), np.array([lx])))[0]  # noqa: E731
    assert _integrate(f) == pytest.approx(1.0, abs=6e-3)


def _brute_force(t: float, xi: float) -> float:
    """∫ p(x) N(t - x; σ) dx by quadrature; x = u^(1/ξ) removes the x^(ξ-1) singularity."""
    gauss = lambda z: np.exp(-0.5 * (z / SIGMA) ** 2) / (SIGMA * np.sqrt(2 * np.pi))  # noqa
    x_hi = t + 12 * SIGMA
    if x_hi <= 0:
        return 0.0
    x_lo = max(0.0, t - 12 * SIGMA)
    norm = np.exp(xi * np.log(RHO) - gammaln(xi + 1.0))

    def integrand(u):
        x = u ** (1.0 / xi)
        return np.exp(-RHO * x) * gauss(t - x)

    return norm * quad(integrand, x_lo**xi, x_hi**xi, limit=500, epsabs=0, epsrel=1e-10)[0]


@pytest.mark.parametrize("xi", [0.1, 0.7, 2.0, 6.0])
@pytest.mark.parametrize("t", [-12.0, -3.0, 0.0, 2.5, 10.0, 40.0, 119.0, 150.0, 400.0])
def test_convoluted_matches_brute_force(t, xi):
    exact = np.exp(convoluted_logpdf(np.array([t]), xi, SIGMA, RHO))[0]
    assert exact == pytest.approx(_brute_force(t, xi), rel=1e-3)


def test_table_close_to_exact(table):
    rng = np.random.default_rng(3)
    xi = np.exp(rng.uniform(np.log(XI_MIN), np.log(XI_MAX), 5000))
    t = rng.uniform(-8 * table.sigma, 3000.0, 5000)
    exact = convoluted_logpdf(t, xi, table.sigma, RHO)
    approx = table.logpdf(t, np.log(xi))
    ok = exact > -30  # where it can matter against the noise floor
    err = (approx - exact)[ok]
    assert np.sqrt(np.mean(err**2)) < 0.01
    assert np.abs(err).max() < 0.06


@pytest.mark.parametrize("xi", [0.1, 1.0, 5.0])
def test_table_survival_matches_cdf(table, xi):
    lx = np.array([np.log(xi)])
    for t in (-5.0, 3.0, 30.0, 200.0, 900.0):
        cdf = _integrate(lambda s: np.exp(convoluted_logpdf(np.array([s]), xi,
                                                            table.sigma))[0], -300.0, t)
        sf = np.exp(table.logsf(np.array([t]), lx))[0]
        assert sf == pytest.approx(1.0 - cdf, abs=3e-3)
    # beyond 30σ the survival is the plain Pandel one
    assert table.logsf(np.array([2000.0]), lx)[0] == pytest.approx(
        plain_logsf(2000.0, xi, RHO), abs=1e-2)


@pytest.mark.parametrize("n", [2, 10, 50])
def test_mpe_pdf_integrates_to_one(table, n):
    lx = np.array([np.log(1.5)])

    def f(t):
        lp, ls = table.logpdf(np.array([t]), lx, logsf=True)
        return np.exp(np.log(n) + lp[0] + (n - 1) * ls[0])

    assert _integrate(f) == pytest.approx(1.0, abs=1e-2)


def test_finite_for_extreme_residuals(table):
    t = np.array([-1e12, -1e6, -1e3, -50.0, -1e-9, 0.0, 1e-9, 1e4, 1e6, 1e12])
    for xi in (XI_MIN / 10, XI_MIN, 1.0, XI_MAX, 1e3):
        lx = np.full(t.shape, np.log(xi))
        lp, ls = table.logpdf(t, lx, logsf=True)
        assert np.isfinite(lp).all() and np.isfinite(ls).all()
        assert (ls <= 1e-12).all()
    exact = convoluted_logpdf(np.linspace(-400, 2e4, 301)[:, None],
                              np.array([XI_MIN, 0.5, 5.0, 60.0])[None, :], SIGMA)
    assert np.isfinite(exact).all()
    # monotone far tails: further out is never more likely
    far = table.logpdf(np.array([-1e3, -1e6, 1e5, 1e7]), np.zeros(4))
    assert far[1] < far[0] and far[3] < far[2]


def test_nelder_mead_batched_independent_problems():
    centres = np.array([[1.0, -2.0, 3.0], [10.0, 5.0, -7.0], [-3.0, 0.5, 0.0]])

    def fun(x, rows):
        c = centres[rows][:, None, :]
        return ((x - c) ** 2 * np.array([1.0, 4.0, 0.25])).sum(axis=-1)

    x0 = np.zeros((3, 3))
    x, f, _ = nelder_mead_batched(fun, x0, np.ones(3), 400, f_tol=1e-12, x_tol=1e-7)
    assert np.allclose(x, centres, atol=1e-4)
    assert (f < 1e-7).all()
    # a problem alone follows exactly the same path as inside the batch
    for i in range(3):
        xi, fi, _ = nelder_mead_batched(lambda x, r, i=i: fun(x, np.array([i])[r]),
                                        x0[i:i + 1], np.ones(3), 400, f_tol=1e-12,
                                        x_tol=1e-7)
        assert np.array_equal(xi[0], x[i]) and fi[0] == f[i]


def test_nelder_mead_handles_nan_and_inf():
    def fun(x, rows):
        f = (x**2).sum(axis=-1)
        return np.where(x[..., 0] > 3.0, np.nan, f)

    x, f, _ = nelder_mead_batched(fun, np.array([[2.0, 2.0]]), np.array([2.0, 2.0]), 200)
    assert np.isfinite(f).all() and np.abs(x).max() < 1e-2


def test_table_cache_roundtrip_corruption_and_readonly(tmp_path, monkeypatch):
    from recos.track.table import PandelTable

    monkeypatch.setenv("SKYSCAN_CACHE", str(tmp_path))
    built = PandelTable(5.0, RHO)
    files = list(tmp_path.glob("pandel-*.npz"))
    assert len(files) == 1
    again = PandelTable(5.0, RHO)  # loaded, bit-identical
    assert np.array_equal(again.logpdf_table, built.logpdf_table)
    assert np.array_equal(again.logsf_table, built.logsf_table)
    files[0].write_bytes(b"PK\x03\x04 not a table")  # corrupt: rebuilt and rewritten
    rebuilt = PandelTable(5.0, RHO)
    assert np.array_equal(rebuilt.logpdf_table, built.logpdf_table)
    assert np.array_equal(np.load(files[0])["logsf"], built.logsf_table)
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    monkeypatch.setenv("SKYSCAN_CACHE", str(blocker))  # cannot write: still works
    assert np.array_equal(PandelTable(5.0, RHO).logpdf_table, built.logpdf_table)
