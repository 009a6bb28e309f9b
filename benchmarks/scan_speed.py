"""Scan speed of the Pandel track recos (issue 3).

On a simulated event with ~100 cleaned DOMs and ~1,000 pulses it prints, for each reco:
pixels/s per core (a serial full default scan, CPU time), the wall time of a full default
8/64/512 scan with ``local -j 2`` (worker start-up included), and the same pixels' fits
through a plain per-pixel ``scipy.optimize.minimize`` (Nelder–Mead, same likelihood, same
start points, same tolerances) as a ratio.

    python benchmarks/scan_speed.py [--recos spe,mpe] [--jobs 2] [--ref-pixels 48]

Times are process CPU time where it says "cpu" (robust on a busy machine) and wall time
otherwise.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def pick_event():
    """Of seeds 1–60 at 30 TeV with 800–1,200 pulses, the event with the fewest cleaned DOMs
    (the toy detector gives ~100–200 DOMs per 1,000 pulses)."""
    from recos._track import prepare_track
    from skyscan_tui.simulate import SimConfig, simulate_event

    best = None
    for seed in range(1, 61):
        ev = simulate_event(SimConfig(seed=seed, energy=3.0e4))
        if not 800 <= len(ev.pulses) <= 1200:
            continue
        n = prepare_track(ev, False, 1).pos.shape[0]
        if best is None or n < best[1]:
            best = (ev, n)
    return best


def scan(ev, reco: str, executor, opts: dict) -> tuple[object, float, float, int]:
    from skyscan_tui.engine import ScanEngine, ScanFinished, ScanSettings

    engine = ScanEngine(ev, ScanSettings(reco=reco, reco_options=opts), executor)
    w0, c0 = time.perf_counter(), time.process_time()
    result = None
    for upd in engine.run():
        if isinstance(upd, ScanFinished):
            result = upd.result
    n_tasks = sum(len(lv) for lv in result.levels.values()) * engine.reco.n_variations
    return result, time.perf_counter() - w0, time.process_time() - c0, n_tasks


def reference_ratio(ev, reco_name: str, n_pix: int, opts: dict
                    ) -> tuple[float, float, float]:
    """(batched s/pixel, scipy s/pixel, ratio) on one batch of n_pix first-round and one of
    n_pix refined pixels (random directions)."""
    from scipy.optimize import minimize

    from recos import get_reco
    from skyscan_tui.tasks import TaskBatch

    reco = get_reco(reco_name)(**opts)
    prep = reco.prepare(ev)
    rng = np.random.default_rng(5)
    zen = np.arccos(rng.uniform(-1, 1, n_pix))
    azi = rng.uniform(0, 2 * np.pi, n_pix)
    seeds = np.tile(prep.seed, (n_pix, 1))
    zero = np.zeros(n_pix, dtype=np.int32)
    batches = [TaskBatch(0, rnd, zero + 8, np.arange(n_pix), zero, zen, azi, seeds)
               for rnd in (0, 1)]
    reco.fit_pixels(prep, batches[0].select(np.arange(1), 0))  # builds the table
    c0 = time.process_time()
    for b in batches:
        reco.fit_pixels(prep, b)
    t_batched = (time.process_time() - c0) / (2 * n_pix)

    # reference: one scipy Nelder–Mead per pixel over the same objective and passes
    c0 = time.process_time()
    for b in batches:
        obj, start = reco.objective(prep, b)
        first = b.round == 0
        n_iter = reco.options["iterations"]
        for i in range(len(b)):
            row = np.array([i])

            def f(x, row=row, obj=obj):
                return float(obj(np.asarray(x)[None, None, :], row)[0, 0])

            x0 = start[i].copy()
            if first:  # the same 5×5 grid start
                g = np.arange(-60.0, 61.0, 30.0)
                ga, gb = np.meshgrid(g, g, indexing="ij")
                a = x0[0] + ga.ravel()[None, :]
                bb = x0[1] + gb.ravel()[None, :]
                t0 = obj.quantile_t0(a, bb, row)
                trial = np.stack([a, bb, t0], axis=-1)
                shifts = reco._T0_SHIFTS
                trial = np.concatenate([trial + np.array([0.0, 0.0, s]) for s in shifts],
                                       axis=1)
                x0 = trial[0, int(np.argmin(obj(trial, row)[0]))]
                passes = (((15, 15, 20), n_iter), ((5, 5, 5), n_iter // 2))
            else:
                passes = (((5, 5, 5), n_iter // 2), ((2, 2, 2), n_iter // 4))
            for step, iters in passes:
                simplex = np.vstack([x0, x0 + np.diag(step)])
                res = minimize(f, x0, method="Nelder-Mead",
                               options={"initial_simplex": simplex, "maxiter": iters,
                                        "xatol": 0.05, "fatol": 1e-4})
                x0 = res.x
    t_ref = (time.process_time() - c0) / (2 * n_pix)
    return t_batched, t_ref, t_ref / t_batched


def cli_wall(ev, reco: str, jobs: int, opts: dict) -> float:
    from skyscan_tui.events import save_event

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ev.json"
        save_event(ev, path)
        env = dict(os.environ, PYTHONPATH=str(REPO))
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "skyscan_tui", "scan", str(path), "--reco", reco,
                        "-j", str(jobs), "-o", str(Path(tmp) / "out"), "--progress", "none",
                        *[f"--reco-opt={k}={v}" for k, v in opts.items()]],
                       check=True, env=env, capture_output=True)
        return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--recos", default="spe,mpe")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--reco-opt", action="append", default=[], metavar="KEY=VALUE",
                    help="reco option for every reco (e.g. kernel=numba)")
    ap.add_argument("--ref-pixels", type=int, default=0,
                    help="pixels per round type in the scipy comparison (default: the "
                    "reco's batch size, as the engine batches them)")
    args = ap.parse_args(argv)
    from executors.local import LocalExecutor
    from executors.serial import SerialExecutor
    from recos import get_reco

    opts = dict(p.split("=", 1) for p in args.reco_opt)
    ev, n_clean = pick_event()
    load = os.getloadavg()[0]
    print(f"event: seed {ev.meta['sim_seed']}, {len(ev.pulses)} pulses on "
          f"{ev.pulses.n_doms} DOMs ({n_clean} after cleaning); load average {load:.1f} on "
          f"{os.cpu_count()} cores; reco options {opts or 'defaults'}")
    head = (f"{'reco':6s} {'tasks':>6s} {'pix/s/core':>10s} {'serial cpu s':>12s} "
            f"{f'local -j{args.jobs} wall s':>17s} {'CLI wall s':>10s} "
            f"{'scipy ms/pix':>12s} {'ours ms/pix':>11s} {'ratio':>6s}")
    print(head)
    print("-" * len(head))
    for reco in [r for r in args.recos.split(",") if r]:
        _, _, cpu, n_tasks = scan(ev, reco, SerialExecutor(), opts)
        _, wall, _, _ = scan(ev, reco, LocalExecutor(jobs=args.jobs), opts)
        cli = cli_wall(ev, reco, args.jobs, opts)
        n_ref = args.ref_pixels or get_reco(reco).preferred_batch
        t_b, t_r, ratio = reference_ratio(ev, reco, n_ref, opts)
        print(f"{reco:6s} {n_tasks:6d} {n_tasks / cpu:10.0f} {cpu:12.2f} {wall:17.2f} "
              f"{cli:10.2f} {t_r * 1e3:12.2f} {t_b * 1e3:11.3f} {ratio:6.1f}")
    print("pix/s/core: tasks / CPU seconds of a serial in-process scan (table build "
          "included); local wall: engine run incl. worker start-up; CLI wall: "
          "`python -m skyscan_tui scan` end to end; ratio: per-pixel scipy.optimize.minimize "
          "(Nelder-Mead, same likelihood and passes) CPU time / ours, on one batch of "
          "first-round and one of refined pixels of the reco's batch size")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
