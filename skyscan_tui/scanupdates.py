"""What a scan is asked to do, and what it reports while it runs.

:class:`ScanSettings`, and the progress updates :meth:`skyscan_tui.engine.ScanEngine.run`
yields to the front ends."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from skyscan_tui import sky
from skyscan_tui.errors import UserError
from skyscan_tui.results import ScanResult

__all__ = ["ScanSettings", "RoundStarted", "PixelsDone", "RoundFinished", "ScanLog",
           "ScanFinished", "ScanUpdate", "MAX_RETRIES"]

#: upper bound of ``--max-retries`` (a fit that fails 100 times will not succeed)
MAX_RETRIES = 100


@dataclass(frozen=True)
class ScanSettings:
    """How to scan: the settings a front end gives the engine.

    ``pixel_timeout`` [s] is per pixel: a batch of n pixels may take n × pixel_timeout once a
    worker has it; None = no limit."""

    reco: str
    reco_options: dict[str, Any] = field(default_factory=dict)
    progression: sky.Progression = sky.DEFAULT_PROGRESSION
    batch_size: int | None = None  # pixels per batch; None = the reco's preference
    max_retries: int = 2
    pixel_timeout: float | None = None

    def __post_init__(self) -> None:
        if not 0 <= int(self.max_retries) <= MAX_RETRIES:
            raise UserError(f"--max-retries must be between 0 and {MAX_RETRIES}")
        if self.pixel_timeout is not None and not (0 < self.pixel_timeout <= 86400 * 7):
            raise UserError("--pixel-timeout must be between 0 and 604800 seconds")
        if self.batch_size is not None and not 1 <= int(self.batch_size) <= 1_000_000:
            raise UserError("--batch-size must be between 1 and 1000000")


@dataclass(frozen=True)
class RoundStarted:
    """A round of the scan began: ``n_pixels`` pixels, ``n_tasks`` fits."""

    round: int
    nside: int
    n_pixels: int
    n_tasks: int


@dataclass(frozen=True, eq=False)
class PixelsDone:
    """A batch came back. ``results`` holds its raw rows (one per pixel and variation)."""

    round: int
    nside: int
    results: np.ndarray
    round_done: int  # tasks finished in this round
    round_total: int
    done: int  # tasks finished overall
    total: int  # tasks planned overall, including rounds still to come
    rate: float  # [tasks/s]
    eta: float  # [s] until the scan is finished; nan while unknown
    worker: str = ""


@dataclass(frozen=True)
class RoundFinished:
    """A round ended: its best NESTED pixel, −log L there, and its failed fits."""

    round: int
    nside: int
    best_ipix: int
    best_llh: float
    n_failed: int


@dataclass(frozen=True)
class ScanLog:
    """A message for the scan log (``level``: a logging level name)."""

    level: str
    message: str


@dataclass(frozen=True, eq=False)
class ScanFinished:
    """The scan ended (or was cancelled) after ``elapsed`` [s]; its result."""

    result: ScanResult
    cancelled: bool
    elapsed: float


ScanUpdate = RoundStarted | PixelsDone | RoundFinished | ScanLog | ScanFinished
