"""skyscan-tui: find where a neutrino came from — headless commands.

Subcommands: ``simulate``, ``scan``, ``info``, ``demo``, ``plot``, ``compare``, ``summary``,
``recos``, ``executors``, ``tui``, ``show``; product ones (``contours``, ...) in
``cli_products``.
Bare ``skyscan-tui`` (or ``skyscan-tui EVENT``) opens the terminal app when run in a terminal.
Bad input ends with one line on stderr and exit code 2; Ctrl-C with 130. Heavy modules
(and Textual) are imported inside the handlers so ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from executors import DEFAULT_EXECUTOR
from skyscan_tui import __version__, cli_products
from skyscan_tui.cli_scan import EXIT_INTERRUPTED, _resume_info, run_scan
from skyscan_tui.errors import UserError
from skyscan_tui.interrupts import CtrlC, forget_caught_interrupt

__all__ = ["parser", "main"]

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """The argument parser with one-line errors and late arguments.

    ``late`` adds arguments on first use (parse or help), so flags generated from plug-ins are
    imported only by the commands that take them."""

    def __init__(self, *args: Any, late: Any = None, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self._late = late

    def _add_late(self) -> None:
        late, self._late = self._late, None
        if late is not None:
            late(self)

    def parse_known_args(self, *args: Any, **kw: Any) -> Any:
        self._add_late()
        return super().parse_known_args(*args, **kw)

    def format_usage(self) -> str:
        self._add_late()
        return super().format_usage()

    def format_help(self) -> str:
        self._add_late()
        return super().format_help()

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


#: the refinement rules (skyscan_tui.refinement.REFINE_RULES; not imported to start fast)
REFINE_RULES = ("best", "upstream")


def _predictive(text: str) -> float:
    value = _finite_float(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be above 0 and at most 1")
    return value


def _path(text: str) -> Path:
    if not text.strip() or "\x00" in text or len(text) > 4096:
        raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a usable path")
    return Path(text)


def _positive_float(text: str) -> float:
    value = _finite_float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be positive")
    return value


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None


def _positive_int(text: str) -> int:
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def _nonneg_int(text: str) -> int:
    value = _int(text)
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
    g.add_argument("--ice", choices=("bulk", "spice_mie"), default="bulk",
                   help="detector model: bulk (default: the recos' own bulk-ice model) or "
                   "spice_mie (realistic: layered SPICE Mie ice, DOM orientation, efficiency "
                   "spread, per-DOM noise rates, saturation; docs/validation.md)")
    kind = g.add_mutually_exclusive_group()
    kind.add_argument("--cascade", action="store_true",
                      help="a point-like particle shower inside the detector, not a muon track")
    kind.add_argument("--starting", action="store_true",
                      help="a muon starting inside the detector, with a cascade at its vertex")


def _scan_options(p: argparse.ArgumentParser, default_reco: str | None) -> None:
    g = p.add_argument_group("scan")
    g.add_argument("--allow-cascade", action="store_true",
                   help="scan even when the topology test finds a cascade-like event "
                        "(the verdict is recorded in the result)")
    g.add_argument("--reco", default=default_reco, metavar="NAME",
                   help="reconstruction (see `skyscan-tui recos`)"
                        + (f"; default {default_reco}" if default_reco else ""))
    g.add_argument("--reco-opt", action="append", default=[], metavar="KEY=VALUE",
                   help="reco option (repeatable)")
    g.add_argument("--executor", default=DEFAULT_EXECUTOR, metavar="NAME",
                   help="where pixels run (see `skyscan-tui executors`; default "
                        f"{DEFAULT_EXECUTOR}); each executor's options follow")
    g.add_argument("--nside-progression", default=None, metavar="N:K,...",
                   help="nside levels and pixels refined per level (default 8:0,64:12,512:24)")
    g.add_argument("--refine", choices=REFINE_RULES, default=None,
                   help="refinement rule: best (default: the K best pixels of a level are "
                        "split) or upstream (the Skymap Scanner's disc of K pixel areas around "
                        "the best fit; docs/usage.md#scan-rules)")
    g.add_argument("--predictive", type=_predictive, default=None, metavar="FRACTION",
                   help="start each refinement once FRACTION (0 < F <= 1) of the level before "
                        "is back, and re-open it if a late pixel changes the best ones; the "
                        "map then depends on arrival order (default: off)")
    g.add_argument("--batch-size", type=_positive_int, metavar="PIXELS",
                   help="pixels per task batch (default: chosen by the reco)")
    g.add_argument("--max-retries", type=_nonneg_int, default=None, metavar="N",
                   help="retries of a pixel fit that raises, times out or returns NaN "
                        "(default 2, at most 100)")
    g.add_argument("--pixel-timeout", type=_positive_float, metavar="SECONDS",
                   help="time limit per pixel; a batch of n pixels may run n × SECONDS "
                        "(default: none)")
    g.add_argument("--resume", type=_path, metavar="OUTDIR",
                   help="continue the interrupted scan in OUTDIR (event and settings are "
                        "taken from its checkpoint)")
    g.add_argument("--geometry", metavar="PATH",
                   help="DOM table CSV, 'icecube86' (default) or 'hex'")
    g.add_argument("-o", "--output", type=_path, metavar="DIR",
                   help="output folder (default ./skyscan-results/<event>)")
    g.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")
    g.add_argument("--progress", choices=["auto", "bar", "lines", "jsonl", "none"],
                   default="auto", help="progress display on stderr (default auto; jsonl: "
                   "one JSON object per progress event)")
    g.add_argument("--partial-interval", type=_partial_interval, default="auto",
                   metavar="SECONDS|auto|off",
                   help="write the result so far to OUTDIR/partial.npz (skyreader format) "
                        "every SECONDS; auto (default): every 300 s with local executors "
                        "(so short scans write none), 120 s with remote ones; 0 or off: never")
    _thresholds_option(g)
    cli_products.error_floor_option(g)
    cli_products.flat_nside_option(g, scan=True)


def _partial_interval(text: str) -> float | str | None:
    from skyscan_tui.observe import parse_partial_interval

    try:
        return parse_partial_interval(text)
    except UserError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--partial-interval ")
                                         ) from None


def _thresholds_arg(text: str) -> str:
    if text.strip().lower() not in ("wilks", "ic160427a"):  # named ones need no numpy
        from skyscan_tui.stats import parse_thresholds

        try:
            parse_thresholds(text)
        except UserError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _thresholds_option(g) -> None:
    g.add_argument("--thresholds", default=None, metavar="NAME|TS50,TS90",
                   type=_thresholds_arg,
                   help="50%%/90%% contour thresholds on 2*dLLH: wilks (1.386,4.605), "
                        "ic160427a (22.2,64.2: IceCube's calibrated millipede values) or two "
                        "numbers (default: a result's own from its scan, else wilks)")


def _executor_options(p: argparse.ArgumentParser) -> None:
    """The executors' flags, generated from their declared options (``executors.cliargs``)."""
    from executors.cliargs import add_arguments

    add_arguments(p)


