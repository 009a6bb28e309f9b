"""Reco options of the Pandel track fits (``--reco-opt NAME=VALUE``).

``skyscan-tui recos`` lists them with their defaults and ranges (units in each help
text)."""

from __future__ import annotations

from recos.base import Option
from recos.track.constants import JITTER
from skyscan_tui.options import one_of

__all__ = ["COMMON_OPTIONS", "MPE_TIMING_ERROR", "mpe_options", "pointed_option"]

#: the options of every track fit (``spe``, ``mpe``, their pointed variants and ``auto``)
COMMON_OPTIONS: tuple[Option, ...] = (
    Option("jitter", float, JITTER, "Gaussian time jitter σ of the convoluted Pandel [ns]",
           min=0.5, max=50.0),
    Option("noise_prob", float, 1e-6,
           "noise floor added to the time PDF [1/ns] (0 = none)", min=0.0, max=1e-2),
    Option("variations", int, 1, "vertex starts per pixel, the best is kept (#0 the "
           "seed or parent fit, #1 the hit centre of gravity, #2.. a ring of offsets "
           "around the seed)", min=1, max=8),
    Option("variation_step", float, 20.0,
           "transverse offset of variations >= 2 from the seed [m]", min=0.0, max=500.0),
    Option("kernel", str, "auto", "fit code: compiled (numba: -log L with its analytic "
           "gradient and BFGS descents; the first use on a machine compiles for ~20 s), numpy "
           "(the vectorised reference with Nelder-Mead descents) or auto (compiled when numba "
           "is installed)"),
    Option("iterations", int, 40, "Nelder-Mead iterations of the first-round fit "
           "(its restart and refined pixels use 1/2 and 1/4)", min=5, max=2000),
    Option("ice", one_of("bulk", "layered", "auto"), "bulk", "ice of the Pandel PDFs: bulk (one lambda, lambda_a for all "
           "DOMs), layered (per DOM, scaled by the SPICE Mie coefficients averaged along "
           "the path from the pixel's track to the DOM; docs/reconstructions.md) or auto "
           "(layered on real events and the realistic simulation, bulk otherwise)"),
    Option("deepcore", one_of("keep", "mask"), "keep", "DeepCore strings 79-86 in the fit: keep, or mask "
           "(dropped before cleaning, as IceCube's realtime muon fits)"),
    Option("bright", one_of("keep", "drop"), "keep", "bright DOMs (charge > 10x the mean DOM charge): keep, "
           "or drop them from the fit (timing and charge)"),
    Option("late_ns", float, 0.0, "drop pulses more than this after their DOM's first "
           "pulse from its charge [ns] (0 = keep all in the 6000 ns window)", min=0.0,
           max=6000.0),
    Option("pull", str, "calibrated", "pull correction: -log L is divided by p^2; "
           "calibrated (p from the event's DOMs with >= 2 photons, fitted on simulated "
           "tracks: the realistic simulation's curve for real events fitted with layered "
           "ice, the matched one otherwise), matched or realistic (that curve), none (p = 1, "
           "the plain likelihood) or a number p"),
)


def pointed_option() -> Option:
    """The ``radius_deg`` option [deg] of the pointed variants' first-round disc."""
    return Option("radius_deg", float, 3.5, "first-round disc around the seed direction [deg]",
                  min=0.1, max=180.0)


#: MPE's default timing error [ns]: none. Measured (matched model, 200 tracks per energy,
#: seeds 1000…): σ = 8 ns (timing_error = √48) lifts MPE's Wilks-90 % coverage at 1 TeV from
#: 0.80 to 0.86 but makes 10 and 100 TeV conservative (0.93 at 10 TeV; 0.98 on the first 53
#: at 100 TeV, against 0.90 and 0.88 with 4 ns), so the default stays the jitter alone
MPE_TIMING_ERROR = 0.0


def mpe_options() -> tuple[Option, ...]:
    """The options [1, ns] of the fits that can use MPE (``mpe``, ``mpe_pointed``, ``auto``)."""
    # max_npe: caps of 50–100 were the candidates. On 50 matched-model 100 TeV events (jitter
    # 3 ns in simulation and reco) a cap of 50 left the surface too wide, Wilks-50 % coverage
    # 0.58 against 0.48 uncapped; cap 100 (4 ns both) gave 0.53, 0.47 on 200 events
    return (
        Option("max_npe", int, 100, "cap on the photon count N per DOM (MPE)", min=1,
               max=1000),
        Option("timing_error", float, MPE_TIMING_ERROR,
               "extra Gaussian time error of MPE's first-of-N PDF, added to jitter in "
               "quadrature, as IceCube's MPETimingError [ns]", min=0.0, max=50.0),
        Option("mpe_exponent", str, "1", "MPE charge exponent m, N^m photons instead of N: "
               "1 (plain MPE), a number in (0, 1], or auto (IceCube's energy-dependent m "
               "from the seed's energy or a charge proxy; docs/reconstructions.md)"),
    )
