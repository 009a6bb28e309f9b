"""Scan results: a multi-order table of per-pixel fits, its best fit, and skyreader files.

Internally pixels are NESTED; the skyreader files (``SkyScanResult.read_npz``/``read_json``
of IceCube's ``icecube-skyreader``) use RING ``index`` as upstream does. Files are named as
upstream names them: ``run%08d.evt%012d.TYPE_8_64_512.npz`` / ``.json``.

npz layout: ``header`` (one structured row per nside: run_id, event_id, mjd, event_type,
nside, version=1, is_real_event, reco, likelihood, software_version, n_failed) and one
``nside-N`` structured array per level (index, llh, E_in, E_tot, X, Y, Z, T). It loads with
``allow_pickle=False``.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from skyscan_tui import __version__, healpix
from skyscan_tui.errors import ResultFileError, UserError
from skyscan_tui.fileio import atomic_write_bytes, atomic_write_text

__all__ = ["LEVEL_DTYPE", "SKYREADER_DTYPE", "BestFit", "ScanResult", "empty_level",
           "load_result", "NAN_SENTINEL"]

LEVEL_DTYPE = np.dtype([
    ("ipix", "<i8"), ("llh", "<f8"), ("E_in", "<f8"), ("E_tot", "<f8"),
    ("x", "<f8"), ("y", "<f8"), ("z", "<f8"), ("t", "<f8"), ("variation", "<i4"),
])
SKYREADER_DTYPE = np.dtype([
    ("index", int), ("llh", float), ("E_in", float), ("E_tot", float),
    ("X", float), ("Y", float), ("Z", float), ("T", float),
])
NAN_SENTINEL = "<skyreader.nan>"
MAX_RESULT_BYTES = 512 * 1024 * 1024
_SR_COLUMNS = list(SKYREADER_DTYPE.names or ())


def empty_level(ipix: np.ndarray) -> np.ndarray:
    """Level rows for the NESTED pixels ``ipix`` with every fitted value NaN (not fitted)."""
    out = np.zeros(len(ipix), dtype=LEVEL_DTYPE)
    out["ipix"] = ipix
    for f in ("llh", "E_in", "E_tot", "x", "y", "z", "t"):
        out[f] = np.nan
    out["variation"] = -1
    return out


@dataclass(frozen=True)
class BestFit:
    """The best pixel: ``ra``/``dec`` and ``zenith``/``azimuth`` [rad], vertex [m] and time [ns]."""

    nside: int
    ipix: int  # NESTED
    llh: float
    ra: float  # [rad] J2000
    dec: float
    zenith: float  # [rad] IceCube-local, direction of origin at the event time
    azimuth: float
    x: float
    y: float
    z: float
    t: float

    def to_dict(self) -> dict[str, Any]:
        """The best fit as a JSON-ready dict (angles [rad], vertex [m], time [ns])."""
        return {
            "nside": self.nside, "ipix_nest": self.ipix, "llh": self.llh,
            "ra_deg": math.degrees(self.ra), "dec_deg": math.degrees(self.dec),
            "zenith_deg": math.degrees(self.zenith), "azimuth_deg": math.degrees(self.azimuth),
            "x": self.x, "y": self.y, "z": self.z, "t": self.t,
        }


@dataclass
class ScanResult:
    """Per-nside tables of LEVEL_DTYPE rows (sorted by NESTED ipix) plus event metadata."""

    run_id: int
    event_id: int
    mjd: float
    event_type: str
    reco: str
    likelihood: str = ""
    is_real_event: bool = False
    levels: dict[int, np.ndarray] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def nsides(self) -> list[int]:
        """The scanned nsides, ascending."""
        return sorted(self.levels)

    @property
    def n_failed(self) -> int:
        """Number of failed fits (NaN −log L) over all levels."""
        return int(sum(int(np.isnan(lv["llh"]).sum()) for lv in self.levels.values()))

    def finite_levels(self) -> dict[int, np.ndarray]:
        """Each level without its failed (NaN) rows."""
        return {n: lv[np.isfinite(lv["llh"])] for n, lv in self.levels.items()}

    def best(self) -> BestFit | None:
        """Lowest −log L over all levels (ties: finer nside, then lower ipix)."""
        best_row, best_nside = None, 0
        for nside in sorted(self.levels, reverse=True):
            lv = self.levels[nside]
            ok = np.flatnonzero(np.isfinite(lv["llh"]))
            if ok.size == 0:
                continue
            i = ok[np.lexsort((lv["ipix"][ok], lv["llh"][ok]))[0]]
            if best_row is None or lv["llh"][i] < best_row["llh"]:
                best_row, best_nside = lv[i], nside
        if best_row is None:
            return None
        from skyscan_tui.coords import equatorial_to_local
        from skyscan_tui.sky import pixel_radec

        ra, dec = pixel_radec(best_nside, best_row["ipix"])
        zen, azi = equatorial_to_local(ra, dec, self.mjd)
        return BestFit(best_nside, int(best_row["ipix"]), float(best_row["llh"]), float(ra),
                       float(dec), float(zen), float(azi), float(best_row["x"]),
                       float(best_row["y"]), float(best_row["z"]), float(best_row["t"]))

    # ------------------------------------------------------------------ skyreader files
    def basename(self) -> str:
        """The base of the result file names: run, event, event type and nsides."""
        nsides = "_".join(str(n) for n in self.nsides)
        # the type ends up in a file name: keep it to safe characters whatever its source
        etype = "".join(c if c.isascii() and (c.isalnum() or c in "_-") else "_"
                        for c in (self.event_type or "SIM")[:32])
        return f"run{self.run_id:08d}.evt{self.event_id:012d}.{etype}_{nsides}"

    def _header_fields(self, nside: int) -> dict[str, Any]:
        return {
            "run_id": int(self.run_id), "event_id": int(self.event_id),
            "mjd": float(self.mjd), "event_type": self.event_type or "SIM",
            "nside": int(nside), "version": 1, "is_real_event": bool(self.is_real_event),
            "reco": self.reco, "likelihood": self.likelihood,
            "software_version": f"skyscan-tui {__version__}",
            "nside_progression": str(self.meta.get("nside_progression", "")),
            "nsides": ",".join(str(n) for n in self.nsides),
            "n_failed": int(np.isnan(self.levels[nside]["llh"]).sum()),
            **self._topology_fields(),
            **self._overlay_fields(),
            **self._systematic_fields(),
        }

    def _systematic_fields(self) -> dict[str, Any]:
        """The scan's ``--thresholds`` and ``--error-floor`` when not the defaults.

        So a re-opened result (summary, products, the app) says the same systematic."""
        spec = str(self.meta.get("thresholds") or "wilks")
        floor = float(self.meta.get("error_floor_deg") or 0.0)
        out: dict[str, Any] = {}
        if spec.strip().lower() != "wilks":
            out["thresholds"] = spec
        if floor > 0:
            out["error_floor_deg"] = floor
        return out

    def _overlay_fields(self) -> dict[str, Any]:
        """The seed fits and truth (``meta["overlays"]``) as one JSON text, when there are any.

        So a saved result still knows what to draw over its map."""
        ov = self.meta.get("overlays")
        if not (isinstance(ov, dict) and (ov.get("seeds") or ov.get("truth"))):
            return {}
        from skyscan_tui.overlays import overlays_json

        return {"overlays": overlays_json(ov)}

    def _topology_fields(self) -> dict[str, Any]:
        """Header fields of a cascade-like verdict (none for track-like events).

        Files of track-like events stay as before; a file scanned with ``--allow-cascade`` keeps
        its warning."""
        topo = self.meta.get("topology")
        if not (isinstance(topo, dict) and topo.get("cascade_like")):
            return {}
        return {"topology": "cascade-like", "topology_llr": float(topo["llr"]),
                "topology_threshold": float(topo["threshold"]),
                "topology_n_dom": int(topo["n_dom"]), "topology_length": float(topo["length"])}

    def skyreader_arrays(self, nside: int) -> np.ndarray:
        """The level as skyreader's version-1 pixel array, RING-indexed and sorted."""
        lv = self.levels[nside]
        out = np.zeros(len(lv), dtype=SKYREADER_DTYPE)
        out["index"] = healpix.nest2ring(nside, lv["ipix"])
        for src, dst in (("llh", "llh"), ("E_in", "E_in"), ("E_tot", "E_tot"), ("x", "X"),
                         ("y", "Y"), ("z", "Z"), ("t", "T")):
            out[dst] = lv[src]
        return out[np.argsort(out["index"], kind="stable")]

    def to_npz_bytes(self) -> bytes:
        """The result as skyreader ``.npz`` bytes."""
        first = self._header_fields(self.nsides[0])
        hdr_dtype = np.dtype([
            (k, f"U{max(1, max(len(str(self._header_fields(n)[k])) for n in self.nsides))}")
            if isinstance(v, str) else (k, type(v))
            for k, v in first.items()
        ])
        header = np.array([tuple(self._header_fields(n).values()) for n in self.nsides],
                          dtype=hdr_dtype)
        arrays = {f"nside-{n}": self.skyreader_arrays(n) for n in self.nsides}
        buf = io.BytesIO()
        np.savez(buf, header=header, **arrays)
        return buf.getvalue()

    def to_json_dict(self) -> dict[str, Any]:
        """The result as a JSON-ready dict (NaN written as a sentinel)."""
        def friendly(v: Any) -> Any:
            return NAN_SENTINEL if isinstance(v, float) and math.isnan(v) else v

        out: dict[str, Any] = {}
        for n in self.nsides:
            arr = self.skyreader_arrays(n)
            data = [[int(r[0])] + [friendly(float(x)) for x in list(r)[1:]] for r in arr.tolist()]
            out[f"nside-{n}"] = {
                "columns": _SR_COLUMNS,
                "metadata": {k: friendly(v) for k, v in self._header_fields(n).items()},
                "data": data,
            }
        return out

    def to_json_text(self, chunk: int = 4096) -> str:
        """``json.dumps(self.to_json_dict())``, built ``chunk`` rows at a time.

        So a large skymap never exists as millions of Python objects at once (flat memory)."""
        def friendly(v: Any) -> Any:
            return NAN_SENTINEL if isinstance(v, float) and math.isnan(v) else v

        parts = []
        for n in self.nsides:
            head = json.dumps({"columns": _SR_COLUMNS,
                               "metadata": {k: friendly(v)
                                            for k, v in self._header_fields(n).items()},
                               "data": []})
            arr = self.skyreader_arrays(n)
            rows = []
            for start in range(0, len(arr), chunk):
                block = [[int(r[0])] + [friendly(float(x)) for x in list(r)[1:]]
                         for r in arr[start:start + chunk].tolist()]
                rows.append(json.dumps(block)[1:-1])
            parts.append(f"{json.dumps(f'nside-{n}')}: {head[:-3]}[{', '.join(rows)}]}}")
        return "{" + ", ".join(parts) + "}"

    def save(self, outdir: str | Path) -> dict[str, Path]:
        """Write ``.npz``, ``.json`` and the summary files atomically; returns their paths."""
        outdir = Path(outdir)
        outdir.mkdir(parents=True, exist_ok=True)
        base = outdir / self.basename()
        paths = {"npz": base.with_name(base.name + ".npz"),
                 "json": base.with_name(base.name + ".json"),
                 "summary": outdir / "summary.json",
                 "summary_txt": outdir / "summary.txt"}
        atomic_write_bytes(paths["npz"], self.to_npz_bytes())
        atomic_write_text(paths["json"], self.to_json_text())
        # alert products (multi-order FITS probability map, GCN-style text): stats.py
        from skyscan_tui.products import write_products

        paths.update(write_products(self, outdir, self.stats(), self.basename(),
                                    flat_nside=self.meta.get("flat_nside"),
                                    multiorder_llh=bool(self.meta.get("multiorder_llh"))))
        summary = self.summary(files={k: str(v) for k, v in paths.items()})
        atomic_write_text(paths["summary"], json.dumps(summary, indent=2) + "\n")
        atomic_write_text(paths["summary_txt"], format_summary(summary) + "\n")
        return paths

    def stats(self, thresholds: Any = None, error_floor_deg: float | None = None):
        """Contours, areas and errors (``skyscan_tui.stats.SkyStats``); None without a fit.

        ``thresholds`` defaults to ``meta["thresholds"]`` (set by ``--thresholds``), else Wilks;
        ``error_floor_deg`` to ``meta["error_floor_deg"]`` (``--error-floor``), else none.
        """
        from skyscan_tui.stats import analyse, parse_thresholds

        # parsed, so "wilks" and Thresholds("wilks", ...) share one memo entry
        spec = parse_thresholds(thresholds or self.meta.get("thresholds") or "wilks")
        floor = float(error_floor_deg if error_floor_deg is not None
                      else self.meta.get("error_floor_deg") or 0.0)
        # save() and summary() both need it: memoised on the settings and the maps' content
        digest = hashlib.blake2b(repr((spec, floor, self.mjd)).encode(), digest_size=16)
        for n, lv in sorted(self.levels.items()):
            digest.update(np.int64(n).tobytes())
            digest.update(np.ascontiguousarray(lv["ipix"]).tobytes())
            digest.update(np.ascontiguousarray(lv["llh"]).tobytes())
        key = digest.hexdigest()
        memo = self.__dict__.setdefault("_stats_memo", {})
        if key not in memo:
            memo.clear()
            memo[key] = analyse(self, spec, floor)
        return memo[key]

    def summary(self, files: dict[str, str] | None = None) -> dict[str, Any]:
        """The figures of ``summary.json``: best fit, errors, areas, and the ``files`` written."""
        from skyscan_tui.overlays import truth_report

        best = self.best()
        stats = self.stats()
        truth = truth_report(self, stats)  # simulated events only: how well the scan did
        return {
            "run_id": self.run_id, "event_id": self.event_id, "mjd": self.mjd,
            "event_type": self.event_type, "reco": self.reco, "likelihood": self.likelihood,
            "best_fit": None if best is None else best.to_dict(),
            "pixels": {str(n): int(len(lv)) for n, lv in sorted(self.levels.items())},
            "failed_pixels": self.n_failed,
            "statistics": None if stats is None else stats.to_dict(),
            "topology": self.meta.get("topology"),
            **({"truth": truth} if truth is not None else {}),
            "meta": self.meta,
            "files": files or {},
        }


