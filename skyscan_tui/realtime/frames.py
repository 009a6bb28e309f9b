"""The binary I3 frame (``[i3]``, version 6): entries, CRC-32C, and each entry's object header.

See ``docs/realtime-format.md`` for the layout.
"""

from __future__ import annotations

from dataclasses import dataclass

from skyscan_tui.realtime.binreader import Reader
from skyscan_tui.realtime.errors import RealtimeError

__all__ = ["MAX_ENTRIES", "FrameEntry", "crc32c_raw", "parse_frame", "open_blob", "class_name"]

MAX_ENTRIES = 10_000


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
class FrameEntry:
    """One frame object: its C++ type name and its still-serialised bytes."""

    type_name: str
    blob: bytes


def parse_frame(buf: bytes, what: str) -> tuple[str, dict[str, FrameEntry]]:
    """A binary ``[i3]`` frame (version 6) → (stream letter, {key: entry}); CRC verified."""
    r = Reader(buf, what)
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
    entries: dict[str, FrameEntry] = {}
    for _ in range(n):
        key = r.string()
        type_name = r.string()
        blob = r.take(r.size())
        entries[key] = FrameEntry(type_name, blob)
    if r.left != 4:
        raise RealtimeError(f"{what}: frame length does not match its entries")
    stored = r.u32()
    # the checksum covers the stream letter through the last entry (not magic/version/preamble)
    if crc32c_raw(buf[10:len(buf) - 4]) != stored:
        raise RealtimeError(f"{what}: checksum mismatch (corrupt frame)")
    return stream, entries


def open_blob(entry: FrameEntry, key: str) -> tuple[Reader, str, int] | None:
    """Read the polymorphic-pointer header of a frame object: (reader, class name, version).

    Returns None for a null pointer; the reader is left at the start of the object's fields.
    """
    r = Reader(entry.blob, f"frame object {key!r}")
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


def class_name(entry: FrameEntry, key: str) -> str:
    """The serialised class name of a frame object ("" for a null pointer)."""
    opened = open_blob(entry, key)
    return "" if opened is None else opened[1]
