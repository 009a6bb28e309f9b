"""Scanning real alerts through the engine: results carry the alert's identity."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from skyscan_tui import sky
from skyscan_tui.events import load_event
from tests.conftest import REPO, run_cli

DATA = REPO / "tests" / "data"
FILES = sorted(p.name for p in DATA.iterdir() if p.suffix in (".json", ".pkl"))


def _angle(zen1, azi1, zen2, azi2) -> float:
    """[deg] angle between two (zenith, azimuth) directions [rad]."""
    def vec(z, a):
        return np.array([np.sin(z) * np.cos(a), np.sin(z) * np.sin(a), np.cos(z)])
    return math.degrees(math.acos(float(np.clip(vec(zen1, azi1) @ vec(zen2, azi2), -1, 1))))


@pytest.mark.parametrize("name", FILES)
def test_dummy_scan_of_real_event(name):
    from executors.serial import SerialExecutor
    from skyscan_tui.engine import ScanEngine, ScanFinished, ScanSettings

    event = load_event(DATA / name)
    settings = ScanSettings(reco="dummy", progression=sky.parse_progression("8:0,64:4"))
    finished = [u for u in ScanEngine(event, settings, SerialExecutor()).run()
                if isinstance(u, ScanFinished)]
    result = finished[0].result
    assert not finished[0].cancelled
    assert (result.run_id, result.event_id, result.mjd, result.event_type) == \
        (event.run_id, event.event_id, event.mjd, event.event_type)
    assert result.is_real_event
    best = result.best()
    seed = event.seeds[0]
    # the dummy likelihood is centred on the best seed: the scan must find it (nside 64)
    assert _angle(best.zenith, best.azimuth, seed.zenith, seed.azimuth) < 1.5
    summary = result.summary()
    for key in ("run_id", "event_id", "mjd", "event_type"):
        assert summary[key] == getattr(event, key)


def test_cli_scan_real_alert_with_pulses_option(tmp_path):
    out = tmp_path / "out"
    r = run_cli("scan", DATA / "run00136662-evt000035405932-BRONZE.pkl", "--reco", "dummy",
                "--executor", "serial", "--nside-progression", "8:0,64:2", "--pulses",
                "InIceDSTPulses", "--progress", "none", "--json", "-o", out)
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert (summary["run_id"], summary["event_id"], summary["event_type"]) == \
        (136662, 35405932, "BRONZE")
    assert summary["mjd"] == pytest.approx(59723.3205114, abs=1e-7)
    (npz,) = out.glob("run00136662.evt000035405932.BRONZE_8_64.npz")
    with np.load(npz, allow_pickle=False) as f:
        header = f["header"]
    assert int(header["run_id"][0]) == 136662 and bool(header["is_real_event"][0])
    assert str(header["event_type"][0]) == "BRONZE"