def format_summary(summary: dict[str, Any]) -> str:
    lines = [f"Run {summary['run_id']} event {summary['event_id']} "
             f"({summary['event_type'] or 'simulated'}), MJD {summary['mjd']:.6f}",
             f"Reco: {summary['reco']}" + (f" ({summary['likelihood']})"
                                           if summary.get("likelihood") else "")]
    topo = summary.get("topology")
    if topo and topo.get("cascade_like"):
        lines.insert(0, f"WARNING: CASCADE-LIKE EVENT: the track map is not meaningful "
                        f"(track/cascade log-likelihood ratio {topo['llr']:+.3f} per DOM > "
                        f"{topo['threshold']:+.3f}; scanned with --allow-cascade)")
    best = summary.get("best_fit")
    if best:
        lines.append(f"Best fit: RA {best['ra_deg']:.3f} deg, Dec {best['dec_deg']:+.3f} deg "
                     f"(J2000); zenith {best['zenith_deg']:.3f} deg, azimuth "
                     f"{best['azimuth_deg']:.3f} deg; -log L = {best['llh']:.3f} "
                     f"(nside {best['nside']})")
    else:
        lines.append("Best fit: none (no pixel succeeded)")
    st = summary.get("statistics")
    if st:
        ra_e, dec_e = st["ra_err90_deg"], st["dec_err90_deg"]
        lines.append(f"90% errors: RA +{ra_e[0]:.2f} {ra_e[1]:.2f} deg, Dec +{dec_e[0]:.2f} "
                     f"{dec_e[1]:.2f} deg; galactic l {st['galactic_l_deg']:.3f} deg, "
                     f"b {st['galactic_b_deg']:+.3f} deg")
        c, p = st["contours"], st["credible"]
        lines.append(f"Areas ({st['thresholds']['description']}): 50% {c['50%']['area_deg2']:.3f}"
                     f" deg2 (r {c['50%']['radius_deg']:.2f} deg), 90% "
                     f"{c['90%']['area_deg2']:.3f} deg2 (r {c['90%']['radius_deg']:.2f} deg); "
                     f"credible 50% {p['50%']['area_deg2']:.3f} deg2, 90% "
                     f"{p['90%']['area_deg2']:.3f} deg2")
        if st.get("systematic"):  # results saved before the error floor existed have none
            lines.append("Errors: " + st["systematic"])
    if summary.get("truth"):
        from skyscan_tui.overlays import format_truth

        lines.append(format_truth(summary["truth"]))
    pix = ", ".join(f"nside {n}: {c}" for n, c in summary["pixels"].items())
    lines.append(f"Pixels: {pix}; failed: {summary['failed_pixels']}")
    from skyscan_tui.observe import run_lines  # per-round timing, CPU, remote jobs

    lines.extend(run_lines(summary.get("meta") or {}))
    for k, v in summary.get("files", {}).items():
        lines.append(f"{k}: {v}")
    return "\n".join(lines)


