"""Per-pixel overhead of ``--executor condor`` against ``--executor local`` (same dummy scan).

Starts a throw-away sshd on 127.0.0.1 with the HTCondor stand-in of the tests on its PATH
(so: real SSH, real paramiko, jobs as local processes), runs the same dummy-reco scan with
the local executor and with the condor executor, checks both skymaps are identical, and
prints wall times, the overhead per pixel, how the condor path spent its time (remote
commands, jobs) and how often it asked the schedd (``condor_q`` calls per minute). Loopback understates network latency; the stand-in's commands are Python
scripts (slower to start than HTCondor's C++ tools), and each job starts a Python worker.

    python -m benchmarks.condor_overhead [--progression 8:0,16:4] [--pixels-per-job 256]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _scan(event, executor, progression: str, batch: int, reco_opts: dict):
    from skyscan_tui import sky
    from skyscan_tui.engine import ScanEngine, ScanFinished, ScanSettings

    settings = ScanSettings("dummy", reco_opts, sky.parse_progression(progression), batch)
    t0 = time.perf_counter()
    first = None
    finished = None
    n = 0
    for u in ScanEngine(event, settings, executor).run():
        if type(u).__name__ == "PixelsDone":
            n += len(u.results)
            if first is None:
                first = time.perf_counter() - t0
        if isinstance(u, ScanFinished):
            finished = u
    return time.perf_counter() - t0, first or float("nan"), n, finished.result


def _condor_q_calls(spool: Path, t0: float, t1: float) -> int:
    """condor_q invocations between t0 and t1, from the stand-in's record of its calls."""
    import json

    path = spool / "calls.jsonl"
    if not path.exists():
        return 0
    calls = [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()]
    return sum(1 for c in calls if c["cmd"] == "condor_q" and t0 <= c["time"] <= t1)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--progression", default="8:0,16:4")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--pixels-per-job", type=int, default=256)
    ap.add_argument("--jobs-in-flight", type=int, default=2,
                    help="default: as many as the stand-in pool has slots (-j)")
    ap.add_argument("--sleep", type=float, default=0.0, help="dummy reco seconds per pixel")
    ap.add_argument("-j", "--jobs", type=int, default=2, help="local worker processes")
    opts = ap.parse_args()

    import numpy as np

    import executors.remote as remote
    from executors.condor import CondorExecutor
    from executors.local import LocalExecutor
    from skyscan_tui.simulate import SimConfig, simulate_event
    from tests.helpers.sshfx import start_sshd

    event = simulate_event(SimConfig(seed=7, zenith_deg=120.0, azimuth_deg=40.0))
    reco_opts = {"sleep": opts.sleep} if opts.sleep else {}
    root = Path(tempfile.mkdtemp(prefix="skyscan-condor-bench-"))
    spool = root / "spool"
    spool.mkdir()
    fakebin = REPO / "tests" / "helpers" / "fakecondor" / "bin"
    sshd = start_sshd(root / "sshd", setenv={
        "PATH": f"{fakebin}:/usr/local/bin:/usr/bin:/bin", "FAKECONDOR_SPOOL": str(spool),
        "FAKECONDOR_PYTHON": sys.executable, "FAKECONDOR_SLOTS": str(opts.jobs)})
    calls: list[float] = []
    real_run = remote.RemoteConnection.run

    def counted(self, *a, **kw):
        t = time.perf_counter()
        try:
            return real_run(self, *a, **kw)
        finally:
            calls.append(time.perf_counter() - t)

    remote.RemoteConnection.run = counted
    try:
        t_loc, first_loc, n_loc, res_loc = _scan(event, LocalExecutor(jobs=opts.jobs),
                                                 opts.progression, opts.batch_size, reco_opts)
        options = dict(
            host="127.0.0.1", port=sshd.port, user=sshd.user,
            identity_file=[str(sshd.client_key)], known_hosts=str(sshd.known_hosts),
            ssh_config="/nonexistent", workdir=str(root / "remote"),
            python=sys.executable, environment=[f"PYTHONPATH={REPO}"],
            jobs_in_flight=opts.jobs_in_flight, pixels_per_job=opts.pixels_per_job,
            poll_interval=0.2, probe_job=False)  # the scan alone (probe: its own figure)
        ex = CondorExecutor.from_options(options)
        t0 = time.time()
        t_con, first_con, n_con, res_con = _scan(event, ex, opts.progression, opts.batch_size,
                                                 reco_opts)
        t1 = time.time()
    finally:
        remote.RemoteConnection.run = real_run
        sshd.stop()
    same = all(np.array_equal(res_loc.levels[k]["llh"], res_con.levels[k]["llh"],
                              equal_nan=True) for k in res_loc.levels)
    n_jobs = sum(1 for _ in (spool / "history").glob("*.json"))
    print(f"dummy scan {opts.progression}, batch {opts.batch_size}, {n_loc} pixel fits, "
          f"sleep {opts.sleep} s/pixel; identical skymaps: {same}")
    print(f"local  (-j {opts.jobs}):  {t_loc:7.2f} s  {1e3 * t_loc / n_loc:8.3f} ms/pixel  "
          f"first result after {first_loc:.2f} s")
    print(f"condor (ssh loopback): {t_con:7.2f} s  {1e3 * t_con / n_con:8.3f} ms/pixel  "
          f"first result after {first_con:.2f} s")
    print(f"condor overhead:       {t_con - t_loc:7.2f} s  "
          f"{1e3 * (t_con - t_loc) / n_con:8.3f} ms/pixel  "
          f"({n_jobs} jobs of <= {opts.pixels_per_job} pixels, {ex.stats['submissions']} "
          f"condor_submit calls)")
    n_q = _condor_q_calls(spool, t0, t1)
    print(f"condor_q calls: {n_q} in {t1 - t0:.1f} s = {60 * n_q / (t1 - t0):.1f} per minute "
          "(the stand-in's own count)")
    if calls:
        print(f"remote commands: {len(calls)}, median {1e3 * sorted(calls)[len(calls) // 2]:.1f}"
              f" ms, total {sum(calls):.2f} s")
    shutil.rmtree(root, ignore_errors=True)
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
