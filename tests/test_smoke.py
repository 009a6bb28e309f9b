"""End-to-end smoke test of the foundation (more detailed tests live beside each feature)."""

from __future__ import annotations

from tests.conftest import run_cli


def test_simulate_then_scan_dummy(tmp_path):
    ev = tmp_path / "ev.json"
    r = run_cli("simulate", "-o", ev, "--seed", "3")
    assert r.returncode == 0, r.stderr
    out = tmp_path / "out"
    r = run_cli("scan", ev, "--reco", "dummy", "--executor", "local", "-j", "2", "-o", out)
    assert r.returncode == 0, r.stderr
    assert "Best fit" in r.stdout
    assert list(out.glob("run*.SIM_8_64_512.npz"))
