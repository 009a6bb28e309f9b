"""The neutrino event: pulses, header, seed particles and optional truth.

Native file format (``skyscan-event``, version 1) is a JSON object::

    {"format": "skyscan-event", "version": 1,
     "header": {"run_id": int, "event_id": int, "mjd": float, "event_type": str},
     "geometry": str,                       # name of the detector the positions come from
     "pulses": {"string": [int], "om": [int], "x": [m], "y": [m], "z": [m],
                "time": [ns], "charge": [PE]},
     "seeds": [{"name", "x", "y", "z", "time", "zenith", "azimuth", "energy"}],
     "truth": null | {same keys as a seed},
     "meta": {str: JSON value}}

Angles are radians (zenith/azimuth of the direction the particle comes from), lengths metres,
times nanoseconds, energy GeV, ``mjd`` UTC days. Floats round-trip exactly (shortest repr).

This module holds the event model and the native format only. Reading any event file
(native, or an IceCube realtime alert) goes through :func:`skyscan_tui.eventfiles.load_event`,
which recognises the format by the content.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from skyscan_tui.fileio import atomic_write_bytes

__all__ = [
    "Event", "Pulses", "Seed", "FORMAT", "VERSION",
    "load_event", "save_event", "event_to_dict", "event_from_dict", "event_digest",
]

FORMAT = "skyscan-event"
VERSION = 1
MAX_PULSES = 2_000_000

_PULSE_FIELDS = ("string", "om", "x", "y", "z", "time", "charge")
_SEED_FIELDS = ("name", "x", "y", "z", "time", "zenith", "azimuth", "energy")


@dataclass(frozen=True, eq=False)
class Pulses:
    """Pulse table; every array has shape (n_pulse,), sorted by time."""

    string: np.ndarray
    om: np.ndarray
    x: np.ndarray
    y: np.ndarray
    z: np.ndarray
    time: np.ndarray
    charge: np.ndarray

    def __post_init__(self) -> None:
        n = self.string.shape[0]
        for name in _PULSE_FIELDS:
            arr = getattr(self, name)
            if arr.ndim != 1 or arr.shape[0] != n:
                raise ValueError(f"pulse field {name!r} has the wrong shape")
            arr.setflags(write=False)

    def __len__(self) -> int:
        return int(self.string.shape[0])

    @property
    def pos(self) -> np.ndarray:
        """[m] (n_pulse, 3) DOM positions."""
        return np.stack([self.x, self.y, self.z], axis=1)

    @property
    def n_doms(self) -> int:
        """Number of distinct DOMs with a pulse."""
        if len(self) == 0:
            return 0
        return int(np.unique(self.string.astype(np.int64) * 1000 + self.om).size)

    @classmethod
    def from_arrays(cls, string, om, x, y, z, time, charge) -> Pulses:
        """Pulses from per-pulse arrays: string, OM, position [m], time [ns], charge [PE]."""
        arrays = [
            np.asarray(string, dtype=np.int32), np.asarray(om, dtype=np.int32),
            np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64),
            np.asarray(z, dtype=np.float64), np.asarray(time, dtype=np.float64),
            np.asarray(charge, dtype=np.float64),
        ]
        order = np.lexsort((arrays[1], arrays[0], arrays[5]))  # time, then string, om
        return cls(*[np.ascontiguousarray(a[order]) for a in arrays])

    def select(self, mask: np.ndarray) -> Pulses:
        """The pulses where ``mask`` (boolean, or indices) holds."""
        return Pulses(*[np.ascontiguousarray(getattr(self, f)[mask]) for f in _PULSE_FIELDS])


@dataclass(frozen=True)
class Seed:
    """A particle hypothesis: a point on the track [m], its time [ns], direction of origin [rad]."""

    name: str
    x: float
    y: float
    z: float
    time: float
    zenith: float
    azimuth: float
    energy: float = float("nan")

    @property
    def pos(self) -> np.ndarray:
        """The vertex (x, y, z) [m] as an array."""
        return np.array([self.x, self.y, self.z])


@dataclass(frozen=True, eq=False)
class Event:
    """One event: its pulses, seeds (best first), simulation truth, and time ``mjd`` [days]."""

    run_id: int
    event_id: int
    mjd: float
    event_type: str
    pulses: Pulses
    seeds: tuple[Seed, ...] = ()
    truth: Seed | None = None
    geometry: str = "icecube86"
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def best_seed(self) -> Seed | None:
        """The first seed (the best the file provides), or None."""
        return self.seeds[0] if self.seeds else None

    @property
    def total_charge(self) -> float:
        """Total charge of all pulses [PE]."""
        return float(np.sum(self.pulses.charge))


def _finite(value: Any, what: str) -> float:
    out = float(value)
    if not math.isfinite(out):
        raise ValueError(f"{what} is not finite")
    return out


MJD_RANGE = (0.0, 200_000.0)  # 1858 to 2406: what the sky transformations accept


def _id(value: Any, what: str) -> int:
    """A run or event number: an integer in 0 .. 2**63 - 1 (it names the result files)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"{what} is not an integer")
    out = int(value)
    if out != value and not isinstance(value, str) or not 0 <= out < 2**63:
        raise ValueError(f"{what} must be an integer in 0 .. 2**63-1")
    return out


