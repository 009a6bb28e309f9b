"""The Pandel track fit shared by the ``spe``, ``mpe``, ``*_pointed`` and ``auto`` recos.

One concern per module (``docs/reconstructions.md`` describes the method):

* :mod:`recos.track.constants` — ice, refraction and detector constants of the light model
  (the simulator imports them from here, so both use one model);
* :mod:`recos.track.frame` — the track direction convention and the transverse frame;
* :mod:`recos.track.pandel` — the exact plain and Gauss-convoluted Pandel PDFs;
* :mod:`recos.track.table` — their tabulated, interpolated form (the fast path), cached;
* :mod:`recos.track.kernels` — the optional numba kernel of −log L;
* :mod:`recos.track.minimize` — the batched lock-step Nelder–Mead;
* :mod:`recos.track.pull` — the pull correction of the recorded −log L.

This package imports nothing on its own: importing one module (the simulator needs only the
constants) does not pull in the fit.
"""