def _overlay_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--mark", action="append", default=[], metavar="RA,DEC[,LABEL]",
                   help="draw a labelled marker at this direction [deg] (repeatable)")
    p.add_argument("--catalog", type=Path, metavar="FILE",
                   help="catalogue of sources to draw (as for `query --catalog`)")


def _overlays(args: argparse.Namespace) -> tuple[tuple, tuple]:
    """(marks, catalogue rows) of ``--mark``/``--catalog``; bad input: UserError."""
    from skyscan_tui.overlays import MAX_MARKS, parse_mark

    if len(args.mark) > MAX_MARKS:
        raise UserError(f"{args.command}: at most {MAX_MARKS} --mark positions")
    marks = tuple(parse_mark(text) for text in args.mark)
    sources: tuple = ()
    if args.catalog is not None:
        from skyscan_tui.query import read_catalog

        sources = tuple(read_catalog(args.catalog))
    return marks, sources


def parser() -> argparse.ArgumentParser:
    """The argument parser of the ``skyscan-tui`` command and its sub-commands."""
    p = _Parser(prog="skyscan-tui", description=__doc__.split("\n\n")[0])
    p.add_argument("--version", action="version", version=f"skyscan-tui {__version__}")
    p.add_argument("--loglevel", default="WARNING",
                   choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="log level")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    s = sub.add_parser("simulate", help="write a simulated muon-track event")
    s.add_argument("-o", "--output", type=_path, required=True, metavar="EVENT",
                   help="event file to write (.json)")
    _sim_options(s)
    s.add_argument("--geometry", metavar="PATH", help="DOM table ('icecube86', 'hex' or CSV)")

    sc = sub.add_parser("scan", help="scan an event over the sky", late=_executor_options)
    sc.add_argument("event", type=_path, metavar="EVENT", nargs="?",
                    help="event file (optional with --resume)")
    _scan_options(sc, default_reco=None)
    sc.add_argument("--pulses", metavar="NAME",
                    help="pulse series of a realtime alert (default: the split series, "
                         "e.g. SplitInIcePulses; InIceDSTPulses = whole in-ice readout)")

    inf = sub.add_parser("info", help="show what an event file holds")
    inf.add_argument("event", type=Path, metavar="EVENT", help="event file")
    inf.add_argument("--json", action="store_true", help="print one JSON object")
    inf.add_argument("--pulses", metavar="NAME", help="pulse series of a realtime alert")
    inf.add_argument("--geometry", metavar="PATH",
                     help="DOM table CSV or 'icecube86' (default), for realtime alerts")

    d = sub.add_parser("demo", help="simulate an event and scan it (the default job)",
                       late=_executor_options)
    _sim_options(d)
    _scan_options(d, default_reco=None)

    pl = sub.add_parser("plot", help="draw a result: full-sky and zoomed maps (PNG, PDF)")
    pl.add_argument("result", type=Path, metavar="RESULT", help="result .npz/.json or folder")
    pl.add_argument("-o", "--output", type=Path, metavar="DIR",
                    help="folder for the pictures (default: the result's folder)")
    pl.add_argument("--format", action="append", choices=["png", "pdf"], dest="formats",
                    help="picture format (repeatable; default png and pdf)")
    _thresholds_option(pl)
    cli_products.error_floor_option(pl)
    cli_products.levels_option(pl)
    _overlay_options(pl)

    cmp_ = sub.add_parser("compare", help="are two results the same within tolerances?")
    cmp_.add_argument("a", type=Path, metavar="A", help="result .npz/.json or folder")
    cmp_.add_argument("b", type=Path, metavar="B", help="reference result")
    cmp_.add_argument("--llh-rtol", type=_finite_float, default=1e-4, metavar="R",
                      help="relative tolerance on -ln L per pixel (default 1e-4)")
    cmp_.add_argument("--area-rtol", type=_finite_float, default=1e-2, metavar="R",
                      help="relative tolerance on contour areas (default 1e-2)")
    _thresholds_option(cmp_)

    sm = sub.add_parser("summary", help="print a result's alert summary (GCN-style text)")
    sm.add_argument("result", type=Path, metavar="RESULT", help="result .npz/.json or folder")
    sm.add_argument("--json", action="store_true", help="summary.json-style output")
    _thresholds_option(sm)
    cli_products.error_floor_option(sm)
    cli_products.levels_option(sm)

    sub.add_parser("recos", help="list reconstructions")
    sub.add_parser("executors", help="list executors")

    t = sub.add_parser("tui", help="the terminal app (also: bare `skyscan-tui [EVENT]`)")
    t.add_argument("event", type=Path, nargs="?", metavar="EVENT", help="event file to open")
    t.add_argument("-j", "--jobs", type=_positive_int, metavar="N",
                   help="default worker count for the local executor (default: all cores)")
    t.add_argument("--reco", metavar="NAME", help="reco selected at start")
    t.add_argument("--results-dir", type=Path, metavar="DIR",
                   help="where scans are saved (default ./skyscan-results)")
    sh = sub.add_parser("show", help="open a finished result in the terminal app "
                                     "(prints its summary when not in a terminal)")
    sh.add_argument("result", type=Path, metavar="RESULT", help="result .npz/.json or folder")
    _overlay_options(sh)
    cli_products.add_parsers(sub, _thresholds_option)
    return p


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
                    ice_mismatch=getattr(args, "ice_mismatch", 0.0),
                    ice=getattr(args, "ice", "bulk"),
                    cascade=bool(getattr(args, "cascade", False)),
                    starting=bool(getattr(args, "starting", False)))
    return simulate_event(cfg, load_geometry(getattr(args, "geometry", None)))


