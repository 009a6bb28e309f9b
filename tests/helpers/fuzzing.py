"""A small seeded fuzzer for every loader of user files (used by tests/engine/test_fuzz.py).

Each :class:`Target` names a loader (a function of a file path) and the seed files it is fed
with; :func:`fuzz` mutates those files (byte flips, cuts, splices, hostile JSON values, npy
headers inside npz archives, CSV cells) and calls the loader in-process. A loader may return
or raise ``UserError`` (one-line message); anything else is a finding. To cover a new input
format, append a ``Target`` in :func:`targets` (with a mutator that knows its structure, if
there is one: see ``mutate_json`` / ``mutate_npz`` / ``mutate_csv``).

``python -m tests.helpers.fuzzing --seconds 40 --min-inputs 500 --seed 1`` runs it standalone under an
address-space limit (so an unbounded allocation shows up as MemoryError) and prints a JSON
report.
"""

from __future__ import annotations

import argparse
import copy
import io
import json
import random
import sys
import tempfile
import time
import traceback
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MAX_INPUT = 4 * 1024 * 1024  # mutated inputs stay below this

INTERESTING_JSON = [
    None, True, False, 0, -1, 1, 2**31, 2**63, -(2**63) - 1, 10**30, 1e308, -1e308, 1e-320,
    "", "x" * 10_000, "nan", "NaN", "Infinity", "<skyreader.nan>", [], {}, [[]], [1, 2, 3],
    {"a": 1}, [None] * 100, "9" * 100, 0.5, -0.0,
]
INTERESTING_TEXT = [
    b"NaN", b"Infinity", b"-Infinity", b"1e999", b"9" * 5000, b"null", b"[]", b"{}", b"\x00",
    b"\xff\xfe", b'"', b"\\", b"[" * 50_000, b"{" * 50_000, b"-", b"1" * 30, b",", b"\n" * 100,
]
INTERESTING_CELLS = ["", "nan", "inf", "-1", "1e308", "99999999999999999999", "abc", "1,2",
                     '"', "\x00", "9" * 5000, " ", "-0"]


@dataclass
class Target:
    """A loader and what to feed it. ``mutators`` are tried in turn with the byte mutator."""

    name: str
    load: Callable[[Path], object]
    seeds: list[tuple[str, bytes]]  # (file name, content)
    mutators: list[Callable[[random.Random, bytes], bytes]] = field(default_factory=list)


@dataclass
class Finding:
    target: str
    mutator: str
    error: str
    trace: str


