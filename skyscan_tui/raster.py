"""Terminal rasters of multi-resolution skymaps (pure numpy; used by the TUI's skymap widget).

A text cell shows two map samples with the upper-half-block character "▀" (foreground =
upper sample, background = lower sample), so a ``width × height`` cell grid holds
``width × 2·height`` square-ish samples ("sub-pixels").

Index
- :class:`SkyLevels`: a multi-resolution −log L map (nside → NESTED ipix, llh) that merges
  live engine rows (``RESULT_DTYPE``: nside, ipix, llh; the lowest llh per pixel wins).
- :func:`mollweide`, :func:`gnomonic`: a :class:`Projection` of the character grid: the
  direction of every sub-pixel, its NESTED pixel at the finest order (:data:`FINE_ORDER`),
  graticule mask and axis labels. Computed once per size/view; coarser levels are a right
  shift of the fine index.
- :func:`sample`: the map value of every sub-pixel; the finest level that has the pixel wins.
- :func:`colorize`, :func:`render`: values → truecolor RGB → a :class:`Frame` of per-cell
  characters and packed 0xRRGGBB colours, with contours, graticule, labels, best-fit marker.

Conventions: NESTED pixels on J2000 (θ = π/2 − dec, φ = ra); longitudes increase to the left
(sky as seen from inside, as astronomical maps and ``healpy.mollview(flip="astro")``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from skyscan_tui.healpix import ang2pix

__all__ = ["FINE_ORDER", "FINE_NSIDE", "SkyLevels", "Projection", "Frame", "mollweide",
           "gnomonic", "sample", "colorize", "render", "WILKS_2DLLH",
           "pack_rgb", "VIRIDIS", "zoom_radius", "angular_distance"]

FINE_ORDER = 13  # nside 8192: every level up to it is a right shift of this index
FINE_NSIDE = 1 << FINE_ORDER
WILKS_2DLLH = {50: 2.0 * math.log(2.0), 90: 2.0 * math.log(10.0)}  # χ², 2 dof
UPPER_HALF = "▀"
LOWER_HALF = "▄"
NONE = -1  # "no colour" (terminal default background)

# viridis sampled at 9 points (matplotlib's table); interpolated into a 256-entry LUT
VIRIDIS = np.array([(68, 1, 84), (71, 44, 122), (59, 81, 139), (44, 113, 142), (33, 144, 141),
                    (39, 173, 129), (92, 200, 99), (170, 220, 50), (253, 231, 37)], float)
_LUT = np.stack([np.interp(np.linspace(0, 1, 256), np.linspace(0, 1, len(VIRIDIS)),
                           VIRIDIS[:, k]) for k in range(3)], axis=1).round().astype(np.uint8)
LEVELS = 64  # colour steps of the map
GRID_RGB = (200, 200, 200)
CONTOUR_RGB = {50: (255, 255, 255), 90: (255, 120, 60)}
MARKER_RGB = (255, 40, 40)
LABEL_RGB = (220, 220, 220)


def pack_rgb(rgb: Any) -> np.ndarray:
    """(…, 3) uint8 → (…) int32 0xRRGGBB."""
    rgb = np.asarray(rgb, dtype=np.int32)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


def angular_distance(ra1, dec1, ra2, dec2) -> np.ndarray:
    """[rad] great-circle distance between directions [rad] (haversine; broadcasts)."""
    s = (np.sin((dec2 - dec1) / 2) ** 2
         + np.cos(dec1) * np.cos(dec2) * np.sin((ra2 - ra1) / 2) ** 2)
    return 2 * np.arcsin(np.sqrt(np.clip(s, 0.0, 1.0)))


# ---------------------------------------------------------------------------- the map
class SkyLevels:
    """Multi-resolution map: per nside, sorted NESTED ``ipix`` and ``llh`` (lowest wins).

    Rows arrive in any order and may repeat (vertex variations, retries); :meth:`add_rows`
    only queues them and :meth:`levels` merges lazily, so a burst of engine batches costs one
    merge per redraw. ``version`` increases with every change.
    """

    def __init__(self) -> None:
        self._levels: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._pending: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}
        self.version = 0

    @classmethod
    def from_maps(cls, maps: dict[int, tuple[Any, Any]]) -> SkyLevels:
        """From ``{nside: (ipix NESTED, llh)}``."""
        out = cls()
        for nside, (ipix, llh) in maps.items():
            out.add(int(nside), ipix, llh)
        return out

    @classmethod
    def from_result(cls, result: Any) -> SkyLevels:
        """From a :class:`skyscan_tui.results.ScanResult` (its ``levels``)."""
        return cls.from_maps({n: (lv["ipix"], lv["llh"]) for n, lv in result.levels.items()})

    def add(self, nside: int, ipix: Any, llh: Any) -> None:
        ipix = np.asarray(ipix, dtype=np.int64).ravel()
        llh = np.asarray(llh, dtype=np.float64).ravel()
        if ipix.shape != llh.shape:
            raise ValueError("ipix and llh differ in length")
        if nside < 1 or nside > FINE_NSIDE or nside & (nside - 1):
            raise ValueError(f"nside {nside} is not a power of two up to {FINE_NSIDE}")
        if ipix.size:
            self._pending.setdefault(int(nside), []).append((ipix, llh))
            self.version += 1

    def add_rows(self, rows: np.ndarray) -> None:
        """Queue engine result rows (structured, fields ``nside``, ``ipix``, ``llh``)."""
        if len(rows) == 0:
            return
        nsides = np.asarray(rows["nside"])
        for nside in np.unique(nsides):
            sel = nsides == nside
            self.add(int(nside), rows["ipix"][sel], rows["llh"][sel])

    def levels(self) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """{nside: (ipix sorted unique, llh)}; NaN only where every report was NaN."""
        for nside, parts in self._pending.items():
            ipix = np.concatenate([p[0] for p in parts])
            llh = np.concatenate([p[1] for p in parts])
            if nside in self._levels:
                ipix = np.concatenate([self._levels[nside][0], ipix])
                llh = np.concatenate([self._levels[nside][1], llh])
            order = np.lexsort((llh, ipix))  # by ipix, then llh (NaN last)
            ipix, llh = ipix[order], llh[order]
            first = np.ones(len(ipix), dtype=bool)
            first[1:] = ipix[1:] != ipix[:-1]
            self._levels[nside] = (ipix[first], llh[first])
        self._pending.clear()
        return dict(sorted(self._levels.items()))

    @property
    def nsides(self) -> list[int]:
        return sorted(set(self._levels) | set(self._pending))

    def __len__(self) -> int:
        return sum(len(v[0]) for v in self.levels().values())

    def best(self) -> tuple[int, int, float] | None:
        """(nside, ipix, llh) of the lowest finite llh (ties: finer nside, lower ipix)."""
        best = None
        for nside, (ipix, llh) in sorted(self.levels().items(), reverse=True):
            ok = np.flatnonzero(np.isfinite(llh))
            if ok.size == 0:
                continue
            i = ok[np.argmin(llh[ok])]  # ipix sorted: argmin takes the lowest ipix on ties
            if best is None or llh[i] < best[2]:
                best = (nside, int(ipix[i]), float(llh[i]))
        return best

    def min_max(self) -> tuple[float, float]:
        lo, hi = math.inf, -math.inf
        for _ipix, llh in self.levels().values():
            ok = llh[np.isfinite(llh)]
            if ok.size:
                lo, hi = min(lo, float(ok.min())), max(hi, float(ok.max()))
        return lo, hi


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


def zoom_radius(levels: dict[int, tuple[np.ndarray, np.ndarray]], ra0: float, dec0: float,
                minimum: float = math.radians(0.3)) -> float:
    """[rad] half-height of a zoom that shows the finest level's pixels around (ra0, dec0)."""
    from skyscan_tui.sky import pixel_radec

    if not levels:
        return math.radians(30)
    nside = max(levels)
    ipix, llh = levels[nside]
    ok = np.isfinite(llh)
    res = math.sqrt(4 * math.pi / (12 * nside * nside))
    if not ok.any():
        return max(minimum, 4 * res)
    ra, dec = pixel_radec(nside, ipix[ok])
    dist = angular_distance(ra0, dec0, ra, dec)
    # the bulk of the refined region (a far-off stray pixel must not zoom everything out)
    extent = float(np.quantile(dist, 0.9)) if len(levels) > 1 else 4 * res
    return min(max(minimum, 1.1 * extent + res, 3 * res), math.radians(60))


