"""Bounds-checked little-endian reader for the boost-serialised bytes of I3 frames.

Every length or count is checked against the bytes that remain before anything is allocated,
so a hostile count fails with one line instead of a huge allocation.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

from skyscan_tui.realtime.errors import RealtimeError

__all__ = ["Reader"]

_U8, _U16, _I16 = struct.Struct("<B"), struct.Struct("<H"), struct.Struct("<h")
_U32, _I32, _U64 = struct.Struct("<I"), struct.Struct("<i"), struct.Struct("<Q")
_F32, _F64 = struct.Struct("<f"), struct.Struct("<d")


class Reader:
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
        """Bytes left to read."""
        return self.end - self.pos

    def need(self, n: int) -> None:
        """RealtimeError unless ``n`` more bytes can be read."""
        if n < 0 or n > self.end - self.pos:
            raise RealtimeError(f"{self.what}: truncated or corrupt (needs {n} bytes at "
                                f"offset {self.pos}, {self.end - self.pos} left)")

    def take(self, n: int) -> bytes:
        """The next ``n`` bytes."""
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
        """The next unsigned 8-bit integer."""
        return self._unpack(_U8)

    def u16(self) -> int:
        """The next little-endian unsigned 16-bit integer."""
        return self._unpack(_U16)

    def i16(self) -> int:
        """The next little-endian signed 16-bit integer."""
        return self._unpack(_I16)

    def u32(self) -> int:
        """The next little-endian unsigned 32-bit integer."""
        return self._unpack(_U32)

    def i32(self) -> int:
        """The next little-endian signed 32-bit integer."""
        return self._unpack(_I32)

    def u64(self) -> int:
        """The next little-endian unsigned 64-bit integer."""
        return self._unpack(_U64)

    def f32(self) -> float:
        """The next little-endian 32-bit float."""
        return self._unpack(_F32)

    def f64(self) -> float:
        """The next little-endian 64-bit float."""
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
        """The next string (a size, then UTF-8 bytes; undecodable ones replaced)."""
        return self.take(self.size()).decode("utf-8", "replace")

    def array(self, dtype: str, n: int) -> np.ndarray:
        """The next ``n`` items of numpy ``dtype`` as an array."""
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
        """RealtimeError if bytes are left unread (the object is longer than decoded)."""
        if self.pos != self.end:
            raise RealtimeError(f"{self.what}: {self.end - self.pos} unexpected trailing bytes")
