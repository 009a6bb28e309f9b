"""Frame objects other than pulses: I3EventHeader, I3Particle and scalar values.

Each reader takes a :class:`~skyscan_tui.realtime.binreader.Reader` positioned after the
object header (see :func:`~skyscan_tui.realtime.frames.open_blob`) and the class version
found there, and checks that the object's bytes are used up exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from skyscan_tui.realtime.binreader import Reader
from skyscan_tui.realtime.errors import RealtimeError
from skyscan_tui.realtime.i3time import read_i3time

__all__ = ["Header", "Particle", "read_event_header", "read_particle", "read_scalar"]


@dataclass(frozen=True)
class Header:
    """The fields of an I3EventHeader that the decoder uses."""

    run_id: int
    sub_run_id: int
    event_id: int
    sub_event_id: int
    sub_event_stream: str
    start: tuple[int, int]  # I3Time (year, daqTime [0.1 ns])
    end: tuple[int, int]


def read_event_header(r: Reader, version: int) -> Header:
    """An I3EventHeader (class versions 0–3; older versions lack the later fields)."""
    if version > 3:
        raise RealtimeError(f"{r.what}: unsupported I3EventHeader version {version}")
    r.klass("I3FrameObject")
    run = r.u32()
    sub_run = r.u32() if version >= 1 else 0
    event = r.u32()
    if version >= 2:
        r.i32()  # state
    sub_event = r.u32() if version >= 3 else 0
    stream = r.string() if version >= 3 else ""
    start = read_i3time(r)
    end = read_i3time(r)
    r.done()
    return Header(run, sub_run, event, sub_event, stream, start, end)


@dataclass(frozen=True)
class Particle:
    """An I3Particle fit: vertex [m], time [ns], direction of origin [rad], energy [GeV]."""

    name: str
    x: float
    y: float
    z: float
    time: float
    zenith: float
    azimuth: float
    energy: float
    shape: int
    fit_status: int


def read_particle(r: Reader, version: int, key: str) -> Particle:
    """An I3Particle (class versions 2–5), named after its frame key."""
    if not 2 <= version <= 5:
        raise RealtimeError(f"{r.what}: unsupported I3Particle version {version}")
    r.klass("I3FrameObject")
    r.i32()  # minorID
    r.u64()  # majorID
    r.i32()  # pdgEncoding (v5) / old type code
    shape = r.i32()
    fit_status = r.i32()
    r.klass("I3Position")
    r.klass("I3FrameObject")
    x, y, z = r.f64(), r.f64(), r.f64()
    r.klass("I3Direction")
    r.klass("I3FrameObject")
    zen, azi = r.f64(), r.f64()
    time, energy = r.f64(), r.f64()
    r.f64()  # length
    r.f64()  # speed
    r.i32()  # locationType
    if version == 4:
        r.f64()  # bjorken x
        r.f64()  # bjorken y
    r.done()
    return Particle(key, x, y, z, time, zen, azi, energy, shape, fit_status)


def read_scalar(r: Reader, name: str) -> Any:
    """The value of an I3Double, I3Int, I3Bool, I3String or I3Position (as [x, y, z] [m])."""
    r.klass("I3FrameObject")
    if name == "I3Double":
        val: Any = r.f64()
    elif name == "I3Int":
        val = r.i32()
    elif name == "I3Bool":
        val = bool(r.u8())
    elif name == "I3String":
        val = r.string()
    elif name == "I3Position":
        val = [r.f64(), r.f64(), r.f64()]
    else:
        raise RealtimeError(f"{r.what}: not a scalar class {name}")
    r.done()
    return val
