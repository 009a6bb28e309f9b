"""Skymap pictures: full-sky Mollweide and a zoom around the best fit (PNG and PDF).

Both plots show TS = 2 Δ(−ln L) of the multi-order map (``skyscan_tui.stats``) and the 50 % /
90 % regions of the chosen thresholds. RA increases to the left, as on the sky. The zoom is a
cartesian RA/Dec view with the aspect ratio of the sky at the best fit's declination; the
contours go through the multi-order pixel centres (linear interpolation between them).
matplotlib is imported inside the functions with the Agg backend, so importing this module
is cheap and never needs a display.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

import numpy as np

from skyscan_tui.errors import UserError
from skyscan_tui.fileio import atomic_write_bytes
from skyscan_tui.stats import SkyStats

__all__ = ["plot_result", "mollweide_figure", "zoom_figure", "plot_markers", "FORMATS"]

FORMATS = ("png", "pdf")
_CONTOUR_COLOURS = ("white", "red")
# overlay markers per kind (skyscan_tui.overlays.Marker): matplotlib marker, face, size
_MARKER_STYLE = {"seed": ("P", "white", 10), "truth": ("D", "lime", 8),
                 "mark": ("X", "magenta", 9), "source": ("o", "none", 6)}
_SOURCE_EDGE = "orange"
_MAX_SOURCE_LABELS = 25  # catalogue names labelled on the zoom (nearest the best fit)
_TS_LABEL = "TS = 2 Δ(−ln L) w.r.t. the best fit (dimensionless)"
_EXTRA_COLOURS = ("lightgrey", "deepskyblue", "lime", "orange")  # dashed --levels contours


def _mpl():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return matplotlib, plt


def _title(result: Any) -> str:
    etype = result.event_type or "SIM"
    return f"Run {result.run_id}  Event {result.event_id}  ({etype})  MJD {result.mjd:.5f}"


def _subtitle(result: Any, stats: SkyStats) -> str:
    r90 = stats.region(0.9)
    return (f"{result.reco}, nside {'/'.join(str(n) for n in result.nsides)}: "
            f"RA {stats.ra_deg:.2f} (+{r90.ra_plus_deg:.2f} {r90.ra_minus_deg:.2f}), "
            f"Dec {stats.dec_deg:+.2f} (+{r90.dec_plus_deg:.2f} {r90.dec_minus_deg:.2f}) deg"
            + (f"; error floor {stats.error_floor_deg:g} deg" if stats.error_floor_deg else ""))


def _ts_at(stats: SkyStats, ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
    """TS sampled at (ra, dec) [rad]; NaN outside the map or where unknown."""
    idx = stats.mo.lookup(ra, dec)
    ts = stats.ts
    return np.where(idx >= 0, ts[np.clip(idx, 0, None)], np.nan)


def _draw_marker(ax: Any, x: float, y: float, m: Any, label: bool = True,
                 placed: list | None = None) -> None:
    """One overlay marker (gid ``marker:KIND:LABEL``) with its label beside it; ``placed``
    (label anchors so far, display units) stacks labels of nearby markers (e.g. SplineMPE
    and BestFit a few arcminutes apart) instead of printing them over each other."""
    shape, face, size = _MARKER_STYLE.get(m.kind, _MARKER_STYLE["mark"])
    edge = _SOURCE_EDGE if m.kind == "source" else "k"
    ax.plot([x], [y], marker=shape, ms=size, mfc=face, mec=edge, mew=1.2 if
            m.kind == "source" else 0.8, ls="none", zorder=6, gid=f"marker:{m.kind}:{m.label}")
    if label:
        dy = 4
        if placed is not None:
            px, py = ax.transData.transform((x, y))
            near = sum(1 for qx, qy in placed if abs(qx - px) < 60 and abs(qy - py) < 12)
            placed.append((px, py))
            dy += 11 * near
        ax.annotate(m.label, (x, y), xytext=(6, dy), textcoords="offset points", fontsize=7,
                    color="k", zorder=7, gid=f"label:{m.kind}:{m.label}",
                    bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="none", alpha=0.7))


def _marker_legend(markers: list) -> list:
    """Legend handles, one per marker kind present."""
    import matplotlib.lines as mlines

    names = {"seed": "online fits (seeds)", "truth": "truth (simulated)", "mark": "--mark",
             "source": "catalogue sources"}
    out = []
    for kind in ("seed", "truth", "mark", "source"):
        if any(m.kind == kind for m in markers):
            shape, face, size = _MARKER_STYLE[kind]
            out.append(mlines.Line2D([], [], marker=shape, ms=size * 0.8, mfc=face,
                                     mec=_SOURCE_EDGE if kind == "source" else "k",
                                     ls="none", label=names[kind]))
    return out


def plot_markers(result: Any, marks: tuple = (), sources: tuple = ()) -> list:
    """What plots draw over the map: the result's seeds and truth, ``marks`` (Markers) and
    catalogue ``sources`` ((name, ra, dec) [deg] rows of ``query.read_catalog``)."""
    from skyscan_tui.overlays import Marker, result_markers

    return [*result_markers(result), *marks,
            *(Marker(str(n), float(r) % 360.0, float(d), "source") for n, r, d in sources)]


def mollweide_figure(result: Any, stats: SkyStats, markers: tuple | list = ()):
    """Full-sky Mollweide figure (matplotlib Figure) with overlay ``markers``."""
    matplotlib, plt = _mpl()
    fig = plt.figure(figsize=(9.0, 5.4))
    ax = fig.add_subplot(111, projection="mollweide")
    # cell edges in plot longitude x = π − RA (RA grows to the left, RA 180° in the middle)
    nx, ny = 720, 360
    xe = np.linspace(-np.pi, np.pi, nx + 1)
    ye = np.linspace(-np.pi / 2, np.pi / 2, ny + 1)
    xc, yc = (xe[:-1] + xe[1:]) / 2, (ye[:-1] + ye[1:]) / 2
    X, Y = np.meshgrid(xc, yc)
    ts = _ts_at(stats, np.pi - X, Y)
    val = np.log10(1.0 + ts)
    cmap = matplotlib.colormaps["viridis_r"].with_extremes(bad="0.85")
    mesh = ax.pcolormesh(xe, ye, np.ma.masked_invalid(val), cmap=cmap, shading="flat",
                         rasterized=True)
    th = stats.thresholds
    ax.contour(X, Y, np.nan_to_num(ts, nan=np.inf), levels=[th.ts50, th.ts90],
               colors=_CONTOUR_COLOURS, linewidths=1.0)
    bx = math.pi - math.radians(stats.ra_deg)
    bx = (bx + math.pi) % (2 * math.pi) - math.pi
    (best,) = ax.plot([bx], [math.radians(stats.dec_deg)], marker="*", color="red", ms=14,
                      mec="k", ls="none", label="best fit", zorder=8, gid="marker:best")
    markers = list(markers)
    label_sources = sum(m.kind == "source" for m in markers) <= _MAX_SOURCE_LABELS
    placed: list = []
    for m in markers:
        x = (math.pi - math.radians(m.ra_deg) + math.pi) % (2 * math.pi) - math.pi
        # on the full sky the fits crowd the best fit: name only marks (and few sources)
        _draw_marker(ax, x, math.radians(m.dec_deg), m,
                     label=m.kind == "mark" or (m.kind == "source" and label_sources),
                     placed=placed)
    ticks = np.radians(np.arange(-150, 151, 30))
    ax.set_xticks(ticks)
    ax.set_xticklabels([f"{(180 - d) % 360:.0f}°" for d in np.arange(-150, 151, 30)],
                       fontsize=7, color="white")
    # a quiet graticule: thin and light, above the colours but under contours and markers
    ax.set_axisbelow("line")
    ax.grid(True, color="white", lw=0.3, alpha=0.35)
    ax.set_xlabel("RA (J2000)")
    ax.set_ylabel("Dec (J2000)")
    cb = fig.colorbar(mesh, ax=ax, orientation="horizontal", fraction=0.05, pad=0.08)
    cb.set_label("log10(1 + TS), TS = 2 Δ(−ln L) w.r.t. the best fit (dimensionless)")
    ax.legend(handles=[best, *_marker_legend(markers)], loc="lower right", fontsize=7,
              framealpha=0.8)
    fig.suptitle(_title(result), fontsize=11)
    ax.set_title(_subtitle(result, stats), fontsize=8, pad=22)
    return fig


def _zoom_half(stats: SkyStats) -> float:
    """[deg] half-size of the zoom window on the sky (from the 90 % region's extent)."""
    r90 = stats.region(0.9)
    cosd = max(math.cos(math.radians(stats.dec_deg)), 1e-6)
    ext = max(r90.dec_plus_deg, -r90.dec_minus_deg,
              min(r90.ra_plus_deg, 180.0) * cosd, min(-r90.ra_minus_deg, 180.0) * cosd)
    return min(15.0, max(1.0, 1.6 * ext))


class _Cartesian:
    """x = RA offset from the best fit (wrapped), y = Dec [deg]."""

    gnomonic = False

    def __init__(self, ra0: float, dec0: float, half: float) -> None:
        self.ra0, self.dec0 = ra0, dec0
        cosd = max(math.cos(math.radians(dec0)), 1e-6)
        self.xhalf = min(half / cosd, 180.0)
        self.ylim = (max(dec0 - half, -90.0), min(dec0 + half, 90.0))

    def forward(self, ra, dec):  # [deg] → plot coordinates, plus "in front" mask
        x = (np.asarray(ra) - self.ra0 + 180.0) % 360.0 - 180.0
        return x, np.asarray(dec, float), np.ones(np.shape(x), bool)

    def inverse(self, x, y):  # plot coordinates → [deg]
        return self.ra0 + x, y


class _Gnomonic:
    """Tangent plane at the best fit: x = east offset ξ, y = north offset η [deg]."""

    gnomonic = True

    def __init__(self, ra0: float, dec0: float, half: float) -> None:
        a, d = math.radians(ra0), math.radians(dec0)
        self.c = np.array([math.cos(d) * math.cos(a), math.cos(d) * math.sin(a), math.sin(d)])
        self.e = np.array([-math.sin(a), math.cos(a), 0.0])
        self.n = np.cross(self.c, self.e)
        self.xhalf = math.degrees(math.tan(math.radians(half)))
        self.ylim = (-self.xhalf, self.xhalf)

    def forward(self, ra, dec):
        a, d = np.radians(ra), np.radians(dec)
        v = np.stack([np.cos(d) * np.cos(a), np.cos(d) * np.sin(a), np.sin(d)], -1)
        z = v @ self.c
        front = z > 1e-3
        zs = np.where(front, z, 1.0)
        return np.degrees(v @ self.e / zs), np.degrees(v @ self.n / zs), front

    def inverse(self, x, y):
        v = (self.c + np.radians(x)[..., None] * self.e + np.radians(y)[..., None] * self.n)
        v = v / np.linalg.norm(v, axis=-1, keepdims=True)
        return np.degrees(np.arctan2(v[..., 1], v[..., 0])), np.degrees(np.arcsin(v[..., 2]))


def _graticule(ax: Any, proj: _Gnomonic, matplotlib: Any) -> None:
    """RA/Dec lines with labels on a gnomonic zoom."""
    x0, x1 = -proj.xhalf, proj.xhalf
    corners = proj.inverse(np.array([x0, x0, x1, x1, 0.0]), np.array([x0, x1, x0, x1, 0.0]))
    decs = np.linspace(-90, 90, 3601)
    dec_lo = float(np.min(corners[1]))
    pole = -90.0 if proj.c[2] < 0 else 90.0
    loc = matplotlib.ticker.MaxNLocator(5)
    dec_lines = [d for d in loc.tick_values(dec_lo, pole) if -90 < d < 90]
    if proj.c[2] < 0:
        dec_lines = [d for d in loc.tick_values(-90, float(np.max(corners[1]))) if -90 < d < 90]
    kw = dict(color="0.55", lw=0.6, ls=":")
    lab = dict(color="0.15", fontsize=7, ha="center",
               bbox=dict(boxstyle="round,pad=0.1", fc="white", ec="none", alpha=0.6))
    for d in dec_lines:
        ras = np.linspace(0, 360, 1441)
        x, y, f = proj.forward(ras, np.full_like(ras, d))
        x, y = np.where(f, x, np.nan), np.where(f, y, np.nan)
        ax.plot(x, y, **kw)
        inside = np.flatnonzero(f & (np.abs(x) < 0.9 * proj.xhalf) & (np.abs(y) < 0.9 * proj.xhalf))
        if inside.size:
            i = inside[np.argmin(y[inside])] if proj.c[2] > 0 else inside[np.argmax(y[inside])]
            ax.text(x[i], y[i], f"Dec {d:g}°", va="bottom", **lab)
    for r in range(0, 360, 30):
        x, y, f = proj.forward(np.full_like(decs, r), decs)
        x, y = np.where(f, x, np.nan), np.where(f, y, np.nan)
        ax.plot(x, y, **kw)
        inside = np.flatnonzero(f & (np.abs(x) < 0.9 * proj.xhalf) & (np.abs(y) < 0.9 * proj.xhalf))
        if inside.size:
            i = inside[np.argmax(np.hypot(x[inside], y[inside]))]
            ax.text(x[i], y[i], f"RA {r}°", **lab)


def _box_lines(stats: SkyStats, n: int = 60) -> list[tuple[np.ndarray, np.ndarray]]:
    """[deg] the 90 % region's RA/Dec bounding box as (ra, dec) edge polylines."""
    r90 = stats.region(0.9)
    ra0, dec0 = stats.ra_deg, stats.dec_deg
    lo, hi = ra0 + max(r90.ra_minus_deg, -180.0), ra0 + min(r90.ra_plus_deg, 180.0)
    d_lo = max(dec0 + r90.dec_minus_deg, -90.0)
    d_hi = min(dec0 + r90.dec_plus_deg, 90.0)
    ras, decs = np.linspace(lo, hi, n), np.linspace(d_lo, d_hi, n)
    return [(ras, np.full(n, d_lo)), (ras, np.full(n, d_hi)),
            (np.full(n, lo), decs), (np.full(n, hi), decs)]


def zoom_figure(result: Any, stats: SkyStats, levels: tuple[float, ...] = (),
                markers: tuple | list = ()):
    """Zoom around the best fit with the 50 %/90 % contours (Figure).

    Cartesian RA/Dec axes; within ~10° of a pole (where RA/Dec axes degenerate) a gnomonic
    tangent-plane view with an RA/Dec grid instead. ``levels`` (fractions other than 0.5
    and 0.9) add dashed Wilks contours, 2ΔLLH ≤ −2 ln(1 − level).
    """
    from skyscan_tui.stats import likelihood_region

    matplotlib, plt = _mpl()
    from matplotlib.tri import Triangulation

    ra0, dec0 = stats.ra_deg, stats.dec_deg
    half = _zoom_half(stats)
    polar = abs(dec0) + half > 80.0
    proj = (_Gnomonic if polar else _Cartesian)(ra0, dec0, half)
    fig, ax = plt.subplots(figsize=(6.4, 5.6))
    n = 400
    xe = np.linspace(-proj.xhalf, proj.xhalf, n + 1)
    ye = np.linspace(*proj.ylim, n + 1)
    X, Y = np.meshgrid((xe[:-1] + xe[1:]) / 2, (ye[:-1] + ye[1:]) / 2)
    ra_g, dec_g = proj.inverse(X, Y)
    ts = _ts_at(stats, np.radians(ra_g), np.radians(dec_g))
    th = stats.thresholds
    cmap = matplotlib.colormaps["magma"].with_extremes(bad="0.85")
    vmax = max(3.0 * th.ts90, float(np.nanmin(ts)) + 1.0) if np.isfinite(ts).any() else 1.0
    mesh = ax.pcolormesh(xe, ye, np.ma.masked_invalid(ts), cmap=cmap, vmin=0.0, vmax=vmax,
                         shading="flat", rasterized=True)
    # contours through the multi-order pixel centres inside (a margin around) the window
    ra, dec = stats.mo.radec()
    px, py, front = proj.forward(np.degrees(ra), np.degrees(dec))
    mx = 0.25 * proj.xhalf
    my = 0.25 * (proj.ylim[1] - proj.ylim[0])
    sel = (front & (np.abs(px) <= proj.xhalf + mx) & (py >= proj.ylim[0] - my)
           & (py <= proj.ylim[1] + my) & np.isfinite(stats.ts))
    handles = []
    if sel.sum() >= 3:
        try:
            tri = Triangulation(px[sel], py[sel])
            extra = [likelihood_region(stats, lv) for lv in levels
                     if min(abs(lv - 0.5), abs(lv - 0.9)) > 1e-9]
            for i, region in enumerate([*stats.regions, *extra]):
                level, dashed = region.ts, i >= 2
                colour = (_CONTOUR_COLOURS[i] if i < 2
                          else _EXTRA_COLOURS[(i - 2) % len(_EXTRA_COLOURS)])
                ls = "--" if dashed else "-"
                ax.tricontour(tri, stats.ts[sel], levels=[level], colors=[colour],
                              linewidths=1.5, linestyles=ls)
                label = f"{region.level * 100:g}%"
                handles.append(matplotlib.lines.Line2D(
                    [], [], color=colour, lw=1.5, ls=ls,
                    label=f"{label} (2ΔLLH ≤ {level:.3g}): {region.area_deg2:.2f} deg²"))
        except (ValueError, RuntimeError):  # degenerate point sets: no contour, still a map
            pass
    bx, by, _ = proj.forward(ra0, dec0)
    # the 90 % region's RA/Dec bounding box (the errors the alert quotes)
    for i, (ras, decs) in enumerate(_box_lines(stats)):
        x, y, f = proj.forward(ras, decs)
        ax.plot(np.where(f, x, np.nan), np.where(f, y, np.nan), color="cyan", lw=0.9,
                ls=(0, (4, 2)), zorder=4, gid="box90" if i == 0 else None)
    handles.append(matplotlib.lines.Line2D([], [], color="cyan", lw=0.9, ls=(0, (4, 2)),
                                           label="90% RA/Dec bounding box"))
    (best,) = ax.plot([float(bx)], [float(by)], marker="*", color="cyan", ms=14, mec="k",
                      ls="none", label=f"best fit RA {ra0:.2f}°, Dec {dec0:+.2f}°", zorder=8,
                      gid="marker:best")
    handles.append(best)
    handles += _marker_legend([m for m in markers if _in_view(proj, m)])
    ax.set_ylim(*proj.ylim)
    if polar:
        _graticule(ax, proj, matplotlib)
        ax.set_aspect(1.0)
        ax.set_xlabel("offset towards +RA (east) [deg], gnomonic")
        ax.set_ylabel("offset towards +Dec (north) [deg]")
    else:
        cosd = math.cos(math.radians(dec0))
        ax.set_aspect(1.0 / max(cosd, 1e-3))
        # ticks at round RA values, placed at their offsets from the best fit
        ra_ticks = matplotlib.ticker.MaxNLocator(6).tick_values(ra0 - proj.xhalf,
                                                                ra0 + proj.xhalf)
        ra_ticks = ra_ticks[np.abs(ra_ticks - ra0) <= proj.xhalf]
        ax.set_xticks(ra_ticks - ra0)
        ax.set_xticklabels([f"{t % 360:g}" for t in np.round(ra_ticks, 6)])
        ax.set_xlabel("RA (J2000) [deg]")
        ax.set_ylabel("Dec (J2000) [deg]")
    ax.set_xlim(proj.xhalf, -proj.xhalf)  # RA grows to the left, as on the sky
    _zoom_markers(ax, proj, list(markers), stats)  # after the limits: labels avoid each other
    cb = fig.colorbar(mesh, ax=ax, fraction=0.046, pad=0.04, extend="max")
    cb.set_label(_TS_LABEL)
    for colour, level in zip(_CONTOUR_COLOURS, (th.ts50, th.ts90), strict=True):
        if level <= vmax:  # the contour levels, marked on the colour bar
            cb.ax.axhline(level, color=colour, lw=1.5)
    ax.legend(handles=handles, loc="upper left", fontsize=7, framealpha=0.8)
    ax.set_title(_title(result) + "\n" + _subtitle(result, stats), fontsize=8)
    fig.tight_layout()
    return fig


def _in_view(proj: Any, m: Any) -> bool:
    x, y, f = proj.forward(m.ra_deg, m.dec_deg)
    return bool(f) and abs(float(x)) <= proj.xhalf and proj.ylim[0] <= float(y) <= proj.ylim[1]


def _zoom_markers(ax: Any, proj: Any, markers: list, stats: SkyStats) -> None:
    """Markers inside the zoom window, labelled (catalogue names: the nearest few)."""
    from skyscan_tui.projections import angular_distance

    shown = [m for m in markers if _in_view(proj, m)]
    best = (math.radians(stats.ra_deg), math.radians(stats.dec_deg))
    sources = sorted((m for m in shown if m.kind == "source"), key=lambda m: float(
        angular_distance(*best, math.radians(m.ra_deg), math.radians(m.dec_deg))))
    named = {id(m) for m in sources[:_MAX_SOURCE_LABELS]}
    placed: list = []
    for m in shown:
        x, y, _ = proj.forward(m.ra_deg, m.dec_deg)
        _draw_marker(ax, float(x), float(y), m, label=m.kind != "source" or id(m) in named,
                     placed=placed)


def _save(fig: Any, path: Path, fmt: str) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=110 if fmt == "png" else None,
                metadata={"Software": None} if fmt == "png" else {"CreationDate": None})
    atomic_write_bytes(path, buf.getvalue())


