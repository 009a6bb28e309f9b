"""Terminal skymap raster (pure numpy): positions, multi-resolution overlay, live merging."""

from __future__ import annotations

import math

import healpy as hp
import numpy as np
import pytest

from skyscan_tui import projections, raster
from skyscan_tui.tasks import empty_results


def _gauss_map(nside: int, ra0: float, dec0: float, sigma_deg: float = 5.0):
    ipix = np.arange(12 * nside * nside)
    th, ph = hp.pix2ang(nside, ipix, nest=True)
    psi = raster.angular_distance(ra0, dec0, ph, np.pi / 2 - th)
    return ipix, 0.5 * (psi / math.radians(sigma_deg)) ** 2


def _brightest_cell(frame_values: np.ndarray) -> tuple[int, int]:
    r, c = np.unravel_index(np.nanargmin(frame_values), frame_values.shape)
    return int(r), int(c)


@pytest.mark.parametrize("ra_deg,dec_deg", [(180.0, 0.0), (90.0, 0.0), (270.0, 45.0),
                                             (30.0, -60.0)])
def test_mollweide_minimum_lands_where_expected(ra_deg, dec_deg):
    ra0, dec0 = math.radians(ra_deg), math.radians(dec_deg)
    levels = {32: _gauss_map(32, ra0, dec0)}
    proj = raster.mollweide(120, 40)
    values, _ = raster.sample(proj, levels)
    row, col = _brightest_cell(values)
    # analytic Mollweide position (map centred on RA 180°, RA growing to the left)
    scale, cx, cy = proj.params["scale"], proj.params["cx"], proj.params["cy"]
    th = projections._moll_theta(dec0)
    x = cx - 2 * math.sqrt(2) / math.pi * (ra0 - math.pi) * math.cos(th) * scale
    y = cy - math.sqrt(2) * math.sin(th) * scale
    assert abs(col + 0.5 - x) <= 2.0 and abs(row + 0.5 - y) <= 2.0
    # and the rendered colour there is the brightest of the colormap (yellow end)
    frame = raster.render(proj, levels, contours=False, graticule=False, labels=False)
    colour = frame.fg[row // 2, col] if row % 2 == 0 else frame.bg[row // 2, col]
    r, g, b = (colour >> 16) & 255, (colour >> 8) & 255, colour & 255
    assert r > 200 and g > 200 and b < 80
    assert proj.locate(ra0, dec0) == (row, col) or abs(proj.locate(ra0, dec0)[1] - col) <= 2


def test_east_is_left_on_the_full_sky():
    proj = raster.mollweide(100, 30)
    r1 = proj.locate(math.radians(200), 0.0)
    r2 = proj.locate(math.radians(160), 0.0)
    assert r1 is not None and r2 is not None and r1[1] < r2[1]


def test_gnomonic_minimum_at_centre_and_offsets():
    ra0, dec0 = math.radians(77.0), math.radians(-30.0)
    levels = {256: _gauss_map(256, ra0 + math.radians(2.0), dec0, sigma_deg=0.5)}
    proj = raster.gnomonic(80, 30, ra0, dec0, math.radians(5.0))
    values, _ = raster.sample(proj, levels)
    row, col = _brightest_cell(values)
    # 2° east of the centre lies left of the middle column; same row as the centre
    assert col < proj.width / 2 - 3
    exp = proj.locate(ra0 + math.radians(2.0), dec0)
    assert exp is not None and abs(exp[1] - col) <= 3 and abs(exp[0] - row) <= 3
    # the centre of the view looks at (ra0, dec0)
    crow, ccol = int(proj.params["cy"]), int(proj.params["cx"])
    assert math.degrees(raster.angular_distance(ra0, dec0, proj.ra[crow, ccol],
                                                proj.dec[crow, ccol])) < 0.2


def test_finest_level_wins_and_coarse_fills_the_rest():
    ra0, dec0 = math.radians(120.0), math.radians(10.0)
    coarse_ipix, coarse_llh = _gauss_map(8, ra0, dec0)
    # a finer level around the best coarse pixel, with a recognisable constant value
    best = int(coarse_ipix[np.argmin(coarse_llh)])
    fine_ipix = np.arange(best * 64, best * 64 + 64)  # its 64 children at nside 64
    levels = {8: (coarse_ipix, coarse_llh), 64: (fine_ipix, np.full(64, -5.0))}
    proj = raster.gnomonic(60, 20, ra0, dec0, math.radians(15.0))
    values, src = raster.sample(proj, levels)
    inside_best = (proj.fine >> (2 * (raster.FINE_ORDER - 3))) == best
    assert inside_best.any()
    assert np.all(values[inside_best] == -5.0) and np.all(src[inside_best] == 64)
    others = proj.inside & ~inside_best
    assert np.all(src[others] == 8) and np.all(values[others] >= 0)
    # a NaN (failed) fine pixel shows the coarse value underneath
    levels[64][1][0] = np.nan
    values, src = raster.sample(proj, levels)
    failed = (proj.fine >> (2 * (raster.FINE_ORDER - 6))) == fine_ipix[0]
    if failed.any():
        assert np.all(src[failed] == 8)


def test_skylevels_merges_live_rows_keeping_the_lowest():
    sl = raster.SkyLevels()
    rows = empty_results(4)
    rows["nside"] = [8, 8, 64, 8]
    rows["ipix"] = [5, 3, 100, 5]
    rows["llh"] = [2.0, 1.0, 0.5, 1.5]
    sl.add_rows(rows[:2])
    v0 = sl.version
    sl.add_rows(rows[2:])
    assert sl.version > v0
    lv = sl.levels()
    assert list(lv) == [8, 64]
    np.testing.assert_array_equal(lv[8][0], [3, 5])
    np.testing.assert_array_equal(lv[8][1], [1.0, 1.5])
    assert sl.best() == (64, 100, 0.5)
    more = empty_results(1)
    more["nside"], more["ipix"], more["llh"] = 8, 5, np.nan
    sl.add_rows(more)
    assert sl.levels()[8][1][1] == 1.5  # a NaN report never hides a finite value
    assert len(sl) == 3


def test_skylevels_from_result(sim_event):
    from skyscan_tui.results import ScanResult, empty_level

    lv = empty_level(np.array([1, 2, 3]))
    lv["llh"] = [3.0, 1.0, 2.0]
    res = ScanResult(1, 2, 60000.0, "SIM", "dummy", levels={8: lv})
    sl = raster.SkyLevels.from_result(res)
    assert sl.best() == (8, 2, 1.0)


def test_frame_runs_and_half_blocks():
    ra0, dec0 = math.radians(10.0), math.radians(20.0)
    levels = {16: _gauss_map(16, ra0, dec0)}
    proj = raster.mollweide(60, 20)
    frame = raster.render(proj, levels, best=(ra0, dec0))
    assert frame.chars.shape == (20, 60)
    text = frame.text()
    assert "▀" in text and "✚" in text
    for y in range(frame.height):
        runs = frame.row_runs(y)
        assert sum(len(t) for t, _, _ in runs) == 60
    # outside the ellipse: blank cells with no colours
    assert frame.chars[0, 0] == " " and frame.fg[0, 0] == raster.NONE


def raster_disc(nside: int, ra: float, dec: float, radius: float) -> np.ndarray:
    vec = hp.ang2vec(np.pi / 2 - dec, ra)
    return np.sort(hp.query_disc(nside, vec, radius, nest=True))


def test_local_frame_projection_matches_coords():
    from skyscan_tui.coords import local_to_equatorial

    mjd = 60000.25
    proj = raster.mollweide(80, 24, frame="local", mjd=mjd)
    ra, dec = local_to_equatorial(math.radians(60.0), math.radians(100.0), mjd)
    where = proj.locate(float(ra), float(dec))
    assert where is not None
    r, c = where
    assert math.degrees(raster.angular_distance(ra, dec, proj.ra[r, c], proj.dec[r, c])) < 6
    with pytest.raises(ValueError):
        raster.mollweide(80, 24, frame="local")
