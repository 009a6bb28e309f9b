"""Reading an event file of any supported format; the format is recognised by the content.

- first byte ``0x80`` (a pickle): a realtime alert ``.pkl`` → :mod:`skyscan_tui.realtime`
- JSON with ``"format": "skyscan-event"``: the native format → :mod:`skyscan_tui.events`
- a JSON object with a ``"value"`` key: an I3Live realtime message → :mod:`skyscan_tui.realtime`

The file name plays no part, so a renamed or extension-less file is read all the same.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from skyscan_tui.errors import EventFileError
from skyscan_tui.events import FORMAT, Event, event_from_dict

__all__ = ["MAX_EVENT_BYTES", "load_event"]

MAX_EVENT_BYTES = 64 * 1024 * 1024
_PICKLE_START = b"\x80"  # the PROTO opcode every protocol-2+ pickle begins with


def load_event(path: str | Path, *, pulses: str | None = None, geometry: Any = None) -> Event:
    """Read an event file of any supported format; raises EventFileError (one line) on failure.

    Parameters
    ----------
    path : the event file.
    pulses : pulse series (frame key) of a realtime alert; refused for native files, which
        carry their own pulses.
    geometry : DOM table for a realtime alert (a Geometry or a ``--geometry`` spec); native
        files carry their own pulse positions.
    """
    path = Path(path)
    data = _read(path)
    if data[:1] == _PICKLE_START:
        return _load_realtime(path, data, "pkl", pulses, geometry)
    obj = _parse_json(path, data)
    if isinstance(obj, dict) and obj.get("format") == FORMAT:
        if pulses is not None:
            raise EventFileError(path, "--pulses applies only to realtime alert files")
        try:
            return event_from_dict(obj)
        except (ValueError, TypeError, KeyError, OverflowError) as exc:
            reason = str(exc) if not isinstance(exc, KeyError) else f"missing key {exc}"
            raise EventFileError(path, reason) from None
    if isinstance(obj, dict) and "value" in obj:
        return _load_realtime(path, obj, "json", pulses, geometry)
    raise EventFileError(path, "unknown event format (neither skyscan-event nor realtime alert)")


def _read(path: Path) -> bytes:
    """The file's bytes, refusing what is not a regular, non-empty file of bounded size."""
    if not path.exists():
        raise EventFileError(path, "no such file")
    if not path.is_file():
        raise EventFileError(path, "not a regular file")
    size = path.stat().st_size
    if size == 0:
        raise EventFileError(path, "empty file")
    if size > MAX_EVENT_BYTES:
        raise EventFileError(path, f"file too large ({size} bytes)")
    return path.read_bytes()


def _parse_json(path: Path, data: bytes) -> Any:
    try:
        return json.loads(data)
    except UnicodeDecodeError:
        raise EventFileError(path, "not a text/JSON event file and not a pickle") from None
    except json.JSONDecodeError as exc:
        raise EventFileError(path, f"invalid JSON ({exc.msg} at line {exc.lineno})") from None
    except RecursionError:
        raise EventFileError(path, "JSON nested too deeply") from None
    except ValueError as exc:  # e.g. an integer literal longer than Python converts
        raise EventFileError(path, f"invalid JSON ({str(exc)[:80]})") from None


def _load_realtime(path: Path, payload: Any, kind: str, pulses: str | None,
                   geometry: Any) -> Event:
    # imported here: native files (every checkpoint and resume) never load the decoder
    from skyscan_tui import realtime

    return realtime.load(path, payload, kind, series=pulses, geometry=geometry)
