"""Follow-up product subcommands of the CLI: ``contours``, ``flatmaps``, ``query``.

Kept apart from ``cli.py`` so the product commands grow without touching the scan flags;
``cli.parser()`` calls ``add_parsers`` and ``cli.main`` dispatches through ``COMMANDS``.
Heavy modules are imported inside the handlers so ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from skyscan_tui.errors import UserError

__all__ = ["add_parsers", "levels_option", "error_floor_option", "use_error_floor",
           "print_levels", "COMMANDS"]


def _levels_arg(text: str) -> str:
    from skyscan_tui.contours import parse_levels

    try:
        parse_levels(text)
    except UserError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def levels_option(p: argparse.ArgumentParser, default: str | None = None) -> None:
    """``--levels P,...`` [per cent] on a parser (``summary``, ``contours``, ``query``)."""
    p.add_argument("--levels", type=_levels_arg, default=default, metavar="P,...",
                   help="containment levels in per cent, e.g. 50,90,99.7; 50/90 use "
                        "--thresholds, others Wilks' k = -2 ln(1 - level)"
                        + (f" (default {default})" if default else ""))


def _error_floor_arg(text: str) -> float:
    from skyscan_tui.errorfloor import check_error_floor

    try:
        return check_error_floor(float(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of degrees") from None
    except UserError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def error_floor_option(p) -> None:
    """``--error-floor DEG`` on a parser or group (scan, demo, summary, plot, products)."""
    p.add_argument("--error-floor", type=_error_floor_arg, default=None, metavar="DEG",
                   help="systematic error floor: convolve the probability map with a "
                        "Gaussian of width DEG (sigma); regions, areas and the alert then "
                        "include it (default: the scan's own floor, else none; 0 = none)")


def use_error_floor(result, args: argparse.Namespace) -> None:
    """Record ``--error-floor`` (when given) in the result, where ``stats()`` reads it."""
    if getattr(args, "error_floor", None) is not None:
        result.meta["error_floor_deg"] = args.error_floor


def _flat_nside_arg(text: str) -> int:
    from skyscan_tui.flatmap import MAX_FLAT_NSIDE

    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if n != 0 and (n < 1 or n & (n - 1) or n > MAX_FLAT_NSIDE):
        raise argparse.ArgumentTypeError(f"{n}: use a power of two up to {MAX_FLAT_NSIDE}")
    return n


def flat_nside_option(p, scan: bool = False) -> None:
    """Add ``--flat-nside N`` and ``--multiorder-llh`` to parser ``p``.

    For ``flatmaps``, or ``scan``/``demo`` (``scan``), where 0 writes no flat maps."""
    p.add_argument("--flat-nside", type=_flat_nside_arg, metavar="N",
                   help="nside of the flat llh/probability FITS maps (default: the finest "
                        "scanned; at most 2048" + ("; 0: none" if scan else "") + ")")
    p.add_argument("--multiorder-llh", action="store_true",
                   help="also write the likelihood as a multi-order FITS map "
                        "(BASENAME.multiorder_llh.fits: UNIQ, LLH, 2DLLH)")


def _positive_number(text: str) -> float:
    import math

    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (math.isfinite(v) and v >= 0):
        raise argparse.ArgumentTypeError(f"{text!r} must be a finite number >= 0")
    return v


def print_levels(stats, text: str | None, as_json: dict | None = None) -> None:
    """The regions at ``--levels`` after a summary: lines, or a ``levels`` key in JSON."""
    from skyscan_tui.contours import parse_levels
    from skyscan_tui.stats import levels_summary

    if not text or stats is None:
        return
    rows = levels_summary(stats, parse_levels(text))
    if as_json is not None:
        as_json["levels"] = rows
        return
    for row in rows:
        lr, cr = row["likelihood"], row["credible"]
        print(f"{row['level'] * 100:g}%: 2 dLLH <= {lr['ts_threshold']:.4g} ({lr['method']}) "
              f"covers {lr['area_deg2']:.3f} sq. deg (r {lr['radius_deg']:.2f} deg, "
              f"RA +{lr['ra_err_deg'][0]:.2f} {lr['ra_err_deg'][1]:.2f}, Dec "
              f"+{lr['dec_err_deg'][0]:.2f} {lr['dec_err_deg'][1]:.2f} deg); credible "
              f"{cr['area_deg2']:.3f} sq. deg")


def add_parsers(sub, thresholds_option: Callable) -> None:
    """Add the product subcommands to ``sub`` (argparse sub-parsers)."""
    c = sub.add_parser("contours", help="contour files of a result: text, GeoJSON, MOC, ds9")
    c.add_argument("result", type=Path, metavar="RESULT", help="result .npz/.json or folder")
    levels_option(c, "50,90")
    c.add_argument("--format", default="txt,geojson", metavar="F,...", dest="formats",
                   help="any of txt, geojson, moc, ds9 (default txt,geojson)")
    c.add_argument("--credible", action="store_true",
                   help="credible regions of the probability map instead of 2*dLLH <= k")
    c.add_argument("-o", "--output", type=Path, metavar="DIR",
                   help="folder for the files (default: the result's folder)")
    thresholds_option(c)
    error_floor_option(c)

    f = sub.add_parser("flatmaps", help="flat HEALPix FITS maps of a result (llh, probability)")
    f.add_argument("result", type=Path, metavar="RESULT", help="result .npz/.json or folder")
    flat_nside_option(f)
    f.add_argument("-o", "--output", type=Path, metavar="DIR",
                   help="folder for the files (default: the result's folder)")
    thresholds_option(f)
    error_floor_option(f)

    q = sub.add_parser("query", help="the map at a direction: -log L, 2dLLH, credible level, "
                                     "regions; sources of a catalogue in the 90%% region")
    q.add_argument("result", type=Path, metavar="RESULT", help="result .npz/.json or folder")
    q.add_argument("--radec", type=float, nargs=2, metavar=("RA", "DEC"),
                   help="direction [deg, J2000]")
    q.add_argument("--catalog", type=Path, metavar="FILE",
                   help="catalogue, CSV or FITS table with columns name, ra, dec [deg] "
                        "(aliases such as Source_Name, RAJ2000, DEJ2000 too): list the "
                        "sources inside the 90%% region")
    q.add_argument("--json", action="store_true", help="print one JSON object")
    levels_option(q)
    thresholds_option(q)
    error_floor_option(q)

    n = sub.add_parser("notice", help="GCN-style JSON notice of a result (IceCube notice "
                                      "schema; scan writes it as notice.json)")
    n.add_argument("result", type=Path, metavar="RESULT", help="result .npz/.json or folder")
    n.add_argument("-o", "--output", type=Path, metavar="DIR",
                   help="folder for notice.json (default: the result's folder)")
    n.add_argument("--print", action="store_true", dest="print_only",
                   help="print the notice instead of writing notice.json")
    n.add_argument("--event-name", metavar="NAME", help="e.g. IceCube-230416A")
    n.add_argument("--nu-energy", type=_positive_number, metavar="TEV",
                   help="most probable neutrino energy [TeV], when known")
    n.add_argument("--p-astro", type=_positive_number, metavar="P",
                   help="signalness: probability of astrophysical origin (0-1), when known")
    n.add_argument("--far", type=_positive_number, metavar="HZ",
                   help="false alarm rate [Hz], when known")
    thresholds_option(n)
    error_floor_option(n)


def _load(args: argparse.Namespace):
    """(result, stats, output folder) of a product command; UserError without a fit."""
    from skyscan_tui.results import load_result

    result = load_result(args.result)
    # the floor the scan's own FITS files were made with (before --error-floor replaces it)
    args.scan_floor = float(result.meta.get("error_floor_deg") or 0.0)
    use_error_floor(result, args)
    stats = result.stats(args.thresholds)  # 50/90 % regions use these thresholds
    if stats is None:
        raise UserError(f"{args.result}: no pixel has a finite likelihood, so no map")
    outdir = args.output or (args.result if args.result.is_dir() else args.result.parent)
    if outdir.exists() and not outdir.is_dir():
        raise UserError(f"{outdir}: output path exists and is not a folder")
    return result, stats, outdir


def _cmd_flatmaps(args: argparse.Namespace) -> int:
    from skyscan_tui.flatmap import write_flat_maps

    result, stats, outdir = _load(args)
    paths = write_flat_maps(result, stats, outdir, args.flat_nside)
    if args.multiorder_llh:
        from skyscan_tui.products import write_multiorder_llh

        paths.update(write_multiorder_llh(result, stats, outdir, result.basename()))
    for path in paths.values():
        print(f"wrote {path}")
    return 0


def _cmd_contours(args: argparse.Namespace) -> int:
    from skyscan_tui.contours import FORMATS, parse_levels, write_contours

    formats = tuple(f.strip().lower() for f in args.formats.split(",") if f.strip())
    bad = sorted(set(formats) - set(FORMATS))
    if bad or not formats:
        raise UserError(f"contours: --format {args.formats!r}: use any of {', '.join(FORMATS)}")
    result, stats, outdir = _load(args)
    paths = write_contours(result, stats, outdir, parse_levels(args.levels), formats,
                           kind="credible" if args.credible else "likelihood")
    for path in paths.values():
        print(f"wrote {path}")
    return 0


def _cmd_query(args: argparse.Namespace) -> int:
    import json

    from skyscan_tui.contours import parse_levels
    from skyscan_tui.query import catalog_query, format_query, point_query, read_catalog

    if args.radec is None and args.catalog is None:
        raise UserError("query: give --radec RA DEC and/or --catalog FILE.csv")
    sources = read_catalog(args.catalog) if args.catalog is not None else None
    args.output = None
    _result, stats, _outdir = _load(args)
    levels = sorted({0.5, 0.9, *parse_levels(args.levels)})
    out: dict = {}
    if args.radec is not None:
        out["point"] = point_query(stats, args.radec[0], args.radec[1], levels)
    if sources is not None:
        out["catalog"] = {"file": str(args.catalog), "n_sources": len(sources),
                          "inside_90": catalog_query(stats, sources, 0.9)}
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    if "point" in out:
        print(format_query(out["point"]))
    if "catalog" in out:
        inside = out["catalog"]["inside_90"]
        print(f"{len(inside)} of {len(sources)} sources inside the 90% region")
        for s in inside:
            print(f"  {s['name']}: RA {s['ra_deg']:.4f} Dec {s['dec_deg']:+.4f} deg, "
                  f"2 dLLH {s['ts']:.3f} (Wilks {s['likelihood_level'] * 100:.1f}%), "
                  f"credible {s['credible_level'] * 100:.1f}%, {s['offset_deg']:.3f} deg "
                  "from the best fit")
    return 0


def _cmd_notice(args: argparse.Namespace) -> int:
    import json

    from skyscan_tui.notice import check_extra, notice, probability_file
    from skyscan_tui.products import fits_bytes, write_notice

    extra = check_extra(args.nu_energy, args.p_astro, args.far)
    if args.event_name is not None and not (0 < len(args.event_name.strip()) <= 64
                                            and args.event_name.isprintable()):
        raise UserError("notice: --event-name must be 1 to 64 printable characters")
    result, stats, outdir = _load(args)
    base = result.basename()
    srcdir = args.result if args.result.is_dir() else args.result.parent
    healpix = probability_file(srcdir, base)
    if healpix is None or args.scan_floor != stats.error_floor_deg:
        # no FITS of this map yet (other floor, or none written): write the multi-order one
        tag = f".floor_{stats.error_floor_deg:g}deg" if stats.error_floor_deg else ""
        healpix = outdir / f"{base}{tag}.multiorder.fits"
        if not args.print_only:
            from skyscan_tui.fileio import atomic_write_bytes

            outdir.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(healpix, fits_bytes(result, stats))
            print(f"wrote {healpix}")
    kw = {"event_name": args.event_name.strip() if args.event_name else None, "extra": extra}
    if args.print_only:
        print(json.dumps(notice(result, stats, healpix, outdir, **kw), indent=2))
        return 0
    outdir.mkdir(parents=True, exist_ok=True)
    for path in write_notice(result, stats, outdir, base, healpix, **kw).values():
        print(f"wrote {path}")
    return 0


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "contours": _cmd_contours, "flatmaps": _cmd_flatmaps, "query": _cmd_query,
    "notice": _cmd_notice}
