"""Contour files [deg, J2000]: boundary polygons of contour regions, and their writers.

A region is a set of multi-order pixels (``stats.Region.mask`` over ``SkyStats.mo``).
Its boundary is traced on the finest scanned nside, locally: only the finest-nside pixels
along the border of each region pixel are looked at (never the whole sky), an edge between a
pixel inside and its edge-sharing neighbour outside is a boundary edge, and the edges are
chained into closed rings (several pieces and holes allowed). Rings are oriented with the
region on the left seen from outside the sphere (counter-clockwise in RA/Dec for an outer
ring, clockwise for a hole), as RFC 7946 wants.

Writers: skyreader-style text (``RA Dec`` columns [deg], one ring after another), GeoJSON
(RFC 7946: longitudes in [−180, 180], split at the antimeridian, a ring around a pole closed
along the pole), ds9 regions (``fk5; polygon(...)``) and a NUNIQ MOC FITS (IVOA MOC 1.1,
with the region's level and area and the event's skyreader keywords; astropy is imported
only when writing it). The MOC's cells are merged here (four full siblings → their parent,
``moc_uniq``, a few lines); mocpy, which the tests use to read the files back, is not a
dependency of a scan.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hpgeom
import numpy as np

from skyscan_tui import healpix as hp
from skyscan_tui.errors import UserError
from skyscan_tui.fileio import atomic_write_bytes, atomic_write_text
from skyscan_tui.stats import MultiOrderMap, Region, SkyStats, credible_region, likelihood_region

__all__ = [
    "Contour", "region_rings", "contours", "parse_levels", "FORMATS", "write_contours",
    "contour_text", "geojson", "ds9_text", "moc_uniq", "moc_fits_bytes", "region_cards",
    "point_in_geojson",
]

FORMATS = ("txt", "geojson", "ds9", "moc")
#: Segments along a pixel edge at most this long [deg] (HEALPix edges are not great circles).
_MAX_SEGMENT_DEG = 0.5


def parse_levels(text: str | None, default: tuple[float, ...] = (0.5, 0.9)) -> list[float]:
    """Containment levels from ``"50,90,99.7"`` [per cent] (or fractions below 1) → fractions.

    >>> parse_levels("90,50,99.7"), parse_levels("0.68"), parse_levels(None)
    ([0.5, 0.9, 0.997], [0.68], [0.5, 0.9])
    """
    if text is None or not str(text).strip():
        return list(default)
    out = []
    for part in str(text).split(","):
        try:
            v = float(part)
        except ValueError:
            raise UserError(f"levels {text!r}: {part.strip()!r} is not a number") from None
        v = v / 100.0 if v >= 1.0 else v
        if not (math.isfinite(v) and 0.0 < v < 1.0):
            raise UserError(f"levels {text!r}: each level must lie in (0, 100) per cent")
        out.append(v)
    return sorted(set(out))


def level_label(level: float) -> str:
    """``0.5`` → ``"50"``, ``0.997`` → ``"99.7"`` (for file names and keys).

    >>> level_label(0.5), level_label(0.997)
    ('50', '99.7')
    """
    return f"{level * 100:.6g}"


# ------------------------------------------------------------------------- geometry
def _interleave(v: np.ndarray) -> np.ndarray:
    """Spread the bits of ``v`` to the even bit positions (the NESTED x/y interleaving)."""
    v = v.astype(np.int64)
    out = np.zeros_like(v)
    for b in range(30):
        out |= ((v >> b) & 1) << (2 * b)
    return out


def _border_subpixels(nside: np.ndarray, ipix: np.ndarray,
                      nmax: int) -> np.ndarray:
    """NESTED pixels at ``nmax`` on the border of each multi-order pixel.

    Interior sub-pixels cannot carry a boundary edge (their neighbours share the parent).
    """
    subs = []
    for n in np.unique(nside):
        m = np.flatnonzero(nside == n)
        f = nmax // int(n)
        if f == 1:
            local = np.zeros(1, np.int64)
        else:
            k = np.arange(f, dtype=np.int64)
            lo, hi = np.zeros(f, np.int64), np.full(f, f - 1, np.int64)
            x = np.concatenate([k, k, lo, hi])
            y = np.concatenate([lo, hi, k, k])
            local = np.unique(_interleave(x) | (_interleave(y) << 1))
        subs.append((ipix[m, None] * f * f + local[None, :]).ravel())
    return np.concatenate(subs)


def _vec(lon_deg: np.ndarray, lat_deg: np.ndarray) -> np.ndarray:
    lon, lat = np.radians(lon_deg), np.radians(lat_deg)
    return np.stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)], -1)


def _lonlat(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lon = np.degrees(np.arctan2(v[..., 1], v[..., 0]))
    lat = np.degrees(np.arcsin(np.clip(v[..., 2] / np.linalg.norm(v, axis=-1), -1, 1)))
    return lon, lat


def region_rings(mo: MultiOrderMap, mask: np.ndarray, step: int | None = None) -> list[np.ndarray]:
    """[unit vectors] Closed boundary rings of the pixels ``mask`` of ``mo``.

    Parameters
    ----------
    mo : MultiOrderMap
        The scan's multi-order map.
    mask : ndarray of bool
        Which pixels of ``mo`` are in the region.
    step : int, optional
        Points per finest-pixel edge (``hpgeom.boundaries(step=...)``); default: enough that
        no segment is longer than 0.5 deg.

    Returns
    -------
    list of ndarray
        One (m, 3) array of unit vectors per ring, not repeating its first point, region on
        the left seen from outside the sphere. Empty if the region is empty or the whole map
        has no outside (the full sphere).
    """
    mask = np.asarray(mask, bool)
    if not mask.any():
        return []
    nmax = mo.max_nside
    if step is None:
        edge_deg = math.degrees(math.sqrt(4 * math.pi / (12 * nmax * nmax)))
        step = max(1, math.ceil(edge_deg / _MAX_SEGMENT_DEG))
    inside_idx = np.flatnonzero(mask)
    sub = _border_subpixels(mo.nside[inside_idx], mo.ipix[inside_idx], nmax)
    # edge-sharing neighbours: SW, NW, NE, SE (indices 0, 2, 4, 6 of healpy's order)
    nb = hp.get_all_neighbours(nmax, sub, nest=True)[[0, 2, 4, 6]]  # (4, n)
    th, ph = hp.pix2ang(nmax, nb, nest=True)
    j = mo.lookup(ph, np.pi / 2 - th)
    outside = (j < 0) | ~mask[np.clip(j, 0, None)]
    k_side, k_pix = np.nonzero(outside)
    if k_side.size == 0:
        return []
    p, q = sub[k_pix], nb[k_side, k_pix]
    # corners (N, W, S, E) of both pixels; the shared edge is the pair of common corners
    lon_p, lat_p = hpgeom.boundaries(nmax, p, step=step, nest=True, lonlat=True)
    lon_q, lat_q = hpgeom.boundaries(nmax, q, step=1, nest=True, lonlat=True)
    vp = _vec(lon_p, lat_p)  # (n, 4 step, 3)
    cp = vp[:, ::step]  # (n, 4, 3)
    cq = _vec(lon_q, lat_q)
    tol = 1e-3 * math.radians(hpgeom.nside_to_resolution(nmax))
    d = np.linalg.norm(cp[:, :, None, :] - cq[:, None, :, :], axis=-1)
    shared = (d < tol).any(axis=2)  # (n, 4): corner of p shared with q
    # edge k runs from corner k to corner k+1 (mod 4)
    edge_k = np.full(len(p), -1)
    for k in range(4):
        hit = shared[:, k] & shared[:, (k + 1) % 4]
        edge_k = np.where(hit & (edge_k < 0), k, edge_k)
    ks = np.flatnonzero(edge_k >= 0)
    edge_k = edge_k[ks]
    idx = (edge_k[:, None] * step + np.arange(step + 1)[None, :]) % (4 * step)
    poly = vp[ks[:, None], idx]  # (e, step + 1, 3)
    # orient each edge counter-clockwise around its inside pixel (seen from outside)
    centre = hp.ang2vec(*hp.pix2ang(nmax, p[ks], nest=True))
    ccw = np.einsum("ei,ei->e", np.cross(poly[:, 0], poly[:, -1]), centre) > 0
    poly = np.where(ccw[:, None, None], poly, poly[:, ::-1])
    return _chain(poly, tol)


def _close_pairs(points: np.ndarray, tol: float) -> np.ndarray:
    """Index pairs (i, j), i < j, of ``points`` (n, d) at most ``tol`` apart, (m, 2).

    The pairs of ``scipy.spatial.cKDTree(points).query_pairs(tol)`` (in another order),
    without importing scipy on the scan path (~0.2 s): sorted along the first axis, a point
    is compared with its k-th successor for k = 1, 2, ... while they are within ``tol`` there.
    """
    order = np.argsort(points[:, 0], kind="stable")
    p = points[order]
    live = np.arange(len(p) - 1)
    out = [np.empty((0, 2), dtype=np.int64)]
    k = 1
    while live.size:
        # sorted: once the k-th successor is further than tol along x, so are the next ones
        live = live[p[live + k, 0] - p[live, 0] <= tol]
        d = p[live + k] - p[live]
        hit = live[np.einsum("ij,ij->i", d, d) <= tol * tol]
        a, b = order[hit], order[hit + k]
        out.append(np.stack([np.minimum(a, b), np.maximum(a, b)], axis=1))
        k += 1
        live = live[live + k < len(p)]
    return np.concatenate(out)


def _chain(poly: np.ndarray, tol: float) -> list[np.ndarray]:
    """Join directed edges (e, s + 1, 3) end to start into closed rings."""
    ends = np.concatenate([poly[:, 0], poly[:, -1]])
    pairs = _close_pairs(ends, tol)
    vid = np.arange(len(ends))
    # union of close points (a vertex is shared by up to 4 edge ends)
    for _ in range(4):
        if len(pairs) == 0:
            break
        lo = np.minimum(vid[pairs[:, 0]], vid[pairs[:, 1]])
        np.minimum.at(vid, pairs[:, 0], lo)
        np.minimum.at(vid, pairs[:, 1], lo)
    vid = vid[vid]
    e = len(poly)
    start, end = vid[:e], vid[e:]
    out_edges: dict[int, list[int]] = {}
    for i, s in enumerate(start.tolist()):
        out_edges.setdefault(s, []).append(i)
    used = np.zeros(e, bool)
    rings = []
    for i0 in range(e):
        if used[i0]:
            continue
        ring, i = [], i0
        while not used[i]:
            used[i] = True
            ring.append(poly[i, :-1])
            cand = [c for c in out_edges.get(int(end[i]), []) if not used[c]]
            if not cand:
                break
            if len(cand) > 1:  # pieces touch at a corner: the sharpest left turn stays on ours
                here, prev = poly[i, -1], poly[i, -2]
                cand.sort(key=lambda c: -_turn(prev, here, poly[c, 1]))
            i = cand[0]
        rings.append(np.concatenate(ring))
    return rings


def _turn(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> float:
    """Signed left turn a→b→c [rad] at b seen from outside the sphere."""
    d_in, d_out = b - a, c - b
    return float(math.atan2(np.dot(np.cross(d_in, d_out), b), np.dot(d_in, d_out)))


# ------------------------------------------------------------------------- regions
@dataclass
class Contour:
    """One region at one level, with its boundary rings [unit vectors]."""

    kind: str  # "wilks", "ic160427a", "custom" or "credible"
    level: float
    region: Region
    rings: list[np.ndarray]
    #: which systematic treatment the region includes (``SkyStats.systematic``)
    note: str = ""

    @property
    def label(self) -> str:
        """The region's level as shown to users, e.g. ``90%``."""
        return level_label(self.level)