# ---------------------------------------------------------------------------- sampling
def sample(proj: Projection, levels: dict[int, tuple[np.ndarray, np.ndarray]]
           ) -> tuple[np.ndarray, np.ndarray]:
    """Map value and nside of every sub-pixel; the finest level holding the pixel wins.

    Returns
    -------
    values : ndarray, (2·height, width)
        [−log L] NaN where no level has data (or outside the map).
    nside : ndarray, (2·height, width)
        int32, the level the value came from (0 = none).
    """
    fine = proj.fine
    values = np.full(fine.shape, np.nan)
    src = np.zeros(fine.shape, dtype=np.int32)
    ok = fine >= 0
    flat = fine[ok]
    vals = values[ok]
    srcs = src[ok]
    for nside in sorted(levels):  # coarse first: finer levels overwrite
        ipix, llh = levels[nside]
        if len(ipix) == 0:
            continue
        shift = 2 * (FINE_ORDER - int(nside).bit_length() + 1)
        cell = flat >> shift
        pos = np.searchsorted(ipix, cell)
        pos[pos >= len(ipix)] = 0
        hit = (ipix[pos] == cell) & np.isfinite(llh[pos])
        vals[hit] = llh[pos[hit]]
        srcs[hit] = nside
    values[ok] = vals
    src[ok] = srcs
    return values, src


