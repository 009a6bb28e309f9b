"""Scan speed of the Pandel track recos (issues 3 and 21).

On a simulated event with ~100 cleaned DOMs and ~1,000 pulses it prints, for each reco:
pixels/s per core (a serial full default scan, CPU time) with the numpy reference and with
the compiled kernel and their ratio, the wall time of a full default 8/64/512 scan with
``local -j 2`` (worker start-up included) and its fits/s, and the same pixels' fits
through a plain per-pixel ``scipy.optimize.minimize`` (Nelder–Mead, same likelihood, same
candidate starts, simplices and tolerances) as a ratio (see :func:`reference_ratio`).

    python -m benchmarks.scan_speed [--recos spe,mpe] [--jobs 2] [--ref-pixels 128]
    python -m benchmarks.scan_speed --serial-only --reco-opt ice=layered   # layered ice cost

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


def pick_event():
    """Of seeds 1–60 at 30 TeV with 800–1,200 pulses, the event with the fewest cleaned DOMs
    (the toy detector gives ~100–200 DOMs per 1,000 pulses)."""
    from recos.track.prepare import prepare_track
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


def scan(ev, reco: str, executor, opts: dict, progression: str = ""
         ) -> tuple[object, float, float, int]:
    """(result, wall [s], CPU [s] of this process, pixel fits) of one in-process scan.

    ``progression``: e.g. ``8:0,64:12`` (default: the default progression)."""
    from skyscan_tui.engine import ScanEngine, ScanFinished, ScanSettings
    from skyscan_tui.sky import DEFAULT_PROGRESSION, parse_progression

    prog = parse_progression(progression) if progression else DEFAULT_PROGRESSION
    engine = ScanEngine(ev, ScanSettings(reco=reco, reco_options=opts, progression=prog),
                        executor)
    w0, c0 = time.perf_counter(), time.process_time()
    result = None
    try:
        for upd in engine.run():
            if isinstance(upd, ScanFinished):
                result = upd.result
    finally:
        engine.close()
    n_tasks = sum(len(lv) for lv in result.levels.values()) * engine.reco.n_variations
    return result, time.perf_counter() - w0, time.process_time() - c0, n_tasks


def reference_ratio(ev, reco_name: str, n_pix: int, opts: dict) -> dict[str, float]:
    """Per-pixel CPU time of our batched fits and of plain per-pixel scipy fits, on one batch
    of n_pix first-round and one of n_pix refined pixels (random directions).

    The reference runs the same algorithm pixel by pixel: the same candidate starts (the
    same two of them start descents), then ``scipy.optimize.minimize`` (Nelder–Mead) with the same
    initial simplices, iterations and tolerances, over a scalar function of (a, b, t0) that
    evaluates the same numpy likelihood for that one pixel. "plain" evaluates every
    candidate start with that scalar function too; "vec" gives it each pixel's candidates in
    one vectorised call (a half-way reference). For MPE both first fit the SPE objective and
    add its optimum to the candidates, as the reco does.
    """
    from scipy.optimize import minimize

    from recos import get_reco
    from recos.track.objective import TrackObjective
    from recos.track.starts import descent_starts
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
    points = [0]
    call = TrackObjective.__call__

    def counting(self, x, rows):
        points[0] += x.shape[0] * x.shape[1]
        return call(self, x, rows)

    TrackObjective.__call__ = counting
    try:
        c0 = time.process_time()
        for b in batches:
            reco.fit_pixels(prep, b)
        out = {"ours": (time.process_time() - c0) / (2 * n_pix),
               "ours_evals": points[0] / (2 * n_pix)}
    finally:
        TrackObjective.__call__ = call

    def descend(obj, cand_i: np.ndarray, row: np.ndarray, passes, mode: str
                ) -> tuple[np.ndarray, int]:
        """One pixel: scipy Nelder-Mead passes from the reco's two candidate starts, the
        better end point kept."""
        def f(x):
            return float(obj(np.asarray(x, dtype=float)[None, None, :], row)[0, 0])

        fc = (np.array([f(c) for c in cand_i]) if mode == "plain"
              else obj(cand_i[None], row)[0])
        n = len(fc)
        ends = []
        for k in descent_starts(cand_i[None], fc[None])[0]:
            x0, f0 = cand_i[k], np.inf
            for step, iters in passes:
                simplex = np.vstack([x0, x0 + np.diag(step)])
                res = minimize(f, x0, method="Nelder-Mead",
                               options={"initial_simplex": simplex, "maxiter": iters,
                                        "xatol": 0.1, "fatol": 1e-3})
                x0, f0 = res.x, res.fun
                n += res.nfev
            ends.append((f0, x0))
        return min(ends, key=lambda e: e[0])[1], n

    for mode in ("plain", "vec"):
        n_eval = 0
        c0 = time.process_time()
        for b in batches:
            obj, start = reco.objective(prep, b)
            rows = np.arange(len(b))
            cand, passes = reco.starts(prep, obj, start, b, rows)
            # as fit_params: the SPE optimum joins MPE's candidates
            spe = obj.as_spe() if obj.mpe else None
            for i in range(len(b)):
                row = np.array([i])
                cand_i = cand[i]
                if spe is not None:
                    x_spe, n = descend(spe, cand_i, row, passes[:1], mode)
                    n_eval += n
                    cand_i = np.vstack([cand_i, x_spe])
                _, n = descend(obj, cand_i, row, passes, mode)
                n_eval += n
        out[mode] = (time.process_time() - c0) / (2 * n_pix)
        out[f"{mode}_evals"] = n_eval / (2 * n_pix)
    return out


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
    ap.add_argument("--serial-only", action="store_true",
                    help="only the serial scan's pixels/s and CPU ms per pixel (quick; e.g. "
                    "to compare reco options such as ice=layered)")
    args = ap.parse_args(argv)
    from executors.local import LocalExecutor
    from executors.serial import SerialExecutor
    from recos import get_reco

    opts = dict(p.split("=", 1) for p in args.reco_opt)
    speeds: dict[str, float] = {}
    ev, n_clean = pick_event()
    load = os.getloadavg()[0]
    print(f"event: seed {ev.meta['sim_seed']}, {len(ev.pulses)} pulses on "
          f"{ev.pulses.n_doms} DOMs ({n_clean} after cleaning); load average {load:.1f} on "
          f"{os.cpu_count()} cores; reco options {opts or 'defaults'}")
    head = (f"{'reco':6s} {'tasks':>6s} {'pix/s/core':>10s} {'serial cpu s':>12s} "
            f"{f'-j{args.jobs} wall s':>10s} {'fits/s':>6s} {'CLI wall s':>10s} "
            f"{'ours ms/pix':>11s} {'plain ms/pix':>12s} {'ratio':>6s} "
            f"{'vec ms/pix':>10s} {'ratio':>6s} {'evals o/p':>10s}")
    if args.serial_only:
        head = f"{'reco':6s} {'tasks':>6s} {'pix/s/core':>10s} {'serial cpu s':>12s}"
    print(head)
    print("-" * len(head))
    for reco in [r for r in args.recos.split(",") if r]:
        if "kernel" not in opts:  # the reference and the compiled fits, in the same run
            # compiled twice: the first scan of a process includes loading the machine code
            for kernel in ("compiled", "numpy", "compiled"):
                _, _, cpu_k, n_k = scan(ev, reco, SerialExecutor(), dict(opts, kernel=kernel))
                speeds.setdefault(f"first {kernel}", n_k / cpu_k)
                speeds[kernel] = n_k / cpu_k
            print(f"{reco:6s} serial pix/s/core: numpy {speeds['numpy']:.0f}, compiled "
                  f"{speeds['compiled']:.0f} (x{speeds['compiled'] / speeds['numpy']:.2f}; "
                  f"{speeds['first compiled']:.0f} in a process's first scan); 2 cores: "
                  f"{2 * speeds['compiled']:.0f} fits/s")
            speeds.clear()
        _, _, cpu, n_tasks = scan(ev, reco, SerialExecutor(), opts)
        if args.serial_only:
            print(f"{reco:6s} {n_tasks:6d} {n_tasks / cpu:10.0f} {cpu:12.2f}   "
                  f"({cpu / n_tasks * 1e3:.3f} CPU ms per pixel)")
            continue
        _, wall, _, _ = scan(ev, reco, LocalExecutor(jobs=args.jobs), opts)
        cli = cli_wall(ev, reco, args.jobs, opts)
        n_ref = args.ref_pixels or get_reco(reco).preferred_batch
        r = reference_ratio(ev, reco, n_ref, opts)
        print(f"{reco:6s} {n_tasks:6d} {n_tasks / cpu:10.0f} {cpu:12.2f} {wall:10.2f} "
              f"{n_tasks / wall:6.0f} "
              f"{cli:10.2f} {r['ours'] * 1e3:11.3f} {r['plain'] * 1e3:12.2f} "
              f"{r['plain'] / r['ours']:6.1f} {r['vec'] * 1e3:10.2f} "
              f"{r['vec'] / r['ours']:6.1f} {r['ours_evals']:4.0f}/{r['plain_evals']:<4.0f}")
    print("pix/s/core: tasks / CPU seconds of a serial in-process scan (table build and "
          "loading the compiled code included); -j wall: engine run with the local executor "
          "incl. worker start-up, fits/s: tasks / that wall; CLI wall: "
          "`python -m skyscan_tui scan` end to end; ours / plain / vec: CPU ms per pixel on one "
          "batch of first-round and one of refined pixels (the reco's batch size): batched "
          "(ours), per-pixel scipy.optimize.minimize Nelder-Mead over a scalar function of "
          "the same likelihood with the same starts, simplices and tolerances (plain; vec: "
          "each pixel's candidate starts in one vectorised call); ratio: reference / ours; "
          "evals o/p: likelihood points per pixel, ours / plain")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
