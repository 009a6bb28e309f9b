"""Projections of a terminal character grid onto the sky, for :mod:`skyscan_tui.raster`.

:func:`mollweide` (full sky, equatorial or local frame) and :func:`gnomonic` (a zoom around a
direction) give a :class:`Projection`: the direction of every sub-pixel (two per text cell,
upper and lower half), its NESTED pixel at the finest order (:data:`FINE_ORDER`), the
graticule mask and the axis labels. Computed once per size and view; coarser levels are a
right shift of the fine index. Angles are radians; longitudes increase to the left (the sky
seen from inside, as astronomical maps show it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from skyscan_tui.healpix import ang2pix

__all__ = ["FINE_ORDER", "FINE_NSIDE", "Projection", "mollweide", "gnomonic", "zoom_radius",
           "region_radius", "angular_distance"]

FINE_ORDER = 13  # nside 8192: every level up to it is a right shift of this index
FINE_NSIDE = 1 << FINE_ORDER


def angular_distance(ra1, dec1, ra2, dec2) -> np.ndarray:
    """[rad] great-circle distance between directions [rad] (haversine; broadcasts).

    >>> d = angular_distance(0.0, 0.0, np.radians([90.0, 180.0]), 0.0)
    >>> [round(float(x), 9) for x in np.degrees(d)]
    [90.0, 180.0]
    """
    s = (np.sin((dec2 - dec1) / 2) ** 2
         + np.cos(dec1) * np.cos(dec2) * np.sin((ra2 - ra1) / 2) ** 2)
    return 2 * np.arcsin(np.sqrt(np.clip(s, 0.0, 1.0)))


# ---------------------------------------------------------------------------- projections
@dataclass(eq=False)
class Projection:
    """Where every sub-pixel of a ``width × height`` cell grid looks on the sky.

    Arrays have shape ``(2·height, width)`` (sub-pixel rows, columns); ``ra``/``dec`` [rad]
    J2000 and ``fine`` (NESTED ipix at :data:`FINE_NSIDE`) are NaN/-1 outside the map.
    ``labels`` are ``(text_row, col, text)`` in cell coordinates.
    """

    kind: str
    width: int
    height: int
    ra: np.ndarray
    dec: np.ndarray
    fine: np.ndarray
    inside: np.ndarray
    grid: np.ndarray
    labels: list[tuple[int, int, str]] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)

    def locate(self, ra: float, dec: float) -> tuple[int, int] | None:
        """Sub-pixel (row, col) of a direction [rad], or None when it is off the map."""
        x, y = self._forward(ra, dec)
        if x is None:
            return None
        row, col = int(math.floor(y)), int(math.floor(x))
        if 0 <= row < 2 * self.height and 0 <= col < self.width and self.inside[row, col]:
            return row, col
        return None

    def _forward(self, ra: float, dec: float) -> tuple[float | None, float | None]:
        p = self.params
        if self.kind == "mollweide":
            if p["frame"] == "local":
                from skyscan_tui.coords import equatorial_to_local

                zen, azi = equatorial_to_local(ra, dec, p["mjd"])
                lon, lat = float(azi), math.pi / 2 - float(zen)
            else:
                lon, lat = ra, dec
            th = lat
            target = math.pi * math.sin(lat)
            for _ in range(50):  # Newton on 2θ + sin 2θ = π sin(lat)
                f = 2 * th + math.sin(2 * th) - target
                d = 2 + 2 * math.cos(2 * th)
                if abs(d) < 1e-12:
                    break
                th -= f / d
                if abs(f) < 1e-12:
                    break
            dlon = (lon - p["lon0"] + math.pi) % (2 * math.pi) - math.pi
            mx = -2 * math.sqrt(2) / math.pi * dlon * math.cos(th)  # east to the left
            my = math.sqrt(2) * math.sin(th)
            s = p["scale"]
            return p["cx"] + mx * s, p["cy"] - my * s
        # gnomonic
        ra0, dec0 = p["ra0"], p["dec0"]
        cosc = (math.sin(dec0) * math.sin(dec)
                + math.cos(dec0) * math.cos(dec) * math.cos(ra - ra0))
        if cosc <= 0:
            return None, None
        gx = math.cos(dec) * math.sin(ra - ra0) / cosc
        gy = (math.cos(dec0) * math.sin(dec)
              - math.sin(dec0) * math.cos(dec) * math.cos(ra - ra0)) / cosc
        s = p["scale"]
        return p["cx"] - gx * s, p["cy"] - gy * s


def _fine_index(ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
    out = np.full(ra.shape, -1, dtype=np.int64)
    ok = np.isfinite(ra) & np.isfinite(dec)
    if ok.any():
        out[ok] = ang2pix(FINE_NSIDE, np.pi / 2 - dec[ok], np.mod(ra[ok], 2 * np.pi),
                          nest=True)
    return out


def _grid_lines(lon: np.ndarray, lat: np.ndarray, lon_step: float, lat_step: float,
                lat_max: float = math.pi / 2) -> np.ndarray:
    """Sub-pixels that a meridian or parallel (multiples of the steps [rad]) passes through."""
    grid = np.zeros(lon.shape, dtype=bool)
    with np.errstate(invalid="ignore"):
        for arr, step, wrap in ((lat, lat_step, False), (lon, lon_step, True)):
            k = np.floor(arr / step)
            for axis in (0, 1):
                a = k
                b = np.roll(k, -1, axis=axis)
                diff = (a != b) & np.isfinite(a) & np.isfinite(b)
                if wrap:  # a jump across the map edge is not a line
                    diff &= np.abs(a - b) < (2 * math.pi / step) / 2
                if axis == 0:
                    diff[-1, :] = False
                else:
                    diff[:, -1] = False
                if wrap:
                    diff &= np.abs(lat) <= lat_max
                grid |= diff
    return grid


def mollweide(width: int, height: int, frame: str = "equatorial", mjd: float | None = None,
              lon0: float = math.pi) -> Projection:
    """Full-sky Mollweide projection of a ``width × height`` cell grid.

    Parameters
    ----------
    width, height : int
        [cells] grid size; the ellipse (2:1 in sub-pixels) is centred and as large as fits,
        leaving one text row for the longitude labels below it.
    frame : str
        "equatorial" (RA/Dec) or "local" (azimuth/elevation = 90° − zenith at ``mjd``).
    mjd : float
        [MJD, UTC] event time; needed for the local frame.
    lon0 : float
        [rad] longitude at the centre of the map (default 180°).
    """
    if frame not in ("equatorial", "local"):
        raise ValueError(f"unknown frame {frame!r}")
    if frame == "local" and mjd is None:
        raise ValueError("the local frame needs the event time (mjd)")
    width, height = max(1, int(width)), max(1, int(height))
    rows = 2 * height
    avail_rows = max(2, rows - 2)  # one text row for labels
    # ellipse of semi-axes 2√2·s (x) and √2·s (y) in sub-pixels
    scale = min((width - 1) / (4 * math.sqrt(2)), (avail_rows - 1) / (2 * math.sqrt(2)))
    scale = max(scale, 0.5)
    cx = width / 2.0
    cy = (avail_rows) / 2.0
    yy, xx = np.mgrid[0:rows, 0:width].astype(np.float64)
    mx = -((xx + 0.5) - cx) / scale  # east to the left
    my = (cy - (yy + 0.5)) / scale
    with np.errstate(invalid="ignore", divide="ignore"):
        th = np.arcsin(np.clip(my / math.sqrt(2), -1, 1))
        lat = np.arcsin(np.clip((2 * th + np.sin(2 * th)) / math.pi, -1, 1))
        lon = lon0 + math.pi * mx / (2 * math.sqrt(2) * np.cos(th))
    inside = (np.abs(my) <= math.sqrt(2)) & (np.abs(lon - lon0) <= math.pi)
    lon = np.where(inside, np.mod(lon, 2 * math.pi), np.nan)
    lat = np.where(inside, lat, np.nan)
    if frame == "local":
        from skyscan_tui.coords import local_to_equatorial

        ra = np.full(lon.shape, np.nan)
        dec = np.full(lon.shape, np.nan)
        ra[inside], dec[inside] = local_to_equatorial(np.pi / 2 - lat[inside], lon[inside], mjd)
    else:
        ra, dec = lon, lat
    grid = _grid_lines(lon, lat, math.radians(60), math.radians(30), math.radians(75)) & inside
    proj = Projection("mollweide", width, height, ra, dec, _fine_index(ra, dec), inside, grid,
                      params={"frame": frame, "mjd": mjd, "lon0": lon0, "scale": scale,
                              "cx": cx, "cy": cy})
    # labels: parallels at the left edge of the ellipse, meridians under the ellipse
    lat_name, lon_name = ("Dec", "RA") if frame == "equatorial" else ("el", "az")
    labels: list[tuple[int, int, str]] = []
    for lat_deg in (60, 30, 0, -30, -60):
        y = cy - math.sqrt(2) * math.sin(_moll_theta(math.radians(lat_deg))) * scale
        row = int(y // 2)
        xl = cx - 2 * math.sqrt(2) * math.cos(_moll_theta(math.radians(lat_deg))) * scale
        text = f"{lat_deg:+d}°"
        col = int(xl) - len(text)
        if col >= 0 and 0 <= row < height:
            labels.append((row, col, text))
    label_row = min(height - 1, int(math.ceil((cy + math.sqrt(2) * scale) / 2)))
    used = -1
    placed = []
    for lon_deg in range(0, 360, 60):
        dlon = (math.radians(lon_deg) - lon0 + math.pi) % (2 * math.pi) - math.pi
        x = cx - 2 * math.sqrt(2) / math.pi * dlon * scale
        text = f"{lon_deg}°"
        placed.append((int(round(x - len(text) / 2)), text))
    for col, text in sorted(placed):
        if 0 <= col and col + len(text) <= width and col > used:
            labels.append((label_row, col, text))
            used = col + len(text)
    caption = f"{lon_name} ← / {lat_name} ↑"
    if label_row < height and width > len(caption) + 1 and used < width - len(caption) - 1:
        labels.append((label_row, width - len(caption), caption))
    proj.labels = labels
    return proj


def _moll_theta(lat: float) -> float:
    th = lat
    target = math.pi * math.sin(lat)
    for _ in range(50):
        d = 2 + 2 * math.cos(2 * th)
        if abs(d) < 1e-12:
            break
        step = (2 * th + math.sin(2 * th) - target) / d
        th -= step
        if abs(step) < 1e-12:
            break
    return th


_NICE_STEPS_DEG = (0.05, 0.1, 0.2, 0.25, 0.5, 1, 2, 5, 10, 15, 30, 45, 60)


def gnomonic(width: int, height: int, ra0: float, dec0: float, radius: float) -> Projection:
    """Gnomonic (tangent-plane) view of ``radius`` [rad] around (ra0, dec0) [rad] J2000.

    ``radius`` is the half-height of the view; the width follows from the grid's aspect.
    RA increases to the left; one text row at the bottom holds the RA labels and the
    leftmost columns the Dec labels.
    """
    width, height = max(1, int(width)), max(1, int(height))
    rows = 2 * height
    radius = float(min(max(radius, 1e-5), math.radians(80)))
    avail_rows = max(2, rows - 2)
    scale = (avail_rows / 2.0) / math.tan(radius)  # sub-pixels per unit tangent plane
    cx, cy = width / 2.0, avail_rows / 2.0
    yy, xx = np.mgrid[0:rows, 0:width].astype(np.float64)
    gx = -((xx + 0.5) - cx) / scale
    gy = (cy - (yy + 0.5)) / scale
    rho = np.hypot(gx, gy)
    c = np.arctan(rho)
    sc, cc = np.sin(c), np.cos(c)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(rho > 0, gy * sc / np.where(rho > 0, rho, 1), 0.0)
        dec = np.arcsin(np.clip(cc * math.sin(dec0) + ratio * math.cos(dec0), -1, 1))
        ra = ra0 + np.arctan2(gx * sc, rho * math.cos(dec0) * cc - gy * math.sin(dec0) * sc)
    ra = np.mod(ra, 2 * math.pi)
    inside = yy < avail_rows
    ra = np.where(inside, ra, np.nan)
    dec = np.where(inside, dec, np.nan)
    span_deg = math.degrees(2 * radius)
    step_deg = next((s for s in _NICE_STEPS_DEG if span_deg / s <= 6), 60)
    # RA lines are spaced in RA; widen them near the poles to keep ~the same spacing on sky
    ra_step_deg = next((s for s in _NICE_STEPS_DEG
                        if s >= step_deg / max(math.cos(dec0), 0.05)), 60)
    lon_unwrapped = np.where(inside, np.mod(ra - ra0 + math.pi, 2 * math.pi) - math.pi + ra0,
                             np.nan)
    grid = _grid_lines(lon_unwrapped, dec, math.radians(ra_step_deg), math.radians(step_deg))
    grid &= inside
    proj = Projection("gnomonic", width, height, ra, dec, _fine_index(ra, dec), inside, grid,
                      params={"ra0": ra0, "dec0": dec0, "radius": radius, "scale": scale,
                              "cx": cx, "cy": cy, "step_deg": step_deg,
                              "ra_step_deg": ra_step_deg})
    labels: list[tuple[int, int, str]] = []
    fmt = "{:.2f}°" if step_deg < 0.1 else "{:.1f}°" if step_deg < 1 else "{:.0f}°"
    # Dec labels: where each parallel crosses the left edge
    col_dec = np.nanmean(dec[:avail_rows, 0:1], axis=1) if width else np.array([])
    lines = np.flatnonzero(np.diff(np.floor(np.degrees(col_dec) / step_deg)) != 0)
    last_row = -2
    for r in lines:
        row = int(r // 2)
        if row - last_row < 2 or row >= height - 1:
            continue
        val = math.floor(math.degrees(col_dec[r + 1]) / step_deg + 0.5) * step_deg
        if abs(math.degrees(col_dec[r + 1]) - val) > step_deg * 0.5:
            continue
        labels.append((row, 0, fmt.format(val)))
        last_row = row
    # RA labels: where each meridian crosses the bottom sub-row of the map
    bottom = lon_unwrapped[avail_rows - 1, :]
    k = np.floor(np.degrees(bottom) / ra_step_deg)
    cross = np.flatnonzero(np.diff(k) != 0)
    used = -1
    for cidx in cross:
        val = (max(k[cidx], k[cidx + 1])) * ra_step_deg % 360
        text = fmt.format(val)
        col = int(cidx) - len(text) // 2
        if col > used and col >= 0 and col + len(text) <= width:
            labels.append((height - 1, col, text))
            used = col + len(text)
    proj.labels = labels
    return proj


TS90_WILKS = 2.0 * math.log(10.0)  # 2ΔLLH of the 90 % region (χ², 2 dof), as raster draws it
ZOOM_FACTOR = 3.0  # the zoom's half-height in radii of the 90 % region
MIN_REGION_SUBPIXELS = 6  # the 90 % region is never drawn smaller than this across


def region_radius(levels: dict[int, tuple[np.ndarray, np.ndarray]], ra0: float, dec0: float,
                  ts: float = TS90_WILKS) -> float | None:
    """[rad] radius around (ra0, dec0) of the region 2ΔLLH ≤ ``ts``; None without a value.

    The farthest centre of a pixel in the region, plus half that pixel's size, over the
    pixels the map shows (a pixel refined at a finer level gives way to its children).
    """
    from skyscan_tui.sky import pixel_radec

    finite = [llh[np.isfinite(llh)] for _ipix, llh in levels.values()]
    finite = [f for f in finite if f.size]
    if not finite:
        return None
    llh_min = min(float(f.min()) for f in finite)
    nsides = sorted(levels)
    radius = 0.0
    for k, nside in enumerate(nsides):
        ipix, llh = levels[nside]
        with np.errstate(invalid="ignore"):
            sel = np.isfinite(llh) & (2.0 * (llh - llh_min) <= ts)
        pix = np.asarray(ipix)[sel]
        for finer in nsides[k + 1:]:  # drop the pixels refined further
            if pix.size == 0:
                break
            shift = 2 * (int(finer).bit_length() - int(nside).bit_length())
            covered = np.unique(np.asarray(levels[finer][0]) >> shift)
            pix = pix[~np.isin(pix, covered)]
        if pix.size == 0:
            continue
        ra, dec = pixel_radec(nside, pix)
        half = 0.5 * math.sqrt(4 * math.pi / (12 * nside * nside))
        radius = max(radius, float(np.max(angular_distance(ra0, dec0, ra, dec))) + half)
    return radius if radius > 0 else None


def zoom_radius(levels: dict[int, tuple[np.ndarray, np.ndarray]], ra0: float, dec0: float,
                rows: int | None = None, minimum: float = math.radians(0.005)) -> float:
    """[rad] half-height of a zoom around (ra0, dec0) that fits the 90 % region.

    About :data:`ZOOM_FACTOR` times the region's radius, so the contours are always in view;
    with ``rows`` (the sub-pixel rows of the view) never so large that the region is less
    than :data:`MIN_REGION_SUBPIXELS` across. Without a value yet: a few of the finest
    level's pixels.
    """
    if not levels:
        return math.radians(30)
    r90 = region_radius(levels, ra0, dec0)
    if r90 is not None:
        radius = ZOOM_FACTOR * r90
        if rows is not None and rows > 0:  # half-height in sub-pixels: (rows - 2) / 2
            avail = max(2, rows - 2)
            radius = min(radius, r90 * avail / MIN_REGION_SUBPIXELS)
        return min(max(minimum, radius), math.radians(60))
    res = math.sqrt(4 * math.pi / (12 * max(levels) ** 2))  # no value yet: a few pixels
    return max(minimum, 4 * res)


# ---------------------------------------------------------------------------- sampling