# ------------------------------------------------------------------ mutators
def mutate_bytes(rng: random.Random, data: bytes) -> bytes:
    """Generic: flip bits, overwrite, cut, insert, duplicate, splice interesting tokens."""
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(7)
        n = len(buf)
        pos = rng.randrange(n + 1) if n else 0
        if op == 0 and n:
            for _ in range(rng.randint(1, 8)):
                buf[rng.randrange(n)] ^= 1 << rng.randrange(8)
        elif op == 1 and n:
            buf[pos:pos + rng.randint(1, 16)] = bytes(rng.randrange(256)
                                                      for _ in range(rng.randint(1, 16)))
        elif op == 2:
            del buf[rng.randrange(n + 1):]  # truncate
        elif op == 3:
            buf[pos:pos] = rng.choice(INTERESTING_TEXT)
        elif op == 4 and n:
            a = rng.randrange(n)
            chunk = buf[a:a + rng.randint(1, 4096)]
            buf[pos:pos] = chunk * rng.randint(1, 8)
        elif op == 5 and n:
            del buf[pos:pos + rng.randint(1, 256)]
        else:
            buf[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
    return bytes(buf[:MAX_INPUT])


def _json_paths(obj, path=(), out=None, limit=4000):
    out = [] if out is None else out
    if len(out) >= limit:
        return out
    out.append(path)
    if isinstance(obj, dict):
        for k in list(obj)[:50]:
            _json_paths(obj[k], path + (k,), out, limit)
    elif isinstance(obj, list):
        for i in range(min(len(obj), 5)):
            _json_paths(obj[i], path + (i,), out, limit)
    return out


def _json_set(obj, path, value):
    if not path:
        return value
    cur = obj
    for p in path[:-1]:
        cur = cur[p]
    cur[path[-1]] = value
    return obj


def mutate_json(rng: random.Random, data: bytes) -> bytes:
    """Structure-aware: replace, drop or retype a value somewhere in a JSON document."""
    try:
        obj = json.loads(data)
    except (ValueError, RecursionError):
        return mutate_bytes(rng, data)
    for _ in range(rng.randint(1, 3)):
        paths = _json_paths(obj)
        path = rng.choice(paths)
        op = rng.randrange(5)
        if op == 0 and path:  # drop the key / element
            parent = obj
            for p in path[:-1]:
                parent = parent[p]
            if isinstance(parent, dict):
                parent.pop(path[-1], None)
            elif isinstance(parent, list) and parent:
                parent.pop(path[-1] if path[-1] < len(parent) else 0)
        elif op == 1:  # a list made long or empty
            val = rng.choice([[], [0] * rng.randint(1, 5000), [[0, 1]] * 3])
            obj = _json_set(obj, path, val)
        elif op == 2:  # deep nesting
            depth = rng.choice([10, 1000, 20_000])
            obj = _json_set(obj, path, json.loads("[" * depth + "]" * depth)
                            if depth < 900 else [1])
            if depth >= 900:  # json cannot build it; splice it in textually instead
                text = json.dumps(obj, allow_nan=True).replace("[1]", "[" * depth + "]" * depth,
                                                                1)
                return text.encode()[:MAX_INPUT]
        else:
            obj = _json_set(obj, path, copy.deepcopy(rng.choice(INTERESTING_JSON)))
    text = json.dumps(obj, allow_nan=True)
    if rng.random() < 0.1:  # a huge integer literal (past Python's int-from-str limit)
        text = text.replace("0", "9" * 5000, 1)
    return text.encode()[:MAX_INPUT]


def mutate_npz(rng: random.Random, data: bytes) -> bytes:
    """Structure-aware: rewrite one member's .npy header (shape, dtype) or data."""
    try:
        zin = zipfile.ZipFile(io.BytesIO(data))
        members = [(i, zin.read(i)) for i in zin.infolist()]
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, RuntimeError):
        return mutate_bytes(rng, data)
    if not members:
        return mutate_bytes(rng, data)
    k = rng.randrange(len(members))
    info, raw = members[k]
    op = rng.randrange(4)
    if op == 0 and raw.startswith(b"\x93NUMPY"):
        hlen = int.from_bytes(raw[8:10], "little")
        header = raw[10:10 + hlen].decode("latin1")
        shape = rng.choice(["(10000000000,)", "(-1,)", "(3, 4)", "()", "(0,)",
                            "(2**62,)", "(99999999999999999999,)", "(1,1,1,1,1,1,1,1,1,1)"])
        import re

        header = re.sub(r"'shape': \([^)]*\)", f"'shape': {shape}", header)
        hb = header.encode("latin1")
        raw = raw[:8] + len(hb).to_bytes(2, "little") + hb + raw[10 + hlen:]
    elif op == 1 and raw.startswith(b"\x93NUMPY"):
        hlen = int.from_bytes(raw[8:10], "little")
        header = raw[10:10 + hlen].decode("latin1")
        descr = rng.choice(["'|O'", "'<f8'", "'<U100000000'", "[('index', '<i8')]",
                            "[('index', '<f8'), ('llh', '<f8')]", "'V0'", "'<i8'"])
        import re

        header = re.sub(r"'descr': (\[.*?\]|'[^']*')(, 'fortran)", f"'descr': {descr}\\2",
                        header, count=1)
        hb = header.encode("latin1")
        raw = raw[:8] + len(hb).to_bytes(2, "little") + hb + raw[10 + hlen:]
    elif op == 2:
        raw = mutate_bytes(rng, raw)
    else:  # a member renamed
        info = zipfile.ZipInfo(rng.choice(["nside-3.npy", "nside-0.npy", "nside--8.npy",
                                           "header.npy", "x.npy", "nside-99999999999.npy",
                                           "../evil.npy"]))
    members[k] = (info, raw)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zout:
        for i, r in members:
            zout.writestr(i.filename if isinstance(i, zipfile.ZipInfo) else i, r)
    return out.getvalue()[:MAX_INPUT]


def mutate_csv(rng: random.Random, data: bytes) -> bytes:
    """Structure-aware: hostile cells, dropped columns, duplicated or shuffled rows."""
    lines = data.decode("utf-8", "replace").splitlines()
    if len(lines) < 2:
        return mutate_bytes(rng, data)
    op = rng.randrange(4)
    if op == 0:
        i = rng.randrange(len(lines))
        cells = lines[i].split(",")
        cells[rng.randrange(len(cells))] = rng.choice(INTERESTING_CELLS)
        lines[i] = ",".join(cells)
    elif op == 1:
        j = rng.randrange(len(lines[0].split(",")))
        lines = [",".join(c for n, c in enumerate(line.split(",")) if n != j) for line in lines]
    elif op == 2:
        lines = lines[:1] + lines[1:] * rng.randint(1, 3)
    else:
        lines = lines[:1] + rng.sample(lines[1:], k=max(0, len(lines) - 1 - rng.randint(0, 50)))
    return "\n".join(lines).encode()[:MAX_INPUT]


