"""The pull-curve table shipped in the package (recos/track/data/pull_curves.json)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks.pull_calibration import KIND, merge_entries, table_entries
from recos import get_reco
from recos.track.pull import (
    CALIBRATIONS,
    PULL_KNOTS,
    PULL_TABLE,
    load_table,
    log_pull2,
    parse_pull,
    write_table,
)
from skyscan_tui.errors import UserError
from skyscan_tui.simulate import SimConfig, simulate_event


def _rows() -> list[dict]:
    rng = np.random.default_rng(5)
    return [{"reco": reco, "seed": 900000 + i, "n_bright": int(rng.integers(1, 300)),
             "ts_true": float(rng.chisquare(2))} for i in range(30) for reco in KIND]


def test_table_round_trips(tmp_path):
    table = load_table()
    path = tmp_path / "curves.json"
    write_table(table, path)
    assert load_table(path) == table
    assert not list(tmp_path.glob("*.tmp"))  # the atomic write leaves nothing behind


def test_shipped_table_has_every_curve_and_the_benchmarks_format():
    table = load_table(PULL_TABLE)
    assert tuple(table["knots"]) == PULL_KNOTS
    keys = {(c["likelihood"], c["calibration"]) for c in table["curves"]}
    assert keys == {(k, c) for k in KIND.values() for c in CALIBRATIONS}
    # the benchmark writes entries with the same fields (the command and seeds that made it)
    entries = table_entries(_rows(), {"spe": np.zeros(4), "mpe": np.ones(4)}, "realistic",
                            "python -m benchmarks.pull_calibration", "spice_mie", "pull=none")
    assert [e["likelihood"] for e in entries] == ["SPE1st", "MPE"]
    assert entries[0]["seeds"] == "900000-900029" and entries[0]["tracks"] == 30
    for c in table["curves"]:
        assert set(c) == set(entries[0]), c
        assert "benchmarks.pull_calibration" in c["command"]
    # what the table says is what the recos use
    for c in table["curves"]:
        np.testing.assert_allclose(
            [log_pull2(c["likelihood"], m, c["calibration"]) for m in PULL_KNOTS],
            c["log_pull2"])


def test_merge_replaces_only_the_same_curves(tmp_path):
    table = load_table()
    new = table_entries(_rows(), {"mpe": np.full(4, 0.5)}, "realistic", "cmd", "spice_mie",
                        "ice=layered,pull=none")
    merged = merge_entries(table, new)
    path = tmp_path / "t.json"
    write_table(merged, path)
    back = {(c["likelihood"], c["calibration"]): c for c in load_table(path)["curves"]}
    assert back[("MPE", "realistic")]["log_pull2"] == [0.5] * 4
    old = {(c["likelihood"], c["calibration"]): c for c in table["curves"]}
    for key in set(old) - {("MPE", "realistic")}:
        assert back[key] == old[key]


def test_bad_tables_are_refused(tmp_path):
    table = load_table()
    table["curves"].append(dict(table["curves"][0]))
    path = tmp_path / "dup.json"
    path.write_text(json.dumps(table))
    with pytest.raises(ValueError, match="repeated"):
        load_table(path)


def test_forced_calibrations():
    assert parse_pull("matched") == "matched" and parse_pull("none") == 1.0
    with pytest.raises(UserError, match="reco option pull"):
        parse_pull("bulk")
    event = simulate_event(SimConfig(seed=21, energy=1e4))
    spe = get_reco("spe")(pull="realistic")
    prep = spe.prepare(event)
    assert spe.calibration(prep) == "realistic"
    assert spe.pull(prep) == pytest.approx(
        np.exp(0.5 * log_pull2("SPE1st", prep.n_bright, "realistic")))
