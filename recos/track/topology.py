"""Topology guard: whether an event is track-like or a point-like cascade [m, ns].

A track scan assumes a muon track; a cascade (a particle shower at one point) has no
direction a track fit can find, yet the scan would still draw a confident map. Before a scan
this module fits both hypotheses to the same cleaned first pulses with the same likelihood —
SPE1st, Gauss-convoluted Pandel with the fits' noise floor (:mod:`recos.track.objective`):

* track: the SPE1st fit (:class:`recos.track.reco.TrackReco` machinery) at a coarse set of
  directions (a Fibonacci sphere plus the seed and LineFit directions), then once more at
  directions around the best of them; the best −log L;
* cascade: a point source at (x, y, z, t) (all free), direct light at the group speed
  ``t_geo = t + d/c_g``, the Pandel delay of distance d (``ξ = d_eff(d)/λ``), Nelder–Mead
  from a few starts around the charge-weighted centre; the best −log L.

The statistic is the log-likelihood ratio per cleaned DOM,
``llr = (−log L_track − (−log L_cascade)) / n_dom``: positive when the point source explains
the hit times better. An event is cascade-like when ``llr > LLR_THRESHOLD``. Reported with it:
the number of cleaned DOMs and the length of the light deposit (the RMS extent of the cleaned
DOMs along their principal axis); they do not enter the rule. The threshold was chosen on
simulated samples (``docs/reconstructions.md``, "Topology guard").
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from recos.track.constants import C_GROUP, EFF_A0, EFF_A1, JITTER, PANDEL_LAMBDA
from recos.track.prepare import PreparedTrack, prepare_track
from skyscan_tui.events import Event

__all__ = ["LLR_THRESHOLD", "TopologyVerdict", "classify_topology", "cascade_fit"]

#: cascade-like when the per-DOM log-likelihood ratio track/cascade exceeds this [1]. Chosen
#: on simulated samples (``docs/reconstructions.md``, "Topology guard"): simulated cascades
#: (seeds 2000–2099) lie above it in 96 %, through-going tracks (seeds 1000–1099; all below
#: -0.97) and starting tracks with >= 400 m of muon path in the detector never
LLR_THRESHOLD = -0.4
_NOISE_PROB = 1e-6  # [1/ns] the track fits' default noise floor (reco option noise_prob)
_N_COARSE = 64  # directions of the coarse track scan: ~25° apart
_REFINE_DEG = 8.0  # [deg] radius of the refinement ring around the best coarse direction


@dataclass(frozen=True)
class TopologyVerdict:
    """Outcome of the topology guard.

    ``llr`` [1] per-DOM log-likelihood ratio (track −log L − cascade −log L) / n_dom;
    ``track_nllh``, ``cascade_nllh`` [1] the two best −log L; ``n_dom`` cleaned DOMs;
    ``length`` [m] RMS extent of the cleaned DOMs along their principal axis;
    ``cascade_vertex`` [m, m, m, ns]; ``seconds`` [s] the test's run time.
    """

    cascade_like: bool
    llr: float
    threshold: float
    track_nllh: float
    cascade_nllh: float
    n_dom: int
    length: float
    cascade_vertex: tuple[float, float, float, float]
    seconds: float

    @property
    def label(self) -> str:
        """``cascade-like`` or ``track-like``."""
        return "cascade-like" if self.cascade_like else "track-like"

    def numbers(self) -> str:
        """One-line summary of the numbers behind the verdict."""
        return (f"track/cascade log-likelihood ratio {self.llr:+.3f} per DOM, threshold "
                f"{self.threshold:+.3f}; {self.n_dom} DOMs, light deposit length "
                f"{self.length:.0f} m")

    def text(self) -> str:
        """The verdict and its numbers in one line, for users."""
        return f"{self.label} ({self.numbers()})"

    def to_dict(self) -> dict[str, Any]:
        """The verdict as a JSON-ready dict (result headers, ``summary.json``)."""
        out = asdict(self)
        out["verdict"] = self.label
        out["cascade_vertex"] = list(self.cascade_vertex)
        return out


def _fibonacci_dirs(n: int) -> tuple[np.ndarray, np.ndarray]:
    """n nearly uniform directions (zenith, azimuth) [rad] on the sphere."""
    k = np.arange(n) + 0.5
    zen = np.arccos(1.0 - 2.0 * k / n)
    azi = np.mod(np.pi * (1.0 + 5**0.5) * k, 2 * np.pi)
    return zen, azi


def _ring(zen: float, azi: float, radius_deg: float, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The direction (zen, azi) [rad] and n directions on a ring ``radius_deg`` around it."""
    d = np.array([np.sin(zen) * np.cos(azi), np.sin(zen) * np.sin(azi), np.cos(zen)])
    a = np.cross(d, [0.0, 0.0, 1.0]) if abs(d[2]) < 0.99 else np.cross(d, [1.0, 0.0, 0.0])
    a /= np.linalg.norm(a)
    b = np.cross(d, a)
    psi = np.deg2rad(radius_deg)
    phi = 2 * np.pi * np.arange(n) / n
    v = (np.cos(psi) * d[None, :] + np.sin(psi) * (np.cos(phi)[:, None] * a
                                                    + np.sin(phi)[:, None] * b))
    v = np.vstack([d, v])
    return (np.arccos(np.clip(v[:, 2], -1, 1)), np.mod(np.arctan2(v[:, 1], v[:, 0]), 2 * np.pi))