def _cmd_scan(args: argparse.Namespace) -> int:
    from skyscan_tui.eventfiles import load_event

    if args.event is None:
        if args.resume is None:
            raise UserError("scan: give an EVENT file (or --resume OUTDIR)")
        from skyscan_tui.checkpoint import load_checkpoint_event

        _resume_info(args)
        return run_scan(load_checkpoint_event(args.resume), args, args.resume)
    event = load_event(args.event, pulses=args.pulses, geometry=args.geometry)
    return run_scan(event, args, Path("skyscan-results") / args.event.stem)


def _cmd_info(args: argparse.Namespace) -> int:
    from skyscan_tui.app_api import topology_check
    from skyscan_tui.eventfiles import load_event
    from skyscan_tui.eventinfo import event_info, format_event_info

    event = load_event(args.event, pulses=args.pulses, geometry=args.geometry)
    info = event_info(event)
    verdict = topology_check(event)
    info["topology"] = None if verdict is None else verdict.to_dict()
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        print(format_event_info(info))
        print("Topology: " + ("not tested (see the log)" if verdict is None
                              else verdict.text().replace("cascade-like", "CASCADE-LIKE")
                              + (": a track scan is not meaningful" if verdict.cascade_like
                                 else "")))
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    if args.resume is not None:
        from skyscan_tui.checkpoint import load_checkpoint_event

        _resume_info(args)
        return run_scan(load_checkpoint_event(args.resume), args, args.resume)
    event = _simulate(args)
    print(f"simulated event {event.event_id}: {len(event.pulses)} pulses on "
          f"{event.pulses.n_doms} DOMs, {event.total_charge:.1f} PE", file=sys.stderr)
    return run_scan(event, args, Path("skyscan-results") / f"demo-seed{args.seed}")


