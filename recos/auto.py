"""``auto``: the Pandel track fit with the likelihood chosen per event from its photon count.

MPE (:mod:`recos.mpe`) when at least ``min_multi`` cleaned DOMs recorded two or more photons
(charge rounded, as MPE uses it), SPE1st (:mod:`recos.spe`) otherwise. The fits are exactly
those of the chosen reco; the result's likelihood text names the one used and why.

Two paths, told apart by the event (:func:`recos.track.prepare.real_detector`):

* the real detector — real events, and the realistic simulation (``simulate --ice
  spice_mie``, ``sim_ice`` in the metadata) so that its validation exercises exactly this
  default: layered ice (``ice=auto``), the same brightness cut, and the pull curves fitted on
  the realistic simulation with layered ice (``pull=calibrated`` picks them; the regions
  are then reported as "systematic included"). Measured on the realistic simulation
  (``docs/validation.md``, "auto on the real detector"): layered ice beats bulk ice for both
  likelihoods at 1, 10 and 100 TeV, MPE beats SPE1st on bright events and not on dim ones.
  ``real_mpe=false`` restores SPE1st on every real event (the default before).
* the matched simulation (``simulate``'s default): bulk ice and the matched pull curves,
  unchanged.

Why the cut: with the simulator matching the recos' model, the plain Wilks regions of each
likelihood are calibrated only in part of the energy range (``benchmarks/accuracy.py``,
``pull=none``, 200 tracks per energy, 90 % coverage at 1 / 10 / 100 TeV): SPE1st 0.88 / 0.97 /
0.98 — conservative once most DOMs see several photons, because it treats the first of N
photons as a single one; MPE 0.80 / 0.90 / 0.88 — over-confident while few
DOMs carry its sharp first-of-N edge. On 250 tracks from an E^-2 spectrum MPE covered 0.75
with 20–30 multi-photon DOMs and 0.89 with 30–50, so the cut is 30; ``auto`` then covers
0.87 / 0.90 / 0.88 on the 600 tracks. The pull correction (:mod:`recos.track.pull`) now calibrates
each likelihood by itself too (``auto`` 0.87 / 0.90 / 0.89); the cut stays, as MPE's
correction is largest, and least certain, for the dim events it leaves to SPE1st.
"""

from __future__ import annotations

import dataclasses

from recos.base import Option
from recos.track.options import mpe_options
from recos.track.prepare import PreparedTrack, prepare_track, real_detector
from recos.track.reco import TrackReco
from skyscan_tui.events import Event

__all__ = ["AutoReco", "RECO"]


def _ice_auto(option: Option) -> Option:
    """The ``ice`` option with default ``auto``: layered ice on the real-detector path."""
    return dataclasses.replace(option, default="auto") if option.name == "ice" else option


class AutoReco(TrackReco):
    """Pandel track fit choosing MPE or SPE1st per event (see the module docstring)."""

    name = "auto"
    description = ("Pandel track fit choosing MPE for events with many multi-photon DOMs, "
                   "SPE1st otherwise; layered ice and the realistic pull calibration on real "
                   "events")
    likelihood = "SPE1st or MPE per event, Gauss-convoluted Pandel, noise floor"
    OPTIONS = tuple(_ice_auto(o) for o in TrackReco.COMMON_OPTIONS) + mpe_options() + (
        Option("min_multi", int, 30, "MPE when at least this many cleaned DOMs saw >= 2 "
               "photons, SPE1st otherwise", min=0, max=100_000),
        Option("real_mpe", bool, True, "allow MPE on real events (false: SPE1st on every "
               "real event, as before the realistic calibration)"),
    )
    # the objective uses MPE whenever the prepared event carries multi-photon DOMs; an event
    # prepared for SPE1st has none (every N is 1), so TrackReco.uses_mpe tells which ran
    use_charge = True
    track_fit = True  # the topology guard runs before a scan (recos.base.Reco)

    def _real_spe(self, event: Event) -> bool:
        return real_detector(event) and not self.options["real_mpe"]

    def prepare(self, event: Event) -> PreparedTrack:
        if not self._real_spe(event):
            prepared = super().prepare(event)  # as ``mpe`` prepares (use_charge)
            if prepared.n_multi >= int(self.options["min_multi"]):
                return prepared
        # exactly what ``spe`` prepares (with the same hit selection), marked when the event
        # being real decided it
        prepared = prepare_track(event, False, 1, deepcore=self._deepcore, bright=self._bright,
                                 late_ns=float(self.options["late_ns"]))
        return dataclasses.replace(prepared, real_event=self._real_spe(event))

    def likelihood_for(self, prepared: PreparedTrack) -> str:
        mpe = self.uses_mpe(prepared)
        if prepared.real_event:
            why = "real event and real_mpe=false"
        else:
            why = f"{'>=' if mpe else '<'} {self.options['min_multi']} DOMs with >= 2 photons"
        return (f"auto chose {'MPE' if mpe else 'SPE1st'} ({why}): "
                + self._likelihood_text(mpe, prepared))


RECO = AutoReco