def colorize(values: np.ndarray, vmin: float, vmax: float, stretch: str = "log"
             ) -> np.ndarray:
    """[−log L] values → (…, 3) uint8 viridis; the minimum is brightest (yellow).

    ``stretch`` "log" maps log(1 + 2Δ) (Δ = value − vmin) so that the region near the best
    fit keeps contrast on a full-sky map spanning thousands of units; "linear" maps 2Δ.
    """
    with np.errstate(invalid="ignore"):
        ts = 2.0 * np.clip(values - vmin, 0, None)
        tmax = 2.0 * max(vmax - vmin, 1e-12)
        if stretch == "log":
            t = np.log1p(ts) / math.log1p(tmax)
        else:
            t = ts / tmax
        t = np.clip(np.nan_to_num(t, nan=1.0), 0.0, 1.0)
    # 64 levels: plenty for the eye, and neighbouring cells share colours, so the widget
    # draws longer runs with fewer distinct styles
    idx = (np.floor((1.0 - t) * (LEVELS - 1) + 0.5) * (255 / (LEVELS - 1))).astype(np.intp)
    return _LUT[idx]


# ---------------------------------------------------------------------------- frames
@dataclass(eq=False)
class Frame:
    """Cells ready to draw: ``chars`` (height, width) str; ``fg``/``bg`` packed 0xRRGGBB
    (:data:`NONE` = terminal default)."""

    chars: np.ndarray
    fg: np.ndarray
    bg: np.ndarray
    _runs: list | None = field(default=None, repr=False)

    @property
    def height(self) -> int:
        return self.chars.shape[0]

    @property
    def width(self) -> int:
        return self.chars.shape[1] if self.chars.ndim == 2 else 0

    def row_runs(self, y: int) -> list[tuple[str, int, int]]:
        """Row ``y`` as runs of (text, fg, bg) with equal colours."""
        return [(text, (key >> 25) - 1, (key & 0x1FFFFFF) - 1)
                for text, key in self.row_keyed_runs(y)]

    def row_keyed_runs(self, y: int) -> list[tuple[str, int]]:
        """Row ``y`` as runs of (text, key) with ``key = (fg + 1) << 25 | (bg + 1)``."""
        if self._runs is None:
            self._runs = self._all_keyed_runs()
        return self._runs[y]

    def _all_keyed_runs(self) -> list[list[tuple[str, int]]]:
        # one vectorised pass over the whole frame; per-row numpy calls cost more than this
        h, w = self.chars.shape if self.chars.ndim == 2 else (0, 0)
        if h == 0 or w == 0:
            return [[] for _ in range(h)]
        keys = ((self.fg.astype(np.int64) + 1) << 25) | (self.bg.astype(np.int64) + 1)
        start = np.ones((h, w), dtype=bool)
        start[:, 1:] = keys[:, 1:] != keys[:, :-1]
        rows, cols = np.nonzero(start)
        first = np.searchsorted(rows, np.arange(h + 1)).tolist()
        klist, clist = keys[rows, cols].tolist(), cols.tolist()
        out = []
        for y, line in enumerate("".join(r) for r in self.chars.tolist()):
            a, b = first[y], first[y + 1]
            c = clist[a:b] + [w]
            k = klist[a:b]
            out.append([(line[c[i]:c[i + 1]], k[i]) for i in range(b - a)])
        return out

    def text(self) -> str:
        """Plain text of the frame (tests, logs)."""
        return "\n".join("".join(r) for r in self.chars)


