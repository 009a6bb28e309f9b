"""Track geometry [m, ns]: the direction convention and the frame transverse to a track."""

from __future__ import annotations

import numpy as np

from recos.track.constants import C_VACUUM

__all__ = ["track_direction", "transverse_basis", "reference_points"]


def track_direction(zenith, azimuth) -> np.ndarray:
    """Propagation unit vector u of a particle coming from (zenith, azimuth) [rad].

    A particle from the zenith moves straight down:

    >>> (track_direction(0.0, 0.0) + 0.0).tolist()
    [0.0, 0.0, -1.0]
    """
    st = np.sin(zenith)
    return -np.stack([st * np.cos(azimuth), st * np.sin(azimuth), np.cos(zenith)], axis=-1)


def transverse_basis(u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors e1 = u×ẑ/|u×ẑ| (u×x̂ when |u_z| > 0.99), e2 = u×e1 [1] for u (P, 3)."""
    ref = np.zeros_like(u)
    steep = np.abs(u[:, 2]) > 0.99
    ref[~steep, 2] = 1.0
    ref[steep, 0] = 1.0
    e1 = np.cross(u, ref)
    e1 /= np.linalg.norm(e1, axis=1, keepdims=True)
    return e1, np.cross(u, e1)


def reference_points(seed: np.ndarray, cog: np.ndarray, u: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Reference point r_ref (P, 3) [m] and time t_ref (P,) [ns] of each track.

    The vertex ``seed`` (P, 4) [m, m, m, ns] moved along u (P, 3) onto the plane ⟂ u through
    the hit centre of gravity ``cog`` (3,) [m], its time moved with it at the speed of light.

    A down-going track whose vertex is 100 m above the centre of gravity reaches its plane
    100 m / c later:

    >>> u = track_direction(np.array([0.0]), np.array([0.0]))
    >>> r_ref, t_ref = reference_points(np.array([[0.0, 0.0, 100.0, 0.0]]), np.zeros(3), u)
    >>> r_ref.tolist(), round(float(t_ref[0]), 3)
    ([[0.0, 0.0, 0.0]], 333.564)
    """
    shift = -np.einsum("pj,pj->p", seed[:, :3] - cog, u)
    r_ref = seed[:, :3] + shift[:, None] * u
    t_ref = seed[:, 3] + shift / C_VACUUM
    return r_ref, t_ref
