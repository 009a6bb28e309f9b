"""Result files (read by IceCube's skyreader) and the headless CLI's error handling."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.conftest import run_cli


@pytest.fixture(scope="module")
def scanned(tmp_path_factory, sim_event_file):
    out = tmp_path_factory.mktemp("scan")
    r = run_cli("scan", sim_event_file, "--reco", "dummy", "--executor", "serial",
                "--nside-progression", "8:0,64:4,512:4", "-o", out, "--json")
    assert r.returncode == 0, r.stderr
    return out, json.loads(r.stdout)


def test_skyreader_reads_our_files(scanned):
    skyreader = pytest.importorskip("skyreader")
    out, summary = scanned
    best = summary["best_fit"]
    npz = next(out.glob("run*.npz"))
    js = next(out.glob("run*.json"))
    assert npz.name == "run00000000.evt000000000007.SIM_8_64_512.npz"
    for res in (skyreader.SkyScanResult.read_npz(npz), skyreader.SkyScanResult.read_json(js)):
        ra, dec = res.best_dir
        assert np.isclose(np.rad2deg(ra), best["ra_deg"], atol=1e-9)
        assert np.isclose(np.rad2deg(dec), best["dec_deg"], atol=1e-9)
        md = res.result["nside-512"].dtype.metadata
        assert md["run_id"] == 0 and md["event_id"] == 7 and md["nside"] == 512
        assert md["event_type"] == "SIM" and md["reco"] == "dummy"
    a = skyreader.SkyScanResult.read_npz(npz)
    b = skyreader.SkyScanResult.read_json(js)
    assert a.is_close(b)


def test_our_loader_round_trips(scanned):
    from skyscan_tui.results import load_result

    out, summary = scanned
    for f in (next(out.glob("run*.npz")), next(out.glob("run*.json"))):
        res = load_result(f)
        assert res.best().to_dict()["ra_deg"] == pytest.approx(summary["best_fit"]["ra_deg"])
        assert res.nsides == [8, 64, 512]
        assert len(res.levels[8]) == 768


def test_summary_files(scanned):
    out, summary = scanned
    assert json.loads((out / "summary.json").read_text())["best_fit"] == summary["best_fit"]
    assert "Best fit: RA" in (out / "summary.txt").read_text()
    assert summary["pixels"] == {"8": 768, "64": 256, "512": 256}


def _one_line_error(r) -> None:
    assert r.returncode != 0
    assert "Traceback" not in r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("skyscan-tui: error:") or lines[0].startswith("skyscan-tui")


@pytest.mark.parametrize("content", [
    None, b"", b'{"format": "skyscan-event", "version": 1, "head',
    b'{"format": "skyscan-event", "version": 7}', b"\x00\xff junk",
])
def test_bad_event_file_cli(tmp_path, content):
    path = tmp_path / "ev.json"
    if content is not None:
        path.write_bytes(content)
    r = run_cli("scan", path, "--reco", "dummy", "-o", tmp_path / "out")
    _one_line_error(r)
    assert str(path) in r.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("args", [
    ["--nside-progression", "8:0,63:3"],
    ["--nside-progression", "64:0,8:3"],
    ["--nside-progression", ""],
    ["--reco", "nope"],
    ["--executor", "nope"],
    ["-j", "0"],
    ["-j", "many"],
    ["--reco-opt", "sleep"],
    ["--reco-opt", "bogus=1"],
    ["--reco-opt", "sleep=-1"],
    ["--reco-opt", "sigma_deg=nan"],
    ["--batch-size", "0"],
])
def test_bad_scan_options(tmp_path, sim_event_file, args):
    r = run_cli("scan", sim_event_file, "--reco", "dummy", "-o", tmp_path / "o", *args)
    _one_line_error(r)
    assert r.returncode == 2


@pytest.mark.parametrize("args", [
    ["simulate"], ["simulate", "-o", "x.json", "--zenith", "200"],
    ["simulate", "-o", "x.json", "--energy", "-5"], ["simulate", "-o", "x.json", "--seed", "-1"],
    ["bogus-command"], ["scan"],
])
def test_bad_command_lines(tmp_path, args):
    r = run_cli(*args, cwd=tmp_path)
    _one_line_error(r)


def test_help_and_version():
    for args in (["--help"], ["scan", "--help"], ["simulate", "--help"], ["--version"]):
        r = run_cli(*args)
        assert r.returncode == 0, r.stderr
        assert r.stdout


def test_lists():
    r = run_cli("recos")
    assert r.returncode == 0 and "dummy" in r.stdout
    r = run_cli("executors")
    assert r.returncode == 0 and "local" in r.stdout and "serial" in r.stdout
