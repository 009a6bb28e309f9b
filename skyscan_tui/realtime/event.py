"""Assembling an :class:`~skyscan_tui.events.Event` from an alert message's Q and P frames.

Only the Q and P frames are decoded; the G/C/D frames are diffs against a baseline GCD file
that is not public, so DOM positions come from a geometry table instead
(:func:`skyscan_tui.geometry.default_geometry` unless another is given). Which frame keys are
read is listed in ``docs/realtime-format.md``.
"""

from __future__ import annotations

import logging
import math
import re
from pathlib import Path
from typing import Any

from skyscan_tui.events import Event, Pulses, Seed
from skyscan_tui.realtime.container import frame_bytes, frame_list
from skyscan_tui.realtime.errors import RealtimeError
from skyscan_tui.realtime.frames import FrameEntry, open_blob, parse_frame
from skyscan_tui.realtime.i3time import i3time_split, i3time_to_mjd, i3time_to_utc
from skyscan_tui.realtime.objects import (
    Header,
    Particle,
    read_event_header,
    read_particle,
    read_scalar,
)
from skyscan_tui.realtime.pulses import PulseMap
from skyscan_tui.realtime.series import EventFrames

__all__ = ["DEFAULT_SERIES", "SEED_PRIORITY", "decode_message"]

# the package's name, as before the split: log lines (and users' filters) keep naming it
log = logging.getLogger("skyscan_tui.realtime")

#: Pulse series tried in order when none is asked for (what the upstream scanner uses).
DEFAULT_SERIES = ("SplitInIcePulses", "SplitUncleanedInIcePulses")
#: Best online track fits first: the engine's first guess is ``Event.seeds[0]``.
SEED_PRIORITY = (
    "l2_online_SplineMPE", "OnlineL2_SplineMPE", "l2_online_BestFit", "OnlineL2_BestFit",
    "l2_online_MPEFit", "OnlineL2_MPEFit", "HESE_SPEFit2", "HESE_SPEFitSingle",
    "HESE_MuonImprovedLineFit",
)
#: Scalar P-frame objects of HESE events kept in ``meta["hese"]``.
_HESE_KEYS = ("HESE_VHESelfVetoVertexPos", "HESE_VHESelfVetoVertexTime", "HESE_CausalQTot",
              "HESE_HomogenizedQTot", "HESE_VHESelfVeto")


def _event_type(path: Path, msg: dict[str, Any]) -> str:
    """Alert stream: HESE messages, else a tag in the file name, else the message's stream."""
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


def _q_and_p_frames(entries: list[tuple[str, str | bytes]], path: Path) -> EventFrames:
    """Decode the first Q and the first P frame of the message; the others are not needed."""
    frames: dict[str, dict[str, FrameEntry]] = {}
    for letter, payload in entries:
        if letter not in ("Q", "P"):
            continue  # G/C/D: diffs against a non-public baseline GCD; not needed
        if letter in frames:
            log.info("%s: more than one %s frame; using the first", path, letter)
            continue
        what = f"{letter} frame"
        stream, frame = parse_frame(frame_bytes(payload, what), what)
        if stream != letter:
            raise RealtimeError(f"{what}: frame says it is a {stream!r} frame")
        frames[letter] = frame
    if "Q" not in frames or "P" not in frames:
        raise RealtimeError("message lacks its Q (DAQ) or P (physics) frame")
    return EventFrames(frames["Q"], frames["P"])


def _header(frame: dict[str, FrameEntry], key: str) -> Header:
    entry = frame.get(key)
    opened = None if entry is None else open_blob(entry, key)
    if opened is None or opened[1] != "I3EventHeader":
        raise RealtimeError(f"frame lacks its {key}")
    return read_event_header(opened[0], opened[2])


def _choose_series(fr: EventFrames, series: str | None, path: Path) -> tuple[str, list[str]]:
    """(the pulse series to use, every pulse series in the event)."""
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
    return chosen, available


def _in_ice_pulses(pm: PulseMap, geometry: Any, path: Path,
                   chosen: str) -> tuple[Pulses, str, int, int]:
    """(pulses with DOM positions [m], geometry name, IceTop pulses dropped, unknown dropped).

    IceTop DOMs (OM > 60) and DOMs the geometry table lacks have no in-ice position.
    """
    from skyscan_tui.geometry import Geometry, load_geometry  # only when assembling an event

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
    return pulses, geom.name, n_icetop, n_missing


def _seeds(fr: EventFrames, path: Path) -> tuple[tuple[Seed, ...], list[str]]:
    """(the P frame's successful fits in :data:`SEED_PRIORITY` order, keys of skipped fits)."""
    particles: list[Particle] = []
    skipped: list[str] = []
    for key, entry in sorted(fr.p.items()):
        try:
            opened = open_blob(entry, key)
        except RealtimeError:
            if "I3Particle" in entry.type_name:
                raise
            continue  # an object we do not need, with a header we do not know
        if opened is None or opened[1] != "I3Particle":
            continue
        part = read_particle(opened[0], opened[2], key)
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
    return seeds, skipped


def _hese_extras(fr: EventFrames, path: Path) -> dict[str, Any]:
    """The HESE veto scalars present in the P frame (unreadable ones noted, not fatal)."""
    extras: dict[str, Any] = {}
    for key in _HESE_KEYS:
        entry = fr.p.get(key)
        try:
            opened = None if entry is None else open_blob(entry, key)
            if opened is not None and opened[1] in ("I3Double", "I3Bool", "I3Position",
                                                    "I3Int"):
                extras[key] = _json_safe(read_scalar(opened[0], opened[1]))
        except RealtimeError as exc:  # metadata only: note it, keep the event
            log.info("%s: %s", path, exc)
    return extras


def _p_minus_q_ns(q_head: Header, p_head: Header) -> float:
    """[ns] P-frame header start minus Q-frame header start."""
    q_mjd_day, q_sod, q_tenth = i3time_split(*q_head.start)
    p_mjd_day, p_sod, p_tenth = i3time_split(*p_head.start)
    return ((p_mjd_day - q_mjd_day) * 86400 + (p_sod - q_sod)) * 1e9 \
        + (p_tenth - q_tenth) / 10.0


def decode_message(msg: Any, path: Path, kind: str, series: str | None = None,
                   geometry: Any = None) -> Event:
    """Decode a message dict into an :class:`~skyscan_tui.events.Event`.

    Parameters
    ----------
    msg : the message object (see :func:`~skyscan_tui.realtime.container.read_message`).
    path : the file, for log lines, ``meta`` and the GOLD/BRONZE tag in its name.
    kind : ``"json"`` or ``"pkl"`` (recorded in ``meta["source_format"]``).
    series, geometry : as for :func:`skyscan_tui.realtime.load`.

    Raises
    ------
    RealtimeError : one line, for any defect found.
    """
    entries, alert_meta = frame_list(msg)
    fr = _q_and_p_frames(entries, path)
    q_head = _header(fr.q, "QI3EventHeader")
    p_head = _header(fr.p, "I3EventHeader")
    chosen, available = _choose_series(fr, series, path)
    pulses, geom_name, n_icetop, n_missing = _in_ice_pulses(fr.pulses(chosen), geometry, path,
                                                            chosen)
    seeds, skipped = _seeds(fr, path)
    extras = _hese_extras(fr, path)

    mjd = i3time_to_mjd(*p_head.start)
    offset_ns = _p_minus_q_ns(q_head, p_head)
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
        geometry=geom_name, meta=meta,
    )
