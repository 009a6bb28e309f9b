"""Toy simulation of a through-going muon track, a cascade or a starting track [m, ns, GeV].

Light per DOM falls with the closest-approach distance d as
``μ = Λ(E) A_eff rde exp(-d/λ_att) / (2π max(d, 5 m))``; each photoelectron arrives at the
direct Cherenkov time plus a Pandel-distributed delay (Gamma with shape d_eff/λ and rate ρ)
and Gaussian PMT jitter; photoelectrons within 8 ns merge into one pulse; every DOM adds
Poisson dark noise (650 Hz over 10 µs). The event carries the truth and a seed track: the
truth smeared by a few degrees, as an online first-guess fit would be. Same seed ⇒ the same
event, bit for bit. The ice, refraction and jitter constants are the reconstruction's
(:mod:`recos.track.constants`, ``docs/reconstructions.md``): a default simulation is the
model the track fits assume.

``cascade=True``: a point-like particle shower at a vertex inside the detector instead —
``Y_c E`` photons from one point at one time, ``μ = Y_c E A_eff rde exp(-d/λ_att) /
(4π max(d, 5 m)²)`` at distance d, direct light at the group speed ``t_geo = t0 + d/c_g``,
the same Pandel delay (shape from d), jitter, merging and dark noise. ``starting=True``: a
muon that starts at such a vertex with a cascade of half the energy there; a DOM sees the
muon's light only from the track downstream of the vertex. Both draw from their own code
path, so through-going track events stay bit-identical for every seed.

``ice="spice_mie"`` (``simulate --ice spice_mie``): the realistic detector of
:mod:`skyscan_tui.simulate_realistic` instead of the fits' own model — layered SPICE Mie
ice along each DOM's path, the DOM-orientation term of the effective distance, a 10 %
efficiency spread, per-DOM noise rates (DeepCore's HQE DOMs noisier) and saturation; for
tracks, cascades and starting tracks alike, with the same charge smearing and pulse merging.
``ice_mismatch`` is the older toy perturbation of the bulk model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recos.track.constants import (
    C_GROUP,
    C_VACUUM,
    EFF_A0,
    EFF_A1,
    JITTER,
    K_CHERENKOV,
    N_PHASE,
    PANDEL_LAMBDA,
    PANDEL_LAMBDA_A,
    PANDEL_RHO,
    PANDEL_TAU,
)
from recos.track.frame import track_direction
from skyscan_tui.errors import UserError
from skyscan_tui.events import Event, Pulses, Seed
from skyscan_tui.geometry import Geometry, default_geometry

__all__ = ["SimConfig", "simulate_event", "simulate_contained", "cherenkov_geometry",
           "ice_perturbation", "SIM_ICE"]

#: the simulator's detector models: the fits' own bulk-ice model, or the realistic one
SIM_ICE = ("bulk", "spice_mie")

_Y_MU = 2.6e4  # Cherenkov photons per m of bare muon
_Y_CASCADE = 1.3e5  # photons per GeV of cascade light
_B_LOSS = 3.3e-4  # [1/m] stochastic loss coefficient


@dataclass(frozen=True)
class SimConfig:
    """Settings of one simulated event (angles [deg], energy [GeV], lengths [m], times [ns])."""

    seed: int = 1
    zenith_deg: float | None = None  # None = random (cos θ uniform)
    azimuth_deg: float | None = None
    energy: float = 1.0e4  # [GeV]
    mjd: float = 60000.0
    impact_radius: float = 400.0  # [m]
    a_eff: float = 5.0e-3  # [m²]
    att_length: float = 33.0  # [m]
    #: PMT jitter σ [ns]: by default the recos' own (IceCube's JitterTime), so a default
    #: simulation is the model the recos assume ("matched")
    jitter: float = JITTER  # [ns]
    noise_rate: float = 650.0  # [Hz]
    noise_window: float = 10_000.0  # [ns]
    seed_smear_deg: float = 2.0
    time_offset: float = 10_000.0  # [ns] event time of the vertex
    run_id: int = 0
    event_type: str = "SIM"
    #: relative size of the ice/detector model mismatch (0 = the reco's exact model); see
    #: :func:`ice_perturbation`
    ice_mismatch: float = 0.0
    #: a point-like cascade at an interior vertex instead of a through-going muon
    cascade: bool = False
    #: a muon starting at an interior vertex, with a cascade there
    starting: bool = False
    #: starting track: fraction of the energy in the cascade at the vertex (inelasticity y)
    inelasticity: float = 0.5
    #: "bulk": the reco's own model; "spice_mie": the realistic detector of
    #: :mod:`skyscan_tui.simulate_realistic` (layered ice, DOM orientation, efficiency
    #: spread, per-DOM noise rates, saturation)
    ice: str = "bulk"

    def validate(self) -> None:
        """UserError for settings out of range (angles [deg], energy, lengths)."""
        if self.zenith_deg is not None and not 0.0 <= self.zenith_deg <= 180.0:
            raise UserError("--zenith must be between 0 and 180 degrees")
        if self.azimuth_deg is not None and not (np.isfinite(self.azimuth_deg)
                                                 and -360.0 <= self.azimuth_deg <= 720.0):
            raise UserError("--azimuth must be between 0 and 360 degrees")
        if not (np.isfinite(self.energy) and 1.0 <= self.energy <= 1e9):
            raise UserError("--energy must be between 1 GeV and 1e9 GeV")
        if not (np.isfinite(self.mjd) and 15000.0 <= self.mjd <= 100000.0):
            raise UserError("--mjd must be between 15000 and 100000")
        if not 0 <= self.seed < 2**63:
            raise UserError("--seed must be a non-negative integer")
        if not (np.isfinite(self.ice_mismatch) and 0.0 <= self.ice_mismatch <= 1.0):
            raise UserError("--ice-mismatch must be between 0 and 1")
        if self.cascade and self.starting:
            raise UserError("--cascade and --starting exclude each other")
        if not 0.0 <= self.inelasticity <= 1.0:
            raise UserError("inelasticity must be between 0 and 1")
        if self.ice not in SIM_ICE:
            raise UserError(f"--ice must be one of {', '.join(SIM_ICE)}")
        if self.ice != "bulk" and self.ice_mismatch > 0:
            raise UserError("--ice-mismatch perturbs the bulk model: not with --ice "
                            f"{self.ice}")

    @property
    def realistic(self) -> bool:
        return self.ice != "bulk"

    def meta(self) -> dict:
        """The event metadata recording the detector model (empty for the matched one)."""
        return {**({"ice_mismatch": float(self.ice_mismatch)} if self.ice_mismatch > 0 else {}),
                **({"sim_ice": self.ice} if self.realistic else {})}


def cherenkov_geometry(pos: np.ndarray, vertex: np.ndarray, u: np.ndarray):
    """Distances along (l) and perpendicular to (d) the track [m]."""
    v = pos - vertex
    l_along = v @ u
    perp = v - np.outer(l_along, u)
    return l_along, np.linalg.norm(perp, axis=1)


def _smear(zenith: float, azimuth: float, sigma_deg: float, rng) -> tuple[float, float]:
    """Rotate a direction by a Rayleigh(σ) angle towards a uniform position angle."""
    d = -track_direction(zenith, azimuth)
    psi = np.deg2rad(sigma_deg) * np.sqrt(-2.0 * np.log(1.0 - rng.random()))
    phi = 2 * np.pi * rng.random()
    a = np.cross(d, [0.0, 0.0, 1.0]) if abs(d[2]) < 0.99 else np.cross(d, [1.0, 0.0, 0.0])
    a /= np.linalg.norm(a)
    b = np.cross(d, a)
    new = np.cos(psi) * d + np.sin(psi) * (np.cos(phi) * a + np.sin(phi) * b)
    return float(np.arccos(np.clip(new[2], -1, 1))), float(np.mod(np.arctan2(new[1], new[0]),
                                                                  2 * np.pi))


def simulate_event(cfg: SimConfig = SimConfig(), geometry: Geometry | None = None) -> Event:
    """One simulated event: a through-going muon, a contained cascade or a starting track.

    A cascade with ``cfg.cascade``, a starting track with ``cfg.starting``
    (:func:`simulate_contained`)."""
    cfg.validate()
    geo = geometry or default_geometry()
    if cfg.cascade or cfg.starting:
        return simulate_contained(cfg, geo)
    rng = np.random.default_rng(cfg.seed)
    zenith = (np.arccos(rng.uniform(-1, 1)) if cfg.zenith_deg is None
              else np.deg2rad(cfg.zenith_deg))
    azimuth = (rng.uniform(0, 2 * np.pi) if cfg.azimuth_deg is None
               else np.mod(np.deg2rad(cfg.azimuth_deg), 2 * np.pi))
    u = track_direction(zenith, azimuth)
    # impact point: uniform on a disc ⟂ u through the detector centre
    e1 = np.cross(u, [0.0, 0.0, 1.0]) if abs(u[2]) < 0.99 else np.cross(u, [1.0, 0.0, 0.0])
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(u, e1)
    r = cfg.impact_radius * np.sqrt(rng.random())
    ang = 2 * np.pi * rng.random()
    vertex = r * (np.cos(ang) * e1 + np.sin(ang) * e2)
    t0 = cfg.time_offset

    l_along, d = cherenkov_geometry(geo.pos, vertex, u)
    t_geo = t0 + (l_along + K_CHERENKOV * d) / C_VACUUM
    light_per_m = _Y_MU * 1.2 + _Y_CASCADE * _B_LOSS * cfg.energy
    if cfg.realistic:
        from skyscan_tui.simulate_realistic import detector_for, track_photons

        dom, t_pe = track_photons(geo, detector_for(geo, cfg.seed, cfg.ice), vertex, u, t_geo,
                                  l_along, d, light_per_m, cfg.a_eff, cfg.att_length,
                                  cfg.jitter, rng)
        return _track_event(cfg, geo, dom, t_pe, vertex, t0, zenith, azimuth, rng)
    ice = ice_perturbation(geo, cfg.ice_mismatch, cfg.seed) if cfg.ice_mismatch > 0 else None
    yield_k = geo.rde if ice is None else geo.rde * ice["yield"]
    mu = (light_per_m * cfg.a_eff * yield_k * np.exp(-d / cfg.att_length)
          / (2 * np.pi * np.maximum(d, 5.0)))
    n_pe = rng.poisson(mu)
    dom = np.repeat(np.arange(geo.n_dom), n_pe)
    if ice is None:
        xi = np.maximum(EFF_A1 * d[dom] + EFF_A0, 1.0) / PANDEL_LAMBDA
        t_pe = (t_geo[dom] + rng.gamma(shape=xi, scale=1.0 / PANDEL_RHO)
                + rng.normal(0.0, cfg.jitter, size=dom.size))
    else:
        xi = np.maximum(EFF_A1 * d[dom] + EFF_A0, 1.0) / ice["lambda"][dom]
        t_pe = (t_geo[dom] + rng.gamma(shape=xi, scale=1.0 / ice["rho"][dom])
                + rng.normal(0.0, cfg.jitter * ice["jitter"][dom], size=dom.size))
    return _track_event(cfg, geo, dom, t_pe, vertex, t0, zenith, azimuth, rng)


def _track_event(cfg: SimConfig, geo: Geometry, dom: np.ndarray, t_pe: np.ndarray,
                 vertex: np.ndarray, t0: float, zenith: float, azimuth: float,
                 rng: np.random.Generator) -> Event:
    """The through-going track event of photoelectrons (``dom``, ``t_pe`` [ns])."""
    pulse_table, n_noise_hits = _detector_response(geo, cfg, dom, t_pe, t0, rng)
    truth = Seed("truth", *map(float, vertex), float(t0), float(zenith), float(azimuth),
                 float(cfg.energy))
    s_zen, s_azi = _smear(zenith, azimuth, cfg.seed_smear_deg, rng)
    s_vertex = vertex + rng.normal(0.0, 5.0, size=3)
    seed = Seed("LineFit_smeared", *map(float, s_vertex), float(t0), s_zen, s_azi,
                float("nan"))
    return Event(
        run_id=cfg.run_id, event_id=int(cfg.seed) % 1_000_000_000_000, mjd=float(cfg.mjd),
        event_type=cfg.event_type, pulses=pulse_table, seeds=(seed,), truth=truth,
        geometry=geo.name,
        meta={"simulated": True, "sim_seed": int(cfg.seed), "energy_gev": float(cfg.energy),
              "n_signal_pe": int(dom.size), "n_noise_hits": n_noise_hits,
              "is_real_event": False, **cfg.meta()},
    )


def _interior_vertex(geo: Geometry, rng: np.random.Generator) -> np.ndarray:
    """A vertex [m] uniform in a cylinder inside the instrumented volume.

    80 % of the outermost string radius, the middle 80 % of the DOMs' depth range (a contained
    event)."""
    xy = geo.pos[:, :2]
    centre = xy.mean(axis=0)
    r_max = 0.8 * float(np.max(np.linalg.norm(xy - centre, axis=1)))
    z_lo, z_hi = float(geo.pos[:, 2].min()), float(geo.pos[:, 2].max())
    pad = 0.1 * (z_hi - z_lo)
    r = r_max * np.sqrt(rng.random())
    ang = 2 * np.pi * rng.random()
    z = rng.uniform(z_lo + pad, z_hi - pad)
    return np.array([centre[0] + r * np.cos(ang), centre[1] + r * np.sin(ang), z])


def _ice(geo: Geometry, cfg: SimConfig) -> dict[str, np.ndarray]:
    """Per-DOM light yield, Pandel λ, ρ and jitter factor.

    The reco's model, or perturbed by ``cfg.ice_mismatch`` (:func:`ice_perturbation`)."""
    if cfg.ice_mismatch > 0:
        ice = ice_perturbation(geo, cfg.ice_mismatch, cfg.seed)
        return {"yield": geo.rde * ice["yield"],
                "lambda": np.broadcast_to(ice["lambda"], (geo.n_dom,)),
                "rho": np.broadcast_to(ice["rho"], (geo.n_dom,)), "jitter": ice["jitter"]}
    one = np.ones(geo.n_dom)
    return {"yield": geo.rde, "lambda": PANDEL_LAMBDA * one, "rho": PANDEL_RHO * one,
            "jitter": one}


