"""The app's zoom fits the 90 % region, overlays on the maps, the results screen's query field
(issue 20, items 4, 6 and 8)."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("textual")

from skyscan_tui import raster, sky  # noqa: E402
from skyscan_tui.projections import (  # noqa: E402
    MIN_REGION_SUBPIXELS,
    ZOOM_FACTOR,
    region_radius,
    zoom_radius,
)
from skyscan_tui.results import ScanResult, empty_level  # noqa: E402
from skyscan_tui.tui.app import SkyscanApp  # noqa: E402
from skyscan_tui.tui.screens import ResultsScreen  # noqa: E402
from skyscan_tui.tui.skymap import SkymapWidget  # noqa: E402
from tests.products.test_science import quadratic_llh  # noqa: E402
from tests.tui.conftest import run_async, wait_for  # noqa: E402

RA0, DEC0 = math.radians(77.4), math.radians(5.7)
R90 = math.sqrt(2 * math.log(10))  # 90 % radius of a round Gaussian, in σ


def _levels(sigma_deg: float) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """An analytic round Gaussian refined as the engine refines (8 → 64 → 512)."""
    out: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    ipix = np.arange(768, dtype=np.int64)
    out[8] = ipix, quadratic_llh(8, ipix, RA0, DEC0, sigma_deg, sigma_deg)
    for prev, nside, n in ((8, 64, 12), (64, 512, 24)):
        ipix = sky.refine(prev, out[prev][0], out[prev][1], nside, n)
        out[nside] = ipix, quadratic_llh(nside, ipix, RA0, DEC0, sigma_deg, sigma_deg)
    return out


def _result(sigma_deg: float = 1.0) -> ScanResult:
    levels = {}
    for nside, (ipix, llh) in _levels(sigma_deg).items():
        lv = empty_level(ipix)
        lv["llh"], lv["variation"] = llh, 0
        levels[nside] = lv
    ra, dec = math.degrees(RA0), math.degrees(DEC0)
    return ScanResult(run_id=138632, event_id=31747601, mjd=60312.123456, event_type="SIM",
                      reco="dummy", likelihood="analytic", levels=levels,
                      meta={"overlays": {
                          "seeds": [{"name": "l2_online_SplineMPE", "ra_deg": ra + 0.8,
                                     "dec_deg": dec + 0.3}],
                          "truth": {"name": "truth", "ra_deg": ra - 0.5,
                                    "dec_deg": dec - 1.2}}})


def _best(levels):
    sl = raster.SkyLevels.from_maps(levels)
    n, ip, _ = sl.best()
    return tuple(float(v) for v in sky.pixel_radec(n, ip))


@pytest.mark.parametrize("sigma_deg, pixel_deg", [(0.4, 0.115), (1.0, 0.115), (5.0, 0.92)])
def test_zoom_is_about_three_radii_of_the_90_region(sigma_deg, pixel_deg):
    levels = _levels(sigma_deg)
    ra0, dec0 = _best(levels)
    r90 = region_radius(levels, ra0, dec0)
    # the region's radius within a pixel of the finest level holding its edge
    assert math.degrees(r90) == pytest.approx(R90 * sigma_deg, abs=pixel_deg)
    radius = zoom_radius(levels, ra0, dec0, rows=60)
    assert radius == pytest.approx(ZOOM_FACTOR * r90)


@pytest.mark.parametrize("sigma_deg, rows", [(0.03, 40), (1.0, 40), (1.0, 8), (5.0, 20)])
def test_the_90_contour_is_always_visible_in_the_zoom(sigma_deg, rows):
    """Tiny (unresolved: one pixel), normal and large regions, large and tiny views: the
    90 % region is drawn a few sub-pixels across, with its outline, and inside the view
    unless the view is too small for both (then it fills the view)."""
    levels = _levels(sigma_deg)
    ra0, dec0 = _best(levels)
    height = rows // 2
    radius = zoom_radius(levels, ra0, dec0, rows=rows)
    proj = raster.gnomonic(2 * height, height, ra0, dec0, radius)
    values, _ = raster.sample(proj, levels)
    vmin = min(float(np.nanmin(llh)) for _, llh in levels.values())
    region = np.isfinite(values) & (2 * (values - vmin) <= raster.WILKS_2DLLH[90])
    rws, cols = np.nonzero(region)
    assert rws.size > 2
    across = max(np.ptp(rws), np.ptp(cols)) + 1
    assert across >= MIN_REGION_SUBPIXELS - 2  # a few sub-pixels, whatever the sizes
    avail = 2 * height - 2  # the last text row holds the RA labels
    if avail >= ZOOM_FACTOR * MIN_REGION_SUBPIXELS:
        assert rws.min() > 0 and rws.max() < avail - 1  # not cut by the view's edge
        assert cols.min() > 0 and cols.max() < 2 * height - 1
        assert across <= 0.6 * avail  # and not filling it either: ~1/3 of the height
    frame = raster.render(proj, levels, vmin=vmin)
    c90 = int(raster.pack_rgb(raster.CONTOUR_RGB[90]))
    assert ((frame.fg == c90) | (frame.bg == c90)).any()


def test_markers_are_drawn_with_their_glyphs():
    levels = _levels(1.0)
    ra0, dec0 = _best(levels)
    proj = raster.gnomonic(40, 20, ra0, dec0, zoom_radius(levels, ra0, dec0, rows=40))
    truth = (RA0 - math.radians(0.5), DEC0 - math.radians(1.2))
    frame = raster.render(proj, levels, best=(ra0, dec0),
                          markers=[(*truth, "truth"), (RA0 + 3.0, DEC0, "seed")])
    row, col = proj.locate(*truth)
    assert frame.chars[row // 2, col] == raster.OVERLAY_GLYPHS["truth"][0]
    assert frame.fg[row // 2, col] == int(raster.pack_rgb(raster.OVERLAY_GLYPHS["truth"][1]))
    assert raster.OVERLAY_GLYPHS["seed"][0] not in frame.text()  # off the view: not drawn
    brow, bcol = proj.locate(ra0, dec0)
    assert frame.chars[brow // 2, bcol] == "✚"


def test_the_90_box_is_drawn_dotted_on_its_edges():
    levels = _levels(1.0)
    ra0, dec0 = _best(levels)
    proj = raster.gnomonic(60, 30, ra0, dec0, zoom_radius(levels, ra0, dec0, rows=60))
    d = math.radians(2.0)
    box = (ra0 - d / math.cos(dec0), ra0 + d / math.cos(dec0), dec0 - d, dec0 + d)
    from skyscan_tui.raster import _box_subpixels

    mask = _box_subpixels(proj, box)
    assert mask.sum() > 25  # 4 edges of ~17 sub-pixels, every other one
    # every marked sub-pixel lies on an edge: its RA or Dec is at the box's limits
    ra, dec = proj.ra[mask], proj.dec[mask]
    step = math.tan(proj.params["radius"]) / ((2 * 30 - 2) / 2)  # a sub-pixel [rad]
    on_dec = np.minimum(abs(dec - box[2]), abs(dec - box[3])) <= 1.5 * step
    on_ra = np.minimum(abs(ra - box[0]), abs(ra - box[1])) * math.cos(dec0) <= 1.5 * step
    assert (on_dec | on_ra).all()
    frame = raster.render(proj, levels, box=box)
    cbox = int(raster.pack_rgb(raster.BOX_RGB))
    assert ((frame.fg == cbox) | (frame.bg == cbox)).sum() > 20
    assert not (raster.render(proj, levels).fg == cbox).any()


class _ResultApp(SkyscanApp):
    def __init__(self, result, marks=(), sources=(), **kw):
        super().__init__(jobs=1, recos=["dummy"], executors=[("serial", "serial")],
                         executor_notes=[], **kw)
        self._result, self._marks, self._sources = result, marks, sources

    def open_first_screen(self) -> None:
        self.push_screen(ResultsScreen(self._result, marks=self._marks,
                                       sources=self._sources))


SIZE = (150, 46)


@run_async
async def test_results_screen_shows_overlays_and_a_visible_90_contour(tmp_path):
    app = _ResultApp(_result(1.0), cwd=tmp_path, outdir_root=tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, ResultsScreen)
                       and app.screen.query("#zoom"), 10, "results")
        screen = app.screen
        zoom = screen.query_one("#zoom", SkymapWidget)
        await wait_for(pilot, lambda: zoom._frame is not None, 10, "the zoom's frame")
        frame = zoom._frame
        c90 = int(raster.pack_rgb(raster.CONTOUR_RGB[90]))
        assert ((frame.fg == c90) | (frame.bg == c90)).sum() >= 8
        # the view is about three 90 % radii
        r90 = region_radius(screen.sky.levels(), *zoom.zoom_view[:2])
        assert zoom.zoom_view[2] == pytest.approx(ZOOM_FACTOR * r90, rel=0.01)
        assert raster.OVERLAY_GLYPHS["truth"][0] in frame.text()
        assert "★ truth" in zoom.border_subtitle and "○ seeds" in zoom.border_subtitle
        text = str(screen.query_one("#result-text").render())
        assert "SplineMPE" in text and "how well it did" in text
        assert "from the best fit; in the 50 % region" in text


@run_async
async def test_query_field_answers_and_survives_bad_input(tmp_path):
    app = _ResultApp(_result(1.0), cwd=tmp_path, outdir_root=tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, ResultsScreen)
                       and app.screen.query("#query-input"), 10, "results")
        screen = app.screen
        field = screen.query_one("#query-input")
        answer = screen.query_one("#query-answer")
        await pilot.press("slash")  # focuses the field
        await wait_for(pilot, lambda: field.has_focus, 5, "focus on the query field")

        async def ask(text: str) -> str:
            field.value = ""
            await pilot.press(*text)  # typed as a user types (q, n, s, o stay text here)
            await pilot.press("enter")
            await pilot.pause()
            return str(answer.render())

        ra, dec = math.degrees(RA0), math.degrees(DEC0) + 1.7  # outside 50 %, inside 90 %
        out = await ask(f"{ra:.3f} {dec:.3f}")
        assert "from the best fit" in out and "credible level" in out
        assert "50 % region: outside · 90 % region: inside" in out
        assert not answer.has_class("error")
        for w in screen.query(SkymapWidget):
            assert [m.kind for m in w.markers][-1] == "mark"
        out = await ask(f"{ra:.3f}, {math.degrees(DEC0):.3f}")
        assert "50 % region: inside · 90 % region: inside" in out
        for bad in ("nonsense", "10 95", "1 2 3", "", "q"):
            out = await ask(bad)
            assert len(out.strip().splitlines()) == 1, (bad, out)
            assert answer.has_class("error"), bad
        assert app.is_running and isinstance(app.screen, ResultsScreen)


@run_async
async def test_results_screen_draws_marks_and_catalogue_sources(tmp_path):
    from skyscan_tui.overlays import Marker

    ra, dec = math.degrees(RA0), math.degrees(DEC0)
    sources = (("inside A", ra + 0.5, dec), ("inside B", ra, dec - 1.0),
               ("outside", ra + 40.0, dec))
    app = _ResultApp(_result(1.0), marks=(Marker("my mark", ra - 1.0, dec + 1.0),),
                     sources=sources, cwd=tmp_path, outdir_root=tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, ResultsScreen)
                       and app.screen.query("#zoom"), 10, "results")
        screen = app.screen
        zoom = screen.query_one("#zoom", SkymapWidget)
        full = screen.query_one("#fullsky", SkymapWidget)
        await wait_for(pilot, lambda: zoom._frame is not None and full._frame is not None,
                       10, "the frames")
        src, mark = raster.OVERLAY_GLYPHS["source"][0], raster.OVERLAY_GLYPHS["mark"][0]
        assert src in zoom._frame.text() and mark in zoom._frame.text()
        assert src not in full._frame.text()  # a catalogue would bury the full sky
        assert zoom.box is not None and "90% box" in zoom.border_subtitle
        cbox = int(raster.pack_rgb(raster.BOX_RGB))
        assert ((zoom._frame.fg == cbox) | (zoom._frame.bg == cbox)).any()
        text = str(screen.query_one("#result-text").render())
        assert "2 of 3 sources in the 90 % region" in text
        assert "inside A" in text and "outside:" not in text and "my mark" in text
