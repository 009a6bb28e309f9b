"""Contour files: boundary rings, GeoJSON, MOC, ds9 and text (products issue, item 1)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from skyscan_tui import contours as C
from skyscan_tui import healpix as hp
from skyscan_tui.stats import analyse, wilks_ts
from tests.conftest import run_cli
from tests.products.test_science import synthetic_scan

CASES = {  # ra0 [rad], dec0 [rad]
    "plain": (1.0, 0.3),
    "ra0-wrap": (0.002, -0.4),  # straddles RA = 0 (the text and ds9 files wrap)
    "antimeridian": (math.pi + 0.003, 0.2),  # straddles RA = 180 (GeoJSON splits)
    "north-pole": (1.0, math.radians(89.6)),
    "south-pole": (4.0, math.radians(-89.7)),
}


@pytest.fixture(scope="module")
def stats():
    return {k: analyse(synthetic_scan(ra, dec, 0.8, 0.5)) for k, (ra, dec) in CASES.items()}


def _probe_points(st, radius_deg=6.0):
    """Finest-nside pixel centres around the best fit [deg] and whether the map has them in."""
    nmax = st.mo.max_nside
    ra0, dec0 = math.radians(st.ra_deg), math.radians(st.dec_deg)
    vec = hp.ang2vec(math.pi / 2 - dec0, ra0)
    pix = hp.query_disc(nmax, vec, math.radians(radius_deg))
    th, ph = hp.pix2ang(nmax, pix)
    return np.degrees(ph), 90.0 - np.degrees(th), st.mo.lookup(ph, math.pi / 2 - th)


def _inside_geojson_mpl(geom, ra, dec):
    """Independent check with matplotlib paths: in an outer ring and in none of its holes."""
    from matplotlib.path import Path

    lon = (np.asarray(ra) + 180.0) % 360.0 - 180.0
    pts = np.column_stack([lon, dec])
    polys = [geom["coordinates"]] if geom["type"] == "Polygon" else geom["coordinates"]
    out = np.zeros(len(pts), bool)
    for poly in polys:
        inside = Path(np.asarray(poly[0])).contains_points(pts)
        for hole in poly[1:]:
            inside &= ~Path(np.asarray(hole)).contains_points(pts)
        out |= inside
    return out


@pytest.mark.parametrize("case", list(CASES))
def test_geojson_and_moc_agree_with_the_map(stats, case, tmp_path):
    from mocpy import MOC

    st = stats[case]
    ra, dec, j = _probe_points(st)
    for c in C.contours(st, [0.5, 0.9, 0.997]):
        want = c.region.mask[j] & (j >= 0)
        assert want.sum() > 20  # the probe sees the region
        feat = C.geojson(c)
        geom = feat["geometry"]
        got = _inside_geojson_mpl(geom, ra, dec)
        assert np.array_equal(got, want), (case, c.label, int((got != want).sum()))
        assert all(C.point_in_geojson(geom, a, d) == w for a, d, w in
                   zip(ra[::37], dec[::37], want[::37], strict=True))
        polys = [geom["coordinates"]] if geom["type"] == "Polygon" else geom["coordinates"]
        for poly in polys:
            for k, ring in enumerate(poly):
                r = np.asarray(ring)
                assert r[0].tolist() == r[-1].tolist()
                assert len(np.unique(r[:-1], axis=0)) == len(r) - 1  # simple: no bridges
                assert np.all(np.abs(r[:, 0]) <= 180.0) and np.all(np.abs(r[:, 1]) <= 90.0)
                # right-hand rule: outer rings counter-clockwise, holes clockwise
                area = C._signed_area(r[:-1, 0], r[:-1, 1])
                assert (area > 0) == (k == 0)
        path = tmp_path / f"{case}-{c.label}.moc.fits"
        path.write_bytes(C.moc_fits_bytes(st.mo, c.region.mask))
        moc = MOC.from_fits(str(path))
        import astropy.units as u

        got_moc = moc.contains_lonlat(ra * u.deg, dec * u.deg)
        assert np.array_equal(got_moc, want), (case, c.label)


def test_pole_and_antimeridian_geometry(stats):
    g = C.geojson(C.contours(stats["north-pole"], [0.9])[0])["geometry"]
    lats = [p[1] for poly in ([g["coordinates"]] if g["type"] == "Polygon"
                              else g["coordinates"]) for p in poly[0]]
    assert max(lats) == 90.0  # closed along the pole
    g = C.geojson(C.contours(stats["antimeridian"], [0.9])[0])["geometry"]
    assert g["type"] == "MultiPolygon"  # split at lon = ±180
    lons = {p[0] for poly in g["coordinates"] for p in poly[0]}
    assert 180.0 in lons and -180.0 in lons


def test_rings_are_closed_and_hold_holes():
    """An annulus-shaped region: one outer ring, one hole, both tracing pixel edges."""
    st = analyse(synthetic_scan(2.0, 0.1, 0.8, 0.8))
    mask = (st.ts > 1.0) & (st.ts <= 6.0)
    rings = C.region_rings(st.mo, mask)
    assert len(rings) == 2
    c = C.Contour("custom", 0.5, st.region(0.5), rings)
    c.region.mask = mask
    g = C.geojson(c)["geometry"]
    assert g["type"] == "Polygon" and len(g["coordinates"]) == 2
    ra, dec, j = _probe_points(st)
    want = mask[j] & (j >= 0)
    assert np.array_equal(_inside_geojson_mpl(g, ra, dec), want)


def test_annulus_cut_by_the_antimeridian():
    """Outer ring and hole both cross lon = ±180: two C-shaped pieces, neither with a hole."""
    st = analyse(synthetic_scan(math.pi, 0.1, 0.8, 0.8))
    mask = (st.ts > 1.0) & (st.ts <= 6.0)
    c = C.Contour("custom", 0.5, st.region(0.5), C.region_rings(st.mo, mask))
    c.region.mask = mask
    g = C.geojson(c)["geometry"]
    assert g["type"] == "MultiPolygon" and [len(p) for p in g["coordinates"]] == [1, 1]
    for poly in g["coordinates"]:
        r = np.asarray(poly[0])
        assert C._signed_area(r[:-1, 0], r[:-1, 1]) > 0
        assert len(np.unique(r[:-1], axis=0)) == len(r) - 1  # no point visited twice
    ra, dec, j = _probe_points(st)
    assert np.array_equal(_inside_geojson_mpl(g, ra, dec), mask[j] & (j >= 0))


def test_whole_sky_and_empty_regions():
    import dataclasses

    st = analyse(synthetic_scan(1.0, 0.3, 0.8, 0.5, progression=((8, 0),)))
    reg = st.region(0.9)
    everything = dataclasses.replace(reg, mask=np.ones(len(st.mo), bool))
    nothing = dataclasses.replace(reg, mask=np.zeros(len(st.mo), bool))
    g = C.geojson(C.Contour("wilks", 0.9, everything, []))["geometry"]
    assert C.point_in_geojson(g, 10.0, -80.0) and C.point_in_geojson(g, 200.0, 45.0)
    assert C.region_rings(st.mo, everything.mask) == []
    assert C.geojson(C.Contour("wilks", 0.9, nothing, []))["geometry"] is None
    # nside 8 only: coarse edges get intermediate points (no segment longer than 0.5 deg)
    ring = C.region_rings(st.mo, reg.mask)[0]
    step = np.degrees(np.arccos(np.clip(np.sum(ring * np.roll(ring, -1, 0), 1), -1, 1)))
    assert step.max() < 0.5


def test_wilks_levels():
    assert wilks_ts(0.5) == pytest.approx(2 * math.log(2))
    assert wilks_ts(0.9) == pytest.approx(2 * math.log(10))
    assert wilks_ts(0.997) == pytest.approx(-2 * math.log(0.003))
    assert C.parse_levels("50,90,99.7") == [0.5, 0.9, 0.997]
    assert C.parse_levels("0.68") == [0.68]
    for bad in ("0", "100", "x", "150"):
        with pytest.raises(Exception, match="level"):
            C.parse_levels(bad)


def test_text_and_ds9_files(stats):
    c = C.contours(stats["ra0-wrap"], [0.9])[0]
    rows = [line.split() for line in C.contour_text(c).splitlines()
            if line and not line.startswith("#")]
    assert rows[0] == ['"ra', '(deg)"', '"dec', '(deg)"']
    pts = np.array(rows[1:], float)
    assert np.all((pts[:, 0] >= 0) & (pts[:, 0] < 360))
    assert pts[0].tolist() == pts[-1].tolist()
    from astropy.io import ascii

    tab = ascii.read(C.contour_text(c))
    assert tab.colnames == ["ra (deg)", "dec (deg)"] and len(tab) == len(pts)
    reg = C.ds9_text(c).splitlines()
    assert reg[2] == "fk5" and reg[3].startswith("polygon(")
    nums = [float(x) for x in reg[3][8:-1].split(",")]
    assert len(nums) == 2 * (len(pts) - 1)


def test_contours_cli_and_scan_defaults(tmp_path):
    res = synthetic_scan(1.0, 0.3, 0.8, 0.5)
    paths = res.save(tmp_path / "scan")
    base = res.basename()
    for lab in ("50", "90"):
        assert paths[f"contour_{lab}_txt"].name == f"{base}.contour_{lab}.txt"
        feat = json.loads(paths[f"contour_{lab}_geojson"].read_text())["features"][0]
        assert feat["geometry"]["type"] == "Polygon"
    r = run_cli("contours", paths["npz"], "--levels", "50,99.7", "--format",
                "txt,geojson,moc,ds9", "-o", tmp_path / "c")
    assert r.returncode == 0, r.stderr
    names = sorted(p.name for p in (tmp_path / "c").iterdir())
    for lab in ("50", "99.7"):
        for ext in ("txt", "geojson", "reg", "moc.fits"):
            assert f"{base}.contour_{lab}.{ext}" in names
    r = run_cli("contours", paths["npz"], "--credible", "--levels", "90", "-o", tmp_path / "d")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "d" / f"{base}.credible_90.txt").is_file()
    r = run_cli("contours", paths["npz"], "--format", "png")
    assert r.returncode == 2 and "format" in r.stderr


@pytest.mark.parametrize("level", [0.39, 0.68, 0.95, 0.997])
def test_any_level_areas_match_the_analytic_ellipse(stats, level):
    """Gaussian llh (σ 0.8 × 0.5 deg): 2ΔLLH ≤ k and the credible region are both the
    ellipse of area π σx σy k with k = −2 ln(1 − level)."""
    from skyscan_tui.stats import credible_region, likelihood_region

    st = stats["plain"]
    want = math.pi * 0.8 * 0.5 * wilks_ts(level)
    lr = likelihood_region(st, level)
    assert lr.ts == pytest.approx(wilks_ts(level))
    assert lr.area_deg2 == pytest.approx(want, rel=0.02)
    assert credible_region(st, level).area_deg2 == pytest.approx(want, rel=0.04)


def test_summary_levels_cli(tmp_path):
    paths = synthetic_scan(1.0, 0.3, 0.8, 0.5).save(tmp_path)
    r = run_cli("summary", paths["npz"], "--levels", "68,99.7")
    assert r.returncode == 0, r.stderr
    assert "68%: 2 dLLH <= 2.279" in r.stdout and "99.7%: 2 dLLH <= 11.62" in r.stdout
    r = run_cli("summary", paths["npz"], "--levels", "68", "--json")
    (row,) = json.loads(r.stdout)["levels"]
    assert row["level"] == 0.68 and row["credible"]["method"] == "credible"
    r = run_cli("summary", paths["npz"], "--levels", "120")
    assert r.returncode == 2 and "level" in r.stderr


def test_two_pieces_and_pixels_touching_at_a_corner():
    from skyscan_tui.results import ScanResult
    from tests.products.test_science import quadratic_llh

    base = synthetic_scan(2.0, 0.5, 2.0, 2.0)
    levels = {}
    for n, lv in base.levels.items():  # two separate minima, 17 deg apart
        lv = lv.copy()
        lv["llh"] = np.minimum(quadratic_llh(n, lv["ipix"], 2.0, 0.5, 2, 2),
                               quadratic_llh(n, lv["ipix"], 2.3, 0.5, 2, 2))
        levels[n] = lv
    st = analyse(ScanResult(1, 2, 60000.0, "SIM", "t", levels=levels))
    c = C.contours(st, [0.9])[0]
    g = C.geojson(c)["geometry"]
    assert g["type"] == "MultiPolygon" and len(g["coordinates"]) == 2
    for ra0 in (2.0, 2.3):
        assert C.point_in_geojson(g, math.degrees(ra0), math.degrees(0.5))
    assert not C.point_in_geojson(g, math.degrees(2.15), math.degrees(0.5))
    # two nside-8 pixels that share only a corner: two rings of four edges each
    st8 = analyse(synthetic_scan(2.0, 0.5, 2.0, 2.0, progression=((8, 0),)))
    p = 300
    north = int(hp.get_all_neighbours(8, p)[3])
    mask = np.isin(st8.mo.ipix, [p, north])
    rings = C.region_rings(st8.mo, mask, step=2)
    assert sorted(len(r) for r in rings) == [8, 8]


def test_plot_levels(tmp_path):
    from skyscan_tui.plot import zoom_figure

    res = synthetic_scan(1.0, 0.3, 0.8, 0.5)
    fig = zoom_figure(res, analyse(res), (0.68, 0.9, 0.997))
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert [lab.split()[0] for lab in labels[:4]] == ["50%", "90%", "68%", "99.7%"]
    paths = res.save(tmp_path)
    r = run_cli("plot", paths["npz"], "--levels", "68", "--format", "png", "-o", tmp_path / "p")
    assert r.returncode == 0, r.stderr
    assert len(list((tmp_path / "p").glob("*.png"))) == 2


def test_close_pairs_match_kdtree():
    # the ring chaining pairs edge ends within tol without scipy; it must find exactly the
    # pairs cKDTree finds: clusters of 1-4 near-coincident points among random ones
    from scipy.spatial import cKDTree

    rng = np.random.default_rng(7)
    for n, tol in ((0, 1e-3), (1, 1e-3), (300, 1e-3), (2000, 1e-4), (500, 0.2)):
        base = rng.normal(size=(n, 3))
        reps = rng.integers(1, 5, size=n)
        pts = np.repeat(base, reps, axis=0)
        pts += rng.normal(scale=tol / 10, size=pts.shape)
        pts[::7, 0] = pts[0, 0] if len(pts) else 0.0  # equal x, far apart in y, z
        got = {tuple(p) for p in C._close_pairs(pts, tol).tolist()}
        want = {tuple(p) for p in cKDTree(pts).query_pairs(tol, output_type="ndarray").tolist()}
        assert got == want and (n < 300 or len(want) > 100), (n, len(got), len(want))
