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

__all__ = ["plot_result", "mollweide_figure", "zoom_figure", "FORMATS"]

FORMATS = ("png", "pdf")
_CONTOUR_COLOURS = ("white", "red")
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


def mollweide_figure(result: Any, stats: SkyStats):
    """Full-sky Mollweide figure (matplotlib Figure)."""
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
    ax.plot([bx], [math.radians(stats.dec_deg)], marker="*", color="red", ms=14, mec="k",
            ls="none", label="best fit")
    ticks = np.radians(np.arange(-150, 151, 30))
    ax.set_xticks(ticks)
    ax.set_xticklabels([f"{(180 - d) % 360:.0f}°" for d in np.arange(-150, 151, 30)],
                       fontsize=7, color="white")
    ax.grid(True, color="0.4", lw=0.4, alpha=0.6)
    ax.set_xlabel("RA (J2000)")
    ax.set_ylabel("Dec (J2000)")
    cb = fig.colorbar(mesh, ax=ax, orientation="horizontal", fraction=0.05, pad=0.08)
    cb.set_label("log10(1 + 2 Δ(−ln L))")
    ax.legend(loc="lower right", fontsize=8, framealpha=0.8)
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


def zoom_figure(result: Any, stats: SkyStats, levels: tuple[float, ...] = ()):
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
    if not polar:
        r90 = stats.region(0.9)
        # 90 % extent (x is the RA offset, +RA drawn to the left by the inverted axis below)
        ax.errorbar([0.0], [dec0], xerr=[[-r90.ra_minus_deg], [r90.ra_plus_deg]],
                    yerr=[[-r90.dec_minus_deg], [r90.dec_plus_deg]], fmt="none",
                    ecolor="cyan", elinewidth=0.8, capsize=3)
    (best,) = ax.plot([float(bx)], [float(by)], marker="*", color="cyan", ms=14, mec="k",
                      ls="none", label=f"best fit RA {ra0:.2f}°, Dec {dec0:+.2f}°")
    handles.append(best)
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
    cb = fig.colorbar(mesh, ax=ax, fraction=0.046, pad=0.04, extend="max")
    cb.set_label("2 Δ(−ln L)")
    ax.legend(handles=handles, loc="upper left", fontsize=7, framealpha=0.8)
    ax.set_title(_title(result) + "\n" + _subtitle(result, stats), fontsize=8)
    fig.tight_layout()
    return fig


def _save(fig: Any, path: Path, fmt: str) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=110 if fmt == "png" else None,
                metadata={"Software": None} if fmt == "png" else {"CreationDate": None})
    atomic_write_bytes(path, buf.getvalue())


def plot_result(result: Any, outdir: str | Path, thresholds: Any = None,
                formats: tuple[str, ...] = FORMATS,
                levels: tuple[float, ...] = ()) -> list[Path]:
    """Write ``BASENAME.skymap.{png,pdf}`` and ``BASENAME.zoom.{png,pdf}``; returns the paths.

    ``levels``: extra containment levels (fractions) drawn dashed on the zoom.
    """
    _, plt = _mpl()
    stats = result.stats(thresholds)
    if stats is None:
        raise UserError("nothing to plot: no pixel of this result has a finite likelihood")
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    written = []
    for kind, make in (("skymap", mollweide_figure), ("zoom", zoom_figure)):
        fig = make(result, stats, tuple(levels)) if kind == "zoom" else make(result, stats)
        try:
            for fmt in formats:
                path = outdir / f"{result.basename()}.{kind}.{fmt}"
                _save(fig, path, fmt)
                written.append(path)
        finally:
            plt.close(fig)
    return written
