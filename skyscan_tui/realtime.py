"""IceCube realtime alert files (I3Live JSON messages and ``.pkl`` dicts) without IceTray.

Decoding chain (byte-level facts from ``docs/i3-realtime-format.md``)::

    message (JSON dict, or a pickled dict)      -> value.data (list, or {"frames": list})
    frame entry [letter, base64 text]           -> zlib stream -> pickle of an I3Frame
    I3Frame pickle state                        -> "[i3]" binary frame (version 6, CRC-32C)
    Q frame: QI3EventHeader, I3SuperDST, InIceDSTPulses (mask), [UncleanedInIcePulses]
    P frame: I3EventHeader, split-pulse mask, I3Particle fits (seeds)

Only the Q and P frames are decompressed; the G/C/D frames are diffs against a baseline
GCD file that is not public, so DOM positions come from a geometry table instead
(:func:`skyscan_tui.geometry.default_geometry` unless another is given).

Safety: every pickle (the outer ``.pkl`` dict and each frame) is first walked opcode by
opcode (:mod:`pickletools`, which never reads past the data) against an allow-list of
opcodes, and memo indices are bounded; then it is loaded by an unpickler whose
``find_class`` knows only the I3Frame class names (mapped to an inert holder) and
``_codecs.encode`` (restricted to latin-1). Anything else — ``os.system``, ``builtins.eval``,
persistent ids, extension codes — is refused. Decompression is capped, and every length or
count read from a frame is checked against the bytes that remain before anything is
allocated. Any defect gives :class:`~skyscan_tui.errors.EventFileError` with one line.

Known simplification: IceTray adjusts pulse *widths* (and the times of pulses with exactly
equal times on one DOM) when unpacking SuperDST; widths are not used here, and pulses with
tied times keep their decoded times (no such ties occur in the test files).
"""

from __future__ import annotations

import base64
import binascii
import datetime as _dt
import io
import logging
import math
import pickle
import pickletools
import re
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from skyscan_tui.errors import EventFileError

__all__ = ["load", "DEFAULT_SERIES", "SEED_PRIORITY", "RealtimeError", "i3time_to_mjd",
           "crc32c_raw", "restricted_loads", "FrameHolder"]

log = logging.getLogger(__name__)

#: Pulse series tried in order when none is asked for (what the upstream scanner uses).
DEFAULT_SERIES = ("SplitInIcePulses", "SplitUncleanedInIcePulses")
#: Best online track fits first: the engine's first guess is ``Event.seeds[0]``.
SEED_PRIORITY = (
    "l2_online_SplineMPE", "OnlineL2_SplineMPE", "l2_online_BestFit", "OnlineL2_BestFit",
    "l2_online_MPEFit", "OnlineL2_MPEFit", "HESE_SPEFit2", "HESE_SPEFitSingle",
    "HESE_MuonImprovedLineFit",
)

MAX_FRAME_PICKLE = 16 * 1024 * 1024  # decompressed frame pickle (real ones are <= 0.8 MB)
MAX_FRAMES = 32
MAX_ENTRIES = 10_000
MAX_PULSES = 2_000_000
_MAX_MEMO = 1_000_000
_MAX_MASK_DEPTH = 16
_PULSE_CLASSES = ("I3SuperDST", "I3RecoPulseSeriesMapMask", "I3RecoPulseSeriesMap")


class RealtimeError(Exception):
    """A defect in a realtime file; its message is one short line (no path)."""


# ------------------------------------------------------------------ restricted unpickling
class FrameHolder:
    """Inert stand-in for ``icecube.icetray.I3Frame``: keeps the pickled state, runs nothing."""

    __slots__ = ("state",)

    def __init__(self) -> None:
        self.state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state


class _Latin1Encode:
    """Replacement for ``_codecs.encode``: only ``(str, 'latin1')`` → bytes (py3 frame pickles).

    An instance without ``__dict__`` whose ``__setstate__`` refuses, so a pickle's BUILD
    opcode cannot alter it (a plain function would accept new attributes).
    """

    __slots__ = ()

    def __call__(self, text: Any, encoding: Any = "utf-8") -> bytes:
        if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
            raise RealtimeError("pickle calls _codecs.encode with unexpected arguments")
        return text.encode("latin-1")

    def __setstate__(self, state: Any) -> None:
        raise RealtimeError("pickle tries to modify _codecs.encode; refused")


_latin1_encode = _Latin1Encode()


_FRAME_GLOBALS: dict[tuple[str, str], Any] = {
    ("icecube.icetray", "I3Frame"): FrameHolder,
    ("icecube._icetray", "I3Frame"): FrameHolder,
    ("_codecs", "encode"): _latin1_encode,
}

