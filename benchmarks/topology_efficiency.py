"""Efficiency of the topology guard on simulated samples (``docs/reconstructions.md``).

Samples (seeds noted so the numbers can be reproduced): through-going tracks seeds
1000–1099, cascades 2000–2099, starting tracks 3000–3049; energies log-uniform in
1–100 TeV, drawn from ``numpy.random.default_rng(seed)``. Prints one row per event
(kind, seed, energy [GeV], n_dom, length [m], llr, seconds, muon path in the detector [m]
for starting tracks) and the flagged fractions; for starting tracks also among those with
>= 400 m of muon path inside the instrumented volume (shorter ones are cascades with a
stub of a muon, cascade-like by nature).

    python -m benchmarks.topology_efficiency [--n-track 100 --n-cascade 100 --n-starting 50]
        [--ice-mismatch 0.2]
"""

from __future__ import annotations

import argparse

import numpy as np

from recos.track.frame import track_direction
from recos.track.topology import LLR_THRESHOLD, classify_topology
from skyscan_tui.events import Seed
from skyscan_tui.geometry import default_geometry
from skyscan_tui.simulate import SimConfig, simulate_event

SAMPLES = {"track": (1000, {}), "cascade": (2000, {"cascade": True}),
           "starting": (3000, {"starting": True})}


def sample_energy(seed: int) -> float:
    """Log-uniform energy in 1–100 TeV [GeV] of the event with ``seed``."""
    return float(10 ** np.random.default_rng(seed).uniform(3.0, 5.0))


def path_in_detector(truth: Seed, step: float = 5.0) -> float:
    """Muon path [m] from the vertex along its direction until it leaves the cylinder of
    the outermost strings and the DOMs' depth range (icecube86)."""
    geo = default_geometry()
    xy = geo.pos[:, :2]
    centre = xy.mean(axis=0)
    r_det = float(np.max(np.linalg.norm(xy - centre, axis=1)))
    z_lo, z_hi = float(geo.pos[:, 2].min()), float(geo.pos[:, 2].max())
    v = np.array([truth.x, truth.y, truth.z])
    u = track_direction(truth.zenith, truth.azimuth)
    path = 0.0
    while path < 3000.0:
        p = v + path * u
        if np.linalg.norm(p[:2] - centre) > r_det or not z_lo <= p[2] <= z_hi:
            break
        path += step
    return path


def run(kind: str, n: int, ice_mismatch: float = 0.0) -> list[tuple]:
    first, kw = SAMPLES[kind]
    rows = []
    for seed in range(first, first + n):
        energy = sample_energy(seed)
        event = simulate_event(SimConfig(seed=seed, energy=energy, ice_mismatch=ice_mismatch,
                                         **kw))
        v = classify_topology(event)
        path = path_in_detector(event.truth) if kind == "starting" else float("nan")
        rows.append((kind, seed, energy, v.n_dom, v.length, v.llr, v.seconds, path))
        print(f"{kind:8s} {seed:5d} {energy:9.0f} {v.n_dom:4d} {v.length:6.0f} "
              f"{v.llr:+.3f} {v.seconds:.2f} {path:6.0f}", flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n-track", type=int, default=100)
    ap.add_argument("--n-cascade", type=int, default=100)
    ap.add_argument("--n-starting", type=int, default=50)
    ap.add_argument("--ice-mismatch", type=float, default=0.0,
                    help="simulate with this ice/detector mismatch (0 = the fits' model)")
    a = ap.parse_args()
    for kind, n in (("track", a.n_track), ("cascade", a.n_cascade),
                    ("starting", a.n_starting)):
        if n == 0:
            continue
        rows = run(kind, n, a.ice_mismatch)
        llr = np.array([r[5] for r in rows])
        sec = np.array([r[6] for r in rows])
        print(f"# {kind}: {np.mean(llr > LLR_THRESHOLD):.1%} flagged cascade-like "
              f"(threshold {LLR_THRESHOLD:+.2f}); llr min {llr.min():+.3f} "
              f"median {np.median(llr):+.3f} max {llr.max():+.3f}; "
              f"time median {np.median(sec):.2f} s, max {sec.max():.2f} s", flush=True)
        if kind == "starting":
            long_ = np.array([r[7] for r in rows]) >= 400.0
            print(f"# starting, >= 400 m of muon path: {np.mean(llr[long_] > LLR_THRESHOLD):.1%}"
                  f" of {long_.sum()} flagged; shorter: "
                  f"{np.mean(llr[~long_] > LLR_THRESHOLD):.1%} of {(~long_).sum()}", flush=True)


if __name__ == "__main__":
    main()