def _cmd_recos(args: argparse.Namespace) -> int:
    from recos import available_recos, get_reco

    for name in available_recos():
        try:
            cls = get_reco(name)
        except UserError as exc:  # declared but not importable: say why, list the rest
            print(f"{name:14s} ({exc})")
            continue
        print(f"{name:14s} {cls.description}")
        for opt in cls.OPTIONS:
            default = f"{opt.default:.6g}" if isinstance(opt.default, float) else repr(opt.default)
            print(f"{'':14s}   {opt.name}={default}: {opt.help}")
    return 0


def _cmd_executors(args: argparse.Namespace) -> int:
    from executors import available_executors, get_executor

    for name in available_executors():
        try:
            print(f"{name:10s} {get_executor(name).description}")
        except UserError as exc:  # declared but not importable: say why, list the rest
            print(f"{name:10s} ({exc})")
    return 0


def _cmd_plot(args: argparse.Namespace) -> int:
    from skyscan_tui.plot import plot_result
    from skyscan_tui.results import load_result
    from skyscan_tui.stats import parse_thresholds

    marks, sources = _overlays(args)  # bad input fails before anything is drawn
    result = load_result(args.result)
    thresholds = parse_thresholds(args.thresholds or result.meta.get("thresholds"))
    cli_products.use_error_floor(result, args)
    outdir = args.output or (args.result if args.result.is_dir() else args.result.parent)
    if outdir.exists() and not outdir.is_dir():
        raise UserError(f"{outdir}: output path exists and is not a folder")
    from skyscan_tui.contours import parse_levels

    levels = tuple(parse_levels(args.levels)) if args.levels else ()
    for path in plot_result(result, outdir, thresholds, tuple(args.formats or ("png", "pdf")),
                            levels=levels, marks=marks, sources=sources):
        print(f"wrote {path}")
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from skyscan_tui.compare import compare_results
    from skyscan_tui.results import load_result
    from skyscan_tui.stats import parse_thresholds

    thresholds = parse_thresholds(args.thresholds)
    for name in ("llh_rtol", "area_rtol"):
        if getattr(args, name) < 0:
            raise UserError(f"--{name.replace('_', '-')} must not be negative")
    a, b = load_result(args.a), load_result(args.b)
    cmp_ = compare_results(a, b, rtol={"llh": args.llh_rtol}, area_rtol=args.area_rtol,
                           thresholds=thresholds)
    print(cmp_.report())
    return 0 if cmp_.same else 1