# Opcodes a data-only pickle (dicts, lists, tuples, strings, numbers) plus the frame wrapper
# needs. No INST/OBJ/NEWOBJ/EXT*/PERSID/STACK_GLOBAL: they could build arbitrary objects.
_SAFE_OPS = frozenset("""
PROTO FRAME STOP MARK POP POP_MARK DUP
NONE NEWTRUE NEWFALSE INT BININT BININT1 BININT2 LONG1 BINFLOAT
BINSTRING SHORT_BINSTRING BINBYTES SHORT_BINBYTES BINBYTES8 BYTEARRAY8
BINUNICODE SHORT_BINUNICODE BINUNICODE8
EMPTY_DICT DICT SETITEM SETITEMS EMPTY_LIST LIST APPEND APPENDS
EMPTY_TUPLE TUPLE TUPLE1 TUPLE2 TUPLE3 EMPTY_SET ADDITEMS FROZENSET
BINPUT LONG_BINPUT MEMOIZE BINGET LONG_BINGET
""".split())
_CALL_OPS = frozenset({"GLOBAL", "REDUCE", "BUILD"})


class _Unpickler(pickle.Unpickler):
    def __init__(self, data: bytes, allowed: dict[tuple[str, str], Any]) -> None:
        super().__init__(io.BytesIO(data), encoding="latin1")  # py2 str payloads → text
        self._allowed = allowed

    def find_class(self, module: str, name: str) -> Any:
        obj = self._allowed.get((module, name))
        if obj is None:
            raise RealtimeError(f"pickle refers to forbidden global {module}.{name}; refused")
        return obj

    def persistent_load(self, pid: Any) -> Any:
        raise RealtimeError("pickle uses persistent ids; refused")


def restricted_loads(data: bytes, allowed: dict[tuple[str, str], Any] | None = None) -> Any:
    """Unpickle ``data`` allowing only the globals in ``allowed`` (none by default).

    The opcode stream is checked first (allow-listed opcodes, declared lengths within the
    data, bounded memo indices), so neither code execution nor a huge allocation can happen.
    """
    allowed = allowed or {}
    ops = _SAFE_OPS | (_CALL_OPS if allowed else frozenset())
    try:
        recent: list[str] = ["?", "?"]  # last two strings pushed (names for STACK_GLOBAL)
        for op, arg, _pos in pickletools.genops(io.BytesIO(data)):
            if isinstance(arg, str) and op.name.endswith("UNICODE"):
                recent = [recent[1], arg[:80]]
            if op.name in ("GLOBAL", "STACK_GLOBAL"):
                # protocol-4 STACK_GLOBAL takes its names from the stack: never allowed
                module, _, name = (str(arg).partition(" ") if op.name == "GLOBAL"
                                   else (recent[0], "", recent[1]))
                if op.name == "STACK_GLOBAL" or (module, name) not in allowed:
                    raise RealtimeError(
                        f"pickle refers to forbidden global {module}.{name}; refused")
            elif op.name not in ops:
                raise RealtimeError(f"pickle uses the disallowed opcode {op.name}; refused")
            elif op.name in ("BINPUT", "LONG_BINPUT", "BINGET", "LONG_BINGET") \
                    and int(arg) > _MAX_MEMO:
                raise RealtimeError("pickle memo index out of range")
    except RealtimeError:
        raise
    except (ValueError, EOFError, UnicodeDecodeError, OverflowError) as exc:
        raise RealtimeError(f"corrupt pickle ({_short(exc)})") from None
    try:
        return _Unpickler(data, allowed).load()
    except RealtimeError:
        raise
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is a file defect
        raise RealtimeError(f"corrupt pickle ({type(exc).__name__}: {_short(exc)})") from None


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:160]


# ------------------------------------------------------------------ containers
def _frame_list(msg: Any) -> tuple[list[tuple[str, str]], dict[str, Any]]:
    """The [letter, base64] frame list and the plain metadata of a message dict."""
    if not isinstance(msg, dict):
        raise RealtimeError("message is not a JSON object / dict")
    value = msg.get("value")
    if not isinstance(value, dict):
        raise RealtimeError("message has no 'value' object")
    data = value.get("data")
    meta: dict[str, Any] = {}
    if isinstance(data, dict):  # 2021+ realtimeEventData
        frames = data.get("frames")
        meta = {k: v for k, v in data.items() if k != "frames"}
    elif isinstance(data, list):  # 2016/2017 HESE messages
        frames = data
    else:
        raise RealtimeError("message 'value.data' is neither a frame list nor an object")
    if not isinstance(frames, list) or not frames:
        raise RealtimeError("message has no frame list")
    if len(frames) > MAX_FRAMES:
        raise RealtimeError(f"message has {len(frames)} frames (at most {MAX_FRAMES})")
    out = []
    for i, entry in enumerate(frames):
        if (not isinstance(entry, (list, tuple)) or len(entry) != 2
                or not isinstance(entry[0], str) or not isinstance(entry[1], (str, bytes))):
            raise RealtimeError(f"frame entry {i} is not a [stream, payload] pair")
        out.append((entry[0], entry[1]))
    return out, meta


def _inflate(payload: str | bytes, what: str) -> bytes:
    """base64 → zlib → bytes, capped at MAX_FRAME_PICKLE."""
    try:
        raw = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise RealtimeError(f"{what}: payload is not valid base64") from None
    dec = zlib.decompressobj()
    try:
        out = dec.decompress(raw, MAX_FRAME_PICKLE)
    except zlib.error as exc:
        raise RealtimeError(f"{what}: corrupt zlib data ({exc})") from None
    if dec.unconsumed_tail:
        raise RealtimeError(f"{what}: decompresses to more than {MAX_FRAME_PICKLE} bytes")
    if not dec.eof:
        raise RealtimeError(f"{what}: compressed data is truncated")
    return out


