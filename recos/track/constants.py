"""Physics constants of the track light model [m, ns, 1/ns]: ice, refraction, PMT timing.

The reconstruction's likelihood (:mod:`recos.track.pandel`) and the toy simulator
(``skyscan-tui simulate``) share these numbers, so a default simulation is exactly the
model the fits assume ("matched"); the simulator's ``ice_mismatch`` perturbs them on purpose.
The Pandel parameters are the "H2 bulk ice" set of the AMANDA/IceCube Pandel fits
(Ahrens et al., NIM A 524 (2004) 169); see ``docs/reconstructions.md``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["C_VACUUM", "N_PHASE", "N_GROUP", "C_GROUP", "THETA_C", "K_CHERENKOV", "K_OVER_C",
           "PANDEL_TAU", "PANDEL_LAMBDA", "PANDEL_LAMBDA_A", "PANDEL_RHO", "EFF_A1", "EFF_A0",
           "JITTER"]

C_VACUUM = 0.299792458  # [m/ns]
N_PHASE = 1.3195  # phase refractive index of ice: the Cherenkov angle
N_GROUP = 1.35634  # group refractive index of ice: the photons' speed
C_GROUP = C_VACUUM / N_GROUP  # [m/ns]
THETA_C = np.arccos(1.0 / N_PHASE)  # [rad] Cherenkov angle
#: direct-light delay per metre of perpendicular distance is K/c: the Cherenkov cone reaches a
#: DOM at distance d after (l + K d)/c for a muon at the vacuum speed of light
K_CHERENKOV = (N_GROUP * N_PHASE - 1.0) / np.sqrt(N_PHASE**2 - 1.0)  # 0.917327
K_OVER_C = K_CHERENKOV / C_VACUUM  # [ns/m]
PANDEL_TAU = 556.7  # [ns] Pandel time constant τ
PANDEL_LAMBDA = 33.29  # [m] Pandel scattering length λ
PANDEL_LAMBDA_A = 98.0  # [m] absorption length λ_a
PANDEL_RHO = 1.0 / PANDEL_TAU + C_GROUP / PANDEL_LAMBDA_A  # [1/ns] Pandel rate ρ, 4.0517e-3
EFF_A1, EFF_A0 = 0.8395, 3.094  # effective distance d_eff = a1 d + a0 (cos η = 0) [m]
#: PMT time jitter σ [ns]: the recos' default (IceCube's JitterTime) and the simulator's
JITTER = 4.0