def _track_fit(prep: PreparedTrack) -> float:
    """Best SPE1st −log L [1] over a coarse direction scan and a refinement ring."""
    from recos.spe import SPEReco
    from recos.track.prepare import line_fit
    from skyscan_tui.tasks import TaskBatch

    reco = SPEReco(pull=1.0, noise_prob=_NOISE_PROB)

    def best(zen: np.ndarray, azi: np.ndarray) -> tuple[float, float, float]:
        n = zen.size
        batch = TaskBatch(0, 0, np.zeros(n, np.int32), np.arange(n, dtype=np.int64),
                          np.zeros(n, np.int32), zen, azi, np.tile(prep.seed, (n, 1)))
        _, _, f = reco.fit_params(prep, batch)
        f = np.where(np.isfinite(f), f, np.inf)
        i = int(np.argmin(f))
        return float(f[i]), float(zen[i]), float(azi[i])

    zen, azi = _fibonacci_dirs(_N_COARSE)
    _, _, lf_zen, lf_azi = line_fit(prep.pos, prep.time)
    zen = np.concatenate([zen, [prep.seed_dir[0], lf_zen]])
    azi = np.concatenate([azi, [prep.seed_dir[1], lf_azi]])
    f0, z0, a0 = best(zen, azi)
    f1, _, _ = best(*_ring(z0, a0, _REFINE_DEG, 8))
    return min(f0, f1)


def cascade_fit(prep: PreparedTrack, sigma: float = JITTER,
                noise_prob: float = _NOISE_PROB) -> tuple[float, np.ndarray]:
    """Best −log L [1] and vertex (x, y, z [m], t [ns]) of a point-like cascade.

    −log L = −Σ_k log(p_c(t_k − t − d_k/c_g; ξ(d_k)) + p_noise) over the cleaned first pulses,
    with the tabulated Gauss-convoluted Pandel of the track fits (:mod:`recos.track.table`).
    """
    from scipy.optimize import minimize

    from recos.track.table import XI_MAX, XI_MIN, get_table

    table = get_table(sigma)
    log_noise = np.log(noise_prob)
    pos, t = prep.pos, prep.time

    def nllh(p: np.ndarray) -> float:
        d = np.linalg.norm(pos - p[:3], axis=1)
        res = t - p[3] - d / C_GROUP
        xi = np.clip(np.maximum(EFF_A1 * d + EFF_A0, 1.0) / PANDEL_LAMBDA, XI_MIN, XI_MAX)
        lp = table.logpdf(res, np.log(xi))
        return float(-np.logaddexp(lp, log_noise).sum())

    # starts: the charge-weighted centre and the earliest DOMs; t so the first hit is direct
    first = np.argsort(t)[:3]
    centres = [prep.cog, pos[first].mean(axis=0), pos[first[0]]]
    best_f, best_x = np.inf, np.zeros(4)
    for c in centres:
        d = np.linalg.norm(pos - c, axis=1)
        t_start = float(np.min(t - d / C_GROUP))
        x0 = np.array([*c, t_start])
        simplex = x0 + np.vstack([np.zeros(4), np.diag([40.0, 40.0, 40.0, 100.0])])
        r = minimize(nllh, x0, method="Nelder-Mead",
                     options={"initial_simplex": simplex, "xatol": 0.5, "fatol": 1e-3,
                              "maxfev": 800})
        if r.fun < best_f:
            best_f, best_x = float(r.fun), r.x
    return best_f, best_x


def _length(pos: np.ndarray) -> float:
    """RMS extent [m] of the DOMs along their principal axis."""
    if len(pos) < 2:
        return 0.0
    cov = np.cov(pos.T)
    return float(np.sqrt(max(np.linalg.eigvalsh(cov)[-1], 0.0)))


def classify_topology(event: Event, threshold: float = LLR_THRESHOLD) -> TopologyVerdict:
    """Run the topology guard on ``event`` (see the module doc).

    Well under a second for a typical event."""
    t_start = time.perf_counter()
    prep = prepare_track(event, use_charge=False, max_npe=1)
    n = int(prep.time.size)
    f_track = _track_fit(prep)
    f_casc, vertex = cascade_fit(prep)
    llr = (f_track - f_casc) / max(n, 1)
    return TopologyVerdict(
        cascade_like=bool(llr > threshold), llr=float(llr), threshold=float(threshold),
        track_nllh=float(f_track), cascade_nllh=float(f_casc), n_dom=n,
        length=_length(prep.pos), cascade_vertex=tuple(float(v) for v in vertex),
        seconds=time.perf_counter() - t_start)
