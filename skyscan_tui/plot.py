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
            f"Dec {stats.dec_deg:+.2f} (+{r90.dec_plus_deg:.2f} {r90.dec_minus_deg:.2f}) deg")


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
    cmap = matplotlib.colormaps["viridis_r"].copy()
    cmap.set_bad("0.85")
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


def _zoom_window(stats: SkyStats) -> tuple[float, float, float]:
    """[deg] (RA half-width, Dec low, Dec high) of the zoom."""
    r90 = stats.region(0.9)
    cosd = max(math.cos(math.radians(stats.dec_deg)), 1e-6)
    ext = max(r90.dec_plus_deg, -r90.dec_minus_deg,
              min(r90.ra_plus_deg, 180.0) * cosd, min(-r90.ra_minus_deg, 180.0) * cosd)
    half = min(15.0, max(1.0, 1.6 * ext))
    lo, hi = max(stats.dec_deg - half, -90.0), min(stats.dec_deg + half, 90.0)
    return min(half / cosd, 180.0), lo, hi


def zoom_figure(result: Any, stats: SkyStats):
    """Zoomed RA/Dec view around the best fit with the 50 %/90 % contours (Figure)."""
    matplotlib, plt = _mpl()
    from matplotlib.tri import Triangulation

    ra0, dec0 = stats.ra_deg, stats.dec_deg
    hra, dlo, dhi = _zoom_window(stats)
    fig, ax = plt.subplots(figsize=(6.4, 5.6))
    n = 400
    dra_e = np.linspace(-hra, hra, n + 1)
    dec_e = np.linspace(dlo, dhi, n + 1)
    dra_c, dec_c = (dra_e[:-1] + dra_e[1:]) / 2, (dec_e[:-1] + dec_e[1:]) / 2
    DX, DY = np.meshgrid(dra_c, dec_c)
    ts = _ts_at(stats, np.radians(ra0 + DX), np.radians(DY))
    th = stats.thresholds
    cmap = matplotlib.colormaps["magma"].copy()
    cmap.set_bad("0.85")
    vmax = max(3.0 * th.ts90, float(np.nanmin(ts)) + 1.0) if np.isfinite(ts).any() else 1.0
    mesh = ax.pcolormesh(dra_e, dec_e, np.ma.masked_invalid(ts), cmap=cmap, vmin=0.0,
                         vmax=vmax, shading="flat", rasterized=True)
    # contours through the multi-order pixel centres inside (a margin around) the window
    ra, dec = stats.mo.radec()
    dra = (np.degrees(ra) - ra0 + 180.0) % 360.0 - 180.0
    d = np.degrees(dec)
    margin = 0.25 * (dhi - dlo)
    sel = ((np.abs(dra) <= hra + margin / max(math.cos(math.radians(dec0)), 0.05))
           & (d >= dlo - margin) & (d <= dhi + margin) & np.isfinite(stats.ts))
    handles = []
    if sel.sum() >= 3:
        try:
            tri = Triangulation(dra[sel], d[sel])
            for level, colour, region in zip((th.ts50, th.ts90), _CONTOUR_COLOURS,
                                             stats.regions, strict=True):
                ax.tricontour(tri, stats.ts[sel], levels=[level], colors=[colour],
                              linewidths=1.5)
                handles.append(matplotlib.lines.Line2D(
                    [], [], color=colour, lw=1.5,
                    label=f"{region.label} (2ΔLLH ≤ {level:.3g}): {region.area_deg2:.2f} deg²"))
        except (ValueError, RuntimeError):  # degenerate point sets: no contour, still a map
            pass
    r90 = stats.region(0.9)
    # 90 % extent (x is the RA offset, +RA drawn to the left by the inverted axis below)
    ax.errorbar([0.0], [dec0], xerr=[[-r90.ra_minus_deg], [r90.ra_plus_deg]],
                yerr=[[-r90.dec_minus_deg], [r90.dec_plus_deg]], fmt="none", ecolor="cyan",
                elinewidth=0.8, capsize=3)
    (best,) = ax.plot([0.0], [dec0], marker="*", color="cyan", ms=14, mec="k", ls="none",
                      label=f"best fit RA {ra0:.2f}°, Dec {dec0:+.2f}°")
    handles.append(best)
    ax.set_xlim(hra, -hra)
    ax.set_ylim(dlo, dhi)
    cosd = math.cos(math.radians(dec0))
    if cosd > 0.05:
        ax.set_aspect(1.0 / cosd)
    # ticks at round RA values, placed at their offsets from the best fit
    ra_ticks = matplotlib.ticker.MaxNLocator(6).tick_values(ra0 - hra, ra0 + hra)
    ra_ticks = ra_ticks[np.abs(ra_ticks - ra0) <= hra]
    ax.set_xticks(ra_ticks - ra0)
    ax.set_xticklabels([f"{t % 360:g}" for t in np.round(ra_ticks, 6)])
    ax.set_xlim(hra, -hra)
    ax.set_xlabel("RA (J2000) [deg]")
    ax.set_ylabel("Dec (J2000) [deg]")
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
                formats: tuple[str, ...] = FORMATS) -> list[Path]:
    """Write ``BASENAME.skymap.{png,pdf}`` and ``BASENAME.zoom.{png,pdf}``; returns the paths."""
    _, plt = _mpl()
    stats = result.stats(thresholds)
    if stats is None:
        raise UserError("nothing to plot: no pixel of this result has a finite likelihood")
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    written = []
    for kind, make in (("skymap", mollweide_figure), ("zoom", zoom_figure)):
        fig = make(result, stats)
        try:
            for fmt in formats:
                path = outdir / f"{result.basename()}.{kind}.{fmt}"
                _save(fig, path, fmt)
                written.append(path)
        finally:
            plt.close(fig)
    return written
