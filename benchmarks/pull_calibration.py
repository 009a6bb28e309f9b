"""Fit the pull-correction curves of ``recos/track/pull.py`` from simulated tracks.

Scans tracks (matched model, energies log-uniform over 1–100 TeV, seeds from 800000: disjoint
from ``benchmarks/accuracy.py``'s) with the plain likelihoods (``pull=none``) of ``spe`` and
``mpe``, takes 2Δ(−log L) at the true direction as ``accuracy.py`` does, and fits per
likelihood the curve log p²(M), M = cleaned DOMs with >= 2 photons, linear in log M between
the knots of ``recos.track.pull.PULL_KNOTS``, such that 90 % of the tracks at every brightness
have 2Δ / p² <= 4.605, the Wilks-90 % threshold (quantile regression). Prints the fitted
values as entries of the package's table ``recos/track/data/pull_curves.json`` (one per
likelihood, with the command and seeds; ``--write-table`` puts them into it, replacing the
entries of the same likelihood and calibration), and the Wilks coverage per brightness bin
before and after the correction.

    python -m benchmarks.pull_calibration --events 400 --rows pull.jsonl   # ~35 min, 2 cores
    python -m benchmarks.pull_calibration --rows pull.jsonl --table-only
    # the real-detector path: realistic simulation, layered-ice fits (seeds 900000…)
    python -m benchmarks.pull_calibration --ice spice_mie --reco-opt ice=layered \
        --seed 900000 --events 160 --rows real.jsonl --write-table recos/track/data/pull_curves.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from benchmarks.accuracy import WILKS_50, WILKS_90, read_rows, scan_all
from recos.track.pull import PULL_KNOTS, curve_log_pull2, load_table, write_table

KIND = {"spe": "SPE1st", "mpe": "MPE"}
M_BINS = (0, 10, 20, 30, 50, 100, 200, 100_000)


def log_uniform_energy(seed: int) -> float:
    """Energy [GeV] log-uniform over 1–100 TeV, from its own stream of ``seed``."""
    return float(10.0 ** (3.0 + 2.0 * np.random.default_rng([seed, 3]).random()))


def fit_curve(n_bright: np.ndarray, ts: np.ndarray, quantile: float = 0.9,
              shape: str = "knots") -> np.ndarray:
    """log p² at PULL_KNOTS such that 2Δ / p² <= 4.605 for ``quantile`` of the tracks at every
    brightness: a linear quantile regression of log 2Δ on the curve's hat functions (pinball
    loss, solved as a linear programme). A failed fit far from the truth weighs no more than
    any other track above the quantile."""
    from scipy.optimize import linprog

    # the curve is linear in its knot values: its columns are the curves of unit values
    basis = np.stack([curve_log_pull2(unit, n_bright) for unit in np.eye(len(PULL_KNOTS))],
                     axis=1)
    # shape "linear": the knots' values on a line in log M (2 parameters), for a sample too
    # small to fit 4 free knots at the 90 % quantile
    xk = np.log(PULL_KNOTS) - np.log(PULL_KNOTS).mean()
    to_knots = np.eye(len(PULL_KNOTS)) if shape == "knots" else np.stack(
        [np.ones_like(xk), xk], axis=1)
    basis = basis @ to_knots
    y = np.log(np.maximum(ts, 1e-3)) - np.log(WILKS_90)
    n, k = basis.shape
    # y = basis θ + u⁺ − u⁻, minimise Σ q u⁺ + (1 − q) u⁻
    cost = np.concatenate([np.zeros(k), np.full(n, quantile), np.full(n, 1.0 - quantile)])
    res = linprog(cost, A_eq=np.hstack([basis, np.eye(n), -np.eye(n)]), b_eq=y,
                  bounds=[(None, None)] * k + [(0, None)] * (2 * n), method="highs")
    if not res.success:
        raise RuntimeError(f"quantile regression failed: {res.message}")
    return to_knots @ res.x[:k]


def table_entries(rows: list[dict], curves: dict[str, np.ndarray], calibration: str,
                  command: str, ice: str, options: str) -> list[dict]:
    """The fitted curves as entries of the pull-curve table (``recos.track.pull``)."""
    out = []
    for reco, values in curves.items():
        seeds = sorted({r["seed"] for r in rows if r["reco"] == reco})
        sim = ("realistic detector (simulate --ice spice_mie)" if ice == "spice_mie"
               else "matched bulk-ice model")
        out.append({"likelihood": KIND[reco], "calibration": calibration,
                    "log_pull2": [round(float(v), 3) for v in values],
                    "tracks": len(seeds), "seeds": f"{seeds[0]}-{seeds[-1]}",
                    "fitted_by": "benchmarks/pull_calibration.py",
                    "command": command,
                    "simulation": f"{sim}, energies log-uniform 1-100 TeV",
                    "reco_options": options})
    return out


def merge_entries(table: dict, entries: list[dict]) -> dict:
    """``table`` with ``entries`` replacing those of the same (likelihood, calibration)."""
    keys = {(e["likelihood"], e["calibration"]) for e in entries}
    kept = [c for c in table["curves"] if (c["likelihood"], c["calibration"]) not in keys]
    curves = sorted(kept + entries, key=lambda c: (c["calibration"], c["likelihood"]))
    return {**table, "knots": list(PULL_KNOTS), "curves": curves}


def coverage_table(rows: list[dict], curves: dict[str, np.ndarray]) -> None:
    print(f"{'reco':4s} {'M':>9s} {'N':>4s} {'cov50':>6s} {'cov90':>6s} {'k90':>6s}   "
          f"{'p':>5s} {'cov50':>6s} {'cov90':>6s}   (plain, then pull-corrected)")
    for reco in curves:
        sel = [r for r in rows if r["reco"] == reco]
        m = np.array([r["n_bright"] for r in sel], float)
        ts = np.array([r["ts_true"] for r in sel])
        p2 = np.exp(curve_log_pull2(curves[reco], m))
        for lo, hi in [*zip(M_BINS[:-1], M_BINS[1:], strict=True), (0, 100_000)]:
            b = (m >= lo) & (m < hi)
            if not b.any():
                continue
            label = "all" if (lo, hi) == (0, 100_000) else f"{lo}-{hi - 1}" if hi < 1e5 \
                else f">={lo}"
            tb, pb = ts[b], p2[b]
            print(f"{reco:4s} {label:>9s} {b.sum():4d} {np.mean(tb <= WILKS_50):6.2f} "
                  f"{np.mean(tb <= WILKS_90):6.2f} {np.quantile(tb, 0.9):6.2f}   "
                  f"{np.median(np.sqrt(pb)):5.2f} {np.mean(tb / pb <= WILKS_50):6.2f} "
                  f"{np.mean(tb / pb <= WILKS_90):6.2f}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=4, help="tracks (default 4)")
    ap.add_argument("-j", "--jobs", type=int, default=2, help="parallel scans (default 2)")
    ap.add_argument("--seed", type=int, default=800_000, help="first event seed")
    ap.add_argument("--rows", type=Path, help="append every scan's figures to this JSON-lines "
                    "file; with --table-only, fit from it without scanning")
    ap.add_argument("--table-only", action="store_true")
    ap.add_argument("--ice", choices=("bulk", "spice_mie"), default="bulk",
                    help="simulated detector: bulk (the matched model, default) or spice_mie "
                    "(the realistic one of simulate --ice spice_mie)")
    ap.add_argument("--reco-opt", action="append", default=[], metavar="NAME=VALUE",
                    help="reco option for every scan besides pull=none (repeatable), e.g. "
                    "ice=layered")
    ap.add_argument("--calibration", choices=("matched", "realistic"),
                    help="the table entries' calibration (default: realistic with --ice "
                    "spice_mie, else matched)")
    ap.add_argument("--shape", choices=("knots", "linear"), default="knots",
                    help="knots: a free log p² at each knot (default); linear: log p² linear "
                    "in log M between the end knots (2 parameters, for small samples)")
    ap.add_argument("--write-table", type=Path, metavar="JSON",
                    help="put the fitted curves into this pull-curve table")
    args = ap.parse_args(argv)
    options = tuple(tuple(kv.split("=", 1)) for kv in args.reco_opt)
    if any(len(kv) != 2 or kv[0] == "pull" for kv in options):
        ap.error("--reco-opt takes NAME=VALUE (not pull: the fit needs pull=none)")
    if args.table_only:
        if args.rows is None or not args.rows.is_file():
            ap.error("--table-only needs --rows FILE of an earlier run")
        rows = read_rows(args.rows)
    else:
        jobs = [(reco, log_uniform_energy(args.seed + i), args.seed + i, 0.0,
                 (*options, ("pull", "none")), "log-uniform", args.ice)
                for i in range(args.events) for reco in KIND]
        t0 = time.perf_counter()
        rows = scan_all(jobs, args.jobs, args.rows)
        print(f"{len(rows)} scans in {time.perf_counter() - t0:.0f} s")
    curves = {}
    for reco in KIND:
        sel = [r for r in rows if r["reco"] == reco]
        if not sel:
            continue
        curves[reco] = fit_curve(np.array([r["n_bright"] for r in sel], float),
                                 np.array([r["ts_true"] for r in sel]), shape=args.shape)
    calibration = args.calibration or ("realistic" if args.ice == "spice_mie" else "matched")
    command = ("python -m benchmarks.pull_calibration"
               + (f" --ice {args.ice}" if args.ice != "bulk" else "")
               + "".join(f" --reco-opt {k}={v}" for k, v in options)
               + (f" --shape {args.shape}" if args.shape != "knots" else "")
               + f" --seed {args.seed} --events "
               + str(max(len({r['seed'] for r in rows if r['reco'] == k}) for k in curves)))
    entries = table_entries(rows, curves, calibration, command, args.ice,
                            ",".join(f"{k}={v}" for k, v in (*options, ("pull", "none"))))
    for e in entries:
        print(json.dumps(e))
    if args.write_table:
        base = (load_table(args.write_table) if args.write_table.is_file()
                else {"knots": list(PULL_KNOTS), "curves": []})
        write_table(merge_entries(base, entries), args.write_table)
        print(f"wrote {len(entries)} curves into {args.write_table}")
    coverage_table(rows, curves)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
