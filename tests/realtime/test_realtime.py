"""Real IceCube alert files: decoding, pinned numbers, seeds vs the file's own metadata."""

from __future__ import annotations

import json
import logging
import math
import pickle
import re

import numpy as np
import pytest

from skyscan_tui import realtime
from skyscan_tui.errors import EventFileError
from skyscan_tui.events import load_event
from tests.conftest import REPO, run_cli

DATA = REPO / "tests" / "data"

# file -> (run, event, type, n_pulses, n_doms, total charge [PE], t_min, t_max [ns],
#          first seed, MJD of the P-frame header start); split pulse series (the default)
PINNED = {
    "138632_31747601.json":
        (138632, 31747601, "NEUTRINO", 948, 216, 885.50, 6161, 21032,
         "l2_online_SplineMPE", 60280.71416775),
    "event_HESE_2017-11-28.json":
        (130322, 1414689, "HESE", 3292, 265, 9691.25, 6201, 25525,
         "OnlineL2_SplineMPE", 58086.45184240),
    "hese_event_00.json":
        (127907, 16605651, "HESE", 635, 114, 2194.68, 6100, 22832, "HESE_SPEFit2",
         57517.62789263),
    "hese_event_01.json":
        (127907, 20178442, "HESE", 410, 75, 2050.25, 6085, 24934, "HESE_SPEFit2",
         57517.64354153),
    "hese_event_02.json":
        (127908, 38887237, "HESE", 1157, 316, 2787.22, 5972, 27154, "HESE_SPEFit2",
         57518.05791215),
    "hese_event_03.json":
        (127909, 75816173, "HESE", 950, 244, 2084.95, 6043, 23975, "HESE_SPEFit2",
         57518.55236882),
    "run00136662-evt000035405932-BRONZE.pkl":
        (136662, 35405932, "BRONZE", 763, 176, 1418.42, 28383, 46293,
         "OnlineL2_SplineMPE", 59723.32051140),
    "run00136766-evt000007637140-GOLD.pkl":
        (136766, 7637140, "GOLD", 1781, 321, 2875.62, 731452, 751088,
         "OnlineL2_SplineMPE", 59754.67588432),
}
FILES = sorted(PINNED)


@pytest.fixture(scope="module")
def events():
    return {name: load_event(DATA / name) for name in FILES}


def _message(name: str) -> dict:
    raw = (DATA / name).read_bytes()
    return realtime.restricted_loads(raw) if name.endswith(".pkl") else json.loads(raw)


def test_all_eight_files_present():
    assert sorted(p.name for p in DATA.iterdir() if p.suffix in (".json", ".pkl")) == FILES


@pytest.mark.parametrize("name", FILES)
def test_real_event_pinned(events, name):
    run, evt, etype, npul, ndom, qtot, t0, t1, seed0, mjd = PINNED[name]
    ev = events[name]
    p = ev.pulses
    assert (ev.run_id, ev.event_id, ev.event_type) == (run, evt, etype)
    assert (len(p), p.n_doms) == (npul, ndom)
    assert ev.total_charge == pytest.approx(qtot, abs=0.006)
    assert (p.time.min(), p.time.max()) == (t0, t1)
    assert p.time.max() - p.time.min() < 25_000  # one ~20 µs event window
    assert np.all(p.charge > 0)
    assert np.all(np.diff(p.time) >= 0)
    assert np.all((p.om >= 1) & (p.om <= 60)) and np.all((p.string >= 1) & (p.string <= 86))
    assert np.all(np.abs(p.z) < 600) and np.all(np.hypot(p.x, p.y) < 700)
    assert ev.mjd == pytest.approx(mjd, abs=2e-8)
    assert ev.seeds and ev.seeds[0].name == seed0
    assert ev.meta["is_real_event"] is True
    assert ev.geometry == "icecube86"


@pytest.mark.parametrize("name", FILES)
def test_ids_match_file_names_and_message(events, name):
    ev = events[name]
    m = re.match(r"run0*(\d+)-evt0*(\d+)", name) or re.match(r"(\d+)_(\d+)\.json$", name)
    if m:
        assert (ev.run_id, ev.event_id) == (int(m.group(1)), int(m.group(2)))
    data = _message(name)["value"]["data"]
    if isinstance(data, dict):
        assert (ev.run_id, ev.event_id) == (data["run_id"], data["event_id"])
        assert data["unique_id"] == f"run{ev.run_id:08d}.evt{ev.event_id:012d}"
        assert ev.meta["utc"] == data["eventtime"]  # P header start, to the microsecond


# old HESE messages carry no reco metadata to compare with
WITH_METADATA = [n for n in FILES if isinstance(_message(n)["value"]["data"], dict)]


def test_some_files_carry_reco_metadata():
    assert len(WITH_METADATA) >= 3


@pytest.mark.parametrize("name", WITH_METADATA)
def test_seed_directions_equal_file_metadata(events, name):
    data = _message(name)["value"]["data"]
    reco = data["reco"]
    seeds = {s.name: s for s in events[name].seeds}
    best = reco.get("l2_online_bestfit") or reco.get("onlineL2_bestfit")
    pairs = [("SplineMPE", reco["splinempe"]), ("BestFit", best)]
    checked = 0
    for suffix, ref in pairs:
        (seed,) = [s for n, s in seeds.items() if n.endswith("_" + suffix)]
        assert round(seed.zenith, 5) == pytest.approx(ref["zen"], abs=1e-12)
        assert round(seed.azimuth, 5) == pytest.approx(ref["azi"], abs=1e-12)
        checked += 1
    assert checked == 2


