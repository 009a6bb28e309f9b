"""The ``scan`` and ``demo`` commands' run: settings, executor, progress display, saving.

:func:`run_scan` opens the engine (through :mod:`skyscan_tui.app_api`) for an event and the
parsed options of :mod:`skyscan_tui.cli`, and :func:`_drive` runs it with a progress display
on stderr, then saves and prints the result. Ctrl-C ends with :data:`EXIT_INTERRUPTED` and a
hint to ``--resume``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from skyscan_tui.errors import UserError
from skyscan_tui.interrupts import CtrlC

__all__ = ["run_scan", "EXIT_INTERRUPTED"]

EXIT_INTERRUPTED = 130


def _make_executor(args: argparse.Namespace):
    """The ``--executor`` from the flags it declares (a flag of another executor is refused)."""
    from executors import get_executor
    from executors.cliargs import given_options, refuse_foreign

    cls = get_executor(args.executor)
    refuse_foreign(cls, args)
    return cls.from_options(given_options(cls, args))


def _resume_info(args: argparse.Namespace):
    """The checkpoint ``--resume OUTDIR`` points at (UserError if there is none)."""
    from skyscan_tui.app_api import resume_info

    return resume_info(args.resume, args.output)


def run_scan(event: Any, args: argparse.Namespace, out_default: Path) -> int:
    """Scan ``event`` with the parsed options ``args``; the exit code.

    The output folder is ``--output``, else ``out_default`` (with ``--resume``: the
    checkpoint's folder). Bad input raises :class:`~skyscan_tui.errors.UserError`."""
    from skyscan_tui.app_api import is_track_fit, open_scan, parse_reco_options, scan_settings
    from skyscan_tui.stats import parse_thresholds

    parse_thresholds(args.thresholds)  # bad thresholds fail before the scan starts
    reco_options = parse_reco_options(args.reco_opt)
    info = _resume_info(args) if getattr(args, "resume", None) else None
    settings = scan_settings(
        reco=args.reco, reco_options=reco_options if args.reco_opt else None,
        progression=args.nside_progression,  # None = not given ("" is given, and wrong)
        refine=args.refine, predictive=args.predictive,
        run_options={key: getattr(args, key, None)
                     for key in ("batch_size", "max_retries", "pixel_timeout")},
        resume=info)
    # the guard asks whether a track scan makes sense: other recos (dummy) skip its fits
    verdict = _topology_guard(event, args) if is_track_fit(settings.reco) else None
    outdir = info.outdir if info is not None else (args.output or out_default)
    if outdir.exists() and not outdir.is_dir():
        raise UserError(f"{outdir}: output path exists and is not a folder")
    engine = open_scan(event, settings, _make_executor(args), outdir, resume=info is not None,
                       partial_interval=args.partial_interval, topology=verdict)
    if engine.reco.notice:
        print(f"skyscan-tui: note: {engine.reco.notice}", file=sys.stderr)
    try:
        return _drive(engine, event, args, outdir)
    finally:
        engine.close()


def _topology_guard(event: Any, args: argparse.Namespace) -> Any:
    """The topology verdict; a cascade-like event stops here unless ``--allow-cascade``."""
    from skyscan_tui.app_api import topology_check

    verdict = topology_check(event)
    if verdict is not None and verdict.cascade_like:
        if not getattr(args, "allow_cascade", False):
            raise UserError(f"cascade-like event: a track scan is not meaningful "
                            f"({verdict.numbers()}); pass --allow-cascade to scan anyway")
        print(f"skyscan-tui: WARNING: cascade-like event, scanning anyway (--allow-cascade): "
              f"{verdict.numbers()}", file=sys.stderr)
    return verdict


def _drive(engine: Any, event: Any, args: argparse.Namespace, outdir: Path) -> int:
    """Run ``engine`` with a progress display, then save and print the result."""
    from skyscan_tui.engine import ScanFinished
    from skyscan_tui.progress import ProgressPrinter

    executor = engine.executor
    if executor.can_resume:  # e.g. remote executors keep their resume state there
        executor.bind_output(outdir)
    mode = None if args.progress == "auto" else args.progress
    show = (lambda u: None) if mode == "none" else ProgressPrinter(mode=mode)
    finished = None
    updates = engine.run()
    ctrl_c = CtrlC.current
    try:
        if ctrl_c is not None:
            ctrl_c.stop_with(engine)  # from here on a Ctrl-C stops the engine
        for update in updates:
            show(update)
            if isinstance(update, ScanFinished):
                finished = update
    except KeyboardInterrupt:  # a third Ctrl-C (or run_scan called outside main)
        engine.cancel()
        updates.close()  # stops and closes the executor (kills local workers)
        # Ctrl-C raised inside the executor ends the engine before it saw the cancel, so
        # cancel explicitly too (idempotent; remote executors remove their jobs)
        executor.cancel()
        print(f"skyscan-tui: interrupted; continue with: skyscan-tui scan --resume {outdir}",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        if ctrl_c is not None:
            ctrl_c.stop_with(None)
    assert finished is not None
    if finished.cancelled:
        what = "interrupted" if ctrl_c is not None and ctrl_c.presses else "scan cancelled"
        print(f"skyscan-tui: {what}; continue with: skyscan-tui scan --resume {outdir}",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    result = finished.result
    result.meta["executor"] = args.executor
    for key in ("pulse_series", "source_file"):  # provenance of real alerts
        if key in getattr(event, "meta", {}):
            result.meta[key] = event.meta[key]
    result.meta["thresholds"] = args.thresholds or "wilks"
    result.meta["error_floor_deg"] = args.error_floor or 0.0
    # flat FITS maps at --flat-nside (default the finest scanned; 0: none)
    result.meta["flat_nside"] = (args.flat_nside if args.flat_nside is not None
                                 else min(max(result.nsides, default=0), 2048))
    result.meta["multiorder_llh"] = bool(args.multiorder_llh)
    paths = result.save(outdir)
    engine.record_saved(paths)
    summary = result.summary(files={k: str(v) for k, v in paths.items()})
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        from skyscan_tui.results import format_summary

        print(format_summary(summary))
    return 0