# ---------------------------------------------------------------------- reading results
def _level_from_skyreader(nside: int, arr: np.ndarray) -> np.ndarray:
    names = set(arr.dtype.names or ())
    if not {"index", "llh"}.issubset(names):
        raise ValueError(f"nside-{nside} lacks index/llh columns")
    idx = np.asarray(arr["index"], dtype=np.int64)
    if idx.size and (idx.min() < 0 or idx.max() >= 12 * nside * nside):
        raise ValueError(f"nside-{nside} has pixel indices out of range")
    out = empty_level(healpix.ring2nest(nside, idx))
    for src, dst in (("llh", "llh"), ("E_in", "E_in"), ("E_tot", "E_tot"), ("X", "x"),
                     ("Y", "y"), ("Z", "z"), ("T", "t")):
        if src in names:
            out[dst] = np.asarray(arr[src], dtype=np.float64)
    out = out[np.argsort(out["ipix"], kind="stable")]
    if np.any(np.diff(out["ipix"]) == 0):
        raise ValueError(f"nside-{nside} has duplicate pixels")
    return out


def _parse_nside_key(key: str) -> int:
    if not key.startswith("nside-"):
        raise ValueError(f"unexpected entry {key!r}")
    nside = int(key[6:])
    if nside < 1 or nside > 8192 or nside & (nside - 1):
        raise ValueError(f"bad nside {nside}")
    return nside