def _outline(region: np.ndarray) -> np.ndarray:
    """Sub-pixels of ``region`` with a 4-neighbour outside it."""
    pad = np.pad(region, 1, constant_values=False)
    inner = pad[:-2, 1:-1] & pad[2:, 1:-1] & pad[1:-1, :-2] & pad[1:-1, 2:]
    return region & ~inner


def render(proj: Projection, levels: dict[int, tuple[np.ndarray, np.ndarray]], *,
           vmin: float | None = None, vmax: float | None = None, stretch: str = "log",
           best: tuple[float, float] | None = None, contours: bool = True,
           graticule: bool = True, labels: bool = True) -> Frame:
    """Draw ``levels`` through ``proj``: colours, contours, graticule, labels, marker.

    Parameters
    ----------
    vmin, vmax : float
        [−log L] colour range; default the finite range of the sampled values (``vmin``
        should be the global minimum, so contours are 2Δ relative to the best fit).
    best : (ra, dec)
        [rad] best-fit direction, marked with "✚" when on the map.
    contours : bool
        Outline the Wilks 50 %/90 % regions (2Δ ≤ 1.386 / 4.605) when the data resolve them.
    """
    values, _src = sample(proj, levels)
    finite = np.isfinite(values)
    if vmin is None:
        vmin = float(values[finite].min()) if finite.any() else 0.0
    if vmax is None:
        vmax = float(values[finite].max()) if finite.any() else vmin + 1.0
    rgb = colorize(values, vmin, vmax, stretch)
    color = pack_rgb(rgb)
    color[~finite] = pack_rgb((40, 40, 48))  # scanned nothing here (yet)
    if graticule:
        # blend toward grey so the map stays readable under the lines
        g = proj.grid
        mixed = (rgb[g].astype(np.int32) * 7 + np.array(GRID_RGB) * 3) // 10
        color[g] = pack_rgb(mixed)
    if contours and finite.any():
        with np.errstate(invalid="ignore"):
            ts = 2.0 * (values - vmin)
        for level in (90, 50):
            region = finite & (ts <= WILKS_2DLLH[level])
            edge = _outline(region) & (region.sum() > 2)
            color[edge] = pack_rgb(CONTOUR_RGB[level])
    color[~proj.inside] = NONE
    top, bottom = color[0::2], color[1::2]
    h = proj.height
    top, bottom = top[:h], bottom[:h]
    chars = np.full(top.shape, UPPER_HALF, dtype="<U1")
    fg, bg = top.copy(), bottom.copy()
    only_bottom = (top == NONE) & (bottom != NONE)
    chars[only_bottom] = LOWER_HALF
    fg[only_bottom], bg[only_bottom] = bottom[only_bottom], NONE
    chars[(top == NONE) & (bottom == NONE)] = " "
    frame = Frame(chars, fg, bg)
    if labels:
        label_rgb = int(pack_rgb(LABEL_RGB))
        for row, col, text in proj.labels:
            for k, chx in enumerate(text):
                c = col + k
                if 0 <= row < h and 0 <= c < proj.width:
                    frame.chars[row, c] = chx
                    frame.fg[row, c] = label_rgb
                    # keep the map colour behind the letter (mean of the two halves)
                    frame.bg[row, c] = _mean_color(top[row, c], bottom[row, c])
    if best is not None:
        where = proj.locate(*best)
        if where is not None:
            row, col = where[0] // 2, where[1]
            frame.chars[row, col] = "✚"
            frame.fg[row, col] = int(pack_rgb(MARKER_RGB))
            frame.bg[row, col] = _mean_color(top[row, col], bottom[row, col])
    return frame


def _mean_color(a: int, b: int) -> int:
    a, b = int(a), int(b)
    if a == NONE:
        return b
    if b == NONE:
        return a
    return int(pack_rgb([(((a >> s) & 255) + ((b >> s) & 255)) // 2 for s in (16, 8, 0)]))