def _cmd_summary(args: argparse.Namespace) -> int:
    from skyscan_tui.products import alert_text
    from skyscan_tui.results import load_result
    from skyscan_tui.stats import parse_thresholds

    result = load_result(args.result)
    if args.thresholds:  # else the scan's own (kept in the result file), else Wilks
        result.meta["thresholds"] = args.thresholds
    thresholds = parse_thresholds(result.meta.get("thresholds"))
    cli_products.use_error_floor(result, args)
    if args.json:
        summary = result.summary()
        cli_products.print_levels(result.stats(thresholds), args.levels, summary)
        print(json.dumps(summary, indent=2))
    else:
        print(alert_text(result, result.stats(thresholds)))
        cli_products.print_levels(result.stats(thresholds), args.levels)
    return 0


_COMMANDS = {"simulate": _cmd_simulate, "scan": _cmd_scan, "demo": _cmd_demo,
             "recos": _cmd_recos, "executors": _cmd_executors, "plot": _cmd_plot,
             "compare": _cmd_compare, "summary": _cmd_summary, "info": _cmd_info}


def _is_terminal() -> bool:
    return sys.stdin.isatty() and sys.stdout.isatty()


_NO_TTY_HINT = ("skyscan-tui: the terminal app needs an interactive terminal; "
                "try `skyscan-tui demo` or `skyscan-tui --help`")


def _cmd_tui(args: argparse.Namespace) -> int:
    if args.event is not None and not args.event.exists():
        raise UserError(f"{args.event}: no such file")
    if not _is_terminal():
        print(_NO_TTY_HINT, file=sys.stderr)
        return EXIT_USAGE
    if args.reco is not None:
        from recos import get_reco

        get_reco(args.reco)  # unknown name: one-line error before the screen opens
    from skyscan_tui.tui.app import run_app  # late import: Textual only for the app

    return run_app(event_path=args.event, jobs=args.jobs, default_reco=args.reco,
                   outdir_root=args.results_dir)


def _cmd_show(args: argparse.Namespace) -> int:
    from skyscan_tui.results import format_summary, load_result

    marks, sources = _overlays(args)
    result = load_result(args.result)  # bad file: one-line error, no screen
    if not _is_terminal():
        print(format_summary(result.summary(files={"opened": str(args.result)})))
        return 0
    from skyscan_tui.tui.app import run_app

    return run_app(result_path=args.result, marks=marks, sources=sources)


_COMMANDS["tui"] = _cmd_tui
_COMMANDS["show"] = _cmd_show
_COMMANDS.update(cli_products.COMMANDS)  # follow-up products: contours, query


def _route_bare(argv: list[str]) -> list[str]:
    """``skyscan-tui`` → ``tui``; ``skyscan-tui EVENT [...]`` → ``tui EVENT [...]``."""
    if not argv:
        return ["tui"]
    first = argv[0]
    if first not in _COMMANDS and not first.startswith("-") and (
            Path(first).suffix or Path(first).exists()):
        return ["tui", *argv]
    return argv


def main(argv: list[str] | None = None) -> int:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``); the exit code."""
    ctrl_c = CtrlC()
    ctrl_c.install()
    try:
        return _main(argv, ctrl_c)
    finally:
        ctrl_c.uninstall()
        forget_caught_interrupt()


def _main(argv: list[str] | None, ctrl_c: CtrlC) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        try:
            args = parser().parse_args(_route_bare(argv))
        except SystemExit as exc:  # --help / --version
            return int(exc.code or 0)
        logging.basicConfig(level=args.loglevel, format="%(levelname)s %(name)s: %(message)s")
        if args.command is None:  # only options given (e.g. --loglevel): the app
            args = parser().parse_args([*argv, "tui"])
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
    except Exception:
        if not ctrl_c.presses:
            raise
        # a Ctrl-C that struck a module while it was imported surfaces as another error
        # (numpy: ImportError, erfa: TypeError); it is still the Ctrl-C
        print("skyscan-tui: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
