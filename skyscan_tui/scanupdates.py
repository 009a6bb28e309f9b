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
           "ScanFinished", "ScanUpdate", "MAX_RETRIES", "eta_estimate", "ETA_MIN_SECONDS",
           "ETA_MIN_FRACTION"]

#: upper bound of ``--max-retries`` (a fit that fails 100 times will not succeed)
MAX_RETRIES = 100
#: the ETA needs this much work time [s] behind its rate (start-up of workers dominates less)
ETA_MIN_SECONDS = 2.0
#: ... and the rate measured over this fraction of the running round's fits (or a whole round)
ETA_MIN_FRACTION = 0.10


def eta_estimate(remaining: int, computed: int, work_seconds: float, round_computed: int,
                 round_todo: int, rounds_measured: int) -> float:
    """Seconds until the scan ends, or NaN while an estimate would not mean anything.

    The one ETA rule of every front end (CLI bar and lines, ``progress.json``, the app):
    an ETA is given once the scan has worked for ``ETA_MIN_SECONDS`` and its rate has been
    measured over ``ETA_MIN_FRACTION`` of the fits this session computes in the running
    round (``round_computed`` of ``round_todo``), or over a whole earlier round
    (``rounds_measured`` > 0: a refinement round starts with a known rate). ``remaining``
    counts the fits still to do including the refinement rounds to come (their sizes are
    known in advance), and the rate is ``computed`` fits over ``work_seconds``.

    >>> eta_estimate(970, 30, 0.05, 30, 1000, 0)   # 3 % of the round: not yet
    nan
    >>> eta_estimate(800, 200, 2.0, 200, 1000, 0)  # 20 % after 2 s: 100 fits/s
    8.0
    >>> eta_estimate(500, 1000, 4.0, 0, 500, 1)    # a refinement round: the rate is known
    2.0
    """
    if remaining <= 0:
        return 0.0
    if computed <= 0 or not work_seconds >= ETA_MIN_SECONDS:
        return float("nan")
    if rounds_measured <= 0 and not (
            round_todo > 0 and round_computed >= ETA_MIN_FRACTION * round_todo):
        return float("nan")
    return remaining / (computed / work_seconds)


@dataclass(frozen=True)
class ScanSettings:
    """How to scan: the settings a front end gives the engine.

    ``pixel_timeout`` [s] is per pixel: a batch of n pixels may take n × pixel_timeout once a
    worker has it; None = no limit. ``refine`` is the refinement rule and ``predictive`` the
    fraction of a round after which the next one starts (None: when it has ended);
    :mod:`skyscan_tui.refinement` describes both."""

    reco: str
    reco_options: dict[str, Any] = field(default_factory=dict)
    progression: sky.Progression = sky.DEFAULT_PROGRESSION
    batch_size: int | None = None  # pixels per batch; None = the reco's preference
    max_retries: int = 2
    pixel_timeout: float | None = None
    predictive: float | None = None
    refine: str = "best"

    def __post_init__(self) -> None:
        from skyscan_tui.refinement import check_predictive, check_refine

        check_refine(self.refine)
        if self.predictive is not None:
            check_predictive(self.predictive)
        if not 0 <= int(self.max_retries) <= MAX_RETRIES:
            raise UserError(f"--max-retries must be between 0 and {MAX_RETRIES}")
        if self.pixel_timeout is not None and not (0 < self.pixel_timeout <= 86400 * 7):
            raise UserError("--pixel-timeout must be between 0 and 604800 seconds")
        if self.batch_size is not None and not 1 <= int(self.batch_size) <= 1_000_000:
            raise UserError("--batch-size must be between 1 and 1000000")

    @property
    def overlapping(self) -> bool:
        """Whether rounds may overlap or grow (a predictive scan, or the upstream rule)."""
        return self.predictive is not None or self.refine != "best"


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