def test_superdst_matches_full_precision_pulses():
    """2016 files carry both SuperDST and full-precision pulses: they agree within the codec."""
    for name in ("hese_event_00.json", "hese_event_02.json"):
        a = load_event(DATA / name, pulses="InIceDSTPulses").pulses
        b = load_event(DATA / name, pulses="UncleanedInIcePulses").pulses
        assert len(a) == len(b) > 500
        oa = np.lexsort((a.time, a.om, a.string))
        ob = np.lexsort((b.time, b.om, b.string))
        assert np.array_equal(a.string[oa], b.string[ob]) and np.array_equal(a.om[oa], b.om[ob])
        assert np.abs(a.time[oa] - b.time[ob]).max() <= 0.5 + 1e-3
        assert np.abs(a.charge[oa] - b.charge[ob]).max() <= 0.025 + 1e-4


def test_pulse_series_option_and_icetop_drop(caplog):
    gold = DATA / "run00136766-evt000007637140-GOLD.pkl"
    with caplog.at_level(logging.INFO, logger="skyscan_tui.realtime"):
        ev = load_event(gold, pulses="I3SuperDST")
    assert ev.meta["pulse_series"] == "I3SuperDST"
    assert ev.meta["dropped_icetop_pulses"] == 14
    assert ev.meta["dropped_unknown_dom_pulses"] == 1
    assert len(ev.pulses) == 5615 - 15
    assert "dropped 14 IceTop pulses" in caplog.text
    readout = load_event(gold, pulses="InIceDSTPulses")
    assert len(readout.pulses) > 1781
    with pytest.raises(EventFileError, match="no pulse series 'Nope'.*SplitUncleanedInIcePulses"):
        load_event(gold, pulses="Nope")
    with pytest.raises(EventFileError, match="not a pulse series|no pulse series"):
        load_event(gold, pulses="OnlineL2_SplineMPE")


def test_geometry_option_hex_drops_unknown_doms():
    ev = load_event(DATA / "hese_event_00.json", geometry="hex")
    assert ev.geometry.startswith("hex")
    assert len(ev.pulses) + ev.meta["dropped_unknown_dom_pulses"] == 635


def test_event_digest_and_native_roundtrip(events, tmp_path):
    from skyscan_tui.events import event_digest, save_event

    ev = events["hese_event_01.json"]
    save_event(ev, tmp_path / "e.json")
    back = load_event(tmp_path / "e.json")
    assert event_digest(back) == event_digest(ev)
    assert back.meta["is_real_event"] is True and back.event_type == "HESE"


def test_i3time_to_mjd_leap_seconds():
    # 2017-01-01 00:00:00 UTC follows the leap second at the end of MJD 57753 (2016-12-31)
    assert realtime.i3time_to_mjd(2017, 0) == 57754.0
    # 2016-12-31 23:59:60 → still day 57753; one second later daqTime counts 366 days + 1 s
    day_ticks = 86400 * 10**10
    assert realtime.i3time_to_mjd(2016, 366 * day_ticks + 10**10) == pytest.approx(57754.0)
    assert realtime.i3time_to_mjd(2016, 0) == 57388.0


def test_crc32c_raw_register():
    # standard CRC-32C("123456789") = 0xE3069283 uses init/final inversion; the raw register
    # with init 0 must reproduce it once the inversion is applied by hand
    data = b"123456789"
    pre = bytes(b ^ 0xFF for b in data[:4]) + data[4:]  # init 0xFFFFFFFF == xor first 4 bytes
    assert realtime.crc32c_raw(pre) ^ 0xFFFFFFFF == 0xE3069283


def test_info_cli_json_real_and_native(sim_event_file):
    r = run_cli("info", DATA / "run00136662-evt000035405932-BRONZE.pkl", "--json")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    for key in ("run_id", "event_id", "mjd", "n_pulses", "n_doms", "total_charge", "seeds"):
        assert key in info
    assert (info["run_id"], info["event_id"], info["n_pulses"], info["n_doms"]) == \
        (136662, 35405932, 763, 176)
    s0 = info["seeds"][0]
    assert s0["name"] == "OnlineL2_SplineMPE"
    assert math.radians(s0["zenith"]) == pytest.approx(1.51078, abs=6e-6)
    for key in ("name", "zenith", "azimuth", "ra", "dec", "x", "y", "z", "time"):
        assert key in s0
    assert 0 <= s0["ra"] < 360 and -90 <= s0["dec"] <= 90
    assert info["best_seed"]["name"] == s0["name"]
    r = run_cli("info", sim_event_file, "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["n_pulses"] > 0
    r = run_cli("info", DATA / "hese_event_00.json", "--pulses", "InIceDSTPulses")
    assert r.returncode == 0, r.stderr
    assert "Run 127907 event 16605651 (HESE)" in r.stdout
    assert "series InIceDSTPulses" in r.stdout and "RA" in r.stdout


def test_seed_radec_matches_coords(events):
    from skyscan_tui.coords import equatorial_to_local
    from skyscan_tui.eventinfo import event_info

    ev = events["run00136766-evt000007637140-GOLD.pkl"]
    s = event_info(ev)["seeds"][0]
    zen, azi = equatorial_to_local(math.radians(s["ra"]), math.radians(s["dec"]), ev.mjd)
    assert float(zen) == pytest.approx(ev.seeds[0].zenith, abs=1e-7)
    assert float(azi) == pytest.approx(ev.seeds[0].azimuth, abs=1e-7)


def test_pickle_of_message_loads_without_globals():
    msg = _message("run00136766-evt000007637140-GOLD.pkl")
    assert msg["varname"] == "realtimeEventData"
    assert pickle.dumps(msg, protocol=3)  # a plain dict: nothing but data
