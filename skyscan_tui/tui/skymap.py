"""``SkymapWidget``: a live multi-resolution −log L map drawn with Textual's line API.

The widget does no physics: :mod:`skyscan_tui.raster` projects, samples and colours; here
each text row becomes one cached :class:`~textual.strip.Strip` of upper-half-block runs
(foreground = upper sample, background = lower sample, truecolor). The projection is
computed once per size/view; a data change only re-samples (a few ms) and clears the strips.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from rich.color import Color
from rich.segment import Segment
from rich.style import Style
from textual.strip import Strip
from textual.widget import Widget

from skyscan_tui import raster

__all__ = ["SkymapWidget", "StripPainter"]


class _StyleCache(dict):
    """Run key ``(fg + 1) << 25 | (bg + 1)`` → Style, built on first use."""

    def __init__(self) -> None:
        super().__init__()
        self._colors: dict[int, Color | None] = {-1: None}

    def _color(self, rgb: int) -> Color | None:
        c = self._colors.get(rgb)
        if c is None and rgb >= 0:
            c = self._colors[rgb] = Color.from_rgb(rgb >> 16, (rgb >> 8) & 255, rgb & 255)
        return c

    def __missing__(self, key: int) -> Style:
        if len(self) > 65536:  # bounded: a long session must not grow forever
            self.clear()
        fg, bg = (key >> 25) - 1, (key & 0x1FFFFFF) - 1
        # from_color skips rich's style-string parsing (the slow part of a cold redraw)
        st = self[key] = Style.from_color(self._color(fg), self._color(bg))
        return st


class StripPainter:
    """Turns :class:`raster.Frame` rows into Strips, with a shared style cache."""

    def __init__(self) -> None:
        self._styles = _StyleCache()

    def style(self, key: int) -> Style:
        """Style of a run key ``(fg + 1) << 25 | (bg + 1)`` (see ``Frame.row_keyed_runs``)."""
        return self._styles[key]

    def strip(self, frame: raster.Frame, y: int, width: int) -> Strip:
        """Row ``y`` of ``frame`` as a styled strip ``width`` cells wide."""
        if y >= frame.height:
            return Strip.blank(width)
        styles = self._styles
        segs = [Segment(text, styles[key]) for text, key in frame.row_keyed_runs(y)]
        return Strip(segs, frame.width).adjust_cell_length(width)


class SkymapWidget(Widget):
    """Full-sky Mollweide (``kind="mollweide"``) or zoom (``kind="zoom"``) of a SkyLevels."""

    DEFAULT_CSS = """
    SkymapWidget {
        border: round $primary-darken-2;
        border-title-color: $text;
        border-subtitle-color: $text-muted;
        min-height: 8;
    }
    """

    def __init__(self, sky: raster.SkyLevels, kind: str = "mollweide", *,
                 frame: str = "equatorial", mjd: float | None = None,
                 markers: Any = (), box: Any = None,
                 name: str | None = None, id: str | None = None,
                 classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        if kind not in ("mollweide", "zoom"):
            raise ValueError(f"unknown skymap kind {kind!r}")
        self.sky = sky
        self.kind = kind
        self.sky_frame = frame
        self.mjd = mjd
        self.quantity = "dllh"  # or "llh": what the legend reports
        self.markers: list[Any] = list(markers)  # skyscan_tui.overlays.Marker [deg]
        self.box = box  # (ra_lo, ra_hi, dec_lo, dec_hi) [rad]: the 90 % RA/Dec box, or None
        self.painter = StripPainter()
        self._proj: raster.Projection | None = None
        self._proj_key: tuple | None = None
        self._frame: raster.Frame | None = None
        self._strips: dict[int, Strip] = {}
        self._strips_prev: dict[int, Strip] = {}
        self._drawn_version = -1
        self.zoom_view: tuple[float, float, float] | None = None  # ra0, dec0, radius [rad]
        self.border_title = "full sky" if kind == "mollweide" else "zoom on best fit"

    # ---------------------------------------------------------------- data → frame
    def _projection(self, width: int, height: int, levels: dict) -> raster.Projection | None:
        if width < 4 or height < 2:
            return None
        if self.kind == "mollweide":
            key = ("moll", width, height, self.sky_frame, self.mjd)
            if key != self._proj_key:
                self._proj = raster.mollweide(width, height, frame=self.sky_frame,
                                              mjd=self.mjd)
                self._proj_key = key
            return self._proj
        best = self.sky.best()
        if best is None:
            return None
        from skyscan_tui.sky import pixel_radec

        ra0, dec0 = (float(v) for v in pixel_radec(best[0], best[1]))
        radius = raster.zoom_radius(levels, ra0, dec0, rows=2 * height)
        # keep the view while the best fit stays well inside it (no jitter on every batch)
        if self.zoom_view is not None and self._proj is not None and self._proj_key and \
                self._proj_key[1:3] == (width, height):
            pra, pdec, prad = self.zoom_view
            moved = raster.angular_distance(pra, pdec, ra0, dec0)
            if moved < 0.25 * prad and 0.7 < radius / prad < 1.4:
                return self._proj
        self.zoom_view = (ra0, dec0, radius)
        self._proj = raster.gnomonic(width, height, ra0, dec0, radius)
        self._proj_key = ("zoom", width, height)
        return self._proj

    def redraw(self, force: bool = False) -> bool:
        """Re-sample the map if its data or the size changed; returns True if redrawn."""
        width, height = self.content_size.width, self.content_size.height
        if not force and self.sky.version == self._drawn_version and self._frame is not None \
                and (self._frame.width, self._frame.height) == (width, height):
            return False
        self.build_frame(width, height)
        self.refresh()
        return True

    def build_frame(self, width: int, height: int) -> raster.Frame | None:
        """Compute the frame for a ``width × height`` cell area (no Textual calls)."""
        levels = self.sky.levels()
        self._drawn_version = self.sky.version
        self._strips_prev, self._strips = self._strips, {}
        proj = self._projection(width, height, levels)
        if proj is None or not levels:
            self._frame = None
            self.border_subtitle = "waiting for results" if proj is not None or not levels \
                else ""
            return None
        vmin, vmax = self.sky.min_max()
        best = self.sky.best()
        best_radec = None
        if best is not None:
            from skyscan_tui.sky import pixel_radec

            best_radec = tuple(float(v) for v in pixel_radec(best[0], best[1]))
        stretch = "log"
        old_frame, old_strips = self._frame, self._strips_prev
        marks = [(math.radians(m.ra_deg), math.radians(m.dec_deg), m.kind)
                 for m in self.markers]
        frame = raster.render(proj, levels, vmin=vmin,
                              vmax=vmax if self.kind == "mollweide" else None,
                              stretch=stretch, best=best_radec, markers=marks,
                              box=self.box if self.kind == "zoom" else None)
        self._frame = frame
        # rows that did not change keep their Strip: a live batch usually touches a few rows
        if old_frame is not None and old_frame.chars.shape == frame.chars.shape:
            same = ((old_frame.fg == frame.fg).all(axis=1) & (old_frame.bg == frame.bg).all(axis=1)
                    & (old_frame.chars == frame.chars).all(axis=1))
            for y in np.flatnonzero(same).tolist():
                if y in old_strips:
                    self._strips[y] = old_strips[y]
        self.border_subtitle = self._legend(vmin, vmax, proj)
        return self._frame

    def _legend(self, vmin: float, vmax: float, proj: raster.Projection) -> str:
        if not math.isfinite(vmin):
            return "no finite values yet"
        span = f"0…{vmax - vmin:.4g}" if self.quantity == "dllh" else f"{vmin:.4g}…{vmax:.4g}"
        what = "Δ(−log L)" if self.quantity == "dllh" else "−log L"
        keys = "".join(f" · {raster.OVERLAY_GLYPHS[k][0]} {name}"
                       for k, name in (("seed", "seeds"), ("truth", "truth"), ("mark", "mark"),
                                       ("source", "sources"))
                       if any(m.kind == k for m in self.markers))
        if proj.kind == "gnomonic":
            box = " · ┈ 90% box" if self.box is not None else ""
            return (f"{what} {span} · ±{math.degrees(proj.params['radius']):.2g}° · "
                    f"grid {proj.params['step_deg']:g}° · ✚ best{keys} · 50%/90%{box}")
        frame = " · az/elevation" if self.sky_frame == "local" else ""
        return f"{what} {span} (bright = best, log scale){frame} · ✚ best{keys} · 50%/90%"

    def set_markers(self, markers: Any) -> None:
        """Replace the overlay markers (``overlays.Marker``) and redraw."""
        self.markers = list(markers)
        self.redraw(force=True)

    # ---------------------------------------------------------------- Textual hooks
    def on_resize(self, event: Any) -> None:
        self.redraw(force=True)

    def on_mount(self) -> None:
        self.redraw(force=True)

    def render_line(self, y: int) -> Strip:
        width = self.content_size.width
        strip = self._strips.get(y)
        if strip is None:
            frame = self._frame
            if frame is None or (frame.width, frame.height) != (width,
                                                                 self.content_size.height):
                if frame is not None:  # resized: rebuild before drawing
                    self.build_frame(width, self.content_size.height)
                    frame = self._frame
                if frame is None:
                    return Strip.blank(width, self.rich_style)
            strip = self.painter.strip(frame, y, width)
            self._strips[y] = strip
        return strip

    def set_frame(self, frame: str) -> None:
        """Switch the full-sky frame: "equatorial" or "local" (needs ``mjd``)."""
        if frame == "local" and self.mjd is None:
            raise ValueError("the local frame needs the event time")
        self.sky_frame = frame
        self.redraw(force=True)