# ------------------------------------------------------------------ targets
def _seed_event_bytes() -> list[tuple[str, bytes]]:
    from skyscan_tui.events import event_to_dict
    from skyscan_tui.simulate import SimConfig, simulate_event

    out = []
    for seed in (1, 2):
        ev = simulate_event(SimConfig(seed=seed, energy=2000.0 * seed))
        out.append((f"sim{seed}.json", json.dumps(event_to_dict(ev)).encode()))
    return out


def _realtime_seeds() -> list[tuple[str, bytes]]:
    d = REPO / "tests" / "data"
    files = sorted(p for p in d.iterdir() if p.suffix in (".json", ".pkl")
                   and p.stat().st_size < MAX_INPUT)
    return [(p.name, p.read_bytes()) for p in files[:6]]


def _seed_results(tmp: Path) -> list[tuple[str, bytes]]:
    import numpy as np

    from skyscan_tui.results import ScanResult, empty_level

    levels = {}
    for nside, n in ((2, 48), (4, 16)):
        lv = empty_level(np.arange(n, dtype=np.int64))
        lv["llh"] = np.linspace(1.0, 9.0, n)
        lv["llh"][3] = np.nan
        lv["x"], lv["y"], lv["z"], lv["t"] = 1.0, 2.0, 3.0, 4.0
        levels[nside] = lv
    res = ScanResult(run_id=1, event_id=2, mjd=60000.0, event_type="SIM", reco="dummy",
                     levels=levels, meta={"nside_progression": "2:0,4:4"})
    paths = res.save(tmp / "result")
    return [(paths["npz"].name, paths["npz"].read_bytes()),
            (paths["json"].name, paths["json"].read_bytes())]


def _seed_geometry() -> list[tuple[str, bytes]]:
    from importlib import resources

    text = resources.files("skyscan_tui").joinpath("data/icecube86_inice.csv").read_text()
    lines = text.splitlines()
    return [("geo.csv", "\n".join(lines[:300]).encode())]


def _seed_checkpoint(tmp: Path) -> tuple[list[tuple[str, bytes]], list[tuple[str, bytes]],
                                         dict, str]:
    from executors.serial import SerialExecutor
    from skyscan_tui.engine import ScanEngine, ScanSettings, _settings_key
    from skyscan_tui.events import event_digest
    from skyscan_tui.simulate import SimConfig, simulate_event

    ev = simulate_event(SimConfig(seed=5))
    out = tmp / "ckpt"
    eng = ScanEngine(ev, ScanSettings("dummy", {}, ((2, 0), (4, 4))), SerialExecutor(),
                     outdir=out)
    for _ in eng.run():
        pass
    cdir = out / "checkpoint"
    return ([("state.json", (cdir / "state.json").read_bytes())],
            [("results.log", (cdir / "results.log").read_bytes())],
            {"event": (cdir / "event.json").read_bytes(),
             "key": _settings_key(eng.settings, eng.reco)}, event_digest(ev))


def _seed_catalogs() -> tuple[list[tuple[str, bytes]], list[tuple[str, bytes]]]:
    """A CSV and a 4FGL-like FITS catalogue (query --catalog)."""
    import numpy as np
    from astropy.io import fits

    csv = b"name,ra,dec\nA,10.5,-3.25\nB,359.9,89.9\nC,0,0\n"
    tab = fits.BinTableHDU.from_columns([
        fits.Column(name="Source_Name", format="18A", array=np.array(["4FGL A", "4FGL B"])),
        fits.Column(name="RAJ2000", format="E", array=np.array([10.5, 200.0]), unit="deg"),
        fits.Column(name="DEJ2000", format="E", array=np.array([-3.25, 45.0]), unit="deg")])
    buf = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU(), tab]).writeto(buf)
    return [("cat.csv", csv)], [("cat.fits", buf.getvalue())]


