"""``spe``: SPE1st track fit per pixel — first pulse per DOM, Gauss-convoluted Pandel.

−log L = −Σ_k log( p_c(t_k,1 − t_geo,k; ξ_k) + p_noise ) over seeded-RT-cleaned DOMs
("SPE1st" as in IceCube's ipdf / AMANDA, Ahrens et al. NIM A 524 (2004) 169; convoluted
Pandel after van Eijndhoven et al., Astropart. Phys. 28 (2007) 456; ``docs/reconstructions.md``).
The fit machinery is in :mod:`recos.track`. The recorded −log L is divided by the pull p² of
:mod:`recos.track.pull` (p ≈ 0.8 for bright events, whose SPE1st surface is too wide).
"""

from __future__ import annotations

from recos.track.reco import TrackReco

__all__ = ["SPEReco", "RECO"]


class SPEReco(TrackReco):
    """SPE1st Pandel track fit: the first pulse of each DOM."""

    name = "spe"
    description = "SPE1st Pandel track fit (first pulse per DOM), vectorised Nelder-Mead"
    likelihood = "SPE1st, Gauss-convoluted Pandel, noise floor"
    OPTIONS = TrackReco.COMMON_OPTIONS
    use_charge = False
    track_fit = True  # the topology guard runs before a scan (recos.base.Reco)


RECO = SPEReco