def _cascade_light(geo: Geometry, cfg: SimConfig, vertex: np.ndarray, t0: float,
                   energy: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Photoelectrons (DOM index, time [ns]) of a point-like cascade.

    Of ``energy`` [GeV] at ``vertex`` [m], ``t0`` [ns]: isotropic light falling as
    exp(-d/λ_att)/(4π d²), direct time d/c_g plus the Pandel delay of distance d and the
    jitter."""
    if cfg.realistic:
        from skyscan_tui.simulate_realistic import cascade_photons, detector_for

        return cascade_photons(geo, detector_for(geo, cfg.seed, cfg.ice), vertex, t0,
                               _Y_CASCADE * energy, cfg.a_eff, cfg.att_length, cfg.jitter, rng)
    ice = _ice(geo, cfg)
    d = np.linalg.norm(geo.pos - vertex, axis=1)
    mu = (_Y_CASCADE * energy * cfg.a_eff * ice["yield"] * np.exp(-d / cfg.att_length)
          / (4 * np.pi * np.maximum(d, 5.0) ** 2))
    n_pe = rng.poisson(mu)
    dom = np.repeat(np.arange(geo.n_dom), n_pe)
    xi = np.maximum(EFF_A1 * d[dom] + EFF_A0, 1.0) / ice["lambda"][dom]
    t_pe = (t0 + d[dom] / C_GROUP + rng.gamma(shape=xi, scale=1.0 / ice["rho"][dom])
            + rng.normal(0.0, cfg.jitter * ice["jitter"][dom], size=dom.size))
    return dom, t_pe


def _starting_muon_light(geo: Geometry, cfg: SimConfig, vertex: np.ndarray, t0: float,
                         u: np.ndarray, energy: float, rng: np.random.Generator
                         ) -> tuple[np.ndarray, np.ndarray]:
    """Photoelectrons (DOM index, time [ns]) of a muon of ``energy`` [GeV] from ``vertex``.

    Leaving ``vertex`` along ``u``: the through-going model, but only DOMs whose Cherenkov
    emission point l - d cot θ_c lies downstream of the vertex see it."""
    l_along, d = cherenkov_geometry(geo.pos, vertex, u)
    t_geo = t0 + (l_along + K_CHERENKOV * d) / C_VACUUM
    light_per_m = _Y_MU * 1.2 + _Y_CASCADE * _B_LOSS * energy
    if cfg.realistic:
        from skyscan_tui.simulate_realistic import detector_for, track_photons

        return track_photons(geo, detector_for(geo, cfg.seed, cfg.ice), vertex, u, t_geo,
                             l_along, d, light_per_m, cfg.a_eff, cfg.att_length, cfg.jitter,
                             rng, starting=True)
    emitted = l_along - d / np.sqrt(N_PHASE**2 - 1.0) >= 0.0  # cot θ_c = 1/√(n²-1)
    ice = _ice(geo, cfg)
    mu = np.where(emitted, light_per_m * cfg.a_eff * ice["yield"]
                  * np.exp(-d / cfg.att_length) / (2 * np.pi * np.maximum(d, 5.0)), 0.0)
    n_pe = rng.poisson(mu)
    dom = np.repeat(np.arange(geo.n_dom), n_pe)
    xi = np.maximum(EFF_A1 * d[dom] + EFF_A0, 1.0) / ice["lambda"][dom]
    t_pe = (t_geo[dom] + rng.gamma(shape=xi, scale=1.0 / ice["rho"][dom])
            + rng.normal(0.0, cfg.jitter * ice["jitter"][dom], size=dom.size))
    return dom, t_pe


def simulate_contained(cfg: SimConfig, geo: Geometry) -> Event:
    """A contained event [m, ns, GeV]: a cascade or a starting track.

    A cascade (``cfg.cascade``) or a starting track (``cfg.starting``) at a vertex inside the
    detector (see the module doc).

    The truth is the vertex, time, the muon's (or for a cascade an arbitrary, unobservable)
    direction and the energy; a starting track carries a smeared seed track as a through-going
    one does, a cascade none (the fits then start from a LineFit, as for a real event)."""
    rng = np.random.default_rng([int(cfg.seed), 0xCA5CADE if cfg.cascade else 0x57A27])
    zenith = (np.arccos(rng.uniform(-1, 1)) if cfg.zenith_deg is None
              else np.deg2rad(cfg.zenith_deg))
    azimuth = (rng.uniform(0, 2 * np.pi) if cfg.azimuth_deg is None
               else np.mod(np.deg2rad(cfg.azimuth_deg), 2 * np.pi))
    u = track_direction(zenith, azimuth)
    vertex = _interior_vertex(geo, rng)
    t0 = cfg.time_offset
    e_casc = cfg.energy if cfg.cascade else cfg.inelasticity * cfg.energy
    dom, t_pe = _cascade_light(geo, cfg, vertex, t0, e_casc, rng)
    if cfg.starting:
        dom_m, t_m = _starting_muon_light(geo, cfg, vertex, t0, u,
                                          (1.0 - cfg.inelasticity) * cfg.energy, rng)
        dom, t_pe = np.concatenate([dom, dom_m]), np.concatenate([t_pe, t_m])
    pulse_table, n_noise_hits = _detector_response(geo, cfg, dom, t_pe, t0, rng)
    truth = Seed("truth", *map(float, vertex), float(t0), float(zenith), float(azimuth),
                 float(cfg.energy))
    seeds: tuple[Seed, ...] = ()
    if cfg.starting:
        s_zen, s_azi = _smear(zenith, azimuth, cfg.seed_smear_deg, rng)
        s_vertex = vertex + rng.normal(0.0, 5.0, size=3)
        seeds = (Seed("LineFit_smeared", *map(float, s_vertex), float(t0), s_zen, s_azi,
                      float("nan")),)
    topology = "cascade" if cfg.cascade else "starting"
    return Event(
        run_id=cfg.run_id, event_id=int(cfg.seed) % 1_000_000_000_000, mjd=float(cfg.mjd),
        event_type=cfg.event_type, pulses=pulse_table, seeds=seeds, truth=truth,
        geometry=geo.name,
        meta={"simulated": True, "sim_seed": int(cfg.seed), "energy_gev": float(cfg.energy),
              "sim_topology": topology, "n_signal_pe": int(dom.size),
              "n_noise_hits": n_noise_hits, "is_real_event": False, **cfg.meta()},
    )


def ice_perturbation(geo: Geometry, mismatch: float, seed: int) -> dict[str, np.ndarray]:
    """Per-DOM deviations of the simulated ice and detector from the reco's model [toy].

    With f = ``mismatch`` (e.g. 0.2): light yield × lognormal(σ = f) per DOM (efficiency,
    hole ice); Pandel scattering length λ and time constant τ scaled per event by
    exp(f·N(0,1)) and per DOM by a depth-layered factor exp(f·½ sin(2π z/L + φ)) with
    L = 250 m (a smooth stand-in for the dust layers); jitter σ × (1 + f) · exp(f·N(0,1))
    per DOM. Drawn from a stream of its own (``seed``, 0x1CE), so the track, light and
    noise draws of the event stay those of the matched model's random stream.
    """
    rng = np.random.default_rng([int(seed), 0x1CE])
    n = geo.n_dom
    z = geo.pos[:, 2]
    layer = 0.5 * np.sin(2 * np.pi * z / 250.0 + rng.uniform(0, 2 * np.pi))
    lam = PANDEL_LAMBDA * np.exp(mismatch * (rng.normal() + layer))
    tau = PANDEL_TAU * np.exp(mismatch * (rng.normal() + layer))
    return {
        "yield": np.exp(mismatch * rng.normal(size=n) - 0.5 * mismatch**2),
        "lambda": lam,
        "rho": 1.0 / tau + C_GROUP / PANDEL_LAMBDA_A,
        "jitter": (1.0 + mismatch) * np.exp(mismatch * rng.normal(size=n)),
    }


def _detector_response(geo: Geometry, cfg: SimConfig, dom: np.ndarray, t_pe: np.ndarray,
                       t0: float, rng: np.random.Generator) -> tuple[Pulses, int]:
    """Pulses of signal photoelectrons with charge smearing and dark noise; noise hits.

    Of photoelectrons (``dom``, times ``t_pe`` [ns]), with dark noise uniform around the first
    signal hit, merged within 8 ns per DOM; and the number of noise hits."""
    q_pe = np.clip(rng.normal(1.0, 0.3, size=dom.size), 0.1, None)
    t_first = float(t_pe.min()) if t_pe.size else t0
    if cfg.realistic:  # per-DOM dark rates (the same draw as the photons' detector)
        from skyscan_tui.simulate_realistic import detector_for

        rate: float | np.ndarray = detector_for(geo, cfg.seed, cfg.ice).noise_rate
    else:
        rate = cfg.noise_rate
    n_noise = rng.poisson(rate * 1e-9 * cfg.noise_window, size=geo.n_dom)
    ndom = np.repeat(np.arange(geo.n_dom), n_noise)
    t_noise = rng.uniform(t_first - 0.4 * cfg.noise_window, t_first + 0.6 * cfg.noise_window,
                          size=ndom.size)
    q_noise = np.clip(rng.normal(1.0, 0.3, size=ndom.size), 0.1, None)
    p_dom, p_t, p_q = _merge_pulses(np.concatenate([dom, ndom]),
                                    np.concatenate([t_pe, t_noise]),
                                    np.concatenate([q_pe, q_noise]), window=8.0)
    if cfg.realistic:
        from skyscan_tui.simulate_realistic import saturate

        p_q = saturate(p_dom, p_q)
    return Pulses.from_arrays(geo.string[p_dom], geo.om[p_dom], geo.pos[p_dom, 0],
                              geo.pos[p_dom, 1], geo.pos[p_dom, 2], p_t, p_q), int(ndom.size)


def _merge_pulses(dom: np.ndarray, t: np.ndarray, q: np.ndarray, window: float):
    """Merge hits on the same DOM closer than ``window`` [ns] into one pulse."""
    if dom.size == 0:
        return dom, t, q
    order = np.lexsort((t, dom))
    dom, t, q = dom[order], t[order], q[order]
    new_pulse = np.ones(dom.size, dtype=bool)
    new_pulse[1:] = (dom[1:] != dom[:-1]) | (np.diff(t) > window)
    # a new pulse also starts when the gap to the pulse's first hit exceeds the window
    group = np.cumsum(new_pulse) - 1
    first_t = t[new_pulse][group]
    extra = (t - first_t) > window
    if extra.any():
        new_pulse |= extra
        group = np.cumsum(new_pulse) - 1
    starts = np.flatnonzero(new_pulse)
    return dom[starts], t[starts], np.add.reduceat(q, starts)
