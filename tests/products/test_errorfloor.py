"""--error-floor: the probability map convolved with a Gaussian (products issue, item 3)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from skyscan_tui.errorfloor import smooth_map
from skyscan_tui.stats import analyse, wilks_ts
from tests.conftest import run_cli
from tests.products.test_science import synthetic_scan

K90 = wilks_ts(0.9)


@pytest.fixture(scope="module")
def narrow():
    return synthetic_scan(1.0, 0.3, 0.3, 0.3)  # a circular Gaussian of σ 0.3 deg


@pytest.mark.parametrize("floor", [0.2, 0.5, 1.0])
def test_area_widens_as_for_a_gaussian(narrow, floor):
    """σ_tot² = σ_map² + σ_floor²: the 90 % areas are π σ_tot² χ²₂(0.9) (small angles)."""
    st = analyse(narrow, error_floor_deg=floor)
    assert st.prob.sum() == pytest.approx(1.0, abs=1e-12)
    assert np.all(st.prob >= 0)
    expected = math.pi * (0.3 ** 2 + floor ** 2) * K90
    assert st.credible[1].area_deg2 == pytest.approx(expected, rel=0.02)
    assert st.region(0.9).area_deg2 == pytest.approx(expected, rel=0.02)
    assert st.region(0.5).area_deg2 == pytest.approx(expected * wilks_ts(0.5) / K90, rel=0.03)
    plain = analyse(narrow)
    assert plain.credible[1].area_deg2 == pytest.approx(math.pi * 0.09 * K90, rel=0.02)
    assert st.credible[1].area_deg2 > 1.3 * plain.credible[1].area_deg2
    assert float(np.nanmin(st.dllh)) == 0.0 and st.error_floor_deg == floor
    assert st.systematic_included and "1 deg" in analyse(narrow, error_floor_deg=1).systematic


def test_zero_floor_is_the_plain_map(narrow):
    a, b = analyse(narrow), analyse(narrow, error_floor_deg=0.0)
    assert np.array_equal(a.prob, b.prob) and b.smoothing is None
    assert not b.systematic_included and "statistical only" in b.systematic
    c = analyse(narrow, "ic160427a")
    assert c.systematic_included and "IC160427A" in c.systematic


def test_against_healpy_harmonic_smoothing():
    """A full-sky nside-64 map: the direct sum agrees with healpy.smoothing."""
    hp = pytest.importorskip("healpy")
    res = synthetic_scan(2.0, -0.5, 4.0, 4.0, progression=((64, 0),))
    st = analyse(res)
    sigma = 3.0
    new, _, info = smooth_map(st.mo, st.dllh, st.prob, sigma, 21.2)
    ring = hp.nest2ring(64, st.mo.ipix)
    m = np.zeros(12 * 64 * 64)
    m[ring] = st.prob
    ref = hp.smoothing(m, sigma=math.radians(sigma), lmax=3 * 64 - 1, iter=3)[ring]
    ref /= ref.sum()
    assert np.max(np.abs(new - ref)) < 0.01 * ref.max()
    assert new.sum() == pytest.approx(1.0) and info.nside_w == 64


def test_failed_pixels_stay_unknown():
    res = synthetic_scan(1.0, 0.3, 0.5, 0.5)
    lv = res.levels[8]
    lv["llh"][np.argsort(lv["llh"])[-5:]] = np.nan  # five far-away coarse pixels failed
    st = analyse(res, error_floor_deg=0.5)
    unknown = ~np.isfinite(analyse(res).dllh)
    assert unknown.sum() == 5
    assert np.all(np.isnan(st.dllh[unknown])) and np.all(st.prob[unknown] == 0)
    assert st.prob.sum() == pytest.approx(1.0)


def test_cli_products_say_systematic_included(tmp_path):
    res = synthetic_scan(1.0, 0.3, 0.5, 0.5)
    paths = res.save(tmp_path / "scan")
    r = run_cli("summary", paths["npz"], "--error-floor", "1", "--thresholds", "ic160427a")
    assert r.returncode == 0, r.stderr
    text = " ".join(r.stdout.split())
    assert "error floor of 1 deg" in text and "IC160427A" in text
    r = run_cli("summary", paths["npz"], "--json", "--error-floor", "0.5")
    assert '"systematic_included": true' in r.stdout and '"working_nside": 256' in r.stdout
    r = run_cli("contours", paths["npz"], "--error-floor", "1", "-o", tmp_path / "c")
    assert r.returncode == 0, r.stderr
    first = next((tmp_path / "c").glob("*.contour_90.txt")).read_text().splitlines()[0]
    assert first.startswith("# systematic included") and "1 deg" in first
    r = run_cli("flatmaps", paths["npz"], "--error-floor", "1", "--flat-nside", "64",
                "-o", tmp_path / "f")
    assert r.returncode == 0, r.stderr
    from astropy.io import fits

    with fits.open(next((tmp_path / "f").glob("*probability.fits.gz"))) as hdul:
        assert hdul[1].header["SYSTEMAT"] is True and hdul[1].header["ERRFLOOR"] == 1.0
    r = run_cli("query", paths["npz"], "--radec", "57.3", "17.2", "--error-floor", "1")
    assert r.returncode == 0 and "error floor of 1 deg" in r.stdout
    r = run_cli("plot", paths["npz"], "--error-floor", "1", "--format", "png",
                "-o", tmp_path / "p")
    assert r.returncode == 0, r.stderr
    assert len(list((tmp_path / "p").glob("*.png"))) == 2


@pytest.mark.parametrize("command", ["summary", "contours", "flatmaps", "query", "plot"])
@pytest.mark.parametrize("value", ["-1", "abc", "nan", "90"])
def test_bad_error_floor(tmp_path, command, value):
    r = run_cli(command, tmp_path / "none.npz", "--error-floor", value)
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1 and "--error-floor" in r.stderr


def test_realistic_pull_calibration_is_a_systematic(tmp_path):
    """A scan whose reco applied the realistic pull calibration (real events, recos/auto.py)
    says so wherever the errors are described: stats, alert.txt, the summary."""
    import dataclasses

    from skyscan_tui.products import alert_text
    from skyscan_tui.stats import REALISTIC_PULL

    plain = synthetic_scan(1.0, 0.3, 0.3, 0.3)
    res = dataclasses.replace(plain, likelihood=f"MPE ...; -log L / p^2 with p=1.1: "
                              f"{REALISTIC_PULL}")
    st = analyse(res)
    assert st.systematic_included and st.pull_calibration == REALISTIC_PULL
    assert st.systematic == ("systematic included: pull calibrated on the realistic "
                             "simulation (SPICE Mie)")
    both = analyse(res, error_floor_deg=0.5).systematic
    assert REALISTIC_PULL in both and "0.5 deg" in both
    assert "pull calibrated on the realistic simulation" in " ".join(
        alert_text(res, st).split())
    assert not analyse(plain).systematic_included  # the matched calibration is not one
    paths = res.save(tmp_path / "scan")
    r = run_cli("summary", paths["npz"])
    assert r.returncode == 0, r.stderr
    assert "systematic included: pull calibrated on the realistic simulation" in " ".join(
        r.stdout.split())


def test_a_reopened_scan_keeps_its_floor_and_thresholds(tmp_path):
    """summary/contours of a saved result default to the scan's own systematic (kept in the
    result file); the flags still override it."""
    res = synthetic_scan(1.0, 0.3, 0.5, 0.5)
    res.meta.update(error_floor_deg=1.0, thresholds="ic160427a")
    npz = res.save(tmp_path / "scan")["npz"]
    r = run_cli("summary", npz)
    assert r.returncode == 0, r.stderr
    text = " ".join(r.stdout.split())
    assert "error floor of 1 deg" in text and "IC160427A" in text
    r = run_cli("summary", npz, "--thresholds", "wilks", "--error-floor", "0")
    assert "Errors are statistical only" in " ".join(r.stdout.split())
    r = run_cli("contours", npz, "-o", tmp_path / "c")
    first = next((tmp_path / "c").glob("*.contour_90.txt")).read_text().splitlines()[0]
    assert "1 deg" in first and "IC160427A" in first
