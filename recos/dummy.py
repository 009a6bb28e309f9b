"""A cheap analytic reco for tests and demos: −log L = ½ (ψ/σ)² + noise.

ψ is the angle between the pixel direction and the event's best seed (or truth) direction,
so the optimum is known exactly; the noise is a deterministic hash of (pixel, variation,
seed), i.e. "seeded noise" that is the same on every run and every worker.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from recos.base import Option, Reco
from skyscan_tui.events import Event
from skyscan_tui.tasks import TaskBatch, empty_results

__all__ = ["DummyReco", "RECO", "hash_uniform", "direction_vector"]


def direction_vector(zenith, azimuth) -> np.ndarray:
    """Unit vectors (n, 3) [1] to where the particle comes from, at (zenith, azimuth) [rad]."""
    st = np.sin(zenith)
    return np.stack([st * np.cos(azimuth), st * np.sin(azimuth), np.cos(zenith)], axis=-1)


def hash_uniform(*keys: np.ndarray) -> np.ndarray:
    """Deterministic uniform [0, 1) numbers from integer keys (splitmix64 mixing)."""
    h = np.zeros(np.broadcast(*keys).shape, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for k in keys:
            h = h ^ np.asarray(k).astype(np.uint64)
            h = h + np.uint64(0x9E3779B97F4A7C15)
            h = (h ^ (h >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
            h = (h ^ (h >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
            h = h ^ (h >> np.uint64(31))
    return (h >> np.uint64(11)).astype(np.float64) / float(1 << 53)


class DummyReco(Reco):
    """Analytic test likelihood: ½ (angle to the seed / ``sigma_deg``)² plus seeded noise."""

    name = "dummy"
    description = "analytic test likelihood: ½(angle to seed / sigma)² + seeded noise"
    likelihood = "analytic Gaussian in angle (no physics)"
    OPTIONS = (
        Option("sigma_deg", float, 1.0, "angular width of the minimum [deg]", min=1e-3),
        Option("noise", float, 0.001, "amplitude of the seeded noise [−log L units]", min=0.0),
        Option("sleep", float, 0.0, "extra time per pixel [s] (demos, tests)", min=0.0,
               max=60.0),
        Option("seed", int, 0, "noise seed"),
    )
    n_variations = 1
    preferred_batch = 64

    def prepare(self, event: Event) -> dict[str, Any]:
        ref = event.best_seed or event.truth
        zen, azi = (ref.zenith, ref.azimuth) if ref is not None else (0.0, 0.0)
        return {"event": event, "zenith": zen, "azimuth": azi}

    def seed_vertex(self, prepared: Any) -> np.ndarray:
        return super().seed_vertex(prepared["event"])

    def fit_pixels(self, prepared: Any, batch: TaskBatch) -> np.ndarray:
        n = len(batch)
        if self.options["sleep"] > 0:
            time.sleep(self.options["sleep"] * n)
        ref = direction_vector(prepared["zenith"], prepared["azimuth"])
        vec = direction_vector(batch.zenith, batch.azimuth)
        # element-wise dot product: a BLAS matmul rounds differently with the batch size,
        # and a pixel's answer must not depend on its batch (checkpoints, retries)
        cos_psi = vec[:, 0] * ref[0] + vec[:, 1] * ref[1] + vec[:, 2] * ref[2]
        psi = np.arccos(np.clip(cos_psi, -1.0, 1.0))
        sigma = np.deg2rad(self.options["sigma_deg"])
        noise = self.options["noise"] * hash_uniform(
            batch.nside, batch.ipix, batch.variation, np.full(n, self.options["seed"]))
        out = empty_results(n)
        out["nside"], out["ipix"], out["variation"] = batch.nside, batch.ipix, batch.variation
        out["llh"] = 0.5 * (psi / sigma) ** 2 + noise
        out["x"], out["y"], out["z"], out["t"] = batch.seed.T
        return out


RECO = DummyReco