def _frame_bytes(payload: str | bytes, what: str) -> bytes:
    obj = restricted_loads(_inflate(payload, what), _FRAME_GLOBALS)
    if not isinstance(obj, FrameHolder):
        raise RealtimeError(f"{what}: pickle does not hold an I3Frame")
    state = obj.state
    if isinstance(state, tuple) and len(state) == 2:
        state = state[1]
    if isinstance(state, str):  # py2 BINSTRING read with encoding=latin1
        state = state.encode("latin-1")
    if not isinstance(state, (bytes, bytearray)):
        raise RealtimeError(f"{what}: I3Frame state is not frame bytes")
    return bytes(state)


# ------------------------------------------------------------------ binary reader
class _Reader:
    """Bounds-checked little-endian reader over a byte range; also tracks archive classes."""

    __slots__ = ("buf", "pos", "end", "what", "classes")

    def __init__(self, buf: bytes, what: str, pos: int = 0, end: int | None = None) -> None:
        self.buf = buf
        self.pos = pos
        self.end = len(buf) if end is None else end
        self.what = what
        self.classes: dict[str, tuple[bool, int]] = {}

    @property
    def left(self) -> int:
        return self.end - self.pos

    def need(self, n: int) -> None:
        if n < 0 or n > self.end - self.pos:
            raise RealtimeError(f"{self.what}: truncated or corrupt (needs {n} bytes at "
                                f"offset {self.pos}, {self.end - self.pos} left)")

    def take(self, n: int) -> bytes:
        self.need(n)
        out = self.buf[self.pos:self.pos + n]
        self.pos += n
        return out

    def _unpack(self, fmt: struct.Struct) -> Any:
        self.need(fmt.size)
        (val,) = fmt.unpack_from(self.buf, self.pos)
        self.pos += fmt.size
        return val

    def u8(self) -> int:
        return self._unpack(_U8)

    def u16(self) -> int:
        return self._unpack(_U16)

    def i16(self) -> int:
        return self._unpack(_I16)

    def u32(self) -> int:
        return self._unpack(_U32)

    def i32(self) -> int:
        return self._unpack(_I32)

    def u64(self) -> int:
        return self._unpack(_U64)

    def f32(self) -> float:
        return self._unpack(_F32)

    def f64(self) -> float:
        return self._unpack(_F64)

    def size(self, item_bytes: int = 1) -> int:
        """Collection size (u32, 0xFFFFFFFF escapes to u64), checked against what remains."""
        n = self.u32()
        if n == 0xFFFFFFFF:
            n = self.u64()
        if n * item_bytes > self.left:
            raise RealtimeError(f"{self.what}: declared count {n} exceeds the data "
                                f"({self.left} bytes left)")
        return n

    def string(self) -> str:
        return self.take(self.size()).decode("utf-8", "replace")

    def array(self, dtype: str, n: int) -> np.ndarray:
        dt = np.dtype(dtype)
        self.need(n * dt.itemsize)
        out = np.frombuffer(self.buf, dtype=dt, count=n, offset=self.pos)
        self.pos += n * dt.itemsize
        return out

    def klass(self, name: str) -> int:
        """Class preamble: tracking+version on first use in this blob, object id if tracked."""
        if name not in self.classes:
            tracking = self.u8()
            if tracking > 1:
                raise RealtimeError(f"{self.what}: bad tracking byte {tracking} for {name}")
            version = self.u8()
            if version == 0xFF:
                version = self.u64()
            self.classes[name] = (bool(tracking), version)
        tracked, version = self.classes[name]
        if tracked:
            self.u32()  # object id
        return version

    def done(self) -> None:
        if self.pos != self.end:
            raise RealtimeError(f"{self.what}: {self.end - self.pos} unexpected trailing bytes")


_U8, _U16, _I16 = struct.Struct("<B"), struct.Struct("<H"), struct.Struct("<h")
_U32, _I32, _U64 = struct.Struct("<I"), struct.Struct("<i"), struct.Struct("<Q")
_F32, _F64 = struct.Struct("<f"), struct.Struct("<d")


def _crc_table() -> list[int]:
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC_TABLE = _crc_table()


def crc32c_raw(data: bytes) -> int:
    """CRC-32C (Castagnoli, reflected) as a raw register: start 0, no final inversion."""
    crc = 0
    table = _CRC_TABLE
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc


@dataclass(frozen=True)
class _Entry:
    type_name: str
    blob: bytes


