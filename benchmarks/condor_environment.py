"""What the HTCondor environment modes cost on connect and per job (``env_mode``).

Starts a throw-away sshd on 127.0.0.1 with the HTCondor stand-in of the tests, whose
"execute nodes" cannot see this interpreter's venv (or site-packages), the checkout or the
remote work folder (``execute_node`` in its config.json). Prints: how long a ``shared``
profile takes to fail its probe job (and the one line it fails with); for ``transfer``, the
archive's size and build time, the probe's time, and the same start again (archive and probe
cached); then the same dummy scan with ``transfer`` on those nodes and with ``shared`` on
nodes that see everything, to show the per-job cost of unpacking the archive.

    python -m benchmarks.condor_environment [--progression 4:0,8:4] [--pixels-per-job 200]
"""

from __future__ import annotations

import argparse
import json
import shutil
import site
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

from benchmarks.condor_overhead import _scan

REPO = Path(__file__).resolve().parents[1]


def _python_folders() -> list[str]:
    if sys.prefix != sys.base_prefix:
        return [sys.prefix]
    return sorted({p for p in (sysconfig.get_path("purelib"), sysconfig.get_path("platlib"),
                               site.getusersitepackages()) if p})


def _jobs(spool: Path) -> int:
    """Scan jobs (not probes) the stand-in has run so far."""
    return sum(1 for p in (spool / "history").glob("*.json")
               if json.loads(p.read_text()).get("SkyscanProbe") is not True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--progression", default="4:0,8:4")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--pixels-per-job", type=int, default=200)
    opts = ap.parse_args()

    import numpy as np

    from executors.base import ScanContext
    from executors.condor import CondorExecutor
    from executors.remote import RemoteError
    from skyscan_tui.simulate import SimConfig, simulate_event
    from tests.helpers.sshfx import start_sshd

    event = simulate_event(SimConfig(seed=7, zenith_deg=120.0, azimuth_deg=40.0))
    root = Path(tempfile.mkdtemp(prefix="skyscan-env-bench-"))
    spool, workdir = root / "spool", root / "remote"
    spool.mkdir()
    fakebin = REPO / "tests" / "helpers" / "fakecondor" / "bin"
    sshd = start_sshd(root / "sshd", setenv={
        "PATH": f"{fakebin}:/usr/local/bin:/usr/bin:/bin", "FAKECONDOR_SPOOL": str(spool),
        "FAKECONDOR_PYTHON": sys.executable, "FAKECONDOR_SLOTS": "2"})
    pool = spool / "config.json"
    blind = json.dumps({"execute_node": {"hide": [*_python_folders(), str(REPO), str(workdir)],
                                         "path": "/usr/bin:/bin"}})

    def executor(mode: str, **kw) -> CondorExecutor:
        return CondorExecutor.from_options(dict(
            host="127.0.0.1", port=sshd.port, user=sshd.user,
            identity_file=[str(sshd.client_key)], known_hosts=str(sshd.known_hosts),
            ssh_config="/nonexistent", workdir=str(workdir), python=sys.executable,
            environment=[f"PYTHONPATH={REPO}"], jobs_in_flight=2,
            pixels_per_job=opts.pixels_per_job, poll_interval=0.2, env_mode=mode, **kw))

    def start(mode: str) -> tuple[float, list[str]]:
        ex = executor(mode)
        t0 = time.perf_counter()
        try:
            ex.start(ScanContext("dummy", {}, event))
        finally:
            took = time.perf_counter() - t0
            logs = [u.message for u in ex._logs]
            ex.close()
        return took, logs

    try:
        pool.write_text(blind)
        t0 = time.perf_counter()
        try:
            start("shared")
            print("shared on blind nodes: the probe passed (unexpected)")
        except RemoteError as exc:
            print(f"shared on blind nodes: probe failed after {time.perf_counter() - t0:.2f} s "
                  f"(connect, checks, probe job): {str(exc)[:160]}...")
        for label in ("transfer, first start", "transfer, again"):
            took, logs = start("transfer")
            print(f"{label}: start {took:.2f} s")
            for line in logs:
                if "environment archive" in line or "probe job" in line:
                    print(f"  {line[:170]}")
        t_tr, _, n, res_tr = _scan(event, executor("transfer"), opts.progression,
                                   opts.batch_size, {})
        jobs = _jobs(spool)
        pool.unlink()
        t_sh, _, _, res_sh = _scan(event, executor("shared", probe_job=False),
                                   opts.progression, opts.batch_size, {})
        same = all(np.array_equal(res_tr.levels[k]["llh"], res_sh.levels[k]["llh"],
                                  equal_nan=True) for k in res_tr.levels)
        print(f"dummy scan {opts.progression}, {n} pixel fits, {jobs} jobs of <= "
              f"{opts.pixels_per_job} pixels each: transfer on blind nodes {t_tr:.1f} s "
              f"(archive and probe cached), shared on seeing nodes {t_sh:.1f} s; "
              f"identical skymaps: {same}")
    finally:
        sshd.stop()
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
