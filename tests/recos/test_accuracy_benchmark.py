"""The Wilks-coverage arithmetic of benchmarks/accuracy.py (exact-direction evaluation)."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks import accuracy


def test_offsets_are_tangent_plane_angles():
    dx = np.array([0.0, 1e-3, 0.0, -2e-3])
    dy = np.array([0.0, 0.0, 1e-3, 2e-3])
    zen, azi = accuracy._offsets(1.1, 4.0, dx, dy)
    v0 = np.array([np.sin(1.1) * np.cos(4.0), np.sin(1.1) * np.sin(4.0), np.cos(1.1)])
    v = np.stack([np.sin(zen) * np.cos(azi), np.sin(zen) * np.sin(azi), np.cos(zen)], axis=1)
    ang = np.arccos(np.clip(v @ v0, -1, 1))
    np.testing.assert_allclose(ang, np.arctan(np.hypot(dx, dy)), atol=1e-7)


def test_exact_truth_and_off_grid_minimum():
    row = accuracy.run_one(("spe", 1.0e4, 7, 0.0))
    # the off-grid minimum can only be lower than the best pixel, and not by much
    assert 0.0 <= row["llh_gain"] < 2.0
    assert np.isfinite(row["ts_true"]) and np.isfinite(row["ts_pixel"])
    assert row["err"] < 2.0
    # a 10 TeV track's truth is well inside its 99.9 % region either way
    assert row["ts_true"] < 13.8 and row["ts_pixel"] < 13.8


def test_e2_spectrum_energies_and_bins(capsys):
    energies = np.array([accuracy.e2_energy(600_000 + i) for i in range(4000)])
    assert energies.min() >= 1e3 and energies.max() <= 1e5
    # E^-2 over [1, 100] TeV: P(E < 3 TeV) = (1 - 1/3) / (1 - 1/100)
    assert np.mean(energies < 3e3) == pytest.approx((2 / 3) / 0.99, abs=0.03)
    assert accuracy.e2_energy(600_001) == accuracy.e2_energy(600_001)  # seeded
    assert accuracy.energy_bin({"energy": 2.5e3, "spectrum": "e2"})[1] == "1-3"
    assert accuracy.energy_bin({"energy": 1e5, "spectrum": "e2"})[1] == "10-100"
    assert accuracy.energy_bin({"energy": 1e4})[1] == "10"
    rows = [{"reco": "auto", "mismatch": 0.0, "energy": e, "spectrum": "e2", "err": 0.3,
             "ts_true": ts, "a90": 1.0, "tasks": 3072, "seconds": 2.0, "ts_pixel": ts}
            for e, ts in ((1.5e3, 1.0), (2e3, 5.0), (5e3, 2.0), (5e4, 0.5))]
    accuracy.print_table(rows, "e2")
    out = capsys.readouterr().out
    assert "   1-3   2 " in out and "  3-10   1 " in out and "10-100   1 " in out
    assert "   all   4 " in out


def test_pull_calibration_recovers_a_known_curve(capsys):
    """Tracks whose 2Δ is p²(M)·χ²₂ with a known curve: the quantile regression finds it,
    and the corrected Wilks-90 % coverage is 0.9 in every brightness bin."""
    from benchmarks import pull_calibration
    from recos.track.pull import PULL_KNOTS

    rng = np.random.default_rng(5)
    n_bright = np.exp(rng.uniform(np.log(5), np.log(300), 1500))
    truth = np.array([0.4, 0.1, -0.3, -0.6])[: len(PULL_KNOTS)]
    p2 = np.exp(np.interp(np.log(n_bright), np.log(PULL_KNOTS), truth))
    ts = p2 * rng.chisquare(2, n_bright.size)
    fitted = pull_calibration.fit_curve(n_bright, ts)
    np.testing.assert_allclose(fitted, truth, atol=0.25)
    rows = [{"reco": "spe", "n_bright": int(m), "ts_true": float(t)}
            for m, t in zip(n_bright, ts, strict=True)]
    pull_calibration.coverage_table(rows, {"spe": fitted})
    table = capsys.readouterr().out
    cells = {line.split()[1]: line.split() for line in table.splitlines()[1:]}
    assert float(cells["all"][8]) == pytest.approx(0.9, abs=0.02)  # pulled, pooled
    # bright tracks (p² ≈ 0.58): plain regions too wide (0.98 expected), corrected 0.9
    assert float(cells["100-199"][4]) > 0.95
    assert float(cells["100-199"][8]) == pytest.approx(0.9, abs=0.05)
    assert pull_calibration.log_uniform_energy(800_001) == pull_calibration.log_uniform_energy(
        800_001)


def test_linear_shape_and_repull(capsys):
    """--shape linear fits a line in log M through the knots; --repull applies a shipped
    curve to pull=none rows exactly as the scan would (2Δ / p², the area at 4.605 p²)."""
    from benchmarks import pull_calibration
    from recos.track.pull import PULL_KNOTS, pull_for

    rng = np.random.default_rng(6)
    n_bright = np.exp(rng.uniform(np.log(5), np.log(300), 1500))
    xk = np.log(PULL_KNOTS) - np.log(PULL_KNOTS).mean()
    truth = 0.1 - 0.3 * xk  # a line in log M
    p2 = np.exp(np.interp(np.log(n_bright), np.log(PULL_KNOTS), truth))
    fitted = pull_calibration.fit_curve(n_bright, p2 * rng.chisquare(2, n_bright.size),
                                        shape="linear")
    np.testing.assert_allclose(np.diff(fitted) / np.diff(xk), -0.3, atol=0.08)
    np.testing.assert_allclose(fitted, truth, atol=0.15)
    scales = np.array(accuracy.AREA_SCALES)
    rows = [{"reco": "auto", "mismatch": 0.0, "energy": 1e4, "err": 0.2, "seed": 900 + i,
             "n_bright": m, "kind": kind, "pull": 1.0, "ts_true": 4.0, "ts_pixel": 5.0,
             "llh_gain": 0.0, "a90": 1.0, "a90_scaled": list(scales), "ice": "spice_mie",
             "tasks": 1, "seconds": 1.0}
            for i, (m, kind) in enumerate([(12, "SPE1st"), (40, "MPE"), (200, "MPE")])]
    out = accuracy.repull(rows, "matched")
    for r, o in zip(rows, out, strict=True):
        q2 = pull_for(None, r["kind"], r["n_bright"], "matched") ** 2
        assert o["ts_true"] == pytest.approx(4.0 / q2) and o["pull"] == pytest.approx(q2 ** 0.5)
        assert o["a90"] == pytest.approx(q2, rel=0.01)  # the area grows as the threshold here
    with pytest.raises(ValueError, match="pull=none"):
        accuracy.repull([{**rows[0], "pull": 0.8}], "matched")
    accuracy.tercile_table(out)
    table = capsys.readouterr().out
    assert " dim " in table and " bright " in table and " all " in table
