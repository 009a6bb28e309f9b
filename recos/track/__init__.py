"""The Pandel track fit shared by the ``spe``, ``mpe``, ``*_pointed`` and ``auto`` recos.

One concern per module (``docs/reconstructions.md`` describes the method):

* :mod:`recos.track.constants` — ice, refraction and detector constants of the light model
  (the simulator imports them from here, so both use one model);
* :mod:`recos.track.frame` — the track direction convention and the transverse frame.

This package imports nothing on its own: importing one module (the simulator needs only the
constants) does not pull in the fit.
"""
