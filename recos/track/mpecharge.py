"""MPE charge exponent m [1] (``--reco-opt mpe_exponent``): N^m photons instead of N.

IceCube's SplineMPE (spline-reco's ``EnergyDependentMPE``) raises each DOM's charge to an
energy-dependent power before the first-of-N PDF: a bright DOM's first photon is often not
from the same light front as the rest (stochastic losses, scattering), so the full N makes
the likelihood too sharp. :func:`exponent_for_energy` is that schedule of log10(E/GeV),
piecewise linear: 0.4 up to 1 TeV, 0.5 at 3.2 TeV, 0.7 at 10 TeV, 0.9 at 100 TeV, 1 from
316 TeV. The energy is the event's muon energy estimate: the best seed's, when the event file
carries one, else a proxy from the charge of the fitted DOMs (:func:`energy_from_charge`,
fitted on the realistic simulation, ``simulate --ice spice_mie``: median charge 78, 560 and
4190 PE at 1, 10 and 100 TeV, seeds 1500…1529 + 50 000 k).
"""

from __future__ import annotations

import math

from skyscan_tui.errors import UserError

__all__ = ["exponent_for_energy", "energy_from_charge", "parse_mpe_exponent", "event_exponent"]

#: charge proxy: E = CHARGE_E_REF (Q / CHARGE_Q_REF)^(1 / CHARGE_SLOPE) [GeV, PE, 1]
CHARGE_E_REF, CHARGE_Q_REF, CHARGE_SLOPE = 1.0e4, 560.0, 0.865


def exponent_for_energy(energy_gev: float) -> float:
    """IceCube's energy-dependent MPE charge exponent m [1] at ``energy_gev`` [GeV].

    >>> [round(exponent_for_energy(e), 3) for e in (500.0, 1e4, 1e5, 1e6)]
    [0.4, 0.7, 0.9, 1.0]
    """
    if not math.isfinite(energy_gev) or energy_gev < 1.0:
        return 1.0
    x = math.log10(energy_gev)
    if x <= 3.0:
        return 0.4
    if x <= 3.5:
        return 0.2 * x - 0.2
    if x <= 4.0:
        return 0.4 * x - 0.9
    if x <= 5.5:
        return 0.2 * x - 0.1
    return 1.0


def energy_from_charge(charge_pe: float) -> float:
    """Muon energy proxy [GeV] from the charge [PE] of the fitted DOMs.

    >>> round(energy_from_charge(560.0))
    10000
    """
    if not math.isfinite(charge_pe) or charge_pe <= 0:
        return float("nan")
    return CHARGE_E_REF * (charge_pe / CHARGE_Q_REF) ** (1.0 / CHARGE_SLOPE)


def parse_mpe_exponent(value: object) -> float | None:
    """The ``mpe_exponent`` option: None for ``auto``, else a fixed m in (0, 1] [1]."""
    text = str(value).strip().lower()
    if text == "auto":
        return None
    try:
        m = float(text)
    except ValueError:
        raise UserError(f"reco option mpe_exponent: {value!r} is not auto or a number "
                        "in (0, 1]") from None
    if not (0.0 < m <= 1.0):
        raise UserError(f"reco option mpe_exponent: {m:g} is not in (0, 1]")
    return m


def event_exponent(setting: float | None, seed_energy: float, total_charge: float
                   ) -> tuple[float, float, str]:
    """(m [1], energy [GeV], its source) for one event under the option ``setting``."""
    if setting is not None:
        return setting, float("nan"), "fixed"
    if math.isfinite(seed_energy) and seed_energy > 0:
        return exponent_for_energy(seed_energy), seed_energy, "seed energy"
    energy = energy_from_charge(total_charge)
    return exponent_for_energy(energy), energy, "charge proxy"
