"""The reconstruction plug-in contract.

A reco is a pure function of (event, pixel directions, vertex seeds) → per-pixel fit. The
engine calls ``prepare(event)`` once per scan (cleaning, first guess; the result must be
picklable and deterministic), and each worker calls ``fit_pixels(prepared, batch)`` for a
``TaskBatch``. ``fit_pixels`` must give every pixel the same answer whatever else is in its
batch, so the skymap does not depend on the executor or the worker count. It must not do
I/O. Unknown options are refused; missing ones take their defaults.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from skyscan_tui.errors import UserError
from skyscan_tui.events import Event
from skyscan_tui.options import Option  # reco options: --reco-opt NAME=VALUE
from skyscan_tui.tasks import TaskBatch

__all__ = ["Option", "Reco", "PointedRegion", "in_worker_process", "mark_worker_process"]

_in_worker_process = False


def mark_worker_process() -> None:
    """Mark this process as one that exists only to fit pixels.

    Executors call it in a local pool worker or a remote job, so that dying there loses only
    its batch."""
    global _in_worker_process
    _in_worker_process = True


def in_worker_process() -> bool:
    """Whether this process only fits pixels (test recos that kill their process check)."""
    return _in_worker_process


@dataclass(frozen=True)
class PointedRegion:
    """First-round region of a pointed reco: a disc around a local direction [rad]."""

    zenith: float
    azimuth: float
    radius: float


class Reco(ABC):
    """Base class of every reconstruction (see the module docstring for the contract)."""

    name: ClassVar[str]
    description: ClassVar[str]
    likelihood: ClassVar[str] = ""
    OPTIONS: ClassVar[tuple[Option, ...]] = ()
    #: number of vertex variations fitted per pixel (the scan keeps the best)
    n_variations: ClassVar[int] = 1
    #: pixels per task batch that keeps vectorised fits efficient
    preferred_batch: ClassVar[int] = 64
    #: a one-line note for the user on how this reco will run (e.g. a slower fallback)
    notice: str = ""
    #: a muon track fit: the front ends run the topology guard (is the event a cascade?)
    #: before scanning with it; other recos (e.g. ``dummy``) skip that test and its cost
    track_fit: ClassVar[bool] = False

    def __init__(self, **options: Any) -> None:
        known = {o.name: o for o in self.OPTIONS}
        unknown = sorted(set(options) - set(known))
        if unknown:
            allowed = ", ".join(known) or "none"
            raise UserError(f"reco {self.name}: unknown option {unknown[0]!r} "
                            f"(allowed: {allowed})")
        self.options: dict[str, Any] = {
            name: opt.parse(options[name]) if name in options else opt.default
            for name, opt in known.items()
        }

    @classmethod
    def from_strings(cls, pairs: Mapping[str, str]) -> Reco:
        """The reco with options given as strings (``NAME=VALUE`` pairs, converted)."""
        return cls(**dict(pairs))

    def prepare(self, event: Event) -> Any:
        """Once per scan: everything per-event (cleaning, first guess). Default: the event."""
        return event

    def seed_vertex(self, prepared: Any) -> np.ndarray:
        """[m, m, m, ns] vertex and time where first-round fits start."""
        event: Event = prepared
        seed = event.best_seed
        if seed is not None:
            return np.array([seed.x, seed.y, seed.z, seed.time])
        p = event.pulses
        if len(p) == 0:
            return np.zeros(4)
        w = p.charge
        return np.array([np.average(p.x, weights=w), np.average(p.y, weights=w),
                         np.average(p.z, weights=w), float(np.median(p.time))])

    def likelihood_for(self, prepared: Any) -> str:
        """The likelihood used on this event (recos that choose per event override it)."""
        return self.likelihood

    def pointed_region(self, prepared: Any) -> PointedRegion | None:
        """For pointed recos: the first round covers only this disc."""
        return None

    @abstractmethod
    def fit_pixels(self, prepared: Any, batch: TaskBatch) -> np.ndarray:
        """Fit every task of ``batch``; returns ``RESULT_DTYPE`` rows in batch order."""
