"""Terminal rasters of multi-resolution skymaps (pure numpy; used by the TUI's skymap widget).

A text cell shows two map samples with the upper-half-block character "▀" (foreground =
upper sample, background = lower sample), so a ``width × height`` cell grid holds
``width × 2·height`` square-ish samples ("sub-pixels").

Index
- :class:`SkyLevels`: a multi-resolution −log L map (nside → NESTED ipix, llh) that merges
  live engine rows (``RESULT_DTYPE``: nside, ipix, llh; the lowest llh per pixel wins).
- :func:`mollweide`, :func:`gnomonic`: a :class:`Projection` of the character grid (in
  :mod:`skyscan_tui.projections`, re-exported here).
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

from skyscan_tui.projections import (
    FINE_NSIDE,
    FINE_ORDER,
    Projection,
    angular_distance,
    gnomonic,
    mollweide,
    zoom_radius,
)

__all__ = ["FINE_ORDER", "FINE_NSIDE", "SkyLevels", "Projection", "Frame", "mollweide",
           "gnomonic", "sample", "colorize", "render", "WILKS_2DLLH",
           "pack_rgb", "VIRIDIS", "zoom_radius", "angular_distance", "OVERLAY_GLYPHS"]

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
# overlay markers by kind (skyscan_tui.overlays.Marker): one-cell glyph and colour
BOX_RGB = (0, 200, 255)  # the 90 % region's RA/Dec bounding box (dotted)
OVERLAY_GLYPHS = {"seed": ("○", (255, 255, 255)), "truth": ("★", (60, 255, 60)),
                  "mark": ("×", (255, 60, 255)), "source": ("◦", (255, 170, 40))}


def pack_rgb(rgb: Any) -> np.ndarray:
    """(…, 3) uint8 → (…) int32 0xRRGGBB."""
    rgb = np.asarray(rgb, dtype=np.int32)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


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
        """Add fitted values: −log L ``llh`` of NESTED pixels ``ipix`` at ``nside``."""
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
        """The nsides that have values, ascending."""
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
        """Smallest and largest finite −log L over all levels (inf, −inf if none)."""
        lo, hi = math.inf, -math.inf
        for _ipix, llh in self.levels().values():
            ok = llh[np.isfinite(llh)]
            if ok.size:
                lo, hi = min(lo, float(ok.min())), max(hi, float(ok.max()))
        return lo, hi


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
    """Cells ready to draw: characters and colours (height, width).

    ``chars`` (height, width) str; ``fg``/``bg`` packed 0xRRGGBB (:data:`NONE` = terminal
    default)."""

    chars: np.ndarray
    fg: np.ndarray
    bg: np.ndarray
    _runs: list | None = field(default=None, repr=False)

    @property
    def height(self) -> int:
        """Rows of the frame [cells]."""
        return self.chars.shape[0]

    @property
    def width(self) -> int:
        """Columns of the frame [cells]."""
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
           graticule: bool = True, labels: bool = True,
           markers: Any = (), box: tuple[float, float, float, float] | None = None) -> Frame:
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
    markers : iterable of (ra, dec, kind)
        [rad] overlay directions drawn with the glyph of their kind (:data:`OVERLAY_GLYPHS`)
        under the best-fit marker.
    box : (ra_lo, ra_hi, dec_lo, dec_hi)
        [rad] an RA/Dec box (the 90 % region's extent) drawn dotted under the contours;
        ``ra_hi`` may exceed 2π (the box crosses RA 0).
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
    if box is not None:
        color[_box_subpixels(proj, box)] = pack_rgb(BOX_RGB)
    if contours and finite.any():
        with np.errstate(invalid="ignore"):
            ts = 2.0 * (values - vmin)
        for level in (50, 90):  # 90 % last: where the two coincide (unresolved) it shows
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
    for ra, dec, kind in markers:
        where = proj.locate(ra, dec)
        if where is not None:
            row, col = where[0] // 2, where[1]
            glyph, rgb = OVERLAY_GLYPHS.get(kind, OVERLAY_GLYPHS["mark"])
            frame.chars[row, col] = glyph
            frame.fg[row, col] = int(pack_rgb(rgb))
            frame.bg[row, col] = _mean_color(top[row, col], bottom[row, col])
    if best is not None:
        where = proj.locate(*best)
        if where is not None:
            row, col = where[0] // 2, where[1]
            frame.chars[row, col] = "✚"
            frame.fg[row, col] = int(pack_rgb(MARKER_RGB))
            frame.bg[row, col] = _mean_color(top[row, col], bottom[row, col])
    return frame


def _box_subpixels(proj: Projection, box: tuple[float, float, float, float]) -> np.ndarray:
    """Sub-pixels on the edges of an RA/Dec box [rad], every other one (a dotted line)."""
    ra_lo, ra_hi, dec_lo, dec_hi = box
    mask = np.zeros(proj.inside.shape, dtype=bool)
    n = 4 * (proj.width + 2 * proj.height)  # dense enough for a step under a sub-pixel
    ras, decs = np.linspace(ra_lo, ra_hi, n), np.linspace(dec_lo, dec_hi, n)
    edges = [(ras, np.full(n, dec_lo)), (ras, np.full(n, dec_hi)),
             (np.full(n, ra_lo), decs), (np.full(n, ra_hi), decs)]
    for ra, dec in edges:
        for a, d in zip(ra.tolist(), dec.tolist(), strict=True):
            where = proj.locate(a % (2 * math.pi), d)
            if where is not None and (where[0] + where[1]) % 2 == 0:
                mask[where] = True
    return mask


def _mean_color(a: int, b: int) -> int:
    a, b = int(a), int(b)
    if a == NONE:
        return b
    if b == NONE:
        return a
    return int(pack_rgb([(((a >> s) & 255) + ((b >> s) & 255)) // 2 for s in (16, 8, 0)]))
