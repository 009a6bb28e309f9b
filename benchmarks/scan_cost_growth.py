"""How the cost of a scan grows with the event's size and with the progression's depth.

(a) Simulated through-going muons of increasing energy (the toy bulk-ice detector of
``skyscan_tui.simulate``; it reaches ~1,000 cleaned DOMs at a few PeV), picked so they have
roughly 50, 100, 200, 500 and 1,000 cleaned DOMs (``prepare_track(ev, False, 1)``, the
SPE1st cleaning). Per event and reco: the cleaned DOMs, the pixel fits of a full default
scan (``8:0,64:12,512:24``), fits/s per core of that scan serially in-process (fits / CPU
seconds) and its wall time with ``local -j JOBS`` (engine run, worker start included).

(b) On the ~100-DOM event of ``benchmarks/scan_speed.py`` (30 TeV, 116 DOMs): the fit
count and ``local -j JOBS`` wall time against the depth of the progression,
``8:0,64:12,512:24`` then ``…,1024:24``, ``…,2048:24`` and ``…,4096:24``, and the cost of
the flat maps ``scan`` then writes by default (at the finest nside, at most 2048: 16x the
pixels of 512 and ~2.4 GB of peak memory at 2048).

    python -m benchmarks.scan_cost_growth [--recos spe,mpe] [--jobs 2] [--quick]

``--quick`` measures spe only, on the 50-, 200- and 1,000-DOM events and the depths up to
2048, one local scan per line (~40 s on 2 cores in 2026; the default run ~4 min). CPU times are robust on a busy machine, wall
times are not: the load average is printed with the figures.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from typing import Any

#: (target cleaned DOMs, energy [GeV], seed): the seed among 1–6 at that energy whose
#: cleaned DOM count is closest to the target (toy bulk detector, default SimConfig)
EVENTS = ((50, 3.0e3, 1), (100, 1.0e4, 3), (200, 4.0e4, 1), (500, 1.0e6, 2),
          (1000, 3.0e6, 5))
DEPTHS = ("8:0,64:12,512:24", "8:0,64:12,512:24,1024:24", "8:0,64:12,512:24,1024:24,2048:24",
          "8:0,64:12,512:24,1024:24,2048:24,4096:24")


def run_scan(ev, reco: str, executor, progression: str = "") -> tuple[float, float, int, Any]:
    """(wall [s], CPU [s] of this process, pixel fits, result) of one in-process scan."""
    from benchmarks.scan_speed import scan

    result, wall, cpu, n_fits = scan(ev, reco, executor, {}, progression)
    return wall, cpu, n_fits, result


def flat_map_cost(result) -> tuple[int, float, int]:
    """(nside, CPU [s], bytes) of the flat maps ``scan`` writes for ``result`` by default
    (at the finest scanned nside, at most 2048), written to a temporary folder."""
    from skyscan_tui.flatmap import write_flat_maps

    nside = min(max(result.nsides), 2048)
    stats = result.stats()
    with tempfile.TemporaryDirectory() as tmp:
        c0 = time.process_time()
        paths = write_flat_maps(result, stats, tmp, nside)
        return nside, time.process_time() - c0, sum(p.stat().st_size for p in paths.values())


def growth_with_doms(recos: list[str], jobs: int, targets: set[int], repeat: int) -> None:
    """Part (a): one line per event and reco."""
    from executors.local import LocalExecutor
    from executors.serial import SerialExecutor
    from recos.track.prepare import prepare_track
    from skyscan_tui.simulate import SimConfig, simulate_event

    print(f"(a) cost against event size: full default scan (8:0,64:12,512:24); "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    head = (f"{'reco':5s} {'energy GeV':>10s} {'seed':>4s} {'pulses':>7s} {'DOMs':>5s} "
            f"{'fits':>6s} {'fits/s/core':>11s} {'CPU ms/fit':>10s} "
            f"{f'local -j{jobs} wall s':>17s}")
    print(head)
    print("-" * len(head))
    events = []
    for target, energy, seed in EVENTS:
        if target in targets:
            ev = simulate_event(SimConfig(seed=seed, energy=energy))
            events.append((energy, seed, ev, prepare_track(ev, False, 1).pos.shape[0]))
    run_scan(events[0][2], recos[0], SerialExecutor(), "8:0")  # loads tables, imports
    for reco in recos:
        for energy, seed, ev, n_dom in events:
            _, cpu, n, _ = run_scan(ev, reco, SerialExecutor())
            wall = min(run_scan(ev, reco, LocalExecutor(jobs=jobs))[0] for _ in range(repeat))
            print(f"{reco:5s} {energy:10.0e} {seed:4d} {len(ev.pulses):7d} {n_dom:5d} "
                  f"{n:6d} {n / cpu:11.0f} {cpu / n * 1e3:10.3f} {wall:17.2f}", flush=True)


def growth_with_depth(recos: list[str], jobs: int, depths: tuple[str, ...],
                      repeat: int) -> None:
    """Part (b): one line per progression and reco."""
    from benchmarks.scan_speed import pick_event
    from executors.local import LocalExecutor

    ev, n_dom = pick_event()
    print(f"\n(b) cost against progression depth: event seed {ev.meta['sim_seed']} (30 TeV), "
          f"{len(ev.pulses)} pulses, {n_dom} cleaned DOMs; load average "
          f"{os.getloadavg()[0]:.1f}")
    head = (f"{'reco':5s} {'progression':40s} {'fits':>6s} "
            f"{f'local -j{jobs} wall s':>17s} {'fits/s':>7s} {'flat nside':>10s} "
            f"{'flat CPU s':>10s} {'flat MB':>7s} {'peak RSS MB':>11s}")
    print(head)
    print("-" * len(head))
    for reco in recos:
        for prog in depths:
            runs = [run_scan(ev, reco, LocalExecutor(jobs=jobs), prog) for _ in range(repeat)]
            wall, n = min(r[0] for r in runs), runs[0][2]
            flat, flat_cpu, size = flat_map_cost(runs[0][3])
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux
            print(f"{reco:5s} {prog:40s} {n:6d} {wall:17.2f} {n / wall:7.0f} {flat:10d} "
                  f"{flat_cpu:10.2f} {size / 1e6:7.1f} {rss:11.0f}", flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--recos", default=None, help="recos (default spe,mpe; --quick: spe)")
    ap.add_argument("--jobs", type=int, default=2, help="local workers (default 2)")
    ap.add_argument("--quick", action="store_true",
                    help="spe, the 50/200/1000-DOM events, depths up to nside 2048")
    ap.add_argument("--doms", default=None, metavar="N,N",
                    help="events by target DOM count, of 50,100,200,500,1000 (default all)")
    ap.add_argument("--repeat", type=int, default=None,
                    help="local scans per line, the best wall kept (default 2; --quick: 1)")
    ap.add_argument("--skip", choices=("doms", "depth"), help="leave out one part")
    args = ap.parse_args(argv)
    recos = [r.strip() for r in (args.recos or ("spe" if args.quick else "spe,mpe")).split(",")
             if r.strip()]
    known = {t for t, _, _ in EVENTS}
    if args.doms:
        try:
            targets = {int(t) for t in args.doms.split(",")}
        except ValueError:
            targets = set()
        if not targets or not targets <= known:
            print(f"scan_cost_growth: --doms takes targets of {sorted(known)}", file=sys.stderr)
            return 2
    else:
        targets = {50, 200, 1000} if args.quick else known
    repeat = max(1, args.repeat or (1 if args.quick else 2))
    t0 = time.perf_counter()
    if args.skip != "doms":
        growth_with_doms(recos, args.jobs, targets, repeat)
    if args.skip != "depth":
        growth_with_depth(recos, args.jobs, DEPTHS[:3] if args.quick else DEPTHS, repeat)
    print(f"\nfits/s/core: fits / CPU s of a serial in-process scan; local wall: engine run "
          f"with {args.jobs} worker processes, their start included (no products), best of "
          f"{repeat}; flat: the two flat .fits.gz maps `scan` writes by default (at the "
          f"finest nside, at most 2048): CPU s, MB on disk, and this process's peak RSS so "
          f"far; total {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
