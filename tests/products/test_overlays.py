"""Overlays (seed fits, truth, marks) and how well a simulated event did (issue 20, 6 and 8)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from skyscan_tui.coords import local_to_equatorial
from skyscan_tui.errors import UserError
from skyscan_tui.overlays import (
    event_overlays,
    format_truth,
    overlays_from_json,
    parse_mark,
    parse_radec,
    result_markers,
    short_name,
    truth_report,
)
from skyscan_tui.results import format_summary, load_result
from tests.conftest import run_cli
from tests.products.test_science import synthetic_scan

RA0, DEC0 = 1.0, 0.3  # [rad]; a round Gaussian of σ = 1°


def _with_truth(d_north_deg: float, real: bool = False):
    result = synthetic_scan(RA0, DEC0, 1.0, 1.0)
    result.is_real_event = real
    result.meta["overlays"] = {
        "seeds": [{"name": "l2_online_SplineMPE", "ra_deg": math.degrees(RA0) + 0.3,
                   "dec_deg": math.degrees(DEC0)}],
        "truth": {"name": "truth", "ra_deg": math.degrees(RA0),
                  "dec_deg": math.degrees(DEC0) + d_north_deg}}
    return result


def test_event_overlays_are_the_seeds_and_truth_at_the_event_time(sim_event):
    ov = event_overlays(sim_event)
    t = sim_event.truth
    ra, dec = local_to_equatorial(t.zenith, t.azimuth, sim_event.mjd)
    assert ov["truth"]["ra_deg"] == pytest.approx(math.degrees(float(ra)), abs=1e-5)
    assert ov["truth"]["dec_deg"] == pytest.approx(math.degrees(float(dec)), abs=1e-5)
    assert [s["name"] for s in ov["seeds"]] == [s.name for s in sim_event.seeds]
    # a real event never has a truth to report, whatever the file claims
    import dataclasses

    real = dataclasses.replace(sim_event, meta={**sim_event.meta, "is_real_event": True})
    assert event_overlays(real)["truth"] is None


@pytest.mark.parametrize("d, in50, in90", [(0.6, True, True), (1.7, False, True),
                                           (3.0, False, False)])
def test_truth_report_says_the_angle_and_the_regions(d, in50, in90):
    result = _with_truth(d)
    rep = truth_report(result, result.stats())
    assert rep["angle_deg"] == pytest.approx(d, abs=0.08)  # best-fit pixel vs the centre
    assert rep["inside"]["50"]["likelihood"] is in50
    assert rep["inside"]["90"]["likelihood"] is in90
    text = format_truth(rep)
    assert f"{rep['angle_deg']:.3f} deg from the best fit" in text
    assert f"50% region: {'yes' if in50 else 'no'}, 90%: {'yes' if in90 else 'no'}" in text
    summary = result.summary()
    assert summary["truth"] == rep
    assert "Truth (simulated)" in format_summary(summary)


def test_a_real_event_reports_no_truth():
    result = _with_truth(0.5, real=True)
    assert truth_report(result, result.stats()) is None
    summary = result.summary()
    assert "truth" not in summary and "Truth" not in format_summary(summary)
    assert [m.kind for m in result_markers(result)] == ["seed"]


@pytest.mark.parametrize("suffix", ["npz", "json"])
def test_overlays_survive_the_result_files(tmp_path, suffix):
    result = _with_truth(1.0)
    paths = result.save(tmp_path)
    back = load_result(paths[suffix])
    assert result_markers(back) == result_markers(result)
    assert [m.label for m in result_markers(back)] == ["SplineMPE", "truth"]
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert saved["truth"]["inside"]["90"]["likelihood"] is True
    assert "Truth (simulated)" in (tmp_path / "summary.txt").read_text()


def test_a_result_without_overlays_keeps_its_header(tmp_path):
    result = synthetic_scan(RA0, DEC0, 1.0, 1.0)
    paths = result.save(tmp_path)
    with np.load(paths["npz"]) as npz:
        assert "overlays" not in npz["header"].dtype.names
    assert result_markers(load_result(paths["npz"])) == []


@pytest.mark.parametrize("text", ["", "[1,2]", "{\"seeds\": 3}", "not json",
                                  "{\"truth\": {\"ra_deg\": 1, \"dec_deg\": 100}}"])
def test_unreadable_overlays_are_ignored(text):
    ov = overlays_from_json(text)
    assert ov is None or (ov["truth"] is None and ov["seeds"] == [])


def test_parse_mark():
    m = parse_mark("350.5,-20,TXS 0506+056")
    assert (m.label, m.ra_deg, m.dec_deg, m.kind) == ("TXS 0506+056", 350.5, -20.0, "mark")
    assert parse_mark("-10, 5").ra_deg == 350.0 and parse_mark("1,2").label == "(1, 2)"
    for bad in ("1", "a,b", "1,95", "nan,1", "1,inf"):
        with pytest.raises(UserError):
            parse_mark(bad)


def test_parse_radec():
    assert parse_radec(" 77.36  5.69 ") == (77.36, 5.69)
    assert parse_radec("-1, -30") == (359.0, -30.0)
    for bad in ("", "1", "1 2 3", "a b", "1 91", "nan 0"):
        with pytest.raises(UserError):
            parse_radec(bad)


def test_short_names():
    assert short_name("l2_online_SplineMPE") == "SplineMPE"
    assert short_name("OnlineL2_BestFit") == "BestFit"
    assert short_name("LineFit_smeared") == "LineFit_smeared"


def test_demo_prints_how_well_it_did(tmp_path):
    out = tmp_path / "demo"
    proc = run_cli("demo", "--reco", "dummy", "--executor", "serial", "--progress", "none",
                   "-o", out)
    assert proc.returncode == 0, proc.stderr
    line = next(x for x in proc.stdout.splitlines() if x.startswith("Truth (simulated)"))
    saved = json.loads((out / "summary.json").read_text())["truth"]
    assert f"{saved['angle_deg']:.3f} deg from the best fit" in line
    assert line in (out / "summary.txt").read_text()


def test_scan_of_a_simulated_file_reports_the_truth_and_a_real_alert_does_not(
        tmp_path, sim_event_file):
    from tests.conftest import REPO

    common = ("--reco", "dummy", "--executor", "serial", "--progress", "none",
              "--nside-progression", "8:0,64:12")
    sim = run_cli("scan", sim_event_file, *common, "-o", tmp_path / "sim")
    assert sim.returncode == 0, sim.stderr
    assert "Truth (simulated)" in sim.stdout
    alert = REPO / "tests" / "data" / "run00136662-evt000035405932-BRONZE.pkl"
    real = run_cli("scan", alert, *common, "-o", tmp_path / "real")
    assert real.returncode == 0, real.stderr
    assert "Truth" not in real.stdout and "truth" not in real.stdout.lower()
    summary = json.loads((tmp_path / "real" / "summary.json").read_text())
    assert "truth" not in summary and summary["meta"]["overlays"]["truth"] is None
    # the online fits are kept for the plots
    names = [s["name"] for s in summary["meta"]["overlays"]["seeds"]]
    assert any("SplineMPE" in n for n in names) and any("BestFit" in n for n in names)
