"""What plots and the app draw over a skymap, and how well a simulated event did [deg].

Overlays are plain data: :class:`Marker` (a labelled direction of a kind: the event's
online ``seed`` fits, the ``truth`` of a simulated event, a user's ``mark``, a catalogue
``source``). :func:`event_overlays` turns an event's seeds and truth into RA/Dec at the
event time; the scan stores them in ``result.meta["overlays"]`` and the result files keep
them (a JSON text in the header), so ``plot`` and ``show`` of a saved result still have them.

:func:`truth_report` answers "how well did it do" for a simulated event: the angle from the
best fit to the truth and whether the truth lies in the 50 %/90 % regions (the point query
of :mod:`skyscan_tui.query`). A real event has no truth, so nothing of the kind is reported.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

__all__ = ["Marker", "event_overlays", "overlay_markers", "result_markers", "parse_mark",
           "parse_radec", "short_name",
           "overlays_json", "overlays_from_json", "truth_report", "format_truth",
           "MAX_MARKS"]

MAX_MARKS = 100  # --mark is typed by hand; more is a mistake
_PREFIXES = ("l2_online_", "onlinel2_", "online_")  # realtime alert names of the online fits


@dataclass(frozen=True)
class Marker:
    """A labelled direction [deg, J2000]; ``kind`` is seed, truth, mark or source."""

    label: str
    ra_deg: float
    dec_deg: float
    kind: str = "mark"


def short_name(name: str) -> str:
    """"l2_online_SplineMPE" → "SplineMPE": the label plots show for an online fit."""
    low = name.lower()
    for prefix in _PREFIXES:
        if low.startswith(prefix) and len(name) > len(prefix):
            return name[len(prefix):]
    return name


def event_overlays(event: Any) -> dict[str, Any]:
    """``{"seeds": [{name, ra_deg, dec_deg}], "truth": {...} | None}`` of an event.

    Directions of origin (zenith, azimuth) become J2000 at the event time. Only finite
    directions are kept (a seed without a direction is no marker).
    """
    from skyscan_tui.coords import local_to_equatorial

    def radec(p: Any) -> tuple[float, float] | None:
        if not (math.isfinite(p.zenith) and math.isfinite(p.azimuth)):
            return None
        ra, dec = local_to_equatorial(p.zenith, p.azimuth, event.mjd)
        return math.degrees(float(ra)), math.degrees(float(dec))

    seeds = []
    for s in event.seeds:
        rd = radec(s)
        if rd is not None:
            seeds.append({"name": str(s.name), "ra_deg": round(rd[0], 6),
                          "dec_deg": round(rd[1], 6)})
    truth = None
    real = bool((event.meta or {}).get("is_real_event", False))
    if event.truth is not None and not real:
        rd = radec(event.truth)
        if rd is not None:
            truth = {"name": "truth", "ra_deg": round(rd[0], 6), "dec_deg": round(rd[1], 6)}
    return {"seeds": seeds, "truth": truth}


def overlays_json(overlays: dict[str, Any]) -> str:
    """Compact JSON of ``event_overlays`` for a result file's header."""
    return json.dumps(overlays, separators=(",", ":"), sort_keys=True)


def _direction(obj: Any) -> dict[str, Any] | None:
    if not isinstance(obj, dict):
        return None
    try:
        ra, dec = float(obj["ra_deg"]), float(obj["dec_deg"])
    except (KeyError, TypeError, ValueError):
        return None
    if not (math.isfinite(ra) and math.isfinite(dec) and -90 <= dec <= 90):
        return None
    return {"name": str(obj.get("name", ""))[:80], "ra_deg": ra, "dec_deg": dec}


def overlays_from_json(text: Any) -> dict[str, Any] | None:
    """The overlays of a result header; None when absent or unreadable (never raises)."""
    if not isinstance(text, str) or not text or len(text) > 100_000:
        return None
    try:
        obj = json.loads(text)
    except ValueError:
        return None
    if not isinstance(obj, dict):
        return None
    raw = obj.get("seeds")
    seeds = [d for d in map(_direction, raw if isinstance(raw, list) else [])
             if d is not None][:MAX_MARKS]
    return {"seeds": seeds, "truth": _direction(obj.get("truth"))}