def _mjd(value: Any) -> float:
    out = _finite(value, "mjd")
    if not MJD_RANGE[0] <= out <= MJD_RANGE[1]:
        raise ValueError(f"mjd {out} outside {MJD_RANGE[0]:g} .. {MJD_RANGE[1]:g}")
    return out


def _event_type(value: Any) -> str:
    """Alert stream name: short and printable (result file names sanitise it further)."""
    out = str(value) if value is not None else ""
    if len(out) > 64 or not out.isprintable():
        raise ValueError("event_type must be at most 64 printable characters")
    return out


def _json_default(obj: Any) -> Any:
    """numpy scalars/arrays (e.g. in ``meta`` from a decoder) as plain JSON values."""
    if hasattr(obj, "tolist"):
        return obj.tolist()
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def _seed_to_dict(seed: Seed) -> dict[str, Any]:
    return {k: getattr(seed, k) for k in _SEED_FIELDS}


def _seed_from_dict(obj: Any) -> Seed:
    if not isinstance(obj, dict):
        raise ValueError("a seed is not an object")
    missing = [k for k in _SEED_FIELDS if k not in obj and k != "energy"]
    if missing:
        raise ValueError(f"a seed lacks {', '.join(missing)}")
    vals = {k: _finite(obj[k], f"seed {k}") for k in _SEED_FIELDS[1:-1]}
    energy = obj.get("energy")
    return Seed(
        name=str(obj["name"]), energy=float("nan") if energy is None else float(energy), **vals
    )


def event_to_dict(event: Event) -> dict[str, Any]:
    """The event as a JSON-ready dict in the native format (``save_event`` writes it)."""
    p = event.pulses
    return {
        "format": FORMAT,
        "version": VERSION,
        "header": {
            "run_id": int(event.run_id), "event_id": int(event.event_id),
            "mjd": float(event.mjd), "event_type": str(event.event_type),
        },
        "geometry": event.geometry,
        "pulses": {f: getattr(p, f).tolist() for f in _PULSE_FIELDS},
        "seeds": [_seed_to_dict(s) for s in event.seeds],
        "truth": None if event.truth is None else _seed_to_dict(event.truth),
        "meta": event.meta,
    }


def event_from_dict(obj: Any) -> Event:
    """Build an Event from a native dict; raises ValueError with a short reason."""
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise ValueError("not a skyscan-event file")
    if obj.get("version") != VERSION:
        raise ValueError(f"unsupported skyscan-event version {obj.get('version')!r} "
                         f"(this program reads version {VERSION})")
    header = obj.get("header")
    pulses = obj.get("pulses")
    if not isinstance(header, dict) or not isinstance(pulses, dict):
        raise ValueError("header or pulses missing")
    cols = {}
    for f in _PULSE_FIELDS:
        col = pulses.get(f)
        if not isinstance(col, list):
            raise ValueError(f"pulses.{f} missing or not a list")
        if len(col) > MAX_PULSES:
            raise ValueError("too many pulses")
        cols[f] = col
    if len({len(c) for c in cols.values()}) != 1:
        raise ValueError("pulse columns differ in length")
    try:
        arrays = [np.asarray(cols[f], dtype=np.float64) for f in _PULSE_FIELDS]
    except (TypeError, ValueError):
        raise ValueError("pulse columns must hold numbers") from None
    if any(a.ndim != 1 for a in arrays) or not all(np.isfinite(a).all() for a in arrays):
        raise ValueError("pulse columns must hold finite numbers")
    for f, a in zip(_PULSE_FIELDS[:2], arrays[:2], strict=True):
        if a.size and (np.abs(a).max() > 1_000_000 or not np.array_equal(a, np.round(a))):
            raise ValueError(f"pulses.{f} must hold integers (DOM numbers)")
    seeds = obj.get("seeds", [])
    if not isinstance(seeds, list):
        raise ValueError("seeds is not a list")
    truth = obj.get("truth")
    meta = obj.get("meta", {})
    if not isinstance(meta, dict):
        raise ValueError("meta is not an object")
    return Event(
        run_id=_id(header["run_id"], "run_id"),
        event_id=_id(header["event_id"], "event_id"),
        mjd=_mjd(header["mjd"]),
        event_type=_event_type(header.get("event_type", "")),
        pulses=Pulses.from_arrays(*arrays),
        seeds=tuple(_seed_from_dict(s) for s in seeds),
        truth=None if truth is None else _seed_from_dict(truth),
        geometry=str(obj.get("geometry", "icecube86")),
        meta=meta,
    )


def event_digest(event: Event) -> str:
    """A stable SHA-256 of the event content (used to refuse resuming with another event)."""
    blob = json.dumps(event_to_dict(event), sort_keys=True, separators=(",", ":"),
                      default=_json_default)
    return hashlib.sha256(blob.encode()).hexdigest()


def save_event(event: Event, path: str | Path) -> None:
    """Write ``event`` to ``path`` in the native JSON format (atomically)."""
    text = json.dumps(event_to_dict(event), indent=None, separators=(",", ":"),
                      default=_json_default)
    atomic_write_bytes(Path(path), text.encode())


def load_event(path: str | Path, *, pulses: str | None = None, geometry: Any = None) -> Event:
    """Read an event file of any supported format: :func:`skyscan_tui.eventfiles.load_event`.

    Kept here for existing callers; which reader handles a file is decided there.
    """
    from skyscan_tui.eventfiles import load_event as load_any  # it imports this module

    return load_any(path, pulses=pulses, geometry=geometry)
