"""Pull correction of the Pandel track likelihoods: −log L divided by p², p from brightness.

Neither SPE1st nor MPE is the exact likelihood of the simulated light, so 2Δ(−log L) at the
true direction is not χ² with 2 degrees of freedom, and the Wilks regions (2Δ ≤ 1.39 / 4.61)
do not hold the truth 50 % / 90 % of the time (``docs/reconstructions.md``). SPE1st treats the first of
N photons as a single one, so once most DOMs see several photons its surface is too wide
(truth inside the 90 % region 0.97–0.98 of the time at 10–100 TeV); MPE's sharp first-of-N
edge makes dim events' surfaces too narrow (0.80 at 1 TeV). IceCube corrects such mismatches
with a *pull correction* measured on simulation as a function of energy: the estimated error
is multiplied by the pull p = true / estimated spread. For a likelihood surface that is the
same as dividing −log L by p², which leaves the best fit unchanged and scales the contours'
radii by p.

Here p² depends on the event's brightness M, the number of cleaned DOMs that recorded two or
more photons (charge rounded), through a curve per likelihood: ``log p²`` linear in
``log M`` between the knots, constant beyond them. The curves were fitted by
``benchmarks/pull_calibration.py`` on simulated tracks (matched model, default options,
energies log-uniform in 1–100 TeV, seeds disjoint from ``benchmarks/accuracy.py``'s), so
that at every brightness 90 % of the tracks have 2Δ(−log L) / p² <= 4.605 at the true
direction: the Wilks-90 % region then holds the truth 90 % of the time. With other
likelihood options (jitter, noise floor, MPE's cap or timing error) or other ice the curve
is only approximate: ``pull=none`` turns it off, ``pull=<number>`` fixes p.
"""

from __future__ import annotations

import numpy as np

from skyscan_tui.errors import UserError

__all__ = ["PULL_KNOTS", "LOG_PULL2", "curve_log_pull2", "log_pull2", "parse_pull", "pull_for"]

#: knots of the curves: cleaned DOMs with >= 2 photons
PULL_KNOTS = (10.0, 25.0, 60.0, 150.0)
#: log p² at the knots, per likelihood: ``benchmarks/pull_calibration.py --events 400``
#: (400 tracks, seeds 800000…800399). Plain coverage of the Wilks-90 % region there: SPE1st
#: 0.91 at M < 20, 0.95–0.99 above; MPE 0.74 at M 10–19, 0.89–0.91 above
LOG_PULL2: dict[str, tuple[float, ...]] = {
    "SPE1st": (-0.010, -0.211, -0.391, -0.485),
    "MPE": (0.396, 0.139, -0.034, 0.041),
}


def curve_log_pull2(values, n_bright: int | np.ndarray) -> np.ndarray:
    """log p² [1] at brightness M of the curve with ``values`` at PULL_KNOTS.

    Linear in log M between the knots, constant beyond them.

    >>> PULL_KNOTS
    (10.0, 25.0, 60.0, 150.0)
    >>> curve_log_pull2((0.4, 0.1, 0.0, 0.0), [1, 10, 1000]).tolist()
    [0.4, 0.4, 0.0]
    """
    x = np.log(np.maximum(np.asarray(n_bright, float), 1.0))
    return np.interp(x, np.log(PULL_KNOTS), values)


def log_pull2(likelihood: str, n_bright: int | np.ndarray) -> np.ndarray:
    """The calibrated log p² of ``likelihood`` ("SPE1st" or "MPE") at brightness M."""
    return curve_log_pull2(LOG_PULL2[likelihood], n_bright)


def parse_pull(value: str) -> float | None:
    """The ``pull`` option: None for the calibrated curve, else a fixed p > 0.

    >>> parse_pull("calibrated"), parse_pull("none"), parse_pull(" 1.5")
    (None, 1.0, 1.5)
    """
    text = str(value).strip().lower()
    if text == "calibrated":
        return None
    if text == "none":
        return 1.0
    try:
        p = float(text)
    except ValueError:
        p = float("nan")
    if not (np.isfinite(p) and 0.1 <= p <= 10.0):
        raise UserError(f"reco option pull: {value!r} is not calibrated, none or a number "
                        "in [0.1, 10]")
    return p


def pull_for(setting: float | None, likelihood: str, n_bright: int) -> float:
    """The pull p applied to one event."""
    if setting is not None:
        return setting
    return float(np.exp(0.5 * log_pull2(likelihood, n_bright)))
