"""Overlays on the plots (issue 20, item 6): a snapshot of the figures' artists.

Instead of comparing PNG bytes (which change with matplotlib's version and fonts), the
tests look at what the figure holds: each marker at its coordinates with its label, the
90 % bounding box at the region's extent, the colour bar's label, the graticule's style.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from skyscan_tui.overlays import Marker
from skyscan_tui.plot import mollweide_figure, plot_markers, zoom_figure
from tests.conftest import run_cli
from tests.products.test_overlays import _with_truth

RA0, DEC0 = math.degrees(1.0), math.degrees(0.3)


@pytest.fixture(scope="module")
def figures():
    import matplotlib.pyplot as plt

    result = _with_truth(1.7)  # SplineMPE 0.3° east of the best fit, truth 1.7° north
    stats = result.stats()
    markers = plot_markers(result, (Marker("my source", RA0 - 1.0, DEC0 - 1.0),),
                           (("4FGL inside", RA0 + 0.5, DEC0 + 0.5), ("far away", 10.0, -60.0)))
    zoom = zoom_figure(result, stats, (), markers)
    moll = mollweide_figure(result, stats, markers)
    yield result, stats, zoom, moll
    plt.close(zoom)
    plt.close(moll)


def _by_gid(ax, prefix):
    return {a.get_gid(): a for a in [*ax.lines, *ax.texts] if (a.get_gid() or "").startswith(
        prefix)}


def test_zoom_shows_labelled_markers_at_their_directions(figures):
    result, stats, fig, _ = figures
    ax = fig.axes[0]
    lines = _by_gid(ax, "marker:")
    expect = {"marker:seed:SplineMPE": (RA0 + 0.3, DEC0), "marker:truth:truth": (RA0, DEC0 + 1.7),
              "marker:mark:my source": (RA0 - 1.0, DEC0 - 1.0),
              "marker:source:4FGL inside": (RA0 + 0.5, DEC0 + 0.5)}
    for gid, (ra, dec) in expect.items():
        x, y = lines[gid].get_xydata()[0]
        # cartesian zoom: x is the RA offset from the best fit, y the Dec
        assert x == pytest.approx(ra - stats.ra_deg, abs=1e-6), gid
        assert y == pytest.approx(dec, abs=1e-6), gid
    assert "marker:source:far away" not in lines  # outside the window
    labels = {t.get_text() for t in _by_gid(ax, "label:").values()}
    assert labels == {"SplineMPE", "truth", "my source", "4FGL inside"}
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    for entry in ("online fits (seeds)", "truth (simulated)", "--mark", "catalogue sources",
                  "90% RA/Dec bounding box"):
        assert entry in legend


def test_zoom_draws_the_90_box_and_a_colour_bar_with_units(figures):
    _, stats, fig, _ = figures
    ax, cax = fig.axes[0], fig.axes[1]
    r90 = stats.region(0.9)
    (box,) = [ln for ln in ax.lines if ln.get_gid() == "box90"]  # the lower edge
    x, y = box.get_xydata().T
    assert np.nanmin(x) == pytest.approx(r90.ra_minus_deg, abs=1e-6)
    assert np.nanmax(x) == pytest.approx(r90.ra_plus_deg, abs=1e-6)
    assert np.allclose(y, stats.dec_deg + r90.dec_minus_deg)
    assert "2 Δ(−ln L)" in cax.get_ylabel() and "dimensionless" in cax.get_ylabel()
    # the 50 %/90 % thresholds are marked on the colour bar
    ys = sorted(ln.get_ydata()[0] for ln in cax.lines)
    assert ys == pytest.approx([stats.thresholds.ts50, stats.thresholds.ts90])


def test_full_sky_map_has_markers_and_a_quiet_graticule(figures):
    _, stats, _, fig = figures
    ax = fig.axes[0]
    lines = _by_gid(ax, "marker:")
    x, y = lines["marker:source:far away"].get_xydata()[0]
    assert x == pytest.approx(math.radians(180.0 - 10.0), abs=1e-9)  # x = π − RA
    assert y == pytest.approx(math.radians(-60.0))
    assert {"marker:seed:SplineMPE", "marker:truth:truth", "marker:mark:my source",
            "marker:best"} <= set(lines)
    grid = ax.xaxis.get_gridlines() + ax.yaxis.get_gridlines()
    assert grid and all(g.get_visible() for g in grid)
    assert all(g.get_linewidth() <= 0.35 and (g.get_alpha() or 1) <= 0.4 for g in grid)
    # under the contours and markers, above the colours
    assert all(g.get_zorder() < min(ln.get_zorder() for ln in lines.values()) for g in grid)
    assert all(g.get_zorder() > ax.collections[0].get_zorder() for g in grid)
    assert "dimensionless" in fig.axes[1].get_xlabel()


def test_polar_zoom_places_markers_on_the_tangent_plane():
    import matplotlib.pyplot as plt

    from tests.products.test_science import synthetic_scan

    result = synthetic_scan(1.0, math.radians(88.8), 0.8, 0.6)
    stats = result.stats()
    m = Marker("near pole", stats.ra_deg + 90.0, 89.5)
    fig = zoom_figure(result, stats, (), [m])
    try:
        (line,) = _by_gid(fig.axes[0], "marker:mark:").values()
        x, y = line.get_xydata()[0]
        # its angular distance from the best fit is kept on the tangent plane
        from skyscan_tui.projections import angular_distance

        d = math.degrees(float(angular_distance(
            math.radians(stats.ra_deg), math.radians(stats.dec_deg),
            math.radians(m.ra_deg), math.radians(m.dec_deg))))
        assert math.hypot(x, y) == pytest.approx(d, rel=1e-3)
        assert any(ln.get_gid() == "box90" for ln in fig.axes[0].lines)
    finally:
        plt.close(fig)


def test_plot_cli_marks_and_catalogue(tmp_path):
    paths = _with_truth(1.0).save(tmp_path / "res")
    cat = tmp_path / "cat.csv"
    cat.write_text(f"name,ra,dec\nA,{RA0 + 0.2},{DEC0}\n")
    bad_cat = tmp_path / "bad.csv"
    bad_cat.write_text("source,x,y\nA,1,2\n")
    r = run_cli("plot", paths["npz"], "-o", tmp_path / "p", "--format", "png",
                "--mark", f"{RA0},{DEC0 + 0.5},here", "--mark", "10,20", "--catalog", cat)
    assert r.returncode == 0, r.stderr
    assert len(list((tmp_path / "p").glob("*.png"))) == 2
    for bad in (["--mark", "10"], ["--mark", "x,1"], ["--mark", "1,-91"],
                ["--catalog", bad_cat]):
        r = run_cli("plot", paths["npz"], "-o", tmp_path / "q", *bad)
        assert r.returncode == 2, (bad, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("skyscan-tui: error:"), r.stderr
    assert not (tmp_path / "q").exists()  # refused before anything was drawn
    # `show` takes the same overlays for the app's maps, and refuses bad ones the same way
    r = run_cli("show", paths["npz"], "--mark", "1,2,x", "--catalog", cat)
    assert r.returncode == 0 and "Truth (simulated)" in r.stdout, r.stderr  # no terminal
    r = run_cli("show", paths["npz"], "--mark", "1,95")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_labels_of_nearby_markers_do_not_overlap():
    import matplotlib.pyplot as plt

    result = _with_truth(1.7)
    near = [Marker("SplineMPE x", RA0 + 0.50, DEC0 + 0.5),
            Marker("BestFit x", RA0 + 0.51, DEC0 + 0.5), Marker("alone", RA0 - 1.5, DEC0)]
    fig = zoom_figure(result, result.stats(), (), near)
    try:
        texts = {t.get_text(): t for t in fig.axes[0].texts if t.get_gid()}
        assert texts["SplineMPE x"].xyann[1] != texts["BestFit x"].xyann[1]  # stacked
        assert texts["alone"].xyann == texts["SplineMPE x"].xyann  # the usual place
    finally:
        plt.close(fig)