def parse_frame(buf: bytes, what: str) -> tuple[str, dict[str, _Entry]]:
    """A binary ``[i3]`` frame (version 6) → (stream letter, {key: entry}); CRC verified."""
    r = _Reader(buf, what)
    if r.take(4) != b"[i3]":
        raise RealtimeError(f"{what}: not an I3 frame (bad magic)")
    version = r.u32()
    if version != 6:
        raise RealtimeError(f"{what}: unsupported I3 frame version {version} (reads 6)")
    r.take(2)  # stream object: tracking, class version
    stream = chr(r.u8())
    n = r.u32()
    if n > MAX_ENTRIES or n * 12 > r.left:
        raise RealtimeError(f"{what}: declared {n} entries exceed the data")
    entries: dict[str, _Entry] = {}
    for _ in range(n):
        key = r.string()
        type_name = r.string()
        blob = r.take(r.size())
        entries[key] = _Entry(type_name, blob)
    if r.left != 4:
        raise RealtimeError(f"{what}: frame length does not match its entries")
    stored = r.u32()
    if crc32c_raw(buf[10:len(buf) - 4]) != stored:
        raise RealtimeError(f"{what}: checksum mismatch (corrupt frame)")
    return stream, entries


# ------------------------------------------------------------------ frame objects
def _open_blob(entry: _Entry, key: str) -> tuple[_Reader, str, int] | None:
    """Read the polymorphic-pointer header of a frame object: (reader, class name, version)."""
    r = _Reader(entry.blob, f"frame object {key!r}")
    if (r.u8(), r.u8()) != (0, 1):
        raise RealtimeError(f"{r.what}: unexpected object header")
    if r.i16() == -1:
        return None  # null pointer
    n = r.size()
    if n > 256:
        raise RealtimeError(f"{r.what}: class name of {n} bytes")
    name = r.take(n).decode("ascii", "replace")
    version = r.klass(name)
    return r, name, version


def class_name(entry: _Entry, key: str) -> str:
    opened = _open_blob(entry, key)
    return "" if opened is None else opened[1]


def _i3time(r: _Reader) -> tuple[int, int]:
    r.klass("I3Time")
    r.klass("I3FrameObject")
    year = r.i32()
    daq = struct.unpack("<q", r.take(8))[0]
    if not 1970 <= year <= 2200 or not 0 <= daq < 367 * 86400 * 10**10:
        raise RealtimeError(f"{r.what}: implausible I3Time (year {year}, daqTime {daq})")
    return year, daq


# MJDs of days that end with a leap second (IERS bulletin C; docs/i3-realtime-format.md §6)
_LEAP_DAYS = (41316, 41498, 41682, 42047, 42412, 42777, 43143, 43508, 43873, 44238, 44785,
              45150, 45515, 46246, 47160, 47891, 48256, 48803, 49168, 49533, 50082, 50629,
              51178, 53735, 54831, 56108, 57203, 57753)
_MJD_EPOCH = _dt.date(1858, 11, 17).toordinal()


def i3time_split(year: int, daq: int) -> tuple[int, int, int]:
    """I3Time → (MJD day, second of day, tenths of ns) in UTC, leap seconds removed."""
    secs, tenth_ns = divmod(daq, 10**10)
    mjd0 = _dt.date(year, 1, 1).toordinal() - _MJD_EPOCH
    leaps = sum(1 for d in _LEAP_DAYS if mjd0 <= d < mjd0 + secs / 86400.0)
    day, sod = divmod(secs - leaps, 86400)
    return mjd0 + day, sod, tenth_ns


def i3time_to_mjd(year: int, daq: int) -> float:
    """[UTC days] I3Time (year, 0.1 ns ticks since Jan 1 of that year) → MJD."""
    day, sod, tenth_ns = i3time_split(year, daq)
    return day + (sod + tenth_ns * 1e-10) / 86400.0