def _result_from_levels(levels: dict[int, np.ndarray], meta: dict[str, Any]) -> ScanResult:
    def get(key: str, default: Any) -> Any:
        v = meta.get(key, default)
        return v.item() if isinstance(v, np.generic) else v

    topology = {}
    if str(get("topology", "")) == "cascade-like":  # see ScanResult._topology_fields
        topology = {"topology": {
            "cascade_like": True, "verdict": "cascade-like",
            "llr": float(get("topology_llr", np.nan)),
            "threshold": float(get("topology_threshold", np.nan)),
            "n_dom": int(get("topology_n_dom", 0)),
            "length": float(get("topology_length", np.nan))}}
    from skyscan_tui.overlays import overlays_from_json

    ov = overlays_from_json(get("overlays", None))
    overlays = {"overlays": ov} if ov is not None else {}
    systematic = _systematic_from(get("thresholds", None), get("error_floor_deg", None))
    return ScanResult(
        run_id=int(get("run_id", 0)), event_id=int(get("event_id", 0)),
        mjd=float(get("mjd", 0.0)), event_type=str(get("event_type", "")),
        reco=str(get("reco", "unknown")), likelihood=str(get("likelihood", "")),
        is_real_event=bool(get("is_real_event", False)), levels=levels,
        meta={"nside_progression": str(get("nside_progression", "")),
              **({"software_version": str(get("software_version", ""))}
                 if "software_version" in meta else {}), **topology, **overlays,
              **systematic},
    )


