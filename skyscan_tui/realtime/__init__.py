"""IceCube realtime alert files (I3Live JSON messages and ``.pkl`` dicts) without IceTray.

Decoding chain, module by module (the format: ``docs/realtime-format.md``)::

    container, unpickle   message (JSON dict, or a pickled dict) -> value.data frame list;
                          frame entry [letter, base64] -> zlib -> pickle of an I3Frame
    frames, binreader     I3Frame state -> "[i3]" binary frame (version 6, CRC-32C)
    objects, i3time       QI3EventHeader, I3EventHeader, I3Particle fits (seeds), scalars
    pulses, series        I3SuperDST, full pulse maps, and the masks over them
                          (InIceDSTPulses in the Q frame, the split series in the P frame)
    event                 the Event: in-ice pulses with DOM positions, seeds, time, meta

Safety: every pickle (the outer ``.pkl`` dict and each frame) is checked opcode by opcode and
loaded by a restricted unpickler (:mod:`~skyscan_tui.realtime.unpickle`); decompression is
capped, and every length or count read from a frame is checked against the bytes that remain
before anything is allocated. Any defect gives :class:`~skyscan_tui.errors.EventFileError`
with one line.

Which reader handles a given file is decided by :func:`skyscan_tui.eventfiles.load_event`;
this package is imported only when a file turns out to be a realtime alert.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

from skyscan_tui.errors import EventFileError
from skyscan_tui.events import Event
from skyscan_tui.realtime.container import read_message
from skyscan_tui.realtime.errors import RealtimeError, short_reason
from skyscan_tui.realtime.event import DEFAULT_SERIES, SEED_PRIORITY, decode_message
from skyscan_tui.realtime.frames import crc32c_raw, parse_frame
from skyscan_tui.realtime.i3time import i3time_to_mjd
from skyscan_tui.realtime.unpickle import FrameHolder, restricted_loads

__all__ = ["load", "DEFAULT_SERIES", "SEED_PRIORITY", "RealtimeError", "i3time_to_mjd",
           "crc32c_raw", "restricted_loads", "FrameHolder", "parse_frame"]


def load(path: str | Path, payload: Any, kind: str, series: str | None = None,
         geometry: Any = None) -> Event:
    """Read a realtime alert into an :class:`~skyscan_tui.events.Event`.

    Parameters
    ----------
    path : the file (for messages and the GOLD/BRONZE tag in its name).
    payload : the parsed JSON dict (``kind="json"``) or the raw file bytes (``kind="pkl"``).
    kind : ``"json"`` or ``"pkl"``.
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
        msg = read_message(payload, kind)
        return decode_message(msg, path, kind, series=series, geometry=geometry)
    except RealtimeError as exc:
        raise EventFileError(path, str(exc)) from None
    except EventFileError:
        raise
    except (ValueError, TypeError, KeyError, IndexError, OverflowError, struct.error,
            UnicodeDecodeError, RecursionError, MemoryError) as exc:
        # a defect the explicit checks did not name; still one line, never a traceback
        raise EventFileError(path, f"corrupt realtime event ({type(exc).__name__}: "
                                   f"{short_reason(exc)})") from None
