"""The Pandel track fit shared by the ``spe``, ``mpe``, ``*_pointed`` and ``auto`` recos.

One concern per module (``docs/reconstructions.md`` describes the method):

* :mod:`recos.track.constants` — ice, refraction and detector constants of the light model
  (the simulator imports them from here, so both use one model);
* :mod:`recos.track.frame` — the track direction convention and the transverse frame;
* :mod:`recos.track.pandel` — the exact plain and Gauss-convoluted Pandel PDFs;
* :mod:`recos.track.table` — their tabulated, interpolated form (the fast path), cached;
* :mod:`recos.track.ice` — the depth-dependent ice (SPICE Mie): path-averaged coefficients
  and the per-DOM Pandel constants of ``ice=layered`` (the simulator uses it too);
* :mod:`recos.track.cleaning` — seeded RT hit cleaning and the time window;
* :mod:`recos.track.prepare` — per event: cleaned first pulses, charges, first guess;
* :mod:`recos.track.objective` — −log L of (a, b, t0) at fixed directions, vectorised (the
  numpy reference), and the entry points of the compiled fits;
* :mod:`recos.track.kernels` — which fit code runs (``kernel=auto|compiled|numpy``);
* :mod:`recos.track.compiled` — the numba code: −log L with its gradient, Nelder–Mead, BFGS;
* :mod:`recos.track.starts` — starting candidates of each round and of the two descents;
* :mod:`recos.track.minimize` — the batched lock-step Nelder–Mead;
* :mod:`recos.track.fit` — the driver: descents from the candidates, MPE's SPE1st pre-fit;
* :mod:`recos.track.pull` — the pull correction of the recorded −log L;
* :mod:`recos.track.options` — the reco options (``--reco-opt``);
* :mod:`recos.track.reco` — :class:`~recos.track.reco.TrackReco`, the plug-ins' base class.

This package imports nothing on its own: importing one module (the simulator needs only the
constants) does not pull in the fit.
"""
