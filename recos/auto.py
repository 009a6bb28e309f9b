"""``auto``: the Pandel track fit with the likelihood chosen per event from its photon count.

MPE (:mod:`recos.mpe`) when at least ``min_multi`` cleaned DOMs recorded two or more photons
(charge rounded, as MPE uses it), SPE1st (:mod:`recos.spe`) otherwise. The fits are exactly
those of the chosen reco; the result's likelihood text names the one used.

Why: with the simulator matching the recos' model, the Wilks regions of each likelihood are
calibrated only in part of the energy range (``benchmarks/accuracy.py``, 200 tracks per energy,
90 % coverage at 1 / 10 / 100 TeV): SPE1st 0.86 / 0.97 / 0.98 — conservative once most DOMs
see several photons, because it treats the first of N photons as a single one (physics.md
§2.5); MPE 0.79 / 0.90 / 0.88 — over-confident while few DOMs carry its sharp first-of-N
edge. On an E^-2 spectrum MPE covered 0.75 with 20–30 multi-photon DOMs and 0.89 with 30–50.
A cut at 30 gave 0.86 / 0.90 / 0.875 on the same 600 tracks.
"""

from __future__ import annotations

from recos._track import PreparedTrack, TrackReco, mpe_option, prepare_track
from recos.base import Option
from skyscan_tui.events import Event

__all__ = ["AutoReco", "RECO"]


class AutoReco(TrackReco):
    name = "auto"
    description = ("Pandel track fit choosing MPE for events with many multi-photon DOMs, "
                   "SPE1st otherwise")
    likelihood = "SPE1st or MPE per event, Gauss-convoluted Pandel, noise floor"
    OPTIONS = TrackReco.COMMON_OPTIONS + (
        mpe_option(),
        Option("min_multi", int, 30, "MPE when at least this many cleaned DOMs saw >= 2 "
               "photons, SPE1st otherwise", min=0, max=100_000),
    )
    # the objective uses MPE whenever the prepared event carries multi-photon DOMs; an event
    # prepared for SPE1st has none (every N is 1)
    use_charge = True

    def uses_mpe(self, prepared: PreparedTrack) -> bool:
        return prepared.n_multi > 0

    def prepare(self, event: Event) -> PreparedTrack:
        prepared = prepare_track(event, True, int(self.options["max_npe"]))
        if prepared.n_multi >= int(self.options["min_multi"]):
            return prepared
        return prepare_track(event, False, 1)  # exactly what ``spe`` prepares

    def likelihood_for(self, prepared: PreparedTrack) -> str:
        mpe = self.uses_mpe(prepared)
        why = (f"{'>=' if mpe else '<'} {self.options['min_multi']} DOMs with >= 2 photons")
        return (f"auto chose {'MPE' if mpe else 'SPE1st'} ({why}): "
                + self._likelihood_text(mpe))


RECO = AutoReco
