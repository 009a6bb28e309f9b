"""Accuracy of the Pandel track recos against the simulation truth (issue 3).

Simulates through-going tracks (cos θ uniform, energies 1, 10, 100 TeV; seeded), scans each
with ``spe`` and ``mpe`` over the default 8/64/512 progression, with and without
``--ice-mismatch``, and prints one table: median / 90 % angle between best fit and truth,
failures (> 5°), the fraction of events whose truth lies inside the Wilks 50 % / 90 % regions
(2Δ(−log L) ≤ 1.39 / 4.61 at the pixel containing the truth), the median Wilks-90 % area
(sum of the areas of the multi-resolution pixels with 2Δ ≤ 4.61), pixels/s per core, and
the calibrated thresholds (50 % / 90 % quantiles of 2Δ at the truth, physics.md §6.4).

    python benchmarks/accuracy.py                 # quick: 4 events per energy
    python benchmarks/accuracy.py --events 50 -j 2

Scans run with the serial executor, ``-j`` of them in parallel processes (no worker start-up
per scan).
"""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ENERGIES = (1.0e3, 1.0e4, 1.0e5)  # [GeV]
WILKS_50, WILKS_90 = 1.386, 4.605


def multires_partition(levels: dict[int, np.ndarray]) -> list[tuple[int, np.ndarray]]:
    """(nside, rows) of every level without the pixels that were refined at a finer level."""
    nsides = sorted(levels)
    out = []
    for i, nside in enumerate(nsides):
        lv = levels[nside]
        keep = np.ones(len(lv), dtype=bool)
        if i + 1 < len(nsides):
            fine = nsides[i + 1]
            shift = 2 * int(np.log2(fine // nside))
            parents = np.unique(levels[fine]["ipix"] >> shift)
            keep &= ~np.isin(lv["ipix"], parents)
        out.append((nside, lv[keep]))
    return out


def region_area(levels: dict[int, np.ndarray], threshold: float) -> float:
    """Area [deg²] of the pixels with 2 (LLH - LLH_min) <= threshold (physics.md §6.2)."""
    part = multires_partition(levels)
    llh_min = min(np.nanmin(rows["llh"]) for _, rows in part if len(rows))
    area = 0.0
    for nside, rows in part:
        ts = 2.0 * (rows["llh"] - llh_min)
        n_in = int(np.sum(ts <= threshold))
        area += n_in * 4 * np.pi / (12 * nside**2) * (180 / np.pi) ** 2
    return area


def ts_at(levels: dict[int, np.ndarray], ra: float, dec: float) -> float:
    """2Δ(−log L) of the finest scanned pixel containing (ra, dec) [rad]."""
    from skyscan_tui import healpix as hp

    llh_min = min(np.nanmin(lv["llh"]) for lv in levels.values())
    for nside in sorted(levels, reverse=True):
        ipix = hp.ang2pix(nside, np.pi / 2 - dec, ra, nest=True)
        lv = levels[nside]
        j = np.searchsorted(lv["ipix"], ipix)
        if j < len(lv) and lv["ipix"][j] == ipix:
            return float(2.0 * (lv["llh"][j] - llh_min))
    return float("inf")


def run_one(job: tuple[str, float, int, float]) -> dict:
    from executors.serial import SerialExecutor
    from skyscan_tui.coords import local_to_equatorial
    from skyscan_tui.engine import ScanEngine, ScanFinished, ScanSettings
    from skyscan_tui.simulate import SimConfig, simulate_event

    reco, energy, seed, mismatch = job
    ev = simulate_event(SimConfig(seed=seed, energy=energy, ice_mismatch=mismatch))
    engine = ScanEngine(ev, ScanSettings(reco=reco), SerialExecutor())
    t0 = time.perf_counter()
    result = None
    for upd in engine.run():
        if isinstance(upd, ScanFinished):
            result = upd.result
    elapsed = time.perf_counter() - t0
    best = result.best()
    tr = ev.truth
    ra_t, dec_t = local_to_equatorial(tr.zenith, tr.azimuth, ev.mjd)
    v1 = np.array([np.cos(best.dec) * np.cos(best.ra), np.cos(best.dec) * np.sin(best.ra),
                   np.sin(best.dec)])
    v2 = np.array([np.cos(dec_t) * np.cos(ra_t), np.cos(dec_t) * np.sin(ra_t), np.sin(dec_t)])
    err = float(np.degrees(np.arccos(np.clip(v1 @ v2, -1, 1))))
    n_pix = sum(len(lv) for lv in result.levels.values())
    return {"reco": reco, "energy": energy, "seed": seed, "mismatch": mismatch, "err": err,
            "ts_true": ts_at(result.levels, float(ra_t), float(dec_t)),
            "a90": region_area(result.levels, WILKS_90), "pixels": n_pix,
            "tasks": n_pix * engine.reco.n_variations, "seconds": elapsed}


def print_table(rows: list[dict], header: str) -> None:
    print(header)
    head = (f"{'reco':5s} {'ice':>4s} {'E/TeV':>5s} {'N':>3s} {'med°':>6s} {'90%°':>6s} "
            f"{'fail>5°':>7s} {'cov50':>6s} {'cov90':>6s} {'medA90':>7s} {'pix/s':>6s} "
            f"{'k50':>6s} {'k90':>6s}")
    print(head)
    print("-" * len(head))
    keys = sorted({(r["mismatch"], r["reco"], r["energy"]) for r in rows},
                  key=lambda k: (k[0], k[1] != "spe", k[1], k[2]))
    # after each (mismatch, reco) group, a pooled row over its energies (E/TeV "all")
    groups = []
    for i, (m, reco, e) in enumerate(keys):
        groups.append((m, reco, e))
        if i + 1 == len(keys) or keys[i + 1][:2] != (m, reco):
            groups.append((m, reco, None))
    for m, reco, e in groups:
        sel = [r for r in rows if r["reco"] == reco and r["mismatch"] == m
               and (e is None or r["energy"] == e)]
        err = np.array([r["err"] for r in sel])
        ts = np.array([r["ts_true"] for r in sel])
        a90 = np.array([r["a90"] for r in sel])
        rate = sum(r["tasks"] for r in sel) / sum(r["seconds"] for r in sel)
        energy = "all" if e is None else f"{e / 1e3:.0f}"
        print(f"{reco:5s} {m:4.2f} {energy:>5s} {len(sel):3d} "
              f"{np.median(err):6.2f} {np.quantile(err, 0.9):6.2f} "
              f"{np.mean(err > 5):7.1%} {np.mean(ts <= WILKS_50):6.2f} "
              f"{np.mean(ts <= WILKS_90):6.2f} {np.median(a90):7.2f} {rate:6.0f} "
              f"{np.quantile(ts, 0.5):6.2f} {np.quantile(ts, 0.9):6.2f}")
    print("med/90%: angle best fit–truth [deg]; cov50/cov90: fraction with 2Δ(−log L) at the "
          "truth <= 1.39 / 4.61 (Wilks); k50/k90: calibrated thresholds (50/90 % quantiles "
          "of 2Δ at the truth); medA90: median Wilks-90% area [deg²]; pix/s: pixel fits "
          "per second per scan process (wall)")


def main(argv: list[str] | None = None) -> int:
    import json

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=4, help="events per energy (default 4)")
    ap.add_argument("-j", "--jobs", type=int, default=2, help="parallel scans (default 2)")
    ap.add_argument("--recos", default="spe,mpe")
    ap.add_argument("--mismatch", type=float, default=0.2,
                    help="ice mismatch of the second pass (default 0.2; 0 = skip)")
    ap.add_argument("--seed", type=int, default=1000, help="first event seed")
    ap.add_argument("--rows", type=Path, help="also append every scan's figures to this "
                    "JSON-lines file (a partial run can be tabulated with --table-only)")
    ap.add_argument("--table-only", action="store_true",
                    help="print the table from --rows without scanning")
    args = ap.parse_args(argv)
    if args.table_only:
        rows = [json.loads(line) for line in args.rows.read_text().splitlines() if line]
        n = max(1, len(rows) // max(1, len({(r["mismatch"], r["reco"], r["energy"])
                                                for r in rows})))
        print_table(rows, f"accuracy (from {args.rows}): ~{n} events per row")
        return 0
    recos = [r for r in args.recos.split(",") if r]
    mismatches = [0.0] + ([args.mismatch] if args.mismatch > 0 else [])
    # event index outermost: a partial run has every configuration equally filled
    jobs = [(reco, e, args.seed + i + 100_000 * k, m)
            for i in range(args.events) for m in mismatches for reco in recos
            for k, e in enumerate(ENERGIES)]
    t0 = time.perf_counter()
    rows = []
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        for row in pool.map(run_one, jobs, chunksize=1):
            rows.append(row)
            if args.rows:
                with open(args.rows, "a") as fh:
                    fh.write(json.dumps(row) + "\n")
    wall = time.perf_counter() - t0
    print_table(rows, f"accuracy: {args.events} events per energy, seeds from {args.seed}, "
                f"default 8/64/512 scans, {args.jobs} parallel serial scans, {wall:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
