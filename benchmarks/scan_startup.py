"""Fixed costs of a CLI scan of the demo event, phase by phase, and the share that is fitting.

For each reco (``--recos``, default ``dummy,spe``) on the demo event (``skyscan-tui demo``'s
simulated event: seed 1, 10 TeV, default progression) it prints:

* the end-to-end wall of ``python -m skyscan_tui scan EVENT --reco R`` with ``--executor
  serial`` and with the default ``local`` executor (best and median of ``--repeat`` runs);
* the phases of one serial CLI scan, run in-process (``cli.main``) in a fresh interpreter
  under ``-X importtime``, with timers wrapped around the functions the CLI calls: the Pandel
  table (loaded from the user cache), the topology guard (without its table), opening the
  engine (reco ``prepare``, checkpoint), the scan loop and, inside it, the pixel fits
  (``WorkerState.run``), the products by family (result ``.npz``/``.json``, statistics,
  multi-order FITS, alert text, contours, flat maps, notice, summaries) and the rest (CLI
  parsing, event loading, ...). Each phase shows its wall time, exclusive of the phases
  nested in it, and how much of that was importing modules; the interpreter's own start
  (``python -c pass``) is measured apart;
* the Pandel table built from scratch (an empty ``SKYSCAN_CACHE``) against loaded;
* the start of a ``local`` pool of ``--jobs`` workers (spawn, imports, reco set-up; time
  until one-pixel batches come back);
* the fraction of the serial CLI wall that is fitting;
* the most expensive top-level imports, and whether healpy or matplotlib were imported (they
  must not be: the scan uses ``skyscan_tui.healpix``); exit 1 if they were.

Run: ``python -m benchmarks.scan_startup [--recos dummy,spe] [--repeat 3] [--jobs 2]``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
_MARK = "@@phase"


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


def _run(args: list[str], extra: tuple[str, ...] = (), **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *extra, *args], cwd=REPO, env=_env(**env),
                          capture_output=True, text=True, check=True)


def _children_cpu() -> float:
    use = resource.getrusage(resource.RUSAGE_CHILDREN)
    return use.ru_utime + use.ru_stime


def _cli_wall(event: Path, reco: str, executor: str, out: Path) -> tuple[float, float]:
    """(wall, CPU) [s] of one CLI scan; CPU of the process and its workers (robust when the
    machine is busy, where wall is not)."""
    t0, c0 = time.perf_counter(), _children_cpu()
    _run(["-m", "skyscan_tui", "scan", str(event), "--reco", reco, "--executor", executor,
          "-o", str(out), "--progress", "none"])
    return time.perf_counter() - t0, _children_cpu() - c0


# ---- the in-process phase run (a fresh interpreter: `--phases EVENT RECO OUTDIR JSON`) ----

class _Clock:
    """Wall and CPU per named phase, inclusive and exclusive of nested phases; a marker line
    on stderr at each boundary so ``-X importtime`` lines can be attributed to phases."""

    def __init__(self) -> None:
        self.incl: dict[str, float] = {}
        self.child: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self.child_cpu: dict[str, float] = {}
        self.stack: list[str] = []

    @contextmanager
    def phase(self, name: str):
        parent = self.stack[-1] if self.stack else None
        self.stack.append(name)
        print(f"{_MARK} {name}", file=sys.stderr, flush=True)
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            dt, dc = time.perf_counter() - t0, time.process_time() - c0
            self.stack.pop()
            self.incl[name] = self.incl.get(name, 0.0) + dt
            self.cpu[name] = self.cpu.get(name, 0.0) + dc
            if parent is not None:
                self.child[parent] = self.child.get(parent, 0.0) + dt
                self.child_cpu[parent] = self.child_cpu.get(parent, 0.0) + dc
            print(f"{_MARK} {parent or '-'}", file=sys.stderr, flush=True)

    def wrap(self, owner: Any, attr: str, name: str) -> None:
        fn = getattr(owner, attr)

        def timed(*a: Any, **k: Any) -> Any:
            with self.phase(name):
                return fn(*a, **k)

        setattr(owner, attr, timed)

    def exclusive(self) -> dict[str, float]:
        return {k: v - self.child.get(k, 0.0) for k, v in self.incl.items()}

    def exclusive_cpu(self) -> dict[str, float]:
        return {k: v - self.child_cpu.get(k, 0.0) for k, v in self.cpu.items()}


def _phases(event: str, reco: str, outdir: str, out_json: str) -> None:
    """Run ``skyscan-tui scan EVENT --reco RECO --executor serial`` in this process with
    timers around its steps; write the phases' times to ``out_json``."""
    clock = _Clock()
    t_all = time.perf_counter()
    # the CLI's modules and those timed below (the CLI would import them later, lazily)
    with clock.phase("imports: CLI, engine, products"):
        import skyscan_tui.app_api as app_api
        import skyscan_tui.contours as contours
        import skyscan_tui.flatmap as flatmap
        import skyscan_tui.products as products
        from executors.worker import WorkerState
        from recos import get_reco
        from skyscan_tui import cli
        from skyscan_tui.engine import ScanEngine
        from skyscan_tui.results import ScanResult

    if getattr(get_reco(reco), "track_fit", reco != "dummy"):
        from recos.track.table import PandelTable

        clock.wrap(PandelTable, "__init__", "Pandel table (cached)")
    clock.wrap(app_api, "topology_check", "topology guard")
    clock.wrap(app_api, "open_scan", "open engine (prepare, checkpoint)")
    clock.wrap(WorkerState, "run", "pixel fits")
    run = ScanEngine.run

    def timed_run(self: Any, *a: Any, **k: Any):
        gen = run(self, *a, **k)
        while True:
            with clock.phase("scan loop (engine)"):
                try:
                    update = next(gen)
                except StopIteration:
                    return
            yield update

    ScanEngine.run = timed_run
    clock.wrap(ScanResult, "save", "products: other")
    clock.wrap(ScanResult, "to_npz_bytes", "products: result .npz")
    clock.wrap(ScanResult, "to_json_text", "products: result .json")
    clock.wrap(ScanResult, "stats", "products: statistics")
    clock.wrap(ScanResult, "summary", "products: summaries")
    clock.wrap(products, "fits_bytes", "products: multi-order FITS")
    clock.wrap(products, "alert_text", "products: alert text")
    clock.wrap(products, "write_notice", "products: notice")
    clock.wrap(contours, "write_contours", "products: contours")
    clock.wrap(flatmap, "write_flat_maps", "products: flat maps")
    with clock.phase("CLI and event (parse, load, ...)"), \
            open(os.devnull, "w") as null:
        stdout, sys.stdout = sys.stdout, null
        try:
            code = cli.main(["scan", event, "--reco", reco, "--executor", "serial", "-o",
                             outdir, "--progress", "none"])
        finally:
            sys.stdout = stdout
    total = time.perf_counter() - t_all
    Path(out_json).write_text(json.dumps({"code": code, "total": total,
                                          "exclusive": clock.exclusive(),
                                          "exclusive_cpu": clock.exclusive_cpu()}))


