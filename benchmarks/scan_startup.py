"""Wall time of a small dummy scan through the CLI, and what its imports cost.

Runs ``python -m skyscan_tui scan EVENT --reco dummy`` (default progression) from this
checkout ``--repeat`` times and prints the best and median wall time, then one run under
``python -X importtime`` and its most expensive top-level imports (cumulative), and whether
healpy or matplotlib were imported (they must not be: the scan uses
``skyscan_tui.healpix``). The import listing includes the loky worker processes (they
inherit ``-X importtime``). Run: ``python -m benchmarks.scan_startup``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _cli(*args: str, extra: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *extra, "-m", "skyscan_tui", *args], cwd=REPO,
                          env=_env(), capture_output=True, text=True, check=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=3, help="timed runs (default 3)")
    ap.add_argument("--top", type=int, default=8, help="import entries to list (default 8)")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        event = Path(tmp) / "event.json"
        _cli("simulate", "-o", str(event), "--seed", "3")
        walls = []
        for i in range(args.repeat):
            t0 = time.perf_counter()
            _cli("scan", str(event), "--reco", "dummy", "-o", str(Path(tmp) / f"out{i}"),
                 "--progress", "none")
            walls.append(time.perf_counter() - t0)
        proc = _cli("scan", str(event), "--reco", "dummy", "-o", str(Path(tmp) / "imp"),
                    "--progress", "none", extra=("-X", "importtime"))
    rows = []
    for line in proc.stderr.splitlines():
        parts = line.split("|")
        if line.startswith("import time:") and len(parts) == 3 and parts[1].strip().isdigit():
            rows.append((int(parts[1]), parts[2].rstrip()))
    top_level = [(us, name.strip()) for us, name in rows if not name.startswith("  ")]
    heavy = sorted({n.strip().split(".")[0] for _, n in rows} & {"healpy", "matplotlib"})
    print(f"dummy scan, default progression: best {min(walls):.2f} s, "
          f"median {statistics.median(walls):.2f} s over {len(walls)} runs")
    print(f"top-level imports by cumulative time (of {len(rows)} modules):")
    for us, name in sorted(top_level, reverse=True)[:args.top]:
        print(f"  {us / 1e6:6.3f} s  {name}")
    print("healpy/matplotlib imported:", ", ".join(heavy) if heavy else "no")
    return 1 if heavy else 0


if __name__ == "__main__":
    sys.exit(main())