def i3time_to_utc(year: int, daq: int) -> str:
    """I3Time → ``YYYY-MM-DD hh:mm:ss.ffffff`` UTC (microseconds truncated)."""
    day, sod, tenth_ns = i3time_split(year, daq)
    stamp = _dt.datetime(1858, 11, 17) + _dt.timedelta(days=day, seconds=sod,
                                                       microseconds=tenth_ns // 10_000)
    return stamp.strftime("%Y-%m-%d %H:%M:%S.%f")


@dataclass(frozen=True)
class Header:
    run_id: int
    sub_run_id: int
    event_id: int
    sub_event_id: int
    sub_event_stream: str
    start: tuple[int, int]  # I3Time (year, daqTime [0.1 ns])
    end: tuple[int, int]


def _event_header(r: _Reader, version: int) -> Header:
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
    start = _i3time(r)
    end = _i3time(r)
    r.done()
    return Header(run, sub_run, event, sub_event, stream, start, end)


@dataclass(frozen=True)
class Particle:
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


def _particle(r: _Reader, version: int, key: str) -> Particle:
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


def _scalar(r: _Reader, name: str) -> Any:
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


# ------------------------------------------------------------------ pulses
@dataclass(frozen=True)
class PulseMap:
    """Flat pulse map in IceTray order: by (string, om), then time order within a DOM."""

    string: np.ndarray
    om: np.ndarray
    time: np.ndarray  # [ns] relative to the Q-frame header start
    charge: np.ndarray  # [PE]

    def __len__(self) -> int:
        return int(self.string.size)

    def select(self, keep: np.ndarray) -> PulseMap:
        return PulseMap(self.string[keep], self.om[keep], self.time[keep], self.charge[keep])

    def dom_slices(self) -> tuple[np.ndarray, np.ndarray]:
        """Start index and pulse count of each DOM, in map order."""
        if len(self) == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        key = self.string.astype(np.int64) * 1024 + self.om
        starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
        counts = np.diff(np.r_[starts, key.size])
        return starts, counts


def _size_code(r: _Reader) -> int:
    t = r.u8()
    if t < 247:
        return t
    nbytes = 255 - t
    return int.from_bytes(r.take(nbytes), "little")


def _run_lengths(data: bytes, limit: int, what: str) -> list[int]:
    """Width codes from the SuperDST run-length stream (low nibble value, high nibble digit)."""
    out: list[int] = []
    i, n = 0, len(data)
    while i < n:
        value = data[i] & 0x0F
        run = shift = 0
        while i < n and data[i] & 0x0F == value:
            run += (data[i] >> 4) << shift
            shift += 4
            i += 1
            if run > limit or shift > 40:
                raise RealtimeError(f"{what}: width stream longer than the pulse count")
        if len(out) + run > limit:
            raise RealtimeError(f"{what}: width stream longer than the pulse count")
        out.extend([value] * run)
    return out


def _superdst(r: _Reader, version: int) -> PulseMap:
    if version != 1:
        raise RealtimeError(f"{r.what}: unsupported I3SuperDST version {version} (reads 1)")
    what = r.what
    r.klass("I3FrameObject")
    r.klass("superdst.stamps")
    r.klass("superdst.size")
    n_stamps = _size_code(r)
    stamps = r.array("<u2", n_stamps).tolist()
    r.klass("superdst.headers")
    n_headers = _size_code(r)
    headers = r.array("<u2", n_headers).tolist()
    r.klass("superdst.bytes")
    widths = [_run_lengths(r.take(_size_code(r)), n_stamps, what) for _ in range(4)]
    extra = r.take(_size_code(r))
    r.done()
    if n_headers > n_stamps:
        raise RealtimeError(f"{what}: more DOM readouts than charge stamps")

    w_pos = [0, 0, 0, 0]
    strings: list[int] = []
    oms: list[int] = []
    times: list[int] = []
    qcodes: list[int] = []
    logs: list[bool] = []
    j = k = 0
    t_ref = -512

    def stamp(idx: int) -> int:
        if idx >= n_stamps:
            raise RealtimeError(f"{what}: charge stamps end inside a readout")
        return stamps[idx]

    def overflow(value: int, idx: int) -> tuple[int, int]:
        while True:  # overflow words are added until one is not saturated
            idx += 1
            word = stamp(idx)
            value += word
            if word != 0xFFFF:
                return value, idx

    def width(stream: int) -> None:
        if w_pos[stream] >= len(widths[stream]):
            raise RealtimeError(f"{what}: width stream {stream} exhausted")
        w_pos[stream] += 1

    for head in headers:
        dom_id, slop = head & 0x1FFF, head >> 13
        string, om = (dom_id >> 6) & 0x7F, (dom_id & 0x3F) + 1
        is_log = om > 60
        s = stamp(j)
        hlc, stop = (s >> 14) & 1, s >> 15
        tcode, qcode = (s & 0xFF) | (slop << 8), (s >> 8) & 0x3F
        if tcode == 2047:
            tcode, j = overflow(tcode, j)
        if is_log:
            if k >= len(extra):
                raise RealtimeError(f"{what}: IceTop charge bytes exhausted")
            qcode |= extra[k] << 6
            k += 1
        elif qcode == 63:
            qcode, j = overflow(qcode, j)
        width(2 * is_log + hlc)
        t_ref += tcode
        t = t_ref
        strings.append(string)
        oms.append(om)
        times.append(t)
        qcodes.append(qcode)
        logs.append(is_log)
        while not stop:
            if is_log:
                raise RealtimeError(f"{what}: IceTop readout with several stamps")
            j += 1
            s = stamp(j)
            tcode, qcode, stop = s & 0xFF, (s >> 8) & 0x3F, s >> 15
            if tcode == 255:
                tcode, j = overflow(tcode, j)
            if qcode == 63:
                qcode, j = overflow(qcode, j)
            width(2 * is_log + hlc)
            t += tcode
            strings.append(string)
            oms.append(om)
            times.append(t)
            qcodes.append(qcode)
            logs.append(is_log)
        j += 1
    if j != n_stamps:
        raise RealtimeError(f"{what}: {n_stamps - j} charge stamps left after the last readout")
    if w_pos != [len(w) for w in widths] or k != len(extra):
        raise RealtimeError(f"{what}: width or IceTop charge streams not fully used")
    if len(strings) > MAX_PULSES:
        raise RealtimeError(f"{what}: more than {MAX_PULSES} pulses")
    q = np.asarray(qcodes, dtype=np.float64)
    is_log_arr = np.asarray(logs, dtype=bool)
    charge = np.where(is_log_arr, 10.0 ** (q * 9.0 / 16383.0 - 2.0), q * 0.05 + 0.025)
    string_arr = np.asarray(strings, dtype=np.int32)
    om_arr = np.asarray(oms, dtype=np.int32)
    time_arr = np.asarray(times, dtype=np.float64)
    # IceTray's map order: OMKey, then time within a DOM (stable: readout order breaks ties)
    order = np.lexsort((np.arange(time_arr.size), time_arr, om_arr, string_arr))
    return PulseMap(string_arr[order], om_arr[order], time_arr[order], charge[order])


def _recopulse_map(r: _Reader) -> PulseMap:
    """Full-precision ``I3RecoPulseSeriesMap`` (std::map<OMKey, vector<I3RecoPulse>>)."""
    what = r.what
    r.klass("I3FrameObject")
    r.klass("std::map")
    n_doms = r.size(item_bytes=10)
    strings: list[int] = []
    oms: list[int] = []
    times: list[float] = []
    charges: list[float] = []
    last_key = (-(2**31), -1, -1)
    for _ in range(n_doms):
        r.klass("std::pair")
        v = r.klass("OMKey")
        if v != 2:
            raise RealtimeError(f"{what}: unsupported OMKey version {v}")
        key = (r.i32(), r.u32(), r.u8())
        if key <= last_key:
            raise RealtimeError(f"{what}: pulse map keys out of order")
        last_key = key
        r.klass("std::vector<I3RecoPulse>")
        n = r.size(item_bytes=13)
        if len(times) + n > MAX_PULSES:
            raise RealtimeError(f"{what}: more than {MAX_PULSES} pulses")
        for _ in range(n):
            pv = r.klass("I3RecoPulse")
            if pv not in (2, 3):
                raise RealtimeError(f"{what}: unsupported I3RecoPulse version {pv}")
            times.append(r.f64() if pv == 3 else r.f32())
            charges.append(r.f32())
            r.f32()  # width
            r.u8()  # flags
            strings.append(key[0])
            oms.append(key[1])
    r.done()
    return PulseMap(np.asarray(strings, np.int32), np.asarray(oms, np.int32),
                    np.asarray(times, np.float64), np.asarray(charges, np.float64))


def _bitmask(r: _Reader) -> np.ndarray:
    nbytes = r.u16()
    padding = r.u8()
    raw = r.take(nbytes)
    nbits = 8 * nbytes - padding
    if padding > 7 or nbits < 0:
        raise RealtimeError(f"{r.what}: corrupt bitmask")
    bits = np.unpackbits(np.frombuffer(raw, np.uint8), bitorder="little")[:nbits]
    return bits.astype(bool)


@dataclass(frozen=True)
class _Mask:
    source: str
    dom_bits: np.ndarray
    elements: list[np.ndarray]


def _mask(r: _Reader, version: int) -> _Mask:
    if version not in (1, 2):
        raise RealtimeError(f"{r.what}: unsupported pulse-mask version {version}")
    r.klass("I3FrameObject")
    source = r.string()
    if version == 1:
        r.f32()  # time reference (unused)
    r.klass("bitmask")
    dom_bits = _bitmask(r)
    r.klass("std::vector<bitmask>")
    n = r.size(item_bytes=3)
    elements = [_bitmask(r) for _ in range(n)]
    r.done()
    return _Mask(source, dom_bits, elements)


def _apply_mask(src: PulseMap, mask: _Mask, key: str) -> PulseMap:
    starts, counts = src.dom_slices()
    if mask.dom_bits.size != starts.size:
        raise RealtimeError(f"mask {key!r} has {mask.dom_bits.size} DOM bits but its source "
                            f"{mask.source!r} has {starts.size} DOMs")
    chosen = np.flatnonzero(mask.dom_bits)
    if chosen.size != len(mask.elements):
        raise RealtimeError(f"mask {key!r}: {chosen.size} DOMs selected but "
                            f"{len(mask.elements)} pulse masks stored")
    keep = np.zeros(len(src), dtype=bool)
    for dom, bits in zip(chosen, mask.elements, strict=True):
        if bits.size != counts[dom]:
            raise RealtimeError(f"mask {key!r}: pulse mask size {bits.size} does not match "
                                f"the {counts[dom]} pulses of its DOM")
        keep[starts[dom]:starts[dom] + counts[dom]] = bits
    return src.select(keep)


class _Frames:
    """The decoded Q and P frames with lazily resolved pulse series."""

    def __init__(self, q: dict[str, _Entry], p: dict[str, _Entry]) -> None:
        self.q, self.p = q, p
        self._maps: dict[str, PulseMap] = {}

    def lookup(self, key: str) -> _Entry | None:
        return self.p.get(key) or self.q.get(key)

    def series_names(self) -> list[str]:
        names = []
        for frame in (self.p, self.q):
            for key, entry in sorted(frame.items()):
                try:
                    if class_name(entry, key) in _PULSE_CLASSES and key not in names:
                        names.append(key)
                except RealtimeError:
                    continue
        return names

    def pulses(self, key: str, depth: int = 0) -> PulseMap:
        if key in self._maps:
            return self._maps[key]
        if depth > _MAX_MASK_DEPTH:
            raise RealtimeError(f"pulse mask chain of {key!r} is too deep (a cycle?)")
        entry = self.lookup(key)
        if entry is None:
            raise RealtimeError(f"pulse series {key!r} is not in the event")
        opened = _open_blob(entry, key)
        if opened is None:
            raise RealtimeError(f"pulse series {key!r} is empty (null object)")
        r, name, version = opened
        if name == "I3SuperDST":
            out = _superdst(r, version)
        elif name == "I3RecoPulseSeriesMap":
            out = _recopulse_map(r)
        elif name == "I3RecoPulseSeriesMapMask":
            mask = _mask(r, version)
            out = _apply_mask(self.pulses(mask.source, depth + 1), mask, key)
        else:
            raise RealtimeError(f"{key!r} is a {name}, not a pulse series")
        self._maps[key] = out
        return out


# ------------------------------------------------------------------ event assembly
def _event_type(path: Path, msg: dict[str, Any]) -> str:
    tag = re.search(r"(?:^|[-_.])(GOLD|BRONZE|HESE|EHE|CASCADE)(?:[-_.]|$)", path.name,
                    re.IGNORECASE)
    varname = str(msg.get("varname", ""))
    if varname.lower().startswith("hese"):
        return "HESE"
    if tag:
        return tag.group(1).upper()
    streams = msg.get("value", {}).get("streams")
    if isinstance(streams, list) and streams and isinstance(streams[0], str):
        return streams[0].upper()[:32]
    return "REALTIME"


def _json_safe(obj: Any, depth: int = 0) -> Any:
    """Plain JSON copy of message metadata (str keys, finite numbers or None)."""
    if depth > 8:
        return None
    if isinstance(obj, dict):
        return {str(k): _json_safe(v, depth + 1) for k, v in list(obj.items())[:200]}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v, depth + 1) for v in obj[:200]]
    if isinstance(obj, bool) or obj is None or isinstance(obj, str):
        return obj
    if isinstance(obj, (int, float)):
        return obj if math.isfinite(obj) else None
    return str(obj)[:200]