def _import_split(stderr: str) -> tuple[dict[str, float], list[tuple[int, str]]]:
    """Seconds of top-level imports per phase (by the markers) and all import rows."""
    per: dict[str, float] = {}
    rows = []
    phase = "-"
    for line in stderr.splitlines():
        if line.startswith(_MARK):
            phase = line[len(_MARK) + 1:]
            continue
        parts = line.split("|")
        if line.startswith("import time:") and len(parts) == 3 and parts[1].strip().isdigit():
            us, name = int(parts[1]), parts[2].rstrip()
            rows.append((us, name))
            if not name.startswith("  "):  # cumulative time of a top-level import
                per[phase] = per.get(phase, 0.0) + us / 1e6
    return per, rows


_ORDER = ("imports: CLI, engine, products", "CLI and event (parse, load, ...)", "Pandel table (cached)",
          "topology guard", "open engine (prepare, checkpoint)", "scan loop (engine)",
          "pixel fits", "products: result .npz", "products: result .json",
          "products: statistics", "products: multi-order FITS", "products: alert text",
          "products: contours", "products: flat maps", "products: notice",
          "products: summaries", "products: other")


def _phase_report(event: Path, reco: str, tmp: Path) -> tuple[float, float, float, list]:
    """Print the phase table of one serial scan; (pixel-fit wall and CPU, phases total, import
    rows)."""
    out_json = tmp / f"phases-{reco}.json"
    proc = _run(["-m", "benchmarks.scan_startup", "--phases", str(event), reco,
                 str(tmp / f"ph-{reco}"), str(out_json)], extra=("-X", "importtime"))
    data = json.loads(out_json.read_text())
    imports, rows = _import_split(proc.stderr)
    excl, cpu = data["exclusive"], data["exclusive_cpu"]
    print(f"  phases of one serial scan in-process (-X importtime adds a little), "
          f"total {data['total']:.2f} s:")
    print(f"    {'phase':36s} {'wall [s]':>8s} {'CPU [s]':>8s} {'imports [s]':>11s}")
    for name in _ORDER:
        if name in excl:
            print(f"    {name:36s} {excl[name]:8.3f} {cpu[name]:8.3f} "
                  f"{imports.get(name, 0.0):11.3f}")
    prod = sum(v for k, v in excl.items() if k.startswith("products"))
    prod_cpu = sum(v for k, v in cpu.items() if k.startswith("products"))
    print(f"    {'(products, all families)':36s} {prod:8.3f} {prod_cpu:8.3f} "
          f"{sum(v for k, v in imports.items() if k.startswith('products')):11.3f}")
    if imports.get("-"):
        print(f"    {'(imports outside the phases)':36s} {'':17s} {imports['-']:11.3f}")
    print(f"    {'(all imports)':36s} {'':17s} {sum(imports.values()):11.3f}")
    return excl.get("pixel fits", 0.0), cpu.get("pixel fits", 0.0), data["total"], rows


