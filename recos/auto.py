"""``auto``: the Pandel track fit with the likelihood chosen per event from its photon count.

MPE (:mod:`recos.mpe`) when at least ``min_multi`` cleaned DOMs recorded two or more photons
(charge rounded, as MPE uses it), SPE1st (:mod:`recos.spe`) otherwise, and always for real
events (``real_mpe=false``, the default): real ice differs from the bulk-ice Pandel model,
and under a 20 % mismatch MPE's 90 % regions held the truth in 73 % of simulated tracks
against SPE1st's 88 % (``docs/reconstructions.md``). The fits are exactly
those of the chosen reco; the result's likelihood text names the one used and why.

Why: with the simulator matching the recos' model, the plain Wilks regions of each
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
from recos.track.prepare import PreparedTrack, prepare_track
from recos.track.reco import TrackReco
from skyscan_tui.events import Event

__all__ = ["AutoReco", "RECO"]


class AutoReco(TrackReco):
    """Pandel track fit choosing MPE or SPE1st per event (see the module docstring)."""

    name = "auto"
    description = ("Pandel track fit choosing MPE for events with many multi-photon DOMs, "
                   "SPE1st otherwise")
    likelihood = "SPE1st or MPE per event, Gauss-convoluted Pandel, noise floor"
    OPTIONS = TrackReco.COMMON_OPTIONS + mpe_options() + (
        Option("min_multi", int, 30, "MPE when at least this many cleaned DOMs saw >= 2 "
               "photons, SPE1st otherwise", min=0, max=100_000),
        Option("real_mpe", bool, False, "allow MPE on real events too (their ice is not the "
               "model's: MPE's contours are then too small)"),
    )
    # the objective uses MPE whenever the prepared event carries multi-photon DOMs; an event
    # prepared for SPE1st has none (every N is 1), so TrackReco.uses_mpe tells which ran
    use_charge = True

    def _real_spe(self, event: Event) -> bool:
        return bool(event.meta.get("is_real_event")) and not self.options["real_mpe"]

    def prepare(self, event: Event) -> PreparedTrack:
        if not self._real_spe(event):
            prepared = super().prepare(event)  # as ``mpe`` prepares (use_charge)
            if prepared.n_multi >= int(self.options["min_multi"]):
                return prepared
        # exactly what ``spe`` prepares, marked when the event being real decided it
        prepared = prepare_track(event, False, 1)
        return dataclasses.replace(prepared, real_event=self._real_spe(event))

    def likelihood_for(self, prepared: PreparedTrack) -> str:
        mpe = self.uses_mpe(prepared)
        if prepared.real_event:
            why = "real event: MPE's regions shrink too much under ice-model mismatch"
        else:
            why = f"{'>=' if mpe else '<'} {self.options['min_multi']} DOMs with >= 2 photons"
        return (f"auto chose {'MPE' if mpe else 'SPE1st'} ({why}): "
                + self._likelihood_text(mpe, prepared))


RECO = AutoReco