def decode_message(msg: Any, path: Path, kind: str, series: str | None = None,
                   geometry: Any = None):
    """Decode a message dict into an :class:`~skyscan_tui.events.Event` (raises RealtimeError)."""
    from skyscan_tui.events import Event, Pulses, Seed
    from skyscan_tui.geometry import Geometry, load_geometry

    frame_list, alert_meta = _frame_list(msg)
    frames: dict[str, dict[str, _Entry]] = {}
    for letter, payload in frame_list:
        if letter not in ("Q", "P"):
            continue  # G/C/D: diffs against a non-public baseline GCD; not needed
        if letter in frames:
            log.info("%s: more than one %s frame; using the first", path, letter)
            continue
        what = f"{letter} frame"
        stream, entries = parse_frame(_frame_bytes(payload, what), what)
        if stream != letter:
            raise RealtimeError(f"{what}: frame says it is a {stream!r} frame")
        frames[letter] = entries
    if "Q" not in frames or "P" not in frames:
        raise RealtimeError("message lacks its Q (DAQ) or P (physics) frame")
    fr = _Frames(frames["Q"], frames["P"])

    def header(frame: dict[str, _Entry], key: str) -> Header:
        entry = frame.get(key)
        opened = None if entry is None else _open_blob(entry, key)
        if opened is None or opened[1] != "I3EventHeader":
            raise RealtimeError(f"frame lacks its {key}")
        return _event_header(opened[0], opened[2])

    q_head = header(fr.q, "QI3EventHeader")
    p_head = header(fr.p, "I3EventHeader")

    available = fr.series_names()
    if series is None:
        chosen = next((s for s in DEFAULT_SERIES if s in fr.p), None)
        if chosen is None:
            chosen = "InIceDSTPulses"
            log.warning("%s: no split pulse series; using the whole readout %s", path, chosen)
    else:
        chosen = series
        if chosen not in available:
            raise RealtimeError(f"no pulse series {chosen!r} (available: "
                                f"{', '.join(available) or 'none'})")
    pm = fr.pulses(chosen)

    geom = geometry if isinstance(geometry, Geometry) else load_geometry(geometry)
    icetop = pm.om > 60
    n_icetop = int(icetop.sum())
    pm = pm.select(~icetop)
    idx = geom.index_of(pm.string, pm.om)
    missing = idx < 0
    n_missing = int(missing.sum())
    if n_icetop:
        log.info("%s: dropped %d IceTop pulses (OM > 60) from %s", path, n_icetop, chosen)
    if n_missing:
        log.warning("%s: dropped %d pulses on DOMs absent from geometry %s", path, n_missing,
                    geom.name)
    pm = pm.select(~missing)
    idx = idx[~missing]
    if len(pm) == 0:
        raise RealtimeError(f"pulse series {chosen!r} has no in-ice pulses")
    pos = geom.pos[idx]
    pulses = Pulses.from_arrays(pm.string, pm.om, pos[:, 0], pos[:, 1], pos[:, 2], pm.time,
                                pm.charge)

    particles: list[Particle] = []
    skipped: list[str] = []
    for key, entry in sorted(fr.p.items()):
        try:
            opened = _open_blob(entry, key)
        except RealtimeError:
            if "I3Particle" in entry.type_name:
                raise
            continue  # an object we do not need, with a header we do not know
        if opened is None or opened[1] != "I3Particle":
            continue
        part = _particle(opened[0], opened[2], key)
        vals = (part.x, part.y, part.z, part.time, part.zenith, part.azimuth)
        if part.fit_status != 0 or not all(math.isfinite(v) for v in vals):
            skipped.append(key)
            continue
        particles.append(part)
    if skipped:
        log.info("%s: ignored failed or incomplete fits: %s", path, ", ".join(skipped))
    rank = {name: i for i, name in enumerate(SEED_PRIORITY)}
    particles.sort(key=lambda p: (rank.get(p.name, len(rank)), p.name))
    seeds = tuple(Seed(p.name, p.x, p.y, p.z, p.time, p.zenith, p.azimuth,
                       p.energy if math.isfinite(p.energy) else float("nan"))
                  for p in particles)

    extras: dict[str, Any] = {}
    for key in ("HESE_VHESelfVetoVertexPos", "HESE_VHESelfVetoVertexTime", "HESE_CausalQTot",
                "HESE_HomogenizedQTot", "HESE_VHESelfVeto"):
        entry = fr.p.get(key)
        try:
            opened = None if entry is None else _open_blob(entry, key)
            if opened is not None and opened[1] in ("I3Double", "I3Bool", "I3Position",
                                                    "I3Int"):
                extras[key] = _json_safe(_scalar(opened[0], opened[1]))
        except RealtimeError as exc:  # metadata only: note it, keep the event
            log.info("%s: %s", path, exc)

    mjd = i3time_to_mjd(*p_head.start)
    q_mjd_day, q_sod, q_tenth = i3time_split(*q_head.start)
    p_mjd_day, p_sod, p_tenth = i3time_split(*p_head.start)
    offset_ns = ((p_mjd_day - q_mjd_day) * 86400 + (p_sod - q_sod)) * 1e9 \
        + (p_tenth - q_tenth) / 10.0
    value = msg.get("value", {})
    meta: dict[str, Any] = {
        "is_real_event": True,
        "source_format": f"realtime-{kind}",
        "source_file": path.name,
        "varname": str(msg.get("varname", "")),
        "message_version": str(value.get("version", "")) if value.get("version") else "",
        "utc": i3time_to_utc(*p_head.start),
        "sub_run_id": p_head.sub_run_id,
        "sub_event_id": p_head.sub_event_id,
        "sub_event_stream": p_head.sub_event_stream,
        "time_reference": "Q-frame header start (pulse and fit times are relative to it)",
        "q_start_utc": i3time_to_utc(*q_head.start),
        "p_minus_q_start_ns": offset_ns,
        "pulse_series": chosen,
        "available_series": available,
        "dropped_icetop_pulses": n_icetop,
        "dropped_unknown_dom_pulses": n_missing,
        "skipped_fits": skipped,
    }
    if extras:
        meta["hese"] = extras
    if alert_meta:
        meta["alert"] = _json_safe(alert_meta)
    return Event(
        run_id=p_head.run_id, event_id=p_head.event_id, mjd=mjd,
        event_type=_event_type(path, msg), pulses=pulses, seeds=seeds, truth=None,
        geometry=geom.name, meta=meta,
    )