def _table_times() -> tuple[float, float]:
    """[s] the Pandel table of the fits built from scratch, and loaded from the cache."""
    code = ("import time; t = time.perf_counter(); from recos.track.table import get_table; "
            "from recos.track.constants import JITTER; get_table(JITTER); "
            "print(time.perf_counter() - t)")
    with tempfile.TemporaryDirectory() as cache:
        built = float(_run(["-c", code], SKYSCAN_CACHE=cache).stdout)
        cached = float(_run(["-c", code], SKYSCAN_CACHE=cache).stdout)
    return built, cached


def _pool_start(event: Path, reco: str, jobs: int) -> tuple[float, float]:
    """[s] until the first and the last of ``jobs`` one-pixel batches come back from a new
    ``local`` pool (spawn, imports, reco set-up and prepare in each worker, one fit)."""
    code = f"""
import time, numpy as np
from executors.base import ScanContext
from executors.local import LocalExecutor
from skyscan_tui.eventfiles import load_event
from skyscan_tui.tasks import TaskBatch
from recos import get_reco
ev = load_event({str(event)!r})
reco = get_reco({reco!r})()
seed = reco.seed_vertex(reco.prepare(ev))
ex = LocalExecutor(jobs={jobs})
t0 = time.perf_counter()
ex.start(ScanContext({reco!r}, dict(reco.options), ev))
ex.submit([TaskBatch(k, 0, np.full(1, 8), np.array([k]), np.zeros(1, np.int32),
                     np.array([1.0]), np.array([0.5 * k]), seed[None, :]) for k in range({jobs})])
times = []
while len(times) < {jobs}:
    times += [time.perf_counter() - t0 for u in ex.poll(1.0) if hasattr(u, "results")]
ex.close()
print(min(times), max(times))
"""
    first, last = map(float, _run(["-c", code]).stdout.split())
    return first, last


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--recos", default="dummy,spe", help="recos to measure (default dummy,spe)")
    ap.add_argument("--repeat", type=int, default=3, help="timed CLI runs each (default 3)")
    ap.add_argument("--jobs", type=int, default=2, help="local workers (default 2)")
    ap.add_argument("--top", type=int, default=8, help="import entries to list (default 8)")
    ap.add_argument("--phases", nargs=4, metavar=("EVENT", "RECO", "OUTDIR", "JSON"),
                    help=argparse.SUPPRESS)  # the in-process phase run, in a fresh interpreter
    args = ap.parse_args(argv)
    if args.phases:
        _phases(*args.phases)
        return 0
    heavy: set[str] = set()
    with tempfile.TemporaryDirectory() as tmpname:
        tmp = Path(tmpname)
        event = tmp / "demo.json"
        _run(["-m", "skyscan_tui", "simulate", "-o", str(event), "--seed", "1"])
        t0 = time.perf_counter()
        for _ in range(3):
            _run(["-c", "pass"])
        print(f"demo event (seed 1); interpreter start (python -c pass): "
              f"{(time.perf_counter() - t0) / 3:.3f} s")
        built, cached = _table_times()
        print(f"Pandel table: built {built:.2f} s, loaded from the cache {cached:.3f} s "
              f"(each in a fresh interpreter, imports included)")
        rows: list = []
        for reco in [r.strip() for r in args.recos.split(",") if r.strip()]:
            runs = {ex: [_cli_wall(event, reco, ex, tmp / f"{reco}-{ex}-{i}")
                         for i in range(args.repeat)] for ex in ("serial", "local")}
            print(f"\n{reco}: CLI scan, default progression, over {args.repeat} runs "
                  f"(load average {os.getloadavg()[0]:.1f}):")
            for ex, r in runs.items():
                w, c = [x[0] for x in r], [x[1] for x in r]
                print(f"  --executor {ex:6s} wall best {min(w):.2f} s, median "
                      f"{statistics.median(w):.2f} s; CPU (with workers) median "
                      f"{statistics.median(c):.2f} s")
            first, last = _pool_start(event, reco, args.jobs)
            print(f"  local pool of {args.jobs} workers: first batch back after {first:.2f} s, "
                  f"all {args.jobs} after {last:.2f} s")
            fits, fits_cpu, total, rows = _phase_report(event, reco, tmp)
            serial = statistics.median(x[0] for x in runs["serial"])
            serial_cpu = statistics.median(x[1] for x in runs["serial"])
            print(f"  fitting: {fits:.2f} s wall = {100 * fits / serial:.0f} % of the serial "
                  f"CLI wall ({serial:.2f} s), {100 * fits / total:.0f} % of the in-process "
                  f"run; {fits_cpu:.2f} s CPU = {100 * fits_cpu / serial_cpu:.0f} % of the "
                  f"serial CLI's CPU ({serial_cpu:.2f} s)")
            heavy |= {n.strip().split(".")[0] for _, n in rows} & {"healpy", "matplotlib"}
        top_level = [(us, name.strip()) for us, name in rows if not name.startswith("  ")]
        print(f"\ntop-level imports of the last scan by cumulative time (of {len(rows)} "
              f"modules):")
        for us, name in sorted(top_level, reverse=True)[:args.top]:
            print(f"  {us / 1e6:6.3f} s  {name}")
    print("healpy/matplotlib imported:", ", ".join(sorted(heavy)) if heavy else "no")
    return 1 if heavy else 0


if __name__ == "__main__":
    sys.exit(main())
