"""Pulse series stored in full: the SuperDST codec and ``I3RecoPulseSeriesMap``.

Both decode to a :class:`PulseMap` in IceTray's map order (DOM by DOM, time order within a
DOM), which is the order pulse masks refer to. The SuperDST layout is described in
``docs/realtime-format.md``.

Known simplification: IceTray adjusts pulse *widths* (and the times of pulses with exactly
equal times on one DOM) when unpacking SuperDST; widths are not used here, and pulses with
tied times keep their decoded times (no such ties occur in the test files).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from skyscan_tui.realtime.binreader import Reader
from skyscan_tui.realtime.errors import RealtimeError

__all__ = ["MAX_PULSES", "PulseMap", "read_superdst", "read_recopulse_map"]

MAX_PULSES = 2_000_000


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
        """The pulses where ``keep`` holds."""
        return PulseMap(self.string[keep], self.om[keep], self.time[keep], self.charge[keep])

    def dom_slices(self) -> tuple[np.ndarray, np.ndarray]:
        """Start index and pulse count of each DOM, in map order."""
        if len(self) == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        key = self.string.astype(np.int64) * 1024 + self.om
        starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
        counts = np.diff(np.r_[starts, key.size])
        return starts, counts


def _size_code(r: Reader) -> int:
    """SuperDST size: one byte below 247, else 255 - byte further little-endian bytes."""
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


def read_superdst(r: Reader, version: int) -> PulseMap:
    """An ``I3SuperDST`` (class version 1): DOM readout headers and 16-bit charge stamps."""
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


def read_recopulse_map(r: Reader) -> PulseMap:
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