def _systematic_from(thresholds: Any, floor: Any) -> dict[str, Any]:
    """``thresholds``/``error_floor_deg`` of a result file's header.

    See ``ScanResult._systematic_fields``; values that do not parse are ignored."""
    from skyscan_tui.errorfloor import check_error_floor
    from skyscan_tui.stats import parse_thresholds

    out: dict[str, Any] = {}
    try:
        if thresholds is not None and len(str(thresholds)) <= 64:
            parse_thresholds(str(thresholds))
            out["thresholds"] = str(thresholds)
    except UserError:
        pass
    try:
        if floor is not None and float(floor) > 0:
            out["error_floor_deg"] = check_error_floor(float(floor))
    except (UserError, TypeError, ValueError):
        pass
    return out


def load_result(path: str | Path) -> ScanResult:
    """Read a skyreader ``.npz`` or ``.json`` result (ours or upstream's); one-line errors."""
    path = Path(path)
    if path.is_dir():
        found = sorted(path.glob("run*.npz"))
        if not found:
            raise ResultFileError(path, "no result .npz in this folder")
        path = found[-1]
    if not path.is_file():
        raise ResultFileError(path, "no such file")
    size = path.stat().st_size
    if size == 0:
        raise ResultFileError(path, "empty file")
    if size > MAX_RESULT_BYTES:
        raise ResultFileError(path, "file too large")
    try:
        if path.suffix == ".json":
            return _load_json(path)
        return _load_npz(path)
    except ResultFileError:
        raise
    except (ValueError, KeyError, TypeError, OSError, zipfile.BadZipFile, EOFError,
            OverflowError, IndexError, RecursionError, json.JSONDecodeError, zlib.error,
            NotImplementedError, RuntimeError, SystemError) as exc:
        # zip: odd methods, encryption; SystemError: numpy decoding invalid code points
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ResultFileError(path, f"not a readable skymap result ({reason})") from None


