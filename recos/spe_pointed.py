"""``spe_pointed``: :mod:`recos.spe` with a first round on a disc around the seed.

Like upstream ``splinempe_pointed``; later rounds refine as usual."""

from __future__ import annotations

from recos.spe import SPEReco
from recos.track.options import pointed_option

__all__ = ["SPEPointedReco", "RECO"]


class SPEPointedReco(SPEReco):
    """The SPE1st fit whose first round covers only a disc around the seed direction."""

    name = "spe_pointed"
    description = "SPE1st Pandel fit, first round only a disc around the seed direction"
    OPTIONS = SPEReco.OPTIONS + (pointed_option(),)
    pointed = True


RECO = SPEPointedReco
