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
more photons (charge rounded), through a curve per likelihood and *calibration*: ``log p²``
linear in ``log M`` between the knots, constant beyond them. The curves are a table shipped
in the package, ``recos/track/data/pull_curves.json``, one entry per (likelihood,
calibration) with the command and seeds that fitted it (``benchmarks/pull_calibration.py``,
quantile regression: at every brightness 90 % of the tracks have 2Δ(−log L) / p² <= 4.605 at
the true direction, so the Wilks-90 % region holds the truth 90 % of the time):

* ``matched``: tracks simulated with the recos' own bulk-ice model (``simulate``'s default);
* ``realistic``: tracks of the realistic detector (``simulate --ice spice_mie``) fitted with
  layered ice (``ice=layered``), the path of real events. Real events, and simulated events
  of the realistic detector (``sim_ice`` in their metadata), get this curve when the fit
  uses layered ice; the regions then include the systematic of the ice and detector model
  as far as the realistic simulation has it (the text of ``CALIBRATIONS["realistic"]``).

With other likelihood options (jitter, noise floor, MPE's cap or timing error) the curves
are only approximate: ``pull=none`` turns the correction off, ``pull=<number>`` fixes p,
``pull=matched`` / ``pull=realistic`` force a calibration.
"""

from __future__ import annotations

import json
import os
import tempfile
from functools import lru_cache
from pathlib import Path

import numpy as np

from skyscan_tui.errors import UserError
from skyscan_tui.stats import REALISTIC_PULL

__all__ = ["CALIBRATIONS", "LOG_PULL2", "PULL_KNOTS", "PULL_TABLE", "curve_log_pull2",
           "load_table", "log_pull2", "parse_pull", "pull_for", "write_table"]

#: the table shipped in the package
PULL_TABLE = Path(__file__).resolve().parent / "data" / "pull_curves.json"
#: the calibrations, and how the likelihood text names them
CALIBRATIONS = {
    "matched": "pull calibrated on the matched simulation (bulk ice)",
    "realistic": REALISTIC_PULL,
}
#: the phrase of the realistic calibration, which the summary, alert.txt and the app report
#: as "systematic included" (``skyscan_tui.stats.SkyStats.systematic``)

def load_table(path: Path | str = PULL_TABLE) -> dict:
    """The pull-curve table: ``{"knots": [...], "curves": [PullCurve, ...]}``.

    Every curve has one log p² per knot; (likelihood, calibration) pairs are unique."""
    table = json.loads(Path(path).read_text())
    knots = [float(k) for k in table["knots"]]
    seen = set()
    for c in table["curves"]:
        key = (c["likelihood"], c["calibration"])
        if key in seen or c["calibration"] not in CALIBRATIONS \
                or len(c["log_pull2"]) != len(knots):
            raise ValueError(f"{path}: bad or repeated pull curve {key}")
        seen.add(key)
    return {**table, "knots": knots}


def write_table(table: dict, path: Path | str) -> None:
    """Write a pull-curve table atomically (a temporary file renamed over ``path``)."""
    path = Path(path)
    text = json.dumps(table, indent=1, sort_keys=True) + "\n"
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@lru_cache(maxsize=1)
def _shipped() -> dict[tuple[str, str], tuple[float, ...]]:
    table = load_table()
    if tuple(table["knots"]) != PULL_KNOTS:
        raise ValueError(f"{PULL_TABLE}: knots {table['knots']} are not {PULL_KNOTS}")
    return {(c["likelihood"], c["calibration"]): tuple(float(v) for v in c["log_pull2"])
            for c in table["curves"]}


#: knots of the curves: cleaned DOMs with >= 2 photons
PULL_KNOTS = (10.0, 25.0, 60.0, 150.0)
#: log p² at the knots per likelihood, matched calibration (the shipped table's entries)
LOG_PULL2: dict[str, tuple[float, ...]] = {
    kind: values for (kind, cal), values in _shipped().items() if cal == "matched"}


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


def log_pull2(likelihood: str, n_bright: int | np.ndarray,
              calibration: str = "matched") -> np.ndarray:
    """The calibrated log p² of ``likelihood`` ("SPE1st" or "MPE") at brightness M."""
    return curve_log_pull2(_shipped()[(likelihood, calibration)], n_bright)


def parse_pull(value: str) -> float | str | None:
    """The ``pull`` option: None, a calibration's name, or a fixed p > 0.

    None: the calibrated curve that the event chooses; a calibration's name forces it.

    >>> parse_pull("calibrated"), parse_pull("none"), parse_pull("1.5"), parse_pull("Realistic")
    (None, 1.0, 1.5, 'realistic')
    """
    text = str(value).strip().lower()
    if text == "calibrated":
        return None
    if text in CALIBRATIONS:
        return text
    if text == "none":
        return 1.0
    try:
        p = float(text)
    except ValueError:
        p = float("nan")
    if not (np.isfinite(p) and 0.1 <= p <= 10.0):
        raise UserError(f"reco option pull: {value!r} is not calibrated, matched, realistic, "
                        "none or a number in [0.1, 10]")
    return p


def pull_for(setting: float | str | None, likelihood: str, n_bright: int,
             calibration: str = "matched") -> float:
    """The pull p applied to one event (``calibration`` when ``setting`` is None)."""
    if isinstance(setting, float):
        return setting
    cal = setting if isinstance(setting, str) else calibration
    return float(np.exp(0.5 * log_pull2(likelihood, n_bright, cal)))