def _check_npz_members(path: Path) -> None:
    """Refuse an npz whose arrays claim more memory than the archive could hold.

    ``np.load`` allocates what a member's .npy header announces before reading any data, so
    a forged shape or dtype would otherwise ask for terabytes.
    """
    from numpy.lib import format as npy_format

    total = 0
    with zipfile.ZipFile(path) as zf:
        infos = zf.infolist()
        if len(infos) > 64:
            raise ValueError("too many entries")
        for info in infos:
            total += info.file_size
            if info.file_size > MAX_RESULT_BYTES or total > MAX_RESULT_BYTES:
                raise ValueError("archive expands too far")
            with zf.open(info) as fh:
                try:
                    version = npy_format.read_magic(fh)
                    if version == (1, 0):
                        shape, _fortran, dtype = npy_format.read_array_header_1_0(fh)
                    else:
                        shape, _fortran, dtype = npy_format.read_array_header_2_0(fh)
                except Exception as exc:  # noqa: BLE001 - numpy raises a zoo of types here
                    raise ValueError(f"{info.filename}: bad array header "
                                     f"({type(exc).__name__})") from None
            if dtype.hasobject:
                raise ValueError(f"{info.filename}: object arrays are not allowed")
            count = 1
            for dim in shape:
                count *= int(dim)
            if count * dtype.itemsize > info.file_size:
                raise ValueError(f"{info.filename}: array larger than its data")


def _load_npz(path: Path) -> ScanResult:
    _check_npz_members(path)
    with np.load(path, allow_pickle=False) as npz:
        keys = list(npz.keys())
        meta: dict[str, Any] = {}
        if "header" in keys:
            hdr = npz["header"]
            if hdr.dtype.names and len(hdr):
                meta = {k: hdr[0][k] for k in hdr.dtype.names}
        levels = {}
        for key in keys:
            if key == "header":
                continue
            nside = _parse_nside_key(key)
            levels[nside] = _level_from_skyreader(nside, npz[key])
    if not levels:
        raise ValueError("no nside levels")
    return _result_from_levels(levels, meta)


def _load_json(path: Path) -> ScanResult:
    obj = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(obj, dict) or not obj:
        raise ValueError("not a result object")
    levels, meta = {}, {}
    for key, entry in obj.items():
        nside = _parse_nside_key(key)
        if not isinstance(entry, dict) or not isinstance(entry.get("data"), list):
            raise ValueError(f"{key} has no data list")
        cols = entry.get("columns")
        if not isinstance(cols, list) or cols[:2] != ["index", "llh"]:
            raise ValueError(f"{key} has unexpected columns")
        dtype = np.dtype([(str(c), int if c == "index" else float) for c in cols])
        rows = []
        for row in entry["data"]:
            if not isinstance(row, list) or len(row) != len(cols):
                raise ValueError(f"{key} has a malformed row")
            rows.append(tuple(np.nan if v == NAN_SENTINEL else v for v in row))
        levels[nside] = _level_from_skyreader(nside, np.array(rows, dtype=dtype))
        md = entry.get("metadata")
        if isinstance(md, dict) and not meta:
            meta = {k: (np.nan if v == NAN_SENTINEL else v) for k, v in md.items()}
    return _result_from_levels(levels, meta)
