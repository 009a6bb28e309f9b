"""Hostile and broken input: a seeded fuzz run of every file loader, and the CLI."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys

import pytest

from tests.conftest import REPO, cli_env, run_cli


@pytest.mark.slow
def test_fuzz_loaders_500_inputs_no_tracebacks():
    """≥ 500 mutated event, result, geometry and checkpoint files under a memory limit."""
    r = subprocess.run([sys.executable, "-m", "tests.helpers.fuzzing", "--seed", "20261128",
                        "--seconds", "20", "--min-inputs", "500", "--memory-limit-mb", "3072"],
                       capture_output=True, text=True, timeout=170, env=cli_env(), cwd=REPO)
    report = json.loads(r.stdout)
    assert report["inputs"] >= 500
    assert set(report["per_target"]) >= {"event-native", "result", "geometry-csv",
                                          "checkpoint-state", "checkpoint-log"}
    assert report["n_findings"] == 0, json.dumps(report["findings"], indent=1)[:4000]
    assert r.returncode == 0, r.stderr[-2000:]
    assert report["slowest_input_s"] < 10  # nothing hangs


def _one_line_error(r: subprocess.CompletedProcess) -> None:
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert "Traceback" not in r.stderr and len(lines) == 1, r.stderr[-2000:]
    assert lines[0].startswith("skyscan-tui"), lines[0]


def test_cli_mutated_event_files(tmp_path, sim_event_file):
    """A handful of mutated event files through the real CLI: one line, exit 2."""
    from tests.helpers.fuzzing import mutate_bytes, mutate_json

    rng = random.Random(5)
    data = sim_event_file.read_bytes()
    bad = [b"", b"\x80\x04junk", b"[" * 100_000, b'{"format": "skyscan-event", "version": 1}',
           mutate_json(rng, data)]
    while len(bad) < 7:
        blob = mutate_bytes(rng, data)
        try:
            json.loads(blob)
        except ValueError:
            bad.append(blob)  # surely broken
    for i, blob in enumerate(bad):
        ev = tmp_path / f"bad{i}.json"
        ev.write_bytes(blob)
        r = run_cli("scan", ev, "--reco", "dummy", "--executor", "serial",
                    "--nside-progression", "1:0", "-o", tmp_path / f"o{i}", "--progress", "none",
                    timeout=60)
        if r.returncode == 0:  # the JSON mutation may leave a valid event: then it scans
            continue
        _one_line_error(r)
        assert r.returncode == 2


HOSTILE = ["", "0", "-1", "1e400", "nan", "inf", "-inf", "99999999999999999999",
           "9" * 5000, "abc", "\x00", "8:0,4:1", "8:0,,", "3:0", "8:-1", "a:b", "1:0,8192:100000",
           "8192:0", "1:0,2:999999999999", "/dev/null", "/nonexistent/dir/x", " ", "1.5",
           "0x10", "8:0:1", "1:0,1:0"]
OPTIONS = ["--nside-progression", "-j", "--batch-size", "--max-retries", "--pixel-timeout",
           "--reco", "--executor", "--reco-opt", "--geometry", "-o", "--resume", "EVENT"]


def test_cli_values_fuzz_in_process(tmp_path, sim_event_file, capsys, monkeypatch):
    """Every scan option given hostile values: exit 0, or one line and a non-zero exit."""
    from skyscan_tui import cli

    monkeypatch.chdir(tmp_path)  # hostile values may be relative output paths

    rng = random.Random(11)
    extra = ["sleep=1e9", "sleep=nan", "sigma_deg=0", "=", "x=1", "noise=-1",
             "seed=99999999999999999999999", "seed=-5", "sleep", "sigma_deg=1e400"]
    cases = [(opt, val) for opt in OPTIONS for val in HOSTILE]
    cases += [("--reco-opt", v) for v in extra]
    rng.shuffle(cases)
    must = [("--nside-progression", "8192:0"), ("--nside-progression", "1:0,8192:100000"),
            ("--batch-size", "99999999999999999999"), ("--max-retries", "1000"),
            ("--pixel-timeout", "nan"), ("-o", "\x00"), ("--resume", "/dev/null")]
    codes = {}
    for n, (opt, val) in enumerate(must + cases[:int(os.environ.get(
            "SKYSCAN_FUZZ_CLI_CASES", "150"))]):
        out = tmp_path / f"o{n}"
        args = {"EVENT": str(sim_event_file), "--reco": "dummy", "--executor": "serial",
                "--nside-progression": "1:0", "-o": str(out)}
        if opt == "--resume":
            args.pop("-o")
        args[opt] = val
        argv = ["scan", args.pop("EVENT"), "--progress", "none"]
        for k, v in args.items():
            argv += [k, v]
        code = cli.main(argv)
        captured = capsys.readouterr()
        codes[(opt, val)] = code
        if code != 0:
            lines = captured.err.strip().splitlines()
            assert len(lines) == 1 and "Traceback" not in captured.err, (opt, val, captured.err)
            assert lines[0].startswith("skyscan-tui"), (opt, val, lines[0])
    for key in must:  # the refusals that matter did refuse
        assert codes[key] != 0, key


def test_cli_worker_counts_and_paths(tmp_path, sim_event_file, capsys, monkeypatch):
    from skyscan_tui import cli

    monkeypatch.chdir(tmp_path)

    base = ["scan", str(sim_event_file), "--reco", "dummy", "--nside-progression", "1:0",
            "--progress", "none"]
    for extra in (["-j", "1000"], ["-j", "0"], ["-j", "-3"], ["--executor", "nope"],
                  ["-o", str(sim_event_file)], ["-o", "/proc/version/x"]):
        code = cli.main(base + extra)
        err = capsys.readouterr().err.strip().splitlines()
        assert code != 0 and len(err) == 1 and err[0].startswith("skyscan-tui"), (extra, err)
    code = cli.main(["scan", str(tmp_path), "--reco", "dummy"])  # a folder as event
    assert code == 2 and "not a regular file" in capsys.readouterr().err


def test_cli_mutated_result_files(tmp_path):
    """Broken result files through summary, compare and plot: one line, non-zero exit."""
    from tests.helpers.fuzzing import _seed_results, mutate_json, mutate_npz

    seeds = dict(_seed_results(tmp_path))
    npz_name = next(k for k in seeds if k.endswith(".npz"))
    json_name = next(k for k in seeds if k.endswith(".json"))
    good = tmp_path / "result" / npz_name
    rng = random.Random(3)
    bad = []
    while len(bad) < 4:
        name = npz_name if len(bad) % 2 == 0 else json_name
        blob = (mutate_npz if name.endswith(".npz") else mutate_json)(rng, seeds[name])
        path = tmp_path / f"bad{len(bad)}{name[name.rfind('.'):]}"
        path.write_bytes(blob)
        from skyscan_tui.errors import UserError
        from skyscan_tui.results import load_result

        try:
            load_result(path)
        except UserError:
            bad.append(path)  # keep the ones that are really broken
    runs = [("summary", bad[0]), ("compare", bad[1], good), ("compare", good, bad[2]),
            ("plot", bad[3], "-o", tmp_path / "pics")]
    for args in runs:
        r = run_cli(*args, timeout=90)
        _one_line_error(r)
    assert not (tmp_path / "pics").exists() or not list((tmp_path / "pics").iterdir())
