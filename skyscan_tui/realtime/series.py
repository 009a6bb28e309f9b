"""Pulse series by frame key: pulse masks, and resolving a key through its chain of masks.

A ``I3RecoPulseSeriesMapMask`` names a source series and keeps a subset of its pulses with
two levels of bit masks (one bit per DOM of the source, then one bit per pulse of each kept
DOM). Masks may point at other masks; the chain ends at an ``I3SuperDST`` or a full
``I3RecoPulseSeriesMap``. See ``docs/realtime-format.md``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from skyscan_tui.realtime.binreader import Reader
from skyscan_tui.realtime.errors import RealtimeError
from skyscan_tui.realtime.frames import FrameEntry, class_name, open_blob
from skyscan_tui.realtime.pulses import PulseMap, read_recopulse_map, read_superdst

__all__ = ["EventFrames"]

_PULSE_CLASSES = ("I3SuperDST", "I3RecoPulseSeriesMapMask", "I3RecoPulseSeriesMap")
_MAX_MASK_DEPTH = 16


def _bitmask(r: Reader) -> np.ndarray:
    """A serialised bit mask (u16 byte count, u8 padding bits, bytes; LSB first)."""
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
    """A pulse mask: its source series, one bit per source DOM, one array per kept DOM."""

    source: str
    dom_bits: np.ndarray
    elements: list[np.ndarray]


def _read_mask(r: Reader, version: int) -> _Mask:
    """An ``I3RecoPulseSeriesMapMask`` (class versions 1 and 2)."""
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
    """The pulses of ``src`` that ``mask`` (frame key ``key``) keeps."""
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


class EventFrames:
    """The decoded Q and P frames with lazily resolved pulse series."""

    def __init__(self, q: dict[str, FrameEntry], p: dict[str, FrameEntry]) -> None:
        self.q, self.p = q, p
        self._maps: dict[str, PulseMap] = {}

    def lookup(self, key: str) -> FrameEntry | None:
        """The entry under ``key``, the P frame's first (it may shadow the Q frame's)."""
        return self.p.get(key) or self.q.get(key)

    def series_names(self) -> list[str]:
        """Keys of every pulse series (P frame first, each sorted); unreadable ones skipped."""
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
        """The pulse series under ``key``, following masks to their source (cached)."""
        if key in self._maps:
            return self._maps[key]
        if depth > _MAX_MASK_DEPTH:
            raise RealtimeError(f"pulse mask chain of {key!r} is too deep (a cycle?)")
        entry = self.lookup(key)
        if entry is None:
            raise RealtimeError(f"pulse series {key!r} is not in the event")
        opened = open_blob(entry, key)
        if opened is None:
            raise RealtimeError(f"pulse series {key!r} is empty (null object)")
        r, name, version = opened
        if name == "I3SuperDST":
            out = read_superdst(r, version)
        elif name == "I3RecoPulseSeriesMap":
            out = read_recopulse_map(r)
        elif name == "I3RecoPulseSeriesMapMask":
            mask = _read_mask(r, version)
            out = _apply_mask(self.pulses(mask.source, depth + 1), mask, key)
        else:
            raise RealtimeError(f"{key!r} is a {name}, not a pulse series")
        self._maps[key] = out
        return out