def contours(stats: SkyStats, levels: list[float] | tuple[float, ...] = (0.5, 0.9),
             kind: str = "likelihood", step: int | None = None) -> list[Contour]:
    """Regions and boundary rings at ``levels`` (fractions).

    Parameters
    ----------
    stats : SkyStats
        The statistics of the scan (:func:`skyscan_tui.stats.analyse`).
    levels : sequence of float
        Containment levels as fractions, e.g. ``(0.5, 0.9)``.
    kind : str
        ``"likelihood"``: 2ΔLLH ≤ k, with the scan's thresholds at 50 % / 90 % and Wilks'
        k = −2 ln(1 − level) at any other level; ``"credible"``: credible regions.
    step : int or None
        Points per finest-pixel edge of the rings (see :func:`region_rings`); None: its
        default.

    Returns
    -------
    list of Contour
        One per level, in the order of ``levels``.
    """
    out = []
    for level in levels:
        if kind == "credible":
            reg = credible_region(stats, level)
        elif kind == "likelihood":
            reg = likelihood_region(stats, level)
        else:
            raise UserError(f"contour kind {kind!r}: use likelihood or credible")
        out.append(Contour(reg.method, level, reg, region_rings(stats.mo, reg.mask, step),
                           stats.systematic))
    return out


# ------------------------------------------------------------------------- writers
def contour_text(c: Contour) -> str:
    """skyreader-style contour text [deg]: a ``"ra (deg)" "dec (deg)"`` table, rings in turn.

    skyreader writes ``BASENAME.contour_50.txt`` with ``astropy.io.ascii.write`` as a
    two-column table ``"ra (rad)" "dec (rad)"`` holding only the first piece. Here the
    columns are degrees (named so), every ring is written, each repeating its first point,
    with a ``# ring i of n`` comment before it; ``astropy.io.ascii.read`` reads the file.
    """
    lines = [f"# {c.note}"] if c.note else []
    lines.append('"ra (deg)" "dec (deg)"')
    for i, ring in enumerate(c.rings):
        lines.append(f"# ring {i + 1} of {len(c.rings)}")
        lon, lat = _lonlat(ring)
        ra = np.mod(lon, 360.0)
        for a, d in zip(np.append(ra, ra[0]), np.append(lat, lat[0]), strict=True):
            lines.append(f"{a:.6f} {d:.6f}")
    return "\n".join(lines) + "\n"


