"""The alert message container: the outer message, its frame list, and each frame's wrapping.

A message is a dict (parsed JSON, or a pickled dict in ``.pkl`` files) whose ``value.data`` is
either the frame list itself (2016/2017 HESE messages) or an object with a ``frames`` list
and plain alert metadata (2021+ ``realtimeEventData``). Each frame entry is a
``[stream letter, base64 text]`` pair; the text is a zlib stream of a pickled I3Frame whose
state is the binary frame. See ``docs/realtime-format.md``.
"""

from __future__ import annotations

import base64
import binascii
import zlib
from typing import Any

from skyscan_tui.realtime.errors import RealtimeError
from skyscan_tui.realtime.unpickle import FRAME_GLOBALS, FrameHolder, restricted_loads

__all__ = ["MAX_FRAME_PICKLE", "MAX_FRAMES", "read_message", "frame_list", "frame_bytes"]

MAX_FRAME_PICKLE = 16 * 1024 * 1024  # decompressed frame pickle (real ones are <= 0.8 MB)
MAX_FRAMES = 32


def read_message(payload: Any, kind: str) -> Any:
    """The message object of a file: the parsed JSON as is, or the safely unpickled ``.pkl``.

    Parameters
    ----------
    payload : the parsed JSON value (``kind="json"``) or the raw file bytes (``kind="pkl"``).
    kind : ``"json"`` or ``"pkl"``.
    """
    if kind == "pkl":
        if not isinstance(payload, (bytes, bytearray)):
            raise RealtimeError("pickle payload must be bytes")
        return restricted_loads(bytes(payload))  # no globals: a message is plain data
    if kind == "json":
        return payload
    raise RealtimeError(f"unknown realtime file kind {kind!r}")


def frame_list(msg: Any) -> tuple[list[tuple[str, str | bytes]], dict[str, Any]]:
    """The ``[letter, base64]`` frame list and the plain metadata of a message dict."""
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
    """base64 → zlib → bytes, capped at MAX_FRAME_PICKLE (a zip bomb stops there)."""
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


def frame_bytes(payload: str | bytes, what: str) -> bytes:
    """The binary I3 frame inside one frame entry's payload (base64 → zlib → I3Frame pickle).

    Parameters
    ----------
    payload : the second element of a frame entry.
    what : how error messages name the frame, e.g. ``"Q frame"``.
    """
    obj = restricted_loads(_inflate(payload, what), FRAME_GLOBALS)
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