def targets(tmp: Path) -> list[Target]:
    """Every loader of user-supplied files, with seed inputs. Extend here."""
    from skyscan_tui import checkpoint as ckpt
    from skyscan_tui.events import load_event
    from skyscan_tui.geometry import load_geometry
    from skyscan_tui.results import load_result

    out = [
        Target("event-native", load_event, _seed_event_bytes(), [mutate_json]),
        Target("result", load_result, _seed_results(tmp), [mutate_npz, mutate_json]),
        Target("geometry-csv", load_geometry, _seed_geometry(), [mutate_csv]),
    ]
    rt = _realtime_seeds()
    if rt:
        out.append(Target("event-realtime", load_event, rt, [mutate_json]))
    states, logs, extra, digest = _seed_checkpoint(tmp)

    def _ckpt_dir(path: Path, name: str, data: bytes | None = None) -> Path:
        d = path.parent / (path.name + ".d")
        (d / "checkpoint").mkdir(parents=True, exist_ok=True)
        (d / "checkpoint" / "event.json").write_bytes(extra["event"])
        (d / "checkpoint" / "state.json").write_bytes(states[0][1])
        (d / "checkpoint" / "results.log").write_bytes(logs[0][1])
        (d / "checkpoint" / name).write_bytes(path.read_bytes())
        return d

    def load_state(path: Path) -> object:
        d = _ckpt_dir(path, "state.json")
        ckpt.read_info(d)
        ck, _ = ckpt.Checkpoint.open_resume(d, extra["key"], digest)
        ck.close("interrupted")
        return None

    def load_log(path: Path) -> object:
        d = _ckpt_dir(path, "results.log")
        ck, restored = ckpt.Checkpoint.open_resume(d, extra["key"], digest)
        ck.close("interrupted")
        return restored

    out.append(Target("checkpoint-state", load_state, states, [mutate_json]))
    out.append(Target("checkpoint-log", load_log, logs, []))
    from skyscan_tui.query import read_catalog

    cat_csv, cat_fits = _seed_catalogs()
    out.append(Target("catalog-csv", read_catalog, cat_csv, [mutate_csv]))
    out.append(Target("catalog-fits", read_catalog, cat_fits, []))
    return out


# ------------------------------------------------------------------ the loop
def fuzz(seed: int, seconds: float, min_inputs: int, tmp: Path) -> dict:
    """Mutate and load until ``seconds`` pass (and at least ``min_inputs`` were tried)."""
    import warnings

    from skyscan_tui.errors import UserError

    warnings.simplefilter("ignore")  # numpy/zipfile warnings about broken input are fine
    rng = random.Random(seed)
    tgts = targets(tmp)
    counts = {t.name: 0 for t in tgts}
    findings: list[Finding] = []
    t0 = time.monotonic()
    n = 0
    slowest = 0.0
    while (time.monotonic() - t0 < seconds or n < min_inputs) and n < 100_000:
        t = tgts[n % len(tgts)]
        name, data = rng.choice(t.seeds)
        mutators = t.mutators + [mutate_bytes]
        mut = mutators[rng.randrange(len(mutators))]
        blob = mut(rng, data)
        path = tmp / f"in{n}{Path(name).suffix}"
        path.write_bytes(blob)
        t1 = time.monotonic()
        try:
            t.load(path)
        except UserError as exc:
            msg = str(exc)
            if "\n" in msg or not msg:
                findings.append(Finding(t.name, mut.__name__, f"multi-line/empty: {msg!r}",
                                        ""))
        except BaseException as exc:  # noqa: BLE001 - every other exception is a finding
            if isinstance(exc, KeyboardInterrupt):
                raise
            findings.append(Finding(t.name, mut.__name__, f"{type(exc).__name__}: {exc}"[:300],
                                    traceback.format_exc()[-2000:]))
            keep = tmp / "findings"
            keep.mkdir(exist_ok=True)
            (keep / f"{t.name}-{n}{Path(name).suffix}").write_bytes(blob)
        slowest = max(slowest, time.monotonic() - t1)
        path.unlink(missing_ok=True)
        counts[t.name] += 1
        n += 1
    return {"inputs": n, "seconds": round(time.monotonic() - t0, 2), "per_target": counts,
            "slowest_input_s": round(slowest, 3),
            "findings": [f.__dict__ for f in findings[:20]], "n_findings": len(findings)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--min-inputs", type=int, default=500)
    ap.add_argument("--memory-limit-mb", type=int, default=3072,
                    help="address-space limit, so unbounded allocations fail loudly")
    args = ap.parse_args(argv)
    import resource

    limit = args.memory_limit_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    with tempfile.TemporaryDirectory(prefix="skyscan-fuzz-") as tmp:
        report = fuzz(args.seed, args.seconds, args.min_inputs, Path(tmp))
    report["max_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(report, indent=1))
    return 1 if report["n_findings"] else 0


if __name__ == "__main__":
    sys.exit(main())
