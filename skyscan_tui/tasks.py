"""Plain-data pixel work shared by the engine, the executors and remote workers.

A ``TaskBatch`` holds a few pixel tasks as numpy arrays; a result is a structured array of
``RESULT_DTYPE``, one row per (pixel, variation). Both serialise to ``.npz`` without pickle,
so a remote node needs no trust in the client and vice versa.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, replace

import numpy as np

__all__ = ["TaskBatch", "RESULT_DTYPE", "empty_results", "batch_to_npz", "batch_from_npz",
           "results_to_npz", "results_from_npz"]

RESULT_DTYPE = np.dtype([
    ("nside", "<i4"), ("ipix", "<i8"), ("variation", "<i4"),
    ("llh", "<f8"),            # −log L at the best fit (NaN = fit failed)
    ("x", "<f8"), ("y", "<f8"), ("z", "<f8"),   # [m] fitted vertex
    ("t", "<f8"),              # [ns] time at the vertex
    ("E_in", "<f8"), ("E_tot", "<f8"),          # [GeV] energies if the reco fits any, else NaN
])


def empty_results(n: int = 0) -> np.ndarray:
    """``n`` result rows (``RESULT_DTYPE``) with every fitted value NaN."""
    out = np.zeros(n, dtype=RESULT_DTYPE)
    for f in ("llh", "x", "y", "z", "t", "E_in", "E_tot"):
        out[f] = np.nan
    return out


@dataclass(frozen=True, eq=False)
class TaskBatch:
    """Pixel tasks at fixed directions.

    Arrays have shape (n,): ``nside``, NESTED ``ipix``, vertex ``variation`` index,
    ``zenith``/``azimuth`` [rad] IceCube-local direction of origin of the pixel at the event
    time, and ``seed`` (n, 4): [m, m, m, ns] vertex and time the fit starts from.
    ``attempt`` counts earlier tries of these tasks (0 = first try); a reco must not let it
    change a successful answer (only test recos such as ``crash_dummy`` look at it).
    ``avoid`` names the worker where these tasks last failed: an executor that can choose
    where a batch runs should pick another one (a hint; never serialised).
    """

    batch_id: int
    round: int
    nside: np.ndarray
    ipix: np.ndarray
    variation: np.ndarray
    zenith: np.ndarray
    azimuth: np.ndarray
    seed: np.ndarray
    attempt: int = 0
    avoid: str = ""

    def __len__(self) -> int:
        return int(self.ipix.shape[0])

    def select(self, idx: np.ndarray, batch_id: int) -> TaskBatch:
        """The tasks at indices ``idx`` as a new batch ``batch_id``."""
        return TaskBatch(batch_id, self.round, self.nside[idx], self.ipix[idx],
                         self.variation[idx], self.zenith[idx], self.azimuth[idx],
                         self.seed[idx], self.attempt, self.avoid)

    def with_attempt(self, attempt: int, avoid: str | None = None) -> TaskBatch:
        """The same tasks as a later try (best not run on worker ``avoid``)."""
        return replace(self, attempt=int(attempt), avoid=self.avoid if avoid is None else avoid)


_BATCH_FIELDS = ("nside", "ipix", "variation", "zenith", "azimuth", "seed")
_BATCH_DTYPES = {"nside": np.int32, "ipix": np.int64, "variation": np.int32,
                 "zenith": np.float64, "azimuth": np.float64, "seed": np.float64}


def batch_to_npz(batch: TaskBatch) -> bytes:
    """A batch as ``.npz`` bytes (no pickles), for the job files of remote executors."""
    buf = io.BytesIO()
    np.savez(buf, batch_id=np.int64(batch.batch_id), round=np.int64(batch.round),
             attempt=np.int64(batch.attempt),
             **{f: getattr(batch, f) for f in _BATCH_FIELDS})
    return buf.getvalue()


def batch_from_npz(data: bytes) -> TaskBatch:
    """The batch in ``.npz`` bytes written by ``batch_to_npz``; ValueError if malformed."""
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        arrays = {f: np.asarray(npz[f], dtype=_BATCH_DTYPES[f]) for f in _BATCH_FIELDS}
        n = arrays["ipix"].shape[0]
        if any(a.shape[0] != n for a in arrays.values()) or arrays["seed"].shape != (n, 4):
            raise ValueError("inconsistent task batch")
        attempt = int(npz["attempt"]) if "attempt" in npz.files else 0
        return TaskBatch(int(npz["batch_id"]), int(npz["round"]), **arrays, attempt=attempt)


def results_to_npz(results: np.ndarray) -> bytes:
    """Result rows as ``.npz`` bytes (no pickles), for remote result files."""
    buf = io.BytesIO()
    np.savez(buf, results=np.asarray(results, dtype=RESULT_DTYPE))
    return buf.getvalue()


def results_from_npz(data: bytes) -> np.ndarray:
    """The result rows in ``.npz`` bytes; ValueError if the layout is not ``RESULT_DTYPE``."""
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        res = npz["results"]
    if res.dtype != RESULT_DTYPE:
        raise ValueError("result file has the wrong layout")
    return res
