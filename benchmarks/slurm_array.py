"""Timings of the loopback single-node Slurm used by the integration tests.

Run from the checkout root as root: ``python -m benchmarks.slurm_array``. Prints the
start-up time, sbatch/squeue/scancel latency and the wall time of small job arrays
(``--tasks`` elements each sleeping ``--sleep`` seconds) on the 2-CPU node.
"""

from __future__ import annotations

import argparse
import time

from tests.helpers.slurm_fixture import SlurmCluster, slurm_unavailable_reason


def run_array(cluster: SlurmCluster, n: int, sleep: float) -> tuple[float, float]:
    """Submit an n-task array; returns (sbatch latency, wall time until all COMPLETED) [s]."""
    job = cluster.root / f"job_{n}_{sleep}.sh"
    job.write_text(f"#!/bin/sh\nsleep {sleep}\n")
    t0 = time.perf_counter()
    out = cluster.run("sbatch", "--parsable", f"--array=0-{n - 1}",
                      f"--output={cluster.root}/bench_%A_%a.out", str(job))
    t_sub = time.perf_counter() - t0
    jid = out.strip().split(";")[0]
    while True:
        states = cluster.job_states(jid)
        if len(states) == n and all(s == "COMPLETED" for s in states.values()):
            return t_sub, time.perf_counter() - t0
        if time.perf_counter() - t0 > 600:
            raise RuntimeError(f"array did not finish: {states}")
        time.sleep(0.1)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=10)
    args = ap.parse_args()
    reason = slurm_unavailable_reason()
    if reason:
        print(f"skipped: {reason}")
        return 0
    with SlurmCluster() as cluster:
        print(f"start-up until node idle: {cluster.startup_seconds:6.2f} s")
        t0 = time.perf_counter()
        for _ in range(10):
            cluster.run("squeue", "-h", "-r", "-t", "all", "-o", "%i|%T")
        print(f"squeue -h -r -t all:      {(time.perf_counter() - t0) / 10 * 1e3:6.1f} ms")
        for sleep in (0.0, 1.0):
            t_sub, wall = run_array(cluster, args.tasks, sleep)
            ideal = args.tasks * sleep / cluster.cpus
            print(f"{args.tasks}-task array, {sleep:.0f} s/task: sbatch {t_sub * 1e3:5.1f} ms, "
                  f"all COMPLETED after {wall:6.2f} s (ideal on {cluster.cpus} CPUs: "
                  f"{ideal:.1f} s)")
        job = cluster.root / "long.sh"
        job.write_text("#!/bin/sh\nsleep 60\n")
        jid = cluster.run("sbatch", "--parsable", "--array=0-3", "--output=/dev/null",
                          str(job)).strip()
        time.sleep(1.5)
        t0 = time.perf_counter()
        cluster.run("scancel", jid)
        while cluster.active_jobs():
            time.sleep(0.05)
        print(f"scancel of a running array until squeue empty: "
              f"{time.perf_counter() - t0:5.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
