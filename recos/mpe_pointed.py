"""``mpe_pointed``: :mod:`recos.mpe` with a first round on a disc around the seed.

Like upstream ``splinempe_pointed``; later rounds refine as usual."""

from __future__ import annotations

from recos.mpe import MPEReco
from recos.track.options import pointed_option

__all__ = ["MPEPointedReco", "RECO"]


class MPEPointedReco(MPEReco):
    """The MPE fit whose first round covers only a disc around the seed direction."""

    name = "mpe_pointed"
    description = "MPE Pandel fit, first round only a disc around the seed direction"
    OPTIONS = MPEReco.OPTIONS + (pointed_option(),)
    pointed = True


RECO = MPEPointedReco
