"""``mpe``: MPE track fit per pixel — first of N photons, Gauss-convoluted Pandel.

For DOM k with N_k = max(1, round(charge)) photons (capped by ``max_npe``) the first photon
arrives with ``p_MPE(t) = N p_c(t) S_c(t)^(N−1)``; −log L = −Σ_k log(p_MPE,k + p_noise)
(Ahrens et al. NIM A 524 (2004) 169, §3.1; convoluted Pandel and its survival tabulated in
:mod:`recos.track.table`; ``docs/reconstructions.md``). The fit machinery is in
:mod:`recos.track`. The recorded −log L is divided by the pull p² of :mod:`recos.track.pull`
(p ≈ 1.2 for dim events, whose first-of-N surface is too narrow).

The Gaussian σ of p_c is the PMT jitter, optionally widened by ``timing_error`` in quadrature
(IceCube's MPE fits can carry an "MPETimingError"). The default adds none:
8 ns in all (timing_error = √48) fixed MPE's over-confidence for dim events (Wilks-90 %
coverage 0.80 → 0.86 at 1 TeV) but made bright ones conservative (0.88 → 0.98 at 100 TeV).
"""

from __future__ import annotations

from recos.track.options import mpe_options
from recos.track.reco import TrackReco

__all__ = ["MPEReco", "RECO"]


class MPEReco(TrackReco):
    """MPE Pandel track fit: first of N photons, with the charge of each DOM."""

    name = "mpe"
    description = "MPE Pandel track fit (first of N photons, charge per DOM), vectorised"
    likelihood = "MPE, Gauss-convoluted Pandel, noise floor"
    OPTIONS = TrackReco.COMMON_OPTIONS + mpe_options()
    use_charge = True
    track_fit = True  # the topology guard runs before a scan (recos.base.Reco)


RECO = MPEReco
