"""skyscan_tui.healpix (healpy's conventions on hpgeom) against healpy: the same pixel
indices and disc sets, angles within a stated ulp bound, and the scan CLI never importing
healpy or matplotlib."""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap

import healpy as hp
import numpy as np
import pytest

from skyscan_tui import healpix as H
from tests.conftest import cli_env

SMALL = (1, 2, 4, 8, 16, 64)
LARGE = (512, 4096, 8192)
N_RANDOM = 100_000


def _rng(*key: int) -> np.random.Generator:
    return np.random.default_rng([20260, *key])


def _random_angles(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    theta = np.arccos(rng.uniform(-1.0, 1.0, n))
    phi = rng.uniform(-2 * np.pi, 4 * np.pi, n)  # φ outside [0, 2π) wraps
    return theta, phi


def _special_angles(nside: int) -> tuple[np.ndarray, np.ndarray]:
    """Poles, φ = 0 / 2π / face edges, |z| = 2/3, the equator, ring and pixel boundaries."""
    zb = 2.0 / 3.0
    thetas = [0.0, 1e-300, 1e-12, 1e-8, 0.009999, 0.01, 0.010001, 0.5, math.acos(zb),
              np.nextafter(math.acos(zb), 0), np.nextafter(math.acos(zb), 4), math.pi / 2,
              math.acos(-zb), np.nextafter(math.acos(-zb), 0), np.nextafter(math.acos(-zb), 4),
              3.14159 - 0.01, math.pi - 1e-8, math.pi - 1e-12, math.pi]
    # ring centres and the colatitudes half-way between rings
    ring = np.arange(1, 4 * nside)
    zr = np.where(ring < nside, 1 - ring**2 / (3.0 * nside**2),
                  np.where(ring > 3 * nside, (4 * nside - ring) ** 2 / (3.0 * nside**2) - 1,
                           4.0 / 3 - 2.0 * ring / (3 * nside)))
    tr = np.arccos(zr)
    thetas += list(tr[:: max(1, len(tr) // 64)])
    thetas += list(0.5 * (tr[1:] + tr[:-1])[:: max(1, len(tr) // 64)])
    phis = [0.0, -0.0, 1e-300, -1e-300, -1e-17, 2 * math.pi, np.nextafter(2 * math.pi, 0),
            np.nextafter(2 * math.pi, 7), -2 * math.pi, 6 * math.pi]
    phis += [k * math.pi / 4 for k in range(9)]
    phis += [np.nextafter(k * math.pi / 4, 10) for k in range(8)]
    phis += [np.nextafter(k * math.pi / 4, -10) for k in range(1, 9)]
    phis += list(np.arange(0, 4 * nside) * (math.pi / (2 * nside)) if nside <= 64
                 else np.arange(0, 256) * (math.pi / (2 * nside)))
    t, p = np.meshgrid(np.array(thetas, float), np.array(phis, float))
    return t.ravel(), p.ravel()


# Tolerances. Pixel indices must agree exactly. Angles and vectors are floats computed by two
# separately compiled copies of the HEALPix C++ code (healpy's and hpgeom's) or by numpy,
# whose SIMD code paths are chosen per CPU: the last bits may legitimately differ between
# builds and machines (1 ulp seen with numpy 2.4 on AVX-512), so angles are compared within
# ANGLE_ULP units in the last place, and vector components (|c| <= 1, where an ulp of a tiny
# component means nothing) within VEC_ATOL, a few ulp of 1.
ANGLE_ULP = 4
VEC_ATOL = 4 * np.finfo(np.float64).eps


def assert_angles_close(got, want) -> None:
    np.testing.assert_array_max_ulp(np.asarray(got), np.asarray(want), maxulp=ANGLE_ULP)


# ------------------------------------------------------------------------- every pixel
@pytest.mark.parametrize("nside", SMALL)
def test_every_pixel_matches_healpy(nside):
    pix = np.arange(12 * nside * nside, dtype=np.int64)
    th0, ph0 = hp.pix2ang(nside, pix, nest=True)
    th1, ph1 = H.pix2ang(nside, pix)
    assert th1.dtype == np.float64 and ph1.dtype == np.float64
    assert_angles_close(th1, th0)
    assert_angles_close(ph1, ph0)
    thr, phr = H.pix2ang(nside, pix, nest=False)
    th0r, ph0r = hp.pix2ang(nside, pix, nest=False)
    assert_angles_close(thr, th0r)
    assert_angles_close(phr, ph0r)

    ring = H.nest2ring(nside, pix)
    assert ring.dtype == np.int64
    np.testing.assert_array_equal(ring, hp.nest2ring(nside, pix))
    np.testing.assert_array_equal(H.ring2nest(nside, pix), hp.ring2nest(nside, pix))
    assert np.array_equal(np.sort(ring), pix)  # a permutation
    np.testing.assert_array_equal(H.ring2nest(nside, ring), pix)

    nb = H.get_all_neighbours(nside, pix)
    assert nb.shape == (8, pix.size) and nb.dtype == np.int64
    np.testing.assert_array_equal(nb, hp.get_all_neighbours(nside, pix, nest=True))
    np.testing.assert_array_equal(H.get_all_neighbours(nside, pix, nest=False),
                                  hp.get_all_neighbours(nside, pix, nest=False))
    if nside >= 2:  # at the 8 points where only 3 faces meet, each of the 3 lacks one
        assert (nb < 0).sum() == 8 * 3

    # centres back to their pixel, in both schemes
    np.testing.assert_array_equal(H.ang2pix(nside, th0, ph0), pix)
    np.testing.assert_array_equal(H.ang2pix(nside, th0, ph0, nest=False),
                                  hp.ang2pix(nside, th0, ph0, nest=False))
    vec = H.ang2vec(th0, ph0)
    np.testing.assert_allclose(vec, hp.ang2vec(th0, ph0), rtol=0, atol=VEC_ATOL)
    np.testing.assert_array_equal(H.vec2pix(nside, *vec.T), pix)


def _pixel_holds(nside, pix, theta, phi):
    """The direction is no farther from the pixel centre than a pixel's size allows."""
    vc = H.ang2vec(*H.pix2ang(nside, pix))
    cosd = np.sum(vc * H.ang2vec(theta, phi), axis=-1)
    return np.arccos(np.clip(cosd, -1, 1)) <= 1.5 * np.sqrt(4 * np.pi / (12 * nside**2))


def _on_a_pixel_edge(nside, theta, phi):
    """Directions within 1e-9 rad of a pixel boundary (where the last bit of a float may
    tip the pixel either way): the pixel a hair away in θ or φ is a different one."""
    here = hp.ang2pix(nside, theta, phi, nest=True)
    out = np.zeros(theta.shape, bool)
    for dt, dp in ((1e-9, 0), (-1e-9, 0), (0, 1e-9), (0, -1e-9)):
        t = np.clip(theta + dt, 0, np.pi)
        out |= hp.ang2pix(nside, t, np.mod(phi + dp, 2 * np.pi), nest=True) != here
    return out


@pytest.mark.parametrize("nside", SMALL + LARGE)
def test_special_angles_match_healpy(nside):
    th, ph = _special_angles(nside)
    got = H.ang2pix(nside, th, ph)
    assert got.dtype == np.int64 and np.all((got >= 0) & (got < 12 * nside**2))
    want = hp.ang2pix(nside, th, ph, nest=True)
    # directions exactly on a boundary may go to either side; everywhere else: the same pixel
    edge = _on_a_pixel_edge(nside, th, ph)
    differ = got != want
    assert not np.any(differ & ~edge), list(zip(th[differ & ~edge], ph[differ & ~edge],
                                                strict=True))
    # everywhere, including on edges, the pixel we return holds the direction
    assert np.all(_pixel_holds(nside, got, th, ph))
    ring = H.ang2pix(nside, th, ph, nest=False)
    assert np.all(_pixel_holds(nside, H.ring2nest(nside, ring), th, ph))
    vec = H.ang2vec(th, ph)
    np.testing.assert_allclose(vec, hp.ang2vec(th, ph), rtol=0, atol=VEC_ATOL)
    for v in (vec, 3.7 * vec):  # unnormalised vectors too
        got_v = H.vec2pix(nside, *v.T)
        want_v = hp.vec2pix(nside, *v.T, nest=True)
        assert not np.any((got_v != want_v) & ~edge)
        assert np.all(_pixel_holds(nside, got_v, th, ph))
    axes = np.array([[0, 0, 1], [0, 0, -1], [1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0],
                     [1e-300, 0, 1], [-1e-300, -0.0, -1], [1, 1, 0], [1, -1, 0]], float)
    np.testing.assert_array_equal(H.vec2pix(nside, *axes.T),
                                  hp.vec2pix(nside, *axes.T, nest=True))


# ---------------------------------------------------------------------- random samples
@pytest.mark.parametrize("nside", LARGE)
def test_random_pixels_and_angles_match_healpy(nside):
    rng = _rng(nside)
    pix = rng.integers(0, 12 * nside * nside, N_RANDOM)
    # the first and last pixel of every face, and pixels on the face edges (NESTED: the
    # in-face index interleaves x and y bits, so x = 0 or y = 0 edges are easy to list)
    face = np.arange(12)[:, None] * nside * nside
    edge = np.arange(nside, dtype=np.int64)
    spread = np.zeros_like(edge)
    for bit in range(int(np.log2(nside))):
        spread |= ((edge >> bit) & 1) << (2 * bit)
    on_edges = np.concatenate([(face + spread).ravel(), (face + (spread << 1)).ravel()])
    pix = np.concatenate([pix, face.ravel(), face.ravel() + nside * nside - 1, on_edges])

    th0, ph0 = hp.pix2ang(nside, pix, nest=True)
    th1, ph1 = H.pix2ang(nside, pix)
    assert_angles_close(th1, th0)
    assert_angles_close(ph1, ph0)
    np.testing.assert_array_equal(H.nest2ring(nside, pix), hp.nest2ring(nside, pix))
    np.testing.assert_array_equal(H.ring2nest(nside, pix), hp.ring2nest(nside, pix))
    np.testing.assert_array_equal(H.get_all_neighbours(nside, pix),
                                  hp.get_all_neighbours(nside, pix, nest=True))

    th, ph = _random_angles(rng, N_RANDOM)  # random: no direction lies on an edge
    np.testing.assert_array_equal(H.ang2pix(nside, th, ph), hp.ang2pix(nside, th, ph, nest=True))
    np.testing.assert_array_equal(H.ang2pix(nside, th, ph, nest=False),
                                  hp.ang2pix(nside, th, ph, nest=False))
    # directions within a pixel or two of the poles
    tp = np.concatenate([rng.uniform(0, 3 / nside, 2000), np.pi - rng.uniform(0, 3 / nside, 2000)])
    pp = rng.uniform(0, 2 * np.pi, tp.size)
    np.testing.assert_array_equal(H.ang2pix(nside, tp, pp), hp.ang2pix(nside, tp, pp, nest=True))
    vec = rng.normal(size=(N_RANDOM, 3))
    np.testing.assert_array_equal(H.vec2pix(nside, *vec.T), hp.vec2pix(nside, *vec.T, nest=True))


def test_scalars_shapes_and_errors():
    th, ph = H.pix2ang(8, 100)
    assert np.ndim(th) == 0 and np.ndim(ph) == 0
    assert_angles_close((th, ph), hp.pix2ang(8, 100, nest=True))
    assert H.ang2pix(8, 0.3, 1.0) == hp.ang2pix(8, 0.3, 1.0, nest=True)
    assert np.ndim(H.nest2ring(8, 5)) == 0
    assert H.get_all_neighbours(8, 5).shape == (8,)
    assert H.get_all_neighbours(8, np.zeros((2, 3), int)).shape == (8, 2, 3)
    assert H.ang2vec(0.3, 1.0).shape == (3,)
    assert H.pix2ang(8, np.array([], np.int64))[0].shape == (0,)
    for bad in (0, 3, 12, 2**30, 2.5):
        with pytest.raises(ValueError):
            H.pix2ang(bad, 0)
    with pytest.raises(ValueError):
        H.pix2ang(8, 768)
    with pytest.raises(ValueError):
        H.nest2ring(8, -1)
    with pytest.raises(ValueError):
        H.ang2pix(8, -0.1, 0.0)
    with pytest.raises(ValueError):
        H.ang2pix(8, np.nan, 0.0)
    with pytest.raises(ValueError):
        H.vec2pix(8, 0.0, 0.0, 0.0)
    with pytest.raises(ValueError):
        H.query_disc(8, [0, 0, 0], 0.1)
    with pytest.raises(TypeError):
        H.pix2ang(8, "x")


# --------------------------------------------------------------------------- query_disc
@pytest.mark.parametrize("nside,rmax,n", [(1, 2.0, 60), (8, 1.0, 200), (64, 0.4, 200),
                                          (512, 0.05, 120)])
def test_query_disc_matches_healpy(nside, rmax, n):
    rng = _rng(nside, 1)
    for i in range(n):
        vec = rng.normal(size=3) * rng.uniform(0.2, 3.0)
        if i % 13 == 0:  # centred on a pole
            vec = np.array([0.0, 0.0, rng.choice([-1.0, 1.0])])
        radius = rng.uniform(0, rmax)
        if i % 29 == 0:
            radius = rng.choice([0.0, 1e-9, np.pi - 1e-9, np.pi, 4.0])
        want = np.sort(hp.query_disc(nside, vec, radius, inclusive=False, nest=True))
        got = H.query_disc(nside, vec, radius)
        assert got.dtype == np.int64
        np.testing.assert_array_equal(got, want, err_msg=f"vec={vec!r} radius={radius!r}")
        if i % 7 == 0:
            np.testing.assert_array_equal(
                H.query_disc(nside, vec, radius, nest=False),
                np.sort(hp.query_disc(nside, vec, radius, inclusive=False, nest=False)))
        if i % 11 == 0 and radius < np.pi:  # every pixel overlapping the disc
            got_in = H.query_disc(nside, vec, radius, inclusive=True)
            np.testing.assert_array_equal(
                got_in, np.sort(hp.query_disc(nside, vec, radius, inclusive=True, nest=True)))
            assert np.all(np.isin(got, got_in))


def test_query_disc_tiny_discs_at_high_nside():
    rng = _rng(8192, 2)
    for _ in range(40):
        vec = rng.normal(size=3)
        radius = rng.uniform(0, 3e-3)
        want = np.sort(hp.query_disc(8192, vec, radius, nest=True))
        np.testing.assert_array_equal(H.query_disc(8192, vec, radius), want)


# ------------------------------------------------------------------- no healpy in a scan
def test_scan_imports_neither_healpy_nor_matplotlib(tmp_path, sim_event_file):
    """An in-process dummy scan (all result files written) leaves both out of sys.modules."""
    code = textwrap.dedent(f"""
        import sys
        from skyscan_tui import cli
        try:
            rc = cli.main(["scan", {str(sim_event_file)!r}, "--reco", "dummy",
                           "-o", {str(tmp_path / "out")!r}, "--progress", "none",
                           "--nside-progression", "8:0,64:4"])
        except SystemExit as exc:
            rc = exc.code
        assert rc in (0, None), rc
        heavy = sorted(m for m in sys.modules
                       if m.split(".")[0] in ("healpy", "matplotlib"))
        print("HEAVY", heavy)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, env=cli_env())
    assert proc.returncode == 0, proc.stderr
    assert "HEAVY []" in proc.stdout, proc.stdout
    assert list((tmp_path / "out").glob("*.npz"))