def load(path: str | Path, payload: Any, kind: str, series: str | None = None,
         geometry: Any = None):
    """Read a realtime alert into an :class:`~skyscan_tui.events.Event`.

    Parameters
    ----------
    path : the file (for messages and the GOLD/BRONZE tag in its name).
    payload : the parsed JSON dict (``kind="json"``) or the raw file bytes (``kind="pkl"``).
    series : pulse series (frame key) to use; default the split series of the P frame
        (``SplitInIcePulses`` / ``SplitUncleanedInIcePulses``). ``InIceDSTPulses`` is the
        whole in-ice readout.
    geometry : a :class:`~skyscan_tui.geometry.Geometry` or a ``--geometry`` spec
        (default: the shipped IceCube-86 in-ice table).

    Raises
    ------
    EventFileError : one line, for any unreadable, corrupt or hostile file.
    """
    path = Path(path)
    try:
        if kind == "pkl":
            if not isinstance(payload, (bytes, bytearray)):
                raise RealtimeError("pickle payload must be bytes")
            msg = restricted_loads(bytes(payload))
        elif kind == "json":
            msg = payload
        else:
            raise RealtimeError(f"unknown realtime file kind {kind!r}")
        return decode_message(msg, path, kind, series=series, geometry=geometry)
    except RealtimeError as exc:
        raise EventFileError(path, str(exc)) from None
    except EventFileError:
        raise
    except (ValueError, TypeError, KeyError, IndexError, OverflowError, struct.error,
            UnicodeDecodeError, RecursionError, MemoryError) as exc:
        # a defect the explicit checks did not name; still one line, never a traceback
        raise EventFileError(path, f"corrupt realtime event ({type(exc).__name__}: "
                                   f"{_short(exc)})") from None