def overlay_markers(ov: Any, real: bool = False) -> list[Marker]:
    """Markers of ``event_overlays``-shaped data.

    Seeds first, then the truth (not for a ``real`` event)."""
    if not isinstance(ov, dict):
        return []
    out = [Marker(short_name(s["name"]), float(s["ra_deg"]), float(s["dec_deg"]), "seed")
           for s in ov.get("seeds") or []]
    truth = ov.get("truth")
    if truth and not real:
        out.append(Marker("truth", float(truth["ra_deg"]), float(truth["dec_deg"]), "truth"))
    return out


def result_markers(result: Any) -> list[Marker]:
    """Seed and truth markers of a result (from ``meta["overlays"]``), seeds first."""
    return overlay_markers((getattr(result, "meta", None) or {}).get("overlays"),
                           bool(getattr(result, "is_real_event", False)))


def _radec(parts: list[str], what: str) -> tuple[float, float]:
    from skyscan_tui.errors import UserError

    try:
        ra, dec = float(parts[0]), float(parts[1])
    except ValueError:
        raise UserError(f"{what}: RA and Dec must be numbers [deg]") from None
    if not (math.isfinite(ra) and math.isfinite(dec) and -90 <= dec <= 90):
        raise UserError(f"{what}: not a direction (Dec in -90..90)")
    return ra % 360.0, dec


def parse_radec(text: str) -> tuple[float, float]:
    """"RA DEC" or "RA, DEC" [deg] → (ra in 0..360, dec); UserError (one line) otherwise."""
    from skyscan_tui.errors import UserError

    parts = str(text).replace(",", " ").split()
    if len(parts) != 2:
        raise UserError(f"{str(text)[:40]!r}: type RA and Dec in degrees, e.g. 77.36 5.69")
    return _radec(parts, f"{str(text)[:40]!r}")


def parse_mark(text: str) -> Marker:
    """``RA,DEC[,LABEL]`` [deg] → a Marker; UserError (one line) on anything else."""
    from skyscan_tui.errors import UserError

    parts = [p.strip() for p in str(text).split(",", 2)]
    if len(parts) < 2:
        raise UserError(f"--mark {text!r}: use RA,DEC[,LABEL] in degrees")
    ra, dec = _radec(parts, f"--mark {text!r}")
    label = parts[2] if len(parts) > 2 and parts[2] else f"({parts[0]}, {parts[1]})"
    return Marker(label[:40], ra, dec, "mark")


def truth_report(result: Any, stats: Any) -> dict[str, Any] | None:
    """How well a simulated event's scan did; None for a real event or without truth.

    ``{"ra_deg", "dec_deg", "angle_deg" (best fit → truth), "ts", "credible_level",
    "inside": {"50": {"likelihood", "credible"}, "90": {...}}}``.
    """
    if stats is None or getattr(result, "is_real_event", False):
        return None
    truth = next((m for m in result_markers(result) if m.kind == "truth"), None)
    if truth is None:
        return None
    from skyscan_tui.query import point_query

    q = point_query(stats, truth.ra_deg, truth.dec_deg, (0.5, 0.9))
    return {"ra_deg": truth.ra_deg, "dec_deg": truth.dec_deg,
            "angle_deg": q["offset_deg"], "ts": q["ts"],
            "credible_level": q["credible_level"],
            "inside": {k: {"likelihood": v["likelihood"], "credible": v["credible"]}
                       for k, v in q["inside"].items()}}


def format_truth(rep: dict[str, Any]) -> str:
    """One line: the truth, its angle from the best fit, and the regions holding it."""
    def yes(v: bool) -> str:
        return "yes" if v else "no"

    ins = rep["inside"]
    return (f"Truth (simulated): RA {rep['ra_deg']:.3f} deg, Dec {rep['dec_deg']:+.3f} deg; "
            f"{rep['angle_deg']:.3f} deg from the best fit; inside the 50% region: "
            f"{yes(ins['50']['likelihood'])}, 90%: {yes(ins['90']['likelihood'])} "
            f"(credible 50%: {yes(ins['50']['credible'])}, "
            f"90%: {yes(ins['90']['credible'])})")
