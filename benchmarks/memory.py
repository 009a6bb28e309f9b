"""Peak memory of a long scan against a short one: memory must stay flat with scan length.

Runs a 50,000-fit and a 5,000-fit dummy scan, each in a fresh Python process (the CLI's
``main`` in-process, so ``ru_maxrss`` is the scan's own process; local workers are reported
separately), and prints both peaks and their ratio (target < 1.5).

    python -m benchmarks.memory [--executor local|serial] [-j N]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# 16:0 is 3,072 pixels, then 482 × 4 children: 5,000 fits; 64:0 is 49,152, then 212 × 4: 50,000
SCANS = {"5k": "16:0,32:482", "50k": "64:0,128:212"}

CHILD = """
import json, resource, sys
from skyscan_tui.cli import main
rc = main(sys.argv[1:])
ru_self = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
ru_kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({"rc": rc, "self_kb": ru_self, "children_kb": ru_kids}), file=sys.stderr)
"""


def peak(progression: str, executor: str, jobs: int, tmp: Path) -> dict:
    ev = tmp / "ev.json"
    if not ev.exists():
        subprocess.run([sys.executable, "-m", "skyscan_tui", "simulate", "-o", str(ev),
                        "--seed", "4"], check=True, cwd=REPO, capture_output=True)
    out = tmp / f"out-{progression.replace(':', '_').replace(',', '-')}"
    workers = ["-j", str(jobs)] if executor == "local" else []  # -j is the local executor's
    argv = ["scan", str(ev), "--reco", "dummy", "--executor", executor, *workers,
            "--nside-progression", progression, "-o", str(out), "--progress", "none"]
    r = subprocess.run([sys.executable, "-c", CHILD, *argv], cwd=REPO, capture_output=True,
                       text=True)
    report = json.loads(r.stderr.strip().splitlines()[-1])
    if report["rc"] != 0:
        raise SystemExit(f"scan failed: {r.stderr[-2000:]}")
    summary = json.loads((out / "summary.json").read_text())
    report["fits"] = sum(summary["pixels"].values())
    return report


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--executor", default="local")
    ap.add_argument("-j", "--jobs", type=int, default=2)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="skyscan-mem-") as tmp:
        res = {k: peak(p, args.executor, args.jobs, Path(tmp)) for k, p in SCANS.items()}
    for k, r in res.items():
        print(f"{k:>4s} scan: {r['fits']:6d} fits, peak RSS {r['self_kb'] / 1024:7.1f} MiB "
              f"(largest worker {r['children_kb'] / 1024:.1f} MiB)")
    ratio = res["50k"]["self_kb"] / res["5k"]["self_kb"]
    print(f"ratio 50k/5k peak RSS: {ratio:.3f} (target < 1.5)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