def ds9_text(c: Contour) -> str:
    """ds9 region file: one ``polygon`` per ring in fk5 [deg]."""
    lines = ["# Region file format: DS9 version 4.1",
             f"# skyscan-tui {c.kind} {c.label}% contour" + (f"; {c.note}" if c.note else ""),
             "fk5"]
    for ring in c.rings:
        lon, lat = _lonlat(ring)
        pts = ",".join(f"{a:.6f},{d:.6f}" for a, d in zip(np.mod(lon, 360.0), lat, strict=True))
        lines.append(f"polygon({pts})")
    return "\n".join(lines) + "\n"


def _signed_area(x: np.ndarray, y: np.ndarray) -> float:
    return 0.5 * float(np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y))


def _unwrap_ring(ring: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A ring as a closed planar polygon in (unwrapped lon, lat) [deg].

    A ring around a pole winds ±360° in longitude; it is closed along the pole's latitude
    (±90°), which keeps the region on the left.
    """
    lon, lat = _lonlat(ring)
    # a vertex on a pole has no longitude: take its neighbour's so it does not jump
    at_pole = np.abs(lat) > 90.0 - 1e-9
    if at_pole.any() and not at_pole.all():
        idx = np.flatnonzero(~at_pole)
        lon = lon.copy()
        lon[at_pole] = np.interp(np.flatnonzero(at_pole), idx, lon[idx], period=len(lon))
    d = np.diff(np.append(lon, lon[0]))
    d = (d + 180.0) % 360.0 - 180.0
    u = lon[0] + np.concatenate([[0.0], np.cumsum(d[:-1])])
    wind = float(np.sum(d))
    if abs(wind) > 180.0:  # around a pole
        pole = 90.0 if wind > 0 else -90.0
        end = u[0] + wind
        u = np.concatenate([u, [end, end, u[0]]])
        lat = np.concatenate([lat, [lat[0], pole, pole]])
    return u, lat


_PERIM = 362.0  # strip-boundary parameter: right edge [0, 180], top, left [181, 361], bottom
_CORNERS = ((180.0, (180.0, 90.0)), (181.0, (-180.0, 90.0)), (361.0, (-180.0, -90.0)),
            (362.0, (180.0, -90.0)))


def _tau(x: float, y: float) -> float:
    """Position along the boundary of the strip −180 ≤ x ≤ 180, counter-clockwise."""
    return y + 90.0 if x > 0 else 181.0 + (90.0 - y)


def _strip_arcs(x: np.ndarray, y: np.ndarray) -> tuple[list[list[tuple[float, float]]],
                                                         list[list[tuple[float, float]]]]:
    """Cut a closed planar polygon by the strip −180 ≤ x ≤ 180.

    Returns (closed rings wholly inside, arcs): an arc enters the strip on its boundary,
    runs inside and leaves it on the boundary again.
    """
    inside = (x >= -180.0) & (x <= 180.0)
    if inside.all():
        return [list(zip(x.tolist(), y.tolist(), strict=True))], []
    start = int(np.flatnonzero(~inside)[0])  # begin outside so every arc has an entry
    xs, ys = np.roll(x, -start).tolist(), np.roll(y, -start).tolist()
    arcs: list[list[tuple[float, float]]] = []
    cur: list[tuple[float, float]] | None = None
    n = len(xs)
    for i in range(n):
        px, py, qx, qy = xs[i], ys[i], xs[(i + 1) % n], ys[(i + 1) % n]
        dx = qx - px
        if dx == 0.0:
            if not -180.0 <= px <= 180.0:
                continue
            t0, t1 = 0.0, 1.0
        else:
            ta, tb = (-180.0 - px) / dx, (180.0 - px) / dx
            t0, t1 = max(0.0, min(ta, tb)), min(1.0, max(ta, tb))
            if t0 > t1:
                continue
        p_in = -180.0 <= px <= 180.0
        q_in = -180.0 <= qx <= 180.0
        if not p_in:  # entering: a new arc starts on the boundary
            cur = [(-180.0 if px < -180.0 else 180.0, py + t0 * (qy - py))]
        if cur is None:
            continue
        if q_in:
            cur.append((qx, qy))
        else:  # leaving
            cur.append((-180.0 if qx < -180.0 else 180.0, py + t1 * (qy - py)))
            arcs.append(cur)
            cur = None
    return [], arcs


def _link_arcs(arcs: list[list[tuple[float, float]]]) -> list[list[tuple[float, float]]]:
    """Close arcs into rings along the strip boundary, counter-clockwise (region on the left)."""
    starts = [_tau(*a[0]) for a in arcs]
    used = [False] * len(arcs)
    rings = []
    for k0 in range(len(arcs)):
        if used[k0]:
            continue
        ring: list[tuple[float, float]] = []
        k = k0
        while not used[k]:
            used[k] = True
            ring.extend(arcs[k])
            t_out = _tau(*arcs[k][-1])
            nxt = min(range(len(arcs)), key=lambda j: ((starts[j] - t_out) % _PERIM, j))
            d = (starts[nxt] - t_out) % _PERIM
            for tc, pt in sorted(((tc - t_out) % _PERIM, pt) for tc, pt in _CORNERS):
                if 0.0 < tc < d:  # the walk along the boundary turns a corner of the strip
                    ring.append(pt)
            k = nxt
        rings.append(ring)
    return rings


def _point_in_ring(x: float, y: float, rx: np.ndarray, ry: np.ndarray) -> bool:
    """Even-odd ray casting in the plane."""
    x1, y1 = rx, ry
    x2, y2 = np.roll(rx, -1), np.roll(ry, -1)
    cond = (y1 > y) != (y2 > y)
    with np.errstate(divide="ignore", invalid="ignore"):
        xc = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
    return bool(np.count_nonzero(cond & (x < xc)) % 2)


def geojson_polygons(c: Contour) -> list[list[list[list[float]]]]:
    """RFC 7946 polygons ([lon, lat] [deg], lon in [−180, 180]) of a contour."""
    closed: list[list[tuple[float, float]]] = []
    arcs: list[list[tuple[float, float]]] = []
    for ring in c.rings:
        u, lat = _unwrap_ring(ring)
        for shift in range(-2, 3):  # each copy of the plane's part in [−180, 180]
            if u.max() <= -180.0 + 360.0 * shift or u.min() >= 180.0 + 360.0 * shift:
                continue
            whole, part = _strip_arcs(u - 360.0 * shift, lat)
            closed += whole
            arcs += part
    # all rings' arcs together: a hole cut by the antimeridian joins its outer ring
    shells: list[tuple[np.ndarray, np.ndarray]] = []
    holes: list[tuple[np.ndarray, np.ndarray]] = []
    for pts in closed + _link_arcs(arcs):
        r = np.round(np.array(pts, float), 6)  # as written; [deg] to 0.0036 arcsec
        r[:, 0] = np.clip(r[:, 0], -180.0, 180.0)
        keep = np.r_[True, np.any(np.diff(r, axis=0) != 0, axis=1)]  # no repeated points
        r = r[keep]
        if len(r) > 1 and np.all(r[0] == r[-1]):
            r = r[:-1]
        x, y = r[:, 0], r[:, 1]
        if x.size < 3 or abs(_signed_area(x, y)) < 1e-12:
            continue
        (shells if _signed_area(x, y) > 0 else holes).append((x, y))
    polys = [[s] for s in shells]
    for h in holes:
        for poly in polys:
            if _point_in_ring(float(np.mean(h[0])), float(np.mean(h[1])), *poly[0]):
                poly.append(h)
                break
    def close(r):  # noqa: E306 - RFC 7946 rings repeat their first position
        return [[round(float(a), 6), round(float(b), 6)] for a, b in
                zip(np.append(r[0], r[0][0]), np.append(r[1], r[1][0]), strict=True)]
    return [[close(r) for r in poly] for poly in polys]


def geojson(c: Contour, properties: dict[str, Any] | None = None) -> dict[str, Any]:
    """A GeoJSON Feature (Polygon, or MultiPolygon for several pieces) of the contour."""
    polys = geojson_polygons(c)
    geom: dict[str, Any] | None
    if not polys and c.region.mask.any():  # no boundary: the region is the whole sky
        geom = {"type": "Polygon", "coordinates": [[[-180.0, -90.0], [180.0, -90.0],
                                                    [180.0, 90.0], [-180.0, 90.0],
                                                    [-180.0, -90.0]]]}
    elif not polys:  # an empty region has no geometry (RFC 7946 §3.2)
        geom = None
    else:
        geom = ({"type": "Polygon", "coordinates": polys[0]} if len(polys) == 1
                else {"type": "MultiPolygon", "coordinates": polys})
    props = {"kind": c.kind, "level": c.level, "area_deg2": c.region.area_deg2,
             "ts_threshold": None if math.isnan(c.region.ts) else c.region.ts,
             "systematic": c.note,
             "coordinates": "RA/Dec J2000 [deg], lon = RA wrapped to [-180, 180]"}
    return {"type": "Feature", "geometry": geom, "properties": {**props, **(properties or {})}}


def point_in_geojson(geometry: dict[str, Any] | None, ra_deg: float, dec_deg: float) -> bool:
    """Whether (ra, dec) [deg] is inside a GeoJSON Polygon/MultiPolygon (planar lon/lat test)."""
    if geometry is None:
        return False
    lon = (ra_deg + 180.0) % 360.0 - 180.0
    polys = ([geometry["coordinates"]] if geometry["type"] == "Polygon"
             else geometry["coordinates"])
    for poly in polys:
        rings = [np.asarray(r, float) for r in poly]
        if _point_in_ring(lon, dec_deg, rings[0][:, 0], rings[0][:, 1]) and not any(
                _point_in_ring(lon, dec_deg, h[:, 0], h[:, 1]) for h in rings[1:]):
            return True
    return False


def moc_uniq(mo: MultiOrderMap, mask: np.ndarray) -> np.ndarray:
    """Sorted NUNIQ cells of a region, four siblings merged into their parent."""
    order = np.round(np.log2(mo.nside[mask])).astype(np.int64)
    ipix = mo.ipix[mask]
    cells: dict[int, set[int]] = {}
    for o, p in zip(order.tolist(), ipix.tolist(), strict=True):
        cells.setdefault(o, set()).add(p)
    # every order down to 1, not only the scanned ones: merged cells can merge again
    for o in range(max(cells, default=0), 0, -1):
        if not cells.get(o):
            continue
        arr = np.array(sorted(cells[o]), np.int64)
        parents, counts = np.unique(arr >> 2, return_counts=True)
        full = parents[counts == 4]
        if full.size:
            cells[o] = set(arr[~np.isin(arr >> 2, full)].tolist())
            cells.setdefault(o - 1, set()).update(full.tolist())
    uniq = [4 * 4**o + p for o, ps in cells.items() for p in ps]
    return np.array(sorted(uniq), np.int64)


def region_cards(c: Contour) -> list[tuple[str, Any, str]]:
    """FITS keywords of one region: its level, kind, threshold and area."""
    cards: list[tuple[str, Any, str]] = [
        ("CONTLEV", float(f"{c.level * 100:.6g}"), "[%] containment level of this region"),
        ("CONTKIND", c.kind, "wilks, ic160427a, custom (2 dLLH <= k) or credible"),
        ("CONTAREA", round(c.region.area_deg2, 4), "[deg2] area of this region")]
    if math.isfinite(c.region.ts):
        cards.append(("CONTTS", round(c.region.ts, 6), "threshold on 2 dLLH"))
    return cards


def moc_fits_bytes(mo: MultiOrderMap, mask: np.ndarray,
                   cards: list[tuple[str, Any, str]] | None = None) -> bytes:
    """The region as an IVOA MOC 1.1 FITS file (NUNIQ, one ``UNIQ`` column) in bytes.

    ``cards``: more header keywords (the event's, ``fitsheader.event_cards``)."""
    from astropy.io import fits

    from skyscan_tui.fitsheader import hdul_bytes, set_cards

    uniq = moc_uniq(mo, mask)
    max_order = int(round(math.log2(mo.max_nside)))
    col = fits.Column(name="UNIQ", format="K", array=uniq)
    tab = fits.BinTableHDU.from_columns([col])
    set_cards(tab.header, [
        ("PIXTYPE", "HEALPIX", "HEALPix magic code"),
        ("ORDERING", "NUNIQ", "NUNIQ coding method"),
        ("COORDSYS", "C", "ICRS reference frame"),
        ("MOCORDER", max_order, "MOC resolution (best order)"),
        ("MOCTOOL", "skyscan-tui", "Name of the MOC generator"),
        ("MOCVERS", "1.1", "MOC version"),
        ("MOCDIM", "SPACE", "Physical dimension"),
        ("MOCORD_S", max_order, "MOC resolution (best order)"),
        *(cards or ())])
    return hdul_bytes(tab)


def write_contours(result: Any, stats: SkyStats, outdir: str | Path,
                   levels: list[float] | tuple[float, ...] = (0.5, 0.9),
                   formats: tuple[str, ...] = ("txt", "geojson"), kind: str = "likelihood",
                   basename: str | None = None) -> dict[str, Path]:
    """Write the contour files of each level; returns their paths.

    ``BASENAME.contour_50.txt``, ``.contour_50.geojson``, ``.contour_50.reg`` and
    ``.contour_50.moc.fits`` per level (credible regions: ``credible_50``).

    Parameters
    ----------
    result : ScanResult
        The scan (its :meth:`basename` names the files unless ``basename`` is given).
    stats : SkyStats
        Its statistics (:func:`skyscan_tui.stats.analyse`).
    outdir : str or Path
        The folder to write into (created if missing).
    levels : sequence of float
        Containment levels as fractions.
    formats : tuple of str
        Any of ``txt``, ``geojson``, ``ds9`` (a ``.reg`` file) and ``moc``; UserError for
        others.
    kind : str
        ``"likelihood"`` or ``"credible"`` regions (see :func:`contours`).
    basename : str or None
        The start of the file names.

    Returns
    -------
    dict of str to Path
        The files written, by key (e.g. ``"contour_50_txt"``).
    """
    bad = set(formats) - set(FORMATS)
    if bad:
        raise UserError(f"contour formats {sorted(bad)}: use {', '.join(FORMATS)}")
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    base = basename or result.basename()
    tag = "credible" if kind == "credible" else "contour"
    paths: dict[str, Path] = {}
    event: list = []
    if "moc" in formats:
        from skyscan_tui.fitsheader import event_cards

        event = event_cards(result, stats, llh_map=kind != "credible")
    for c in contours(stats, levels, kind):
        stem = outdir / f"{base}.{tag}_{c.label}"
        key = f"{tag}_{c.label}"
        if "txt" in formats:
            paths[f"{key}_txt"] = stem.with_name(stem.name + ".txt")
            atomic_write_text(paths[f"{key}_txt"], contour_text(c))
        if "geojson" in formats:
            paths[f"{key}_geojson"] = stem.with_name(stem.name + ".geojson")
            feat = geojson(c, {"run_id": int(result.run_id), "event_id": int(result.event_id)})
            atomic_write_text(paths[f"{key}_geojson"],
                              json.dumps({"type": "FeatureCollection", "features": [feat]})
                              + "\n")
        if "ds9" in formats:
            paths[f"{key}_ds9"] = stem.with_name(stem.name + ".reg")
            atomic_write_text(paths[f"{key}_ds9"], ds9_text(c))
        if "moc" in formats:
            paths[f"{key}_moc"] = stem.with_name(stem.name + ".moc.fits")
            atomic_write_bytes(paths[f"{key}_moc"], moc_fits_bytes(
                stats.mo, c.region.mask, [*region_cards(c), *event]))
    return paths

