"""``TrackReco``: the plug-in base of the Pandel track fits [m, ns, rad].

Subclasses (``recos/spe.py``, ``mpe.py``, ``spe_pointed.py``, ``mpe_pointed.py``,
``auto.py``) choose the likelihood (``use_charge``: MPE where DOMs saw several photons,
else SPE1st) and whether the first round covers only a disc around the seed (``pointed``).
Per event: :func:`recos.track.prepare.prepare_track`. Per batch of pixels: the objective at
the pixels' directions (:mod:`recos.track.objective`), the starting candidates
(:mod:`recos.track.starts`), the descents (:mod:`recos.track.fit`); the recorded −log L is
divided by the pull p² (:mod:`recos.track.pull`). See ``docs/reconstructions.md``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from recos.base import Option, PointedRegion, Reco
from recos.track.constants import (
    EFF_A0,
    EFF_A1,
    PANDEL_LAMBDA,
    PANDEL_LAMBDA_A,
    PANDEL_TAU,
)
from recos.track.fit import fit_candidates
from recos.track.frame import reference_points, track_direction
from recos.track.ice import IceModel, layered_pandel, load_ice
from recos.track.kernels import resolve_kernel
from recos.track.mpecharge import event_exponent, parse_mpe_exponent
from recos.track.objective import TrackObjective
from recos.track.options import COMMON_OPTIONS
from recos.track.pandel import pandel_rho
from recos.track.prepare import PreparedTrack, prepare_track
from recos.track.pull import CALIBRATIONS, parse_pull, pull_for
from recos.track.starts import Passes, round_candidates, variation_starts
from skyscan_tui.events import Event
from skyscan_tui.tasks import TaskBatch, empty_results

__all__ = ["TrackReco"]


class TrackReco(Reco):
    """Base of the Pandel track fits; subclasses set ``use_charge`` and ``pointed``."""

    use_charge: bool = False
    pointed: bool = False
    preferred_batch = 128
    COMMON_OPTIONS: tuple[Option, ...] = COMMON_OPTIONS

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._kernel_choice = resolve_kernel(self.options["kernel"])
        # the resolved choice travels to the workers in the options: every executor fits alike
        self.options["kernel"] = self._kernel_choice
        if self._kernel_choice == "numpy" and str(options.get("kernel", "auto")).strip() \
                .lower() == "auto":
            self.notice = ("numba is not installed: fitting with the slower numpy reference "
                           "(pip install numba for the compiled fits)")
        # checked and normalised by their Option types (one_of)
        self._ice_choice = self.options["ice"]
        self._deepcore = self.options["deepcore"]
        self._bright = self.options["bright"]
        self._mpe_exponent = parse_mpe_exponent(self.options.get("mpe_exponent", "1"))
        # per-instance: the engine reads n_variations from the reco object
        self.n_variations = int(self.options["variations"])
        self._pull_setting = parse_pull(self.options["pull"])
        self.likelihood = self._likelihood_text()

    def _mpe_sigma(self) -> float:
        return float(np.hypot(self.options["jitter"], self.options["timing_error"]))

    def uses_mpe(self, prepared: PreparedTrack) -> bool:
        """Whether the fit is MPE: an event without multi-photon DOMs is fitted with SPE1st."""
        return self.use_charge and prepared.n_multi > 0

    def sigma(self, prepared: PreparedTrack) -> float:
        """Gaussian σ of the convoluted Pandel [ns].

        The jitter, widened by the timing error when the fit is MPE."""
        return self._mpe_sigma() if self.uses_mpe(prepared) else float(self.options["jitter"])

    def layered(self, prepared: PreparedTrack) -> bool:
        """Whether this event is fitted with layered ice.

        ``ice=auto``: on real events and the realistic simulation."""
        if self._ice_choice == "auto":
            return prepared.real_detector
        return self._ice_choice == "layered"

    def calibration(self, prepared: PreparedTrack) -> str:
        """The pull calibration of this event: ``realistic`` or ``matched``.

        ``pull=calibrated``: ``realistic`` for a real-detector event fitted with layered ice,
        as that curve was fitted, else ``matched``; ``pull=matched|realistic`` forces one."""
        if isinstance(self._pull_setting, str):
            return self._pull_setting
        return "realistic" if prepared.real_detector and self.layered(prepared) else "matched"

    def mpe_exponent(self, prepared: PreparedTrack) -> float:
        """MPE charge exponent m [1] of this event (1: plain MPE; :mod:`recos.track.mpecharge`)."""
        return event_exponent(self._mpe_exponent, prepared.seed_energy,
                              prepared.total_charge)[0]

    def pull(self, prepared: PreparedTrack) -> float:
        """The pull p [1] of this event.

        The fit's −log L is divided by p² (:mod:`recos.track.pull`)."""
        kind = "MPE" if self.uses_mpe(prepared) else "SPE1st"
        return pull_for(self._pull_setting, kind, prepared.n_bright,
                        self.calibration(prepared))

    def likelihood_for(self, prepared: PreparedTrack) -> str:
        return self._likelihood_text(self.uses_mpe(prepared), prepared)

    def _pull_text(self, prepared: PreparedTrack | None) -> str:
        if self._pull_setting is None or isinstance(self._pull_setting, str):
            if prepared is None:
                return ("; -log L / p^2, pull p calibrated on simulated tracks from the DOMs "
                        "with >= 2 photons")
            return (f"; -log L / p^2 with p={self.pull(prepared):.3g} for "
                    f"{prepared.n_bright} DOMs with >= 2 photons: "
                    f"{CALIBRATIONS[self.calibration(prepared)]}")
        if self._pull_setting == 1.0:
            return "; no pull correction"
        return f"; -log L / p^2, pull p={self._pull_setting:g} (fixed)"

    def _likelihood_text(self, mpe: bool | None = None,
                         prepared: PreparedTrack | None = None) -> str:
        o = self.options
        mpe = self.use_charge if mpe is None else mpe
        head = ("MPE (first of N photons, N = round(charge) capped at "
                f"{o['max_npe']})" if mpe else "SPE1st (first pulse per DOM)")
        floor = (f"noise floor {o['noise_prob']:g}/ns" if o["noise_prob"] > 0
                 else "no noise floor")
        sigma = (f"sigma={self._mpe_sigma():.3g} ns: jitter {o['jitter']:g} ns + timing "
                 f"error {o['timing_error']:.3g} ns in quadrature"
                 if mpe and o["timing_error"] > 0 else f"sigma={o['jitter']:g} ns")
        ice = (f"lambda={PANDEL_LAMBDA:g} m, lambda_a={PANDEL_LAMBDA_A:g} m"
               if not (self._ice_choice == "layered" if prepared is None
                       else self.layered(prepared)) else
               f"layered ice: lambda={PANDEL_LAMBDA:g} m, lambda_a={PANDEL_LAMBDA_A:g} m per "
               "DOM scaled by SPICE Mie path averages")
        if mpe and self._mpe_exponent is None:
            if prepared is None:
                head += ", N^m with IceCube's energy-dependent m"
            else:
                m, energy, src = event_exponent(None, prepared.seed_energy,
                                                prepared.total_charge)
                head += f", N^m with m={m:.2f} (E={energy / 1e3:.3g} TeV from the {src})"
        elif mpe and self._mpe_exponent != 1.0:
            head += f", N^m with m={self._mpe_exponent:g}"
        return (f"{head}, Gauss-convoluted Pandel ({sigma}; tau={PANDEL_TAU:g} ns, {ice}, "
                f"d_eff={EFF_A1:g} d+{EFF_A0:g} m), {floor}; "
                f"seeded-RT-cleaned hits{self._selection_text()}{self._pull_text(prepared)}")

    def _selection_text(self) -> str:
        parts = []
        if self._deepcore == "mask":
            parts.append("DeepCore strings masked")
        if self._bright == "drop":
            parts.append("bright DOMs dropped")
        if self.options["late_ns"] > 0:
            parts.append(f"pulses > {self.options['late_ns']:g} ns after the DOM's first "
                         "dropped from its charge")
        return f" ({', '.join(parts)})" if parts else ""

    # ------------------------------------------------------------ per event
    def prepare(self, event: Event) -> PreparedTrack:
        max_npe = int(self.options.get("max_npe", 1))
        return prepare_track(event, self.use_charge, max_npe, deepcore=self._deepcore,
                             bright=self._bright, late_ns=float(self.options["late_ns"]))

    def seed_vertex(self, prepared: PreparedTrack) -> np.ndarray:
        return prepared.seed.copy()

    def pointed_region(self, prepared: PreparedTrack) -> PointedRegion | None:
        if not self.pointed:
            return None
        zen, azi = prepared.seed_dir
        return PointedRegion(zen, azi, float(np.deg2rad(self.options["radius_deg"])))

    # ------------------------------------------------------------ per pixel
    def objective(self, prepared: PreparedTrack, batch: TaskBatch
                  ) -> tuple[TrackObjective, np.ndarray]:
        """The batch's objective and start parameters (P, 3) [m, m, ns] per task.

        The parameters are a [m], b [m] and t0 [ns]."""
        u = track_direction(np.asarray(batch.zenith, float), np.asarray(batch.azimuth, float))
        u = np.atleast_2d(u)
        seed = np.array(batch.seed, dtype=float, copy=True).reshape(-1, 4)
        bad = ~np.isfinite(seed).all(axis=1)
        seed[bad] = prepared.seed
        r_ref, t_ref = reference_points(seed, prepared.cog, u)
        o = self.options
        log_noise = np.log(o["noise_prob"]) if o["noise_prob"] > 0 else -np.inf
        obj = TrackObjective(prepared, u, r_ref, t_ref, self.sigma(prepared), log_noise,
                             self.use_charge, kernel=self._kernel_choice,
                             layers=self.layers(prepared, r_ref, u),
                             npe_exponent=self.mpe_exponent(prepared))
        start = variation_starts(prepared, obj, batch.variation, self.n_variations,
                                 o["variation_step"])
        return obj, start

    def ice_model(self) -> IceModel:
        """The depth-dependent ice of ``ice=layered`` (tests substitute a uniform one)."""
        return load_ice("spice_mie")

    def layers(self, prepared: PreparedTrack, r_ref: np.ndarray, u: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray] | None:
        """``ice=layered``: per pixel and DOM (P, K) the Pandel λ [m] and rate ρ [1/ns].

        Taken along the path from the pixel's starting track (through ``r_ref`` along ``u``: the
        seed vertex in the first round, the parent pixel's fitted vertex when refining) to the
        DOM; held during that pixel's descents. ``None`` for bulk ice."""
        if not self.layered(prepared):
            return None
        lam, lam_a = layered_pandel(self.ice_model(), prepared.pos, r_ref, u)
        return lam, pandel_rho(PANDEL_TAU, lam_a)

    def fit_pixels(self, prepared: PreparedTrack, batch: TaskBatch) -> np.ndarray:
        n = len(batch)
        out = empty_results(n)
        out["nside"], out["ipix"], out["variation"] = batch.nside, batch.ipix, batch.variation
        if n == 0:
            return out
        obj, params, llh = self.fit_params(prepared, batch)
        pos, t = obj.vertex(params)
        ok = np.isfinite(llh)
        # the fit minimises the plain −log L; the pull only rescales the recorded surface
        out["llh"] = np.where(ok, llh / self.pull(prepared) ** 2, np.nan)
        out["x"], out["y"], out["z"] = pos.T
        out["t"] = t
        return out

    def starts(self, prepared: PreparedTrack, obj: TrackObjective, start: np.ndarray,
               batch: TaskBatch, rows: np.ndarray) -> tuple[np.ndarray, Passes]:
        """Candidate starts (n, M, 3) [m, m, ns] of the batch's round, and the passes.

        The best candidates start the descents; the Nelder–Mead passes (initial steps,
        iterations) follow."""
        return round_candidates(prepared, obj, start, int(batch.round) == 0, batch.variation,
                                rows, int(self.options["iterations"]))

    def fit_params(self, prepared: PreparedTrack, batch: TaskBatch
                   ) -> tuple[TrackObjective, np.ndarray, np.ndarray]:
        """The objective, best (a [m], b [m], t0 [ns]) per task (P, 3) and its −log L (P,)."""
        obj, start = self.objective(prepared, batch)
        rows = np.arange(len(batch))
        cand, passes = self.starts(prepared, obj, start, batch, rows)
        x, f = fit_candidates(obj, cand, passes, rows)
        return obj, x, f
