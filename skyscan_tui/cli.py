"""skyscan-tui: find where a neutrino came from — headless commands.

Subcommands: ``simulate``, ``scan``, ``demo``, ``recos``, ``executors``. Bad input ends with
one line on stderr and exit code 2; Ctrl-C with 130. Heavy modules are imported inside the
handlers so ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from skyscan_tui import __version__
from skyscan_tui.errors import UserError

__all__ = ["parser", "main"]

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2
        raise UserError(f"{self.prog}: {message}")


def _finite_float(text: str) -> float:
    import math

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not finite")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def _nonneg_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must not be negative")
    return value


def _sim_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("simulation")
    g.add_argument("--seed", type=_nonneg_int, default=1, help="random seed (default 1)")
    g.add_argument("--zenith", type=_finite_float, metavar="DEG",
                   help="zenith of origin [deg] (default: random, cos θ uniform)")
    g.add_argument("--azimuth", type=_finite_float, metavar="DEG",
                   help="azimuth of origin [deg] (default: random)")
    g.add_argument("--energy", type=_finite_float, default=1.0e4, metavar="GEV",
                   help="muon energy [GeV] (default 10000)")
    g.add_argument("--mjd", type=_finite_float, default=60000.0, metavar="DAYS",
                   help="event time [MJD, UTC] (default 60000.0)")
    g.add_argument("--ice-mismatch", type=_finite_float, nargs="?", const=0.2, default=0.0,
                   metavar="F", help="perturb per-DOM light yield, scattering and jitter by "
                   "a relative amount F (0.2 when given bare; default 0: the recos' model)")


def _scan_options(p: argparse.ArgumentParser, default_reco: str | None) -> None:
    g = p.add_argument_group("scan")
    g.add_argument("--reco", default=default_reco, metavar="NAME",
                   help="reconstruction (see `skyscan-tui recos`)"
                        + (f"; default {default_reco}" if default_reco else ""))
    g.add_argument("--reco-opt", action="append", default=[], metavar="KEY=VALUE",
                   help="reco option (repeatable)")
    g.add_argument("--executor", default="local", metavar="NAME",
                   help="where pixels run: local, serial, ... (default local)")
    g.add_argument("-j", "--jobs", type=_positive_int, metavar="N",
                   help="worker processes for the local executor (default: all cores)")
    g.add_argument("--nside-progression", default="8:0,64:12,512:24", metavar="N:K,...",
                   help="nside levels and pixels refined per level (default 8:0,64:12,512:24)")
    g.add_argument("--batch-size", type=_positive_int, metavar="PIXELS",
                   help="pixels per task batch (default: chosen by the reco)")
    g.add_argument("--max-retries", type=_nonneg_int, default=2, metavar="N",
                   help="retries of a failing batch (default 2)")
    g.add_argument("--geometry", metavar="PATH",
                   help="DOM table CSV, 'icecube86' (default) or 'hex'")
    g.add_argument("-o", "--output", type=Path, metavar="DIR",
                   help="output folder (default ./skyscan-results/<event>)")
    g.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")
    g.add_argument("--progress", choices=["auto", "bar", "lines", "jsonl", "none"],
                   default="auto", help="progress display on stderr (default auto)")


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog="skyscan-tui", description=__doc__.split("\n\n")[0])
    p.add_argument("--version", action="version", version=f"skyscan-tui {__version__}")
    p.add_argument("--loglevel", default="WARNING",
                   choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="log level")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    s = sub.add_parser("simulate", help="write a simulated muon-track event")
    s.add_argument("-o", "--output", type=Path, required=True, metavar="EVENT",
                   help="event file to write (.json)")
    _sim_options(s)
    s.add_argument("--geometry", metavar="PATH", help="DOM table ('icecube86', 'hex' or CSV)")

    sc = sub.add_parser("scan", help="scan an event over the sky")
    sc.add_argument("event", type=Path, metavar="EVENT", help="event file")
    _scan_options(sc, default_reco=None)

    d = sub.add_parser("demo", help="simulate an event and scan it (the default job)")
    _sim_options(d)
    _scan_options(d, default_reco=None)

    sub.add_parser("recos", help="list reconstructions")
    sub.add_parser("executors", help="list executors")
    return p


def _parse_reco_opts(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--reco-opt {pair!r}: expected KEY=VALUE")
        out[key.strip()] = value.strip()
    return out


def best_reco() -> str:
    """The best reco installed: the physics fits if present, else the dummy."""
    from recos import available_recos

    names = available_recos()
    for name in ("spe", "mpe", "dummy"):
        if name in names:
            return name
    return names[0]


def _make_executor(args: argparse.Namespace):
    from executors import get_executor

    cls = get_executor(args.executor)
    if args.executor in ("local", "serial"):
        return cls(jobs=args.jobs)
    return cls.from_args(args)


def run_scan(event: Any, args: argparse.Namespace, out_default: Path) -> int:
    from skyscan_tui import sky
    from skyscan_tui.engine import ScanEngine, ScanFinished, ScanSettings
    from skyscan_tui.progress import ProgressPrinter

    reco = args.reco or best_reco()
    settings = ScanSettings(
        reco=reco, reco_options=_parse_reco_opts(args.reco_opt),
        progression=sky.parse_progression(args.nside_progression),
        batch_size=args.batch_size, max_retries=args.max_retries,
    )
    outdir = args.output or out_default
    if outdir.exists() and not outdir.is_dir():
        raise UserError(f"{outdir}: output path exists and is not a folder")
    engine = ScanEngine(event, settings, _make_executor(args))
    mode = None if args.progress == "auto" else args.progress
    show = (lambda u: None) if mode == "none" else ProgressPrinter(mode=mode)
    finished = None
    updates = engine.run()
    try:
        for update in updates:
            show(update)
            if isinstance(update, ScanFinished):
                finished = update
    except KeyboardInterrupt:
        engine.cancel()
        updates.close()  # stops and closes the executor (kills local workers)
        print("skyscan-tui: interrupted; scan cancelled", file=sys.stderr)
        return EXIT_INTERRUPTED
    assert finished is not None
    if finished.cancelled:
        return EXIT_INTERRUPTED
    result = finished.result
    result.meta["executor"] = args.executor
    paths = result.save(outdir)
    summary = result.summary(files={k: str(v) for k, v in paths.items()})
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        from skyscan_tui.results import format_summary

        print(format_summary(summary))
    return 0


def _cmd_simulate(args: argparse.Namespace) -> int:
    from skyscan_tui.events import save_event

    event = _simulate(args)
    save_event(event, args.output)
    print(f"wrote {args.output}: {len(event.pulses)} pulses on {event.pulses.n_doms} DOMs, "
          f"{event.total_charge:.1f} PE")
    return 0


def _simulate(args: argparse.Namespace):
    from skyscan_tui.geometry import load_geometry
    from skyscan_tui.simulate import SimConfig, simulate_event

    cfg = SimConfig(seed=args.seed, zenith_deg=args.zenith, azimuth_deg=args.azimuth,
                    energy=args.energy, mjd=args.mjd,
                    ice_mismatch=getattr(args, "ice_mismatch", 0.0))
    return simulate_event(cfg, load_geometry(getattr(args, "geometry", None)))


def _cmd_scan(args: argparse.Namespace) -> int:
    from skyscan_tui.events import load_event

    event = load_event(args.event)
    return run_scan(event, args, Path("skyscan-results") / args.event.stem)


def _cmd_demo(args: argparse.Namespace) -> int:
    event = _simulate(args)
    print(f"simulated event {event.event_id}: {len(event.pulses)} pulses on "
          f"{event.pulses.n_doms} DOMs, {event.total_charge:.1f} PE", file=sys.stderr)
    return run_scan(event, args, Path("skyscan-results") / f"demo-seed{args.seed}")


def _cmd_recos(args: argparse.Namespace) -> int:
    from recos import available_recos, get_reco

    for name in available_recos():
        cls = get_reco(name)
        print(f"{name:14s} {cls.description}")
        for opt in cls.OPTIONS:
            print(f"{'':14s}   {opt.name}={opt.default!r}: {opt.help}")
    return 0


def _cmd_executors(args: argparse.Namespace) -> int:
    from executors import available_executors, get_executor

    for name in available_executors():
        print(f"{name:10s} {get_executor(name).description}")
    return 0


_COMMANDS = {"simulate": _cmd_simulate, "scan": _cmd_scan, "demo": _cmd_demo,
             "recos": _cmd_recos, "executors": _cmd_executors}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        try:
            args = parser().parse_args(argv or ["demo"])
        except SystemExit as exc:  # --help / --version
            return int(exc.code or 0)
        logging.basicConfig(level=args.loglevel, format="%(levelname)s %(name)s: %(message)s")
        if args.command is None:
            argv = ["demo"]
            args = parser().parse_args(argv)
        return _COMMANDS[args.command](args)
    except UserError as exc:
        print(f"skyscan-tui: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("skyscan-tui: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return 1
    except OSError as exc:
        print(f"skyscan-tui: error: {exc.strerror or exc}"
              + (f": {exc.filename}" if getattr(exc, "filename", None) else ""),
              file=sys.stderr)
        return 1
    except MemoryError:
        print("skyscan-tui: error: out of memory", file=sys.stderr)
        return 1
