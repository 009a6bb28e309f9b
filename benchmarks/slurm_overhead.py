"""Wall time of ``--executor slurm`` against ``--executor local`` on the same dummy scan.

Starts the loopback single-node Slurm of the tests and a throw-away sshd whose sessions see
its ``slurm.conf``, runs the same dummy-reco scan with the local executor and with the slurm
executor (real SSH, real sbatch/squeue, array tasks on this machine), checks both skymaps
are identical and prints wall times, the time to the first result and the overhead per
pixel. Needs root (slurmd). Loopback understates network latency, and this Slurm starts
about one array task per second, which dominates small scans.

    python -m benchmarks.slurm_overhead [--progression 4:0,8:2] [--pixels-per-job 24]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _scan(event, executor, progression: str, batch: int):
    """Run one scan; returns (wall [s], first result [s], pixel fits, ScanResult)."""
    from skyscan_tui import sky
    from skyscan_tui.engine import PixelsDone, ScanEngine, ScanFinished, ScanSettings

    settings = ScanSettings("dummy", {}, sky.parse_progression(progression), batch)
    t0 = time.perf_counter()
    first, n, result = None, 0, None
    for u in ScanEngine(event, settings, executor).run():
        if isinstance(u, PixelsDone):
            n += len(u.results)
            first = first if first is not None else time.perf_counter() - t0
        elif isinstance(u, ScanFinished):
            result = u.result
    return time.perf_counter() - t0, first or float("nan"), n, result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--progression", default="4:0,8:2")
    ap.add_argument("--batch-size", type=int, default=24)
    ap.add_argument("--pixels-per-job", type=int, default=24)
    ap.add_argument("--jobs-in-flight", type=int, default=20)
    ap.add_argument("-j", "--jobs", type=int, default=2, help="local worker processes")
    opts = ap.parse_args()

    import numpy as np

    from executors.local import LocalExecutor
    from executors.slurm import SlurmExecutor
    from skyscan_tui.simulate import SimConfig, simulate_event
    from tests.helpers.slurm_fixture import SlurmCluster, slurm_unavailable_reason
    from tests.helpers.sshfx import start_sshd

    reason = slurm_unavailable_reason()
    if reason:
        print(f"skipped: {reason}")
        return 0
    event = simulate_event(SimConfig(seed=7, zenith_deg=120.0, azimuth_deg=40.0))
    root = Path(tempfile.mkdtemp(prefix="skyscan-slurm-bench-"))
    with SlurmCluster() as cluster:
        sshd = start_sshd(root / "sshd", setenv={"SLURM_CONF": str(cluster.conf)})
        try:
            t_loc, first_loc, n_loc, res_loc = _scan(event, LocalExecutor(jobs=opts.jobs),
                                                     opts.progression, opts.batch_size)
            options = dict(
                host="127.0.0.1", port=sshd.port, user=sshd.user,
                identity_file=[str(sshd.client_key)], known_hosts=str(sshd.known_hosts),
                ssh_config="/nonexistent", workdir=str(root / "remote"),
                python=sys.executable, environment=[f"PYTHONPATH={REPO}"],
                jobs_in_flight=opts.jobs_in_flight, pixels_per_job=opts.pixels_per_job,
                poll_interval=0.3)
            ex = SlurmExecutor.from_options(options)
            t_sl, first_sl, n_sl, res_sl = _scan(event, ex, opts.progression, opts.batch_size)
        finally:
            sshd.stop()
    shutil.rmtree(root, ignore_errors=True)
    same = sorted(res_loc.levels) == sorted(res_sl.levels) and all(
        np.array_equal(res_loc.levels[k]["llh"], res_sl.levels[k]["llh"], equal_nan=True)
        for k in res_loc.levels)
    print(f"dummy scan {opts.progression}, batch {opts.batch_size}, {n_loc} pixel fits; "
          f"identical skymaps: {same}")
    print(f"local (-j {opts.jobs}):       {t_loc:7.2f} s  first result after {first_loc:.2f} s")
    print(f"slurm (ssh loopback): {t_sl:7.2f} s  first result after {first_sl:.2f} s  "
          f"({ex.stats['jobs_submitted']} array tasks in {ex.stats['submissions']} sbatch "
          "calls)")
    print(f"slurm overhead:       {t_sl - t_loc:7.2f} s  "
          f"{1e3 * (t_sl - t_loc) / max(n_sl, 1):8.2f} ms/pixel")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
