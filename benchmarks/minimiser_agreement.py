"""Compiled fits against the numpy reference, pixel by pixel, on the same tasks (issue 21).

For each event and reco a full default scan runs with ``kernel=numpy`` (serial executor);
every task batch it fitted is then fitted again by both kernels, so both see exactly the
same pixels, seeds and starts. Printed per event, reco and round: the fraction of pixels
where the compiled fit reaches the same or a lower −log L (within 1e-3), the largest excess
and the median difference, and both kernels' CPU ms per pixel and likelihood evaluations per
pixel. Events: simulated tracks (seeds and energies below) and, with ``--real``, the track
alerts in ``tests/data``.

    python -m benchmarks.minimiser_agreement [--recos spe,mpe] [--real]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
#: (simulation seed, energy [GeV]): the scan_speed event first, then 1, 10 and 100 TeV
SIM_EVENTS = ((14, 3.0e4), (101, 1.0e3), (102, 1.0e4), (103, 1.0e5))
REAL_EVENTS = ("run00136766-evt000007637140-GOLD.pkl", "run00136662-evt000035405932-BRONZE.pkl",
               "138632_31747601.json")
TOL = 1e-3


def _record(event, name: str, opts: dict) -> list:
    """The (batch, llh) of every task batch a numpy scan of ``event`` fitted."""
    from executors.serial import SerialExecutor
    from recos.track.reco import TrackReco
    from skyscan_tui.engine import ScanEngine, ScanSettings

    seen = []
    fit = TrackReco.fit_pixels

    def spy(self, prepared, batch):
        out = fit(self, prepared, batch)
        seen.append(batch)
        return out

    TrackReco.fit_pixels = spy
    try:
        engine = ScanEngine(event, ScanSettings(reco=name, reco_options=dict(opts,
                                                                             kernel="numpy")),
                            SerialExecutor())
        for _ in engine.run():
            pass
    finally:
        TrackReco.fit_pixels = fit
    return seen


def _fit_all(reco, prepared, batches) -> tuple[list[np.ndarray], float, float]:
    """Each batch's llh, CPU seconds, and likelihood evaluations (points) in all."""
    from recos.track.objective import TrackObjective

    points = [0]
    call, minimise = TrackObjective.__call__, TrackObjective.minimise

    def counting_call(self, x, rows):
        points[0] += x.shape[0] * x.shape[1]
        return call(self, x, rows)

    def counting_minimise(self, *args, **kwargs):
        x, f, nev = minimise(self, *args, **kwargs)
        points[0] += int(nev.sum())
        return x, f, nev

    TrackObjective.__call__, TrackObjective.minimise = counting_call, counting_minimise
    try:
        c0 = time.process_time()
        llh = [reco.fit_pixels(prepared, b)["llh"] for b in batches]
        return llh, time.process_time() - c0, points[0]
    finally:
        TrackObjective.__call__, TrackObjective.minimise = call, minimise


def compare(label: str, event, name: str, opts: dict) -> dict:
    """Print and return the agreement figures of one event and reco."""
    from recos import get_reco

    batches = _record(event, name, opts)
    ref = get_reco(name)(**dict(opts, kernel="numpy"))
    fast = get_reco(name)(**dict(opts, kernel="compiled"))
    prepared = fast.prepare(event)
    fast.fit_pixels(prepared, batches[0])  # loads the compiled code: not timed
    want, cpu_ref, ev_ref = _fit_all(ref, prepared, batches)
    got, cpu_fast, ev_fast = _fit_all(fast, prepared, batches)
    n = sum(len(b) for b in batches)
    diff = {}
    for b, w, g in zip(batches, want, got, strict=True):
        diff.setdefault(int(b.round), []).append(g - w)
    rounds = []
    all_d = np.concatenate([np.concatenate(v) for v in diff.values()])
    for rnd, parts in sorted(diff.items()):
        d = np.concatenate(parts)
        rounds.append(f"r{rnd} {np.mean(~(d > TOL)):.4f}/{np.nanmax(d):+.3g}")
    best_ok = np.nanmin(np.concatenate(got)) <= np.nanmin(np.concatenate(want)) + TOL
    ok = float(np.mean(~(all_d > TOL)))
    print(f"{label:28s} {name:4s} {n:6d} {ok:8.4f} {np.nanmax(all_d):+9.3g} "
          f"{np.nanmedian(all_d):+9.2g} {'yes' if best_ok else 'NO':>5s} "
          f"{cpu_ref / n * 1e3:7.3f} {cpu_fast / n * 1e3:7.3f} {cpu_ref / cpu_fast:5.2f} "
          f"{ev_ref / n:5.0f} {ev_fast / n:5.0f}  {'  '.join(rounds)}", flush=True)
    return {"n": n, "ok": ok * n, "best_ok": best_ok}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--recos", default="spe,mpe")
    ap.add_argument("--real", action="store_true", help="also the track alerts in tests/data")
    args = ap.parse_args(argv)
    from skyscan_tui.eventfiles import load_event
    from skyscan_tui.simulate import SimConfig, simulate_event

    events = [(f"sim seed {s}, {e / 1e3:g} TeV", simulate_event(SimConfig(seed=s, energy=e)))
              for s, e in SIM_EVENTS]
    if args.real:
        events += [(f.split("-")[-1].split(".")[0] if "-" in f else f.split(".")[0],
                    load_event(REPO / "tests" / "data" / f)) for f in REAL_EVENTS]
    print(f"{'event':28s} {'reco':4s} {'pixels':>6s} {'same/low':>8s} {'worst':>9s} "
          f"{'median':>9s} {'best':>5s} {'np ms':>7s} {'cmp ms':>7s} {'x':>5s} {'np ev':>5s} "
          f"{'cmp ev':>5s}  per round: fraction/worst")
    total = {"n": 0, "ok": 0.0, "best_ok": True}
    for label, event in events:
        for name in args.recos.split(","):
            r = compare(label, event, name, {})
            total["n"] += r["n"]
            total["ok"] += r["ok"]
            total["best_ok"] &= r["best_ok"]
    print(f"all: {total['ok'] / total['n']:.4f} of {total['n']} pixels same or lower (within "
          f"{TOL:g}); best fit never worse: {'yes' if total['best_ok'] else 'NO'}")
    print("same/low: fraction of pixels whose compiled -log L <= numpy's + 1e-3; worst: largest "
          "compiled - numpy; median: of compiled - numpy; best: the compiled best fit is not "
          "worse; ms: CPU ms per pixel (numpy, compiled, ratio); ev: likelihood evaluations per "
          "pixel (candidates and descents)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
