"""The realistic detector of ``skyscan-tui simulate --ice spice_mie`` [m, ns, Hz].

What differs from the default ("matched") simulation, whose light model is exactly the track
fits' bulk-ice Pandel (:mod:`skyscan_tui.simulate`):

* **Layered ice.** Per DOM the SPICE Mie coefficients are averaged along the straight path
  from the photon's emission point (the Cherenkov emission point of a muon, the vertex of a
  cascade) to the DOM (:mod:`recos.track.ice`). The Pandel λ and λ_a are the bulk values
  scaled by the detector's mean ice over the path's (τ kept), and the attenuation length of
  the photon yield scales with √(λ_a λ_e) (diffusion).
* **DOM orientation.** The effective distance is ``a1 d + a0(η)``,
  ``a0 = 3.094 - 3.946 cos η + 4.636 cos² η`` m, with cos η the vertical component of the
  direct photon's direction (Ahrens et al., NIM A 524 (2004) 169; PMTs look down), where the
  fits take cos η = 0.
* **DOM efficiency.** The table's relative efficiency times a per-event spread of 10 %
  (Gaussian, clipped at ±30 %).
* **Noise.** Per-DOM dark rates: 560 Hz for standard DOMs, 780 Hz for the high-quantum-
  efficiency ones (relative efficiency 1.35: DeepCore), each ×(1 ± 10 %) per DOM (IceCube,
  JINST 12 (2017) P03012), over the readout window.
* **Saturation.** A DOM's charge Q [PE] is read out as ``Q_SAT (1 - exp(-Q/Q_SAT))``
  (``Q_SAT`` = 500 PE, a soft toy stand-in for the PMT and digitiser saturation).

All DOMs of the geometry take part, DeepCore's (strings 79–86) included. The per-event
efficiency and noise-rate draws come from streams of their own (``seed``, 0xEFF1C), so the
event's track and photon draws are still those of its seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recos.track.constants import (
    C_GROUP,
    EFF_A1,
    N_PHASE,
    PANDEL_TAU,
)
from recos.track.ice import IceModel, load_ice
from skyscan_tui.geometry import Geometry

__all__ = ["Detector", "detector_for", "track_photons", "cascade_photons", "saturate",
           "orientation_a0", "Q_SAT", "NOISE_STANDARD", "NOISE_HQE"]

Q_SAT = 500.0  # [PE] soft saturation scale of one DOM's charge
NOISE_STANDARD, NOISE_HQE = 560.0, 780.0  # [Hz] dark rates of standard and HQE DOMs
EFF_SPREAD = 0.10  # relative DOM efficiency spread (σ)
_COT_C = 1.0 / np.sqrt(N_PHASE**2 - 1.0)  # cot θ_c


@dataclass(frozen=True)
class Detector:
    """Per-DOM efficiency [1] and dark rate [Hz] of one event, and the ice."""

    efficiency: np.ndarray
    noise_rate: np.ndarray
    ice: IceModel


def detector_for(geo: Geometry, seed: int, ice: str = "spice_mie") -> Detector:
    """The event's detector: efficiencies and noise rates drawn from (``seed``, 0xEFF1C)."""
    rng = np.random.default_rng([int(seed), 0xEFF1C])
    spread = np.clip(rng.normal(1.0, EFF_SPREAD, size=geo.n_dom), 0.7, 1.3)
    hqe = geo.rde > 1.2
    base = np.where(hqe, NOISE_HQE, NOISE_STANDARD)
    rate = base * np.clip(rng.normal(1.0, 0.1, size=geo.n_dom), 0.7, 1.3)
    return Detector(efficiency=geo.rde * spread, noise_rate=rate, ice=load_ice(ice))


def orientation_a0(cos_eta: np.ndarray) -> np.ndarray:
    """Pandel a0(η) [m] of a downward-looking PMT; cos η = +1 for light going straight up."""
    return 3.094 - 3.946 * cos_eta + 4.636 * cos_eta**2


def _photons(det: Detector, mu: np.ndarray, t_direct: np.ndarray, d: np.ndarray,
             src: np.ndarray, pos: np.ndarray, jitter: float,
             rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Poisson photoelectrons per DOM and their times [ns]: direct time plus a Pandel delay
    with the path's ice and the DOM-orientation effective distance, plus jitter. ``src``
    (n_dom, 3) is each DOM's emission point [m]."""
    n_pe = rng.poisson(mu)
    dom = np.repeat(np.arange(mu.size), n_pe)
    s, p = src[dom], pos[dom]
    lam, lam_a = det.ice.scaled_pandel(s[:, 2], p[:, 2])
    path = p - s
    cos_eta = path[:, 2] / np.maximum(np.linalg.norm(path, axis=1), 1e-9)
    d_eff = np.maximum(EFF_A1 * d[dom] + orientation_a0(cos_eta), 1.0)
    rho = 1.0 / PANDEL_TAU + C_GROUP / lam_a
    t_pe = (t_direct[dom] + rng.gamma(shape=d_eff / lam, scale=1.0 / rho)
            + rng.normal(0.0, jitter, size=dom.size))
    return dom, t_pe


def track_photons(geo: Geometry, det: Detector, vertex: np.ndarray, u: np.ndarray,
                  t_geo: np.ndarray, l_along: np.ndarray, d: np.ndarray, light_per_m: float,
                  a_eff: float, att_length: float, jitter: float, rng: np.random.Generator,
                  starting: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Photoelectrons (DOM index, time [ns]) of a muon through ``vertex`` along ``u`` (light
    only downstream of the vertex when ``starting``): cylindrical spreading with the
    path's attenuation length."""
    l_emit = l_along - d * _COT_C
    src = vertex[None, :] + l_emit[:, None] * u[None, :]
    att = att_length * det.ice.attenuation_ratio(src[:, 2], geo.pos[:, 2])
    mu = light_per_m * a_eff * det.efficiency * np.exp(-d / att) / (2 * np.pi
                                                                     * np.maximum(d, 5.0))
    if starting:
        mu = np.where(l_emit >= 0.0, mu, 0.0)
    return _photons(det, mu, t_geo, d, src, geo.pos, jitter, rng)


def cascade_photons(geo: Geometry, det: Detector, vertex: np.ndarray, t0: float,
                    photons: float, a_eff: float, att_length: float, jitter: float,
                    rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Photoelectrons (DOM index, time [ns]) of ``photons`` emitted isotropically at
    ``vertex``, ``t0``: spherical spreading with the path's attenuation length."""
    d = np.linalg.norm(geo.pos - vertex, axis=1)
    src = np.broadcast_to(vertex, geo.pos.shape)
    att = att_length * det.ice.attenuation_ratio(np.full(geo.n_dom, vertex[2]), geo.pos[:, 2])
    mu = photons * a_eff * det.efficiency * np.exp(-d / att) / (4 * np.pi
                                                                 * np.maximum(d, 5.0) ** 2)
    return _photons(det, mu, t0 + d / C_GROUP, d, src, geo.pos, jitter, rng)


def saturate(dom: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Pulse charges [PE] with each DOM's total Q read out as Q_SAT (1 - e^(-Q/Q_SAT))."""
    if dom.size == 0:
        return q
    total = np.bincount(dom, weights=q)
    factor = np.ones_like(total)
    on = total > 0
    factor[on] = Q_SAT * -np.expm1(-total[on] / Q_SAT) / total[on]
    return q * factor[dom]
