"""The application layer shared by the CLI and the terminal app.

What a front end asks for ("scan this event with these settings", "resume that folder")
turned into a ready engine.

Front ends parse their own input (argparse, form fields) into the plain values taken here;
this module holds the rules both must apply the same way: reco options as ``KEY=VALUE``,
the default reco, settings taken from a checkpoint when resuming, and opening the engine
(which locks the output folder) without leaking the executor when that fails.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from skyscan_tui.errors import UserError

if TYPE_CHECKING:
    from executors.base import Executor
    from skyscan_tui.checkpoint import CheckpointInfo
    from skyscan_tui.engine import ScanEngine, ScanSettings

__all__ = ["DEFAULT_PROGRESSION", "best_reco", "parse_reco_options", "resume_info",
           "scan_settings", "open_scan", "topology_check", "is_track_fit"]

DEFAULT_PROGRESSION = "8:0,64:12,512:24"
DEFAULT_MAX_RETRIES = 2


def topology_check(event: Any) -> Any:
    """The topology guard's verdict on ``event``: track-like or a point-like cascade.

    See :mod:`recos.track.topology`. None when the test cannot run (e.g. too few hits), so a
    front end then scans as before."""
    import logging

    from recos.track.topology import classify_topology

    try:
        return classify_topology(event)
    except Exception as exc:  # the guard must never stop a scan it cannot judge
        logging.getLogger(__name__).warning("topology test skipped: %s", exc)
        return None


def is_track_fit(reco: str) -> bool:
    """Whether the reco called ``reco`` fits a muon track (``Reco.track_fit``).

    The topology guard concerns track fits only: other recos (``dummy``) skip it."""
    from recos import get_reco

    return bool(getattr(get_reco(reco), "track_fit", False))


def parse_reco_options(pairs: Iterable[str]) -> dict[str, str]:
    """``["KEY=VALUE", ...]`` as a dict (values stay text; the reco converts them).

    >>> parse_reco_options(["sigma_deg=2", " noise = 0 "])
    {'sigma_deg': '2', 'noise': '0'}
    """
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--reco-opt {pair!r}: expected KEY=VALUE")
        out[key.strip()] = value.strip()
    return out


def best_reco() -> str:
    """The best reco installed: the physics fits if present, else the dummy.

    ``auto`` (the better calibrated of SPE1st and MPE per event) when it is installed."""
    from recos import available_recos

    names = available_recos()
    for name in ("auto", "spe", "mpe", "dummy"):
        if name in names:
            return name
    return names[0]


def resume_info(outdir: Path, output: Path | None = None) -> CheckpointInfo:
    """The checkpoint in ``outdir`` to resume.

    UserError if there is none, or if another output folder ``output`` was asked for too."""
    from skyscan_tui.checkpoint import read_info

    if output is not None and Path(output).resolve() != Path(outdir).resolve():
        raise UserError("--resume OUTDIR writes to OUTDIR; drop -o/--output")
    if not Path(outdir).is_dir():
        raise UserError(f"{outdir}: no such output folder to resume")
    info = read_info(outdir)
    if info is None:
        raise UserError(f"{outdir}: no scan checkpoint to resume")
    return info


def scan_settings(reco: str | None = None, reco_options: Mapping[str, Any] | None = None,
                  progression: str | None = None, run_options: Mapping[str, Any] | None = None,
                  resume: CheckpointInfo | None = None, refine: str | None = None,
                  predictive: float | str | None = None) -> ScanSettings:
    """Settings of a scan from what the user gave (None = not given).

    Resuming, what was not given comes from the checkpoint (the engine then refuses a given
    value that would change the result); how to run (``batch_size``, ``max_retries``,
    ``pixel_timeout``) may change: given values win, else the checkpoint's, else defaults.
    A new scan takes the defaults: :func:`best_reco`, :data:`DEFAULT_PROGRESSION`, the
    ``best`` refinement rule and no predictive scanning.

    Parameters
    ----------
    reco : str or None
        The reco's name.
    reco_options : mapping or None
        Its options by name (text or values; :func:`parse_reco_options` makes them).
    progression : str or None
        The nside progression as text, e.g. ``"8:0,64:12,512:24"``.
    run_options : mapping or None
        How to run: ``batch_size`` [pixels], ``max_retries``, ``pixel_timeout`` [s].
    resume : CheckpointInfo or None
        The checkpoint being resumed (:func:`resume_info`).
    refine : str or None
        The refinement rule, ``best`` or ``upstream`` (:mod:`skyscan_tui.refinement`).
    predictive : float or str or None
        The fraction [1] of a round after which the next starts (0 < F ≤ 1), as a number
        or text; None, "" or "off": not predictive.
    """
    from skyscan_tui import sky
    from skyscan_tui.engine import ScanSettings

    opts = dict(reco_options) if reco_options is not None else None
    run = dict(resume.run_options) if resume is not None else {}
    if resume is not None:
        reco = reco or str(resume.settings.get("reco"))
        if opts is None and isinstance(resume.settings.get("reco_options"), dict):
            opts = dict(resume.settings["reco_options"])
        if progression is None:
            progression = str(resume.settings.get("nside_progression"))
        if refine is None:
            refine = resume.settings.get("refine")
        if predictive is None:
            predictive = resume.settings.get("predictive")
    for key, value in (run_options or {}).items():
        if value is not None:
            run[key] = value
    prog = sky.parse_progression(DEFAULT_PROGRESSION if progression is None else progression)
    from skyscan_tui.refinement import check_refine, parse_predictive

    rule = check_refine("best" if refine is None else str(refine))
    fraction = parse_predictive(predictive)
    try:
        return ScanSettings(
            reco=reco or best_reco(), reco_options=opts or {}, progression=prog,
            batch_size=run.get("batch_size"),
            max_retries=(DEFAULT_MAX_RETRIES if run.get("max_retries") is None
                         else int(run["max_retries"])),
            pixel_timeout=run.get("pixel_timeout"), refine=rule, predictive=fraction)
    except (TypeError, ValueError):
        raise UserError("the checkpoint holds unusable run options; pass --batch-size, "
                        "--max-retries and --pixel-timeout explicitly") from None


def open_scan(event: Any, settings: ScanSettings, executor: Executor, outdir: Path | None,
              resume: bool = False, partial_interval: float | str | None = "auto",
              topology: Any = None) -> ScanEngine:
    """A ready :class:`~skyscan_tui.engine.ScanEngine` (it locks ``outdir``).

    The executor is closed if that fails (a busy or unusable folder, another event, other
    settings).

    Parameters
    ----------
    event : Event
        The event to scan.
    settings : ScanSettings
        What to scan and how (:func:`scan_settings`).
    executor : Executor
        Where the pixel batches run; the engine owns it from now on.
    outdir : Path or None
        The output folder (checkpoint and results); None: no checkpoint.
    resume : bool
        Continue the checkpoint in ``outdir`` instead of starting a new scan.
    partial_interval : float or str or None
        Seconds between partial results in ``outdir``, None (off) or "auto"
        (:func:`skyscan_tui.observe.resolve_partial_interval`).
    topology : TopologyVerdict or None
        The topology guard's verdict (:func:`topology_check`); every result of the scan,
        partial ones included, carries it in ``meta["topology"]``.
    """
    from skyscan_tui.engine import ScanEngine

    if outdir is not None and outdir.exists() and not outdir.is_dir():
        executor.close()
        raise UserError(f"{outdir}: output path exists and is not a folder")
    try:
        return ScanEngine(event, settings, executor, outdir=outdir, resume=resume,
                          partial_interval=partial_interval,
                          topology=None if topology is None else topology.to_dict())
    except BaseException:
        executor.close()
        raise
