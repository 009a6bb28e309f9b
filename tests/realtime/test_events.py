"""Event model, native file format and simulator."""

from __future__ import annotations

import json

import numpy as np
import pytest

from skyscan_tui.errors import EventFileError
from skyscan_tui.events import Event, Pulses, Seed, event_digest, load_event, save_event
from skyscan_tui.simulate import SimConfig, simulate_event


def _assert_same_event(a: Event, b: Event) -> None:
    assert (a.run_id, a.event_id, a.mjd, a.event_type, a.geometry) == (
        b.run_id, b.event_id, b.mjd, b.event_type, b.geometry)
    for f in ("string", "om", "x", "y", "z", "time", "charge"):
        np.testing.assert_array_equal(getattr(a.pulses, f), getattr(b.pulses, f))
    assert a.seeds == b.seeds or all(
        _seed_eq(s, t) for s, t in zip(a.seeds, b.seeds, strict=True))
    assert (a.truth is None) == (b.truth is None)
    if a.truth is not None:
        assert _seed_eq(a.truth, b.truth)
    assert a.meta == b.meta


def _seed_eq(s: Seed, t: Seed) -> bool:
    return all(getattr(s, f) == getattr(t, f) or (np.isnan(getattr(s, f)) and np.isnan(getattr(t, f)))
               for f in ("x", "y", "z", "time", "zenith", "azimuth", "energy")) and s.name == t.name


def test_roundtrip_every_field(tmp_path, sim_event):
    path = tmp_path / "ev.json"
    save_event(sim_event, path)
    back = load_event(path)
    _assert_same_event(sim_event, back)
    assert event_digest(back) == event_digest(sim_event)


def test_roundtrip_hand_made_event(tmp_path):
    pulses = Pulses.from_arrays([1, 2], [3, 60], [0.5, -1.25], [2.0, 3.0], [-400.0, 500.0],
                                [10.0, 5.5], [1.5, 0.25])
    ev = Event(123456, 42, 59000.123456789, "GOLD", pulses,
               seeds=(Seed("OnlineL2_SplineMPE", 1.0, 2.0, 3.0, 9000.0, 1.2, 3.4, 1e5),),
               truth=None, meta={"note": "hand made", "n": 3})
    save_event(ev, tmp_path / "e.json")
    _assert_same_event(ev, load_event(tmp_path / "e.json"))
    # pulses are sorted by time
    assert list(ev.pulses.time) == [5.5, 10.0]


def test_simulator_is_deterministic(tmp_path):
    a = simulate_event(SimConfig(seed=11))
    b = simulate_event(SimConfig(seed=11))
    save_event(a, tmp_path / "a.json")
    save_event(b, tmp_path / "b.json")
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    c = simulate_event(SimConfig(seed=12))
    assert event_digest(c) != event_digest(a)


def test_simulated_event_is_physical(sim_event):
    p = sim_event.pulses
    assert 50 < len(p) < 5000
    assert np.all(p.charge > 0)
    assert np.ptp(p.time) < 20_000
    truth = sim_event.truth
    seed = sim_event.best_seed
    assert truth is not None and seed is not None
    assert abs(np.rad2deg(truth.zenith) - 120.0) < 1e-9
    # the seed is the truth smeared by a few degrees
    from recos.dummy import direction_vector

    ang = np.rad2deg(np.arccos(direction_vector(truth.zenith, truth.azimuth)
                               @ direction_vector(seed.zenith, seed.azimuth)))
    assert 0.0 < ang < 10.0
    # light falls with distance: hit DOMs are close to the track
    from recos.track.frame import track_direction
    from skyscan_tui.simulate import cherenkov_geometry

    _, d = cherenkov_geometry(p.pos, truth.pos, track_direction(truth.zenith, truth.azimuth))
    assert np.median(d) < 80.0


@pytest.mark.parametrize("content, reason", [
    (b"", "empty file"),
    (b'{"format": "skyscan-event", "version": 1, "header": {', "invalid JSON"),
    (b'{"format": "skyscan-event", "version": 99}', "unsupported skyscan-event version"),
    (b'{"hello": 1}', "unknown event format"),
    (b"\x00\x01\x02garbage", "invalid JSON"),
    (b'[1, 2, 3]', "unknown event format"),
])
def test_bad_event_files(tmp_path, content, reason):
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    with pytest.raises(EventFileError) as err:
        load_event(path)
    assert reason in str(err.value)
    assert str(path) in str(err.value)
    assert "\n" not in str(err.value)


def test_missing_event_file(tmp_path):
    with pytest.raises(EventFileError, match="no such file"):
        load_event(tmp_path / "nope.json")


def test_corrupt_pulses_are_refused(tmp_path, sim_event):
    from skyscan_tui.events import event_to_dict

    obj = event_to_dict(sim_event)
    obj["pulses"]["time"] = obj["pulses"]["time"][:-1]
    path = tmp_path / "short.json"
    path.write_text(json.dumps(obj))
    with pytest.raises(EventFileError, match="differ in length"):
        load_event(path)
    obj = event_to_dict(sim_event)
    obj["pulses"]["charge"][0] = "x"
    path.write_text(json.dumps(obj))
    with pytest.raises(EventFileError, match="numbers"):
        load_event(path)