def plot_result(result: Any, outdir: str | Path, thresholds: Any = None,
                formats: tuple[str, ...] = FORMATS,
                levels: tuple[float, ...] = (), marks: tuple = (),
                sources: tuple = ()) -> list[Path]:
    """Write ``BASENAME.skymap.{png,pdf}`` and ``BASENAME.zoom.{png,pdf}``; returns the paths.

    ``levels``: extra containment levels (fractions) drawn dashed on the zoom. The result's
    seed fits and truth, ``marks`` (``overlays.Marker``) and catalogue ``sources``
    ((name, ra, dec) [deg]) are drawn as labelled markers.
    """
    markers = plot_markers(result, tuple(marks), tuple(sources))
    _, plt = _mpl()
    stats = result.stats(thresholds)
    if stats is None:
        raise UserError("nothing to plot: no pixel of this result has a finite likelihood")
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    written = []
    for kind, make in (("skymap", mollweide_figure), ("zoom", zoom_figure)):
        fig = (make(result, stats, tuple(levels), markers) if kind == "zoom"
               else make(result, stats, markers))
        try:
            for fmt in formats:
                path = outdir / f"{result.basename()}.{kind}.{fmt}"
                _save(fig, path, fmt)
                written.append(path)
        finally:
            plt.close(fig)
    return written
