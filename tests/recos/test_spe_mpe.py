"""SPE / MPE track fits: vertex recovery, rotation equivariance, batching independence,
cleaning and first guess, a small real scan, the pointed variants and the simulator knob."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from recos import available_recos, get_reco
from recos.track.cleaning import clean_hits
from recos.track.frame import track_direction
from recos.track.objective import TrackObjective
from recos.track.prepare import line_fit, prepare_track
from skyscan_tui.errors import UserError
from skyscan_tui.events import Event, Pulses, Seed, event_digest
from skyscan_tui.simulate import SimConfig, simulate_event
from skyscan_tui.tasks import TaskBatch
from tests.conftest import run_cli


@pytest.fixture(scope="module")
def quiet_event() -> Event:
    """10 TeV track without dark noise."""
    return simulate_event(SimConfig(seed=11, zenith_deg=70.0, azimuth_deg=200.0,
                                    noise_rate=0.0))


def _batch(zen, azi, seed, rnd=0, variation=None) -> TaskBatch:
    zen, azi = np.atleast_1d(zen).astype(float), np.atleast_1d(azi).astype(float)
    n = zen.size
    var = np.zeros(n, np.int32) if variation is None else np.asarray(variation, np.int32)
    return TaskBatch(0, rnd, np.full(n, 8, np.int32), np.arange(n), var, zen, azi,
                     np.tile(np.asarray(seed, float), (n, 1)))


def _angle(z1, a1, z2, a2) -> float:
    return float(np.degrees(np.arccos(np.clip(
        track_direction(z1, a1) @ track_direction(z2, a2), -1, 1))))


def test_registered():
    from skyscan_tui.app_api import best_reco

    assert best_reco() == "auto"  # the README main job: SPE1st or MPE, whichever is calibrated
    names = available_recos()
    for name in ("spe", "mpe", "spe_pointed", "mpe_pointed", "auto"):
        assert name in names
        cls = get_reco(name)
        assert cls.name == name


@pytest.mark.parametrize("name", ["spe", "mpe"])
def test_fit_at_true_direction_recovers_vertex(quiet_event, name):
    reco = get_reco(name)()
    prep = reco.prepare(quiet_event)
    tr = quiet_event.truth
    res = reco.fit_pixels(prep, _batch(tr.zenith, tr.azimuth, prep.seed))
    u = track_direction(tr.zenith, tr.azimuth)
    v = np.array([res["x"][0], res["y"][0], res["z"][0]]) - np.array([tr.x, tr.y, tr.z])
    along = v @ u
    assert np.linalg.norm(v - along * u) < 3.0  # [m] transverse
    # time within 3 m of light travel (SPE1st fits a little early: a bright DOM's first
    # pulse is the first of several photons)
    assert abs(res["t"][0] - (tr.time + along / 0.299792458)) * 0.299792458 < 3.0
    assert np.isfinite(res["llh"][0])


@pytest.mark.parametrize("name", ["spe", "mpe"])
def test_early_noise_hit_does_not_trap_the_fit(name):
    """1 TeV track whose cleaned hits keep a noise hit 230 ns early at the truth: before
    descending from two start times, the fit there ended 6 above the optimum near the true
    vertex (truth outside every contour)."""
    event = simulate_event(SimConfig(seed=1087, energy=1e3))
    reco = get_reco(name)()
    prep = reco.prepare(event)
    tr = event.truth
    batch = _batch(tr.zenith, tr.azimuth, prep.seed)
    obj, _ = reco.objective(prep, batch)
    rel = tr.pos - obj.r_ref[0]
    along = rel @ obj.u[0]
    truth = np.array([[[rel @ obj.e1[0], rel @ obj.e2[0],
                        tr.time - along / 0.299792458 - obj.t_ref[0]]]])
    llh_truth = obj(truth, np.arange(1))[0, 0]
    _, params, llh = reco.fit_params(prep, batch)
    assert llh[0] <= llh_truth + 1e-3
    assert np.linalg.norm(params[0, :2] - truth[0, 0, :2]) < 10.0  # [m]


def test_objective_rows_may_repeat(sim_event):
    reco = get_reco("mpe")()
    prep = reco.prepare(sim_event)
    rng = np.random.default_rng(4)
    n = 4
    obj, start = reco.objective(prep, _batch(rng.uniform(0.5, 2.5, n), rng.uniform(0, 6, n),
                                             prep.seed))
    rows = np.array([0, 0, 1, 3])  # as long as the batch, first 0, last n-1: not all rows
    x = start[rows][:, None, :]
    want = np.array([obj(start[r][None, None, :], np.array([r]))[0, 0] for r in rows])
    assert np.allclose(obj(x, rows)[:, 0], want, rtol=0, atol=1e-9)


def test_fit_refined_from_far_seed_converges(quiet_event):
    reco = get_reco("spe")()
    prep = reco.prepare(quiet_event)
    tr = quiet_event.truth
    seed = np.array([tr.x, tr.y, tr.z, tr.time])
    near = reco.fit_pixels(prep, _batch(tr.zenith, tr.azimuth, seed, rnd=1))
    grid = reco.fit_pixels(prep, _batch(tr.zenith, tr.azimuth, prep.seed, rnd=0))
    # the same optimum to well under the 0.69 in −log L of a Wilks-50 % contour
    assert near["llh"][0] == pytest.approx(grid["llh"][0], abs=0.1)


def _rotate_event(ev: Event, alpha: float) -> Event:
    c, s = np.cos(alpha), np.sin(alpha)
    p = ev.pulses
    x, y = c * p.x - s * p.y, s * p.x + c * p.y
    pulses = Pulses.from_arrays(p.string, p.om, x, y, p.z, p.time, p.charge)

    def rot(seed: Seed) -> Seed:
        return dataclasses.replace(seed, x=c * seed.x - s * seed.y, y=s * seed.x + c * seed.y,
                                   azimuth=float(np.mod(seed.azimuth + alpha, 2 * np.pi)))

    return dataclasses.replace(ev, pulses=pulses, seeds=tuple(rot(s_) for s_ in ev.seeds),
                               truth=rot(ev.truth))


@pytest.mark.parametrize("name", ["spe", "mpe"])
def test_rotation_rotates_best_fit(sim_event, name):
    """Rotating event and detector about z rotates the fit: same −log L, rotated vertex."""
    alpha = 1.1
    rot = _rotate_event(sim_event, alpha)
    reco = get_reco(name)()
    tr = sim_event.truth
    dz = np.repeat(np.radians([-1.0, 0.0, 1.0]), 3)
    da = np.tile(np.radians([-1.0, 0.0, 1.0]), 3)
    zen, azi = tr.zenith + dz, tr.azimuth + da
    p1 = reco.prepare(sim_event)
    p2 = reco.prepare(rot)
    r1 = reco.fit_pixels(p1, _batch(zen, azi, p1.seed))
    r2 = reco.fit_pixels(p2, _batch(zen, np.mod(azi + alpha, 2 * np.pi), p2.seed))
    assert np.argmin(r1["llh"]) == np.argmin(r2["llh"])
    assert np.allclose(r1["llh"], r2["llh"], rtol=0, atol=1e-3)
    c, s = np.cos(alpha), np.sin(alpha)
    assert np.allclose(c * r1["x"] - s * r1["y"], r2["x"], atol=0.05)
    assert np.allclose(s * r1["x"] + c * r1["y"], r2["y"], atol=0.05)
    assert np.allclose(r1["z"], r2["z"], atol=0.05)
    # the best of the 3x3 directions is the one nearest the truth (no direction bias)
    assert np.argmin(r1["llh"]) == 4


@pytest.mark.parametrize("name", ["spe", "mpe"])
def test_pixel_independent_of_batch(sim_event, name):
    reco = get_reco(name)(variations=3)
    prep = reco.prepare(sim_event)
    rng = np.random.default_rng(4)
    n = 12
    zen, azi = np.arccos(rng.uniform(-1, 1, n)), rng.uniform(0, 2 * np.pi, n)
    for rnd in (0, 1):
        full = reco.fit_pixels(prep, _batch(zen, azi, prep.seed, rnd=rnd,
                                            variation=np.arange(n) % 3))
        for i in (0, 5, 11):
            one = reco.fit_pixels(prep, _batch(zen[i], azi[i], prep.seed, rnd=rnd,
                                               variation=[i % 3]))
            for f in ("llh", "x", "y", "z", "t", "variation"):
                assert one[f].tobytes() == full[f][i:i + 1].tobytes(), f


def test_chunked_evaluation_gives_identical_values(sim_event, monkeypatch):
    import recos.track.objective as track

    reco = get_reco("mpe")()
    prep = reco.prepare(sim_event)
    rng = np.random.default_rng(2)
    n = 9
    batch = _batch(np.arccos(rng.uniform(-1, 1, n)), rng.uniform(0, 6, n), prep.seed)
    whole = reco.fit_pixels(prep, batch)
    monkeypatch.setattr(track, "_MAX_ELEMENTS", 50)  # one pixel per chunk
    chunked = reco.fit_pixels(prep, batch)
    assert whole.tobytes() == chunked.tobytes()


def test_prepare_cleans_noise_and_orders_doms(sim_event):
    noisy = prepare_track(sim_event, use_charge=True, max_npe=50)
    assert noisy.pos.shape[0] < noisy.n_doms_in
    assert noisy.npe.max() <= 50 and noisy.npe.min() >= 1
    assert (noisy.npe[:noisy.n_multi] > 1).all() and (noisy.npe[noisy.n_multi:] == 1).all()
    # the kept hits span at most the 6 µs window
    assert np.ptp(noisy.time) <= 6000.0


def test_clean_hits_drops_isolated_hits():
    pos = np.array([[0, 0, 0], [50, 0, 0], [100, 0, 0], [900, 900, 0], [0, 0, 10.0]])
    t = np.array([0.0, 200.0, 400.0, 300.0, 9000.0])
    assert list(clean_hits(pos, t)) == [0, 1, 2]


def test_seeded_rt_drops_noise_pairs_far_from_the_track():
    # a track along string 1 (local coincidences), a hit on string 2 next to it, and a pair
    # of hits 600 m away that are RT neighbours of each other only
    pos = np.array([[0, 0, 0], [0, 0, -17], [0, 0, -34], [120, 0, -20],
                    [600, 0, 0], [650, 0, 0.0]])
    t = np.array([0.0, 80.0, 160.0, 300.0, 200.0, 400.0])
    string = np.array([1, 1, 1, 2, 3, 4])
    om = np.array([10, 11, 12, 11, 5, 5])
    assert list(clean_hits(pos, t)) == [0, 1, 2, 3, 4, 5]  # classic RT keeps the pair
    assert list(clean_hits(pos, t, string=string, om=om)) == [0, 1, 2, 3]
    # no local coincidence at all: classic RT
    assert list(clean_hits(pos, t, string=np.arange(6), om=om)) == [0, 1, 2, 3, 4, 5]


def test_line_fit_and_seedless_event(sim_event):
    tr = sim_event.truth
    no_seed = dataclasses.replace(sim_event, seeds=())
    prep = prepare_track(no_seed, use_charge=False, max_npe=1)
    assert prep.seed_name == "LineFit"
    assert _angle(*prep.seed_dir, tr.zenith, tr.azimuth) < 25.0
    r, t, zen, azi = line_fit(np.array([[0, 0, 0], [0, 0, -30.0]]), np.array([0.0, 100.0]))
    assert zen == pytest.approx(0.0, abs=1e-9)  # moving down ⇒ comes from zenith 0


def test_objective_finite_at_zero_distance_and_extremes(sim_event):
    prep = prepare_track(sim_event, use_charge=True, max_npe=50)
    u = track_direction(np.array([0.3]), np.array([1.0]))
    r_ref = prep.pos[:1].copy()  # the track passes through a DOM
    for noise in (np.log(1e-6), -np.inf):
        obj = TrackObjective(prep, u, r_ref, np.array([prep.time[0]]), 4.0, noise, True)
        x = np.array([[[0.0, 0.0, 0.0], [0.0, 0.0, 1e7], [0.0, 0.0, -1e7], [5e4, 0, 0]]])
        f = obj(x, np.array([0]))
        assert np.isfinite(f).all()


@pytest.mark.parametrize("noise", [1e-6, 0.0])
@pytest.mark.parametrize("mpe", [False, True])
def test_fast_objective_equals_reference_formula(sim_event, mpe, noise):
    """The fast path (noise floor folded into the table, single-precision ξ index) agrees
    per DOM with logaddexp(log p_c(t_res; ξ(d)) [+ log N + (N-1) log S_c], log p_noise)."""
    from recos.track.constants import EFF_A0, EFF_A1, PANDEL_LAMBDA
    from recos.track.constants import K_OVER_C as _K_OVER_C
    from recos.track.pandel import convoluted_logpdf
    from recos.track.table import XI_MAX, XI_MIN

    prep = prepare_track(sim_event, use_charge=mpe, max_npe=50)
    rng = np.random.default_rng(2)
    n = 5
    u = track_direction(np.arccos(rng.uniform(-1, 1, n)), rng.uniform(0, 6, n))
    r_ref = np.tile(prep.cog, (n, 1))
    t_ref = np.full(n, float(np.median(prep.time)))
    log_noise = np.log(noise) if noise else -np.inf
    obj = TrackObjective(prep, u, r_ref, t_ref, 4.0, log_noise, mpe)
    assert (obj._fold is not None) == (noise > 0)  # no floor: the general path
    x = rng.normal(0.0, [60.0, 60.0, 300.0], (n, 9, 3))
    x[:, 0, 2] = 2e4  # residuals before the table
    x[:, 1, 2] = -2e4  # and beyond it
    rows = np.arange(n)
    res, d = obj.residuals(x, rows)
    assert np.allclose(res, obj.D[:, None, :] - x[..., 2:] - _K_OVER_C * d)
    logxi = np.log(EFF_A1 * d + EFF_A0) - np.log(PANDEL_LAMBDA)
    lp, ls = obj.table.logpdf(res, logxi, logsf=True)
    k = prep.n_multi if mpe else 0
    lp[..., :k] += np.log(prep.npe[:k]) + (prep.npe[:k] - 1) * ls[..., :k]
    expect = np.logaddexp(lp, log_noise)
    got = obj.per_dom_logl(x, rows)
    # interpolating log(p + noise) or log p differ by the table's interpolation error
    err = got - expect
    assert np.isfinite(got).all()
    assert np.abs(err).max() < (0.03 if noise else 1e-3) and np.sqrt(np.mean(err**2)) < 3e-3
    assert np.allclose(obj(x, rows), -got.sum(axis=-1))
    if not mpe:  # and both are as close to the exact convoluted Pandel
        xi = np.clip(np.exp(logxi), XI_MIN, XI_MAX)
        exact = np.logaddexp(convoluted_logpdf(res, xi, 4.0), log_noise)
        # without a floor: where it matters (as test_table_close_to_exact), the table's
        # own interpolation error
        near = exact > -30
        assert np.sqrt(np.mean((got - exact)[near] ** 2)) < (3e-3 if noise else 0.01)


def test_options_and_likelihood_text():
    spe = get_reco("spe")(jitter="8", noise_prob="1e-7")
    assert "SPE1st" in spe.likelihood and "sigma=8 ns" in spe.likelihood
    mpe = get_reco("mpe")(max_npe=20, variations=3)
    assert mpe.n_variations == 3 and "capped at 20" in mpe.likelihood
    with pytest.raises(UserError):
        get_reco("spe")(max_npe=3)
    with pytest.raises(UserError):
        get_reco("spe")(jitter=-1)
    with pytest.raises(UserError):
        get_reco("spe")(kernel="fortran")
    empty = dataclasses.replace(simulate_event(SimConfig(seed=2)),
                                pulses=Pulses.from_arrays(*[np.zeros(0)] * 7))
    with pytest.raises(UserError):
        get_reco("spe")().prepare(empty)


def test_mpe_timing_error_widens_only_the_mpe_pdf(sim_event):
    spe, mpe = get_reco("spe")(), get_reco("mpe")()
    prep = mpe.prepare(sim_event)
    assert prep.n_multi > 0
    assert spe.sigma(spe.prepare(sim_event)) == 4.0 and mpe.sigma(prep) == 4.0  # defaults
    assert "sigma=4 ns;" in mpe.likelihood
    wide = get_reco("mpe")(timing_error=48**0.5)  # in quadrature: hypot(4, sqrt(48)) = 8
    assert wide.sigma(prep) == 8.0
    assert "sigma=8 ns: jitter 4 ns + timing error 6.93 ns" in wide.likelihood
    batch = _batch([1.0, 2.0], [0.5, 3.0], prep.seed)
    assert wide.objective(prep, batch)[0].table.sigma == 8.0
    assert mpe.objective(prep, batch)[0].table.sigma == 4.0
    # auto: MPE's σ when it chooses MPE, the jitter alone when it chooses SPE1st
    auto = get_reco("auto")(timing_error=3)
    dim = simulate_event(SimConfig(seed=21, energy=1e3))
    bright = simulate_event(SimConfig(seed=21, energy=1e5))
    assert auto.sigma(auto.prepare(dim)) == 4.0 and auto.sigma(auto.prepare(bright)) == 5.0
    with pytest.raises(UserError):
        get_reco("mpe")(timing_error=-1)
    with pytest.raises(UserError):
        get_reco("spe")(timing_error=1)  # SPE1st has no timing error



@pytest.mark.parametrize("name", ["spe", "mpe", "auto"])
def test_pull_only_rescales_the_surface(name):
    from recos.track.pull import log_pull2

    event = simulate_event(SimConfig(seed=21, energy=1e4))
    plain, pulled = get_reco(name)(pull="none"), get_reco(name)()
    prep = pulled.prepare(event)
    assert prep.n_bright == int((np.rint(prepare_track(event, True, 1000).npe) >= 2).sum())
    kind = "MPE" if pulled.uses_mpe(prep) else "SPE1st"
    p = pulled.pull(prep)
    assert p == pytest.approx(np.exp(0.5 * log_pull2(kind, prep.n_bright)))
    assert plain.pull(prep) == 1.0 and get_reco(name)(pull="1.5").pull(prep) == 1.5
    rng = np.random.default_rng(4)
    batch = _batch(np.arccos(rng.uniform(-1, 1, 6)), rng.uniform(0, 6, 6), prep.seed)
    a, b = plain.fit_pixels(prep, batch), pulled.fit_pixels(prep, batch)
    np.testing.assert_allclose(b["llh"], a["llh"] / p**2, rtol=1e-12)
    for field in ("x", "y", "z", "t"):  # same fits: the best fit does not move
        assert np.array_equal(a[field], b[field])
    assert (f"p={p:.3g} for {prep.n_bright} DOMs with >= 2 photons: pull calibrated on the "
            "matched simulation (bulk ice)") in pulled.likelihood_for(prep)
    assert "no pull correction" in plain.likelihood_for(prep)


def test_pull_curves_and_option(sim_event_file, tmp_path):
    from recos.track.pull import LOG_PULL2, PULL_KNOTS, log_pull2

    # beyond the end knots the curve is flat; between them linear in log M
    for kind, values in LOG_PULL2.items():
        assert log_pull2(kind, 0) == log_pull2(kind, 1) == values[0]
        assert log_pull2(kind, 10 * PULL_KNOTS[-1]) == values[-1]
        mid = np.sqrt(PULL_KNOTS[1] * PULL_KNOTS[2])
        assert log_pull2(kind, mid) == pytest.approx(0.5 * (values[1] + values[2]))
    # what the calibration found (docs/reconstructions.md, "Pull correction"): SPE1st's surface
    # is too wide once DOMs see several photons (p < 1), MPE's too narrow for dim events
    assert log_pull2("SPE1st", 100) < -0.3 and log_pull2("MPE", 10) > 0.2
    for bad in ("0", "-1", "nan", "11", "sometimes", ""):
        with pytest.raises(UserError, match="reco option pull"):
            get_reco("spe")(pull=bad)
    out = tmp_path / "scan"
    r = run_cli("scan", sim_event_file, "--reco", "spe", "--reco-opt", "pull=0", "-o", out)
    assert r.returncode == 2 and "reco option pull" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not out.exists()

@pytest.mark.slow  # the first run compiles the kernel (~10-30 s), later runs use the cache
@pytest.mark.parametrize("name, opts", [("spe", {}), ("mpe", {}),
                                         ("mpe", {"timing_error": 48**0.5})])
def test_numba_kernel_matches_numpy(sim_event, name, opts):
    pytest.importorskip("numba")
    ref = get_reco(name)(**opts)
    fast = get_reco(name)(kernel="numba", **opts)
    prep = ref.prepare(sim_event)
    rng = np.random.default_rng(8)
    n = 6
    batch = _batch(np.arccos(rng.uniform(-1, 1, n)), rng.uniform(0, 6, n), prep.seed)
    obj_ref, start = ref.objective(prep, batch)
    obj_fast, _ = fast.objective(prep, batch)
    x = start[:, None, :] + rng.normal(0.0, 40.0, (n, 7, 3))
    x[:, 0, 2] = 2e4  # beyond the table (plain Pandel tail)
    x[:, 1, 2] = -2e4  # before the table (Gaussian tail)
    rows = np.arange(n)
    # numpy takes the ξ-axis coordinate's log in single precision (~1e-5 of a node step)
    assert np.allclose(obj_fast(x, rows), obj_ref(x, rows), rtol=1e-10, atol=1e-3)


@pytest.mark.parametrize("energy, chosen", [(1e3, "spe"), (1e5, "mpe")])
def test_auto_fits_exactly_as_the_reco_it_chooses(energy, chosen):
    event = simulate_event(SimConfig(seed=21, energy=energy))
    auto = get_reco("auto")()
    prep = auto.prepare(event)
    other = get_reco(chosen)()
    n_multi = prepare_track(event, True, 100).n_multi
    assert (n_multi >= 30) == (chosen == "mpe")
    assert auto.uses_mpe(prep) == (chosen == "mpe")
    text = auto.likelihood_for(prep)
    assert text.startswith(f"auto chose {'MPE' if chosen == 'mpe' else 'SPE1st'} (")
    assert other.likelihood.split(" (")[0] in text
    rng = np.random.default_rng(3)
    n = 12
    batch = _batch(np.arccos(rng.uniform(-1, 1, n)), rng.uniform(0, 6, n), prep.seed)
    got = auto.fit_pixels(prep, batch)
    want = other.fit_pixels(other.prepare(event), batch)
    for field in got.dtype.names:
        assert np.array_equal(got[field], want[field], equal_nan=got[field].dtype.kind == "f"), field


def test_auto_real_detector_path():
    """Real events and the realistic simulation take one path: layered ice, the brightness
    cut, the realistic pull calibration; the matched simulation keeps bulk ice."""
    sim = simulate_event(SimConfig(seed=21, energy=1e5))
    real = dataclasses.replace(sim, meta={**sim.meta, "is_real_event": True})
    realistic = simulate_event(SimConfig(seed=21, energy=1e5, ice="spice_mie"))
    assert realistic.meta["sim_ice"] == "spice_mie"
    auto = get_reco("auto")()
    p_sim = auto.prepare(sim)
    assert auto.uses_mpe(p_sim) and not auto.layered(p_sim)
    assert auto.calibration(p_sim) == "matched"
    for event in (real, realistic):
        prep = auto.prepare(event)
        assert prep.real_detector and auto.layered(prep) and auto.uses_mpe(prep)
        assert auto.calibration(prep) == "realistic"
        text = auto.likelihood_for(prep)
        assert "layered ice" in text
        assert text.endswith("pull calibrated on the realistic simulation (SPICE Mie)")
    # ice=bulk on a real event: the realistic curve was not fitted so, the matched one applies
    bulk = get_reco("auto")(ice="bulk")
    prep = bulk.prepare(real)
    assert not bulk.layered(prep) and bulk.calibration(prep) == "matched"
    # the old behaviour on request: SPE1st on every real event
    spe_only = get_reco("auto")(real_mpe="false")
    prep = spe_only.prepare(real)
    assert not spe_only.uses_mpe(prep)
    assert spe_only.likelihood_for(prep).startswith("auto chose SPE1st (real event")
    spe_prep = get_reco("spe")().prepare(real)
    assert np.array_equal(prep.time, spe_prep.time) and np.array_equal(prep.pos, spe_prep.pos)
    with pytest.raises(UserError, match="reco option ice"):
        get_reco("auto")(ice="deep")


def test_auto_cut_option():
    event = simulate_event(SimConfig(seed=21, energy=1e3))
    assert get_reco("auto")(min_multi=0).uses_mpe(get_reco("auto")(min_multi=0).prepare(event))
    with pytest.raises(UserError):
        get_reco("auto")(min_multi=-1)


def _scan(event, reco, progression, **opts):
    from executors.serial import SerialExecutor
    from skyscan_tui import sky
    from skyscan_tui.engine import ScanEngine, ScanFinished, ScanSettings

    engine = ScanEngine(event, ScanSettings(reco=reco, reco_options=opts,
                                            progression=sky.parse_progression(progression)),
                        SerialExecutor())
    for upd in engine.run():
        if isinstance(upd, ScanFinished):
            return upd.result
    raise AssertionError("scan did not finish")


def test_small_scan_finds_truth(sim_event):
    res = _scan(sim_event, "spe", "8:0,64:4")
    best = res.best()
    tr = sim_event.truth
    assert _angle(best.zenith, best.azimuth, tr.zenith, tr.azimuth) < 2.0
    assert "Gauss-convoluted Pandel" in res.likelihood


def test_auto_scan_result_names_the_chosen_likelihood(sim_event):
    res = _scan(sim_event, "auto", "8:0")
    assert res.reco == "auto"
    assert res.likelihood.startswith("auto chose ")
    assert "Gauss-convoluted Pandel" in res.likelihood


def test_pointed_scan_covers_a_disc(sim_event):
    res = _scan(sim_event, "mpe_pointed", "8:0,64:2", radius_deg=10.0)
    assert len(res.levels[8]) < 12  # a disc, not the sky
    best = res.best()
    tr = sim_event.truth
    assert _angle(best.zenith, best.azimuth, tr.zenith, tr.azimuth) < 3.0


def test_ice_mismatch_is_seeded_and_default_unchanged():
    base = simulate_event(SimConfig(seed=5))
    assert event_digest(base) == event_digest(simulate_event(SimConfig(seed=5,
                                                                       ice_mismatch=0.0)))
    a = simulate_event(SimConfig(seed=5, ice_mismatch=0.3))
    b = simulate_event(SimConfig(seed=5, ice_mismatch=0.3))
    assert event_digest(a) == event_digest(b) != event_digest(base)
    assert a.meta["ice_mismatch"] == 0.3 and "ice_mismatch" not in base.meta
    with pytest.raises(UserError):
        simulate_event(SimConfig(seed=5, ice_mismatch=2.0))


def test_cli_simulate_ice_mismatch_bare(tmp_path):
    from skyscan_tui.events import load_event

    out = tmp_path / "ev.json"
    proc = run_cli("simulate", "-o", out, "--seed", "3", "--ice-mismatch")
    assert proc.returncode == 0, proc.stderr
    assert load_event(out).meta["ice_mismatch"] == 0.2
    bad = run_cli("simulate", "-o", out, "--ice-mismatch", "-1")
    assert bad.returncode == 2 and "ice-mismatch" in bad.stderr
    assert "Traceback" not in bad.stderr
