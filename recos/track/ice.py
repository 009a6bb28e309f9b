"""Depth-dependent ice: path-averaged scattering and absorption coefficients [m, 1/m].

The shipped table is SPICE Mie (``skyscan_tui/data/ice/spice_mie/``; M. G. Aartsen et al.
(IceCube), NIM A 711 (2013) 73, arXiv:1301.5361): per 10 m layer the effective scattering
coefficient b_e(400 nm), the dust absorption a_dust(400 nm) and a temperature term. At
wavelength w [nm] ``b_e(w) = b_e(400) (w/400)^-α`` and ``a(w) = a_dust(400) (w/400)^-κ +
A exp(-B/w) (1 + 0.01 δτ)``. We evaluate at one effective wavelength, 400 nm (near the peak
of Cherenkov spectrum × DOM acceptance; only ratios of coefficients are used below, so the
choice matters little). A few clear-ice layers tabulate a_dust < 0: their total absorption
is floored at ``A_FLOOR``.

A photon from the Cherenkov emission point to a DOM crosses the layers along a straight
line, so the path average of a coefficient c(z) is ``(C(z_dom) - C(z_em)) / (z_dom - z_em)``
with C the integral of c over z (exact for the piecewise-constant layers), or c itself for
a horizontal path. IceCube coordinates put z = 0 at 1948.07 m depth.

The Pandel fits use these averages **relative to the detector's mean ice**: the bulk Pandel
constants describe the average ice, so ``λ = 33.29 m · ⟨b_e⟩_ref / ⟨b_e⟩_path`` and
``λ_a = 98 m · ⟨a⟩_ref / ⟨a⟩_path`` (τ kept), with ``⟨·⟩_ref`` the mean over the
instrumented depths z ∈ [-500, 500] m (:meth:`IceModel.scaled_pandel`), each ratio kept
within ``RATIO_RANGE`` (the table spans a factor ~70 in absorption between its clearest
layers, where a_dust is negative, and the dust peak, where λ_a would be 3 m; a Pandel
rescaling has no support that far). A uniform table gives back exactly the bulk constants.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from recos.track.constants import PANDEL_LAMBDA, PANDEL_LAMBDA_A
from skyscan_tui.errors import UserError

__all__ = ["IceModel", "load_ice", "uniform_ice", "Z_SURFACE_DEPTH", "WAVELENGTH", "ICE_MODELS"]

Z_SURFACE_DEPTH = 1948.07  # [m] depth of z = 0
WAVELENGTH = 400.0  # [nm] effective wavelength
A_FLOOR = 1e-3  # [1/m] smallest absorption coefficient (λ_a ≤ 1 km)
B_FLOOR = 1e-3  # [1/m] smallest scattering coefficient
Z_REF = (-500.0, 500.0)  # [m] depth range of the reference (mean) ice
RATIO_RANGE = (1.0 / 3.0, 3.0)  # allowed ⟨c⟩_ref / ⟨c⟩_path per coefficient
ICE_MODELS = ("spice_mie",)


@dataclass(frozen=True)
class IceModel:
    """Coefficients per layer, in increasing z [m]: ``z_edges`` (n+1,), ``b_e`` and ``a``
    (n,) [1/m]. Beyond the table the end layers continue."""

    name: str
    z_edges: np.ndarray
    b_e: np.ndarray
    a: np.ndarray

    def __post_init__(self) -> None:
        width = np.diff(self.z_edges)
        object.__setattr__(self, "_cum_b", np.concatenate([[0.0], np.cumsum(self.b_e * width)]))
        object.__setattr__(self, "_cum_a", np.concatenate([[0.0], np.cumsum(self.a * width)]))
        b_ref, a_ref = self.path_average(np.array([Z_REF[0]]), np.array([Z_REF[1]]))
        object.__setattr__(self, "b_ref", float(b_ref[0]))
        object.__setattr__(self, "a_ref", float(a_ref[0]))

    def _integral(self, z: np.ndarray, cum: np.ndarray, c: np.ndarray) -> np.ndarray:
        """∫ c dz from the table's lower edge to z, the end layers continued linearly."""
        lo, hi = self.z_edges[0], self.z_edges[-1]
        out = np.interp(z, self.z_edges, cum)
        out = np.where(z < lo, (z - lo) * c[0], out)
        return np.where(z > hi, cum[-1] + (z - hi) * c[-1], out)

    def at(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(b_e, a) [1/m] of the layer holding each z [m]."""
        i = np.clip(np.searchsorted(self.z_edges, z, side="right") - 1, 0, self.b_e.size - 1)
        return self.b_e[i], self.a[i]

    def path_average(self, z_from: np.ndarray, z_to: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray]:
        """Mean (b_e, a) [1/m] along straight paths between heights z_from and z_to [m]
        (any broadcastable shapes)."""
        z1, z2 = np.broadcast_arrays(np.asarray(z_from, float), np.asarray(z_to, float))
        dz = z2 - z1
        flat = np.abs(dz) < 1e-3  # horizontal path: the layer's own value
        safe = np.where(flat, 1.0, dz)
        out = []
        for cum, c, k in ((self._cum_b, self.b_e, 0), (self._cum_a, self.a, 1)):
            mean = (self._integral(z2, cum, c) - self._integral(z1, cum, c)) / safe
            out.append(np.where(flat, self.at(0.5 * (z1 + z2))[k], mean))
        return out[0], out[1]

    def scaled_pandel(self, z_from: np.ndarray, z_to: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray]:
        """Per-path Pandel λ and λ_a [m]: the bulk values scaled by the reference ice over
        the path's mean (see the module doc)."""
        rb, ra = self.ratios(z_from, z_to)
        return PANDEL_LAMBDA * rb, PANDEL_LAMBDA_A * ra

    def ratios(self, z_from: np.ndarray, z_to: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """⟨b_e⟩_ref/⟨b_e⟩_path and ⟨a⟩_ref/⟨a⟩_path [1], within ``RATIO_RANGE``."""
        b, a = self.path_average(z_from, z_to)
        return (np.clip(self.b_ref / b, *RATIO_RANGE), np.clip(self.a_ref / a, *RATIO_RANGE))

    def attenuation_ratio(self, z_from: np.ndarray, z_to: np.ndarray) -> np.ndarray:
        """Attenuation length relative to the reference ice, √(λ_a λ_e) / √(λ_a λ_e)_ref
        (diffusion: λ_att = √(λ_a λ_e / 3))."""
        rb, ra = self.ratios(z_from, z_to)
        return np.sqrt(rb * ra)


def _read_table(name: str) -> tuple[np.ndarray, np.ndarray]:
    from importlib.resources import files

    base = files("skyscan_tui") / "data" / "ice" / name
    try:
        dat = np.loadtxt(base.joinpath("icemodel.dat").open("r"), dtype=float, ndmin=2)
        par = np.loadtxt(base.joinpath("icemodel.par").open("r"), dtype=float, ndmin=2)
    except (OSError, ValueError) as exc:
        raise UserError(f"ice model {name!r}: cannot read its table ({exc})") from None
    return dat, par[:, 0]


@lru_cache(maxsize=4)
def load_ice(name: str = "spice_mie", wavelength: float = WAVELENGTH) -> IceModel:
    """The shipped ice table ``name`` at ``wavelength`` [nm], once per process."""
    if name not in ICE_MODELS:
        raise UserError(f"unknown ice model {name!r} (known: {', '.join(ICE_MODELS)})")
    dat, par = _read_table(name)
    alpha, kappa, big_a, big_b = par[:4]
    depth, be400, adust400, dtau = dat[:, 0], dat[:, 1], dat[:, 2], dat[:, 3]
    ratio = wavelength / 400.0
    b_e = np.maximum(be400 * ratio ** (-alpha), B_FLOOR)
    a = np.maximum(adust400 * ratio ** (-kappa)
                   + big_a * np.exp(-big_b / wavelength) * (1.0 + 0.01 * dtau), A_FLOOR)
    z = Z_SURFACE_DEPTH - depth  # layer centres, decreasing with depth
    order = np.argsort(z)
    z, b_e, a = z[order], b_e[order], a[order]
    half = 0.5 * np.median(np.diff(z))
    edges = np.concatenate([z - half, [z[-1] + half]])
    return IceModel(name, edges, b_e, a)


def uniform_ice(b_e: float = 1.0 / 25.0, a: float = 1.0 / 98.0) -> IceModel:
    """A homogeneous table [1/m] (tests: the layered fits must reduce to the bulk ones)."""
    edges = np.arange(-800.0, 801.0, 10.0)
    n = edges.size - 1
    return IceModel("uniform", edges, np.full(n, float(b_e)), np.full(n, float(a)))


def track_emission_z(pos: np.ndarray, point: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Height z [m] (P, K) of the Cherenkov emission point seen by each DOM ``pos`` (K, 3)
    for P tracks through ``point`` (P, 3) along ``u`` (P, 3): ``l - d cot θ_c`` along the
    track from its closest approach."""
    from recos.track.constants import N_PHASE

    rel = pos[None, :, :] - point[:, None, :]
    along = np.einsum("pkj,pj->pk", rel, u)
    perp = rel - along[..., None] * u[:, None, :]
    d = np.sqrt(np.einsum("pkj,pkj->pk", perp, perp))
    l_emit = along - d / np.sqrt(N_PHASE**2 - 1.0)
    return point[:, 2:3] + l_emit * u[:, 2:3]


def layered_pandel(ice: IceModel, pos: np.ndarray, point: np.ndarray, u: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Per track and DOM (P, K) the scaled Pandel λ and λ_a [m] along the path from the
    emission point of the track (``point``, ``u``: (P, 3)) to each DOM (``pos``: (K, 3))."""
    z_em = track_emission_z(pos, point, u)
    return ice.scaled_pandel(z_em, np.broadcast_to(pos[None, :, 2], z_em.shape))
