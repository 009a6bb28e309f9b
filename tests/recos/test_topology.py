"""Topology guard (``recos.track.topology``, ``docs/reconstructions.md`` "Topology guard"):
simulated cascades are flagged, through-going and starting tracks are not; ``scan`` refuses a
cascade-like event in one line (exit 2) unless ``--allow-cascade``, which records the verdict
in summary.json and alert.txt; a reco that is not a track fit (``dummy``) skips the guard."""

from __future__ import annotations

import json

import numpy as np
import pytest

from recos.track.topology import LLR_THRESHOLD, classify_topology
from skyscan_tui.events import event_digest, save_event
from skyscan_tui.simulate import SimConfig, simulate_event
from tests.conftest import run_cli

# the first seeds of the samples of benchmarks/topology_efficiency.py (same energies:
# log-uniform 1–100 TeV from default_rng(seed)); starting tracks: the seeds 3000–3019 whose
# muon runs >= 400 m inside the detector (shorter ones are cascade-like by nature)
TRACK_SEEDS = range(1000, 1010)
CASCADE_SEEDS = range(2000, 2010)
STARTING_SEEDS = (3000, 3002, 3003, 3004, 3006, 3007, 3009, 3010, 3013, 3014)


def _energy(seed: int) -> float:
    return float(10 ** np.random.default_rng(seed).uniform(3.0, 5.0))


def _flagged(seeds, **kw) -> list[bool]:
    return [classify_topology(simulate_event(SimConfig(seed=s, energy=_energy(s), **kw)))
            .cascade_like for s in seeds]


def test_cascades_flagged():
    flags = _flagged(CASCADE_SEEDS, cascade=True)
    assert np.mean(flags) >= 0.95, flags


def test_through_going_tracks_not_flagged():
    flags = _flagged(TRACK_SEEDS)
    assert not any(flags), flags


def test_starting_tracks_not_flagged():
    flags = _flagged(STARTING_SEEDS, starting=True)
    assert np.mean(flags) <= 0.05, flags


def test_demo_event_track_like_and_cheap():
    v = classify_topology(simulate_event(SimConfig(seed=1)))
    assert not v.cascade_like and v.llr < LLR_THRESHOLD
    v = classify_topology(simulate_event(SimConfig(seed=1)))  # tables cached
    assert v.seconds < 2.0  # typically 0.2–0.6 s on one core


def test_track_simulation_unchanged_by_cascade_option():
    # the cascade/starting code path must not touch the through-going one
    ev = simulate_event(SimConfig(seed=1))
    assert event_digest(ev) == (
        "b67216938289e887911d5c39462e34fb3023475688d6ceee5d67a545dd4adbb4")
    casc = simulate_event(SimConfig(seed=1, cascade=True))
    assert casc.meta["sim_topology"] == "cascade" and not casc.seeds
    start = simulate_event(SimConfig(seed=1, starting=True, ice_mismatch=0.2))
    assert start.meta["sim_topology"] == "starting" and start.meta["ice_mismatch"] == 0.2
    assert event_digest(start) != event_digest(
        simulate_event(SimConfig(seed=1, starting=True)))


@pytest.fixture(scope="module")
def cascade_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("topo") / "cascade.json"
    save_event(simulate_event(SimConfig(seed=3, cascade=True)), path)
    return path


def test_scan_refuses_cascade(cascade_file, tmp_path):
    out = tmp_path / "out"
    r = run_cli("scan", cascade_file, "--reco", "spe", "--executor", "serial",
                "--nside-progression", "8:0", "--progress", "none", "-o", out)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert "cascade-like event: a track scan is not meaningful (" in lines[0]
    assert "pass --allow-cascade to scan anyway" in lines[0]
    assert not (out / "summary.json").exists()


def test_scan_allow_cascade_records_verdict(cascade_file, tmp_path):
    out = tmp_path / "out"
    r = run_cli("scan", cascade_file, "--reco", "spe", "--executor", "serial",
                "--nside-progression", "8:0", "--progress", "none", "--allow-cascade",
                "-o", out)
    assert r.returncode == 0, r.stderr
    assert "WARNING: cascade-like event" in r.stderr
    assert r.stdout.startswith("WARNING: CASCADE-LIKE EVENT")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["topology"]["cascade_like"] is True
    assert summary["topology"]["verdict"] == "cascade-like"
    assert summary["meta"]["topology"]["llr"] > summary["topology"]["threshold"]
    alert = (out / "alert.txt").read_text()
    assert alert.startswith("WARNING: CASCADE-LIKE EVENT.")
    assert (out / "summary.txt").read_text().startswith("WARNING: CASCADE-LIKE EVENT")
    # the result files keep the verdict: a later `summary` still warns
    files = [*out.glob("run*.npz"), *out.glob("run*.json")]
    assert len(files) == 2
    for result in files:
        r = run_cli("summary", result)
        assert r.returncode == 0, r.stderr
        assert r.stdout.startswith("WARNING: CASCADE-LIKE EVENT."), result


def test_scan_non_track_reco_skips_guard(cascade_file, tmp_path):
    # the guard asks whether a track fit makes sense: dummy is no track fit, so the cascade
    # scans without the refusal, the warning or a verdict in the products
    out = tmp_path / "out"
    r = run_cli("scan", cascade_file, "--reco", "dummy", "--executor", "serial",
                "--nside-progression", "8:0", "--progress", "none", "-o", out)
    assert r.returncode == 0, r.stderr
    assert "cascade" not in r.stderr.lower() and "CASCADE" not in r.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["topology"] is None and "topology" not in summary["meta"]


def test_track_fit_capability():
    from recos import available_recos, get_reco

    tracks = {name for name in available_recos() if get_reco(name).track_fit}
    assert tracks == {"spe", "mpe", "spe_pointed", "mpe_pointed", "auto"}


def test_info_prints_verdict(cascade_file):
    r = run_cli("info", cascade_file)
    assert r.returncode == 0, r.stderr
    assert "Topology: CASCADE-LIKE" in r.stdout
    r = run_cli("info", cascade_file, "--json")
    assert json.loads(r.stdout)["topology"]["cascade_like"] is True
